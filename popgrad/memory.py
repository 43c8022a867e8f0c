"""Associative memories (Sec. 4): the targets of eq. (7) and the recall probe (9), for every path.

A memory W is read as scores v_j'^T W u_i, with inputs u_i the columns of U (d, n) and outputs
v_j the columns of V (d, m); the association of input i is targets[i]. Key-query matrices are in
the eq. (7) convention (query^T W key: queries are outputs, keys are inputs).
"""

from __future__ import annotations

import torch

from popgrad.errors import PopgradError


def eq7_targets(emb) -> dict:
    """Eq. (7) (Sec. 4.2): name -> (U (d, n) inputs, V (d, m) outputs, targets (n,)).

    W_O^2: u_k = W_V^2 w_E(k), v_k = w_U(k). W_K^2: u_k = Phi_1 w_E(k) (key), v_k = w_E(k) (query).
    W_K^1: u = p_{t-1} (key) for paper t = 2..T, v = p_1..p_T (query), target t (code index t - 1).
    """
    E = emb.W_E
    ar = torch.arange(emb.N, device=E.device)
    return {"W_O2": (emb.W_V2 @ E, emb.W_U.T, ar),
            "W_K2": (emb.Phi1 @ E, E, ar),
            "W_K1": (emb.P[:, :-1], emb.P, torch.arange(1, emb.T, device=E.device))}


def unique_argmax_hits(scores: torch.Tensor, targets: torch.Tensor, valid=None) -> torch.Tensor:
    """(n,) bool: row i of scores (n, m) has a unique maximum at targets[i] (and valid[i]).

    Ties and invalid rows (e.g. a class never seen as a label) count as misses.
    """
    best = scores.max(dim=1)
    hit = ((scores == best.values[:, None]).sum(1) == 1) & (best.indices == targets)
    return hit if valid is None else hit & torch.as_tensor(valid, dtype=torch.bool, device=scores.device)


def memory_scores(W: torch.Tensor, U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """(n, m) scores v_j'^T W u_i for every input i and output j'."""
    return (V.T @ W @ U).T


def memory_recall(W: torch.Tensor, U: torch.Tensor, V: torch.Tensor, targets, valid=None) -> float:
    """Eq. (9), indices as intended: R = (1/n) sum_i 1{argmax_j' v_j'^T W u_i = targets[i]}.

    The paper prints 1{argmax_j' v_j^T W u_i = j'}, which does not depend on W (j, j' swapped).
    """
    for name, M in (("W", W), ("U", U), ("V", V)):
        if not isinstance(M, torch.Tensor) or M.ndim != 2:
            raise PopgradError(f"{name} must be a 2-d torch tensor, got {getattr(M, 'shape', type(M).__name__)}")
    if tuple(W.shape) != (V.shape[0], U.shape[0]):
        raise PopgradError(f"W must have shape (V.shape[0], U.shape[0]) = {(V.shape[0], U.shape[0])}, got {tuple(W.shape)}")
    targets = torch.as_tensor(targets, dtype=torch.int64, device=W.device)
    if targets.numel() == 0:
        raise PopgradError("memory_recall needs at least one association")
    if tuple(targets.shape) != (U.shape[1],) or int(targets.min()) < 0 or int(targets.max()) >= V.shape[1]:
        raise PopgradError(f"targets must hold one column index of V (0..{V.shape[1] - 1}) per column of U "
                           f"({U.shape[1]}), got shape {tuple(targets.shape)}")
    return float(unique_argmax_hits(memory_scores(W, U, V), targets, valid).double().mean())
