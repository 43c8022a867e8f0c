"""The SPEC §5 model written in the structure of the paper's public code (its `Attention` module).

Per layer three `nn.Linear(d, d, bias=False)` modules wk, wv, wo; queries are the inputs
(wq = identity); keys wk(x); logits x_t . wk(x_s) / sqrt(d) plus an additive causal mask
(-inf above the diagonal), full softmax at every position; values wv(x), output wo(.) added to
the residual stream; logits by an output `nn.Linear(d, N)`; the loss is the cross-entropy over
the selected (in-context) positions, `F.cross_entropy(pred[sel], y[sel])`. Frozen: embeddings,
wv/wo of layer 1, wv of layer 2, the output layer. This is the reference that the training
benchmark and the equality test compare popgrad's lean step with; it is written independently
of `popgrad.numerics.transformer` and `popgrad.numerics.lean_step`.

Weights map to the eq. (7) convention as wk.weight = W_K (x_t^T W_K x_s), layer-2
wo.weight = W_O^2, and with `embed="code"` tables wv1, wo1, wv2 = W_V^1, W_O^1, W_V^2 / sqrt(3).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class PaperAttention(nn.Module):
    """The public code's single-head attention: keys wk(x), values wv(x), output wo(.)."""

    def __init__(self, d: int, scale: float, dtype=None, device=None):
        super().__init__()
        self.wk = nn.Linear(d, d, bias=False, dtype=dtype, device=device)
        self.wv = nn.Linear(d, d, bias=False, dtype=dtype, device=device)
        self.wo = nn.Linear(d, d, bias=False, dtype=dtype, device=device)
        self.scale = scale

    def forward(self, x, mask):
        xk, xv = self.wk(x), self.wv(x)
        scores = torch.matmul(x, xk.transpose(1, 2)) * self.scale + mask
        scores = F.softmax(scores, dim=-1)
        return self.wo(torch.matmul(scores, xv))


class PaperStructureModel(nn.Module):
    """Two attention layers with residuals and an optional linear W_F, as the public code builds them."""

    def __init__(self, tok: torch.Tensor, pos: torch.Tensor, out: torch.Tensor, layer1_vo, V2: torch.Tensor,
                 params: dict, scale: float):
        super().__init__()
        d = tok.shape[1]
        self.register_buffer("tok", tok.clone())
        self.register_buffer("pe", pos.clone())
        kw = dict(dtype=tok.dtype, device=tok.device)
        self.layers = nn.ModuleList([PaperAttention(d, scale, **kw), PaperAttention(d, scale, **kw)])
        self.output = nn.Linear(d, out.shape[0], bias=False, **kw)
        self.ff = nn.Linear(d, d, bias=False, **kw) if params.get("W_F") is not None else None
        a1, a2 = self.layers
        with torch.no_grad():
            a1.wk.weight.copy_(params["W_K1"])
            a1.wv.weight.copy_(layer1_vo[0])
            a1.wo.weight.copy_(layer1_vo[1])
            a2.wk.weight.copy_(params["W_K2"])
            a2.wv.weight.copy_(V2)
            a2.wo.weight.copy_(params["W_O2"])
            self.output.weight.copy_(out)
            if self.ff is not None:
                self.ff.weight.copy_(params["W_F"])
        for w in (a1.wv.weight, a1.wo.weight, a2.wv.weight, self.output.weight):
            w.requires_grad_(False)

    def trained(self) -> dict:
        a1, a2 = self.layers
        out = {"W_K1": a1.wk.weight, "W_K2": a2.wk.weight, "W_O2": a2.wo.weight}
        if self.ff is not None:
            out["W_F"] = self.ff.weight
        return out

    def forward(self, z):
        T = z.shape[1]
        h = self.tok[z] + self.pe[:T]
        mask = torch.full((T, T), float("-inf"), dtype=h.dtype, device=h.device).triu(1)
        for layer in self.layers:
            h = h + layer(h, mask)
        if self.ff is not None:
            h = h + self.ff(h)
        return self.output(h)


def from_embeddings(emb, params: dict, embed: str = "code", scale: str = "sqrt") -> PaperStructureModel:
    """The paper-structure model of popgrad.embeddings.Embeddings `emb` (as `frozen_tables(emb, embed)`)."""
    d = emb.d
    f, g = (1.0, 1.0) if embed == "unit" else (math.sqrt(d), 1.0 / math.sqrt(3.0))
    c = 1.0 if scale == "none" else 1.0 / math.sqrt(d)
    return PaperStructureModel(f * emb.W_E.T, f * emb.P.T, g * emb.W_U, (g * emb.W_V1, g * emb.W_O1), g * emb.W_V2,
                               params, c)


def paper_loss(model: PaperStructureModel, z, sel, tgt):
    """The public code's loss: cross-entropy over the selected positions."""
    pred = model(z)
    return F.cross_entropy(pred[sel], tgt[sel])
