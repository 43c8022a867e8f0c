"""The simplified two-layer transformer of Sec. 4.2 / Sec. 5 (SPEC §5), as one definition.

    x_t      = w_E(z_t) + p_t                                                   (B, T, d)
    h_t      = x_t + Phi_1 sum_{s<=t} softmax_s(c x_t^T W_K^1 x_s) x_s            layer 1
    out_t    = h_t + W_O^2 W_V^2 sum_{s<=t} softmax_s(c h_t^T W_K^2 h_s) h_s      layer 2
    logits_t = W_U (out_t + W_F out_t)                                            (W_F optional)

Frozen at popgrad's random embeddings (`popgrad.embeddings`): w_E, w_U, p_t, W_V^1, W_O^1,
W_V^2. Trained: W_K^1, W_K^2, W_O^2 and optionally W_F. Key-query matrices are in the eq. (7)
convention (query on the LEFT, W_Q = I); Lemmas 4 and 5 use W_K^T (`popgrad.conventions`).
Code positions 0..T-1.

Logit scale c. `scale="none"` (c = 1, the DEFAULT) is App. B's model and SPEC §1: with popgrad's
unit-norm embeddings (entries N(0, 1/d)) it is exactly the assembled head
(`popgrad.numerics.induction_head.induction_head_logits`) and the Lemma 4 architecture: the
claims `training.shared_head_logits` and `training.shared_lemma4` hold all three to 1e-10 at random
weights. `induction_head_logits` stays a plain, separately written forward pass on purpose: it is
the independent side those claims compare against (one definition, checked twice, rather than
one function compared with itself). `scale="sqrt"` (c = 1/sqrt(d)) is the
factor of the paper's public code, whose embeddings have norm ~sqrt(d) rather than ~1
(`embed="code"` reproduces that too). With unit embeddings and no factor, a key-query or output
matrix W of the public code is sqrt(d) W here, so the same SGD step size moves the logits about
d times less: App. E's step sizes are meant for `embed="code", scale="sqrt"`, which the training
presets use.

Speed, all exact algebra (no approximation): attention through torch's fused
`scaled_dot_product_attention` (causal; scale passed explicitly, so c is the only factor); layer-1 values Phi_1 x_s are gathered from
precomputed (N, d) and (T, d) tables instead of a (B T d^2) product; Phi_2 = W_O^2 W_V^2 is
formed once (d^3) instead of applying W_V^2 and W_O^2 to every token; and when the loss needs
only some positions (in-context tokens), layer 2 is evaluated at those query positions only
(`query_positions`), padded per sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from popgrad.errors import PopgradError, choice

SCALES = ("none", "sqrt")
EMBEDS = ("unit", "code")
INITS = ("linear", "zero")
TRAINABLE = ("W_K1", "W_K2", "W_O2", "W_F", "W_O1")   # W_O1: trained only in the one-layer model


@dataclass(frozen=True)
class FrozenTables:
    """The frozen parts of the model as row tables, in the model's dtype and device."""

    E: torch.Tensor     # (N, d) rows w_E(k)
    P: torch.Tensor     # (T, d) rows p_t
    E1: torch.Tensor    # (N, d) rows Phi_1 w_E(k)
    P1: torch.Tensor    # (T, d) rows Phi_1 p_t
    U: torch.Tensor     # (N, d) rows w_U(k)
    V2: torch.Tensor    # (d, d) W_V^2
    V1: torch.Tensor | None = None   # (d, d) W_V^1 (the one-layer model's values)

    @property
    def d(self) -> int:
        return self.E.shape[1]


