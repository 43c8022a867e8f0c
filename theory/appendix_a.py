"""Appendix A: associative memories with random vectors; exact moments as sympy expressions in d.

u_i, x have i.i.d. N(0, 1/d) entries, W (d, d) i.i.d. N(0, 1/d); M2 = E[g^2] = 1, M4 = E[g^4] = 3
for g ~ N(0, 1). Five quantities (keys of QUANTITIES):

    norm_sq        u_i^T u_i             mean 1, var 2/d                  ("norm" fact)
    inner          u_i^T u_j, i != j     mean 0, var 1/d                  ("near-orthogonality")
    remap_fixed    ||W x||^2, x fixed    mean ||x||^2, var 2 ||x||^4 / d  ("remapping: norm")
    remap_random   ||W x||^2, x random   mean 1, var 4 (d + 1) / d^2
    xWx            x^T W x               mean 0, var (d + 2) / d^2        ("remapping: near-orthogonality")

Three independent paths: `moments_index_counting` (the paper's route: sums over index patterns
with Gaussian moments M2, M4, symbolic in d), `moments_isserlis` (exact expectation of the expanded
polynomial in explicit Gaussian variables at a concrete d, monomial by monomial), and
`monte_carlo_moments` (float64 sampling). `paper_xWx_second_moment` is App. A's printed expression.
"""

from __future__ import annotations

import functools
import math

import sympy as sp
import sympy.stats as sps
import torch

from popgrad.errors import PopgradError, choice, memory_budget, positive_int

QUANTITIES = ("norm_sq", "inner", "remap_fixed", "remap_random", "xWx")
d_sym = sp.Symbol("d", positive=True, integer=True)
s_sym = sp.Symbol("s", positive=True)  # ||x||^2 for the fixed-x remapping


def gaussian_moment(k: int) -> sp.Integer:
    """App. A: M_k = E[g^k] for g ~ N(0, 1), from sympy.stats (M2 = 1, M4 = 3)."""
    k = positive_int("k", k, minimum=0)
    return sp.simplify(sps.E(sps.Normal("g", 0, 1) ** k))


# ----------------------------------------------------------------------------- index counting (paper route)
@functools.lru_cache(maxsize=None)
def moments_index_counting(quantity: str, d=d_sym) -> tuple[sp.Expr, sp.Expr]:
    """App. A: (mean, variance) of `quantity` by counting index patterns with Gaussian moments M2, M4.

    Each second moment is a sum over index tuples; only patterns pairing every Gaussian factor survive,
    and the number of ordered tuples of a pattern is a polynomial in d (d for i = j, d(d - 1) for i != j).
    """
    choice("quantity", quantity, QUANTITIES)
    M2, M4 = gaussian_moment(2), gaussian_moment(4)
    if quantity == "norm_sq":      # (1/d) sum_i g_i^2
        mean = d * M2 / d
        second = (d * M4 + d * (d - 1) * M2 ** 2) / d ** 2
    elif quantity == "inner":      # (1/d) sum_i g_i h_i
        mean = sp.Integer(0)
        second = d * M2 ** 2 / d ** 2
    elif quantity == "remap_fixed":  # rows (W x)_i ~ N(0, s/d), independent
        mean = d * s_sym / d
        second = (d * M4 + d * (d - 1) * M2 ** 2) * (s_sym / d) ** 2
    elif quantity == "remap_random":  # E over W given x, then E ||x||^4
        mean = moments_index_counting("remap_fixed", d)[0].subs(s_sym, moments_index_counting("norm_sq", d)[0])
        norm4 = (d * M4 + d * (d - 1) * M2 ** 2) / d ** 2
        second = (d * M4 + d * (d - 1) * M2 ** 2) / d ** 2 * norm4
    else:                          # x^T W x = sum_ij x_i W_ij x_j; E[W_ij W_kl] = delta_ik delta_jl / d
        mean = sp.Integer(0)
        second = xWx_second_moment(d)
    return sp.simplify(mean), sp.factor(sp.simplify(second - mean ** 2))


def xWx_second_moment(d=d_sym) -> sp.Expr:
    """App. A (corrected): E(x^T W x)^2 = (1/d^3)(d M4 M2 + d(d-1) M2^3) = (d + 2)/d^2 (ordered pairs i != j)."""
    M2, M4 = gaussian_moment(2), gaussian_moment(4)
    return sp.factor((d * M4 * M2 + d * (d - 1) * M2 ** 3) / d ** 3)


def paper_xWx_second_moment(d=d_sym) -> sp.Expr:
    """App. A as printed: E(x^T W x)^2 = (1/d^3)(d M4 M2 + d(d-1)/2 M2^3) = (d + 5)/(2 d^2)."""
    M2, M4 = gaussian_moment(2), gaussian_moment(4)
    return sp.factor((d * M4 * M2 + d * (d - 1) / 2 * M2 ** 3) / d ** 3)


