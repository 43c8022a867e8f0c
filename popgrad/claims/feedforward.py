"""Claims of eq. (8) (the feed-forward memory of the global bigrams) and eq. (10) (its KL probe).

eq8.token_space          W_U W_F w_E(k) of eq. (8) equals the token-space form G_E l G_U (exact)
eq8.orthonormal_limit    eq. (10) of eq. (8) at orthonormal embeddings = mean_k log(1 + z_k e^floor) (exact)
eq10.direction           eq. (10) as printed is infinite on the shipped counts; popgrad's direction is finite (erratum)
eq8.kl_vs_d              eq. (10) of eq. (8) at random embeddings falls like 1/d to the orthonormal limit (approx)
eq8.assembled_head       (slow) eq. (7) + eq. (8) without the trigger rows in the training model, d up to 2048
eq8.assembled_head_ci    the same at d = 256, 512 (CI size)

The shipped tiny-Shakespeare counts leave 2,822 of the 4,225 bigrams at probability zero; eq. (8)'s
log 0 is floored at `theory.feedforward.DEFAULT_FLOOR` (-12) unless stated.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from popgrad.data import bigram_trigger_model
from popgrad.embeddings import Embeddings, make_embeddings
from popgrad.numerics import feedforward as nf
from popgrad.numerics import transformer as tr
from popgrad.numerics.probes import kl_probe
from popgrad.registry import Claim, Measurement, register
from popgrad.theory import feedforward as ff
from popgrad.tolerances import FLOAT64, nanmax, rel_error

FLOORS = (-5.0, ff.DEFAULT_FLOOR, -20.0)


def shakespeare_pi_b() -> np.ndarray:
    """pi_b (65, 65) of the shipped tiny-Shakespeare counts."""
    return bigram_trigger_model(T=8, K=1).pi_b


# ----------------------------------------------------------------------------- the independent side: plain loops
def loop_eq8(W_E, W_U, pi_b, floor) -> torch.Tensor:
    """Eq. (8) term by term: W_F = sum_{i,j} l(j|i) w_U(j) w_E(i)^T, l = log pi_b or `floor` where pi_b = 0."""
    d, N = W_E.shape
    W_F = torch.zeros(d, d, dtype=torch.float64)
    for i in range(N):
        for j in range(N):
            p = float(pi_b[i][j])
            W_F += (math.log(p) if p > 0 else floor) * torch.outer(W_U[j], W_E[:, i])
    return W_F


def loop_kl(logits, pi_b, direction: str) -> float:
    """(1/N) sum_k KL by a Python loop with math.log: 'pi_b||model' = sum_j p log(p/q), 'model||pi_b' = sum_j q log(q/p)."""
    total = 0.0
    for k, row in enumerate(logits.tolist()):
        m = max(row)
        zsum = sum(math.exp(v - m) for v in row)
        q = [math.exp(v - m) / zsum for v in row]
        p = [float(x) for x in pi_b[k]]
        if direction == "pi_b||model":
            total += sum(pj * math.log(pj / qj) for pj, qj in zip(p, q) if pj > 0)
        else:
            total += sum(qj * (math.log(qj / pj) if pj > 0 else math.inf) for pj, qj in zip(p, q))
    return total / len(logits)


# ----------------------------------------------------------------------------- exact
def measure_token_space() -> Measurement:
    # Eq. (8) at random embeddings (d = 16 < N = 65, and d = 96): the matrix W_U^T l^T W_E^T equals the term-by-term sum,
    # and W_U W_F w_E(k) equals row k of G_E l G_U (the token-space form), float64.
    pb = shakespeare_pi_b()
    errs = {}
    for d, floor in ((16, ff.DEFAULT_FLOOR), (96, -5.0)):
        emb = make_embeddings(d, 65, 2, seed=d)
        W_loop = loop_eq8(emb.W_E, emb.W_U, pb, floor)
        W_F = ff.eq8_matrix(emb.W_E, emb.W_U, ff.floored_log(pb, floor))
        errs[f"W_F d={d}"] = rel_error(W_F, W_loop)
        logits = ff.eq8_logits(emb.W_E.T @ emb.W_E, emb.W_U @ emb.W_U.T, ff.floored_log(pb, floor))
        errs[f"logits d={d}"] = rel_error(logits, emb.W_E.T @ W_loop.T @ emb.W_U.T)
    return Measurement(nanmax(errs.values()), FLOAT64.rtol, "exact", details=errs)


def orthonormal_embeddings(d: int, N: int, seed: int) -> Embeddings:
    """W_E with orthonormal columns and W_U with orthonormal rows (QR of Gaussian matrices); d >= N."""
    gen = torch.Generator().manual_seed(seed)
    qe, _ = torch.linalg.qr(torch.randn(d, N, generator=gen, dtype=torch.float64))
    qu, _ = torch.linalg.qr(torch.randn(d, N, generator=gen, dtype=torch.float64))
    eye = torch.eye(d, dtype=torch.float64)
    return Embeddings(qe, qu.T.contiguous(), torch.zeros(d, 1, dtype=torch.float64), eye, eye, eye)


def measure_orthonormal_limit() -> Measurement:
    # Eq. (10) of eq. (8) at orthonormal embeddings (the d -> infinity limit of N(0, 1/d) embeddings): the closed form
    # (1/N) sum_k log(1 + z_k e^floor) equals popgrad's KL probe on the term-by-term W_F, for three floors.
    pb = shakespeare_pi_b()
    emb = orthonormal_embeddings(80, 65, seed=5)
    tab = tr.frozen_tables(emb)
    errs, vals = {}, {}
    for floor in FLOORS:
        exact = ff.orthonormal_limit_kl(pb, floor)
        probe = kl_probe(tab, loop_eq8(emb.W_E, emb.W_U, pb, floor), pb)
        errs[f"floor {floor:g}"] = abs(exact - probe)                       # nats (the KL is 9e-8 at floor -20)
        vals[floor] = exact
    value = ", ".join(f"floor {f:g}: {v:.3g} nats" for f, v in vals.items()) + f" (uniform predictor: {ff.uniform_kl(pb):.3f})"
    return Measurement(nanmax(errs.values()), FLOAT64.rtol, "exact", note=value, value=value, details=errs)


def measure_direction() -> Measurement:
    # Eq. (10) as printed, KL(sigma(W_U W_F w_E(k)) || pi_b(.|k)), is +inf on the shipped counts for any W_F (some
    # pi_b(j|k) = 0 in every one of the 65 rows, sigma > 0 everywhere): the vectorized formula and a plain loop agree on +inf;
    # the direction popgrad computes, KL(pi_b || sigma), is finite and equals the loop (float64), in both directions
    # on a strictly positive pi_b too.
    pb = shakespeare_pi_b()
    gen = torch.Generator().manual_seed(9)
    logits = torch.randn(65, 65, generator=gen, dtype=torch.float64) * 2
    positive = torch.softmax(torch.randn(65, 65, generator=gen, dtype=torch.float64), 1).numpy()
    printed = (ff.eq10_kl(logits, pb, "model||pi_b"), loop_kl(logits, pb, "model||pi_b"))
    errs = {"printed direction finite": float(sum(math.isfinite(v) for v in printed))}
    for name, p in (("shakespeare", pb), ("positive", positive)):
        for direction in ff.DIRECTIONS if name == "positive" else ("pi_b||model",):
            errs[f"{name} {direction}"] = abs(ff.eq10_kl(logits, p, direction) - loop_kl(logits, p, direction)) / loop_kl(logits, p, direction)
    rows = int((pb <= 0).any(1).sum())
    value = f"as printed: +inf ({rows} of 65 rows of pi_b have a zero); reversed (popgrad): {ff.eq10_kl(logits, pb):.3f} at these logits"
    return Measurement(nanmax(errs.values()), FLOAT64.rtol, "erratum", note=value, value=value, details=errs)


register(Claim(
    id="eq8.token_space",
    statement="W_F of eq. (8) is W_U^T l^T W_E^T and W_U W_F w_E(k) is row k of G_E l G_U (G_E = W_E^T W_E, G_U = W_U W_U^T)",
    where="Sec. 4.2, eq. (8)",
    compared="theory.feedforward.eq8_matrix / eq8_logits vs the term-by-term double sum of (8) (d = 16, 96; floors -12, -5), "
             "float64; shared: embeddings and pi_b",
    kind="exact", tolerance="rel <= 1e-10 (float64)", measure=measure_token_space,
    code=("popgrad.theory.feedforward.eq8_matrix", "popgrad.theory.feedforward.eq8_logits"),
    sides=(("popgrad.theory.feedforward.eq8_matrix", "popgrad.theory.feedforward.eq8_logits"),
           ("popgrad.claims.feedforward.loop_eq8",))))
register(Claim(
    id="eq8.orthonormal_limit",
    statement="At orthonormal embeddings (d -> infinity) eq. (10) of eq. (8) with log 0 floored at f is exactly "
              "(1/N) sum_k log(1 + z_k e^f), z_k the number of zero bigrams in row k",
    where="Sec. 4.2, eq. (8); Sec. 5, eq. (10)",
    compared="theory.feedforward.orthonormal_limit_kl (closed form) vs numerics.probes.kl_probe on the term-by-term W_F "
             "with QR-orthonormal W_E, W_U (d = 80), floors -5, -12, -20; shared: pi_b",
    kind="exact", tolerance="|difference| <= 1e-10 nats (float64)", measure=measure_orthonormal_limit,
    code=("popgrad.theory.feedforward.orthonormal_limit_kl", "popgrad.numerics.probes.kl_probe"),
    sides=(("popgrad.theory.feedforward.orthonormal_limit_kl",),
           ("popgrad.numerics.probes.kl_probe", "popgrad.claims.feedforward.loop_eq8"))))
register(Claim(
    id="eq10.direction",
    finding='eq. (10): the KL probe of W_F against the bigram statistics, as printed',
    statement="Eq. (10) as printed, KL(sigma(W_U W_F w_E(k)) || pi_b(.|k)), is infinite on the tiny-Shakespeare counts; the "
              "finite probe is KL(pi_b(.|k) || sigma(W_U W_F w_E(k))) (popgrad, the paper's public code)",
    where="Sec. 5, eq. (10)",
    compared="theory.feedforward.eq10_kl in both directions vs a Python loop with math.log, on the shipped pi_b and a "
             "strictly positive one, float64; shared: logits and pi_b",
    kind="exact", tolerance="printed direction +inf on both sides; finite directions rel <= 1e-10", measure=measure_direction,
    code=("popgrad.theory.feedforward.eq10_kl",),
    sides=(("popgrad.theory.feedforward.eq10_kl",), ("popgrad.claims.feedforward.loop_kl",))))


# ----------------------------------------------------------------------------- approximate: KL (10) against d
KL_DS = tuple(2 ** k for k in range(7, 21))           # d = 128 .. 1,048,576
KL_FIT_FROM = 2 ** 11                                  # the 1/d fit uses d >= 2048
KL_DRAWS = 40
KL_CONSTANT_FROM = 2 ** 17                             # d (KL - limit) pooled over d >= 2^17 against C


def measure_kl_vs_d() -> Measurement:
    # Eq. (10) of eq. (8) (floor -12) at random N(0, 1/d) embeddings, 40 draws per d from 128 to 2^20 (Wishart Gram
    # matrices): KL(d) - KL(infinity) ~ C d^a with a = -1 (|a + 1| <= 0.1, bootstrap interval inside [-1.15, -0.85]),
    # KL(infinity) the exact orthonormal limit. Value checks: at d = 256 the Gram path's mean equals the mean over 40
    # full draws of make_embeddings through the KL probe of the model (within 4 se); the d at which (8) beats the
    # uniform predictor (KL(pi_b || U) = 2.27) is reported; d (KL - limit), pooled over d >= 2^17, equals the exact
    # second-order constant C of theory.feedforward.kl_excess_constant within 4 se.
    pb = shakespeare_pi_b()
    limit = ff.orthonormal_limit_kl(pb)
    samples = nf.kl_versus_d(pb, KL_DS, KL_DRAWS, seed=0)
    fit = {d: v for d, v in samples.items() if d >= KL_FIT_FROM}
    a, lo, hi, C_fit = nf.excess_rate(fit, limit)
    direct = []
    for s in range(KL_DRAWS):
        emb = make_embeddings(256, 65, 1, seed=1000 + s)
        direct.append(kl_probe(tr.frozen_tables(emb), ff.eq8_matrix(emb.W_E, emb.W_U, ff.floored_log(pb)), pb))
    gram = samples[256]
    z = abs(np.mean(direct) - gram.mean()) / math.hypot(np.std(direct, ddof=1) / math.sqrt(KL_DRAWS), gram.std(ddof=1) / math.sqrt(KL_DRAWS))
    uni = ff.uniform_kl(pb)
    beats = [d for d in KL_DS if samples[d].mean() < uni]
    C = ff.kl_excess_constant(pb)
    scaled = np.concatenate([d * (samples[d] - limit) for d in KL_DS if d >= KL_CONSTANT_FROM])     # d (KL - limit)
    dC = (scaled.mean(), scaled.std(ddof=1) / math.sqrt(scaled.size))
    zC = abs(dC[0] - C) / dC[1]
    error = max(abs(a + 1) - 0.1, lo - (-0.85), -1.15 - hi, z - 4.0, zC - 4.0, 0.0)
    value = (f"KL = {samples[128].mean():.2f} ± {samples[128].std(ddof=1) / math.sqrt(KL_DRAWS):.2f} nats at d = 128, "
             f"{samples[2 ** 20].mean():.5f} at d = 2^20 -> {limit:.5f} exactly; excess ~ d^{a:.3f} [{lo:.3f}, {hi:.3f}], "
             f"d x excess (d >= 2^17) {dC[0]:.0f} ± {dC[1]:.0f} vs {C:.0f} (second order, exact); "
             f"below the uniform predictor ({uni:.2f}) from d = {beats[0] if beats else 'none'}")
    return Measurement(error, 0.0, "approx", rate=f"d^{a:.2f}", note=value, value=value,
                       details={"means": {d: float(v.mean()) for d, v in samples.items()},
                                "se": {d: float(v.std(ddof=1) / math.sqrt(v.size)) for d, v in samples.items()},
                                "limit": limit, "exponent": (a, lo, hi), "C_fit": C_fit, "C_second_order": C,
                                "d_times_excess": dC, "z_constant": zC, "z_direct_vs_gram_d256": z,
                                "direct_d256": float(np.mean(direct)), "uniform": uni})


register(Claim(
    id="eq8.kl_vs_d",
    statement="Eq. (8) stores the bigrams only at large d: its KL (10) at random embeddings falls like 1/d to the "
              "orthonormal limit and is below the uniform predictor's only from d ~ 10^3",
    where="Sec. 4.2, eq. (8); Sec. 5, eq. (10)",
    compared="eq. (10) of eq. (8) (floor -12) at Wishart Gram matrices, 40 draws per d = 2^7..2^20, vs the exact orthonormal "
             "limit (fitted exponent of the excess, d >= 2048) and the exact second-order constant C/d; at d = 256 vs full embeddings through numerics.probes.kl_probe; "
             "shared: pi_b",
    kind="approx", tolerance="|a + 1| <= 0.1 and the 95% interval inside [-1.15, -0.85]; Gram vs full draws within 4 se; "
                             "d (KL - limit) vs the second-order constant within 4 se",
    measure=measure_kl_vs_d, outcome="not at App. E's d (needs d of order 10^4)",
    code=("popgrad.numerics.feedforward.kl_versus_d", "popgrad.numerics.feedforward.wishart_gram",
          "popgrad.theory.feedforward.orthonormal_limit_kl", "popgrad.theory.feedforward.kl_excess_constant",
          "popgrad.numerics.probes.kl_probe"),
    finding="eq. (8) stores the global bigrams in W_F (KL (10) small)"))


# ----------------------------------------------------------------------------- approximate: (7) + (8) in the training model
ASSEMBLED = dict(ds=(256, 512, 1024, 2048), T=256, K=3, sequences=16, seeds=(0, 1, 2))
ASSEMBLED_CI = dict(ds=(256, 512), T=128, K=3, sequences=8, seeds=(0, 1, 2))


def assembled_table(ds, T, K, sequences, seeds) -> dict:
    """{d: {variant: [per-seed summaries]}} of eq. (7) + eq. (8) (fixed frequent triggers, beta = 10, floor -12)."""
    model = bigram_trigger_model(T=T, K=K, triggers="frequent")
    out = {}
    for d in ds:
        per = [nf.summarize(nf.assembled_head(model, d, sequences=sequences, seed=s)) for s in seeds]
        out[d] = {v: [p[v] for p in per] for v in per[0]}
    return out


def _mean_se(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


def measure_assembled(size: dict) -> Measurement:
    # Eq. (7) (W_K^2 over the fixed triggers Q, beta = 10) plus eq. (8) without the rows i in Q (Sec. 4.2's remark for
    # fixed triggers), assembled in the training model, model C with K = 3 fixed frequent triggers, 3 embedding seeds per d.
    # Measured, as the paper leaves the size open: (a) the head alone predicts the in-context tokens (>= 0.9 at the
    # largest d) and its loss at non-trigger positions is ln N within 0.1 (value: W = 0 predicts uniformly);
    # (b) adding (8) destroys the head's in-context predictions at every d measured (accuracy below the head alone by
    # >= 3 se): W_F's logits on the other parts of the residual stream (positions, the head's output) are noise of
    # size ~ ||l|| / sqrt(d), far above the head's unit margin; (c) the loss at non-trigger positions exceeds the
    # entropy of pi_b there by a gap that falls with d (fitted exponent < 0 by >= 3 se), larger than the gap of
    # (8)'s memory alone (W_U W_F w_E(z_t), eq. (10) weighted by the positions' tokens).
    tab = assembled_table(size["ds"], size["T"], size["K"], size["sequences"], size["seeds"])
    ds = list(size["ds"])
    acc = {d: {v: _mean_se([r["acc"][0] for r in tab[d][v]]) for v in ("none", "no-triggers")} for d in ds}
    gap = {d: {v: _mean_se([r["gap"][0] for r in tab[d][v]]) for v in ("none", "no-triggers", "W_F w_E only")} for d in ds}
    loss_none = _mean_se([r["loss"][0] for d in ds for r in tab[d]["none"]])
    ent = _mean_se([r["entropy"][0] for d in ds for r in tab[d]["none"]])
    drops = [(acc[d]["none"][0] - acc[d]["no-triggers"][0]) / max(math.hypot(acc[d]["none"][1], acc[d]["no-triggers"][1]), 1e-12)
             for d in ds]
    logs = np.log([[r["gap"][0] for r in tab[d]["no-triggers"]] for d in ds])          # (len(ds), seeds)
    x = np.log(ds)
    slopes = [float(np.polyfit(x, logs[:, s], 1)[0]) for s in range(logs.shape[1])]
    slope = _mean_se(slopes)
    lnN = math.log(65)
    error = max(0.9 - acc[ds[-1]]["none"][0], abs(loss_none[0] - lnN) - 0.1, Z_ASSEMBLED - min(drops),
                Z_ASSEMBLED - (-slope[0] / max(slope[1], 1e-12)),
                max(gap[d]["W_F w_E only"][0] - gap[d]["no-triggers"][0] for d in ds), 0.0)
    big = ds[-1]
    value = (f"d = {big}: in-context accuracy head alone {acc[big]['none'][0]:.3f} ± {acc[big]['none'][1]:.3f}, with (8) "
             f"{acc[big]['no-triggers'][0]:.3f} ± {acc[big]['no-triggers'][1]:.3f}; global loss - H(pi_b) "
             f"{gap[big]['no-triggers'][0]:.2f} ± {gap[big]['no-triggers'][1]:.2f} nats (memory alone "
             f"{gap[big]['W_F w_E only'][0]:.2f}), ~ d^{slope[0]:.2f} ± {slope[1]:.2f}; H = {ent[0]:.3f}; head alone's global "
             f"loss {loss_none[0]:.3f} vs ln N = {lnN:.3f}")
    return Measurement(error, 0.0, "approx", rate=f"gap d^{slope[0]:.2f}", note=value, value=value,
                       details={"accuracy": acc, "gap": gap, "slope_per_seed": slopes, "drop_in_se": drops,
                                "entropy": ent, "loss_head_alone": loss_none,
                                "printed_acc": {d: _mean_se([r["acc"][0] for r in tab[d]["printed"]]) for d in ds},
                                "raw": {d: tab[d] for d in ds}, **{k: v for k, v in size.items() if k != "ds"}})


Z_ASSEMBLED = 3.0
_ASSEMBLED_COMPARED = ("in-context accuracy and loss at non-trigger positions (t <= T-2) of eq. (7) (W_K^2 over Q, beta 10) "
                       "alone, plus eq. (8) without Q's rows, and plus (8) as printed, in numerics.transformer (unit "
                       "embeddings, no logit factor), model C with K=3 fixed frequent triggers; gap = loss - H(pi_b(.|z_t)) "
                       "at the same positions; 3 embedding seeds; shared: sequences")
register(Claim(
    id="eq8.assembled_head",
    statement="The hand-built head (7) plus (8) without the trigger rows does not give the head's in-context accuracy at "
              "d <= 2048 (W_F's noise on the residual stream is ~ ||l|| / sqrt(d)); the global loss exceeds H(pi_b) by a gap "
              "that falls with d",
    where="Sec. 4.2, eq. (7)-(8) and the remark on fixed triggers",
    compared=_ASSEMBLED_COMPARED + f"; d = {', '.join(map(str, ASSEMBLED['ds']))}, T = {ASSEMBLED['T']}, "
             f"{ASSEMBLED['sequences']} sequences per seed",
    kind="approx", tolerance="head alone >= 0.9 at the largest d and its global loss within 0.1 of ln N; with (8) below the "
                             "head alone by >= 3 se at every d; gap exponent < 0 by >= 3 se; gap >= the memory alone's",
    measure=lambda: measure_assembled(ASSEMBLED), outcome="differs at d <= 2048", slow=True,
    code=("popgrad.numerics.feedforward.assembled_head", "popgrad.numerics.feedforward.assembled_params"),
    finding="with fixed triggers, (8) without the trigger rows leaves the in-context predictions to the head"))
register(Claim(
    id="eq8.assembled_head_ci",
    statement="As eq8.assembled_head at a CI size (d = 256, 512; T = 128)",
    where="Sec. 4.2, eq. (7)-(8) and the remark on fixed triggers",
    compared=_ASSEMBLED_COMPARED + f"; d = 256, 512, T = {ASSEMBLED_CI['T']}, {ASSEMBLED_CI['sequences']} sequences per seed",
    kind="approx", tolerance="as eq8.assembled_head",
    measure=lambda: measure_assembled(ASSEMBLED_CI),
    code=("popgrad.numerics.feedforward.assembled_head", "popgrad.numerics.feedforward.assembled_params")))
