"""Example B.1 (Sec. 6 "An illustrative example"; App. B.1, eq. (11)-(12)): one gradient step ignores position noise.

Data (SPEC §2 B): x = w_E(y) + p_t with (y, t) ~ probs (N, T), uniform by default. One population
gradient step from W_0 = 0 with step size eta gives eq. (11); with uniform y and t independent of
y it simplifies to eq. (12). The readout w_U(k)^T W_1 (w_E(y) + p_t) is claimed to be
(eta/N) 1{k=y} + O(1/N^2) for near-orthonormal embeddings; in the exact orthonormal limit it is
(eta/N) (1{k=y} - 1/N) (`readout_orthonormal_limit`), so the O(1/N^2) is exactly -eta/N^2.
"""

from __future__ import annotations

import numpy as np
import torch

from popgrad.embeddings import Embeddings
from popgrad.errors import PopgradError, positive_float, positive_int, probability_table


def _check_emb(emb) -> Embeddings:
    if not isinstance(emb, Embeddings):
        raise PopgradError(f"emb must be popgrad.embeddings.Embeddings, got {type(emb).__name__}")
    return emb


def _probs(emb: Embeddings, probs) -> torch.Tensor:
    """(y, t) weights as an (N, T) tensor, uniform by default."""
    if probs is None:
        probs = np.full((emb.N, emb.T), 1.0 / (emb.N * emb.T))
    probs = probability_table("probs", probs, shape=(emb.N, emb.T))
    return torch.as_tensor(probs, dtype=emb.W_E.dtype, device=emb.W_E.device)


def class_means_b1(emb: Embeddings, probs=None) -> tuple[torch.Tensor, torch.Tensor]:
    """App. B.1: mu_k = E[x | y = k] (d, N) and mu_bar = E[x] (d,) for x = w_E(y) + p_t, in token space.

    mu_k = w_E(k) + sum_t p(t|y=k) p_t and mu_bar = sum_k p(y=k) w_E(k) + sum_t p(t) p_t.
    """
    emb = _check_emb(emb)
    pr = _probs(emb, probs)                 # (N, T)
    py, pt = pr.sum(dim=1), pr.sum(dim=0)   # (N,), (T,)
    if torch.any(py <= 0):
        raise PopgradError("probs must give every label y positive probability (mu_k = E[x|y=k] is undefined otherwise)")
    t_given_y = pr / py[:, None]            # (N, T)
    mu = emb.W_E + emb.P @ t_given_y.T      # (d, N)
    mu_bar = emb.W_E @ py + emb.P @ pt      # (d,)
    return mu, mu_bar


def one_step_W1_eq11(emb: Embeddings, eta: float, probs=None) -> torch.Tensor:
    """App. B.1, eq. (11): W_1 = (eta/N) sum_k w_U(k) (mu_k - mu_bar)^T, with mu_k, mu_bar under `probs`.

    This is the one-step memory -eta grad L(0) of Lemma 2 only when y is uniform (the paper's
    assumption); for other `probs` it is eq. (11) evaluated literally.
    """
    eta = positive_float("eta", eta)
    mu, mu_bar = class_means_b1(emb, probs)
    return (eta / emb.N) * emb.W_U.T @ (mu - mu_bar[:, None]).T  # (d, d)


def one_step_W1_eq12(emb: Embeddings, eta: float) -> torch.Tensor:
    """App. B.1, eq. (12): W_1 = (eta/N) sum_k w_U(k) (w_E(k) - w_bar_E)^T, w_bar_E = (1/N) sum_k w_E(k)."""
    emb = _check_emb(emb)
    eta = positive_float("eta", eta)
    centered = emb.W_E - emb.W_E.mean(dim=1, keepdim=True)  # (d, N)
    return (eta / emb.N) * emb.W_U.T @ centered.T            # (d, d)


def one_step_W1_lemma2(emb: Embeddings, eta: float, probs=None) -> torch.Tensor:
    """Lemma 2 at W = 0 on model B: W_1 = -eta grad L(0) = eta sum_k w_U(k) (p(y=k) mu_k - mu_bar/N)^T."""
    eta = positive_float("eta", eta)
    pr = _probs(_check_emb(emb), probs)
    mu, mu_bar = class_means_b1(emb, probs)
    return eta * emb.W_U.T @ (mu * pr.sum(dim=1)[None, :] - mu_bar[:, None] / emb.N).T


