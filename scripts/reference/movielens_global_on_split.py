"""The global (nothing per user) reference models of movielens_collaborative_signal.py, fitted
and scored on exactly the split an lrs run uses: the JSON lines `lrs split` prints (task, part,
text, label, scored). Movies are told apart by their text, genres and year are read off it
(`"<title> (<year>) | <g1>, <g2>"`).

- "movie bias": logit = c + b_movie, an L2 penalty on b.
- "movie bias + genres and year": the same plus weights on the movie's genre flags and release
  year, an L2 penalty on those too.

Penalties are chosen on the split's validation rows (fitted on its train rows), then the model
is refitted on train + validation rows (the run's refit) and scored on the test rows of the
scored tasks: mean per-user ROC AUC. Test rows are read only for the printed test AUC. Usage:
    lrs split --config configs/movielens-minilm.toml --shots 20 > split.jsonl
    python movielens_global_on_split.py split.jsonl
"""

import json
import sys

import numpy as np

from movielens_collaborative_signal import BIAS_PENALTIES, FEATURE_PENALTIES, fit, mean_auc


def genres_and_year(text):
    """A movie text's genre names and release year (None when absent)."""
    head, _, tail = text.partition(" | ")
    genres = [g.strip() for g in tail.split(",") if g.strip()]
    year = head[-5:-1] if head.endswith(")") and head[-5:-1].isdigit() else None
    return genres, year


def main():
    rows = [json.loads(line) for line in open(sys.argv[1])]
    users = {u: k for k, u in enumerate(sorted({r["task"] for r in rows}))}
    movies = {t: k for k, t in enumerate(sorted({r["text"] for r in rows}))}
    names = sorted({g for t in movies for g in genres_and_year(t)[0]})
    x = np.zeros((len(movies), len(names) + 2))
    for text, k in movies.items():
        genres, year = genres_and_year(text)
        for g in genres:
            x[k, names.index(g)] = 1.0
        x[k, -2] = (int(year) - 1990) / 10 if year else 0.0
        x[k, -1] = 1.0

    def table(*parts):
        return np.array([(users[r["task"]], movies[r["text"]], r["label"])
                         for r in rows if r["part"] in parts])

    train, val, test = table("train"), table("validation"), table("test")
    refit = table("train", "validation")
    everyone = set(users.values())
    scored = {users[r["task"]] for r in rows if r["scored"]}
    n_users, n_movies = len(users), len(movies)

    val_bias = {lb: mean_auc(fit(train, n_users, n_movies, 0, 0.0, lb), val, everyone)
                for lb in BIAS_PENALTIES}
    lam_b = max(val_bias, key=val_bias.get)
    val_feat = {(lb, lx): mean_auc(fit(train, n_users, n_movies, 0, 0.0, lb, x, lx), val, everyone)
                for lb in BIAS_PENALTIES for lx in FEATURE_PENALTIES}
    lam_bf, lam_x = max(val_feat, key=val_feat.get)
    print(json.dumps({
        "users": len(users), "scored": len(scored), "movies": n_movies,
        "rows": {"train": len(train), "validation": len(val), "test": len(test)},
        "movie_bias": {"lam_b": lam_b, "validation_auc": round(val_bias[lam_b], 4),
                       "test_auc": round(mean_auc(fit(refit, n_users, n_movies, 0, 0.0, lam_b),
                                                  test, scored), 4)},
        "movie_bias_genres_year": {
            "lam_b": lam_bf, "lam_x": lam_x, "validation_auc": round(val_feat[(lam_bf, lam_x)], 4),
            "test_auc": round(mean_auc(fit(refit, n_users, n_movies, 0, 0.0, lam_bf, x, lam_x),
                                       test, scored), 4)},
    }))


if __name__ == "__main__":
    main()
