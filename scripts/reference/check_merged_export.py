#!/usr/bin/env python3
"""Checks a merged export (`lrs export merged`) against `lrs predict --json --embeddings`
with the float64 NumPy BERT forward of minilm_reference.py: no torch, no transformers.

The merged directory's model.safetensors, config.json and tokenizer.json are read as they
are; each text of the predict output is tokenized (`tokenizers`), run through the NumPy
encoder, mean-pooled over its tokens, and compared with lrs's embedding; with head.safetensors,
the score sigmoid(pooled . weight + bias) is compared with lrs's score.

Usage:
    python3 -m pip install numpy safetensors tokenizers
    lrs predict --run RUN --task ID --json --embeddings --text ... > predict.jsonl
    lrs export merged --run RUN --task ID --out MERGED
    python3 scripts/reference/check_merged_export.py MERGED predict.jsonl [--tol 1e-4]

Prints the largest differences and exits 1 when one exceeds the tolerance.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minilm_reference import bert_forward, encode, load_weights, mean_pool  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("merged")
    ap.add_argument("predictions")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    merged = Path(args.merged)
    rows = [json.loads(l) for l in Path(args.predictions).read_text().splitlines() if l.strip()]
    texts = [r["text"] for r in rows]
    cfg = json.loads((merged / "config.json").read_text())
    w = load_weights(merged)
    tok = Tokenizer.from_file(str(merged / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    _, ids, mask = encode(tok, texts)
    pooled = mean_pool(bert_forward(w, cfg, ids, mask), mask)
    want = np.array([r["embedding"] for r in rows], dtype=np.float64)
    emb_diff = float(np.abs(pooled - want).max())
    print(f"numpy float64 vs lrs predict: {len(texts)} texts, embedding max |diff| {emb_diff:.3e}")
    worst = emb_diff
    head = merged / "head.safetensors"
    if head.is_file():
        h = {k: v.astype(np.float64) for k, v in load_file(str(head)).items()}
        z = pooled @ h["weight"][0] + h["bias"][0]
        score = 1.0 / (1.0 + np.exp(-z))
        score_diff = float(np.abs(score - np.array([r["score"] for r in rows])).max())
        print(f"numpy float64 vs lrs predict: score max |diff| {score_diff:.3e}")
        worst = max(worst, score_diff)
    if worst > args.tol:
        print(f"FAIL: {worst:.3e} > {args.tol}")
        sys.exit(1)
    print(f"ok (tolerance {args.tol})")


if __name__ == "__main__":
    main()
