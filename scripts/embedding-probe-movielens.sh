#!/usr/bin/env bash
# Does a LoRA on the word embeddings lift a global text model on MovieLens-100k? Runs the
# PyTorch + PEFT probe scripts/reference/movielens_peft_embedding_probe.py (global LoRA on
# query/value, with and without word_embeddings, and the first with a bias per movie fitted on
# top of its logits; validation rows only, one JSON line per epoch) for each variant below;
# docs/results.md §How the defaults were chosen quotes them.
#
# Needs the seeded model and data (scripts/seed-minilm.sh, scripts/seed-movielens.sh).
# Usage: scripts/embedding-probe-movielens.sh
# Env: SHOTS (default 20), SEEDS (default 0), EPOCHS (default 5), LRS_DATA (default
#      ~/.cache/lrs/data), HF_HOME (default ~/.cache/huggingface), VENV (a venv with torch,
#      transformers and peft from PyPI, created if missing; default
#      ${XDG_CACHE_HOME:-~/.cache}/lrs/venv-torch; torch from PyPI is several GB), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
SHOTS="${SHOTS:-20}"
SEEDS="${SEEDS:-0}"
EPOCHS="${EPOCHS:-5}"
DATA="${LRS_DATA:-$HOME/.cache/lrs/data}/ml-100k"
HUB="${HF_HOME:-$HOME/.cache/huggingface}/hub/models--sentence-transformers--all-MiniLM-L6-v2"
[ -f "$DATA/ml-100k.inter" ] || { echo "no $DATA/ml-100k.inter: run scripts/seed-movielens.sh" >&2; exit 1; }
[ -f "$HUB/refs/main" ] || { echo "no all-MiniLM-L6-v2 in $HUB: run scripts/seed-minilm.sh" >&2; exit 1; }
MODEL="$HUB/snapshots/$(cat "$HUB/refs/main")"
source scripts/python-venv.sh
ensure_venv torch "torch, transformers, peft" torch transformers peft
for m in $SHOTS; do
  for seed in $SEEDS; do
    for variant in "query,value 0 --movie-bias" "query,value,word_embeddings 0" "query,value,word_embeddings 1e-4"; do
      read -r targets embedding_lr extra <<<"$variant"
      "$VENV/bin/python" scripts/reference/movielens_peft_embedding_probe.py "$DATA" "$MODEL" \
        --shots "$m" --seed "$seed" --epochs "$EPOCHS" --targets "$targets" --embedding-lr "$embedding_lr" $extra
    done
  done
done
