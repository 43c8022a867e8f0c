"""App. E's full model written in the module structure of the paper's public code (`ihead_full`).

One `nn.Module` per block, as that code builds them: `MultiHeadAttention` (nn.Linear wq, wk, wv,
wo without bias; per-head views (B, H, T, d/H); scores q k^T / sqrt(d/H) plus an additive causal
mask of -inf above the diagonal; full softmax), `ReluMLP` (w1 then ReLU then w2), `Block` with
the public code's two flags `pre_norm` and `no_norm` (nn.LayerNorm or nn.Identity as
attention_norm / ff_norm; in the pre-norm layout the feed-forward reads ff_norm of the block
input), and `PaperFullModel` (nn.Embedding tokens and positions, the blocks, the final norm only
with pre_norm, an output nn.Linear). Loss: `F.cross_entropy(pred[sel], y[sel])`.

It is the independent side that the claim `full_model.paper_structure` holds
`popgrad.numerics.full_model` against (loss and every gradient, float64); it shares nothing with
that module but the parameter names it loads from (`from_params`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# popgrad's `norm` option -> the public code's (pre_norm, no_norm) flags
NORM_FLAGS = {"pre": (True, False), "none": (True, True), "post": (False, False)}


class MultiHeadAttention(nn.Module):
    """wq, wk, wv: d -> H * d_h; wo: H * d_h -> d; causal softmax of q k^T / sqrt(d_h)."""

    def __init__(self, d: int, n_heads: int, **kw):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, d // n_heads
        self.wq = nn.Linear(d, d, bias=False, **kw)
        self.wk = nn.Linear(d, d, bias=False, **kw)
        self.wv = nn.Linear(d, d, bias=False, **kw)
        self.wo = nn.Linear(d, d, bias=False, **kw)

    def forward(self, x, mask):
        bs, slen, _ = x.shape
        heads = [m(x).view(bs, slen, self.n_heads, self.head_dim).transpose(1, 2) for m in (self.wq, self.wk, self.wv)]
        xq, xk, xv = heads                                                   # (bs, H, slen, d_h)
        scores = torch.matmul(xq, xk.transpose(2, 3)) / math.sqrt(self.head_dim) + mask
        probs = F.softmax(scores, dim=-1)
        out = torch.matmul(probs, xv).transpose(1, 2).reshape(bs, slen, -1)
        return self.wo(out)


class ReluMLP(nn.Module):
    """w2(relu(w1(x))), hidden width 4d."""

    def __init__(self, d: int, **kw):
        super().__init__()
        self.w1 = nn.Linear(d, 4 * d, bias=False, **kw)
        self.w2 = nn.Linear(4 * d, d, bias=False, **kw)

    def forward(self, x):
        return self.w2(F.relu(self.w1(x)))


class Block(nn.Module):
    """The public code's TransformerBlock: attention, optional feed-forward, pre- or post-norm."""

    def __init__(self, d: int, n_heads: int, pre_norm: bool, no_norm: bool, ffn: bool, **kw):
        super().__init__()
        self.attention = MultiHeadAttention(d, n_heads, **kw)
        self.ff = ReluMLP(d, **kw) if ffn else None
        self.attention_norm = nn.Identity() if no_norm else nn.LayerNorm(d, eps=1e-5, **kw)
        self.ff_norm = nn.Identity() if no_norm else nn.LayerNorm(d, eps=1e-5, **kw)
        self.pre_norm = pre_norm

    def forward(self, x, mask):
        if self.pre_norm:
            h = x + self.attention(self.attention_norm(x), mask)
            return h if self.ff is None else h + self.ff(self.ff_norm(x))
        h = self.attention_norm(x + self.attention(x, mask))
        return h if self.ff is None else self.ff_norm(h + self.ff(h))


class PaperFullModel(nn.Module):
    """Embeddings, two blocks, final norm (pre-norm only) and the output layer."""

    def __init__(self, N: int, T: int, d: int, n_heads: int, mlp: str, norm: str, dtype=torch.float64):
        super().__init__()
        kw = dict(dtype=dtype)
        pre_norm, no_norm = NORM_FLAGS[norm]
        self.tok_embeddings = nn.Embedding(N, d, **kw)
        self.pos_embeddings = nn.Embedding(T, d, **kw)
        ffn = (mlp == "both", mlp in ("both", "second"))
        self.layers = nn.ModuleList([Block(d, n_heads, pre_norm, no_norm, ffn[i], **kw) for i in range(2)])
        self.norm = (nn.Identity() if no_norm else nn.LayerNorm(d, eps=1e-5, **kw)) if pre_norm else None
        self.output = nn.Linear(d, N, bias=False, **kw)

    def forward(self, tokens):
        B, T = tokens.shape
        h = self.tok_embeddings(tokens) + self.pos_embeddings(torch.arange(T).view(1, T))
        mask = torch.triu(torch.full((1, 1, T, T), float("-inf"), dtype=h.dtype), diagonal=1)
        for layer in self.layers:
            h = layer(h, mask)
        if self.norm is not None:
            h = self.norm(h)
        return self.output(h)

    def named_weights(self) -> dict:
        """popgrad's parameter names -> this model's tensors (the layer norms that popgrad's layout uses)."""
        out = {"E": self.tok_embeddings.weight, "P": self.pos_embeddings.weight, "U": self.output.weight}
        for i, blk in enumerate(self.layers, start=1):
            a = blk.attention
            out.update({f"W_Q{i}": a.wq.weight, f"W_K{i}": a.wk.weight, f"W_V{i}": a.wv.weight, f"W_O{i}": a.wo.weight})
            if blk.ff is not None:
                out[f"M{i}_in"], out[f"M{i}_out"] = blk.ff.w1.weight, blk.ff.w2.weight
            for tag, m in (("LA", blk.attention_norm), ("LF", blk.ff_norm)):
                if isinstance(m, nn.LayerNorm) and (tag == "LA" or blk.ff is not None):
                    out[f"{tag}{i}_w"], out[f"{tag}{i}_b"] = m.weight, m.bias
        if isinstance(self.norm, nn.LayerNorm):
            out["LN_w"], out["LN_b"] = self.norm.weight, self.norm.bias
        return out


def from_params(params: dict, heads: int, mlp: str, norm: str) -> PaperFullModel:
    """The paper-structure model holding copies of popgrad's full-model weights (float64)."""
    N, d = params["E"].shape
    T = params["P"].shape[0]
    model = PaperFullModel(N, T, d, heads, mlp, norm)
    mine = model.named_weights()
    if set(mine) != set(params):
        raise ValueError(f"parameter sets differ: {sorted(set(mine) ^ set(params))}")
    with torch.no_grad():
        for k, w in mine.items():
            w.copy_(params[k].detach().double())
    return model


def paper_loss(model: PaperFullModel, z, sel, tgt):
    """The public code's loss restricted to the selected positions: cross-entropy over pred[sel]."""
    pred = model(z)
    return F.cross_entropy(pred[sel], tgt[sel])