def readout(emb: Embeddings, W1: torch.Tensor) -> torch.Tensor:
    """App. B.1: the readout w_U(k)^T W_1 (w_E(y) + p_t) as a tensor (k, y, t) of shape (N, N, T)."""
    emb = _check_emb(emb)
    if not isinstance(W1, torch.Tensor) or W1.shape != (emb.d, emb.d):
        raise PopgradError(f"W1 must be a ({emb.d}, {emb.d}) tensor")
    tok = emb.W_U @ W1 @ emb.W_E  # (N_k, N_y)
    pos = emb.W_U @ W1 @ emb.P    # (N_k, T)
    return tok[:, :, None] + pos[:, None, :]


def readout_orthonormal_limit(N: int, T: int, eta: float) -> torch.Tensor:
    """App. B.1 in the orthonormal limit: w_U(k)^T W_1 (w_E(y) + p_t) = (eta/N) (1{k=y} - 1/N), (N, N, T)."""
    N, T, eta = positive_int("N", N), positive_int("T", T), positive_float("eta", eta)
    limit = (eta / N) * (torch.eye(N, dtype=torch.float64) - 1.0 / N)
    return limit[:, :, None].expand(N, N, T).clone()


def readout_paper(N: int, T: int, eta: float) -> torch.Tensor:
    """App. B.1, the paper's leading term (eta/N) 1{k=y}, (N, N, T) (the O(1/N^2) is dropped)."""
    N, T, eta = positive_int("N", N), positive_int("T", T), positive_float("eta", eta)
    return ((eta / N) * torch.eye(N, dtype=torch.float64))[:, :, None].expand(N, N, T).clone()


def argmax_accuracy(R: torch.Tensor) -> float:
    """App. B.1: fraction of (y, t) with y_hat = argmax_k R[k, y, t] equal to y (ties count as misses)."""
    top = R.max(dim=0).values                              # (N, T)
    N = R.shape[0]
    correct = R[torch.arange(N), torch.arange(N), :]       # (N, T): R[y, y, t]
    unique = (R == top[None]).sum(dim=0) == 1
    return float(((correct == top) & unique).double().mean())


def orthonormal_embeddings(d: int, N: int, T: int, seed: int = 0) -> Embeddings:
    """Embeddings whose w_E(k), w_U(k), p_t are all mutually orthonormal (needs d >= 2N + T): the d -> inf limit."""
    d, N, T = positive_int("d", d), positive_int("N", N), positive_int("T", T)
    if d < 2 * N + T:
        raise PopgradError(f"orthonormal embeddings need d >= 2N + T = {2 * N + T}, got d={d}")
    gen = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
    Q, _ = torch.linalg.qr(torch.randn(d, 2 * N + T, generator=gen, dtype=torch.float64))  # (d, 2N+T)
    eye = torch.eye(d, dtype=torch.float64)
    return Embeddings(W_E=Q[:, :N], W_U=Q[:, N:2 * N].T.contiguous(), P=Q[:, 2 * N:], W_V1=eye, W_O1=eye,
                      W_V2=eye, seed=seed)


def readout_deviation(emb: Embeddings, eta: float = 1.0) -> dict:
    """App. B.1, measured: the readout of eq. (12) against the paper's term and the orthonormal limit, in units of eta/N.

    Returns rms/max of (R - (eta/N)(1{k=y} - 1/N)) (finite-d noise), max |R - (eta/N) 1{k=y}| (what the
    paper's O(1/N^2) must absorb), and the argmax accuracy.
    """
    R = readout(emb, one_step_W1_eq12(emb, eta))
    unit = eta / emb.N
    noise = (R - readout_orthonormal_limit(emb.N, emb.T, eta).to(R)) / unit
    paper = (R - readout_paper(emb.N, emb.T, eta).to(R)) / unit
    return {"noise_rms": float(noise.pow(2).mean().sqrt()), "noise_max": float(noise.abs().max()),
            "paper_dev_max": float(paper.abs().max()), "accuracy": argmax_accuracy(R)}
