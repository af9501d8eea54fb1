#!/usr/bin/env bash
# Trains every method of configs/movielens-minilm.toml on MovieLens-100k for each m and seed,
# and prints the tables of docs/results.md (`lrs report`: mean ± sd over seeds) and draws
# their mean AUC against m per method into RUNS_DIR/auc-vs-m.svg.
#
# The config's protocol: U, V on query/value of all six layers, per-user parts in the top
# layer; every user's latest 25 % of its m training ratings held out as validation rows, and
# every run stops early on their mean loss (`patience`), keeping its best round's outputs: the
# same tuning for every method, and test rows never read for it. Each run then trains again
# on all m rows for the rounds it kept (`refit`) and reports that model. Runs already finished
# are kept; an interrupted run is resumed from its checkpoint.
#
# Usage: scripts/results-movielens.sh [RUNS_DIR]   (default runs/movielens)
# Env: LRS (default: cargo run --release -q --), SHOTS (default "5 10 20"),
#      SEEDS (default "0 1 2"),
#      METHODS (default "global global-lora head-only shared-only sparse-only lora lrs"),
#      CONFIG (default configs/movielens-minilm.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/movielens}"
LRS="${LRS:-cargo run --release -q --}"
SHOTS="${SHOTS:-5 10 20}"
SEEDS="${SEEDS:-0 1 2}"
METHODS="${METHODS:-global global-lora head-only shared-only sparse-only lora lrs}"
CONFIG="${CONFIG:-configs/movielens-minilm.toml}"

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
  for seed in $SEEDS; do
    for method in $METHODS; do
      train "$OUT/$method-m$m-s$seed" --method "$method" --shots "$m" --seed "$seed"
    done
  done
done
$LRS report --runs "$OUT" --plot "$OUT/auc-vs-m.svg"