def frozen_tables(emb, embed: str = "unit") -> FrozenTables:
    """Tables of w_E, p_t, Phi_1 w_E, Phi_1 p_t, w_U and W_V^2 from popgrad.embeddings.Embeddings.

    `embed="unit"`: popgrad's embeddings (entries N(0, 1/d), norm ~1; App. B). `embed="code"`:
    the variances of the paper's public code: w_E and p_t times sqrt(d) (entries N(0, 1)), and
    W_V^1, W_O^1, W_V^2, W_U times 1/sqrt(3) (variance 1/(3d), as nn.Linear's uniform init).
    Positive rescalings: the recall probes (9) and the targets (7) are unchanged.
    """
    choice("embed", embed, EMBEDS)
    Phi1 = emb.Phi1
    f, g = (1.0, 1.0) if embed == "unit" else (math.sqrt(emb.d), 1.0 / math.sqrt(3.0))
    return FrozenTables(f * emb.W_E.T.contiguous(), f * emb.P.T.contiguous(), f * g * g * (Phi1 @ emb.W_E).T.contiguous(),
                        f * g * g * (Phi1 @ emb.P).T.contiguous(), g * emb.W_U.contiguous(), g * emb.W_V2.contiguous(),
                        V1=g * emb.W_V1.contiguous())


def logit_scale(d: int, scale: str = "none") -> float:
    """The attention-logit factor c: 1 (`none`, App. B, default) or 1/sqrt(d) (`sqrt`, public code)."""
    choice("scale", scale, SCALES)
    return 1.0 if scale == "none" else 1.0 / math.sqrt(d)


