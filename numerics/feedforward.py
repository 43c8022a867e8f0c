"""Eq. (8) measured: KL (10) of the printed W_F against d, and the hand-built head (7) plus (8) in the training model.

    kl_versus_d        eq. (10) of eq. (8) at random N(0, 1/d) embeddings, through Wishart Gram matrices
                       (`popgrad.theory.feedforward`: the logits depend on the embeddings only through
                       G_E = W_E^T W_E and G_U = W_U W_U^T), any d at a cost independent of d
    excess_rate        the exponent a of KL(d) - KL(infinity) ~ C d^a, with a bootstrap interval over draws
    kl_table           the rows `popgrad feedforward` prints (mean ± se per d, excess, d x excess) and the fit on d >= fit_from
    assembled_head     eq. (7) + eq. (8) (trigger rows dropped, or as printed) in the training model
                       (`popgrad.numerics.transformer`, unit embeddings, no logit factor): in-context accuracy,
                       and the loss at non-trigger positions against the entropy of pi_b there
"""

from __future__ import annotations

import math

import numpy as np
import torch

from popgrad.embeddings import make_embeddings
from popgrad.errors import PopgradError, positive_int
from popgrad.numerics import induction_head as ih
from popgrad.numerics import samplers
from popgrad.numerics import transformer as tr
from popgrad.rates import loglog_slope
from popgrad.theory import feedforward as ff


def wishart_gram(N: int, d: int, rng: np.random.Generator, count: int = 1) -> torch.Tensor:
    """`count` draws (count, N, N) of G = X^T X / d, X (d, N) with i.i.d. N(0, 1) entries (Wishart(d, I/d)),
    by Bartlett's decomposition G = A A^T / d: A lower triangular, A_ii^2 ~ chi2(d - i), A_ij ~ N(0, 1)
    (i > j, i from 0). Cost O(N^3), independent of d; needs d >= N."""
    positive_int("N", N)
    positive_int("d", d)
    if d < N:
        raise PopgradError(f"wishart_gram needs d >= N (a full-rank Gram matrix), got d={d} < N={N}")
    A = np.tril(rng.standard_normal((count, N, N)), -1)                                 # (count, N, N)
    A[:, np.arange(N), np.arange(N)] = np.sqrt(rng.chisquare(d - np.arange(N), size=(count, N)))
    A = torch.from_numpy(A)
    return A @ A.transpose(1, 2) / d


def kl_versus_d(pi_b, ds, draws: int = 40, floor: float = ff.DEFAULT_FLOOR, seed: int = 0) -> dict:
    """{d: (draws,) array}: eq. (10) (direction pi_b || model) of eq. (8) at independent random W_E, W_U."""
    ell = ff.floored_log(pi_b, floor)
    N = ell.shape[0]
    rng = np.random.default_rng(seed)
    out = {}
    for d in ds:
        G_E, G_U = wishart_gram(N, d, rng, draws), wishart_gram(N, d, rng, draws)
        out[int(d)] = np.array([ff.eq10_kl(ff.eq8_logits(G_E[i], G_U[i], ell), pi_b) for i in range(draws)])
    return out


def excess_rate(samples: dict, limit: float, resamples: int = 1000, seed: int = 0, level: float = 0.95):
    """Exponent a of mean KL(d) - limit ~ C d^a over the d of `samples`, and a percentile-bootstrap interval
    (draws resampled at every d). Returns (a, lo, hi, C) with C the geometric-mean prefactor."""
    ds = sorted(samples)
    means = [samples[d].mean() - limit for d in ds]
    if min(means) <= 0:
        raise PopgradError("excess_rate: some mean KL is not above the limit; use larger d or more draws")
    a = loglog_slope(ds, means)
    C = float(np.exp(np.mean(np.log(means) - a * np.log(ds))))
    rng = np.random.default_rng(seed)
    fits = []
    for _ in range(resamples):
        m = [rng.choice(samples[d], size=samples[d].size).mean() - limit for d in ds]
        if min(m) > 0:
            fits.append(loglog_slope(ds, m))
    q = 100 * (1 - level) / 2
    lo, hi = np.percentile(fits, [q, 100 - q])
    return a, float(lo), float(hi), C


def kl_table(samples: dict, limit: float, fit_from: int) -> tuple[list[dict], tuple]:
    """Rows {d, kl (mean over draws), kl_se (ddof 1), excess = kl - limit, d_times_excess} per d of `samples`, and
    excess_rate's (a, lo, hi, C) fitted on the d >= fit_from."""
    fit = {d: v for d, v in samples.items() if d >= fit_from}
    if len(fit) < 2:
        raise PopgradError(f"fit_from {fit_from}: needs at least two d at or above it")
    rows = [{"d": d, "kl": float(v.mean()), "kl_se": float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan"),
             "excess": float(v.mean()) - limit, "d_times_excess": d * (float(v.mean()) - limit)} for d, v in samples.items()]
    return rows, excess_rate(fit, limit)


