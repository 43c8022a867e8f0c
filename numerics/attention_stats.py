"""Figure 2 as numbers: where the two attention layers of a model put their largest weight.

    previous-token fraction   layer 1: the share of positions t >= 1 whose argmax_s A^1[t, s] is s = t - 1
    induction fraction        layer 2: the share of repeated queries (z_t seen at some s' < t; t <= T-2)
                              whose argmax_s A^2[t, s] is a token after an earlier occurrence of the
                              query (z_{s-1} = z_t, 1 <= s <= t), split into trigger queries (z_t a
                              trigger of its sequence: the in-context positions) and non-trigger ones

Figure 2 (Sec. 3): layer 1 attends to the previous token; with fixed triggers layer 2 attends
mainly to the tokens after the triggers' earlier occurrences; with random triggers it does so
for every repeated token. Argmax ties resolve to the first maximum (torch.argmax). Attention maps
of the training model (`popgrad.numerics.transformer`), recomputed with an explicit softmax.
"""

from __future__ import annotations

import math

import torch

from popgrad.numerics import transformer as tr


def attention_maps(tab, z: torch.Tensor, params: dict, scale: str = "none"):
    """(A1, A2): the causal attention maps (B, T, T) of layers 1 and 2 of the training model (A2 None
    for the one-layer model); row t is the distribution over keys s <= t."""
    c = tr.logit_scale(tab.d, scale)
    T = z.shape[1]
    x = tab.E[z] + tab.P[:T]                                                # (B, T, d)
    visible = tr.causal_scores_mask(torch.arange(T, device=z.device), T)     # (T, T)
    A1 = tr.causal_softmax(c * (x @ params["W_K1"]) @ x.transpose(1, 2), visible)
    if "W_K2" not in params:
        return A1, None
    h = tr.layer1(tab, z, params["W_K1"], c)                                # (B, T, d)
    A2 = tr.causal_softmax(c * (h @ params["W_K2"]) @ h.transpose(1, 2), visible)
    return A1, A2


def previous_token_counts(A1: torch.Tensor, upto: int | None = None) -> tuple[int, int]:
    """Layer 1: (#positions 1 <= t < upto whose argmax key is t - 1, #positions 1 <= t < upto); upto default T."""
    T = A1.shape[-1] if upto is None else min(upto, A1.shape[-1])
    am = A1.argmax(-1)[:, 1:T]                                              # (B, T-1)
    hits = am == torch.arange(T - 1, device=A1.device)
    return int(hits.sum()), int(hits.numel())


def repeated_queries(z: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: z_t occurred at some earlier position s' < t, for t <= T-2."""
    T = z.shape[1]
    earlier = torch.ones(T, T, dtype=torch.bool, device=z.device).tril(-1)   # (T, T) s' < t
    rep = ((z[:, :, None] == z[:, None, :]) & earlier).any(-1)               # (B, T)
    rep[:, -1] = False
    return rep


def induction_counts(A2: torch.Tensor, z: torch.Tensor, q: torch.Tensor) -> dict:
    """Layer 2 at repeated queries: {'hits_trigger', 'n_trigger', 'hits_other', 'n_other'}; a hit is an
    argmax key s >= 1 with z_{s-1} = z_t. q (B, K): each sequence's triggers."""
    am = A2.argmax(-1)                                                      # (B, T) argmax key s <= t
    before = z.gather(1, (am - 1).clamp(min=0))                             # (B, T) z_{s-1}
    hit = (am >= 1) & (before == z)
    rep = repeated_queries(z)
    trig = (z[:, :, None] == q[:, None, :].long()).any(-1)                  # (B, T) z_t is a trigger
    out = {}
    for name, sel in (("trigger", rep & trig), ("other", rep & ~trig)):
        out[f"hits_{name}"], out[f"n_{name}"] = int((hit & sel).sum()), int(sel.sum())
    return out


def fraction(hits: int, n: int) -> tuple[float, float]:
    """(hits / n, binomial standard error sqrt(p (1 - p) / n)); nan when n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    p = hits / n
    return p, math.sqrt(p * (1 - p) / n)


def attention_statistics(tab, params: dict, sample, batches: int, scale: str = "none", early: int = 32) -> dict:
    """Figure 2's fractions over `batches` fresh batches from `sample()` -> (z (B, T), q (B, K)):
    {'prev_token', 'prev_token_early' (positions t < early), 'induction_trigger', 'induction_other'} each
    (fraction, binomial se), with counts."""
    tot = {"hits_prev": 0, "n_prev": 0, "hits_early": 0, "n_early": 0, "hits_trigger": 0, "n_trigger": 0,
           "hits_other": 0, "n_other": 0}
    with torch.no_grad():
        for _ in range(batches):
            z, q = sample()
            A1, A2 = attention_maps(tab, z, params, scale)
            h, n = previous_token_counts(A1)
            tot["hits_prev"] += h
            tot["n_prev"] += n
            h, n = previous_token_counts(A1, early)
            tot["hits_early"] += h
            tot["n_early"] += n
            if A2 is not None:
                for k, v in induction_counts(A2, z, q).items():
                    tot[k] += v
    return {"prev_token": fraction(tot["hits_prev"], tot["n_prev"]), "prev_token_early": fraction(tot["hits_early"], tot["n_early"]),
            "induction_trigger": fraction(tot["hits_trigger"], tot["n_trigger"]),
            "induction_other": fraction(tot["hits_other"], tot["n_other"]), **tot}
