"""One SGD step of the SPEC §5 model with a hand-written backward pass into reused buffers.

The same model as `popgrad.numerics.transformer` (checked against it and against the
paper-structure module `popgrad.numerics.paper_model` in float64 to 1e-12). What makes it lean:

- Buffers are kept in a `Workspace` and reused from step to step (the (B, T, T) attention
  weights of layer 1 and its gradient, the (B, T, d) activations): no large allocation per step,
  so no page faults after warm-up.
- Layer 1 values Phi_1 x_s come from (N, d) and (T, d) tables; Phi_2 = W_O^2 W_V^2 is formed once.
- Layer 2 is evaluated only at the positions whose loss is needed (in-context tokens): rows are
  sorted by their number of such positions and processed in groups padded to the group's own
  maximum, so one row with many in-context tokens does not pad the whole batch.
- The backward pass computes only the gradients of the trained matrices: layer 1 is
  differentiated only when W_K^1 trains, and the softmax backward uses
  sum_s P_ts dP_ts = dA_t . A_t (no extra (B, T, T) reduction).
- In bfloat16 (`Workspace(low=torch.bfloat16)`, `--precision bfloat16`) the attention matmuls of
  both layers take bfloat16-rounded inputs; softmax, residuals, loss and gradients stay float32.
"""

from __future__ import annotations

import math

import torch

from popgrad.numerics import transformer as tr

GROUP_ROWS = 8          # rows per layer-2 group (sorted by their number of query positions)
LAYER1_BLOCKS = 4       # causal query blocks of layer 1


class Workspace:
    """Named flat buffers that grow to the largest size asked for and are then reused.

    `low` (None or torch.bfloat16): the dtype of the inputs of the attention matmuls of both
    layers (scores, weighted values and their gradients: the O(B T^2 d) work); their products
    come back in the buffers' own dtype (float32), where the softmax, the residual sums, the
    d x d projections and every reduction run.
    """

    def __init__(self, low: torch.dtype | None = None):
        self.flat: dict = {}
        self.low = low

    def get(self, name: str, shape, like: torch.Tensor) -> torch.Tensor:
        n = math.prod(shape)
        buf = self.flat.get(name)
        if buf is None or buf.numel() < n or buf.dtype != like.dtype or buf.device != like.device:
            buf = torch.empty(max(n, 1), dtype=like.dtype, device=like.device)
            self.flat[name] = buf
        return buf[:n].view(shape)


def _bmm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, low) -> torch.Tensor:
    """out <- a @ b (batched); with `low`, the product of the inputs rounded to `low`."""
    if low is None:
        return torch.bmm(a, b, out=out)
    return out.copy_(torch.bmm(a.to(low), b.to(low)))


def _mm(a: torch.Tensor, b: torch.Tensor, low) -> torch.Tensor:
    """a @ b; with `low`, the product of the inputs rounded to `low`, returned in a's dtype."""
    if low is None:
        return torch.matmul(a, b)
    return torch.matmul(a.to(low), b.to(low)).to(a.dtype)


def causal_softmax_(S: torch.Tensor, hidden: torch.Tensor, ws: Workspace, name: str) -> torch.Tensor:
    """In place: S (..., Q, T) <- softmax over the keys not `hidden` (broadcastable bool)."""
    S.masked_fill_(hidden, float("-inf"))
    top = ws.get(name + ".max", S.shape[:-1] + (1,), S)
    torch.amax(S, dim=-1, keepdim=True, out=top)
    S.sub_(top).exp_()
    torch.sum(S, dim=-1, keepdim=True, out=top)
    return S.div_(top)


def query_blocks(T: int) -> list:
    """Causal blocks of layer 1: [(t0, t1)] query ranges; block (t0, t1) sees keys 0..t1-1 only."""
    n = LAYER1_BLOCKS if T % LAYER1_BLOCKS == 0 and T >= 16 * LAYER1_BLOCKS else 1
    step = T // n
    return [(i * step, (i + 1) * step) for i in range(n)]


