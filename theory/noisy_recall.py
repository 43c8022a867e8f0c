"""Noisy in-context recall (model E, SPEC §7): population gradients at initialization, exactly.

The one-layer model of the gradient analysis (uniform attention at initialization, as in
App. B.3.1), evaluated at the in-context trigger positions i of model E (z_i = q, q seen
before, i <= T-2; target y_i = z_{i+1}):

    xi_i = W_U ( W_F w_E(z_i) + W_O^2 W_V^2 W_E xbar_i ),   xbar_i = (1/(i+1)) sum_{s<=i} e_{z_s}   (V,)
    L    = E[ sum_{i in I} l(y_i, xi_i) ] / E[|I|]                    (V = N + 1 tokens, noise = N)

At W_F = W_O^2 = 0 every logit is 0 and p_hat = 1/V, so (token coordinates, rows = outputs k,
columns = inputs j)

    -grad_{W_F} L(0)   = W_U^T G_F W_E^T,          G_F[k, j] = E_I[(1{y=k} - 1/V) 1{z_i=j}]
    -grad_{W_O^2} L(0) = W_U^T G_O W_E^T W_V2^T,   G_O[k, j] = E_I[(1{y=k} - 1/V) xbar_i[j]]

with E_I the position-weighted expectation E[sum_{i in I} .] / E|I|. Only column q of G_F is
non-zero and, since y is ybar w.p. 1 - eps and the noise token w.p. eps whatever the past,
G_F[:, q] = (1 - eps) pi_I + eps e_noise - 1/V (pi_I = the position-weighted law of ybar):
the q -> noise entry is eps - 1/V exactly, for every N, T, pi_u, pi_b (`ff_noise_entry`).

The engine (`token_gradients`) is a forward-backward pass over the chain of states
(hidden token h, shown as noise e, q seen before f), 4N states, one pass per ybar: no
enumeration, float64. Its independent side is `NoisyRecallModel.enumerate` (tiny N, T).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from popgrad.data import NoisyRecallModel
from popgrad.errors import PopgradError


@dataclass(frozen=True)
class TokenGradients:
    """Population statistics of model E at initialization (float64, token coordinates)."""

    G_F: np.ndarray        # (V, V) [k, j]: -grad of W_F in token coordinates
    G_O: np.ndarray        # (V, V) [k, j]: -grad of W_O^2 in token coordinates
    pi_I: np.ndarray       # (N,) position-weighted law of ybar at in-context trigger positions (0 off the outputs)
    pairs: float           # E|I|: expected in-context trigger positions per sequence


def _check(model):
    if not isinstance(model, NoisyRecallModel):
        raise PopgradError(f"model must be a NoisyRecallModel (model E), got {type(model).__name__}")
    return model


def chain_states(model: NoisyRecallModel):
    """States s = h + N e + 2N f of the augmented chain: (visible token (4N,), in-context (4N,) bool)."""
    N = model.N
    h = np.tile(np.arange(N), 4)
    e = np.tile(np.repeat([0, 1], N), 2)
    f = np.repeat([0, 1], 2 * N)
    visible = np.where(e == 1, N, h)
    return visible, (visible == model.q) & (f == 1)


def transition(model: NoisyRecallModel, ybar: int) -> np.ndarray:
    """(4N, 4N) transition of the augmented chain given ybar (SPEC §7 with model E's poisoning)."""
    N, q, eps = model.N, model.q, model.eps
    visible, _ = chain_states(model)
    M = np.zeros((4 * N, 4 * N))
    for s in range(4 * N):
        h, f = s % N, s // (2 * N)
        f2 = 1 if (f == 1 or visible[s] == q) else 0
        base = 2 * N * f2
        if h != q:
            M[s, base:base + N] = model.pi_b[h]                       # e' = 0
        else:
            M[s, base + ybar] += 1 - eps                              # shown as ybar
            M[s, base + N + ybar] += eps                              # shown as noise
    return M


def _per_ybar(model: NoisyRecallModel, ybar: int):
    """(E|I| given ybar, B (V,)): B[j] = sum_i 1/(i+1) sum_{s<=i} P(z_s = j, i in I | ybar)."""
    N, T = model.N, model.T
    visible, ctx = chain_states(model)
    M = transition(model, ybar)
    alpha = np.zeros((T, 4 * N))                                      # forward marginals
    alpha[0, :N] = model.pi_u
    for i in range(1, T):
        alpha[i] = alpha[i - 1] @ M
    c = ctx.astype(float)
    R = np.zeros(4 * N)                                               # sum_{i>=s} 1/(i+1) P(i in I | state_s)
    B = np.zeros(N + 1)
    for s in range(T - 1, -1, -1):
        R = (c / (s + 1) if s <= T - 2 else np.zeros(4 * N)) + (M @ R if s < T - 1 else 0.0)
        np.add.at(B, visible, alpha[s] * R)
    pairs = float(sum(alpha[i] @ c for i in range(T - 1)))
    return pairs, B


def token_gradients(model: NoisyRecallModel) -> TokenGradients:
    """G_F and G_O (module docstring) by the exact forward-backward engine, float64."""
    model = _check(model)
    N, V, eps = model.N, model.N + 1, model.eps
    G_F, G_O = np.zeros((V, V)), np.zeros((V, V))
    per = np.zeros(N)
    outs = model.outputs
    for y in outs:
        pairs, B = _per_ybar(model, y)
        p = np.full(V, -1.0 / V)
        p[y] += 1 - eps
        p[N] += eps                                                   # (1{y=k} law) - 1/V
        per[y] = pairs / outs.size
        G_F[:, model.q] += per[y] * p
        G_O += np.outer(p, B) / outs.size
    total = per.sum()
    if total <= 0:
        raise PopgradError(f"model E with N={N}, T={model.T} has no in-context trigger position")
    return TokenGradients(G_F / total, G_O / total, per / total, total)


def ff_noise_entry(eps: float, N: int) -> float:
    """Closed form: G_F[noise, q] = eps - 1/(N+1) (any T, pi_u, pi_b)."""
    return float(eps) - 1.0 / (N + 1)


def ff_column_closed_form(model: NoisyRecallModel, pi_I: np.ndarray) -> np.ndarray:
    """Closed form of G_F[:, q] given pi_I: (1 - eps) pi_I on [N], eps on noise, minus 1/V (V,)."""
    col = np.append((1 - model.eps) * np.asarray(pi_I, dtype=float), model.eps)
    return col - 1.0 / (model.N + 1)


def ff_gradient(model: NoisyRecallModel, emb, stats: TokenGradients | None = None) -> torch.Tensor:
    """-grad_{W_F} L(0) = W_U^T G_F W_E^T (d, d), emb with V = N + 1 tokens (float64)."""
    g = token_gradients(model) if stats is None else stats
    G = torch.as_tensor(g.G_F, dtype=emb.W_E.dtype, device=emb.W_E.device)
    return emb.W_U.T @ G @ emb.W_E.T


def wo2_gradient(model: NoisyRecallModel, emb, stats: TokenGradients | None = None) -> torch.Tensor:
    """-grad_{W_O^2} L(0) = W_U^T G_O W_E^T W_V2^T (d, d) (eq. (15)'s form with model E's pairs)."""
    g = token_gradients(model) if stats is None else stats
    G = torch.as_tensor(g.G_O, dtype=emb.W_E.dtype, device=emb.W_E.device)
    return emb.W_U.T @ G @ emb.W_E.T @ emb.W_V2.T


def signals(model: NoisyRecallModel, stats: TokenGradients | None = None) -> dict:
    """The two one-step signals in token coordinates.

    ff_margin: G_F[noise, q] - max_{k in [N]} G_F[k, q] (q -> noise beats every in-vocabulary token);
    wo2_margin: mean over outputs k of G_O[k, k] - max_{j != k} G_O[k, j] (y -> y beats every other
    input token, including the noise token); wo2_diag: mean_k G_O[k, k] - mean over other outputs j of G_O[k, j].
    """
    g = token_gradients(model) if stats is None else stats
    N, q = model.N, model.q
    col = g.G_F[:, q]
    ff = col[N] - col[:N].max()
    ks = model.outputs
    O = g.G_O[ks]                                                     # rows: outputs k, columns j in [V]
    diag = O[np.arange(ks.size), ks]
    off = O.copy()
    off[np.arange(ks.size), ks] = -np.inf
    margin = float(np.mean(diag - off.max(1)))
    offN = O[:, ks].copy()
    np.fill_diagonal(offN, 0.0)
    dmean = float(np.mean(diag - offN.sum(1) / max(ks.size - 1, 1)))
    return {"ff_margin": float(ff), "ff_noise_entry": float(col[N]), "wo2_margin": margin, "wo2_diag": dmean,
            "pairs": g.pairs}
