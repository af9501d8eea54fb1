#!/usr/bin/env python3
"""Loads lrs exports with the libraries a user would load them with and compares their
outputs with `lrs predict --json --embeddings` (used by scripts/check-exports.sh).

    check_hf_clients.py merged MERGED_DIR PREDICT_JSONL
        transformers AutoModel + AutoTokenizer on the merged directory (mean pooling over the
        attention mask), and SentenceTransformer on the same directory (its own pipeline:
        Transformer, Pooling and, for all-MiniLM-L6-v2, Normalize, compared with lrs's
        embedding L2-normalised when the pipeline normalises).
    check_hf_clients.py peft ADAPTER_DIR PREDICT_JSONL
        PeftModel.from_pretrained on AutoModel.from_pretrained(base_model_name_or_path,
        revision) from the adapter's own config.
    check_hf_clients.py make-peft ADAPTER_DIR TEXTS_JSONL
        makes a LoRA adapter with PEFT itself (all-MiniLM-L6-v2, r = 4, lora_alpha = 8 on
        query/value, lora_B drawn from torch seed 0 so it is not zero), saves it, and writes the
        PeftModel's mean-pooled embeddings of the texts in TEXTS_JSONL (`lrs predict` output)
        to TEXTS_JSONL.peft.jsonl, for `lrs import peft` to reproduce.

Scores: with head.safetensors in the export, sigmoid(pooled . weight + bias) against lrs's
score. Prints one line per comparison; exits 1 when a max |diff| exceeds --tol.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file


def rows_of(path):
    return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]


def mean_pooled(model, tok, texts):
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
    return ((out * m).sum(1) / m.sum(1)).double().numpy()


def compare(label, got, want, tol, results):
    d = float(np.abs(np.asarray(got, dtype=np.float64) - np.asarray(want, dtype=np.float64)).max())
    print(f"{label}: max |diff| {d:.3e}")
    results.append(d <= tol)


def scores(export_dir, pooled):
    head = Path(export_dir) / "head.safetensors"
    if not head.is_file():
        return None
    h = {k: v.astype(np.float64) for k, v in load_file(str(head)).items()}
    return 1.0 / (1.0 + np.exp(-(pooled @ h["weight"][0] + h["bias"][0])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["merged", "peft", "make-peft"])
    ap.add_argument("export")
    ap.add_argument("predictions")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    rows = rows_of(args.predictions)
    texts = [r["text"] for r in rows]
    emb = np.array([r["embedding"] for r in rows], dtype=np.float64)
    lrs_scores = np.array([r["score"] for r in rows], dtype=np.float64)
    results = []
    from transformers import AutoModel, AutoTokenizer

    if args.kind == "make-peft":
        from peft import LoraConfig, get_peft_model

        base_id = "sentence-transformers/all-MiniLM-L6-v2"
        tok = AutoTokenizer.from_pretrained(base_id)
        torch.manual_seed(0)
        cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False)
        model = get_peft_model(AutoModel.from_pretrained(base_id), cfg).eval()
        model.save_pretrained(args.export)
        pooled = mean_pooled(model, tok, texts)
        with model.disable_adapter():
            base = mean_pooled(model, tok, texts)
        print(f"the adapter moves the base model's embeddings by max |diff| {np.abs(pooled - base).max():.3e}")
        with open(args.predictions + ".peft.jsonl", "w") as f:
            for t, e in zip(texts, pooled):
                f.write(json.dumps({"text": t, "embedding": [float(v) for v in e]}) + "\n")
        print(f"PEFT adapter saved to {args.export}: r = 4, lora_alpha = 8, query/value")
        return
    if args.kind == "merged":
        tok = AutoTokenizer.from_pretrained(args.export)
        model = AutoModel.from_pretrained(args.export).eval()
        pooled = mean_pooled(model, tok, texts)
        compare("transformers AutoModel vs lrs predict, embeddings", pooled, emb, args.tol, results)
        s = scores(args.export, pooled)
        if s is not None:
            compare("transformers AutoModel + head.safetensors vs lrs predict, scores", s, lrs_scores, args.tol, results)
        if (Path(args.export) / "modules.json").is_file():
            from sentence_transformers import SentenceTransformer

            st = SentenceTransformer(args.export, device="cpu")
            got = st.encode(texts, convert_to_numpy=True, batch_size=len(texts)).astype(np.float64)
            normalizes = any("Normalize" in m.get("type", "") for m in
                             json.loads((Path(args.export) / "modules.json").read_text()))
            want = emb / np.linalg.norm(emb, axis=1, keepdims=True) if normalizes else emb
            what = "L2-normalised embeddings" if normalizes else "embeddings"
            compare(f"SentenceTransformer vs lrs predict, {what}", got, want, args.tol, results)
    else:
        from peft import PeftModel

        cfg = json.loads((Path(args.export) / "adapter_config.json").read_text())
        base_id, rev = cfg["base_model_name_or_path"], cfg.get("revision")
        print(f"adapter: r = {cfg['r']}, {len(cfg['target_modules'])} modules, "
              f"rank_pattern {cfg.get('rank_pattern') or {}}")
        tok = AutoTokenizer.from_pretrained(base_id, revision=rev)
        base = AutoModel.from_pretrained(base_id, revision=rev)
        model = PeftModel.from_pretrained(base, args.export).eval()
        pooled = mean_pooled(model, tok, texts)
        compare("PeftModel vs lrs predict, embeddings", pooled, emb, args.tol, results)
        s = scores(args.export, pooled)
        if s is not None:
            compare("PeftModel + head.safetensors vs lrs predict, scores", s, lrs_scores, args.tol, results)
    if not all(results):
        print(f"FAIL: a difference exceeds {args.tol}")
        sys.exit(1)


if __name__ == "__main__":
    main()
