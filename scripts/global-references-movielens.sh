#!/usr/bin/env bash
# The global reference models of docs/results.md (a bias per movie; the same plus weights on
# genres and year) fitted and scored on exactly the split of the neural table: `lrs split`
# prints the run's train / validation / test rows, scripts/reference/movielens_global_on_split.py
# chooses the penalties on the validation rows, refits on train + validation and scores the
# test rows of the 811 scored users. One JSON line per m.
#
# Needs the seeded data (scripts/seed-movielens.sh).
# Usage: scripts/global-references-movielens.sh
# Env: SHOTS (default "5 10 20"), CONFIG (default configs/movielens-minilm.toml), LRS (default
#      target/release/lrs, built if missing), VENV (a venv with NumPy from PyPI, created if
#      missing; default ${XDG_CACHE_HOME:-~/.cache}/lrs/venv-numpy), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
SHOTS="${SHOTS:-5 10 20}"
CONFIG="${CONFIG:-configs/movielens-minilm.toml}"
LRS="${LRS:-target/release/lrs}"
[[ -x "$LRS" ]] || cargo build --release --bin lrs
source scripts/python-venv.sh
ensure_venv numpy "numpy" numpy
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for m in $SHOTS; do
  "$LRS" split --config "$CONFIG" --shots "$m" > "$tmp/split-m$m.jsonl"
  "$VENV/bin/python" scripts/reference/movielens_global_on_split.py "$tmp/split-m$m.jsonl" |
    sed "s/^{/{\"shots\": $m, /"
done
