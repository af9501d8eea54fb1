"""Does a LoRA on the word embeddings lift a global text model on MovieLens-100k? A PyTorch +
PEFT probe on validation rows only, beside docs/results.md §How the defaults were chosen.

A bias per movie scores above every text model on this protocol (docs/results.md), so a text
model may lack a way to memorise a movie's popularity. A LoRA on `word_embeddings` gives each
token (titles are mostly unique token sequences) a trainable code. The probe trains PEFT's
global LoRA (r = 8, alpha = 8, no dropout) on `query` and `value` of every layer plus a linear
head on mean-pooled states, with or without `word_embeddings` among the targets, as `lrs
train --method global-lora` does: AdamW (weight decay 0.01), batches of 32 rows, dropout off.

Data: the split of movielens_personal_signal.py (its seeded m ratings per user); text
`"<title> (<year>) | <g1>, <g2>"`, label rating >= 4. Training rows: each user's earliest 75 %
of its m ratings; scored: the latest 25 % (validation rows), by mean per-user ROC AUC and mean
logistic loss after every epoch. With --movie-bias each epoch also fits a bias per movie on
top of the text model's logits (penalty chosen on the same validation rows) and scores that.
Test rows are never read. One JSON line per epoch. Usage:
    python movielens_peft_embedding_probe.py DATA_DIR MODEL_DIR --shots 20 --seed 0 \
        --targets query,value,word_embeddings --embedding-lr 1e-4 --epochs 5
"""

import argparse
import collections
import json
import time

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModel, AutoTokenizer

from movielens_collaborative_signal import adam_step
from movielens_personal_signal import auc, load, split_users


def texts(data_dir):
    """Movie id -> the example text lrs builds for it."""
    out = {}
    with open(f"{data_dir}/ml-100k.item") as f:
        next(f)
        for line in f:
            p = line.rstrip("\n").split("\t")
            genres = p[3].split() if len(p) > 3 else []
            out[p[0]] = f"{p[1]} ({p[2]}) | {', '.join(genres)}"
    return out


def movie_bias(fit_rows, z, lam, iters=300):
    """A bias per movie on top of fixed logits `z` (movie -> logit): full-batch Adam on the mean
    logistic loss of `fit_rows` plus lam·|b|² / 2n; returns movie -> logit + bias."""
    movies = sorted(z)
    index = {m: k for k, m in enumerate(movies)}
    i = np.array([index[m] for _, m, _ in fit_rows])
    y = np.array([r[2] for r in fit_rows])
    offset, n = np.array([z[m] for m in movies])[i], len(y)
    b, m1, m2 = np.zeros(len(movies)), np.zeros(len(movies)), np.zeros(len(movies))
    for t in range(1, iters + 1):
        d = (1 / (1 + np.exp(-(offset + b[i]))) - y) / n
        g = np.bincount(i, weights=d, minlength=len(b)) + lam * b / n
        adam_step(b, g, m1, m2, t)
    return {m: z[m] + b[index[m]] for m in movies}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("model_dir", help="all-MiniLM-L6-v2 checkpoint directory")
    ap.add_argument("--shots", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--targets", default="query,value")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--embedding-lr", type=float, default=0.0, help="0: --lr")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--logits", help="write every movie's logit after each epoch here (JSON lines)")
    ap.add_argument("--movie-bias", action="store_true",
                    help="after each epoch also fit a bias per movie on top of the text logits")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    if a.threads > 0:
        torch.set_num_threads(a.threads)

    rows, _ = load(a.data_dir)
    fit_rows, val_rows = [], []
    for user, (train, _) in split_users(rows, a.shots, a.seed).items():
        cut = len(train) - int(np.ceil(0.25 * len(train)))
        fit_rows += [(user, item, float(y)) for _, item, y in train[:cut]]
        val_rows += [(user, item, float(y)) for _, item, y in train[cut:]]

    tok = AutoTokenizer.from_pretrained(a.model_dir)
    ids = {k: tok(v, truncation=True, max_length=64)["input_ids"] for k, v in texts(a.data_dir).items()}
    lora = LoraConfig(r=8, lora_alpha=8, target_modules=a.targets.split(","), lora_dropout=0.0)
    model = get_peft_model(AutoModel.from_pretrained(a.model_dir), lora)
    model.eval()
    head = torch.nn.Linear(model.config.hidden_size, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in trained if "embedding" not in n] + list(head.parameters())}]
    embedding = [p for n, p in trained if "embedding" in n]
    if embedding:
        groups.append({"params": embedding, "lr": a.embedding_lr or a.lr})
    opt = torch.optim.AdamW(groups, lr=a.lr, weight_decay=0.01)

    def batch(items):
        seqs = [ids[i] for i in items]
        x = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
        m = torch.zeros(x.shape)
        for r, s in enumerate(seqs):
            x[r, : len(s)] = torch.tensor(s)
            m[r, : len(s)] = 1
        return x, m

    def logits(items):
        x, m = batch(items)
        h = model(input_ids=x, attention_mask=m).last_hidden_state
        return head((h * m[..., None]).sum(1) / m.sum(1, keepdim=True)).squeeze(-1)

    def movie_logits():
        with torch.no_grad():
            movies = sorted(ids)
            z = {}
            for k in range(0, len(movies), 128):
                chunk = movies[k : k + 128]
                z.update(zip(chunk, logits(chunk).tolist()))
        return z

    def validate(z):
        per, losses = collections.defaultdict(lambda: ([], [])), []
        for user, item, y in val_rows:
            per[user][0].append(z[item])
            per[user][1].append(y)
            losses.append(max(z[item], 0) - z[item] * y + np.log1p(np.exp(-abs(z[item]))))
        aucs = [v for v in (auc(s, y) for s, y in per.values()) if v is not None]
        return float(np.mean(aucs)), float(np.mean(losses))

    rng, start = np.random.default_rng(a.seed), time.time()
    for epoch in range(1, a.epochs + 1):
        order = rng.permutation(len(fit_rows))
        for k in range(0, len(order), 32):
            rs = [fit_rows[j] for j in order[k : k + 32]]
            y = torch.tensor([r[2] for r in rs])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits([r[1] for r in rs]), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        z = movie_logits()
        if a.logits:
            with open(a.logits, "a") as f:
                f.write(json.dumps({"epoch": epoch, "logits": z}) + "\n")
        val_auc, val_loss = validate(z)
        line = {
            "targets": a.targets, "lr": a.lr, "embedding_lr": a.embedding_lr or a.lr,
            "shots": a.shots, "seed": a.seed, "epoch": epoch,
            "validation_auc": round(val_auc, 4), "validation_loss": round(val_loss, 4),
            "seconds": round(time.time() - start),
        }
        if a.movie_bias:
            # The penalty is chosen on the same validation rows it is scored on (four values).
            fits = {lam: validate(movie_bias(fit_rows, z, lam)) for lam in (0.3, 1.0, 3.0, 10.0)}
            lam = min(fits, key=lambda k: fits[k][1])
            line.update({"movie_bias_lam": lam, "movie_bias_validation_auc": round(fits[lam][0], 4),
                         "movie_bias_validation_loss": round(fits[lam][1], 4)})
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