def init_params(d: int, names=("W_K1", "W_K2", "W_O2"), init: str = "linear", seed: int = 0,
                dtype=torch.float32, device="cpu") -> dict:
    """Trained matrices (d, d): `linear` = U(-1/sqrt(d), 1/sqrt(d)) like nn.Linear (the paper's
    code), `zero` = 0 (Sec. 6). Drawn in float64 on the CPU in the order of TRAINABLE, then cast."""
    choice("init", init, INITS)
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name in TRAINABLE:
        W = (torch.rand((d, d), generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(d)
        if name in names:
            out[name] = (W if init == "linear" else torch.zeros_like(W)).to(dtype=dtype, device=device)
    return out


# ----------------------------------------------------------------------------- attention
def causal_scores_mask(q_pos: torch.Tensor, T: int) -> torch.Tensor:
    """(..., Q, T) bool: key s is visible from query position q (s <= q)."""
    return torch.arange(T, device=q_pos.device) <= q_pos[..., None]


def causal_softmax(scores: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """softmax over visible keys s <= t of scores (B, Q, T)."""
    return torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)


def query_positions(mask: torch.Tensor):
    """Per-sequence positions where mask (B, T) is true, left-packed and padded.

    Returns (pos (B, m) int64, valid (B, m) bool) with m = the largest count in a row; padded
    slots hold some position of the row (still a valid query) and valid = False.
    """
    counts = mask.sum(1)                                                    # (B,)
    m = max(int(counts.max()) if counts.numel() else 0, 1)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :m]  # (B, m) true first
    valid = torch.arange(m, device=mask.device) < counts[:, None]
    return order, valid


def layer1(tab: FrozenTables, z: torch.Tensor, W_K1: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """First layer: h_t = x_t + Phi_1 sum_{s<=t} softmax_s(c x_t^T W_K^1 x_s) x_s  (B, T, d)."""
    T = z.shape[1]
    x = tab.E[z] + tab.P[:T]                                                # (B, T, d)
    v = tab.E1[z] + tab.P1[:T]                                              # (B, T, d) Phi_1 x_s
    # fused causal attention: softmax_s((x_t^T W) x_s) over s <= t, values Phi_1 x_s
    return x + F.scaled_dot_product_attention(x @ (W_K1 * c), x, v, is_causal=True, scale=1.0)


def layer2(tab: FrozenTables, h: torch.Tensor, W_K2: torch.Tensor, W_O2: torch.Tensor,
           c: float = 1.0, pos: torch.Tensor | None = None, residual: bool = True) -> torch.Tensor:
    """Second layer at query positions `pos` (B, m) (default: all): out (B, m, d).

    out_t = h_t + Phi_2 sum_{s<=t} softmax_s(c h_t^T W_K^2 h_s) h_s, Phi_2 = W_O^2 W_V^2.
    `residual=False` drops h_t (the Lemma 4 architecture, eq. (13)).
    """
    B, T, d = h.shape
    if pos is None:
        hq = h
        attended = F.scaled_dot_product_attention(h @ (W_K2 * c), h, h, is_causal=True, scale=1.0)   # (B, T, d)
    else:
        hq = h.gather(1, pos[..., None].expand(-1, -1, d))                 # (B, m, d)
        attended = F.scaled_dot_product_attention(hq @ (W_K2 * c), h, h, attn_mask=causal_scores_mask(pos, T),
                                                  scale=1.0)                # (B, m, d)
    out = attended @ (W_O2 @ tab.V2).T                                      # (B, m, d)
    return hq + out if residual else out


def logits(tab: FrozenTables, z: torch.Tensor, params: dict, scale: str = "none",
           pos: torch.Tensor | None = None, residual: bool = True) -> torch.Tensor:
    """SPEC §5 model: logits (B, m, N) at query positions pos (B, m) (default all, m = T)."""
    c = logit_scale(tab.d, scale)
    if "W_O1" in params:                                                    # one attention layer (layer 2 removed)
        return one_layer_logits(tab, z, params, c, pos)
    h = layer1(tab, z, params["W_K1"], c)
    out = layer2(tab, h, params["W_K2"], params["W_O2"], c, pos, residual)
    if params.get("W_F") is not None:
        out = out + out @ params["W_F"].T
    return out @ tab.U.T


def model_logits(emb, z, W_K1, W_K2, W_O2, W_F=None, scale: str = "none") -> torch.Tensor:
    """Convenience: logits (B, T, N) from Embeddings and the trained matrices (eq. (7) convention)."""
    if z.ndim != 2:
        raise PopgradError(f"z must be (B, T) tokens, got shape {tuple(z.shape)}")
    if z.shape[1] > emb.T:
        raise PopgradError(f"sequences have T={z.shape[1]} but embeddings only T={emb.T}")
    params = {"W_K1": W_K1, "W_K2": W_K2, "W_O2": W_O2, "W_F": W_F}
    return logits(frozen_tables(emb), z.long(), params, scale)


def readout_no_residual_last(emb, z, W_K2, W_O2) -> torch.Tensor:
    """Lemma 4 special case (W_K^1 = 0, no residual at layer 2): logits at the last position (B, N)."""
    tab = frozen_tables(emb)
    zl = z.long()
    B, T = zl.shape
    h = layer1(tab, zl, torch.zeros_like(W_K2))
    pos = torch.full((B, 1), T - 1, dtype=torch.int64, device=z.device)
    return (layer2(tab, h, W_K2, W_O2, 1.0, pos, residual=False) @ tab.U.T)[:, 0]


def memory_bytes(batch: int, T: int, d: int, N: int, itemsize: int = 4, queries: int | None = None) -> float:
    """Rough peak bytes of one forward+backward step: a few (B, T, T) and (B, T, d) activations."""
    m = T if queries is None else queries
    return itemsize * batch * (3.0 * T * T + 2.0 * m * T + 8.0 * T * d + 2.0 * m * N)


# ----------------------------------------------------------------------------- one attention layer
def one_layer_logits(tab: FrozenTables, z: torch.Tensor, params: dict, c: float = 1.0,
                     pos: torch.Tensor | None = None) -> torch.Tensor:
    """The model with layer 2 removed, W_O^1 trained: logits (B, m, N) at positions pos (B, m) (default all).

    out_t = x_t + W_O^1 W_V^1 sum_{s<=t} softmax_s(c x_t^T W_K^1 x_s) x_s;  logits_t = W_U (out_t [+ W_F out_t]).
    """
    T = z.shape[1]
    x = tab.E[z] + tab.P[:T]                                                # (B, T, d)
    attended = F.scaled_dot_product_attention(x @ (params["W_K1"] * c), x, x @ tab.V1.T, is_causal=True, scale=1.0)
    out = x + attended @ params["W_O1"].T                                   # (B, T, d)
    if params.get("W_F") is not None:
        out = out + out @ params["W_F"].T
    if pos is not None:
        out = out.gather(1, pos[..., None].expand(-1, -1, out.shape[-1]))  # (B, m, d)
    return out @ tab.U.T
