"""Optimizer regimes of the Lemma 1 memory under Zipf data (talk `paper/talk_associative_memories.md`,
"Scaling laws with optimization algorithms" and "Optimization with imbalance and small capacity";
Cabannes, Simsek, Bietti 2024).

Loss (Lemma 1, eq. (4)): L(W) = sum_z p(z) l(f(z), W_U W w_E(z)), cross-entropy, z ~ p Zipf on [N],
f injective (M = N outputs). Every iterate of gradient descent from W = 0 stays in the span of
the outer products, W = W_U^T A W_E^T (eq. (6)), so the algorithms run in token space on the
(M, N) coefficient matrix A with the Gram matrices G_U = W_U W_U^T (M, M), G_E = W_E^T W_E (N, N):

    logits = G_U A G_E (M, N),   A <- A - eta D,   D[k, z] = p(z) (softmax_k(logits[:, z]) - 1{k = f(z)})

(population gradient descent; SGD replaces p by the sampled tokens). The memory scheme of an
iterate is q(z) = A[f(z), z] - mean_{k != f(z)} A[k, z], the weight of the association (z, f(z)).
"""

from __future__ import annotations

import math

import numpy as np

from popgrad.errors import PopgradError, positive_float, positive_int


def embeddings(kind: str, N: int, d: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(W_U (N, d) rows u_k, W_E (d, N) columns e_z): 'orthonormal' (identity, d = N) or 'gaussian' (N(0, I/d))."""
    N = positive_int("N", N)
    if kind == "orthonormal":
        return np.eye(N), np.eye(N)
    if kind != "gaussian":
        raise PopgradError(f"embeddings must be 'orthonormal' or 'gaussian', got {kind!r}")
    d = positive_int("d", d)
    rng = np.random.default_rng(positive_int("seed", seed, minimum=0))
    W_E = rng.standard_normal((d, N)) / math.sqrt(d)
    W_U = rng.standard_normal((N, d)) / math.sqrt(d)
    return W_U, W_E


def gram_matrices(kind: str, N: int, d: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(G_U, G_E) = (W_U W_U^T, W_E^T W_E), each (N, N), of `embeddings(kind, N, d, seed)`."""
    W_U, W_E = embeddings(kind, N, d, seed)
    return W_U @ W_U.T, W_E.T @ W_E


def _softmax_cols(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=0, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=0, keepdims=True)


def scheme_of(A: np.ndarray) -> np.ndarray:
    """q(z) = A[f(z), z] - mean_{k != f(z)} A[k, z] for f = id: (N,)."""
    M = A.shape[0]
    diag = np.diag(A)
    return diag - (A.sum(axis=0) - diag) / (M - 1)


def population_gd(G_U: np.ndarray, G_E: np.ndarray, p: np.ndarray, eta: float, steps: int,
                  record: bool = True) -> dict:
    """Lemma 1, eq. (6) in token space: `steps` population gradient steps from A = 0 (f = id).

    Returns A (M, N) and, with `record`, per step t = 0..steps: loss, accuracy (fraction of tokens
    whose argmax is f(z); ties are misses), weighted accuracy (under p) and margins (steps + 1, N)."""
    eta = positive_float("eta", eta)
    steps = positive_int("steps", steps, minimum=0)
    N = p.size
    A = np.zeros((N, N))
    idx = np.arange(N)
    loss, acc, wacc, margins = [], [], [], []
    for t in range(steps + 1):
        logits = G_U @ A @ G_E                                         # (M, N)
        if record or t == steps:
            target = logits[idx, idx]
            others = logits.copy()
            others[idx, idx] = -np.inf
            best = others.max(axis=0)
            hit = target > best
            top = np.maximum(target, best)
            lse = top + np.log(np.exp(others - top).sum(axis=0) + np.exp(target - top))
            loss.append(float(p @ (lse - target)))
            acc.append(float(hit.mean()))
            wacc.append(float(p @ hit))
            margins.append(target - best)
        if t == steps:
            break
        S = _softmax_cols(logits)
        D = S * p[None, :]
        D[idx, idx] = -p * (S.sum(axis=0) - S[idx, idx])                 # p (softmax_f - 1) without cancellation
        A -= eta * D
    return {"A": A, "loss": np.array(loss), "accuracy": np.array(acc), "weighted_accuracy": np.array(wacc),
            "margins": np.array(margins)}


def large_batch_step(p: np.ndarray, eta: float, batch: int, seed: int = 0) -> np.ndarray:
    """One SGD step from A = 0 on a batch of `batch` tokens drawn from p: A = -eta D_batch, D_batch the token
    statistic of the batch's empirical distribution (softmax at A = 0 is uniform). Returns A (N, N)."""
    rng = np.random.default_rng(positive_int("seed", seed, minimum=0))
    N = p.size
    phat = rng.multinomial(positive_int("batch", batch), p) / batch
    D = np.full((N, N), 1.0 / N) * phat[None, :]
    D[np.arange(N), np.arange(N)] -= phat
    return -positive_float("eta", eta) * D


def sgd_batch_one(G_U: np.ndarray, G_E: np.ndarray, p: np.ndarray, eta: float, steps: int,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """SGD with batch size one from A = 0: z_t ~ p, A[:, z_t] -= eta (softmax(logits[:, z_t]) - e_{z_t}).
    Returns (A (N, N), counts (N,) of the tokens drawn). Sequential by nature: one token per step."""
    rng = np.random.default_rng(positive_int("seed", seed, minimum=0))
    eta = positive_float("eta", eta)
    N = p.size
    zs = rng.choice(N, size=positive_int("steps", steps), p=p)
    A = np.zeros((N, N))
    for z in zs:
        logit = G_U @ (A @ G_E[:, z])                                  # (M,)
        g = np.exp(logit - logit.max())
        g /= g.sum()
        g[z] = -(g.sum() - g[z])                                       # softmax_z - 1 without cancellation
        A[:, z] -= eta * g
    return A, np.bincount(zs, minlength=N)


def margin_recursion(p: np.ndarray, eta: float, steps: int, M: int) -> np.ndarray:
    """Orthonormal embeddings: each token's margin m = logit(f(z)) - logit(other) obeys
    m <- m + eta p(z) M e^-m / (1 + (M - 1) e^-m) (the other M - 1 logits stay equal). (steps + 1, N)."""
    m = np.zeros_like(p)
    out = [m.copy()]
    for _ in range(positive_int("steps", steps, minimum=0)):
        x = np.exp(-m)
        m = m + eta * p * M * x / (1 + (M - 1) * x)
        out.append(m.copy())
    return np.array(out)


def sign_changes(x: np.ndarray) -> int:
    """Number of sign changes of the increments x[t+1] - x[t] (zero increments skipped)."""
    s = np.sign(np.diff(x))
    s = s[s != 0]
    return int(np.sum(s[1:] != s[:-1]))


def first_reach(acc: np.ndarray, level: float = 1.0) -> float:
    """First step t at which acc[t] >= level (inf if never)."""
    hit = np.flatnonzero(acc >= level)
    return float(hit[0]) if hit.size else math.inf