# ----------------------------------------------------------------------------- Isserlis at concrete d
def _gaussian_expectation(poly: sp.Poly) -> sp.Rational:
    """E of a polynomial in independent standard Gaussians: each monomial gives prod_i (e_i - 1)!! (0 if an e_i is odd)."""
    total = sp.Integer(0)
    for exps, coeff in poly.terms():
        if any(e % 2 for e in exps):
            continue
        total += coeff * sp.prod([sp.factorial2(e - 1) for e in exps if e])
    return total


def _fixed_x(d: int) -> list[sp.Rational]:
    """The fixed x of `remap_fixed` at a concrete d: x_j = j / d (j = 1..d), a non-trivial rational vector."""
    return [sp.Rational(j, d) for j in range(1, d + 1)]


def moments_isserlis(quantity: str, d: int) -> tuple[sp.Rational, sp.Rational]:
    """App. A at a concrete d: exact (mean, variance) of `quantity` by expanding it in explicit Gaussian variables.

    For `remap_fixed` the fixed x is `_fixed_x(d)` and the result is returned with ||x||^2 = s
    substituted, so compare with `moments_index_counting(...)` at s = sum_j x_j^2.
    """
    choice("quantity", quantity, QUANTITIES)
    d = positive_int("d", d)
    if d > 6:
        raise PopgradError(f"moments_isserlis expands polynomials explicitly; use d <= 6, got {d}")
    g = sp.symbols(f"g0:{d}")
    h = sp.symbols(f"h0:{d}")
    Wt = sp.Matrix(d, d, sp.symbols(f"w0:{d * d}"))
    scale = 1 / sp.sqrt(d)
    if quantity == "norm_sq":
        expr, gens = sum(gi ** 2 for gi in g) / d, g
    elif quantity == "inner":
        expr, gens = sum(gi * hi for gi, hi in zip(g, h)) / d, g + h
    elif quantity == "remap_fixed":
        v = Wt * sp.Matrix(_fixed_x(d)) * scale
        expr, gens = (v.T * v)[0, 0], tuple(Wt)
    elif quantity == "remap_random":
        v = Wt * sp.Matrix(g) * scale * scale
        expr, gens = (v.T * v)[0, 0], tuple(Wt) + g
    else:
        x = sp.Matrix(g) * scale
        expr, gens = (x.T * Wt * x)[0, 0] * scale, tuple(Wt) + g
    poly = sp.Poly(expr, *gens)
    mean = _gaussian_expectation(poly)
    second = _gaussian_expectation(poly * poly)
    return sp.nsimplify(mean), sp.nsimplify(second - mean ** 2)


def fixed_x_norm_sq(d: int) -> sp.Rational:
    """||x||^2 of the fixed x used by `moments_isserlis('remap_fixed', d)`."""
    return sum(v ** 2 for v in _fixed_x(positive_int("d", d)))


# ----------------------------------------------------------------------------- Monte Carlo
def sample_quantity(quantity: str, d: int, n: int, gen: torch.Generator, x_fixed: torch.Tensor | None = None) -> torch.Tensor:
    """App. A: n float64 samples of `quantity` at dimension d (embeddings N(0, I/d), W entries N(0, 1/d))."""
    choice("quantity", quantity, QUANTITIES)
    d, n = positive_int("d", d), positive_int("n", n)
    s = 1.0 / math.sqrt(d)

    def vec():
        return torch.randn(n, d, generator=gen, dtype=torch.float64) * s  # (n, d)

    if quantity == "norm_sq":
        u = vec()
        return (u * u).sum(1)
    if quantity == "inner":
        return (vec() * vec()).sum(1)
    memory_budget("sample_quantity", 2 * n * d * d)
    W = torch.randn(n, d, d, generator=gen, dtype=torch.float64) * s  # (n, d, d)
    if quantity == "remap_fixed":
        if x_fixed is None or x_fixed.shape != (d,):
            raise PopgradError(f"remap_fixed needs x_fixed of shape ({d},)")
        Wx = W @ x_fixed.to(torch.float64)  # (n, d)
        return (Wx * Wx).sum(1)
    x = vec()
    Wx = (W @ x[:, :, None])[:, :, 0]  # (n, d)
    return (Wx * Wx).sum(1) if quantity == "remap_random" else (x * Wx).sum(1)


def monte_carlo_moments(quantity: str, d: int, n: int, seed: int = 0, chunk: int = 4096,
                        x_fixed: torch.Tensor | None = None) -> dict:
    """App. A by Monte Carlo: mean, variance and their standard errors from n samples (float64, seeded).

    stderr(mean) = sqrt(var / n); stderr(var) = sqrt((m4 - var^2) / n) with m4 the 4th central moment.
    """
    n, chunk = positive_int("n", n, minimum=2), positive_int("chunk", chunk)
    gen = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
    parts = [sample_quantity(quantity, d, min(chunk, n - i), gen, x_fixed) for i in range(0, n, chunk)]
    v = torch.cat(parts)  # (n,)
    mean = float(v.mean())
    c = v - mean
    var = float((c ** 2).mean()) * n / (n - 1)
    m4 = float((c ** 4).mean())
    return {"mean": mean, "var": var, "std": math.sqrt(var), "se_mean": math.sqrt(var / n),
            "se_var": math.sqrt(max(m4 - var ** 2, 0.0) / n), "n": n}
