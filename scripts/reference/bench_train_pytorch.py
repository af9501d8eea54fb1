"""One shared-phase training step in PyTorch + PEFT, timed: the side that `lrs bench train
--pytorch` compares itself with.

The step is the one `lrs train` runs in its shared phase: a batch of texts through the BERT
encoder with LoRA (rank r, alpha = r, i.e. scale 1, no LoRA dropout) on the target modules,
mean pooling over real tokens, one linear head, the logistic loss, backward, and an AdamW step
on the LoRA factors and the head. Dropout is off (`model.eval()`), as in `lrs train` by
default; the base weights are frozen. Texts are tokenized once up front (as `lrs` does) and each
batch is padded to its longest row.

Input: a JSON file `{"texts": [...], "labels": [...]}` (the rows `lrs bench train` draws from).
Output: one JSON line with the seconds of the timed steps and rows per second.
"""

import argparse
import json
import random
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModel, AutoTokenizer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, help="checkpoint directory (config.json, ...)")
    p.add_argument("--rows", required=True, help="JSON file with texts and labels")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--targets", default="query,value")
    p.add_argument("--max-len", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args()

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    with open(a.rows) as f:
        rows = json.load(f)
    texts, labels = rows["texts"], rows["labels"]

    tok = AutoTokenizer.from_pretrained(a.model)
    encoded = tok(texts, truncation=True, max_length=a.max_len)["input_ids"]
    base = AutoModel.from_pretrained(a.model)
    lora = LoraConfig(
        r=a.rank,
        lora_alpha=a.rank,
        lora_dropout=0.0,
        target_modules=a.targets.split(","),
    )
    model = get_peft_model(base, lora)
    model.eval()  # dropout off, as in `lrs train`
    head = torch.nn.Linear(base.config.hidden_size, 1)
    params = [q for q in model.parameters() if q.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    order = list(range(len(encoded)))
    rng.shuffle(order)
    cursor = 0

    def step():
        nonlocal cursor
        if cursor + a.batch > len(order):
            rng.shuffle(order)
            cursor = 0
        idx = order[cursor : cursor + a.batch]
        cursor += a.batch
        longest = max(len(encoded[i]) for i in idx)
        ids = torch.zeros((len(idx), longest), dtype=torch.long)
        mask = torch.zeros((len(idx), longest), dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, : len(encoded[i])] = torch.tensor(encoded[i])
            mask[r, : len(encoded[i])] = 1
        y = torch.tensor([float(labels[i]) for i in idx])
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1)
        loss = loss_fn(head(pooled).squeeze(-1), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return longest

    for _ in range(a.warmup):
        step()
    start = time.perf_counter()
    tokens = 0
    for _ in range(a.steps):
        tokens += step() * a.batch
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "steps": a.steps,
                "batch": a.batch,
                "rows_per_s": a.steps * a.batch / seconds,
                "padded_tokens": tokens,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
