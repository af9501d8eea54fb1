#!/usr/bin/env bash
# Private LRS at ε ∈ {1, 4, 8} (δ = 1e-5) and the private shared-only baseline on
# MovieLens-100k at m = 20 (configs/movielens-minilm-private.toml), then the report table.
# The non-private LRS row comes from scripts/results-movielens.sh (runs/movielens/lrs-m20).
#
# Usage: scripts/results-privacy.sh [RUNS_DIR]   (default runs/privacy)
# Env: LRS (default: cargo run --release -q --), EPSILONS (default "1 4 8"),
#      METHODS (default "lrs shared-only").
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/privacy}"
LRS="${LRS:-cargo run --release -q --}"
EPSILONS="${EPSILONS:-1 4 8}"
METHODS="${METHODS:-lrs shared-only}"
mkdir -p "$OUT"
for eps in $EPSILONS; do
  for method in $METHODS; do
    dir="$OUT/$method-eps$eps"
    cfg="$OUT/$method-eps$eps.toml"
    sed -e "s/^epsilon = .*/epsilon = $eps/" -e "s/^method = .*/method = \"$method\"/" \
      configs/movielens-minilm-private.toml > "$cfg"
    if [ -f "$dir/summary.json" ]; then echo "== $dir: done"; continue; fi
    resume=()
    [ -f "$dir/config.toml" ] && resume=(--resume)
    echo "== $dir"
    $LRS train --config "$cfg" --run "$dir" "${resume[@]}"
  done
done
$LRS report --runs "$OUT"
