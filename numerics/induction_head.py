"""The assembled induction head: the two-layer simplified transformer of Section 4.2 (no W_F).

    x_t   = w_E(z_t) + p_t
    h_t   = x_t + Phi_1 sum_{s<=t} x_s softmax_s(x_t^T W_K^1 x_s)          (eq. (2), W_Q = I, causal)
    out_t = h_t + W_O^2 W_V^2 sum_{s<=t} h_s softmax_s(h_t^T W_K^2 h_s)
    logits_t = W_U out_t

Key-query matrices in the eq. (7) convention (query on the left). Code positions 0..T-1.
In-context accuracy: argmax logits at positions where z_t is a trigger seen earlier in the
sequence, target z_{t+1} (model C), or at the last position with target o (model D).
Also: the hand-built construction (7) and the rescaling rule for learned
one-step matrices (`rescale_to_beta`).
"""

from __future__ import annotations

import torch

from popgrad.errors import PopgradError, positive_float, positive_int
from popgrad.memory import eq7_targets
from popgrad.numerics.samplers import make_generator, model_c_sampler, sample_model_c, sample_model_d


# ----------------------------------------------------------------------------- forward pass
def _causal_attention(q, W, k):
    """softmax_s(q_t^T W k_s) over s <= t.  q, k (B, T, d) -> (B, T, T)."""
    T = q.shape[1]
    scores = q @ W @ k.transpose(1, 2)                                     # (B, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    return torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)


def induction_head_logits(emb, z, W_K1, W_K2, W_O2):
    """Section 4.2 two-layer model without W_F: logits (B, T, N) for tokens z (B, T)."""
    x = emb.W_E.T[z] + emb.P.T[None, : z.shape[1]]                         # (B, T, d)
    h = x + _causal_attention(x, W_K1, x) @ x @ emb.Phi1.T                 # (B, T, d)
    out = h + _causal_attention(h, W_K2, h) @ h @ (W_O2 @ emb.W_V2).T      # (B, T, d)
    return out @ emb.W_U.T                                                 # (B, T, N)


# ----------------------------------------------------------------------------- eq. (7)
def hand_built(emb, beta1=1.0, beta2=1.0, tokens=None):
    """Eq. (7): W_K^1 = b1 sum_t p_t p_{t-1}^T, W_K^2 = b2 sum_k w_E(k)(Phi_1 w_E(k))^T, W_O^2 = sum_k w_U(k)(W_V^2 w_E(k))^T.

    `tokens`: the trigger set Q for W_K^2 (default: all of [N]). Eq. (7) convention.
    """
    positive_float("beta1", beta1)
    positive_float("beta2", beta2)
    P, E = emb.P, emb.W_E                                                  # (d, T), (d, N)
    Q = torch.arange(emb.N, device=E.device) if tokens is None else torch.as_tensor(tokens, device=E.device)
    W_K1 = beta1 * P[:, 1:] @ P[:, :-1].T
    W_K2 = beta2 * E[:, Q] @ (emb.Phi1 @ E[:, Q]).T
    W_O2 = emb.W_U.T @ (emb.W_V2 @ E).T
    return {"W_K1": W_K1, "W_K2": W_K2, "W_O2": W_O2}


def mean_target_score(W, U, V, target):
    """Mean of v_target(i)^T W u_i over the memory's pairs (the scale of an associative memory)."""
    return float((V[:, target] * (W @ U)).sum(0).mean())


def rescale_to_beta(W, U, V, target, beta):
    """Scale rule for learned matrices: W * beta / (mean target score), so that score is beta."""
    m = mean_target_score(W, U, V, target)
    if m <= 0:
        raise PopgradError(f"mean target score is {m:.3e} <= 0: the learned matrix has no signal to rescale")
    return W * (beta / m)


def rescaled_learned(emb, learned, beta, beta_O=1.0):
    """The three learned matrices rescaled: W_K^1, W_K^2 to mean target score beta, W_O^2 to beta_O."""
    tg = eq7_targets(emb)
    scale = {"W_K1": beta, "W_K2": beta, "W_O2": beta_O}
    return {k: rescale_to_beta(learned[k], *tg[k], scale[k]) for k in ("W_K1", "W_K2", "W_O2")}


def without_positions(emb, W_K2, query=True, key=True):
    """Diagnostic: W_K^2 (eq. (7)) with positional directions removed, span{p_t} on the query side,
    span{p_t, Phi_1 p_t} on the key side (either side alone with `query` / `key`)."""
    def proj(B):                                                           # projector onto columns of B
        return B @ torch.linalg.pinv(B)
    eye = torch.eye(emb.d, dtype=W_K2.dtype, device=W_K2.device)
    left = eye - proj(emb.P) if query else eye
    right = eye - proj(torch.cat([emb.P, emb.Phi1 @ emb.P], dim=1)) if key else eye   # keys: (d, 2T)
    return left @ W_K2 @ right


# ----------------------------------------------------------------------------- accuracy
def accuracy_model_d(emb, model, mats, n=2048, seed=0, batch=512):
    """In-context accuracy on model D: argmax logits at the last position vs the label o."""
    positive_int("n", n)
    gen = make_generator(seed, emb.W_E.device)
    hits = 0
    for start in range(0, n, batch):
        z, y, _, _ = sample_model_d(model, min(batch, n - start), gen)
        logits = induction_head_logits(emb, z, mats["W_K1"], mats["W_K2"], mats["W_O2"])
        hits += int((logits[:, -1].argmax(dim=-1) == y).sum())
    return hits / n


def in_context_mask(z, triggers):
    """(B, T) bool: z_t is one of the row's triggers and occurred earlier; t < T-1 (target exists)."""
    same_before = torch.zeros(z.shape, dtype=torch.bool, device=z.device)  # (B, T)
    for k in range(triggers.shape[1]):                                     # K is small (<= 5)
        hit = z == triggers[:, k:k + 1]                                    # (B, T)
        same_before |= hit & (torch.cumsum(hit.long(), dim=1) >= 2)
    same_before[:, -1] = False
    return same_before


def accuracy_model_c(emb, model, mats, n=256, seed=0, batch=64):
    """In-context accuracy on model C: argmax logits at in-context positions vs z_{t+1}."""
    positive_int("n", n)

    tables = model_c_sampler(model, emb.W_E.device)
    gen = torch.Generator(device=emb.W_E.device).manual_seed(seed)
    hits = total = 0
    for start in range(0, n, batch):
        z, trig, _ = sample_model_c(tables, min(batch, n - start), gen)
        z, trig = z.long(), trig.long()
        mask = in_context_mask(z, trig)[:, :-1]                            # (B, T-1)
        logits = induction_head_logits(emb, z, mats["W_K1"], mats["W_K2"], mats["W_O2"])
        pred = logits[:, :-1].argmax(dim=-1)                               # (B, T-1)
        hits += int(((pred == z[:, 1:]) & mask).sum())
        total += int(mask.sum())
    return hits / max(total, 1), total
