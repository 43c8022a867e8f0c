"""Training on noisy in-context recall (model E) and truncating the feed-forward layer at test time.

popgrad's two-layer model of SPEC §5 with a linear feed-forward W_F (`popgrad.numerics.training`,
data 'E', loss on all tokens) is trained by SGD; the paper's model has ReLU MLPs in both layers
(SPEC §7), this is the simplified counterpart. At the in-context trigger positions of fresh
test batches (z_i = q seen before; target ybar or the noise token) it measures, with and
without W_F (W_F dropped at test time, the talk's truncation):

    p_noise      mean softmax probability of the noise token
    acc_y        argmax = ybar (the in-context answer), at positions where ybar already
                 appeared in the context (after an earlier q), so that it can be recalled
    attn_y, attn_noise   layer-2 attention mass of the query on the positions that hold ybar /
                 the noise token right after an earlier q (the talk's Result 2)
    ff_noise     the feed-forward memory alone: 1 if argmax_k w_U(k)^T W_F w_E(q) is the noise
                 token, and its margin over the best other token
    head_recall_no_ff / _full   recall (9) of the head's output map over the outputs k:
                 argmax_k' w_U(k')^T M W_V^2 w_E(k) = k with M = W_O^2 (W_F removed) or (I + W_F) W_O^2
"""

from __future__ import annotations

import math

import numpy as np
import torch

from popgrad.numerics import samplers, training as trn
from popgrad.numerics import transformer as tr
from popgrad.numerics.samplers import cpu_threads


def truncation_metrics(run, z: torch.Tensor, ybar: torch.Tensor) -> dict:
    """The module's test metrics on a batch z (B, T) of model E with outputs ybar (B,)."""
    model, cfg = run.model, run.cfg
    q, noise = model.q, model.noise
    params = {k: v.detach() for k, v in run.params.items()}
    is_q = z == q
    ctx = is_q & (is_q.cumsum(1) >= 2)
    ctx[:, -1] = False
    out_pos = torch.zeros_like(is_q)
    out_pos[:, 1:] = is_q[:, :-1]                                       # positions right after a q
    y_earlier = ((z == ybar[:, None]) & out_pos).cumsum(1) > 0          # ybar already in the context
    b, i = torch.nonzero(ctx, as_tuple=True)
    res = {"n_positions": int(b.numel())}
    with torch.no_grad():
        c = tr.logit_scale(run.tab.d, cfg.scale)
        h = tr.layer1(run.tab, z, params["W_K1"], c)
        for name, WF in (("full", params.get("W_F")), ("no_ff", None)):
            p = dict(params, W_F=WF)
            probs = torch.softmax(tr.logits(run.tab, z, p, cfg.scale).double(), -1)[b, i]     # (P, V)
            rec = y_earlier[b, i]
            res[f"p_noise_{name}"] = _mean_se(probs[:, noise])
            res[f"acc_y_{name}"] = _mean_se((probs[rec].argmax(-1) == ybar[b[rec]]).double())
            res[f"p_y_{name}"] = _mean_se(probs[rec, ybar[b[rec]]])
        S = torch.einsum("pd,ptd->pt", h[b, i] @ (params["W_K2"] * c), h[b])   # (P, T) query i over keys
        S = S.masked_fill(torch.arange(z.shape[1], device=z.device)[None, :] > i[:, None], float("-inf"))
        A = torch.softmax(S.double(), -1)
        on_y = out_pos[b] & (z[b] == ybar[b][:, None])
        on_noise = out_pos[b] & (z[b] == noise)
        res["attn_y"] = _mean_se((A * on_y).sum(1))
        res["attn_noise"] = _mean_se((A * on_noise).sum(1))
        outs = torch.as_tensor(model.outputs, device=z.device)
        head = (params["W_O2"] @ run.tab.V2).double() @ run.tab.E[outs].double().T               # (d, L) Phi_2 w_E(k)
        for name, M in (("no_ff", head), ("full", head + params["W_F"].double() @ head if params.get("W_F") is not None else head)):
            res[f"head_recall_{name}"] = float(((run.tab.U.double() @ M).argmax(0) == outs).double().mean())
        if params.get("W_F") is not None:
            score = run.tab.U.double() @ params["W_F"].double() @ run.tab.E[q].double()       # (V,)
            others = torch.cat([score[:noise], score[noise + 1:]])
            res["ff_noise"] = float(score[noise] > others.max())
            res["ff_margin"] = float(score[noise] - others.max())
    return res


def _mean_se(v: torch.Tensor) -> tuple:
    """(mean, standard error) of a 1-d tensor (nan when empty)."""
    v = v.double().flatten()
    if v.numel() == 0:
        return (math.nan, math.nan)
    se = float(v.std(unbiased=True) / math.sqrt(v.numel())) if v.numel() > 1 else math.nan
    return (float(v.mean()), se)


def train_noisy_cell(N: int, T: int, eps: float, d: int, batch: int, steps: int, eta: float, probe_every: int,
                     test_batch: int, scale: str, embed: str, seed: int) -> dict:
    """One seed (a pure sweep cell): train on model E, loss on all tokens, linear W_F; curves of the
    metrics every `probe_every` steps on a fixed test batch, and the final metrics on a fresh one."""
    cfg = trn.TrainConfig(data="E", N=N, T=T, eps=eps, d=d, batch=batch, steps=steps, eta=eta, loss="all",
                          W_F=True, probe_every=probe_every, seed=seed, device="cpu", scale=scale, embed=embed,
                          cutoff=min(64, T))
    with cpu_threads("cpu"):
        run = trn.setup(cfg)
        stream = trn.BatchStream(run.model, run.cfg, run.tab.E.device, seed=seed + 2)
        gen = samplers.make_generator(seed + 1000)
        z_probe, y_probe = samplers.sample_model_e(run.model, test_batch, gen)
        curves = []
        for step in range(steps + 1):
            if step % probe_every == 0 or step == steps:
                curves.append({"step": step, **_flat(truncation_metrics(run, z_probe, y_probe))})
            if step == steps:
                break
            z, mask, tgt = next(stream)
            out = trn.sgd_step(run, z, mask, tgt, False)
            run.opt.zero_grad(set_to_none=True)
            for name, g in out["grads"].items():
                run.params[name].grad = g
            run.opt.step()
        z_test, y_test = samplers.sample_model_e(run.model, test_batch, gen)
        final = _flat(truncation_metrics(run, z_test, y_test))
    return {"curves": curves, "final": final}


def _flat(m: dict) -> dict:
    out = {}
    for k, v in m.items():
        if isinstance(v, tuple):
            out[k], out[k + "_se"] = v
        else:
            out[k] = v
    return out


def seed_summary(values, key: str) -> tuple:
    """(mean over seeds, standard error over seeds) of final[key]."""
    v = np.asarray([r["final"][key] for r in values], dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
