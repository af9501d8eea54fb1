#!/usr/bin/env bash
# Rows per second of one shared-phase training step of `lrs train` (all-MiniLM-L6-v2, U, V on
# query/value of all six layers, batch 32, MovieLens texts) beside the same step in PyTorch +
# PEFT (scripts/reference/bench_train_pytorch.py), the two run alternately by
# `lrs bench train --pytorch`. Prints every run, both medians and the ratio lrs / PyTorch.
#
# Needs the seeded model and data (scripts/seed-minilm.sh, scripts/seed-movielens.sh).
# Env: LRS (default target/release/lrs, built if missing: model code wants the release
# profile), VENV (a venv with torch, transformers and peft from PyPI, created if missing;
# default ${XDG_CACHE_HOME:-~/.cache}/lrs/venv-torch; torch from PyPI is several GB),
# PYTHON (python3, to create it). Extra arguments go to `lrs bench train`
# (e.g. --repeats 7 --steps 20 --batch 64 --target-modules query,key,value).
set -euo pipefail
cd "$(dirname "$0")/.."

LRS="${LRS:-target/release/lrs}"
VENV="${VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lrs/venv-torch}"
PYTHON="${PYTHON:-python3}"

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import torch, transformers, peft' 2>/dev/null; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet torch transformers peft
fi
[[ -x "$LRS" ]] || cargo build --release --bin lrs
"$VENV/bin/python" -c 'import torch, transformers, peft; print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, {torch.get_num_threads()} threads")'
exec "$LRS" bench train --pytorch "$VENV/bin/python" "$@"
