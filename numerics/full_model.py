"""The full two-layer transformer of App. E (Figures 10 and 11; SPEC §6), one functional definition.

    x_t     = E[z_t] + P[t]                                                  (B, T, d) token + position
    block l (the public code's `TransformerBlock`, three layouts):
      norm 'pre' : h = x + Attn_l(LN_a(x));   h = h + MLP_l(LN_f(x))   (its pre-norm block feeds the
                                                                          MLP the block INPUT x: parallel)
      norm 'none': h = x + Attn_l(x);         h = h + MLP_l(x)          (pre-norm block, norms = identity)
      norm 'post': h = LN_a(x + Attn_l(x));   h = LN_f(h + MLP_l(h))    (post-norm block)
    Attn_l(x) = W_O^l concat_j softmax_{s<=t}(c (W_Q^{l,j} x_t)^T (W_K^{l,j} x_s)) W_V^{l,j} x_s
    logits_t = U LN(h_t^(2))   (final LN only with 'pre'; U is the unembedding, (N, d))

H heads of dimension d/H: W_Q^l, W_K^l, W_V^l (d, d) split by rows into H blocks, W_O^l (d, d)
split by columns; c = 1/sqrt(d/H) (`scale="sqrt"`, the public code) or 1 (`scale="none"`).
MLP_l(x) = W_2 relu(W_1 x), W_1 (4d, d), W_2 (d, 4d), in layers `mlp` = 'none', 'second', 'both'.
Layer norms (eps 1e-5) have a weight and a bias. Every parameter is trained, the embeddings
E, P, U too unless `train_embed=False`.

Parameter names: 'E' (N, d), 'P' (T, d), 'U' (N, d), 'W_Q1', 'W_K1', 'W_V1', 'W_O1' and the
same with 2 (each (d, d), stored as nn.Linear weights: y = W x), 'M1_in', 'M1_out', 'M2_in',
'M2_out' (MLPs), 'LA1_w', 'LA1_b', 'LF1_w', 'LF1_b', ... (norms), 'LN_w', 'LN_b' (final).
Head j's key-query matrix in the eq. (7) convention (query on the left) is
W_Q^{l,j T} W_K^{l,j}; with H = 1 and W_Q = I it is W_K^l itself, and with no MLP, no norm and
frozen embeddings the model is SPEC §5's (`popgrad.numerics.transformer`, embed='code',
scale='sqrt'), which the claim `full_model.degenerate_is_simplified` holds to float64.

Initialization (`init_full_params`, the public code's parameterization and variances): E, P,
U, W_V^1, W_O^1, W_V^2 from popgrad's random embeddings of the seed in the 'code' scaling
(`transformer.frozen_tables(embed='code')`: E, P entries N(0, 1) as nn.Embedding; the others
variance 1/(3d) as nn.Linear), W_K^1, W_K^2, W_O^2 as `transformer.init_params` draws them
(same seed as the simplified model: a paired comparison), W_Q^l and the MLPs nn.Linear-uniform
from their own generator, layer norms weight 1, bias 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from popgrad.embeddings import Embeddings
from popgrad.errors import PopgradError, choice
from popgrad.memory import eq7_targets, memory_recall, memory_scores, unique_argmax_hits
from popgrad.numerics import transformer as tr
from popgrad.numerics.masks import other_mask
from popgrad.numerics.probes import binomial_se

MLPS = ("none", "second", "both")
NORMS = ("pre", "none", "post")
EMBED_NAMES = ("E", "P", "U")
LN_EPS = 1e-5


def check_spec(d: int, heads: int, mlp: str, norm: str) -> None:
    """Refuse a full-model configuration that cannot be built (one line naming the argument)."""
    choice("mlp", mlp, MLPS)
    choice("norm", norm, NORMS)
    if heads < 1 or d % heads:
        raise PopgradError(f"heads must divide d = {d}, got {heads}")


def has_mlp(layer: int, mlp: str) -> bool:
    """Whether block `layer` (1 or 2) has the ReLU MLP."""
    return mlp == "both" or (mlp == "second" and layer == 2)


def _uniform(gen, shape, fan_in: int) -> torch.Tensor:
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(fan_in)


def init_full_params(emb: Embeddings, heads: int = 1, mlp: str = "second", norm: str = "pre", seed: int = 0,
                     dtype=torch.float32, device="cpu") -> dict:
    """App. E's full model at initialization (module docstring), every tensor a leaf in `dtype`."""
    d = emb.d
    check_spec(d, heads, mlp, norm)
    tab = tr.frozen_tables(emb.to(dtype="float64"), "code")
    g = 1.0 / math.sqrt(3.0)
    e64 = emb.to(dtype="float64")
    p = {"E": tab.E, "P": tab.P, "U": tab.U, "W_V1": g * e64.W_V1, "W_O1": g * e64.W_O1, "W_V2": g * e64.W_V2}
    kq = tr.init_params(d, ("W_K1", "W_K2", "W_O2"), "linear", seed=seed + 1, dtype=torch.float64)
    p.update(kq)
    gen = torch.Generator().manual_seed(10_000 + seed)
    for layer in (1, 2):
        p[f"W_Q{layer}"] = _uniform(gen, (d, d), d)
        if has_mlp(layer, mlp):
            p[f"M{layer}_in"] = _uniform(gen, (4 * d, d), d)
            p[f"M{layer}_out"] = _uniform(gen, (d, 4 * d), 4 * d)
        if norm != "none":
            for k in ("LA", "LF") if has_mlp(layer, mlp) else ("LA",):
                p[f"{k}{layer}_w"], p[f"{k}{layer}_b"] = torch.ones(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    if norm == "pre":
        p["LN_w"], p["LN_b"] = torch.ones(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    return {k: v.to(dtype=dtype, device=device).contiguous() for k, v in p.items()}


# ----------------------------------------------------------------------------- forward
def layer_norm(x: torch.Tensor, p: dict, name: str) -> torch.Tensor:
    """LayerNorm over the last axis with weight/bias p[name_w], p[name_b] (eps 1e-5)."""
    return F.layer_norm(x, x.shape[-1:], p[name + "_w"], p[name + "_b"], LN_EPS)


def attention(x: torch.Tensor, p: dict, layer: int, heads: int, c: float, weights: bool = False):
    """Multi-head causal attention of block `layer` on x (B, T, d): output (B, T, d) [, A (B, H, T, T)].
    Q, K and V come from one GEMM."""
    B, T, d = x.shape
    dh = d // heads

    def split(y):                                                           # (B, H, T, dh)
        return y.reshape(B, T, heads, dh).transpose(1, 2)
    q, k, v = map(split, (x @ torch.cat([p[f"W_Q{layer}"], p[f"W_K{layer}"], p[f"W_V{layer}"]]).T).split(d, -1))
    if weights:
        s = (q @ k.transpose(-1, -2)) * c                                   # (B, H, T, T)
        A = torch.softmax(s.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=x.device).tril(), float("-inf")), -1)
        o = A @ v
    else:
        o, A = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=c), None
    out = o.transpose(1, 2).reshape(B, T, d) @ p[f"W_O{layer}"].T
    return (out, A) if weights else out