def layer1_forward(tab: tr.FrozenTables, z: torch.Tensor, W_K1: torch.Tensor, c: float, ws: Workspace):
    """x, v = Phi_1 x, attention weights P1 per query block (B, t1-t0, t1) and h = x + P1 v.

    Query block (t0, t1) attends to keys 0..t1-1: the blocks above the diagonal, all masked,
    are never formed (about 3/8 of the (B, T, T) work with 4 blocks).
    """
    B, T = z.shape
    d = tab.d
    flat = z.reshape(-1)
    X = ws.get("x", (B, T, d), tab.E)
    torch.index_select(tab.E, 0, flat, out=X.view(B * T, d))
    X.add_(tab.P[:T])
    V = ws.get("v", (B, T, d), tab.E)
    torch.index_select(tab.E1, 0, flat, out=V.view(B * T, d))
    V.add_(tab.P1[:T])
    Q = ws.get("q1", (B, T, d), tab.E)
    torch.matmul(X, W_K1 * c, out=Q)
    H = ws.get("h", (B, T, d), tab.E)
    hidden = _upper(T, z.device, ws)
    low = ws.low
    Xl, Vl, Ql = (X, V, Q) if low is None else (X.to(low), V.to(low), Q.to(low))
    Ps = []
    for i, (t0, t1) in enumerate(query_blocks(T)):
        P = ws.get(f"p1.{i}", (B, t1 - t0, t1), tab.E)
        _bmm(Ql[:, t0:t1], Xl[:, :t1].transpose(1, 2), P, low)
        causal_softmax_(P, hidden[t0:t1, :t1], ws, "p1")
        if low is None:
            H[:, t0:t1].copy_(torch.bmm(P, V[:, :t1], out=ws.get("blk", (B, t1 - t0, d), X)))
        else:
            _bmm(P, Vl[:, :t1], H[:, t0:t1], low)
        Ps.append(P)
    H.add_(X)
    return X, V, Ps, H


def _upper(T: int, device, ws: Workspace) -> torch.Tensor:
    """(T, T) bool: key s after query t (hidden by the causal mask)."""
    key = ("upper", T, str(device))
    m = ws.flat.get(key)
    if m is None:
        m = torch.ones(T, T, dtype=torch.bool, device=device).triu_(1)
        ws.flat[key] = m
    return m


def query_groups(mask: torch.Tensor, rows: int = GROUP_ROWS):
    """Groups of rows with their query positions: [(rows (g,), pos (g, m), valid (g, m))].

    Rows are sorted by their number of true entries (descending), cut into groups of `rows`,
    and each group is padded to its own largest count; rows without a query are dropped.
    Padded slots hold some position of their row (a legal index; its weight is zero) and valid = False.
    """
    counts = mask.sum(1)
    order = torch.argsort(counts, descending=True, stable=True)
    packed = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)    # (B, T) true positions first
    sorted_counts = counts[order].tolist()
    out = []
    for start in range(0, mask.shape[0], rows):
        m = sorted_counts[start]
        if m == 0:
            break
        r = order[start:start + rows]
        pos = packed[r, :m]
        valid = torch.arange(m, device=mask.device) < counts[r, None]
        out.append((r, pos, valid))
    return out


