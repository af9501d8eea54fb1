"""How much per-user AUC can a user's own m ratings add on MovieLens-100k? An estimate outside
the neural model, on the protocol of docs/results.md (its own seeded sample of the m ratings).

Per user: ratings in time order; the latest 20 % (at least one) are test rows; m training
ratings are drawn uniformly from the rest; label = rating >= 4; users whose test rows hold both
labels are scored (mean per-user ROC AUC).

- "item rate": a global score, each movie's smoothed share of positive training ratings over
  all *other* users (leave-this-user-out, prior 5 ratings at the overall rate). No personal part.
- "item rate + genres": per user, a ridge logistic regression on the movie's 19 genre flags,
  its release year and an intercept, with the item rate's logit as a fixed offset. The ridge
  weight is chosen once for all users on validation rows (each user's latest 25 % of its m
  ratings, fitted on the rest), then every user is fitted on all m ratings.

Test rows are read only for the printed test AUC. Usage:
    python movielens_personal_signal.py DATA_DIR --shots 20 --seed 0
DATA_DIR holds ml-100k.inter and ml-100k.item (scripts/seed-movielens.sh writes them).
"""

import argparse
import collections
import json

import numpy as np

LAMBDAS = [1.0, 3.0, 10.0, 30.0, 100.0]


def load(data_dir):
    rows = collections.defaultdict(list)
    with open(f"{data_dir}/ml-100k.inter") as f:
        next(f)
        for line in f:
            user, item, rating, ts = line.rstrip("\n").split("\t")
            rows[user].append((float(ts), item, float(rating) >= 4))
    items = {}
    with open(f"{data_dir}/ml-100k.item") as f:
        next(f)
        for line in f:
            p = line.rstrip("\n").split("\t")
            items[p[0]] = (p[3].split() if len(p) > 3 else [], p[2])
    return rows, items


def features(items):
    genres = sorted({g for gs, _ in items.values() for g in gs})
    index = {g: i for i, g in enumerate(genres)}
    out = {}
    for item, (gs, year) in items.items():
        v = np.zeros(len(genres) + 2)
        for g in gs:
            v[index[g]] = 1.0
        v[-2] = (int(year) - 1990) / 10 if year.isdigit() else 0.0
        v[-1] = 1.0
        out[item] = v
    return out


def auc(scores, labels):
    s, y = np.asarray(scores), np.asarray(labels, bool)
    if y.all() or not y.any():
        return None
    pos, neg = s[y][:, None], s[~y][None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def split_users(rows, shots, seed):
    """Per user (in id order): (m training ratings drawn from all but the latest 20 %, in time
    order; the latest 20 %, at least one, as test ratings). Each rating is (time, item, label)."""
    rng = np.random.default_rng(seed)
    splits = {}
    for user in sorted(rows, key=int):
        r = sorted(rows[user])
        n_test = max(1, int(np.ceil(0.2 * len(r))))
        rest, test = r[: len(r) - n_test], r[len(r) - n_test :]
        pick = rng.choice(len(rest), size=min(shots, len(rest)), replace=False)
        splits[user] = (sorted(rest[j] for j in pick), test)
    return splits


def ridge_logistic(x, y, offset, lam, iters=25):
    w = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(offset + x @ w)))
        grad = x.T @ (p - y) + lam * w
        hess = x.T @ (x * (p * (1 - p))[:, None]) + lam * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return w


def protocol():
    """The command line (DATA_DIR --shots M --seed S), the ratings and movies it names, and
    the split of every user: (args, rows, items, splits)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("--shots", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rows, items = load(a.data_dir)
    return a, rows, items, split_users(rows, a.shots, a.seed)


def main():
    a, rows, items, splits = protocol()
    feat = features(items)
    pos, cnt = collections.Counter(), collections.Counter()
    for train, _ in splits.values():
        for _, item, y in train:
            pos[item] += y
            cnt[item] += 1
    base = sum(pos.values()) / sum(cnt.values())

    def item_logit(item, own):
        p = pos[item] - sum(y for _, i, y in own if i == item)
        c = cnt[item] - sum(1 for _, i, _ in own if i == item)
        rate = (p + 5 * base) / (c + 5)
        return np.log(rate / (1 - rate))

    scored = [u for u, (_, test) in splits.items() if len({y for *_, y in test}) == 2]
    data = {}
    for u in scored:
        train, test = splits[u]
        data[u] = tuple(
            (np.array([feat[i] for _, i, _ in rs]), np.array([y for *_, y in rs], float),
             np.array([item_logit(i, train) for _, i, _ in rs]))
            for rs in (train, test)
        )
    validation = {}
    for lam in LAMBDAS:
        aucs = []
        for (x, y, off), _ in data.values():
            fit = len(y) - int(np.ceil(0.25 * len(y)))
            w = ridge_logistic(x[:fit], y[:fit], off[:fit], lam)
            v = auc(off[fit:] + x[fit:] @ w, y[fit:])
            if v is not None:
                aucs.append(v)
        validation[lam] = float(np.mean(aucs))
    lam = max(validation, key=validation.get)
    rate_auc, genre_auc = [], []
    for (x, y, off), (xt, yt, offt) in data.values():
        rate_auc.append(auc(offt, yt))
        w = ridge_logistic(x, y, off, lam)
        genre_auc.append(auc(offt + xt @ w, yt))
    print(json.dumps({
        "shots": a.shots, "seed": a.seed, "users": len(data),
        "item_rate_auc": round(float(np.mean(rate_auc)), 4),
        "item_rate_plus_genres_auc": round(float(np.mean(genre_auc)), 4),
        "ridge": lam, "validation_auc_by_ridge": {str(k): round(v, 4) for k, v in validation.items()},
    }))


if __name__ == "__main__":
    main()
