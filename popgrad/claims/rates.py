"""The power-law fits behind the law tables (docs/results/dynamics_law.md, the README's laws): popgrad.rates
against exact power laws, scipy and the exact bootstrap distribution.

rates.power_law_exact      power_law_exponents / loglog_slope recover the exponents of exact power laws (one
                           factor, a star design in three, a 2^2 factorial with a planted interaction) to
                           1e-10, and equal scipy.stats.linregress on noisy one-factor data
rates.bootstrap_interval   power_law_bootstrap: on two points, its 2.5/97.5 % ends lie on the exact bootstrap
                           distribution of the exponent (binomial order statistics of both medians); on a
                           2^2 factorial with interactions it equals a plain loop (numpy lstsq per resample,
                           np.quantile); resamples with an infinite median are counted and left out
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats

from popgrad.rates import loglog_slope, power_law_bootstrap, power_law_exponents
from popgrad.registry import Claim, Measurement, register
from popgrad.tolerances import nanmax

MC_SIGMAS = 4.0


def planted_law(design, a: float, b, g=None):
    """y = e^a prod x_i^b_i exp(sum_{i<j} g_ij (ln x_i - m_i)(ln x_j - m_j)) at every point of `design`."""
    logs = np.log(np.asarray(design, float))
    centred = logs - logs.mean(axis=0)
    out = {}
    for key, lx, cx in zip(design, logs, centred):
        ly = a + float(np.dot(b, lx))
        if g is not None:
            pairs = [(i, j) for i in range(lx.size) for j in range(i + 1, lx.size)]
            ly += sum(gij * cx[i] * cx[j] for gij, (i, j) in zip(g, pairs))
        out[tuple(key)] = math.exp(ly)
    return out


def measure_power_law_exact() -> Measurement:
    errs = {}
    x = [8, 16, 32, 64, 128]
    one = planted_law([(v,) for v in x], 0.3, [-0.5])
    errs["one factor"] = float(np.abs(power_law_exponents(one) - [0.3, -0.5]).max())
    errs["loglog_slope"] = abs(loglog_slope(x, [one[(v,)] for v in x]) + 0.5)
    star = [(64, 32, 16)] + [tuple(c * (f if i == k else 1) for i, c in enumerate((64, 32, 16)))
                             for k in range(3) for f in (0.5, 2)]
    three = planted_law(star, -1.1, [1.5, -0.25, 0.75])
    errs["star design, three factors"] = float(np.abs(power_law_exponents(three) - [-1.1, 1.5, -0.25, 0.75]).max())
    fact = list(itertools.product((8, 32), (16, 64, 256)))
    inter = planted_law(fact, 0.9, [1.25, -0.6], g=[0.35])
    errs["2 x 3 factorial, interaction"] = float(np.abs(power_law_exponents(inter, interactions=True)
                                                        - [0.9, 1.25, -0.6, 0.35]).max())
    cube = list(itertools.product((8, 32), (16, 64), (4, 8)))
    three_way = planted_law(cube, 0.2, [0.5, -1.0, 0.25], g=[0.3, -0.2, 0.1])     # g_12, g_13, g_23
    errs["2^3 factorial, three interactions"] = float(np.abs(power_law_exponents(three_way, interactions=True)
                                                             - [0.2, 0.5, -1.0, 0.25, 0.3, -0.2, 0.1]).max())
    rng = np.random.default_rng(4)
    noisy = {(v,): 2.0 * v ** 0.7 * math.exp(0.2 * rng.normal()) for v in x}
    ref = stats.linregress(np.log(x), np.log([noisy[(v,)] for v in x]))
    got = power_law_exponents(noisy)
    errs["noisy vs linregress"] = max(abs(got[0] - ref.intercept), abs(got[1] - ref.slope))
    return Measurement(nanmax(errs.values()), 1e-10, "exact", details=errs,
                       note=f"planted exponents recovered to {nanmax(errs.values()):.1e} (one factor, star in 3, 2 x 3 factorial "
                            f"with interaction 0.35, 2^3 factorial with three interactions); noisy fit = linregress")


def exact_bootstrap_exponent_quantile(x1: float, v1, x2: float, v2, a: float) -> float:
    """The a-quantile of the exact bootstrap distribution of (ln med(v2*) - ln med(v1*)) / ln(x2 / x1), resampling
    each point's n (odd) distinct values independently (median of a resample = an order statistic)."""
    def pmf(v):
        n = len(v)
        cdf = stats.binom.sf((n + 1) // 2 - 1, n, np.arange(1, n + 1) / n)
        return np.sort(np.asarray(v, float)), np.diff(np.concatenate([[0.0], cdf]))
    s1, p1 = pmf(v1)
    s2, p2 = pmf(v2)
    vals = ((np.log(s2)[None, :] - np.log(s1)[:, None]) / math.log(x2 / x1)).ravel()
    prob = (p1[:, None] * p2[None, :]).ravel()
    order = np.argsort(vals, kind="stable")
    cum = np.cumsum(prob[order])
    return float(vals[order][int(np.argmax(cum >= a - 1e-15))])


def loop_bootstrap(samples: dict, resamples: int, seed: int, interactions: bool):
    """The reference: one resample at a time with the same generator draws, numpy lstsq on a design built here,
    np.quantile at 2.5 / 97.5 %."""
    rng = np.random.default_rng(seed)
    keys = list(samples)
    order = sorted(keys)
    logs = np.log(np.asarray(order, float))
    cols = [np.ones(len(order))] + [logs[:, i] for i in range(logs.shape[1])]
    if interactions:
        c = logs - logs.mean(axis=0)
        cols += [c[:, i] * c[:, j] for i in range(logs.shape[1]) for j in range(i + 1, logs.shape[1])]
    X = np.column_stack(cols)
    fits, dropped = [], 0
    for _ in range(resamples):
        med = {}
        for k in keys:
            v = np.asarray(samples[k], float)
            med[k] = np.median(rng.choice(v, v.size))
        if any(not np.isfinite(m) for m in med.values()):
            dropped += 1
            continue
        fits.append(np.linalg.lstsq(X, np.log([med[k] for k in order]), rcond=None)[0])
    lo, hi = np.quantile(np.array(fits), [0.025, 0.975], axis=0)
    return lo, hi, dropped


def measure_bootstrap_interval() -> Measurement:
    rng = np.random.default_rng(5)
    parts = {}
    # two points: the exact bootstrap distribution of the exponent
    n, x1, x2 = 21, 16.0, 64.0
    v1 = (100 * np.exp(0.3 * rng.normal(size=n))).tolist()
    v2 = (100 * 4 ** -0.5 * np.exp(0.3 * rng.normal(size=n))).tolist()
    point, lo, hi, dropped = power_law_bootstrap({(x1,): v1, (x2,): v2})
    mc = MC_SIGMAS * math.sqrt(0.025 * 0.975 / 2000)
    q = {a: exact_bootstrap_exponent_quantile(x1, v1, x2, v2, a)
         for a in (0.025 - mc, 0.025 + mc, 0.05, 0.95, 0.975 - mc, 0.975 + mc)}
    exact_point = (math.log(np.median(v2)) - math.log(np.median(v1))) / math.log(x2 / x1)
    parts["point = exponent of the medians"] = abs(point[1] - exact_point) / 1e-10
    parts["lo in the exact 2.5 % band"] = 0.0 if q[0.025 - mc] <= lo[1] <= q[0.025 + mc] else 2.0
    parts["hi in the exact 97.5 % band"] = 0.0 if q[0.975 - mc] <= hi[1] <= q[0.975 + mc] else 2.0
    parts["the bands exclude the 5/95 % points"] = 0.0 if q[0.05] > q[0.025 + mc] and q[0.95] < q[0.975 - mc] else 2.0
    # 2 x 2 factorial with an interaction and a censored point: equal to the plain loop
    samples = {}
    for x, t in itertools.product((8, 32), (16, 64)):
        base = 50 * x ** 0.8 * t ** -0.3
        samples[(x, t)] = (base * np.exp(0.25 * rng.normal(size=9))).tolist()
    samples[(32, 64)][:4] = [math.inf] * 4                   # 4 of 9 never reached: some resamples drop out
    got = power_law_bootstrap(samples, resamples=600, seed=7, interactions=True)
    ref = loop_bootstrap(samples, 600, 7, True)
    parts["factorial: ends vs loop"] = max(float(np.abs(got[1] - ref[0]).max()), float(np.abs(got[2] - ref[1]).max())) / 1e-10
    parts["factorial: dropped vs loop"] = 0.0 if got[3] == ref[2] and got[3] > 0 else 2.0
    return Measurement(nanmax(parts.values()), 1.0, "exact", details=parts,
                       note=f"two points: interval [{lo[1]:.4f}, {hi[1]:.4f}] vs exact bootstrap 2.5/97.5 % band "
                            f"[{q[0.025 - mc]:.4f}..{q[0.025 + mc]:.4f}], [{q[0.975 - mc]:.4f}..{q[0.975 + mc]:.4f}] "
                            f"(5/95 %: {q[0.05]:.4f}, {q[0.95]:.4f}); factorial with interaction = loop, "
                            f"{got[3]} of 600 resamples dropped",
                       value=f"[{lo[1]:.3f}, {hi[1]:.3f}] (exponent -0.5 planted)")


_SHARED = "shared: the sample values (data) only"
register(Claim(
    id="rates.power_law_exact",
    statement="the power-law fits of the law tables recover the exponents (and interaction) of exact power laws and "
              "equal ordinary least squares",
    where="talk 'Associative memories' (scaling laws); docs/results/dynamics_law.md (steps vs N, T, d)",
    compared=f"rates.power_law_exponents / loglog_slope vs planted exponents and scipy.stats.linregress; {_SHARED}",
    kind="exact", tolerance="abs <= 1e-10", measure=measure_power_law_exact,
    code=("popgrad.rates.power_law_exponents", "popgrad.rates.loglog_slope"),
    sides=(("popgrad.rates.power_law_exponents", "popgrad.rates.loglog_slope"), ("popgrad.claims.rates.planted_law",))))

register(Claim(
    id="rates.bootstrap_interval",
    statement="the law tables' 95 % intervals are the 2.5/97.5 % points of the bootstrap distribution of the fitted "
              "exponents (resampling every point's runs; resamples with an infinite median counted and left out)",
    where="docs/results/dynamics_law.md (exponents with 95 % bootstrap intervals)",
    compared="rates.power_law_bootstrap vs the exact bootstrap distribution of a two-point exponent (binomial order "
             f"statistics) and vs a plain loop on a 2 x 2 factorial with interaction; {_SHARED}",
    kind="exact", tolerance="ends within the exact 2.5/97.5 % points ± 4 Monte-Carlo se (excluding 5/95 %); "
                            "abs <= 1e-10 vs the loop; same dropped count",
    measure=measure_bootstrap_interval,
    code=("popgrad.rates.power_law_bootstrap",),
    sides=(("popgrad.rates.power_law_bootstrap",),
           ("popgrad.claims.rates.exact_bootstrap_exponent_quantile", "popgrad.claims.rates.loop_bootstrap"))))