def lean_step(tab: tr.FrozenTables, z: torch.Tensor, mask: torch.Tensor, tgt: torch.Tensor, params: dict,
              scale: str, ws: Workspace, keep: torch.Tensor | None = None, want_per: bool = False) -> dict:
    """Loss, accuracy counts and gradients of one batch, without autograd.

    The loss is the mean cross-entropy over the positions of `keep` (default: `mask`, the
    in-context tokens); hits and the in-context loss sum are counted over `mask`. Gradients are
    returned for the matrices of `params` whose requires_grad is True, as {'grads': {name: G}}.
    With `keep` given, layer 2 runs at every position (the loss on all tokens); `want_per`
    also returns the per-position cross-entropy (B, T).
    """
    c = tr.logit_scale(tab.d, scale)
    B, T = z.shape
    d = tab.d
    W1, W2, WO = params["W_K1"].detach(), params["W_K2"].detach(), params["W_O2"].detach()
    WF = params.get("W_F")
    WF = None if WF is None else WF.detach()
    train = {k: bool(v.requires_grad) for k, v in params.items() if v is not None}
    low = ws.low
    X, V, Ps, H = layer1_forward(tab, z, W1, c, ws)
    Phi2 = WO @ tab.V2
    need_dH = train.get("W_K1", False)
    dH = None
    if need_dH:
        dH = ws.get("dh", (B, T, d), tab.E)
        dH.zero_()
    sel = mask if keep is None else keep
    n_loss = int(sel.sum())
    n_ctx = int(mask.sum())
    dW2 = torch.zeros_like(W2)
    dPhi2 = torch.zeros_like(Phi2)
    dWF = None if WF is None else torch.zeros_like(WF)
    loss_sum = torch.zeros((), dtype=X.dtype, device=X.device)
    ctx_sum = torch.zeros((), dtype=X.dtype, device=X.device)
    hits = torch.zeros((), dtype=torch.int64, device=X.device)
    per_all = torch.zeros((B, T), dtype=X.dtype, device=X.device) if want_per else None
    if keep is None:
        groups = query_groups(mask)
    else:
        groups = [(None, None, keep)]
    for rows, pos, valid in groups:
        if rows is None:                                   # every position of every row
            Hg, Hq, tg, ctx = H, H, tgt, mask
            hidden = _upper(T, z.device, ws)
        else:
            Hg = H.index_select(0, rows)                                         # (g, T, d)
            Hq = Hg.gather(1, pos[..., None].expand(-1, -1, d))                   # (g, m, d)
            tg = tgt[rows].gather(1, pos)
            ctx = valid
            hidden = torch.arange(T, device=z.device) > pos[..., None]            # (g, m, T)
        weight = valid.to(X.dtype) / max(n_loss, 1)
        Hl = Hg if low is None else Hg.to(low)
        Q2 = Hq @ (W2 * c)
        P2 = _mm(Q2, Hl.transpose(1, 2), low)
        causal_softmax_(P2, hidden, ws, "p2")
        G = _mm(P2, Hl, low)                                                      # (g, m, d)
        O = torch.addmm(Hq.reshape(-1, d), G.reshape(-1, d), Phi2.T).view_as(Hq)   # h_t + Phi_2 G
        Y = O if WF is None else torch.addmm(O.reshape(-1, d), O.reshape(-1, d), WF.T).view_as(O)
        L = Y @ tab.U.T                                                           # (g, m, N)
        logp = torch.log_softmax(L, dim=-1)
        per = -logp.gather(-1, tg[..., None])[..., 0]                             # (g, m)
        loss_sum += (per * valid).sum()
        ctx_sum += (per * ctx).sum()
        hits += ((L.argmax(-1) == tg) & ctx).sum()
        if per_all is not None and rows is None:
            per_all.copy_(per)
        # backward: dL = (softmax - onehot) * weight
        dL = logp.exp_()
        dL.scatter_add_(-1, tg[..., None], torch.full_like(per[..., None], -1.0))
        dL.mul_(weight[..., None])
        dY = dL @ tab.U                                                           # (g, m, d)
        if WF is not None:
            if train.get("W_F", False):
                dWF.addmm_(dY.reshape(-1, d).T, O.reshape(-1, d))
            dO = torch.addmm(dY.reshape(-1, d), dY.reshape(-1, d), WF).view_as(dY)
        else:
            dO = dY
        if train.get("W_O2", False):
            dPhi2.addmm_(dO.reshape(-1, d).T, G.reshape(-1, d))
        if not (train.get("W_K2", False) or need_dH):
            continue
        dG = dO @ Phi2                                                            # (g, m, d)
        dP = _mm(dG, Hl.transpose(1, 2), low)                                     # (g, m, T)
        rs = (dG * G).sum(-1, keepdim=True)
        dS = dP.sub_(rs).mul_(P2)
        dQ2 = _mm(dS, Hl, low)                                                    # (g, m, d)
        if train.get("W_K2", False):
            dW2.addmm_(Hq.reshape(-1, d).T, dQ2.reshape(-1, d), alpha=c)
        if need_dH:
            dHg = _mm(P2.transpose(1, 2), dG, low)                                # values
            dHg.add_(_mm(dS.transpose(1, 2), Q2, low))                            # keys
            dHq = dO + (dQ2 @ W2.T) * c                                           # residual + queries
            if rows is None:
                dH.add_(dHg).add_(dHq)
            else:
                dHg.scatter_add_(1, pos[..., None].expand(-1, -1, d), dHq)
                dH.index_add_(0, rows, dHg)
    grads = {}
    if train.get("W_O2", False):
        grads["W_O2"] = dPhi2 @ tab.V2.T
    if train.get("W_K2", False):
        grads["W_K2"] = dW2
    if WF is not None and train.get("W_F", False):
        grads["W_F"] = dWF
    if need_dH:
        grads["W_K1"] = layer1_backward(X, V, Ps, H, dH, c, ws)
    return {"loss": loss_sum, "n_loss": n_loss, "hits": hits, "n": n_ctx, "ctx_sum": ctx_sum, "grads": grads,
            "per": per_all}


def layer1_backward(X, V, Ps, H, dH, c: float, ws: Workspace) -> torch.Tensor:
    """Gradient in W_K^1 from dL/dh (B, T, d): h = x + P1 v, P1 = softmax(c x W x^T) (causal, by query block)."""
    B, T, d = X.shape
    A = H.sub_(X)                                                                 # P1 v (h is not needed again)
    rs = ws.get("rs1", (B, T, 1), X)
    torch.sum(A.mul_(dH), dim=-1, keepdim=True, out=rs)                           # sum_s P dP = dA_t . A_t
    dQ = ws.get("dq1", (B, T, d), X)
    low = ws.low
    dHl, Vl, Xl = (dH, V, X) if low is None else (dH.to(low), V.to(low), X.to(low))
    for i, ((t0, t1), P) in enumerate(zip(query_blocks(T), Ps)):
        dP = ws.get(f"dp1.{i}", P.shape, X)
        _bmm(dHl[:, t0:t1], Vl[:, :t1].transpose(1, 2), dP, low)
        dP.sub_(rs[:, t0:t1]).mul_(P)
        if low is None:
            dQ[:, t0:t1].copy_(torch.bmm(dP, X[:, :t1], out=ws.get("blk", (B, t1 - t0, d), X)))
        else:
            _bmm(dP, Xl[:, :t1], dQ[:, t0:t1], low)
    return (X.reshape(-1, d).T @ dQ.reshape(-1, d)).mul_(c)