def mlp_block(x: torch.Tensor, p: dict, layer: int) -> torch.Tensor:
    """ReLU MLP W_2 relu(W_1 x) (hidden width 4d)."""
    return torch.relu(x @ p[f"M{layer}_in"].T) @ p[f"M{layer}_out"].T


def block(x: torch.Tensor, p: dict, layer: int, heads: int, mlp: str, norm: str, c: float, weights: bool = False,
          sel: torch.Tensor | None = None):
    """One transformer block in the public code's layout for `norm` (module docstring): (B, T, d), or with
    sel (B, T) bool the (n, d) rows of the selected positions (everything after the attention is per position,
    so the MLP runs at those positions only)."""
    ff = has_mlp(layer, mlp)
    pick = (lambda y: y) if sel is None else (lambda y: y[sel])
    if norm == "post":
        a = attention(x, p, layer, heads, c, weights)
        h = layer_norm(pick(x + (a[0] if weights else a)), p, f"LA{layer}")
        if ff:
            h = layer_norm(h + mlp_block(h, p, layer), p, f"LF{layer}")
    else:
        xa = layer_norm(x, p, f"LA{layer}") if norm == "pre" else x
        a = attention(xa, p, layer, heads, c, weights)
        xs = pick(x)
        h = xs + pick(a[0] if weights else a)
        if ff:
            h = h + mlp_block(layer_norm(xs, p, f"LF{layer}") if norm == "pre" else xs, p, layer)
    return (h, a[1]) if weights else h


