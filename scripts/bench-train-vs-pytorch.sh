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

source scripts/python-venv.sh
ensure_venv torch "torch, transformers, peft" torch transformers peft
[[ -x "$LRS" ]] || cargo build --release --bin lrs
"$VENV/bin/python" -c 'import torch, transformers, peft; print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, {torch.get_num_threads()} threads")'
exec "$LRS" bench train --pytorch "$VENV/bin/python" "$@"
