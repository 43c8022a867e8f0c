"""Eq. (8) and eq. (10): the feed-forward memory of the global bigrams and its KL probe, in token space.

    W_F = sum_{i,j} l(j|i) w_U(j) w_E(i)^T,  l(j|i) = log pi_b(j|i), floored where pi_b(j|i) = 0    (8)
    d_KL(W_F, pi_b) = (1/N) sum_k KL(. , .) between sigma(W_U W_F w_E(k)) and pi_b(.|k)               (10)

Token space first: with W_E (d, N) and W_U (N, d), W_U W_F w_E(k) is row k of

    G_E l G_U,   G_E = W_E^T W_E,  G_U = W_U W_U^T  (N, N Gram matrices)

so the logits of every input token depend on the embeddings only through two Gram matrices.
With i.i.d. N(0, 1/d) entries, G = X^T X / d is Wishart(d, I/d) (drawn at any d by
`popgrad.numerics.feedforward.wishart_gram`). At orthonormal embeddings (the limit d -> infinity) G_E = G_U = I and the logits are l itself.

Eq. (10) as printed is KL(sigma || pi_b): infinite whenever some pi_b(j|k) = 0 (sigma > 0 on every j).
popgrad's probe (`popgrad.numerics.probes.kl_probe`, like the paper's public code) is the other
direction, KL(pi_b || sigma). Both are here (`direction`).
"""

from __future__ import annotations

import math

import torch

from popgrad.errors import PopgradError, choice

DIRECTIONS = ("pi_b||model", "model||pi_b")
DEFAULT_FLOOR = -12.0      # log 0 -> -12 (e^-12 = 6.1e-6, below the smallest non-zero pi_b(j|i) of tiny Shakespeare, 1.2e-5)


def floored_log(pi_b, floor: float = DEFAULT_FLOOR, drop_rows=()) -> torch.Tensor:
    """Eq. (8)'s coefficients l (N, N): l[i, j] = log pi_b(j|i), `floor` where pi_b(j|i) = 0.

    `drop_rows`: tokens i removed from the sum of (8) (the paper's remark for fixed triggers): l[i] = 0.
    """
    if not math.isfinite(floor) or floor > 0:
        raise PopgradError(f"floor must be a finite log-probability <= 0, got {floor}")
    pb = torch.as_tensor(pi_b, dtype=torch.float64)                       # (N, N) rows pi_b(.|i)
    ell = torch.where(pb > 0, torch.log(pb.clamp(min=1e-300)), torch.full_like(pb, floor))
    rows = torch.as_tensor(list(drop_rows), dtype=torch.int64)
    if rows.numel():
        ell[rows] = 0.0
    return ell


def eq8_matrix(W_E: torch.Tensor, W_U: torch.Tensor, ell: torch.Tensor) -> torch.Tensor:
    """Eq. (8): W_F = sum_{i,j} l[i, j] w_U(j) w_E(i)^T = W_U^T l^T W_E^T  (d, d); W_E (d, N), W_U (N, d)."""
    ell = ell.to(W_E)
    return W_U.T @ ell.T @ W_E.T


def eq8_logits(G_E: torch.Tensor, G_U: torch.Tensor, ell: torch.Tensor) -> torch.Tensor:
    """Eq. (8) in token space: row k of G_E l G_U (N, N) is W_U W_F w_E(k) (G_E = W_E^T W_E, G_U = W_U W_U^T)."""
    return G_E @ ell.to(G_E) @ G_U


def eq10_kl(logits: torch.Tensor, pi_b, direction: str = "pi_b||model") -> float:
    """Eq. (10): (1/N) sum_k KL between softmax(logits[k]) and pi_b(.|k); `direction` 'pi_b||model'
    (popgrad's probe, finite) or 'model||pi_b' (as printed: +inf when some pi_b(j|k) = 0)."""
    choice("direction", direction, DIRECTIONS)
    logq = torch.log_softmax(logits.double(), dim=-1)                      # (N, N) row k
    pb = torch.as_tensor(pi_b, dtype=torch.float64, device=logq.device)
    logp = torch.where(pb > 0, torch.log(pb.clamp(min=1e-300)), torch.full_like(pb, -math.inf))
    if direction == "pi_b||model":
        per = torch.where(pb > 0, pb * (logp - logq), torch.zeros_like(pb)).sum(1)
    else:
        per = (logq.exp() * (logq - logp)).sum(1)                          # +inf where pi_b = 0
    return float(per.mean())


def orthonormal_limit_kl(pi_b, floor: float = DEFAULT_FLOOR) -> float:
    """Eq. (10) of eq. (8) at orthonormal embeddings (d -> infinity), exactly: the logits are l, and
    KL(pi_b(.|k) || softmax(l[k])) = logsumexp(l[k]) = log(1 + z_k e^floor), z_k = #{j: pi_b(j|k) = 0}."""
    pb = torch.as_tensor(pi_b, dtype=torch.float64)
    zeros = (pb <= 0).sum(1).double()                                      # (N,) z_k
    return float(torch.log1p(zeros * math.exp(floor)).mean())


def uniform_kl(pi_b) -> float:
    """(1/N) sum_k KL(pi_b(.|k) || uniform) = log N - mean_k H(pi_b(.|k)): eq. (10) of W_F = 0."""
    pb = torch.as_tensor(pi_b, dtype=torch.float64)
    ent = -torch.where(pb > 0, pb * torch.log(pb.clamp(min=1e-300)), torch.zeros_like(pb)).sum(1)
    return float(math.log(pb.shape[0]) - ent.mean())


def kl_excess_constant(pi_b, floor: float = DEFAULT_FLOOR) -> float:
    """Eq. (10) of eq. (8) at N(0, 1/d) embeddings: the constant C of E KL(d) = KL(infinity) + C/d + O(d^-2).

    With G = I + Delta (Wishart(d, I/d): entries of Delta independent up to symmetry, variance 1/d off the
    diagonal and 2/d on it), the logits of row k are l_k + eps_k + O(1/d), eps_k = (Delta_E l)_k + (l Delta_U)_k:
    d Cov(eps_k)_{jj'} = sum_i (1 + [i = k]) l_ij l_ij' + [j = j'] sum_m l_km^2 + l_kj l_kj'. Expanding logsumexp
    to second order around q_k = softmax(l_k) (the first-order term has mean zero),
    C = (1/N) sum_k (1/2) tr((diag(q_k) - q_k q_k^T) d Cov(eps_k)).
    """
    ell = floored_log(pi_b, floor)                                         # (N, N)
    N = ell.shape[0]
    q = torch.softmax(ell, dim=1)                                          # (N, N) rows q_k
    total = 0.0
    for k in range(N):
        w = torch.ones(N, dtype=torch.float64)
        w[k] = 2.0
        cov = ell.T @ (w[:, None] * ell)                                   # (N, N) sum_i w_i l_ij l_ij'
        cov = cov + torch.eye(N, dtype=torch.float64) * (ell[k] ** 2).sum() + torch.outer(ell[k], ell[k])
        sigma = torch.diag(q[k]) - torch.outer(q[k], q[k])
        total += 0.5 * float((sigma * cov).sum())
    return total / N
