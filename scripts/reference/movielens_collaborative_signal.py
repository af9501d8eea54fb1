"""Does what other users rated add per-user AUC on MovieLens-100k? The collaborative estimate
beside movielens_personal_signal.py, on the same protocol and draws (its split_users).

Two logistic models trained on every user's m training ratings (943 users), full-batch Adam:

- "item bias": logit = c + b_item, an L2 penalty lam_b on b. No personal part.
- "matrix factorization": logit = c + b_item + p_userᵀ q_item with rank-r user and item factors,
  an L2 penalty lam on p and q (the classic collaborative-filtering model; the user's factor p
  is its personal part, learned jointly with every other user's).
- "item bias + features": logit = c + b_item + x_itemᵀ beta, x the movie's genre flags and
  release year (movielens_personal_signal.features), an L2 penalty lam_x on beta. No personal
  part: a global model that both memorises each movie and reads what a title's text says.

Hyperparameters (lam_b; then r and lam with that lam_b; lam_b and lam_x together) are chosen on validation rows: each
user's latest 25 % of its m ratings, the models fitted on the rest of every user's ratings.
The chosen settings are then fitted on all m ratings and scored on the test ratings of the
users whose test rows hold both labels (mean per-user ROC AUC). Test rows are read only for
the printed test AUC. Usage:
    python movielens_collaborative_signal.py DATA_DIR --shots 20 --seed 0
"""

import collections
import json

import numpy as np

from movielens_personal_signal import auc, features, protocol

BIAS_PENALTIES = [0.3, 1.0, 3.0, 10.0]
FACTOR_GRID = [(8, 3.0), (8, 10.0), (8, 30.0), (32, 10.0), (32, 30.0)]
FEATURE_PENALTIES = [1.0, 10.0, 100.0]
ITERS = 600


def fit(rows, users, items, rank, lam, lam_b, feats=None, lam_x=0.0, seed=1):
    """Full-batch Adam on the mean logistic loss plus (lam·|p,q|² + lam_b·|b|² + lam_x·|beta|²)
    / 2n; `feats` ([items, f], or None) enters the logit as x_itemᵀ beta, folded into the
    returned item scores b."""
    g = np.random.default_rng(seed)
    p = 0.1 * g.standard_normal((users, rank))
    q = 0.1 * g.standard_normal((items, rank))
    b, c = np.zeros(items), np.zeros(1)
    feats = np.zeros((items, 0)) if feats is None else feats
    beta = np.zeros(feats.shape[1])
    params = [p, q, b, c, beta]
    m1 = [np.zeros_like(x) for x in params]
    m2 = [np.zeros_like(x) for x in params]
    u, i, y = rows[:, 0].astype(int), rows[:, 1].astype(int), rows[:, 2]
    n = len(y)
    for t in range(1, ITERS + 1):
        z = c[0] + (b + feats @ beta)[i] + (p[u] * q[i]).sum(1)
        d = (1 / (1 + np.exp(-z)) - y) / n
        gp, gq, gb = np.zeros_like(p), np.zeros_like(q), np.zeros_like(b)
        np.add.at(gp, u, d[:, None] * q[i])
        np.add.at(gq, i, d[:, None] * p[u])
        np.add.at(gb, i, d)
        grads = [gp + lam * p / n, gq + lam * q / n, gb + lam_b * b / n, np.array([d.sum()]),
                 feats.T @ gb + lam_x * beta / n]
        for x, gx, m1x, m2x in zip(params, grads, m1, m2):
            adam_step(x, gx, m1x, m2x, t)
    return p, q, b + feats @ beta


def adam_step(x, g, m1, m2, t, lr=0.05):
    """Step `t` (from 1) of Adam (β₁ 0.9, β₂ 0.999, ε 1e-8) on array `x` with gradient `g`; `x`
    and its moments `m1`, `m2` are updated in place."""
    m1 *= 0.9
    m1 += 0.1 * g
    m2 *= 0.999
    m2 += 0.001 * g * g
    x -= lr * (m1 / (1 - 0.9**t)) / (np.sqrt(m2 / (1 - 0.999**t)) + 1e-8)


def mean_auc(model, rows, keep):
    """Mean per-user AUC of `model` on `rows` ((user, item, label) array) over users in `keep`."""
    p, q, b = model
    per = collections.defaultdict(lambda: ([], []))
    for u, i, y in rows:
        u, i = int(u), int(i)
        if u in keep:
            per[u][0].append(b[i] + p[u] @ q[i])
            per[u][1].append(y)
    scores = [auc(s, y) for s, y in per.values()]
    return float(np.mean([s for s in scores if s is not None]))


def main():
    a, _, items, splits = protocol()
    user_index = {u: k for k, u in enumerate(splits)}
    item_index = {it: k for k, it in enumerate(items)}

    def table(pairs):
        return np.array([(user_index[u], item_index[i], float(y)) for u, (_, i, y) in pairs])

    fit_rows, val_rows, train_rows, test_rows = [], [], [], []
    for u, (train, test) in splits.items():
        cut = len(train) - int(np.ceil(0.25 * len(train)))
        fit_rows += [(u, r) for r in train[:cut]]
        val_rows += [(u, r) for r in train[cut:]]
        train_rows += [(u, r) for r in train]
        test_rows += [(u, r) for r in test]
    fit_rows, val_rows = table(fit_rows), table(val_rows)
    train_rows, test_rows = table(train_rows), table(test_rows)
    everyone = set(user_index.values())
    scored = {user_index[u] for u, (_, t) in splits.items() if len({y for *_, y in t}) == 2}
    n_users, n_items = len(user_index), len(item_index)
    item_features = features(items)
    x = np.array([item_features[it] for it in items])

    val_bias = {lb: mean_auc(fit(fit_rows, n_users, n_items, 0, 0.0, lb), val_rows, everyone)
                for lb in BIAS_PENALTIES}
    lam_b = max(val_bias, key=val_bias.get)
    val_mf = {(r, lam): mean_auc(fit(fit_rows, n_users, n_items, r, lam, lam_b), val_rows, everyone)
              for r, lam in FACTOR_GRID}
    rank, lam = max(val_mf, key=val_mf.get)
    val_feat = {(lb, lx): mean_auc(fit(fit_rows, n_users, n_items, 0, 0.0, lb, x, lx), val_rows, everyone)
                for lb in BIAS_PENALTIES for lx in FEATURE_PENALTIES}
    lam_bf, lam_x = max(val_feat, key=val_feat.get)
    bias_auc = mean_auc(fit(train_rows, n_users, n_items, 0, 0.0, lam_b), test_rows, scored)
    feat_auc = mean_auc(fit(train_rows, n_users, n_items, 0, 0.0, lam_bf, x, lam_x), test_rows, scored)
    mf_auc = mean_auc(fit(train_rows, n_users, n_items, rank, lam, lam_b), test_rows, scored)
    print(json.dumps({
        "shots": a.shots, "seed": a.seed, "users": len(scored),
        "item_bias_auc": round(bias_auc, 4), "matrix_factorization_auc": round(mf_auc, 4),
        "item_bias_features_auc": round(feat_auc, 4),
        "lam_b": lam_b, "rank": rank, "lam": lam, "features_lam_b": lam_bf, "lam_x": lam_x,
        "validation_auc_item_bias": {str(k): round(v, 4) for k, v in val_bias.items()},
        "validation_auc_mf": {f"r{r}-lam{l}": round(v, 4) for (r, l), v in val_mf.items()},
        "validation_auc_features": {f"b{b}-x{l}": round(v, 4) for (b, l), v in val_feat.items()},
    }))


if __name__ == "__main__":
    main()
