#!/usr/bin/env bash
# How much per-user AUC a user's own m ratings can add on MovieLens-100k, outside the neural
# model (scripts/reference/movielens_personal_signal.py): a global item score (each movie's
# positive rate over the other users' training ratings) against the same score plus a per-user
# ridge logistic regression on genres and year, its ridge chosen on validation rows; and the
# collaborative estimate (scripts/reference/movielens_collaborative_signal.py): a logistic
# item-bias model against matrix factorization (item bias + rank-r user and item factors) and
# against the item bias plus weights on the movie's genres and year (a global model with a
# per-movie memory), their penalties and rank chosen on validation rows. Two JSON lines per (m, seed);
# docs/results.md quotes them.
#
# Usage: scripts/personal-signal-movielens.sh
# Env: SHOTS (default "5 10 20"), SEEDS (default "0 1 2 3 4"), LRS_DATA (default
#      ~/.cache/lrs/data; scripts/seed-movielens.sh fills it), VENV (a venv with NumPy from
#      PyPI, created if missing; default ${XDG_CACHE_HOME:-~/.cache}/lrs/venv-numpy), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
SHOTS="${SHOTS:-5 10 20}"
SEEDS="${SEEDS:-0 1 2 3 4}"
DATA="${LRS_DATA:-$HOME/.cache/lrs/data}/ml-100k"
[ -f "$DATA/ml-100k.inter" ] || { echo "no $DATA/ml-100k.inter: run scripts/seed-movielens.sh" >&2; exit 1; }
source scripts/python-venv.sh
ensure_venv numpy "numpy" numpy
for m in $SHOTS; do
  for seed in $SEEDS; do
    "$VENV/bin/python" scripts/reference/movielens_personal_signal.py "$DATA" --shots "$m" --seed "$seed"
    "$VENV/bin/python" scripts/reference/movielens_collaborative_signal.py "$DATA" --shots "$m" --seed "$seed"
  done
done
