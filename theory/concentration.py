"""Appendix A: high-probability bounds for random Gaussian embeddings, from exact moments.

Appendix A states that for u_i with i.i.d. N(0, 1/d) entries, u_i^T u_i ~ 1 and
u_i^T u_j = O(1/sqrt(d)), and that a remapping W x (W with N(0, 1/d) entries) has ||W x|| ~ 1
and x^T W x ~ 0. This module turns each "~" into a bound with an EXPLICIT failure probability
delta, derived from the exact law of the statistic:

    d ||u||^2           ~ chi^2_d                 MGF (1 - 2 lam)^(-d/2)
    d u_i^T u_j         = sum_k g_k h_k           MGF (1 - lam^2)^(-d/2)   (|lam| < 1)
    ||W x||^2 | x       = ||x||^2 chi^2_d / d     (W x ~ N(0, ||x||^2 I / d) given x)
    x^T W x | x         = ||x||^2 g / sqrt(d)     (g ~ N(0, 1)), so Var = E||x||^4 / d = (d + 2) / d^2

Every tail bound is a Chernoff bound P(S >= t) <= exp(-lam t) E[exp(lam S)] with the exact MGF,
minimized over lam numerically (any lam gives a valid bound, so an inexact minimizer is only
conservative). `laurent_massart_*` are the closed forms of Laurent & Massart (2000, Lemma 1)
for comparison: the Chernoff bounds are never larger. Union bounds over pairs are explicit.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import norm

from popgrad.errors import PopgradError, positive_int


def _delta(delta) -> float:
    """Validate a failure probability in (0, 1)."""
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not (0.0 < float(delta) < 1.0):
        raise PopgradError(f"delta must be a probability in (0, 1), got {delta!r}")
    return float(delta)


def _min_over(f, lo: float, hi: float) -> float:
    """min of a convex-in-practice 1-d function on (lo, hi) (bounded Brent)."""
    res = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12 * max(hi, 1.0)})
    return float(res.fun)


# ----------------------------------------------------------------------------- norms
def chi2_upper_deviation(d: int, delta: float) -> float:
    """App. A (Norm): t with P(u^T u - 1 >= t) <= delta, from the chi^2_d MGF (Chernoff)."""
    d, L = positive_int("d", d), math.log(1.0 / _delta(delta))
    # P(X - d >= s) <= exp(-lam (d + s)) (1 - 2 lam)^(-d/2), lam in (0, 1/2)
    s = _min_over(lambda lam: (L - 0.5 * d * math.log1p(-2 * lam)) / lam - d, 1e-12, 0.5 - 1e-12)
    return s / d


def chi2_lower_deviation(d: int, delta: float) -> float:
    """App. A (Norm): t with P(1 - u^T u >= t) <= delta, from the chi^2_d MGF (Chernoff)."""
    d, L = positive_int("d", d), math.log(1.0 / _delta(delta))
    # P(d - X >= s) <= exp(lam (d - s)) (1 + 2 lam)^(-d/2), lam > 0
    s = _min_over(lambda lam: d + (L - 0.5 * d * math.log1p(2 * lam)) / lam, 1e-12, 1e6)
    return min(s / d, 1.0)  # u^T u >= 0, so a deviation of 1 below the mean is never exceeded


def norm_deviation_bound(d: int, delta: float) -> float:
    """App. A (Norm): t with P(|u^T u - 1| >= t) <= delta (both tails, delta/2 each)."""
    return max(chi2_upper_deviation(d, delta / 2), chi2_lower_deviation(d, delta / 2))


def laurent_massart_norm_bound(d: int, delta: float) -> float:
    """Laurent-Massart (2000): |u^T u - 1| <= 2 sqrt(x/d) + 2x/d with prob >= 1 - 2 e^{-x}."""
    d = positive_int("d", d)
    x = math.log(2.0 / _delta(delta))
    return 2 * math.sqrt(x / d) + 2 * x / d


# ----------------------------------------------------------------------------- inner products
def inner_product_bound(d: int, delta: float) -> float:
    """App. A (Near-orthogonality): t with P(|u_i^T u_j| >= t) <= delta for independent u_i, u_j.

    d u_i^T u_j = sum_k g_k h_k has the exact MGF (1 - lam^2)^(-d/2); the law is symmetric, so
    each tail gets delta/2.
    """
    d, L = positive_int("d", d), math.log(2.0 / _delta(delta))
    s = _min_over(lambda lam: (L - 0.5 * d * math.log1p(-lam * lam)) / lam, 1e-12, 1 - 1e-12)
    return s / d


def laurent_massart_inner_bound(d: int, delta: float) -> float:
    """g.h = (X - Y)/2 with X, Y i.i.d. chi^2_d, so Laurent-Massart gives 2 sqrt(x/d) + x/d, delta = 4 e^{-x}."""
    d = positive_int("d", d)
    x = math.log(4.0 / _delta(delta))
    return 2 * math.sqrt(x / d) + x / d


def gram_bounds(n: int, d: int, delta: float) -> tuple[float, float]:
    """(diagonal, off-diagonal) bounds holding for ALL n vectors at once with prob >= 1 - delta.

    Union bound over the n norms and the n (n - 1) / 2 pairs, delta split evenly among them.
    """
    n = positive_int("n", n)
    events = n + n * (n - 1) // 2
    each = _delta(delta) / events
    return norm_deviation_bound(d, each), inner_product_bound(d, each)


# ----------------------------------------------------------------------------- remappings
def remap_variance(d: int) -> Fraction:
    """App. A (Remapping: near-orthogonality): exact Var(x^T W x) = E||x||^4 / d = (d + 2) / d^2."""
    d = positive_int("d", d)
    return Fraction(d + 2, d * d)


def remap_variance_paper(d: int) -> Fraction:
    """App. A as printed: (1/d^3)(d M_4 M_2 + d(d-1)/2 M_2^3) = (d + 5) / (2 d^2) (M_2 = 1, M_4 = 3)."""
    d = positive_int("d", d)
    return Fraction(1, d ** 3) * (3 * d + Fraction(d * (d - 1), 2))


def remap_orthogonality_bound(d: int, delta: float) -> float:
    """App. A (Remapping): t with P(|x^T W x| >= t) <= delta.

    x^T W x = ||x||^2 g / sqrt(d): ||x||^2 <= 1 + a with prob 1 - delta/2 (chi^2 bound) and
    |g| <= z with prob 1 - delta/2 (exact Gaussian quantile).
    """
    delta = _delta(delta)
    a = chi2_upper_deviation(d, delta / 2)
    z = float(norm.isf(delta / 4))
    return (1 + a) * z / math.sqrt(positive_int("d", d))


def remap_norm_bound(d: int, delta: float) -> float:
    """App. A (Remapping: norm): t with P(| ||W x||^2 - 1 | >= t) <= delta, x and W both random.

    ||W x||^2 = A B with A = ||x||^2, B = chi^2_d / d independent; each lies in [1 - l, 1 + h]
    with prob 1 - delta/2 (delta/4 per tail), so |A B - 1| <= max((1+h)^2 - 1, 1 - (1-l)^2).
    """
    delta = _delta(delta)
    h = chi2_upper_deviation(d, delta / 4)
    lo = chi2_lower_deviation(d, delta / 4)
    return max((1 + h) ** 2 - 1, 1 - (1 - lo) ** 2)


def wick_remap_second_moment(d: int) -> Fraction:
    """E[(x^T W x)^2] by brute-force index summation with Isserlis' theorem (independent of the above).

    E[(x^T W x)^2] = sum_{i,j,k,l} E[x_i x_j x_k x_l] E[W_ij W_kl]; E[W_ij W_kl] = 1{(i,j)=(k,l)}/d
    and E[x_i x_j x_k x_l] = (delta_ij delta_kl + delta_ik delta_jl + delta_il delta_jk) / d^2.
    Exact rationals; O(d^4) terms, for small d only.
    """
    d = positive_int("d", d)
    if d > 12:
        raise PopgradError(f"d must be <= 12 for the brute-force Wick sum, got {d}")
    idx = np.arange(d)
    i, j, k, l = np.meshgrid(idx, idx, idx, idx, indexing="ij")
    x4 = ((i == j) & (k == l)).astype(int) + ((i == k) & (j == l)) + ((i == l) & (j == k))  # * 1/d^2
    w2 = ((i == k) & (j == l)).astype(int)                                                  # * 1/d
    return Fraction(int((x4 * w2).sum()), d ** 3)


# ----------------------------------------------------------------------------- exact recall
def recall_margin_ok(N: int, d: int, delta: float) -> bool:
    """Sec. 4.1 eq. (3): do the Gram bounds force recall 1 for W = sum_z u_{f(z)} e_z^T, f injective?

    With |e^T e - 1|, |u^T u - 1| <= a and all cross inner products <= b (prob >= 1 - delta, both
    sets), gamma_{z,f(z)} >= (1 - a)^2 - (N - 1) b^2 and gamma_{z,y} <= 2 b (1 + a) + (N - 2) b^2.
    """
    N = positive_int("N", N)
    a, b = gram_bounds(N, d, _delta(delta) / 2)
    return (1 - a) ** 2 - (N - 1) * b * b > 2 * b * (1 + a) + max(N - 2, 0) * b * b


def guaranteed_recall_dim(N: int, delta: float = 1e-9) -> int:
    """Smallest d at which `recall_margin_ok` holds: recall is 1 with prob >= 1 - delta (sufficient, not tight)."""
    N, delta = positive_int("N", N), _delta(delta)
    hi = 8
    while not recall_margin_ok(N, hi, delta):
        hi *= 2
        if hi > 2 ** 40:
            raise PopgradError(f"no dimension guarantees recall for N={N}, delta={delta}")
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if recall_margin_ok(N, mid, delta) else (mid, hi)
    return hi