# ----------------------------------------------------------------------------- (7) + (8) in the training model
def assembled_params(emb, model, beta: float = 10.0, floor: float = ff.DEFAULT_FLOOR, W_F: str = "no-triggers") -> dict:
    """Eq. (7) with W_K^2 over the fixed triggers Q, plus W_F: eq. (8) without the rows i in Q ('no-triggers', the
    paper's remark for fixed triggers), as printed ('printed') or none ('none'); float64 (d, d) matrices."""
    mats = ih.hand_built(emb, beta, beta, tokens=model.triggers)
    if W_F != "none":
        drop = model.triggers if W_F == "no-triggers" else ()
        mats["W_F"] = ff.eq8_matrix(emb.W_E, emb.W_U, ff.floored_log(model.pi_b, floor, drop_rows=drop))
    return mats


def assembled_head(model, d: int, variants=("none", "no-triggers", "printed"), sequences: int = 32, batch: int = 16,
                   beta: float = 10.0, floor: float = ff.DEFAULT_FLOOR, seed: int = 0, dtype=torch.float32) -> dict:
    """Per variant of W_F: in-context accuracy (hits, n) and, at non-trigger positions t <= T-2, per-sequence sums of the
    loss, of the entropy H(pi_b(.|z_t)) and counts (so that se are across sequences). Model C with fixed triggers.
    Also 'W_F w_E only': the logits W_U W_F w_E(z_t) of eq. (8)'s memory alone (no residual stream, no head)."""
    if model.triggers is None:
        raise PopgradError("assembled_head needs fixed triggers (the remark of Sec. 4.2 drops their rows from (8))")
    emb = make_embeddings(d, model.N, model.T, seed=seed)
    tab = tr.frozen_tables(emb.to(dtype=dtype))
    pb = torch.as_tensor(model.pi_b, dtype=torch.float64)
    ent = -torch.where(pb > 0, pb * torch.log(pb.clamp(min=1e-300)), torch.zeros_like(pb)).sum(1)      # (N,)
    params = {v: {k: m.to(dtype) for k, m in assembled_params(emb, model, beta, floor, v).items()} for v in variants}
    sampler = samplers.model_c_sampler(model, "cpu")
    gen = samplers.make_generator(40_000 + seed, "cpu")
    Q = torch.as_tensor(model.triggers)
    variants = tuple(variants)
    if "no-triggers" not in variants:
        raise PopgradError("assembled_head: variants must include 'no-triggers'")
    out = {v: {"hits": 0, "n": 0, "loss": [], "entropy": [], "count": []} for v in variants + ("W_F w_E only",)}
    with torch.no_grad():
        for start in range(0, sequences, batch):
            z, q, _ = samplers.sample_model_c(sampler, min(batch, sequences - start), gen)
            z, q = z.long(), q.long()
            tgt = torch.cat([z[:, 1:], z[:, -1:]], 1)                                     # (B, T)
            in_ctx = ((z[:, :, None] == q[:, None, :]) & ((z[:, :, None] == q[:, None, :]).cumsum(1) >= 2)).any(-1)
            in_ctx[:, -1] = False
            glob = ~(z[:, :, None] == Q).any(-1)
            glob[:, -1] = False
            for v in variants + ("W_F w_E only",):
                if v == "W_F w_E only":                                                   # eq. (8)'s memory alone: W_U W_F w_E(z_t)
                    lg = (tab.E[z] @ params["no-triggers"]["W_F"].T @ tab.U.T).double()
                else:
                    lg = tr.logits(tab, z, params[v]).double()                            # (B, T, N)
                per = torch.nn.functional.cross_entropy(lg.flatten(0, 1), tgt.flatten(), reduction="none").view_as(z)
                o = out[v]
                o["hits"] += int(((lg.argmax(-1) == tgt) & in_ctx).sum())
                o["n"] += int(in_ctx.sum())
                o["loss"] += (per * glob).sum(1).tolist()
                o["entropy"] += (ent[z] * glob).sum(1).tolist()
                o["count"] += glob.sum(1).tolist()
    return out


def summarize(res: dict) -> dict:
    """Accuracy (p, binomial se); global loss, entropy and their gap (ratio estimates, se across sequences)."""
    out = {}
    for v, o in res.items():
        p = o["hits"] / max(o["n"], 1)
        L, H, n = (np.asarray(o[k], dtype=float) for k in ("loss", "entropy", "count"))
        row = {"acc": (p, math.sqrt(p * (1 - p) / max(o["n"], 1))), "n_in_context": o["n"], "positions": int(n.sum())}
        for name, x in (("loss", L), ("entropy", H), ("gap", L - H)):
            r = x.sum() / n.sum()                                                      # ratio estimator over sequences
            resid = x - r * n
            row[name] = (float(r), float(math.sqrt((resid ** 2).sum() / max(n.size - 1, 1) / n.size) / n.mean()))
        out[v] = row
    return out
