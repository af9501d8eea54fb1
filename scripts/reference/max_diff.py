#!/usr/bin/env python3
"""Max |diff| of the embeddings and scores of two `lrs predict --json --embeddings` outputs.

Usage: max_diff.py [--tol T] A.jsonl B.jsonl   (with --tol: exit 1 when the embeddings differ
by more than T)
"""
import argparse
import json


def rows(path):
    return [json.loads(l) for l in open(path) if l.strip()]


ap = argparse.ArgumentParser()
ap.add_argument("a")
ap.add_argument("b")
ap.add_argument("--tol", type=float)
args = ap.parse_args()
a, b = rows(args.a), rows(args.b)
emb = max(abs(x - y) for r, s in zip(a, b) for x, y in zip(r["embedding"], s["embedding"]))
line = f"embeddings max |diff| {emb:.3e}"
if all("score" in r for r in a + b):
    score = max(abs(r["score"] - s["score"]) for r, s in zip(a, b))
    line += f", scores max |diff| {score:.3e}"
print(line)
if args.tol is not None and emb > args.tol:
    raise SystemExit(1)
