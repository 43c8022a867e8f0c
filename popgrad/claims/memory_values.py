"""Every number `popgrad memories` and `popgrad capacity` print, and the helpers behind them, on small fixed
inputs against plain loops, closed forms and scipy (float64, tolerance ~1e-10 where exact).

memories.zipf_values_exact     zipf_memories: zipf_probs, map_outputs, infinite_memory_error, scheme_weights,
                               population_weights (the threshold stores exactly k tokens), k_grid,
                               theorem_exponent, mc_z_score, fitted_exponents (exact power laws with tiny
                               noise: point, centred 95 % interval, the zero-error floor), n_sweep / d_sweep
                               rows (error = mean, se = sem) and the `hutter` / `zipf` table columns
                               (z, mc_se, error_median, chance_floor) vs plain loops
memories.zipf_error_competitors  memory_error at M = 3 and 2 outputs where its closed-form error is known: an
                               unstored query competes with K - 1 unstored outputs (target unstored) or K
                               (target stored); ties are misses; tail = 0 counts the mass; its se is the
                               binomial se of the query draws (mass^2 r (1 - r) / tail)
memories.readout_values_exact  moment_values vs the closed forms, predicted_recall (independent, union with
                               N - 1 competitors, mod2 with ceil/floor(N/2)) vs scipy quadrature and ndtr,
                               predicted_capacity vs a linear scan, and the `moments` table columns
memories.optim_values_exact    optim_regimes: population_gd (loss, accuracy with ties as misses, weighted
                               accuracy, margins, A), scheme_of, large_batch_step, sgd_batch_one,
                               margin_recursion, sign_changes, first_reach, embeddings vs plain loops
capacity.values_exact          capacity_law (log_capacity_se, fit_law for each law, compare_laws, local_slopes),
                               capacity.summarize, the `capacity` table (table_rows), the plan's formulas,
                               the memory-seed default, evaluate at the threshold's edge, _bisect / _bracket
rates.exact_law_bootstrap      power_law_bootstrap on exact power laws with tiny noise: the point is the planted
                               exponent, the interval is centred on it and holds it; level and seed defaults;
                               infinite medians are dropped and counted
memory.helpers_exact           unique_argmax_hits (ties, valid mask), memory_scores, eq7_targets, make_embeddings
                               (Phi1 = W_O1 W_V1, scale 1/sqrt(d)), gaussian_vectors, require_same_sizes

Each measurement returns error = max over parts of discrepancy / allowed; tolerance 1.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
from fractions import Fraction

import numpy as np
import torch
from scipy import integrate, special, stats
from scipy.optimize import brentq, curve_fit

from popgrad import embeddings as emb_mod
from popgrad import memory as mm
from popgrad.claims import memories as cm
from popgrad.numerics import capacity as ncap
from popgrad.numerics import capacity_law as law
from popgrad.numerics import capacity_plan as plan
from popgrad.numerics import capacity_search as cs
from popgrad.numerics import factorized as fz
from popgrad.numerics import optim_regimes as orx
from popgrad.numerics import zipf_memories as zm
from popgrad.rates import loglog_slope, power_law_bootstrap
from popgrad.registry import Claim, Measurement, register
from popgrad.tolerances import nanmax
from popgrad.theory import concentration as cn
from popgrad.theory import readout_moments as rm

EXACT = 1e-10


def _worst(parts: dict) -> float:
    return nanmax(d / a for d, a in parts.values())


def _measurement(parts: dict, note: str, value: str = "") -> Measurement:
    details = {k: {"discrepancy": float(d), "allowed": float(a)} for k, (d, a) in parts.items()}
    return Measurement(_worst(parts), 1.0, "exact", note=note, value=value, details=details)


def _diff(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return math.inf
    both_inf = np.isinf(a) & np.isinf(b) & (np.sign(a) == np.sign(b))
    return float(np.max(np.where(both_inf, 0.0, np.abs(a - b)), initial=0.0))


def _same(a, b, tol: float = EXACT) -> tuple[float, float]:
    return _diff(a, b), tol


def _flag(ok: bool) -> tuple[float, float]:
    return (0.0 if ok else 1.0), 0.5


def _raises(f) -> bool:
    try:
        f()
    except Exception:       # noqa: BLE001 (any refusal)
        return True
    return False


# ----------------------------------------------------------------------------- references (plain loops)
def loop_zipf(N: int, alpha: float) -> list[float]:
    w = [(z + 1) ** -alpha for z in range(N)]
    s = sum(w)
    return [x / s for x in w]


def loop_unseen(p, n: float) -> float:
    return sum(pz * (1 - pz) ** n for pz in p)


def loop_k_grid(N: int) -> list[int]:
    out = []
    j = 2
    while 2 ** (j / 2) <= 2 * N:
        k = min(N, int(round(2 ** (j / 2))))
        if k >= 2 and k not in out:
            out.append(k)
        j += 1
    return sorted(out)


def loop_mean_se(values) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def loop_ols(x, y) -> tuple[float, float]:
    """(intercept, slope) of y on x by the normal equations, written out."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return my - sxy / sxx * mx, sxy / sxx


# ----------------------------------------------------------------------------- memories.zipf_values_exact
def _zipf_rows_law(sweep: str, xs, b: float, scale: float, eps: float, zero_at=None) -> list[dict]:
    """Rows of one (sweep, alpha, map, scheme) whose per-seed errors are scale x^-b (1 + eps k), k = -2..2
    (median exact); at `zero_at` three of five errors are 0 (median 0: the point is left out)."""
    rows = []
    for i, x in enumerate(xs):
        base = scale * x ** -b
        errs = [base * (1 + eps * k * (i + 1)) for k in (-2, -1, 0, 1, 7)]
        if x == zero_at:
            errs = [0.0, 0.0, 0.0, base, 2 * base]
        rows.append({"sweep": sweep, "alpha": 2.0, "map": "mod2", "scheme": "counts", sweep: x, "errors": errs})
    return rows


def measure_zipf_values() -> Measurement:

    parts = {}
    parts["zipf_probs N=7 alpha=1.5"] = _same(zm.zipf_probs(7, 1.5), loop_zipf(7, 1.5))
    f, M = zm.map_outputs("injective", 5)
    g, M2 = zm.map_outputs("mod2", 5)
    parts["map_outputs"] = _flag(list(f) == [0, 1, 2, 3, 4] and M == 5 and list(g) == [0, 1, 0, 1, 0] and M2 == 2)
    p = np.asarray(loop_zipf(9, 2.0))
    parts["infinite_memory_error n=1,3,10"] = _same(zm.infinite_memory_error(p, [1, 3, 10]),
                                                   [loop_unseen(p, n) for n in (1, 3, 10)])
    counts = np.array([0, 1, 2, 3, 2, 0])
    parts["scheme_weights counts/seen/threshold s=2 (ties at s kept)"] = _same(
        np.concatenate([zm.scheme_weights("counts", counts), zm.scheme_weights("seen", counts),
                        zm.scheme_weights("threshold", counts, 2)]),
        [0, 1, 2, 3, 2, 0] + [0, 1, 1, 1, 1, 0] + [0, 0, 1, 1, 1, 0])
    for k in (1, 3, 9):
        q = zm.population_weights("threshold", p, k)
        parts[f"population_weights threshold stores the k = {k} most frequent"] = _same(q, [1.0 * (z < k) for z in range(9)])
    parts["population_weights counts = p, seen = 1"] = _same(
        np.concatenate([zm.population_weights("counts", p), zm.population_weights("seen", p)]), list(p) + [1.0] * 9)
    parts["k_grid N=64, 4096"] = _flag(zm.k_grid(64) == loop_k_grid(64) and zm.k_grid(4096) == loop_k_grid(4096))
    a = 1.7
    th = [zm.theorem_exponent("n", s, a) for s in ("counts", "seen", "threshold")]
    parts["theorem_exponent n: (a-1)/a; d: (a-1)/(2a), a-1, None"] = _flag(
        max(abs(t - (a - 1) / a) for t in th) < EXACT and zm.theorem_exponent("d", "seen", a) is None
        and abs(zm.theorem_exponent("d", "counts", a) - (a - 1) / (2 * a)) < EXACT
        and abs(zm.theorem_exponent("d", "threshold", a) - (a - 1)) < EXACT)
    draws = [0.31, 0.27, 0.35, 0.30]
    mean, se, z = zm.mc_z_score(draws, 0.25)
    m_ref, se_ref = loop_mean_se(draws)
    parts["mc_z_score mean, se (ddof 1), z"] = _same([mean, se, z], [m_ref, se_ref, (m_ref - 0.25) / se_ref])

    # tune_threshold: the grid value with the smallest median error over 3 tuning memories (the first on a tie);
    # seed 4: the mean or the first memory alone would pick 2 or 3, the median picks 8
    pt, ft = np.asarray(loop_zipf(24, 1.5)), np.arange(24) % 2
    grid = [1, 2, 3, 5, 8, 13]
    meds = [statistics.median(zm.memory_error(pt, ft, 2, zm.population_weights("threshold", pt, v), 6,
                                              zm._seed(zm.TUNE_SEED, 4, t, v), 24, 24).error for t in range(3))
            for v in grid]
    best = grid[min(range(len(grid)), key=lambda i: (meds[i], i))]
    parts[f"tune_threshold = argmin of the median errors ({best})"] = _flag(
        zm.tune_threshold(pt, ft, 2, 6, lambda v, t: zm.population_weights("threshold", pt, v), grid, 4, 24, 24)
        == best)

    # fitted_exponents: exact power laws (medians exact), one point with a zero median left out
    xs = [64, 128, 256, 512, 1024]
    rows = _zipf_rows_law("d", xs, 0.75, 0.8, 1e-6) + [dict(r, scheme="seen") for r in
                                                         _zipf_rows_law("d", xs, 0.4, 0.5, 1e-6, zero_at=1024)]
    fits = {r["scheme"]: r for r in zm.fitted_exponents(rows, resamples=100)}
    for scheme, b, pts in (("counts", 0.75, 5), ("seen", 0.4, 4)):
        r = fits[scheme]
        parts[f"fitted_exponents {scheme}: point = planted {b}"] = _same(r["exponent"], b, 1e-9)
        parts[f"fitted_exponents {scheme}: points = {pts}"] = _flag(r["points"] == pts)
        parts[f"fitted_exponents {scheme}: 95% interval holds the exponent, width < 1e-4"] = _flag(
            r["lo"] <= r["exponent"] <= r["hi"] and r["hi"] - r["lo"] < 1e-4)
    parts["fitted_exponents theorem column"] = _same([fits["counts"]["theorem"]], [1.0 / 4])

    # n_sweep / d_sweep rows: error = mean, se = sem over seeds; infinite memory exact
    drows = zm.d_sweep(2.0, "injective", [4], 8, 3, exhaustive=8, tail=8)
    nrows = zm.n_sweep(2.0, "mod2", [12], 4, 16, 3, exhaustive=16, tail=16)     # last: the call tracer stops here
    p16 = loop_zipf(16, 2.0)
    for r in nrows + drows:
        m_ref, se_ref = loop_mean_se(r["errors"])
        parts[f"{r['sweep']}_sweep {r['scheme']}: error, se"] = _same([r["error"], r["se"]], [m_ref, se_ref])
    parts["n_sweep infinite_memory"] = _same([r["infinite_memory"] for r in nrows], [loop_unseen(p16, 12)] * 3)
    parts["n_sweep: s tuned over S_GRID <= n/4; d_sweep: k over k_grid"] = _flag(
        [r["s"] for r in nrows][:2] == [1, 1] and nrows[2]["s"] in (1, 2, 3)
        and drows[2]["k"] in loop_k_grid(8) and drows[0]["k"] is None)


    return _measurement(parts, f"{len(parts)} parts")


