"""Every standard error and interval popgrad prints, held against scipy, a Monte-Carlo of the estimator's
spread, and the coverage at the nominal level.

uncertainty.binomial_se        sqrt(p(1-p)/n) of an accuracy (probes.binomial_se, head_ablation.stderr,
                               dynamics.accuracy, feedforward.summarize over in-context tokens;
                               zipf_memories.memory_error: tail mass x that se) vs scipy.stats.binom's
                               std / n; the spread of p_hat over 4000 binomial draws; coverage of p_hat ± 1.96 se
uncertainty.mean_se            mean ± se over seeds (cliutil.mean_se, RecallCell, capacity.summarize,
                               bench.mean_se, noisy_training._mean_se, zipf_memories.mc_z_score;
                               feedforward.summarize's ratio se via the residuals) vs scipy.stats.sem (ddof = 1); E[se^2] = Var(mean) over 20000
                               draws of 3 seeds (the commands' own aggregations: claim cli.defaults and
                               tests/test_uncertainty_commands.py)
uncertainty.group_se           head_ablation.group_gap_se (se over 8 groups) vs scipy.stats.sem of per-group
                               values computed by a loop
uncertainty.wilson_interval    capacity_search.wilson_interval vs scipy binomtest(...).proportion_ci('wilson');
                               NestedMemory.evaluate's Bonferroni quantile; exact coverage at 95 %
uncertainty.median_bootstrap   dynamics.median_interval vs the exact bootstrap distribution of a median
                               (binomial order statistics); coverage of the median over repeated samples
uncertainty.moments_se         App. A monte_carlo_moments: se_mean and se_var vs the spread over 400 runs
uncertainty.slope_se           regression slopes and their se (dynamics_reference.fit_slope,
                               capacity_law.fit_law / log_capacity_se / local_slopes, rates.loglog_slope,
                               feedforward.excess_rate and its bootstrap vs a plain resampling loop)
                               vs scipy.stats.linregress / curve_fit, the spread of slopes over repeated
                               draws, and the coverage of the 95 % exponent interval

Each measurement returns error = the largest (discrepancy / allowed amount) over its parts, tolerance 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import optimize, stats

from popgrad.cliutil import mean_se
from popgrad.data import SecondOccurrenceModel
from popgrad.embeddings import make_embeddings
from popgrad.memory import eq7_targets
from popgrad.numerics import bench, capacity_law, dynamics, dynamics_reference, head_ablation, noisy_training, probes
from popgrad.numerics import feedforward as nf
from popgrad.numerics import zipf_memories as zm
from popgrad.numerics.capacity import summarize as capacity_summarize
from popgrad.numerics.capacity_search import NestedMemory, look_sizes, wilson_interval
from popgrad.numerics.recall import RecallCell
from popgrad.numerics.samplers import make_generator, sample_model_d
from popgrad.rates import loglog_slope
from popgrad.theory.appendix_a import monte_carlo_moments, sample_quantity
from popgrad.registry import Claim, Measurement, register
from popgrad.tolerances import nanmax

Z975 = float(stats.norm.ppf(0.975))      # the two-sided 95 % normal quantile (scipy's, not popgrad's 1.96)
MC_SIGMAS = 4.0                          # Monte-Carlo parts: allowed = 4 standard errors of the Monte-Carlo
TIGHT = {"xtol": 1e-15, "ftol": 1e-15, "gtol": 1e-15}   # curve_fit converged (its covariance: rel ~1e-7, numerical Jacobian)


def _worst(parts: dict) -> float:
    """max over parts of discrepancy / allowed (each part is (discrepancy, allowed)); a nan discrepancy is inf
    (Python's max skips a nan that is not first)."""
    return nanmax(d / a for d, a in parts.values())


def _measurement(parts: dict, note: str, value: str = "") -> Measurement:
    details = {k: {"discrepancy": d, "allowed": a} for k, (d, a) in parts.items()}
    return Measurement(_worst(parts), 1.0, "exact", note=note, value=value, details=details)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def _coverage_part(hits: int, reps: int, level: float = 0.95, sigmas: float = 3.0) -> tuple[float, float]:
    """|coverage - level| against `sigmas` binomial standard errors of a coverage over `reps` repetitions."""
    return abs(hits / reps - level), sigmas * math.sqrt(level * (1 - level) / reps)


# ----------------------------------------------------------------------------- binomial se
def scipy_binomial_se(p: float, n: int) -> float:
    """The reference: the standard deviation of Binomial(n, p) / n (scipy.stats.binom)."""
    return float(stats.binom(n, p).std() / n)


def _dynamics_accuracy_se() -> tuple[float, float, int]:
    """dynamics.accuracy on 300 model-D sequences at random scores: (p, se, n)."""
    N, T, d = 6, 8, 12
    emb = make_embeddings(d, N, T, seed=5, dtype="float64")
    gen = torch.Generator().manual_seed(6)
    W = {k: torch.randn(d, d, generator=gen, dtype=torch.float64) for k in ("W_K1", "W_K2", "W_O2")}
    z, y, _, _ = sample_model_d(SecondOccurrenceModel(N, T), 300, make_generator(7, "cpu"))
    p, se = dynamics.accuracy(dynamics.coordinates(emb), W, z, y)
    return p, se, z.shape[0]


def measure_binomial_se() -> Measurement:
    parts = {}
    grid = [(p, n) for p in (0.03, 0.3, 0.5, 0.91) for n in (7, 40, 513)]
    parts["probes.binomial_se vs scipy"] = (max(_rel(probes.binomial_se(p, n), scipy_binomial_se(p, n))
                                                for p, n in grid), 1e-12)
    parts["head_ablation.stderr vs scipy"] = (max(_rel(head_ablation.stderr(p, n), scipy_binomial_se(p, n))
                                                  for p, n in grid), 1e-12)
    p, se, n = _dynamics_accuracy_se()
    parts["dynamics.accuracy se vs scipy"] = (_rel(se, scipy_binomial_se(p, n)), 1e-12)
    # zipf_memories.memory_error: the sampled tail's se is mass * the binomial se of its miss rate over `tail` queries
    # (same memory: tail = 0 counts the tail as misses, which gives the exhaustively scored part)
    N, M, k, tail = 60, 20, 5, 64
    pz = zm.zipf_probs(N, 1.2)
    fz = np.arange(N) % M
    mass = float(np.sort(pz)[::-1][k:].sum())
    sampled = zm.memory_error(pz, fz, M, pz, d=16, seed=3, exhaustive=k, tail=tail, dtype=torch.float64)
    counted = zm.memory_error(pz, fz, M, pz, d=16, seed=3, exhaustive=k, tail=0, dtype=torch.float64)
    rate = (sampled.error - (counted.error - mass)) / mass
    parts["zipf_memories.memory_error se vs mass * scipy binom"] = (_rel(sampled.se, mass * scipy_binomial_se(rate, tail)),
                                                                    1e-9)
    # feedforward.summarize: the accuracy se is over the in-context tokens (n = 23), not the sequences (3)
    acc = nf.summarize({"v": {"hits": 7, "n": 23, "loss": [1.0, 2.0, 3.5], "entropy": [0.5, 1.0, 2.0],
                              "count": [3.0, 4.0, 6.0]}})["v"]["acc"]
    parts["feedforward.summarize acc se vs scipy"] = (max(_rel(acc[0], 7 / 23), _rel(acc[1], scipy_binomial_se(7 / 23, 23))),
                                                      1e-12)
    # Monte-Carlo: the se at the true p is the standard deviation of p_hat over repeated draws
    rng = np.random.default_rng(0)
    R, n, p = 4000, 25, 0.3
    phat = rng.binomial(n, p, size=R) / n
    sd = float(phat.std(ddof=1))
    parts["MC spread of p_hat (n=25)"] = (abs(sd - probes.binomial_se(p, n)), MC_SIGMAS * sd / math.sqrt(2 * (R - 1)))
    # coverage of p_hat ± 1.96 se(p_hat), 2000 repetitions at n = 400, p = 0.4
    R, n, p = 2000, 400, 0.4
    k = rng.binomial(n, p, size=R)
    cover = sum(abs(kk / n - p) <= Z975 * probes.binomial_se(kk / n, n) for kk in k)
    parts["coverage of p_hat ± 1.96 se"] = _coverage_part(int(cover), R)
    return _measurement(parts, note=f"binomial se = scipy binom std/n to 1e-12 (3 functions); MC sd {sd:.4f} vs "
                                    f"{probes.binomial_se(0.3, 25):.4f} (n=25, 4000 draws); Wald coverage "
                                    f"{cover / R:.3f} (2000 draws, n=400)",
                        value=f"coverage {cover / R:.3f} vs 0.95")


# ----------------------------------------------------------------------------- mean ± se over seeds
def scipy_mean_se(values) -> tuple[float, float]:
    """The reference: numpy's mean and scipy.stats.sem (ddof = 1)."""
    v = np.asarray(values, dtype=float)
    return float(np.mean(v)), float(stats.sem(v))


def _popgrad_mean_se(values) -> dict:
    """Every mean ± se over seeds that popgrad prints, on the same values: name -> (mean, se)."""
    v = [float(x) for x in values]
    out = {"cliutil.mean_se": mean_se(v), "bench.mean_se": bench.mean_se(v),
           "RecallCell.r1_mean_se": RecallCell(8, 1, tuple(v), tuple(v), 1.0).r1_mean_se,
           "RecallCell.probe_mean_se": RecallCell(8, 1, tuple(v), tuple(v), 1.0).probe_mean_se,
           "noisy_training._mean_se": noisy_training._mean_se(torch.tensor(v, dtype=torch.float64)),
           "zipf_memories.mc_z_score": zm.mc_z_score(v, 0.0)[:2]}
    cap = capacity_summarize("injective", 16, [{"capacity": x, "lower": x, "upper": x, "saturated": False,
                                                "memories": 1, "seconds": 0.0, "peak_bytes": 0, "maxrss_bytes": 0}
                                               for x in v])
    out["capacity.summarize"] = (cap["mean"], cap["se"])
    return out


def measure_mean_se() -> Measurement:
    rng = np.random.default_rng(1)
    parts = {}
    for n in (2, 3, 5, 8):
        v = rng.integers(1, 900, size=n) / 7.0          # integer-valued (capacities) scaled
        m_ref, se_ref = scipy_mean_se(v)
        for name, (m, se) in _popgrad_mean_se(v).items():
            key = f"{name} vs scipy.stats.sem"
            err = max(_rel(m, m_ref), _rel(se, se_ref))
            parts[key] = (max(parts.get(key, (0.0, 1e-12))[0], err), 1e-12)
    # zipf_memories.mc_z_score (the `memories hutter` z column): (mean - exact) / scipy.stats.sem
    v = np.random.default_rng(12).integers(1, 900, size=5) / 7.0
    parts["zipf_memories.mc_z_score z vs scipy.stats.sem"] = (_rel(zm.mc_z_score(v, 60.0)[2],
                                                                   (v.mean() - 60.0) / float(stats.sem(v))), 1e-12)
    # feedforward.summarize's ratio estimate sum(x)/sum(c) over sequences: se = scipy.stats.sem of the residuals
    # x_i - r c_i (whose mean is 0) divided by the mean count
    rr = np.random.default_rng(11)
    for n in (2, 3, 7):
        x, c = rr.uniform(0.5, 9.0, size=n), rr.integers(1, 12, size=n).astype(float)
        h = rr.uniform(0.1, 0.9, size=n) * x
        got = nf.summarize({"v": {"hits": 1, "n": 2, "loss": list(x), "entropy": list(h), "count": list(c)}})["v"]
        for name, y in (("loss", x), ("entropy", h), ("gap", x - h)):
            r = y.sum() / c.sum()
            ref_se = float(stats.sem(y - r * c)) / c.mean()
            key = "feedforward.summarize ratio se vs scipy.stats.sem of residuals"
            err = max(_rel(got[name][0], r), _rel(got[name][1], ref_se))
            parts[key] = (max(parts.get(key, (0.0, 1e-10))[0], err), 1e-10)
    # Monte-Carlo: with 3 seeds, E[se^2] equals the variance of the mean over repeated draws (ddof = 1)
    R, n = 20000, 3
    draws = rng.normal(size=(R, n))
    se2 = np.array([mean_se(row)[1] ** 2 for row in draws])
    var_mean = float(draws.mean(axis=1).var(ddof=1))
    err_mc = math.sqrt(se2.var(ddof=1) / R + 2 * var_mean ** 2 / (R - 1))
    parts["MC E[se^2] = Var(mean), 3 seeds"] = (abs(float(se2.mean()) - var_mean), MC_SIGMAS * err_mc)
    return _measurement(parts, note=f"{len(parts) - 1} aggregations = numpy mean and scipy.stats.sem (ddof 1) to 1e-12 "
                                    f"at 2, 3, 5, 8 seeds; E[se^2] {se2.mean():.4f} vs Var(mean) {var_mean:.4f} "
                                    f"(20000 draws of 3 seeds; ddof 0 would give {var_mean * 2 / 3:.4f})",
                        value=f"E[se^2] {se2.mean():.4f} vs {var_mean:.4f}")


# ----------------------------------------------------------------------------- se over Monte-Carlo groups
def loop_target_scores(W: torch.Tensor, U: torch.Tensor, V: torch.Tensor, targets) -> list[float]:
    """The reference: v_{t_i}^T W u_i, one input at a time."""
    return [float(V[:, int(t)] @ W @ U[:, i]) for i, t in enumerate(targets)]


def measure_group_se() -> Measurement:
    """Groups c_g W0 (c_g > 0): a recall margin is linear in W, so its per-group values are c_g q(W0) and its se
    over the groups is |q(W0)| sem(c); the reference computes q(W0) by a loop."""
    d, N, T, G = 10, 5, 7, 8
    emb = make_embeddings(d, N, T, seed=2, dtype="float64")
    gen = torch.Generator().manual_seed(3)
    c = torch.rand(G, generator=gen, dtype=torch.float64) + 0.5             # (G,)
    W0 = torch.randn(d, d, generator=gen, dtype=torch.float64)
    sem_c = float(stats.sem(c.numpy()))
    U, V, t = eq7_targets(emb)["W_K2"]
    best = torch.tensor([(int(tt) + 1) % N for tt in t])
    se = head_ablation.group_gap_se(c[:, None, None] * W0, U, V, t, best)    # (n,)
    gaps = np.array(loop_target_scores(W0, U, V, t)) - np.array(loop_target_scores(W0, U, V, best))
    err = max(_rel(float(s), abs(g) * sem_c) for s, g in zip(se, gaps))
    return _measurement({"head_ablation.group_gap_se": (err, 1e-10)},
                        note=f"se over {G} groups = |gap(W0)| scipy.stats.sem(c) to {err:.1e} for each of {len(gaps)} inputs")


# ----------------------------------------------------------------------------- Wilson intervals
def scipy_wilson(hits: int, n: int, confidence: float) -> tuple[float, float]:
    """The reference: scipy.stats.binomtest(hits, n).proportion_ci(method='wilson')."""
    ci = stats.binomtest(hits, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def measure_wilson() -> Measurement:
    parts = {}
    worst = 0.0
    for n in (1, 9, 50, 400):
        for hits in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            for conf in (0.9, 0.95, 0.995):
                lo, hi = wilson_interval(hits, n, float(stats.norm.ppf(1 - (1 - conf) / 2)))
                ref = scipy_wilson(hits, n, conf)
                worst = max(worst, abs(lo - ref[0]), abs(hi - ref[1]))
    parts["wilson_interval vs scipy"] = (worst, 1e-12)
    # the capacity search's sampled recall: a Wilson interval at the Bonferroni level 1 - alpha / (number of looks)
    mem = NestedMemory("injective", 12, 2, seed=4, dtype="float64")
    est = mem.evaluate(60, 0.999, queries=40, alpha=0.05, first_look=8)
    looks = len(look_sizes(20, 2, 8))
    ref = scipy_wilson(est.hits, est.n, 1 - 0.05 / looks)
    parts["NestedMemory.evaluate interval vs scipy (Bonferroni)"] = (max(abs(est.lo - ref[0]), abs(est.hi - ref[1])), 1e-12)
    # exact coverage at nominal 95 %, averaged over p (Wilson's mean coverage is close to nominal)
    covs = []
    for n in (30, 120):
        k = np.arange(n + 1)
        ints = np.array([wilson_interval(int(kk), n, Z975) for kk in k])       # (n+1, 2)
        for p in np.linspace(0.05, 0.95, 37):
            covs.append(float(stats.binom.pmf(k, n, p)[(ints[:, 0] <= p) & (p <= ints[:, 1])].sum()))
    mean_cov = float(np.mean(covs))
    parts["mean exact coverage at 95 %"] = (abs(mean_cov - 0.95), 0.01)
    return _measurement(parts, note=f"Wilson ends = scipy to 1e-12 (n up to 400, 3 levels); the search's interval at level "
                                    f"1 - 0.05/{looks}; mean exact coverage {mean_cov:.4f} (n = 30, 120; 37 p)",
                        value=f"coverage {mean_cov:.3f} vs 0.95")


# ----------------------------------------------------------------------------- bootstrap interval of a median
def exact_bootstrap_median_quantile(sorted_values: np.ndarray, a: float) -> float:
    """The a-quantile of the bootstrap distribution of the median of n (odd) distinct values: the median of a
    resample is <= x_(j) iff at least (n+1)/2 draws are <= x_(j), a Binomial(n, j/n) event."""
    n = sorted_values.size
    cdf = stats.binom.sf((n + 1) // 2 - 1, n, np.arange(1, n + 1) / n)    # P(median <= x_(j)), j = 1..n
    return float(sorted_values[int(np.argmax(cdf >= a))])


def measure_median_bootstrap() -> Measurement:
    rng = np.random.default_rng(2)
    n, reached = 41, 35
    steps = sorted(rng.choice(np.arange(100, 5000), size=reached, replace=False).tolist())
    x = np.array(steps + [np.inf] * (n - reached))        # unreached runs count as +inf (the largest values)
    med, lo, hi = dynamics.median_interval(steps, n)
    mc = MC_SIGMAS * math.sqrt(0.025 * 0.975 / 2000)       # Monte-Carlo error of a 2.5 % point of 2000 resamples
    q = {a: exact_bootstrap_median_quantile(x, a) for a in (0.025 - mc, 0.025, 0.025 + mc, 0.05,
                                                            0.975 - mc, 0.975, 0.975 + mc, 0.95)}
    separates = q[0.05] > q[0.025 + mc] and q[0.95] < q[0.975 - mc]   # a 5/95 % interval would be rejected
    parts = {"median": (abs(med - float(np.median(x))), 1e-12),
             "lo inside the exact 2.5 % band": (0.0 if q[0.025 - mc] <= lo <= q[0.025 + mc] else 1.0, 0.5),
             "hi inside the exact 97.5 % band": (0.0 if q[0.975 - mc] <= hi <= q[0.975 + mc] else 1.0, 0.5),
             "the band excludes the 5/95 % points": (0.0 if separates else 1.0, 0.5)}
    # coverage of the population median by the interval over repeated samples of 41 normal values
    R = 400
    cover = 0
    for r in range(R):
        v = rng.normal(size=n)
        _, l, h = dynamics.median_interval(list(v), n, seed=r)
        cover += l <= 0.0 <= h
    parts[f"coverage over {R} samples"] = _coverage_part(cover, R)
    return _measurement(parts, note=f"median_interval [{lo:.0f}, {hi:.0f}] vs exact bootstrap 2.5/97.5 % points "
                                    f"[{q[0.025]:.0f}, {q[0.975]:.0f}] (5/95 %: [{q[0.05]:.0f}, {q[0.95]:.0f}]); "
                                    f"coverage {cover / R:.3f} ({R} samples of 41)",
                        value=f"coverage {cover / R:.3f} vs 0.95")


# ----------------------------------------------------------------------------- regression slopes
def scipy_slope(x, y):
    """The reference: scipy.stats.linregress of log y on log x (slope, stderr)."""
    return stats.linregress(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)))


def measure_slope_se() -> Measurement:
    rng = np.random.default_rng(3)
    parts = {}
    ns = np.array([16, 32, 64, 128, 256.0])
    vals = 3.0 * ns ** -0.5 * np.exp(0.1 * rng.normal(size=ns.size))
    slope, se = dynamics_reference.fit_slope(ns, vals)
    ref = scipy_slope(ns, vals)
    parts["fit_slope vs linregress"] = (max(_rel(slope, ref.slope), _rel(se, ref.stderr)), 1e-10)
    parts["loglog_slope vs linregress"] = (_rel(loglog_slope(ns, vals), ref.slope), 1e-10)
    # Monte-Carlo: E[se^2] = Var(slope) over repeated draws (residual dof n - 2)
    R = 4000
    fits = np.array([dynamics_reference.fit_slope(ns, 3.0 * ns ** -0.5 * np.exp(0.1 * rng.normal(size=ns.size)))
                     for _ in range(R)])
    var_b, se2 = float(fits[:, 0].var(ddof=1)), fits[:, 1] ** 2
    err = math.sqrt(se2.var(ddof=1) / R + 2 * var_b ** 2 / (R - 1))
    parts["MC E[se^2] = Var(slope) (fit_slope)"] = (abs(float(se2.mean()) - var_b), MC_SIGMAS * err)
    # capacity law: weighted fits vs scipy.optimize.curve_fit (scaled when chi^2/dof > 1)
    d = np.array([32, 64, 128, 256, 512.0])
    s = np.array([0.02, 0.03, 0.02, 0.05, 0.04])
    for noise in (0.3, 3.0):                               # chi^2/dof below and above 1
        C = np.exp(0.7 + 1.9 * np.log(d) + noise * s * rng.normal(size=d.size))
        f = capacity_law.fit_law("power", d, C, s)
        popt, pcov = optimize.curve_fit(lambda x, a, b: a + b * x, np.log(d), np.log(C), sigma=s,
                                        absolute_sigma=f["chi2_per_dof"] <= 1)
        chi2 = float(np.sum(((np.log(C) - popt[0] - popt[1] * np.log(d)) / s) ** 2))
        ci = (f["exponent"] - Z975 * f["exponent_se"], f["exponent"] + Z975 * f["exponent_se"])
        parts[f"fit_law power vs curve_fit (noise {noise})"] = (max(
            _rel(f["exponent"], popt[1]), _rel(f["exponent_se"], math.sqrt(pcov[1, 1])), _rel(f["chi2"], chi2),
            _rel(f["chi2_per_dof"], chi2 / (d.size - 2))), 1e-6)
        parts[f"fit_law 95 % interval at z_0.975 (noise {noise})"] = (
            max(abs(u - v) for u, v in zip(f["exponent_ci"], ci)) / f["exponent_se"], 1e-4)
        g = capacity_law.fit_law("d^p/(ln d)^beta", d, C, s)
        popt, pcov = optimize.curve_fit(lambda x, a, b: a - b * np.log(x), np.log(d), np.log(C) - 2 * np.log(d),
                                        sigma=s, absolute_sigma=g["chi2_per_dof"] <= 1, **TIGHT)
        parts[f"fit_law log power vs curve_fit (noise {noise})"] = (max(
            _rel(g["log_power"], popt[1]), _rel(g["log_power_se"], math.sqrt(pcov[1, 1]))), 1e-6)
    # one-parameter laws: a = weighted mean of ln C - p ln d, chi^2 with n - 1 degrees of freedom
    C = np.exp(0.7 + 2 * np.log(d) + 2 * s * rng.normal(size=d.size))
    h = capacity_law.fit_law("d^p", d, C, s)
    w = 1 / s ** 2
    a = float(np.sum(w * (np.log(C) - 2 * np.log(d))) / np.sum(w))
    chi2 = float(np.sum(w * (np.log(C) - 2 * np.log(d) - a) ** 2))
    parts["fit_law d^p: c, chi2, chi2/(n-1)"] = (max(_rel(h["c"], math.exp(a)), _rel(h["chi2"], chi2),
                                                     _rel(h["chi2_per_dof"], chi2 / (d.size - 1))), 1e-10)
    # log_capacity_se of one seed's 95 % interval: (ln upper - ln lower) / (2 z_0.975)
    row = {"upper": 900, "lower": 700, "se": None}
    parts["log_capacity_se vs norm.ppf(0.975)"] = (_rel(capacity_law.log_capacity_se(row),
                                                        math.log(900 / 700) / (2 * Z975)), 2e-3)
    # local slopes: se = propagated errors of two ln C; Monte-Carlo of the slope's spread
    se_ln = np.array([0.04, 0.06])
    draws = np.exp(np.log([100.0, 300.0]) + se_ln * rng.normal(size=(R, 2)))
    sl = [capacity_law.local_slopes([{"d": 64, "mean": a, "se": a * se_ln[0]}, {"d": 128, "mean": b, "se": b * se_ln[1]}])[0]
          for a, b in draws]
    sd = float(np.std([x["slope"] for x in sl], ddof=1))
    parts["MC spread of local_slopes"] = (abs(sd - sl[0]["se"]), MC_SIGMAS * sd / math.sqrt(2 * (R - 1)))
    # coverage of fit_law's 95 % exponent interval (errors inflated only when chi^2/dof > 1: at or above 95 %)
    R2, cover = 2000, 0
    for _ in range(R2):
        C = np.exp(0.7 + 1.9 * np.log(d) + s * rng.normal(size=d.size))
        lo, hi = capacity_law.fit_law("power", d, C, s)["exponent_ci"]
        cover += lo <= 1.9 <= hi
    lo_ok = 0.95 - 3 * math.sqrt(0.95 * 0.05 / R2)
    parts["coverage of the exponent interval >= 95 % - 3 se, <= 99 %"] = (
        max(0.0, lo_ok - cover / R2, cover / R2 - 0.99), 1e-12)
    # feedforward.excess_rate: exponent of mean KL(d) - limit and its percentile bootstrap vs a plain resampling loop
    # (same generator stream: Generator.choice(v, size=n) draws v[integers(0, n, n)]) fitted by linregress
    er = np.random.default_rng(21)
    limit, kd = 0.5, (4, 8, 16, 32)
    samples = {d: limit + 2.0 / d * er.exponential(size=12) for d in kd}
    a_pop, lo_pop, hi_pop, _ = nf.excess_rate(samples, limit, resamples=200, seed=4)
    a_ref = scipy_slope(kd, [samples[d].mean() - limit for d in kd]).slope
    br, fits = np.random.default_rng(4), []
    for _ in range(200):
        m = [samples[d][br.integers(0, samples[d].size, samples[d].size)].mean() - limit for d in kd]
        if min(m) > 0:
            fits.append(scipy_slope(kd, m).slope)
    lo_ref, hi_ref = np.percentile(fits, [2.5, 97.5])
    parts["excess_rate exponent and bootstrap ends vs loop + linregress"] = (
        max(_rel(a_pop, a_ref), _rel(lo_pop, lo_ref), _rel(hi_pop, hi_ref)), 1e-10)
    parts["excess_rate interval contains its point estimate"] = (max(0.0, lo_pop - a_pop, a_pop - hi_pop), 1e-12)
    return _measurement(parts, note=f"slope se = linregress to 1e-10, curve_fit to 1e-6; E[se^2] {se2.mean():.2e} vs Var(slope) "
                                    f"{var_b:.2e} ({R} draws); local slope sd {sd:.4f} vs se {sl[0]['se']:.4f}; "
                                    f"exponent interval coverage {cover / R2:.3f}",
                        value=f"coverage {cover / R2:.3f} (nominal 0.95, conservative)")


# ----------------------------------------------------------------------------- App. A Monte-Carlo moments
def measure_moments_se() -> Measurement:
    """monte_carlo_moments' se_mean and se_var: E[se_mean^2] = Var(mean) and E[se_var^2] ~ Var(var) over 400
    independent runs of n = 200 samples (norm_sq and inner at d = 8)."""
    parts, R, n = {}, 400, 200
    for q in ("norm_sq", "inner"):
        runs = [monte_carlo_moments(q, 8, n, seed=s) for s in range(R)]
        means, var_hats = np.array([r["mean"] for r in runs]), np.array([r["var"] for r in runs])
        se_m2, se_v2 = np.array([r["se_mean"] for r in runs]) ** 2, np.array([r["se_var"] for r in runs]) ** 2
        for name, est, se2 in (("mean", means, se_m2), ("var", var_hats, se_v2)):
            v = float(est.var(ddof=1))
            err = math.sqrt(se2.var(ddof=1) / R + 2 * v ** 2 / (R - 1))
            parts[f"{q} E[se_{name}^2] = Var({name})"] = (abs(float(se2.mean()) - v), MC_SIGMAS * err)
        ref = scipy_mean_se(sample_quantity(q, 8, n, torch.Generator().manual_seed(0)).numpy())
        parts[f"{q} se_mean vs scipy.stats.sem"] = (_rel(runs[0]["se_mean"], ref[1]), 1e-10)
    return _measurement(parts, note=f"App. A Monte-Carlo se of the mean and of the variance = their spread over {R} runs "
                                    f"of n = {n} (within 4 Monte-Carlo se); se_mean = scipy.stats.sem")


_SHARED = "shared: the values (data) only"
register(Claim(
    id="uncertainty.binomial_se",
    statement="the standard error sqrt(p(1-p)/n) printed beside every accuracy is the binomial standard deviation of "
              "p_hat, and p_hat ± 1.96 se covers p at 95 %",
    where="App. E (accuracies of Fig. 3-6); Theorem 3 tables (head accuracy)",
    compared="probes.binomial_se, head_ablation.stderr, dynamics.accuracy, feedforward.summarize (over in-context "
             "tokens), zipf_memories.memory_error (mass x binomial se of the sampled tail) vs "
             f"scipy.stats.binom std / n; a Monte-Carlo of p_hat; coverage over 2000 draws; {_SHARED}",
    kind="exact", tolerance="rel <= 1e-12 vs scipy; MC within 4 se; coverage within 3 se of 0.95",
    measure=measure_binomial_se,
    code=("popgrad.numerics.probes.binomial_se", "popgrad.numerics.head_ablation.stderr",
          "popgrad.numerics.dynamics.accuracy", "popgrad.numerics.feedforward.summarize",
          "popgrad.numerics.zipf_memories.memory_error"),
    sides=(("popgrad.numerics.probes.binomial_se", "popgrad.numerics.head_ablation.stderr",
            "popgrad.numerics.dynamics.accuracy", "popgrad.numerics.feedforward.summarize",
            "popgrad.numerics.zipf_memories.memory_error"),
           ("popgrad.claims.uncertainty.scipy_binomial_se",))))

register(Claim(
    id="uncertainty.mean_se",
    statement="every mean ± se over seeds that popgrad prints is the mean and the standard error with ddof = 1, "
              "whose square is unbiased for the variance of the mean",
    where="App. E (Fig. 9 table, Fig. 3-6 curves over seeds); capacity and dynamics tables",
    compared="cliutil.mean_se, bench.mean_se, RecallCell, capacity.summarize, noisy_training._mean_se, "
             "zipf_memories.mc_z_score (z of `memories hutter`) vs scipy.stats.sem; feedforward.summarize's ratio se vs scipy.stats.sem of the residuals; E[se^2] vs the "
             f"variance of the mean over 20000 draws; {_SHARED}",
    kind="exact", tolerance="rel <= 1e-12 vs scipy; MC within 4 se",
    measure=measure_mean_se,
    code=("popgrad.cliutil.mean_se", "popgrad.numerics.bench.mean_se", "popgrad.numerics.recall.RecallCell",
          "popgrad.numerics.capacity.summarize", "popgrad.numerics.noisy_training._mean_se",
          "popgrad.numerics.feedforward.summarize", "popgrad.numerics.zipf_memories.mc_z_score"),
    sides=(("popgrad.cliutil.mean_se", "popgrad.numerics.bench.mean_se", "popgrad.numerics.recall.RecallCell",
            "popgrad.numerics.capacity.summarize", "popgrad.numerics.noisy_training._mean_se",
            "popgrad.numerics.feedforward.summarize", "popgrad.numerics.zipf_memories.mc_z_score"),
           ("popgrad.claims.uncertainty.scipy_mean_se",))))

register(Claim(
    id="uncertainty.group_se",
    statement="the Monte-Carlo standard error over groups of the recall margins (theorem3 head table) is the standard "
              "error of the group values with ddof = 1",
    where="Theorem 3 (B.3) Monte-Carlo tables",
    compared="head_ablation.group_gap_se on groups c_g W0 vs |gap(W0)| scipy.stats.sem(c), gap(W0) from a loop; "
             "shared: the embeddings and the weights",
    kind="exact", tolerance="rel <= 1e-10", measure=measure_group_se,
    code=("popgrad.numerics.head_ablation.group_gap_se",),
    sides=(("popgrad.numerics.head_ablation.group_gap_se",),
           ("popgrad.claims.uncertainty.loop_target_scores",))))

register(Claim(
    id="uncertainty.wilson_interval",
    statement="the capacity search's recall interval is the Wilson score interval at the Bonferroni level over its "
              "looks, and the 95 % Wilson interval covers at its nominal level",
    where="talk 'Capacity: Intuition' (the capacity's interval); eq. (9)",
    compared="capacity_search.wilson_interval and NestedMemory.evaluate vs scipy binomtest(...).proportion_ci("
             f"method='wilson'); exact coverage from binomial probabilities; {_SHARED}",
    kind="exact", tolerance="abs <= 1e-12 vs scipy; mean coverage within 0.01 of 0.95",
    measure=measure_wilson,
    code=("popgrad.numerics.capacity_search.wilson_interval", "popgrad.numerics.capacity_search.NestedMemory.evaluate"),
    sides=(("popgrad.numerics.capacity_search.wilson_interval", "popgrad.numerics.capacity_search.NestedMemory.evaluate"),
           ("popgrad.claims.uncertainty.scipy_wilson",))))

register(Claim(
    id="uncertainty.median_bootstrap",
    statement="the dynamics tables' median steps carry the 2.5 / 97.5 % points of the median's bootstrap distribution "
              "(unreached runs = +inf), which cover the median at about 95 %",
    where="Theorem 3 dynamics (docs/dynamics.md tables; docs/results/dynamics_law.md)",
    compared="dynamics.median_interval (2000 resamples) vs the exact bootstrap distribution of a median (binomial "
             f"order statistics); coverage over 400 samples of 41; {_SHARED}",
    kind="exact", tolerance="ends within the exact 2.5/97.5 % points ± 4 Monte-Carlo se (a band that excludes "
                            "5/95 %); coverage within 3 se of 0.95",
    measure=measure_median_bootstrap,
    code=("popgrad.numerics.dynamics.median_interval",),
    sides=(("popgrad.numerics.dynamics.median_interval",),
           ("popgrad.claims.uncertainty.exact_bootstrap_median_quantile",))))

register(Claim(
    id="uncertainty.slope_se",
    statement="fitted slopes and exponents come with the least-squares standard error (residual dof n - k, weighted "
              "and scaled by chi^2/dof when misfit) and 95 % intervals at the normal 97.5 % point",
    where="talk 'Capacity: Intuition' (capacity law); Theorem 3 dynamics (Monte-Carlo approach rate n^-1/2)",
    compared="dynamics_reference.fit_slope, rates.loglog_slope, capacity_law.fit_law / log_capacity_se / local_slopes "
             "and feedforward.excess_rate (exponent, bootstrap ends vs a plain resampling loop) vs scipy.stats.linregress "
             "and scipy.optimize.curve_fit; Monte-Carlo spread of slopes; coverage of the "
             f"exponent interval over 2000 draws; {_SHARED}",
    kind="exact", tolerance="rel <= 1e-10 vs linregress, 1e-6 vs curve_fit; MC within 4 se; coverage in [0.95 - 3 se, 0.99]",
    measure=measure_slope_se,
    code=("popgrad.numerics.dynamics_reference.fit_slope", "popgrad.rates.loglog_slope",
          "popgrad.numerics.capacity_law.fit_law", "popgrad.numerics.capacity_law.log_capacity_se",
          "popgrad.numerics.capacity_law.local_slopes", "popgrad.numerics.feedforward.excess_rate"),
    sides=(("popgrad.numerics.dynamics_reference.fit_slope", "popgrad.rates.loglog_slope",
            "popgrad.numerics.capacity_law.fit_law", "popgrad.numerics.capacity_law.log_capacity_se",
            "popgrad.numerics.capacity_law.local_slopes", "popgrad.numerics.feedforward.excess_rate"),
           ("popgrad.claims.uncertainty.scipy_slope",))))

register(Claim(
    id="uncertainty.moments_se",
    statement="the App. A Monte-Carlo standard errors of a mean and of a variance (which every App. A claim's "
              "4-stderr tolerance uses) equal the spread of those estimates over independent runs",
    where="App. A (facts on random vectors), Monte-Carlo side",
    compared="theory.appendix_a.monte_carlo_moments se_mean / se_var vs the variance of mean / var over 400 "
             f"independent runs, and scipy.stats.sem; {_SHARED}",
    kind="exact", tolerance="MC within 4 se; rel <= 1e-10 vs scipy", measure=measure_moments_se,
    code=("popgrad.theory.appendix_a.monte_carlo_moments",),
    sides=(("popgrad.theory.appendix_a.monte_carlo_moments",), ("popgrad.claims.uncertainty.scipy_mean_se",))))
