"""Fitted rates: how a measured error scales in d, N, T or the sample size (`approx` verdicts)."""

from __future__ import annotations

import numpy as np


def loglog_slope(x, y) -> float:
    """Least-squares slope of log|y| against log x: the exponent a in |y| ~ C x^a."""
    return float(np.polyfit(np.log(np.asarray(x, dtype=float)), np.log(np.abs(np.asarray(y, dtype=float))), 1)[0])


def power_law_exponents(points: dict, interactions: bool = False) -> np.ndarray:
    """Least squares of log y = a + sum_i b_i log x_i over `points` {(x_1, ..., x_k): y > 0}.

    Returns (a, b_1, ..., b_k): the exponents of y ~ e^a x_1^b_1 ... x_k^b_k. Needs at least k + 1
    points whose log x span k dimensions (a star design through a centre is enough).

    With `interactions`, the model adds g_ij (log x_i - m_i)(log x_j - m_j) for every pair i < j, where m_i
    is the mean of log x_i over the points; it returns (a, b_1, ..., b_k, g_12, g_13, ..., g_(k-1)k), and
    b_i is then the exponent of x_i at the design's (geometric) centre. g_ij is how much the exponent of
    x_i changes per unit of log x_j: zero when the factors act independently. A star design cannot
    determine the g (ValueError); a 2^k factorial can."""
    keys = sorted(points)
    logs = np.log(np.asarray(keys, dtype=float))
    columns = [np.ones(len(keys)), *logs.T]
    if interactions:
        centred = logs - logs.mean(axis=0)
        k = logs.shape[1]
        columns += [centred[:, i] * centred[:, j] for i in range(k) for j in range(i + 1, k)]
    X = np.column_stack(columns)
    y = np.log(np.asarray([points[k] for k in keys], dtype=float))
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError(f"power_law_exponents: {len(keys)} points do not determine {X.shape[1]} coefficients")
    return np.linalg.lstsq(X, y, rcond=None)[0]


def power_law_bootstrap(samples: dict, resamples: int = 2000, seed: int = 0, level: float = 0.95,
                        interactions: bool = False):
    """Exponents of the medians of `samples` {(x_1, ..., x_k): values (inf = never reached)} and percentile-
    bootstrap intervals from resampling the values of every point independently (fixed generator).

    Returns (point, lo, hi, dropped): `dropped` counts resamples in which some median is inf (more than
    half the drawn values never reached); they are left out of the intervals, so report them.
    `interactions` as in `power_law_exponents`."""
    rng = np.random.default_rng(seed)
    arrays = {k: np.asarray(v, dtype=float) for k, v in samples.items()}
    point = power_law_exponents({k: float(np.median(v)) for k, v in arrays.items()}, interactions)
    fits, dropped = [], 0
    for _ in range(resamples):
        meds = {k: float(np.median(rng.choice(v, size=v.size, replace=True))) for k, v in arrays.items()}
        if not all(np.isfinite(m) for m in meds.values()):
            dropped += 1
            continue
        fits.append(power_law_exponents(meds, interactions))
    if not fits:
        raise ValueError("power_law_bootstrap: every resample has an infinite median")
    q = 100 * (1 - level) / 2
    lo, hi = np.percentile(np.asarray(fits), [q, 100 - q], axis=0)
    return point, lo, hi, dropped