# ----------------------------------------------------------------------------- memories.zipf_error_competitors
COMPETITOR_SEEDS = 6
COMPETITOR_TAIL = 4096
COMPETITOR_D = 64


def unstored_miss_rate(kind: str, M: int = 3) -> float:
    """Closed form (d -> large) of the miss rate of an unstored query when only token 0 is stored.

    W = q_0 u_0 e_0^T, a fresh query e_z: v = W e_z = u_0 c with c = e_0 . e_z (sign +/- with prob 1/2 each).
    u_0^T v = |u_0|^2 c is ~sqrt(d) standard deviations of the other outputs' scores N(0, |v|^2 / d) away
    from 0, so it wins when c > 0 and loses when c < 0.
    injective (f(z) = z unstored): c > 0: u_0 wins, a miss; c < 0: the target and the M - 2 other unstored
      outputs are i.i.d., a miss with prob 1 - 1/(M - 1): 3/4 at M = 3, 5/6 at M = 4.
    mod2 (M = 2): z even (f(z) = 0 stored) hits iff c > 0: 1/2; z odd (f(z) = 1 unstored, no other
      unstored output) hits iff c < 0: 1/2."""
    return 0.5 + 0.5 * (1 - 1 / (M - 1)) if kind == "injective" else 0.5


def measure_zipf_error_competitors() -> Measurement:

    parts, rates = {}, {}
    for kind, N in (("injective", 3), ("injective", 4), ("mod2", 4)):
        p = np.asarray(loop_zipf(N, 2.0))
        f = np.arange(N) if kind == "injective" else np.arange(N) % 2
        q = np.zeros(N)
        q[0] = 1.0
        mass = float(p[1:].sum())
        errs, ses = [], []
        for seed in range(COMPETITOR_SEEDS):
            r = zm.memory_error(p, f, N if kind == "injective" else 2, q, COMPETITOR_D, seed=seed, exhaustive=1,
                                tail=COMPETITOR_TAIL, dtype=torch.float64)
            errs.append(r.error)
            ses.append(r.se)
            rate = r.error / mass                       # token 0 (read exactly) is recalled: its error is 0
            parts[f"{kind} M={N} seed {seed}: se = mass sqrt(r (1 - r) / tail)"] = _same(
                r.se, mass * math.sqrt(rate * (1 - rate) / COMPETITOR_TAIL), 1e-12)
            parts[f"{kind} M={N} seed {seed}: stored/outputs"] = _flag(r.stored == 1 and r.outputs == 1)
        want = unstored_miss_rate(kind, N)
        pooled = np.asarray(errs) / mass
        se_law = math.sqrt(want * (1 - want) / (COMPETITOR_TAIL * COMPETITOR_SEEDS))
        rates[f"{kind} M={N if kind == 'injective' else 2}"] = float(pooled.mean())
        parts[f"{kind} M={N}: unstored miss rate = {want:.4f} (K - 1 / K unstored competitors)"] = (
            abs(pooled.mean() - want), 4 * se_law)
        se_closed = mass * math.sqrt(want * (1 - want) / COMPETITOR_TAIL)
        parts[f"{kind} M={N}: reported se = the binomial se of the law (5 %)"] = (abs(np.mean(ses) - se_closed),
                                                                          0.05 * se_closed)
    p = np.asarray(loop_zipf(3, 2.0))
    f3 = np.arange(3)
    r = zm.memory_error(p, f3, 3, np.zeros(3), 8, seed=0, tail=64)
    parts["nothing stored: every score 0, ties are misses (error 1)"] = _same(r.error, 1.0)
    r = zm.memory_error(p, f3, 3, np.array([1.0, 0, 0]), COMPETITOR_D, seed=0, exhaustive=1, tail=0, dtype=torch.float64)
    parts["tail = 0: the unstored mass counts as missed"] = _same(r.error, float(p[1:].sum()))
    r = zm.memory_error(p, f3, 3, np.ones(3), COMPETITOR_D, seed=0, exhaustive=1, tail=256, dtype=torch.float64)
    parts["stored tokens past `exhaustive` read by their own embeddings (error 0)"] = _same(r.error, 0.0)
    return _measurement(parts, f"unstored miss rates {rates} (closed forms 3/4, 5/6, 1/2)",
                        value=f"injective M = 3 {rates['injective M=3']:.4f} vs 3/4, M = 4 {rates['injective M=4']:.4f} "
                              f"vs 5/6, mod2 {rates['mod2 M=2']:.4f} vs 1/2")


# ----------------------------------------------------------------------------- memories.readout_values_exact
def closed_var(d: int, N: int, n: int, hit: bool) -> float:
    """The readout variance in closed form (theory/readout_moments.py docstring; talk 'Capacity: Intuition')."""
    a = 1 + 2 / d
    if hit:
        return a * a - 1 + (n - 1) * a / d + (N - n) / d ** 2
    return (n + 1) * a / d + (N - n - 1) / d ** 2


QUAD_TOL = 1e-6     # predicted_recall integrates with 80 Gauss-Hermite nodes: 1.5e-7 from scipy's quad at d = 16, N = 30


