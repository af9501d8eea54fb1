#!/usr/bin/env python3
"""A straightforward NumPy AMHT-LRS, the yardstick of scripts/bench-linear-vs-numpy.sh.

Method-of-moments init; per round, every task runs hard-thresholding pursuit with X_i U
projected out (least squares on each support) and least squares for w_i; then U is refitted
by dense least squares over all tasks (normal equations Σ (w wᵀ) ⊗ X_iᵀX_i) and
re-orthonormalised by QR. Stops when every task fits to 1e-9 of its ‖y_i‖ (or Θ stops moving).
Usage: amht_lrs_numpy.py DATA.safetensors [RANK SPARSITY]; prints one JSON line.
"""
import json, struct, sys, time
import numpy as np


def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0] : 8 + n + v["data_offsets"][1]],
                             dtype="<f8").reshape(v["shape"])
            for k, v in header.items() if k != "__metadata__"}


def htp(A, z, b, k, eta, steps=20):
    support = np.flatnonzero(b)
    for _ in range(steps):
        c = b - eta * (A.T @ (A @ b - z))
        new = np.sort(np.argpartition(-np.abs(c), k - 1)[:k])
        b = np.zeros_like(b)
        b[new] = np.linalg.lstsq(A[:, new], z, rcond=None)[0]
        if np.array_equal(new, support):
            break
        support = new
    return b


def main(path, r=5, k=5, max_rounds=100, tol=1e-12, accept=1e-9):
    start = time.time()
    f = load(path)
    X, Y = f["x"], f["y"]
    t, m, d = X.shape
    xs = (X * Y[:, :, None]).reshape(-1, d)
    U = np.linalg.eigh(xs.T @ xs / (t * m))[1][:, ::-1][:, :r]
    G = np.einsum("tip,tiq->tpq", X, X, optimize=True)
    W, B, theta_prev = np.zeros((t, r)), np.zeros((t, d)), np.zeros((t, d))
    for rounds in range(1, max_rounds + 1):
        fits = 0
        for i in range(t):
            C = X[i] @ U
            Q = np.linalg.qr(C)[0]
            A, z = X[i] - Q @ (Q.T @ X[i]), Y[i] - Q @ (Q.T @ Y[i])
            B[i] = htp(A, z, B[i], k, 1.0 / m)
            rest = Y[i] - X[i] @ B[i]
            W[i] = np.linalg.lstsq(C, rest, rcond=None)[0]
            fits += np.linalg.norm(rest - C @ W[i]) <= accept * np.linalg.norm(Y[i])
        R = Y - np.einsum("tmd,td->tm", X, B, optimize=True)
        H = np.einsum("ta,tb,tpq->apbq", W, W, G, optimize=True).reshape(r * d, r * d)
        rhs = np.einsum("tmd,tm,ta->ad", X, R, W, optimize=True).reshape(-1)
        Q, Rm = np.linalg.qr(np.linalg.solve(H, rhs).reshape(r, d).T)
        U, W = Q, W @ Rm.T
        theta = W @ U.T + B
        change = np.linalg.norm(theta - theta_prev) / np.linalg.norm(theta)
        theta_prev = theta
        if fits == t or change < tol:
            break
    out = {"rounds": rounds, "seconds": time.time() - start}
    if "u_star" in f:
        truth = f["w_star"] @ f["u_star"].T + f["b_star"]
        out["theta_error"] = float(np.linalg.norm(theta - truth) / np.linalg.norm(truth))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], *map(int, sys.argv[2:4]))