def logit_scale(d: int, heads: int, scale: str = "sqrt") -> float:
    """The attention-logit factor c: 1/sqrt(d/H) (public code) or 1."""
    choice("scale", scale, tr.SCALES)
    return 1.0 / math.sqrt(d // heads) if scale == "sqrt" else 1.0


def full_logits(p: dict, z: torch.Tensor, heads: int = 1, mlp: str = "second", norm: str = "pre",
                scale: str = "sqrt", weights: bool = False, sel: torch.Tensor | None = None):
    """App. E full model: logits (B, T, N) of tokens z (B, T), or with sel (B, T) bool the (n, N) logits of the
    selected positions (row-major order; the second block's MLP runs there only) [and both attention maps]."""
    T = z.shape[1]
    if T > p["P"].shape[0]:
        raise PopgradError(f"sequences have T={T} but the model only {p['P'].shape[0]} positions")
    d = p["E"].shape[1]
    c = logit_scale(d, heads, scale)
    h = p["E"][z] + p["P"][:T]                                              # (B, T, d)
    maps = []
    for layer in (1, 2):
        h = block(h, p, layer, heads, mlp, norm, c, weights, sel if layer == 2 else None)
        if weights:
            h, A = h
            maps.append(A)
    if norm == "pre":
        h = layer_norm(h, p, "LN")
    lg = h @ p["U"].T
    return (lg, maps) if weights else lg


# ----------------------------------------------------------------------------- training step (autograd)
def full_step(run, z, mask, tgt, probe: bool) -> dict:
    """Loss, counts and autograd gradients of one batch, in `training.sgd_step`'s return format."""
    cfg = run.cfg
    if cfg.loss == "in-context":                                            # block 2 after attention: selected rows
        lg = full_logits(run.params, z, cfg.heads, cfg.mlp, cfg.norm, cfg.scale, sel=mask)   # (n, N)
        t = tgt[mask]
        per = F.cross_entropy(lg, t, reduction="none")                      # (n,)
        loss = per.mean() if per.numel() else per.sum()
        n_loss = per.numel()
    else:
        keep = mask | other_mask(mask, cfg.data)
        lg = full_logits(run.params, z, cfg.heads, cfg.mlp, cfg.norm, cfg.scale)        # (B, T, N)
        per = F.cross_entropy(lg.flatten(0, 1), tgt.flatten(), reduction="none").view_as(z)
        n_loss = int(keep.sum())
        loss = (per * keep).sum() / max(n_loss, 1)
    trained = [(k, v) for k, v in run.params.items() if v.requires_grad]
    grads = dict(zip([k for k, _ in trained], torch.autograd.grad(loss, [v for _, v in trained]))) if trained else {}
    with torch.no_grad():
        per = per.detach()
        if cfg.loss == "in-context":
            hits, ctx_sum, per = (lg.argmax(-1) == t).sum(), per.sum(), None
        else:
            hits, ctx_sum = ((lg.argmax(-1) == tgt) & mask).sum(), (per * mask).sum()
    return {"loss": float(loss.detach()) * max(n_loss, 1), "n_loss": n_loss, "hits": int(hits),
            "n": int(mask.sum()), "ctx_sum": ctx_sum, "grads": grads, "per": per}


# ----------------------------------------------------------------------------- probes with moving embeddings
def current_embeddings(p: dict) -> Embeddings:
    """Eq. (7)'s embeddings read off the weights of the same step, float64: w_E = E[k], p_t = P[t],
    w_U = U[k], W_V^1, W_O^1, W_V^2 (all heads). Positive rescalings leave recall (9) unchanged."""
    g = {k: v.detach().double() for k, v in p.items() if k in ("E", "P", "U", "W_V1", "W_O1", "W_V2")}
    return Embeddings(g["E"].T, g["U"], g["P"].T, g["W_V1"], g["W_O1"], g["W_V2"])


def head_kq(p: dict, layer: int, heads: int) -> list:
    """Per head j, its key-query matrix W_Q^{l,j T} W_K^{l,j} (d, d) in the eq. (7) convention (float64)."""
    Wq, Wk = p[f"W_Q{layer}"].detach().double(), p[f"W_K{layer}"].detach().double()
    dh = Wq.shape[0] // heads
    return [Wq[j * dh:(j + 1) * dh].T @ Wk[j * dh:(j + 1) * dh] for j in range(heads)]


def full_recall_probes(p: dict, heads: int, cutoff: int) -> dict:
    """Recall (9) against the current embeddings: W_O^2 (all heads), and W_K^2, W_K^1 of all heads
    (W_Q^T W_K, the sum of the heads' scores, as the public code's probes) and of each head (_h{j});
    plus the public code's readings (for each query, argmax over keys), total and per head."""
    emb = current_embeddings(p)
    tg = eq7_targets(emb)
    W_O2 = p["W_O2"].detach().double()
    out = {"recall_W_O2": memory_recall(W_O2, *tg["W_O2"]), "n_recall_W_O2": int(tg["W_O2"][2].numel())}
    E, P = emb.W_E, emb.P
    ar = torch.arange(E.shape[1])
    n_early = min(cutoff, P.shape[1])
    for layer, name in ((2, "W_K2"), (1, "W_K1")):
        per = head_kq(p, layer, heads)
        mats = [("", sum(per))] + ([(f"_h{j}", W) for j, W in enumerate(per)] if heads > 1 else [])
        for suffix, W in mats:
            out[f"recall_{name}{suffix}"] = memory_recall(W, *tg[name])
            if name == "W_K2":
                out[f"code_W_K2{suffix}"] = _code(W, emb.Phi1 @ E, E, ar)
            else:
                out[f"code_W_K1{suffix}"] = _code(W, P[:, :-1], P[:, 1:], torch.arange(P.shape[1] - 1))
                out[f"code_W_K1_early{suffix}"] = _code(W, P[:, :n_early - 1], P[:, 1:n_early], torch.arange(n_early - 1))
        out[f"n_recall_{name}"] = int(tg[name][2].numel())
    U, V, target = tg["W_K1"]
    W1 = sum(head_kq(p, 1, heads))
    for part, sel in (("early", target < cutoff), ("late", target >= cutoff)):
        out[f"recall_W_K1_{part}"] = memory_recall(W1, U[:, sel], V, target[sel]) if bool(sel.any()) else float("nan")
        out[f"n_recall_W_K1_{part}"] = int(sel.sum())
    return out


def _code(W, keys, queries, targets) -> float:
    """The public code's reading: (1/m) sum_j 1{argmax_i queries_j^T W keys_i = targets[j]}."""
    return float(unique_argmax_hits(memory_scores(W, keys, queries).T, targets).double().mean())


def previous_token_hits(A1: torch.Tensor) -> torch.Tensor:
    """Figure 11 (top): (H,) count of positions t >= 1 whose layer-1 attention argmax is t - 1, per head.

    A1 (B, H, T, T) causal attention of layer 1; n = B (T - 1) positions per head.
    """
    T = A1.shape[-1]
    arg = A1[:, :, 1:, :].argmax(-1)                                        # (B, H, T-1)
    return (arg == torch.arange(T - 1, device=A1.device)).sum((0, 2))


def induction_targets(z: torch.Tensor) -> torch.Tensor:
    """(B, T, T) bool: key s is 'the token after an earlier occurrence' of z_t: 1 <= s <= t and z_{s-1} = z_t."""
    B, T = z.shape
    prev = torch.cat([torch.full_like(z[:, :1], -1), z[:, :-1]], 1)         # z_{s-1}, -1 at s = 0
    return (z[:, :, None] == prev[:, None, :]) & torch.ones(T, T, dtype=torch.bool, device=z.device).tril()


def induction_hits(A2: torch.Tensor, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Figure 11 (bottom): (H,) count of in-context positions t (mask) whose layer-2 attention argmax is
    a token after an earlier occurrence of z_t (`induction_targets`), per head; n = mask.sum()."""
    arg = A2.argmax(-1)                                                     # (B, H, T)
    tg = induction_targets(z)                                               # (B, T, T)
    hit = tg.gather(2, arg.transpose(1, 2)).transpose(1, 2)                 # (B, H, T): tg[b, t, arg[b, h, t]]
    return (hit & mask[:, None, :]).sum((0, 2))


def previous_token_chance(T: int) -> float:
    """Expected previous-token argmax fraction of a uniformly random argmax: mean over t = 1..T-1 of 1/(t+1)."""
    return float(sum(1.0 / (t + 1) for t in range(1, T)) / (T - 1))


def induction_chance(z: torch.Tensor, mask: torch.Tensor) -> float:
    """Expected induction argmax fraction of a uniformly random argmax over s <= t: the mean over in-context
    positions t of (number of induction targets of t) / (t + 1) (frequent triggers have many targets)."""
    T = z.shape[1]
    n_t = induction_targets(z).sum(-1).double() / torch.arange(1, T + 1, dtype=torch.float64)   # (B, T)
    return float(n_t[mask].mean()) if bool(mask.any()) else float("nan")


def top_share(counts, chance: float = 0.0) -> float:
    """The largest head's share of the per-head values above `chance` (excess max(v - chance, 0));
    nan when no head is above chance."""
    c = (torch.as_tensor(counts, dtype=torch.float64) - chance).clamp(min=0)
    tot = float(c.sum())
    return float(c.max()) / tot if tot > 0 else float("nan")


def attention_probes(p: dict, z: torch.Tensor, mask: torch.Tensor, heads: int, mlp: str, norm: str, scale: str,
                     rows: int = 16) -> dict:
    """Per-head previous-token (layer 1) and induction (layer 2) argmax fractions with binomial SE, on
    the first `rows` sequences of the batch, their chance levels (uniform argmax), and the largest
    head's share of each above chance."""

    z, mask = z[:rows], mask[:rows]
    with torch.no_grad():
        _, (A1, A2) = full_logits(p, z, heads, mlp, norm, scale, weights=True)
    n1 = z.shape[0] * (z.shape[1] - 1)
    n2 = int(mask.sum())
    c1, c2 = previous_token_hits(A1), induction_hits(A2, z, mask)
    m1, m2 = attention_mass(A1, A2, z, mask)
    ch1, ch2 = previous_token_chance(z.shape[1]), induction_chance(z, mask)
    out = {"n_prev": n1, "n_induction": n2, "prev_chance": ch1, "induction_chance": ch2,
           "prev_share": top_share(c1.double() / n1, ch1),
           "induction_share": top_share(c2.double() / max(n2, 1), ch2) if n2 else float("nan"),
           "prev_head": int(c1.argmax())}
    for j in range(heads):
        f1 = int(c1[j]) / n1
        f2 = int(c2[j]) / n2 if n2 else float("nan")
        out[f"prev_h{j}"], out[f"prev_h{j}_bse"] = f1, binomial_se(f1, n1)
        out[f"induction_h{j}"], out[f"induction_h{j}_bse"] = f2, binomial_se(f2, n2) if n2 else float("nan")
        out[f"prev_mass_h{j}"], out[f"induction_mass_h{j}"] = float(m1[j]), float(m2[j])
    return out


def attention_mass(A1: torch.Tensor, A2: torch.Tensor, z: torch.Tensor, mask: torch.Tensor):
    """Per head, the mean attention weight on t - 1 over t >= 1 (layer 1) and the mean total weight on the
    induction targets over in-context positions (layer 2): ((H,), (H,)) float64."""
    prev = A1.diagonal(offset=-1, dim1=-2, dim2=-1).double().mean((0, 2))   # A1[b, h, t, t-1]
    tg = induction_targets(z)[:, None]                                      # (B, 1, T, T)
    on = (A2 * tg).sum(-1).double()                                         # (B, H, T)
    ind = (on * mask[:, None]).sum((0, 2)) / mask.sum().clamp(min=1)
    return prev, ind


def full_probe_row(run, step, z, mask, tgt, loss, hits, n, lsum, full) -> dict:
    """`probes.probe_row` for the full model: accuracy, losses, recall (9) against the embeddings of
    the same step (total and per head), the public code's readings, per-head attention fractions."""

    cfg = run.cfg
    n = int(n)
    acc = int(hits) / n if n else float("nan")
    keep = other_mask(mask, cfg.data)
    if full is None:                                                        # the step ran block 2 at queries only
        with torch.no_grad():
            lg = full_logits(run.params, z, cfg.heads, cfg.mlp, cfg.norm, cfg.scale)
            per = F.cross_entropy(lg.flatten(0, 1), tgt.flatten(), reduction="none").view_as(z)
    else:
        per = full[1]
    row = {"step": step, "seed": cfg.seed, "n_in_context": n, "acc_in_context": acc,
           "acc_in_context_se": binomial_se(acc, n),
           "loss_in_context": float(lsum.detach()) / n if n else float("nan"),
           "loss_other": float((per * keep).sum() / keep.sum()) if bool(keep.any()) else float("nan")}
    p = {k: v.detach() for k, v in run.params.items()}
    row.update(full_recall_probes(p, cfg.heads, cfg.cutoff))
    row.update(attention_probes(p, z, mask, cfg.heads, cfg.mlp, cfg.norm, cfg.scale))
    return row


def setup_full(cfg, dev, dtype, model, emb):
    """Parameters (requires_grad per `train_embed`), their initial copy and the SGD optimizer of a full-model run."""
    params = init_full_params(emb, cfg.heads, cfg.mlp, cfg.norm, cfg.seed, dtype, dev)
    for k, v in params.items():
        v.requires_grad_(cfg.train_embed or k not in EMBED_NAMES)
    init = {k: v.detach().clone() for k, v in params.items()}
    trained = [v for v in params.values() if v.requires_grad]
    opt = torch.optim.SGD(trained, lr=cfg.eta, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return params, init, opt