def quad_recall(kind: str, d: int, N: int, approximation: str) -> float:
    """Gaussian readouts with the closed-form moments: scipy quadrature over the target's readout t ~ N(1, v1),
    the competitors independent; union: 1 - (N - 1) P(N(0, v1 + v0) > 1), at least 0; mod2: one competitor."""
    if kind == "mod2":
        v1, v0 = closed_var(d, N, (N + 1) // 2, True), closed_var(d, N, N // 2, False)
        return float(stats.norm.sf(0.0, loc=1.0, scale=math.sqrt(v1 + v0)))
    v1, v0 = closed_var(d, N, 1, True), closed_var(d, N, 1, False)
    if approximation == "union":
        return max(0.0, 1.0 - (N - 1) * float(stats.norm.sf(1.0, scale=math.sqrt(v1 + v0))))
    sd = math.sqrt(v1)
    t = np.linspace(1 - 12 * sd, 1 + 12 * sd, 4001)                     # Simpson on a fine grid
    y = np.exp(-0.5 * ((t - 1) / sd) ** 2) / (sd * math.sqrt(2 * math.pi)) * special.ndtr(t / math.sqrt(v0)) ** (N - 1)
    return float(integrate.simpson(y, x=t))


def scan_capacity(kind: str, d: int, threshold: float, approximation: str) -> int:
    """Largest N with quad_recall >= threshold, scanning N = 1, 2, ... (recall decreases in N)."""
    N = 1
    while quad_recall(kind, d, N + 1, approximation) >= threshold:
        N += 1
    return N


def measure_readout_values() -> Measurement:

    parts = {}
    for d, N, n in ((8, 5, 1), (16, 9, 4), (32, 40, 20)):
        for hit in (True, False):
            mean, var = rm.moment_values(d, N, n, hit)
            parts[f"moment_values d={d} N={N} n={n} {'hit' if hit else 'miss'}"] = _same(
                [mean, var], [1.0 if hit else 0.0, closed_var(d, N, n, hit)], 1e-12)
    for kind, approx, d, N in (("injective", "independent", 8, 4), ("injective", "independent", 16, 30),
                               ("injective", "union", 8, 2), ("injective", "union", 16, 5),
                               ("injective", "union", 4, 40), ("mod2", "independent", 8, 5),
                               ("mod2", "union", 8, 6), ("mod2", "independent", 16, 11)):
        parts[f"predicted_recall {kind} {approx} d={d} N={N}"] = _same(
            rm.predicted_recall(kind, d, N, approx), quad_recall(kind, d, N, approx), QUAD_TOL)
    for kind, approx, d, thr in (("injective", "independent", 32, 0.9), ("injective", "union", 32, 0.9),
                                 ("mod2", "independent", 32, 0.95)):
        parts[f"predicted_capacity {kind} {approx} d={d} threshold {thr} = scan"] = _same(
            rm.predicted_capacity(kind, d, thr, approx), scan_capacity(kind, d, thr, approx), 0.5)
    parts["predicted_capacity default threshold 0.99, independent"] = _same(
        rm.predicted_capacity("injective", 64), scan_capacity("injective", 64, 0.99, "independent"), 0.5)
    return _measurement(parts, f"{len(parts)} parts")


# ----------------------------------------------------------------------------- memories.optim_values_exact
def loop_population_gd(GU, GE, p, eta: float, steps: int) -> dict:
    """Lemma 1 in token space, one token (column) at a time: logits, the loss, accuracy (a unique argmax at
    f(z) = z; ties miss), p-weighted accuracy, margins; then A <- A - eta p(z) (softmax - e_z) per column."""
    N = len(p)
    A = np.zeros((N, N))
    out = {"loss": [], "accuracy": [], "weighted_accuracy": [], "margins": []}
    for t in range(steps + 1):
        L = GU @ A @ GE
        loss, acc, wacc, margins = 0.0, 0, 0.0, []
        for z in range(N):
            col = [float(L[k, z]) for k in range(N)]
            top = max(col)
            lse = top + math.log(sum(math.exp(c - top) for c in col))
            loss += p[z] * (lse - col[z])
            other = max(col[k] for k in range(N) if k != z)
            hit = col[z] > other
            acc += hit
            wacc += p[z] * hit
            margins.append(col[z] - other)
        out["loss"].append(loss)
        out["accuracy"].append(acc / N)
        out["weighted_accuracy"].append(wacc)
        out["margins"].append(margins)
        if t == steps:
            break
        G = np.zeros((N, N))
        for z in range(N):
            e = np.exp(L[:, z] - L[:, z].max())
            s = e / e.sum()
            s[z] -= 1.0
            G[:, z] = p[z] * s
        A = A - eta * G
    out["A"] = A
    return out


def loop_margin(p, eta: float, steps: int, M: int) -> list[list[float]]:
    """Orthonormal embeddings: the margin of each token from the softmax of M logits (target m, others 0)."""
    m = [0.0] * len(p)
    out = [list(m)]
    for _ in range(steps):
        new = []
        for pz, mz in zip(p, m):
            z = math.exp(mz) + (M - 1)
            soft_target, soft_other = math.exp(mz) / z, 1.0 / z
            new.append(mz + eta * pz * ((1 - soft_target) + soft_other))     # target up, each other down
        m = new
        out.append(list(m))
    return out


def measure_optim_values() -> Measurement:

    parts = {}
    p = np.asarray(loop_zipf(4, 1.5))
    GU, GE = orx.gram_matrices("gaussian", 4, 3, seed=2)
    WU, WE = orx.embeddings("gaussian", 4, 3, seed=2)
    parts["gram_matrices = W_U W_U^T, W_E^T W_E"] = _same(np.concatenate([GU, GE]),
                                                          np.concatenate([WU @ WU.T, WE.T @ WE]))
    big_U, big_E = orx.embeddings("gaussian", 400, 50, seed=1)
    for name, X in (("W_U", big_U), ("W_E", big_E)):
        ms = float(np.mean(X ** 2)) * 50
        parts[f"embeddings gaussian {name}: E[d x^2] = 1"] = (abs(ms - 1), 4 * math.sqrt(2 / X.size) * 1)
    parts["embeddings orthonormal = I"] = _same(np.concatenate(orx.embeddings("orthonormal", 3)),
                                                np.concatenate([np.eye(3), np.eye(3)]))
    parts["embeddings: an unknown kind is refused"] = _flag(_raises(lambda: orx.embeddings("other", 3)))
    for eta, steps in ((5.0, 3), (40.0, 2)):
        got = orx.population_gd(GU, GE, p, eta, steps)
        ref = loop_population_gd(GU, GE, p, eta, steps)
        for key in ("loss", "accuracy", "weighted_accuracy", "margins", "A"):
            parts[f"population_gd eta={eta}: {key}"] = _same(got[key], ref[key], 1e-9)
        last = orx.population_gd(GU, GE, p, eta, steps, record=False)
        parts[f"population_gd eta={eta} record=False: the last step only"] = _same(
            [last["loss"][-1], last["accuracy"][-1]], [ref["loss"][-1], ref["accuracy"][-1]], 1e-9)
    parts["population_gd step 0: all logits tie, accuracy 0, loss ln N"] = _same(
        [ref["accuracy"][0], orx.population_gd(GU, GE, p, 1.0, 1)["accuracy"][0],
         orx.population_gd(GU, GE, p, 1.0, 1)["loss"][0]], [0.0, 0.0, math.log(4)], 1e-12)
    A = np.arange(16.0).reshape(4, 4) ** 1.3
    parts["scheme_of = A[z, z] - mean_{k != z} A[k, z]"] = _same(
        orx.scheme_of(A), [A[z, z] - sum(A[k, z] for k in range(4) if k != z) / 3 for z in range(4)])
    # one SGD step from 0 on a batch: -eta (1/N - 1{k = z}) phat(z); the batch's counts from the same generator
    phat = np.random.default_rng(3).multinomial(50, p) / 50
    ref = np.array([[-2.0 * phat[z] * ((1.0 / 4) - (k == z)) for z in range(4)] for k in range(4)])
    parts["large_batch_step"] = _same(orx.large_batch_step(p, 2.0, 50, seed=3), ref)
    A, counts = orx.sgd_batch_one(GU, GE, p, 0.7, 25, seed=5)
    zs = np.random.default_rng(5).choice(4, size=25, p=p)
    R = np.zeros((4, 4))
    for z in zs:
        logit = GU @ R @ GE[:, z]
        s = np.exp(logit - logit.max())
        s = s / s.sum()
        s[z] -= 1
        R[:, z] -= 0.7 * s
    parts["sgd_batch_one: A and the counts"] = _same(np.concatenate([A.ravel(), counts]),
                                                     np.concatenate([R.ravel(), np.bincount(zs, minlength=4)]))
    rec = orx.margin_recursion(p, 3.0, 6, 4)
    parts["margin_recursion vs softmax loop"] = _same(rec, loop_margin(p, 3.0, 6, 4), 1e-12)
    GU1, GE1 = orx.gram_matrices("orthonormal", 4)
    parts["margin_recursion = population_gd margins (orthonormal)"] = _same(
        rec, orx.population_gd(GU1, GE1, p, 3.0, 6)["margins"], 1e-9)
    parts["sign_changes (zero increments skipped)"] = _flag(
        orx.sign_changes(np.array([0, 1, 1, 3, 2, 2, 2, 5, 4.0])) == 3 and orx.sign_changes(np.arange(5.0)) == 0)
    acc = np.array([0.2, 0.99, 1.0, 0.95, 1.0])
    parts["first_reach default level 1, level 0.9, never"] = _flag(
        orx.first_reach(acc) == 2.0 and orx.first_reach(acc, 0.9) == 1.0 and orx.first_reach(acc, 1.1) == math.inf)
    return _measurement(parts, f"{len(parts)} parts")


# ----------------------------------------------------------------------------- capacity.values_exact
Z95 = float(stats.norm.ppf(0.975))


def wls_reference(x, y, se, columns) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted least squares y ~ sum_j beta_j columns_j(x) with errors se, by scipy.optimize.curve_fit
    (absolute sigma): (beta, covariance, chi^2)."""

    def model(xv, *beta):
        return sum(b * c(xv) for b, c in zip(beta, columns))

    beta, cov = curve_fit(model, x, y, p0=np.zeros(len(columns)), sigma=se, absolute_sigma=True)
    chi2 = float(np.sum(((y - model(x, *beta)) / se) ** 2))
    return beta, cov, chi2


def law_reference(law: str, d, C, se, p: float) -> dict:
    """The fit of one capacity law (numerics/capacity_law.py docstring) by curve_fit or a weighted mean."""
    x, y, se = np.log(np.asarray(d, float)), np.log(np.asarray(C, float)), np.asarray(se, float)
    n = len(x)
    if law == "power":
        beta, cov, chi2 = wls_reference(x, y, se, [np.ones_like, lambda v: v])
        k = 2
    elif law == "d^p/(ln d)^beta":
        beta, cov, chi2 = wls_reference(x, y - p * x, se, [np.ones_like, lambda v: -np.log(v)])
        k = 2
    else:
        off = p * x - (np.log(x) if law == "d^p/ln d" else 0.0)
        w = 1 / se ** 2
        a = float(np.sum(w * (y - off)) / np.sum(w))
        beta, cov, chi2, k = np.array([a]), None, float(np.sum(w * (y - off - a) ** 2)), 1
    out = {"chi2": chi2, "k": k, "aic": chi2 + 2 * k, "aic_scaled": n * math.log(chi2 / n) + 2 * (k + 1),
           "c": math.exp(beta[0]), "chi2_per_dof": chi2 / max(n - k, 1)}
    if cov is not None:
        half = Z95 * math.sqrt(cov[1, 1] * max(1.0, chi2 / (n - k)))
        out["ci"] = (beta[1] - half, beta[1] + half)
        out["slope"] = beta[1]
    return out


def loop_nested_hits(mem, N: int) -> int:
    """Recalled (memory, z) pairs of a nested draw at size N, input by input in float64 (ties miss)."""
    E, U = (x.double().numpy() for x in mem.embeddings(N))
    hits = 0
    for s in range(E.shape[0]):
        W = sum(np.outer(U[s][:, z], E[s][:, z]) for z in range(N))
        for z in range(N):
            sc = U[s][:, :N].T @ (W @ E[s][:, z])
            hits += all(sc[z] > sc[y] for y in range(N) if y != z)
    return hits


def measure_capacity_values() -> Measurement:

    parts = {}
    # log_capacity_se: se / mean with seeds (floor 1e-4); else the interval's width / (2 z_0.975), floor 0.005
    rows = [{"se": 2.0, "mean": 50.0}, {"se": 1e-6, "mean": 50.0}, {"se": None, "upper": 110, "lower": 90},
            {"se": None, "upper": 101, "lower": 100}]
    parts["log_capacity_se (four branches)"] = _same(
        [law.log_capacity_se(r) for r in rows],
        [0.04, 1e-4, (math.log(110) - math.log(90)) / (2 * 1.96), 0.005], 1e-12)
    d = [16, 32, 64, 128, 256]
    C = [30.0, 95.0, 330.0, 1100.0, 3900.0]
    se = [0.05, 0.03, 0.04, 0.02, 0.06]
    for name, p_ in (("d^p", 2.0), ("d^p/ln d", 2.0), ("power", 2.0), ("d^p/(ln d)^beta", 2.0), ("d^p", 1.0)):
        got, ref = law.fit_law(name, d, C, se, p_), law_reference(name, d, C, se, p_)
        keys = ["chi2", "aic", "aic_scaled", "c", "chi2_per_dof"]
        parts[f"fit_law {name} p={p_:g}: chi2, aic, aic_scaled, c, chi2/dof"] = (
            max(abs(got[k] - ref[k]) / max(abs(ref[k]), 1) for k in keys), 1e-7)
        if name == "power":
            parts["fit_law power: exponent and its 95 % interval (scale max(1, chi2/dof))"] = _same(
                [got["exponent"], *got["exponent_ci"]], [ref["slope"], *ref["ci"]], 1e-4 * (ref["ci"][1] - ref["ci"][0]))
        if "beta" in name:
            parts["fit_law (ln d)^beta: beta and its 95 % interval"] = _same(
                [got["log_power"], *got["log_power_ci"]], [ref["slope"], *ref["ci"]],
                1e-4 * (ref["ci"][1] - ref["ci"][0]))
    grid = [{"d": dd, "mean": c, "se": s * c, "saturated": False, "lower": c, "upper": c} for dd, c, s in zip(d, C, se)]
    grid += [{"d": 512, "mean": 9000.0, "se": 50.0, "saturated": True, "lower": 1, "upper": 1},
             {"d": 8, "mean": 1.0, "se": 0.1, "saturated": False, "lower": 1, "upper": 1}]
    res = law.compare_laws(grid, dmin=32, p=2.0)
    kept = [(dd, c, s) for dd, c, s in zip(d, C, se) if dd >= 32]
    refs = {n.replace("^p", "^2", 1): law_reference(n, [k[0] for k in kept], [k[1] for k in kept],
                                                    [k[2] for k in kept], 2.0) for n in law.LAWS}
    parts["compare_laws: d >= dmin, C >= 2, not saturated; best = lowest AIC (both)"] = _flag(
        res["dims"] == [32, 64, 128, 256] and res["best"] == min(refs, key=lambda k: refs[k]["aic"])
        and res["best_scaled"] == min(refs, key=lambda k: refs[k]["aic_scaled"]))
    parts["compare_laws: fewer than 3 dims, no fit"] = _flag(law.compare_laws(grid, dmin=128)["best"] is None)
    sl = law.local_slopes(grid[:3] + [grid[-1]])
    ref = []
    for a, b in zip(grid[:3], grid[1:3]):
        dx = math.log(b["d"] / a["d"])
        ref.append([math.log(b["mean"] / a["mean"]) / dx,
                    math.sqrt((a["se"] / a["mean"]) ** 2 + (b["se"] / b["mean"]) ** 2) / dx,
                    2 - math.log(math.log(b["d"]) / math.log(a["d"])) / dx])
    parts["local_slopes: slope, se, the d^2/ln d slope"] = _same(
        [[s["slope"], s["se"], s["d2_over_ln_d"]] for s in sl[:2]], ref, 1e-12)
    parts["local_slopes: C < 2 gives no slope"] = _flag(sl[2]["slope"] is None and len(sl) == 3)

    # capacity.summarize and the `popgrad capacity` table
    vals = [{"capacity": c, "lower": c - 3, "upper": c + 4, "saturated": s, "memories": 2, "seconds": 1.5 * c,
             "peak_bytes": 10 * c, "maxrss_bytes": 20 * c, "sampled_capacity": c + 1, "sampled_recall": r,
             "exhaustive_recall": e}
            for c, s, r, e in ((40, False, 0.991, 0.9925), (44, False, 0.992, 0.9901), (53, True, 0.9905, 0.995))]
    sm = ncap.summarize("injective", 64, vals)
    m_ref, se_ref = loop_mean_se([40, 44, 53])
    parts["summarize: mean, se (ddof 1), lower, upper, seconds, peak, exhaustive min"] = _same(
        [sm["mean"], sm["se"], sm["lower"], sm["upper"], sm["seconds"], sm["peak_bytes"], sm["maxrss_bytes"],
         sm["exhaustive_recall_min"], sm["n"]],
        [m_ref, se_ref, statistics.fmean([37, 41, 50]), statistics.fmean([44, 48, 57]), 1.5 * 137, 530, 1060,
         0.9901, 3])
    parts["summarize: saturated if any; one seed: se None"] = _flag(
        sm["saturated"] is True and ncap.summarize("mod2", 8, vals[:1])["se"] is None)
    # the plan's formulas (numerics/capacity_plan.py docstrings) and the documented memory-seed default
    ok = True
    for kind, dd in (("injective", 16), ("injective", 256), ("mod2", 64), ("mod2", 2)):
        g = 0.14 * dd * dd / math.log(max(dd, 3)) if kind == "injective" else 0.18 * dd
        cap = int(2 * dd * dd / math.log(dd + 1)) + 64 if kind == "injective" else 4 * dd + 64
        blk = 2 ** round(math.log2(max(64.0, min(4096.0, g / 2))))
        ok &= (abs(plan.guess_capacity(kind, dd) - g) < 1e-9 and plan.n_cap(kind, dd) == cap
               and plan.memories_per_draw(kind, dd) == math.ceil(4000 / max(g, 1.0)) and plan.block_size(kind, dd) == blk)
    parts["guess_capacity, n_cap, memories_per_draw (4000 pairs), block_size"] = _flag(ok)
    for dt in ("float32", "float64"):
        for dd in (16, 64):
            g = plan.guess_capacity("injective", dd)
            reach = min(plan.n_cap("injective", dd), 2 * max(64, int(g)) + plan.block_size("injective", dd))
            held = cs.NestedMemory("injective", dd, plan.memories_per_draw("injective", dd), dtype=dt).held_bytes(reach)
            parts[f"planned_bytes injective d={dd} {dt} = NestedMemory.held_bytes at the planned reach"] = _same(
                plan.planned_bytes("injective", dd, dtype=dt), held, 0.5)
    parts["validate_threshold (0, 1]; check_search_args ranges"] = _flag(
        plan.validate_threshold(1) == 1.0 and _raises(lambda: plan.validate_threshold(0))
        and _raises(lambda: plan.validate_threshold(1.01)) and plan.check_search_args(0.99, 1, 0.0, 0.05) is None
        and _raises(lambda: plan.check_search_args(0.99, 1, 1.0, 0.05))
        and _raises(lambda: plan.check_search_args(0.99, 1, 0.1, 1.0)))
    # evaluate at the threshold's edge: recall exactly at the threshold passes, a hair above fails
    mem = cs.NestedMemory("injective", 8, memories=2, seed=1, dtype="float64")
    hits = loop_nested_hits(mem, 14)
    e_at = mem.evaluate(14, hits / 28, queries=28)
    e_above = mem.evaluate(14, hits / 28 + 1e-6, queries=28)
    parts[f"evaluate: exhaustive recall {hits}/28 = threshold passes, above fails"] = _flag(
        e_at.decided == 1 and e_at.hits == hits and e_at.exhaustive and abs(e_at.recall - hits / 28) < EXACT
        and e_above.decided == -1 and 0 < hits < 28)
    # factorized_capacity at resolution 0 with exhaustive recall and threshold 1 (recall >= 1 is met exactly):
    # C passes and C + 1 fails (a per-input loop on W)
    res = fz.factorized_capacity(12, 6, seed=3, memories=2, threshold=1.0, queries=10 ** 6, resolution=0.0, start=2)
    fm = fz.FactorizedMemory(12, 6, 2, seed=3)

    def loop_recall(N: int) -> float:
        W, (E, U) = fm.state(N).double().numpy(), (x.double().numpy() for x in fm.embeddings(N))
        hit = 0
        for s in range(2):
            for z in range(N):
                sc = U[s].T @ (W[s] @ E[s][:, z])
                hit += all(sc[z] > sc[y] for y in range(N) if y != z)
        return hit / (2 * N)
    C = res["capacity"]
    parts[f"factorized_capacity: recall(C = {C}) = 1 > recall(C + 1) (loop)"] = _flag(
        C >= 1 and loop_recall(C) >= 1.0 > loop_recall(C + 1))
    parts["pooled_memories = max(1, ceil(pairs / max(8, 0.01 m d)))"] = _flag(
        [fz.pooled_memories(d_, m_) for d_, m_ in ((32, 8), (256, 64), (2048, 2048))]
        == [max(1, math.ceil(4000 / max(8.0, 0.01 * m_ * d_))) for d_, m_ in ((32, 8), (256, 64), (2048, 2048))])
    # the fresh-draw recall (numerics/capacity.py): a planted exact tie (u_1 = u_0) makes both z = 0, 1 miss
    for kind, N in (("injective", 9), ("mod2", 7)):
        dr = ncap.draw_memory(kind, 6, N, 2, seed=4, dtype="float64")
        if kind == "injective":
            U = dr.U.clone()
            U[0, :, 1] = U[0, :, 0]
            dr = ncap.MemoryDraw(kind, dr.E, U, dr.f)
        E, U, f = dr.E.numpy(), dr.U.numpy(), dr.f.numpy()
        miss = 0
        for s_ in range(2):
            W = sum(np.outer(U[s_][:, f[s_, z]], E[s_][:, z]) for z in range(N))
            for z in range(N):
                sc = U[s_].T @ (W @ E[s_][:, z])
                miss += not all(sc[f[s_, z]] > sc[y] for y in range(sc.size) if y != f[s_, z])
        parts[f"recall_misses {kind} (ties miss) = loop ({miss})"] = _same(
            [ncap.recall_misses(dr), ncap.recall(dr)], [miss, 1 - miss / (2 * N)], 1e-12)
    cells = ncap.capacity_cells(["injective", "mod2"], [32, 16, 32], lambda k, d: 1 if k == "mod2" else 2, seed=5,
                                device="cpu")
    parts["capacity_cells: d-major, duplicates dropped, memory seeds seed + k"] = _flag(
        [(c.params["d"], c.params["kind"], c.seed) for c in cells]
        == [(16, "injective", 5), (16, "injective", 6), (16, "mod2", 5), (32, "injective", 5), (32, "injective", 6),
            (32, "mod2", 5)] and all(c.params["threshold"] == 0.99 for c in cells))

    # verify_down: exhaustive recall at N, N - max(1, floor(0.1 N)), ... until one passes (per-input loop)
    steps = cs.verify_down(mem, 30, 0.9, 0.1)
    want, N = [], 30
    while N > 0:
        want.append(N)
        if loop_nested_hits(mem, N) >= 0.9 * 2 * N:
            break
        N -= max(1, int(0.1 * N))
    parts[f"verify_down from 30 at resolution 0.1: N visited {want}"] = _flag(
        [e.N for e in steps] == want and steps[-1].decided == (1 if N > 0 else -1))
    parts["_bisect: pred(lo), not pred(hi), hi - lo <= max(1, res lo)"] = _flag(
        cs._bisect(lambda N: N <= 37, 1, 64, 0.0) == (37, 38)
        and (lambda lo, hi: lo <= 37 < hi and hi - lo <= max(1, int(0.1 * lo)))(*cs._bisect(lambda N: N <= 37, 1, 64, 0.1)))
    memo = {1: True, 2: True, 4: True, 6: True, 8: False, 16: False, 12: True}
    parts["_bracket: smallest failing N above start, largest passing N below it"] = _flag(
        cs._bracket(memo, lambda e: e, 0) == (6, 8) and cs._bracket(memo, lambda e: e, 8) == (12, 16)
        and cs._bracket({1: True}, lambda e: e, 0) == (1, None))
    return _measurement(parts, f"{len(parts)} parts")


# ----------------------------------------------------------------------------- rates.exact_law_bootstrap
def measure_exact_law_bootstrap() -> Measurement:

    parts = {}
    xs = [8, 16, 32, 64, 128]
    eps = 1e-6
    # per point: the planted value times 1 + eps {0, 0, 0, k, 40 k}: the median is exact, the mean is not, and
    # the skew grows with x, so a fit of the means (or an off-centre interval) moves away from the planted -0.7
    samples = {(x,): [2.0 * x ** -0.7 * (1 + eps * j * (i + 1)) for j in (0, 0, 0, 1, 40)] for i, x in enumerate(xs)}
    point, lo, hi, dropped = power_law_bootstrap(samples, resamples=200)
    parts["point = planted (a, b) from the medians"] = _same(point, [math.log(2.0), -0.7], 1e-9)
    parts["95 % interval holds the planted exponent and is centred on it"] = _flag(
        lo[1] <= -0.7 <= hi[1] and abs((lo[1] + hi[1]) / 2 + 0.7) <= (hi[1] - lo[1]) / 2 + 1e-12 and dropped == 0)
    parts["interval width of the noise's order (< 100 eps)"] = ((hi[1] - lo[1]), 100 * eps)
    p2, lo2, hi2, _ = power_law_bootstrap(samples, resamples=200, level=0.5)
    parts["level 0.5 is inside level 0.95"] = _flag(lo[1] <= lo2[1] <= hi2[1] <= hi[1] and _diff(p2, point) == 0)
    p3, lo3, hi3, _ = power_law_bootstrap(samples, resamples=200, seed=0)
    parts["seed default 0"] = _same(np.concatenate([lo3, hi3]), np.concatenate([lo, hi]), 0.0 + 1e-300)
    # inf = never reached: a resample whose median is inf is dropped; P(median of 3 draws of {1, 1, inf} = inf) = 7/27
    reach = {(4,): [1.0, 1.0, 1.0], (8,): [1.0, 1.0, math.inf], (16,): [0.5, 0.5, 0.5]}
    _, _, _, dropped = power_law_bootstrap(reach, resamples=1000)
    q = 1 - (3 * (2 / 3) ** 2 * (1 / 3) + (2 / 3) ** 3)          # P(at least two of three draws are inf)
    parts["dropped resamples = P(median inf) = 7/27"] = (abs(dropped / 1000 - q), 4 * math.sqrt(q * (1 - q) / 1000))
    parts["loglog_slope of |y| on an exact law"] = _same(loglog_slope(xs, [-3.0 * x ** 1.25 for x in xs]), 1.25, 1e-10)
    return _measurement(parts, f"{len(parts)} parts", value=f"[{lo[1]:.7f}, {hi[1]:.7f}] (exponent -0.7 planted)")


# ----------------------------------------------------------------------------- memory.helpers_exact
def measure_memory_helpers() -> Measurement:

    parts = {}
    scores = torch.tensor([[1.0, 3.0, 3.0], [2.0, 0.5, 0.5], [0.1, 0.2, 0.9], [4.0, 1.0, 2.0]], dtype=torch.float64)
    targets = torch.tensor([1, 0, 2, 0])
    valid = [True, True, True, False]
    ref = []
    for i in range(4):
        row = scores[i].tolist()
        ref.append(all(row[targets[i]] > row[j] for j in range(3) if j != targets[i]))
    parts["unique_argmax_hits: a tie at the max misses"] = _same(mm.unique_argmax_hits(scores, targets).double(), ref)
    parts["unique_argmax_hits: valid mask"] = _same(mm.unique_argmax_hits(scores, targets, valid).double(),
                                                    [r and v for r, v in zip(ref, valid)])
    e = emb_mod.make_embeddings(5, 4, 3, seed=3)
    W = torch.randn(5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    U, V = e.W_E, e.W_U.T
    S = mm.memory_scores(W, U, V)
    loop = [[sum(float(V[a, j]) * float(W[a, b]) * float(U[b, i]) for a in range(5) for b in range(5))
             for j in range(V.shape[1])] for i in range(U.shape[1])]
    parts["memory_scores (n, m) = v_j^T W u_i"] = _same(S, loop)
    t = mm.eq7_targets(e)
    phi1 = [[sum(float(e.W_O1[a, c]) * float(e.W_V1[c, b]) for c in range(5)) for b in range(5)] for a in range(5)]
    parts["Phi1 = W_O^1 W_V^1"] = _same(e.Phi1, phi1)
    parts["eq7 W_O2: (W_V2 W_E, W_U^T, 0..N-1)"] = _same(
        torch.cat([t["W_O2"][0].ravel(), t["W_O2"][1].ravel(), t["W_O2"][2].double()]),
        torch.cat([(e.W_V2 @ e.W_E).ravel(), e.W_U.T.ravel(), torch.arange(4.0)]))
    parts["eq7 W_K2: (Phi1 W_E, W_E, 0..N-1)"] = _same(
        torch.cat([t["W_K2"][0].ravel(), t["W_K2"][1].ravel()]),
        torch.cat([(torch.tensor(phi1, dtype=torch.float64) @ e.W_E).ravel(), e.W_E.ravel()]))
    parts["eq7 W_K1: keys p_1..p_{T-1}, queries p_1..p_T, targets 1..T-1"] = _same(
        torch.cat([t["W_K1"][0].ravel(), t["W_K1"][1].ravel(), t["W_K1"][2].double()]),
        torch.cat([e.P[:, :2].ravel(), e.P.ravel(), torch.tensor([1.0, 2.0])]))
    big = emb_mod.make_embeddings(64, 64, 64, seed=0)
    for name in ("W_E", "W_U", "P", "W_V1", "W_O1", "W_V2"):
        X = getattr(big, name)
        parts[f"make_embeddings {name}: entries N(0, 1/d)"] = (abs(float((X ** 2).mean()) * 64 - 1),
                                                               4 * math.sqrt(2 / X.numel()))
    G = emb_mod.gaussian_vectors(300, 40, seed=2)
    parts["gaussian_vectors (d, n), N(0, I/d)"] = (abs(float((G ** 2).mean()) * 40 - 1) if G.shape == (40, 300)
                                                   else math.inf, 4 * math.sqrt(2 / G.numel()))
    parts["require_same_sizes: N must match, T at most the embeddings' T"] = _flag(
        emb_mod.require_same_sizes(e, 4, 3) is None and emb_mod.require_same_sizes(e, None, 2) is None
        and _raises(lambda: emb_mod.require_same_sizes(e, 5)) and _raises(lambda: emb_mod.require_same_sizes(e, 4, 4)))
    parts["Embeddings d, N, T"] = _flag((e.d, e.N, e.T) == (5, 4, 3))
    return _measurement(parts, f"{len(parts)} parts")


# ----------------------------------------------------------------------------- memory.concentration_bounds
def chernoff_chi2_upper(d: int, delta: float) -> float:
    """t with exp(-d/2 (t - ln(1 + t))) = delta: the optimized Chernoff bound of chi^2_d / d - 1 (closed rate)."""
    L = math.log(1 / delta)
    return brentq(lambda t: d / 2 * (t - math.log1p(t)) - L, 1e-14, 1e4, xtol=1e-15, rtol=1e-14)


def chernoff_chi2_lower(d: int, delta: float) -> float:
    """t with exp(-d/2 (-t - ln(1 - t))) = delta, t < 1 (else 1)."""
    L = math.log(1 / delta)
    f = lambda t: d / 2 * (-t - math.log1p(-t)) - L        # noqa: E731
    return 1.0 if f(1 - 1e-15) < 0 else brentq(f, 1e-14, 1 - 1e-15, xtol=1e-15, rtol=1e-14)


def chernoff_inner(d: int, delta: float) -> float:
    """s / d with sup_lam (lam s + d/2 ln(1 - lam^2)) = ln(2 / delta), the optimal lam = (sqrt(d^2 + 4 s^2) - d) / (2 s)."""
    L = math.log(2 / delta)

    def rate(s):
        lam = (math.sqrt(d * d + 4 * s * s) - d) / (2 * s)
        return lam * s + d / 2 * math.log1p(-lam * lam) - L
    return brentq(rate, 1e-12, 1e4 * d, xtol=1e-14, rtol=1e-14) / d


def margin_ok_reference(N: int, d: int, delta: float) -> bool:
    """Sec. 4.1: the Gram bounds over N + N (N - 1) / 2 events force (1 - a)^2 - (N - 1) b^2 > 2 b (1 + a) + (N - 2) b^2."""
    each = delta / 2 / (N + N * (N - 1) // 2)
    a = max(chernoff_chi2_upper(d, each / 2), chernoff_chi2_lower(d, each / 2))
    b = chernoff_inner(d, each)
    return (1 - a) ** 2 - (N - 1) * b * b > 2 * b * (1 + a) + max(N - 2, 0) * b * b


def measure_concentration_bounds() -> Measurement:


    parts = {}
    rel = lambda a, b: (abs(a - b) / abs(b), 1e-10)         # noqa: E731
    for d, delta in ((8, 0.1), (64, 1e-3), (512, 1e-6)):
        parts[f"chi2_upper_deviation d={d} delta={delta:g}"] = rel(cn.chi2_upper_deviation(d, delta),
                                                                   chernoff_chi2_upper(d, delta))
        parts[f"chi2_lower_deviation d={d} delta={delta:g}"] = rel(cn.chi2_lower_deviation(d, delta),
                                                                   chernoff_chi2_lower(d, delta))
        parts[f"norm_deviation_bound d={d} (delta/2 per tail)"] = rel(
            cn.norm_deviation_bound(d, delta), max(chernoff_chi2_upper(d, delta / 2), chernoff_chi2_lower(d, delta / 2)))
        parts[f"inner_product_bound d={d}"] = rel(cn.inner_product_bound(d, delta), chernoff_inner(d, delta))
        x = math.log(2 / delta)
        parts[f"laurent_massart norm / inner d={d}"] = _same(
            [cn.laurent_massart_norm_bound(d, delta), cn.laurent_massart_inner_bound(d, delta)],
            [2 * math.sqrt(x / d) + 2 * x / d, 2 * math.sqrt(math.log(4 / delta) / d) + math.log(4 / delta) / d], 1e-12)
        parts[f"remap_orthogonality_bound d={d}"] = rel(
            cn.remap_orthogonality_bound(d, delta),
            (1 + chernoff_chi2_upper(d, delta / 2)) * float(stats.norm.isf(delta / 4)) / math.sqrt(d))
        h, lo = chernoff_chi2_upper(d, delta / 4), chernoff_chi2_lower(d, delta / 4)
        parts[f"remap_norm_bound d={d}"] = rel(cn.remap_norm_bound(d, delta), max((1 + h) ** 2 - 1, 1 - (1 - lo) ** 2))
    # u^T u >= 0: the lower deviation never exceeds 1 (the Chernoff rate only reaches t -> 1 as lam -> infinity)
    parts["chi2_lower_deviation at most 1 (d = 2, delta = 1e-9)"] = _same(cn.chi2_lower_deviation(2, 1e-9),
                                                                      chernoff_chi2_lower(2, 1e-9), 1e-8)
    parts["chi2 bounds hold: scipy chi2 tails <= delta"] = _flag(
        stats.chi2.sf(64 * (1 + cn.chi2_upper_deviation(64, 1e-3)), 64) <= 1e-3
        and stats.chi2.cdf(64 * (1 - cn.chi2_lower_deviation(64, 1e-3)), 64) <= 1e-3)
    n, d, delta = 5, 64, 0.01
    each = delta / (n + n * (n - 1) // 2)
    a, b = cn.gram_bounds(n, d, delta)
    parts["gram_bounds: delta / (n + n (n - 1) / 2) per event"] = _same(
        [a, b], [max(chernoff_chi2_upper(d, each / 2), chernoff_chi2_lower(d, each / 2)), chernoff_inner(d, each)], 1e-7)
    parts["remap_variance (d + 2) / d^2, paper (d + 5) / (2 d^2), Wick sum"] = _flag(
        cn.remap_variance(7) == Fraction(9, 49) and cn.remap_variance_paper(7) == Fraction(12, 98)
        and cn.wick_remap_second_moment(3) == Fraction(5, 9))
    dim = cn.guaranteed_recall_dim(4, 1e-3)
    parts[f"guaranteed_recall_dim N=4: the smallest d = {dim} with the margin"] = _flag(
        margin_ok_reference(4, dim, 1e-3) and not margin_ok_reference(4, dim - 1, 1e-3)
        and cn.recall_margin_ok(4, dim, 1e-3) and not cn.recall_margin_ok(4, dim - 1, 1e-3))
    parts["delta outside (0, 1) refused"] = _flag(_raises(lambda: cn.chi2_upper_deviation(8, 1.0))
                                                  and _raises(lambda: cn.inner_product_bound(8, 0)))
    return _measurement(parts, f"{len(parts)} parts")


# ----------------------------------------------------------------------------- cli.memories_capacity_columns
RUNS = {
    "hutter": ["memories", "hutter", "--N", "40", "--alphas", "1.5", "--ns", "5,20"],
    "zipf": ["memories", "zipf", "--maps", "mod2", "--alphas", "2", "--dims", "4,8,16", "--d", "4", "--seeds", "3",
             "--ns", "8,16,32", "--N", "32", "--bootstrap", "20"],
    "moments": ["memories", "moments", "--dims", "64", "--measure-dims", "none"],
    "factorized": ["memories", "factorized", "--d", "32", "--ms", "8,16,32", "--seeds", "3", "--bootstrap", "20"],
    "plan": ["capacity", "--plan", "--dims", "512,1024", "--maps", "injective,mod2", "--device", "cpu"],
}
DRIVER = """
import contextlib, io, json, sys
from popgrad.cli import main
out = {}
for name, argv in json.loads(sys.argv[1]).items():
    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        plain = "--plan" in argv or name.endswith("_text")
        rc = main(argv + ([] if plain else ["--json"]))
    text = buf.getvalue()
    out[name] = {"rc": rc, "out": json.loads(text) if rc == 0 and not plain else text}
print(json.dumps(out))
"""
# hand-made memory-seed results of `popgrad capacity` (the --combine input): three seeds at d = 64, one at 128
SEED_VALUES = ((40, False, 0.991, 0.9925), (44, False, 0.992, 0.9901), (53, False, 0.9905, 0.995))


def _seed_values(d: int) -> list[dict]:
    return [{"capacity": c, "lower": c - 3, "upper": c + 4, "saturated": s, "memories": 2, "seconds": 1.5 * c,
             "peak_bytes": 10 * c, "maxrss_bytes": 20 * c, "sampled_capacity": c + 1, "sampled_recall": r,
             "exhaustive_recall": e} for c, s, r, e in SEED_VALUES]


def run_commands(runs: dict) -> dict:
    """{name: {"rc", "out"}} from one subprocess running `popgrad.cli.main` per command (claims may not import
    the CLI layer)."""

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(runs)], capture_output=True, text=True, env=env,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_command_values() -> Measurement:


    parts = {}
    grid = [ncap.summarize("injective", 64, _seed_values(64)),
            ncap.summarize("injective", 128, [dict(_seed_values(128)[0], capacity=200, lower=180, upper=230)]),
            ncap.summarize("mod2", 64, _seed_values(64)[:2])]
    extra_dims = [ncap.summarize("injective", dd, [dict(v, capacity=c) for v, c in zip(_seed_values(dd), cs)])
                  for dd, cs in ((32, (8, 9, 9)), (256, (600, 610, 640)))]   # AIC and scaled AIC disagree
    extra_dims.append(ncap.summarize("injective", 512, [dict(v, capacity=2900, saturated=True) for v in _seed_values(512)]))
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/grid.json"
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"grid": grid + extra_dims}, fh)
        out = run_commands({**RUNS, "capacity": ["capacity", "--combine", path],
                            "capacity_text": ["capacity", "--combine", path, "--maps", "injective"]})
    parts["every command exits 0"] = _flag(all(v["rc"] == 0 for v in out.values()))
    if not all(v["rc"] == 0 for v in out.values()):
        return _measurement(parts, "a command failed: " + "; ".join(f"{k}: {str(v['out'])[-200:]}" for k, v in out.items()))

    # `popgrad memories hutter`: exact, monte_carlo = mean and mc_se = sem of the 200 draws, z = (mc - exact) / mc_se
    p40 = loop_zipf(40, 1.5)
    for r in out["hutter"]["out"]["rows"]:
        mc = cm.multinomial_unseen_mass(np.asarray(p40), r["n"], 200, seed=int(r["n"] * 1.5))
        m_ref, se_ref = loop_mean_se(list(mc))
        ex = loop_unseen(p40, r["n"])
        parts[f"hutter n={r['n']}: exact, monte_carlo, mc_se, z"] = _same(
            [r["exact"], r["monte_carlo"], r["mc_se"], r["z"]], [ex, m_ref, se_ref, (m_ref - ex) / se_ref], 1e-9)

    # `popgrad memories zipf`: error = mean, se = sem, error_median, chance_floor, exponents = OLS of log medians
    zo = out["zipf"]["out"]
    pz = loop_zipf(32, 2.0)
    for r in zo["rows"]:
        tag = f"zipf {r['sweep']} {r['scheme']} {r[r['sweep']]}"
        m_ref, se_ref = loop_mean_se(r["errors"])
        parts[f"{tag}: error, se, error_median"] = _same(
            [r["error"], r["se"], r["error_median"]], [m_ref, se_ref, statistics.median(r["errors"])])
        if r["sweep"] == "n":
            parts[f"{tag}: infinite_memory, chance_floor = infinite memory x (1 - 1/M)"] = _same(
                [r["infinite_memory"], r["chance_floor"]], [loop_unseen(pz, r["n"]), loop_unseen(pz, r["n"]) / 2])
    fitted = 0
    for fit in zo["exponents"]:
        sel = [r for r in zo["rows"] if (r["sweep"], r["scheme"]) == (fit["sweep"], fit["scheme"])
               and statistics.median(r["errors"]) > 0]
        if len(sel) >= 3:
            fitted += 1
            floor = 0.1 * min(e for r in sel for e in r["errors"] if e > 0)
            _, slope = loop_ols([math.log(r[fit["sweep"]]) for r in sel],
                                [math.log(max(statistics.median(r["errors"]), floor)) for r in sel])
            parts[f"zipf exponent {fit['sweep']} {fit['scheme']} = -OLS slope of log medians, inside [lo, hi]"] = (
                _diff(fit["exponent"], -slope) + (0 if fit["lo"] <= fit["exponent"] <= fit["hi"] else 1), 1e-9)
    parts["zipf: some exponents fitted"] = _flag(fitted >= 2)

    # `popgrad memories moments` (no measured capacity)
    for r in out["moments"]["out"]["rows"]:
        kind, d = r["map"], r["d"]
        C = scan_capacity(kind, d, 0.99, "independent")
        n = 1 if kind == "injective" else max(C // 2, 1)
        parts[f"moments {kind} d={d}: predicted, union_bound, C_over_d^p, var_hit_at_C, var_miss_at_C"] = _same(
            [r["predicted"], r["union_bound"], r["C_over_d^p"], r["var_hit_at_C"], r["var_miss_at_C"]],
            [C, scan_capacity(kind, d, 0.99, "union"), C / d ** (2 if kind == "injective" else 1),
             closed_var(d, C, n, True), closed_var(d, C, n, False)], 1e-12)
        parts[f"moments {kind} d={d}: measured, ratio empty"] = _flag(r["measured"] is None and r["ratio"] is None)

    # `popgrad memories factorized`: capacity = mean, se = sem of the seeds, C/(m d), the exponent = OLS of log medians
    fo = out["factorized"]["out"]
    for r in fo["rows"]:
        m_ref, se_ref = loop_mean_se(r["per_seed"])
        parts[f"factorized m={r['m']}: capacity, se, C/(m d)"] = _same(
            [r["capacity"], r["se"], r["C/(m d)"]], [m_ref, se_ref, m_ref / (r["m"] * 32)])
    parts["factorized: C/d^2 of the unfactorized capacity"] = _same(fo["C/d^2_unfactorized"],
                                                                    fo["unfactorized_capacity"] / 32 ** 2)
    ms = [r["m"] for r in fo["rows"]]
    _, slope = loop_ols([math.log(m) for m in ms],
                        [math.log(statistics.median([max(c, 0.5) for c in r["per_seed"]])) for r in fo["rows"]])
    point, lo, hi = fo["exponents"]["m >= 8"]
    parts["factorized: exponent in m = OLS slope of log median capacities, inside [lo, hi]"] = (
        abs(point - slope) + (0 if lo - 1e-12 <= point <= hi + 1e-12 else 1), 1e-9)

    # `popgrad capacity --combine`: the table's columns and the fitted laws from the seeds' values
    co = out["capacity"]["out"]
    rows = {r["d"]: r for r in co["rows"]}
    r64, r128 = rows[64], rows[128]
    num = lambda s: [float(x) for x in re.findall(r"-?\d+\.?\d*", s)]   # noqa: E731
    caps = [v[0] for v in SEED_VALUES]
    m_ref, se_ref = loop_mean_se(caps)
    sampled = loop_mean_se([c + 1 for c in caps])
    parts["capacity table: C = mean ± se, sampled_C = mean ± sem"] = _same(
        num(r64["injective"]) + num(r64["injective_sampled_C"]), [m_ref, se_ref, sampled[0], sampled[1]], 0.051)
    parts["capacity table: interval = mean lower, mean upper"] = _same(
        num(r64["injective_interval"]), [statistics.fmean([c - 3 for c in caps]), statistics.fmean([c + 4 for c in caps])],
        0.51)
    parts["capacity table: one seed C [lower, upper]"] = _same(num(r128["injective"]), [200, 180, 230], 0.51)
    parts["capacity table: exhaustive_recall = min over seeds, sampled_recall = mean"] = _same(
        [r64["injective_exhaustive_recall"], r64["injective_sampled_recall"], r64["mod2_exhaustive_recall"]],
        [min(v[3] for v in SEED_VALUES), statistics.fmean([v[2] for v in SEED_VALUES]),
         min(v[3] for v in SEED_VALUES[:2])], 6e-6)
    slope = math.log(200 / m_ref) / math.log(2)
    slope_se = math.sqrt((se_ref / m_ref) ** 2 + max(math.log(230 / 180) / (2 * 1.96), 0.005) ** 2) / math.log(2)
    parts["capacity table: local slope ± se between d = 64 and 128"] = _same(num(r128["injective_local_slope"]),
                                                                            [slope, slope_se], 6e-4)
    parts["capacity table: seconds, peak MiB"] = _same([r64["injective_seconds"], r64["injective_peak_MiB"]],
                                                       [round(1.5 * sum(caps), 1), round(10 * max(caps) / 2 ** 20, 1)],
                                                       1e-9)
    series = sorted(grid[:2] + extra_dims[:2], key=lambda g: g["d"])        # d = 512 is saturated: not fitted
    d_, C_ = [g["d"] for g in series], [g["mean"] for g in series]
    se_ = [g["se"] / g["mean"] if g["se"] is not None else max(math.log(g["upper"] / g["lower"]) / (2 * 1.96), 0.005)
           for g in series]
    laws = co["laws"]["injective"]["laws"]
    for name in ("d^p", "d^p/ln d", "power", "d^p/(ln d)^beta"):
        ref = law_reference(name, d_, C_, se_, 2.0)
        got = laws[name.replace("^p", "^2", 1)]
        parts[f"capacity laws {name}: chi2, aic, c"] = (max(abs(got[k] - ref[k]) / max(abs(ref[k]), 1)
                                                            for k in ("chi2", "aic", "aic_scaled", "c")), 1e-7)
        if "ci" in ref:
            key = "exponent" if name == "power" else "log_power"
            parts[f"capacity laws {name}: {key} and its 95 % interval"] = _same(
                [got[key], *got[f"{key}_ci"]], [ref["slope"], *ref["ci"]], 1e-4 * (ref["ci"][1] - ref["ci"][0]))

    # the law line printed under the markdown table: exponent and beta with their 95 % intervals, the lowest AIC
    line = next(x for x in out["capacity_text"]["out"].splitlines() if x.startswith("injective: capacity ~"))
    ref_p, ref_b = law_reference("power", d_, C_, se_, 2.0), law_reference("d^p/(ln d)^beta", d_, C_, se_, 2.0)
    refs = {n.replace("^p", "^2", 1): law_reference(n, d_, C_, se_, 2.0) for n in ("d^p", "d^p/ln d", "power",
                                                                                    "d^p/(ln d)^beta")}
    got = [float(x) for x in re.findall(r"-?\d+\.\d+", line.split("AIC")[0])]
    parts["capacity law line: exponent [95 %], beta [95 %]"] = _same(
        got, [ref_p["slope"], *ref_p["ci"], ref_b["slope"], *ref_b["ci"]], 0.0051)
    best, best_scaled = (min(refs, key=lambda k: refs[k][a]) for a in ("aic", "aic_scaled"))
    parts["capacity law line: the lowest AIC favoured (and with a fitted scale)"] = _flag(
        f": {best} favoured ({best_scaled} with a fitted scale)" in line and f"over d = {d_[0]}..{d_[-1]}" in line)

    # `popgrad capacity --plan`: memory seeds 3 for d <= 512 and every mod2 d, 1 above (docs/capacity.md)
    seeds = re.findall(r"(\w+) d=(\d+):.*\((\d+) memory seed", out["plan"]["out"])
    parts["capacity --plan: memory seeds 3 (d <= 512, mod2), 1 above"] = _flag(
        sorted((k, int(d), int(n)) for k, d, n in seeds)
        == [("injective", 512, 3), ("injective", 1024, 1), ("mod2", 512, 3), ("mod2", 1024, 3)])
    return _measurement(parts, f"{len(parts)} parts")


# ----------------------------------------------------------------------------- registration
_M = "popgrad.claims.memory_values."
_Z = "popgrad.numerics.zipf_memories."
register(Claim(
    id="memories.zipf_values_exact",
    statement="every number of the Zipf memories and of `popgrad memories zipf/hutter` equals its plain-loop value: "
              "p, f, the infinite-memory error, the schemes' q (the threshold stores exactly k tokens), the k grid, "
              "the theorem's exponents, mean ± se and z, the fitted exponents and their intervals, chance floors",
    where="talk 'Associative memories' (scaling laws with finite capacity; Cabannes, Dohmatob, Bietti 2024); "
          "numerics/zipf_memories.py",
    compared="numerics/zipf_memories helpers and the commands' rows vs plain Python loops, statistics.stdev and "
             "normal equations on small fixed inputs; shared: the inputs and the per-seed errors (data)",
    kind="exact", tolerance="abs <= 1e-10 (1e-9 for fitted exponents); flags exact",
    measure=measure_zipf_values,
    code=(_Z + "zipf_probs", _Z + "map_outputs", _Z + "infinite_memory_error", _Z + "scheme_weights",
          _Z + "population_weights", _Z + "k_grid", _Z + "theorem_exponent", _Z + "mc_z_score", _Z + "tune_threshold",
          _Z + "d_sweep",
          _Z + "n_sweep", _Z + "fitted_exponents"),
    sides=((_Z + "zipf_probs", _Z + "infinite_memory_error", _Z + "population_weights", _Z + "k_grid",
            _Z + "mc_z_score", _Z + "fitted_exponents"),
           (_M + "loop_zipf", _M + "loop_unseen", _M + "loop_k_grid", _M + "loop_mean_se"))))

register(Claim(
    id="memories.zipf_error_competitors",
    statement="the one-step memory's error where its law is known in closed form (only token 0 stored): an unstored "
              "query's miss rate is 3/4 with M = 3 (K - 1 = 1 other unstored output competes) and 1/2 with M = 2 (K = 1 "
              "unstored output competes with a stored target); its se is the binomial se of the query draws; ties "
              "(nothing stored) are misses; tail = 0 counts the unstored mass",
    where="talk 'Associative memories' (scaling laws with finite capacity); numerics/zipf_memories.memory_error",
    compared="memory_error (6 memories x 4096 query draws, float64) vs the closed-form miss rates and binomial se; "
             "shared: p, f, q (data)",
    kind="exact", tolerance="rates within 4 binomial se; se = mass sqrt(r (1 - r) / tail) to 1e-12 and the law's se "
                            "to 5 %; ties, tail = 0: abs <= 1e-10",
    measure=measure_zipf_error_competitors,
    code=(_Z + "memory_error", _Z + "_max_gaussian"),
    sides=((_Z + "memory_error",), (_M + "unstored_miss_rate", _M + "loop_zipf"))))

_R = "popgrad.theory.readout_moments."
register(Claim(
    id="memories.readout_values_exact",
    statement="the readout moments' numbers, the recall they predict (independent Gaussian competitors; union bound "
              "over N - 1 competitors; mod 2 with ceil(N/2) and floor(N/2) tokens per output), the predicted "
              "capacity and the `popgrad memories moments` columns equal closed forms, scipy and a linear scan",
    where="talk 'Associative memories' ('Capacity: Intuition'); theory/readout_moments.py; popgrad memories moments",
    compared="moment_values / predicted_recall / predicted_capacity / the moments rows vs the closed-form variances, "
             "Simpson integration with scipy.special.ndtr, scipy.stats.norm tails and a scan over N; shared: d, N",
    kind="exact", tolerance="moments 1e-12; recall 1e-6 (80 Gauss-Hermite nodes); capacities equal",
    measure=measure_readout_values,
    code=(_R + "moment_values", _R + "predicted_recall", _R + "predicted_capacity"),
    sides=((_R + "moment_values", _R + "predicted_recall", _R + "predicted_capacity"),
           (_M + "closed_var", _M + "quad_recall", _M + "scan_capacity"))))

_O = "popgrad.numerics.optim_regimes."
register(Claim(
    id="memories.optim_values_exact",
    statement="every optimizer-regime number (population GD's loss, accuracy with ties as misses, weighted accuracy, "
              "margins and iterate; the memory scheme; the large-batch and batch-1 SGD iterates; the margin "
              "recursion; sign changes; first step at a level) equals a per-token loop",
    where="talk 'Associative memories' (scaling laws with optimization algorithms); Lemma 1 eq. (4), (6); "
          "numerics/optim_regimes.py",
    compared="optim_regimes vs per-column softmax loops, a softmax margin loop and hand-made sequences; shared: the "
             "Gram matrices, p and the drawn tokens (data)",
    kind="exact", tolerance="abs <= 1e-9; embeddings' scale within 4 se",
    measure=measure_optim_values,
    code=(_O + "embeddings", _O + "gram_matrices", _O + "population_gd", _O + "scheme_of", _O + "large_batch_step",
          _O + "sgd_batch_one", _O + "margin_recursion", _O + "sign_changes", _O + "first_reach"),
    sides=((_O + "population_gd", _O + "margin_recursion"), (_M + "loop_population_gd", _M + "loop_margin"))))

register(Claim(
    id="capacity.values_exact",
    statement="every number `popgrad capacity` prints beside C equals an independent computation: the se of ln C, "
              "each law's fit (chi^2, AIC, c, exponent and 95 % interval), the law chosen, local slopes ± se, "
              "mean ± se and the averaged interval over memory seeds, exhaustive and sampled recall columns, the "
              "plan's sizes, the documented memory-seed default, the threshold's edge and the search's bisection",
    where="talk 'Associative memories' ('Capacity: Intuition'); Sec. 4.1 eq. (3), (9); numerics/capacity_law.py, "
          "numerics/capacity.py, popgrad capacity; docs/capacity.md",
    compared="capacity_law / summarize / table_rows / capacity_plan / NestedMemory.evaluate vs scipy curve_fit, "
             "statistics, a per-input float64 loop and the docstrings' formulas; shared: the grid rows (data)",
    kind="exact", tolerance="abs <= 1e-10 (fits 1e-7 rel; printed columns at their printed precision)",
    measure=measure_capacity_values,
    code=("popgrad.numerics.capacity_law.log_capacity_se", "popgrad.numerics.capacity_law.fit_law",
          "popgrad.numerics.capacity_law.compare_laws", "popgrad.numerics.capacity_law.local_slopes",
          "popgrad.numerics.capacity.summarize", "popgrad.numerics.capacity_search.NestedMemory.evaluate",
          "popgrad.numerics.capacity_search._bisect", "popgrad.numerics.capacity_search._bracket",
          "popgrad.numerics.capacity_search.verify_down", "popgrad.numerics.capacity.recall_misses",
          "popgrad.numerics.capacity.capacity_cells", "popgrad.numerics.capacity_plan.planned_bytes",
          "popgrad.numerics.factorized.factorized_capacity", "popgrad.numerics.factorized.pooled_memories"),
    sides=(("popgrad.numerics.capacity_law.fit_law", "popgrad.numerics.capacity_law.compare_laws"),
           (_M + "law_reference", _M + "wls_reference"))))

register(Claim(
    id="rates.exact_law_bootstrap",
    statement="on an exact power law with tiny skewed noise (medians exact), power_law_bootstrap returns the planted "
              "exponent, a 95 % interval centred on it of the noise's width, nested levels, and drops the resamples "
              "whose median is infinite at the binomial rate",
    where="docs/results/dynamics_law.md and the memories' exponent tables (95 % bootstrap intervals)",
    compared="rates.power_law_bootstrap / loglog_slope vs the planted law and the binomial probability of an "
             "infinite median; shared: the sample values (data)",
    kind="exact", tolerance="point abs <= 1e-9; interval holds the planted value, width < 100 eps; drops within 4 se",
    measure=measure_exact_law_bootstrap,
    code=("popgrad.rates.power_law_bootstrap", "popgrad.rates.loglog_slope"),
    sides=(("popgrad.rates.power_law_bootstrap",), (_M + "_same",))))

register(Claim(
    id="memory.helpers_exact",
    statement="the recall probe's helpers equal loops: a tie at the maximum is a miss, invalid rows miss, "
              "scores are v_j^T W u_i, eq. (7)'s inputs/outputs/targets (Phi_1 = W_O^1 W_V^1, W_K^1 targets 1..T-1), "
              "embeddings N(0, 1/d), size checks",
    where="Sec. 4.1-4.2, eq. (7), (9); popgrad/memory.py, popgrad/embeddings.py",
    compared="popgrad.memory / popgrad.embeddings vs per-entry Python loops and the entries' second moment; "
             "shared: the embeddings (data)",
    kind="exact", tolerance="abs <= 1e-10; scale within 4 se",
    measure=measure_memory_helpers,
    code=("popgrad.memory.unique_argmax_hits", "popgrad.memory.memory_scores", "popgrad.memory.eq7_targets",
          "popgrad.embeddings.make_embeddings", "popgrad.embeddings.gaussian_vectors",
          "popgrad.embeddings.require_same_sizes"),
    sides=(("popgrad.memory.unique_argmax_hits", "popgrad.memory.memory_scores", "popgrad.memory.eq7_targets"),
           (_M + "_same",))))

_C = "popgrad.theory.concentration."
register(Claim(
    id="memory.concentration_bounds",
    statement="App. A's high-probability bounds equal the optimized Chernoff bounds in closed rate form (chi^2 tails, "
              "inner products, remappings), the Gram bounds split delta over n + n (n - 1) / 2 events, and the "
              "guaranteed-recall dimension is the smallest d with the margin",
    where="App. A (norms, near-orthogonality, remappings); Sec. 4.1 eq. (3); theory/concentration.py",
    compared="theory/concentration vs brentq on the Chernoff rate functions, scipy.stats tails and the margin "
             "inequality; shared: d, delta",
    kind="exact", tolerance="rel <= 1e-10",
    measure=measure_concentration_bounds,
    code=(_C + "chi2_upper_deviation", _C + "chi2_lower_deviation", _C + "norm_deviation_bound",
          _C + "inner_product_bound", _C + "gram_bounds", _C + "remap_orthogonality_bound", _C + "remap_norm_bound",
          _C + "recall_margin_ok", _C + "guaranteed_recall_dim"),
    sides=((_C + "gram_bounds", _C + "guaranteed_recall_dim"),
           (_M + "chernoff_chi2_upper", _M + "chernoff_chi2_lower", _M + "chernoff_inner", _M + "margin_ok_reference"))))

register(Claim(
    id="cli.memories_capacity_columns",
    statement="every column `popgrad memories hutter / zipf / moments` and `popgrad capacity` print equals an "
              "independent computation from the same inputs: z = (monte_carlo - exact) / mc_se with mc_se the sem of "
              "the draws, error ± se, medians, chance floors and exponents of the Zipf tables, the predicted capacities "
              "and variances at C, C = mean ± se or C [interval], sampled C, recall columns, local slopes, the law "
              "fits with their 95 % intervals, and the documented memory-seed default",
    where="popgrad memories (talk 'Associative memories'); popgrad capacity (Sec. 4.1, docs/capacity.md)",
    compared="popgrad.cli.main --json in one subprocess vs plain loops, statistics, scipy curve_fit and Simpson "
             "integration here; shared: the inputs and the JSON rows' per-seed values (data)",
    kind="exact", tolerance="abs <= 1e-9 on JSON numbers; printed strings at their printed precision",
    measure=measure_command_values,
    sides=((_M + "run_commands",), (_M + "loop_unseen", _M + "loop_mean_se", _M + "loop_ols", _M + "law_reference",
                                    _M + "scan_capacity", _M + "closed_var"))))
