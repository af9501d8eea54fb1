#!/usr/bin/env bash
# Trains every method of configs/movielens-minilm.toml on MovieLens-100k at m = 5, 10, 20
# (all 811 users; full fine-tuning and an LRS run for comparison on the first 100 users only)
# and prints the markdown tables of docs/results.md. Runs already finished are kept; an
# interrupted run is resumed from its checkpoint.
#
# Usage: scripts/results-movielens.sh [RUNS_DIR]   (default runs/movielens)
# Env: LRS (default: cargo run --release -q --), SHOTS (default "5 10 20"),
#      METHODS (default "global global-lora head-only shared-only sparse-only lora lrs"),
#      FULL_FT_SHOTS (default: SHOTS): the m at which the 100-user full fine-tuning and LRS
#      comparison runs (they are the slowest runs: a dense 384×1536 update per user).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/movielens}"
LRS="${LRS:-cargo run --release -q --}"
SHOTS="${SHOTS:-5 10 20}"
METHODS="${METHODS:-global global-lora head-only shared-only sparse-only lora lrs}"
FULL_FT_SHOTS="${FULL_FT_SHOTS-$SHOTS}"
CONFIG=configs/movielens-minilm.toml

train() { # dir, extra args...
  local dir="$1"; shift
  if [ -f "$dir/summary.json" ]; then
    echo "== $dir: done"
    return
  fi
  local resume=()
  [ -f "$dir/config.toml" ] && resume=(--resume)
  echo "== $dir"
  $LRS train --config "$CONFIG" --run "$dir" "${resume[@]}" "$@"
}

mkdir -p "$OUT"
for m in $SHOTS; do
  for method in $METHODS; do
    train "$OUT/$method-m$m" --method "$method" --shots "$m"
  done
  case " $FULL_FT_SHOTS " in
    *" $m "*)
      train "$OUT/full-ft-100-m$m" --method full-ft --shots "$m" --max-tasks 100
      train "$OUT/lrs-100-m$m" --method lrs --shots "$m" --max-tasks 100
      ;;
  esac
done
$LRS report --runs "$OUT"
