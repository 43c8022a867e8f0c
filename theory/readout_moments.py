"""Readout moments of a random outer-product memory and the capacity they predict.

Talk (`paper/talk_associative_memories.md`, "Capacity: Intuition"): with e_z, u_y i.i.d. N(0, I/d)
and W = sum_z u_{f(z)} e_z^T, the readout

    gamma_{z,y} = u_y^T W e_z = sum_{z'} (u_y . u_{f(z')}) (e_{z'} . e_z)

has mean 1{y = f(z)} and variance of order n_y / d + (N - n_y) / d^2, where n_y = |{z': f(z') = y}|.
The exact moments follow from Gaussian fourth moments (Isserlis): `isserlis_moment` computes the
expectation of a product of inner products of labelled i.i.d. N(0, I/d) vectors as a rational
function of d (sum over the perfect matchings of the factors; each matching contributes
d^(cycles) / d^(factors)); `readout_moments` assembles the mean, variance and covariance of the
readout from it, by classes of the summed tokens z', z''. The u's and the e's are independent sets.

Closed forms (n = n_y, d, N; `readout_moments` derives them, the docstring only states them):

    y = f(z):  E = 1,  Var = (1 + 2/d)^2 - 1 + (n - 1)(1 + 2/d)/d + (N - n)/d^2
    y != f(z): E = 0,  Var = (n + 1)(1 + 2/d)/d + (N - n - 1)/d^2
    Cov(gamma_{z,y}, gamma_{z,y'}) = 0 for y != y'   (uncorrelated, not independent)

`predicted_capacity` turns them into a capacity (largest N with recall >= threshold): the readouts
of one input are taken as independent Gaussians with these moments (exact: uncorrelated; approximate:
Gaussian and independent), and recall(z) = E_t[prod_{y != f(z)} Phi((t - 0) / sd_y)] with
t ~ N(1, Var_hit); the union bound replaces the product by 1 - sum of the tails.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np
import sympy as sp
from scipy import special

from popgrad.errors import PopgradError, choice, positive_int

d_sym, N_sym, n_sym = sp.symbols("d N n", positive=True)


# ----------------------------------------------------------------------------- Isserlis
def _matchings(items: tuple) -> list[list[tuple]]:
    """Every perfect matching of an even-length tuple of positions."""
    if not items:
        return [[]]
    first, rest = items[0], items[1:]
    out = []
    for k, other in enumerate(rest):
        for m in _matchings(rest[:k] + rest[k + 1:]):
            out.append([(first, other)] + m)
    return out


def isserlis_moment(products: tuple, d=d_sym) -> sp.Expr:
    """Isserlis / Wick: E[prod_j (x_{a_j} . x_{b_j})] for labelled i.i.d. N(0, I/d) vectors x_a in R^d.

    `products` is a tuple of label pairs (a_j, b_j). Each inner product is a sum over one coordinate
    index i_j; Wick's theorem pairs the 2k coordinate factors: a pair is non-zero only between equal
    labels and forces equal coordinates, with E[x_{a,i} x_{a,i}] = 1/d. Summing the coordinates of a
    matching gives d^(connected components of the index graph), so the moment is
    sum_matchings d^components / d^k."""
    k = len(products)
    labels = [lab for pair in products for lab in pair]                 # factor 2j, 2j+1 in product j
    total = sp.Integer(0)
    for m in _matchings(tuple(range(2 * k))):
        if any(labels[a] != labels[b] for a, b in m):
            continue
        parent = list(range(k))                                         # union-find over the k indices

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, b in m:
            parent[find(a // 2)] = find(b // 2)
        comps = len({find(i) for i in range(k)})
        total += d ** comps
    return sp.simplify(total / d ** k)


# ----------------------------------------------------------------------------- the readout moments
# Token classes of a summed index z' relative to the query z and the output y (n = n_y):
#   "self": z' = z;   "same": z' != z, f(z') = y;   "other": z' != z, f(z') != y.
def _class_sizes(hit: bool) -> dict:
    n_same = n_sym - 1 if hit else n_sym                     # z itself is in f^-1(y) iff y = f(z)
    return {"self": sp.Integer(1), "same": n_same, "other": N_sym - 1 - n_same}


def _u_label(cls: str, hit: bool, tag: str) -> str:
    """The output label u_{f(z')} for a class: 'y' when f(z') = y, else a label distinct from y."""
    if cls == "self":
        return "y" if hit else "fz"
    return "y" if cls == "same" else f"w{tag}"


@lru_cache(maxsize=None)
def readout_moments() -> dict:
    """Talk, "Capacity: Intuition": exact E[gamma_{z,y}], Var[gamma_{z,y}] (y = f(z) and y != f(z)) and
    Cov(gamma_{z,y}, gamma_{z,y'}), as sympy expressions in d, N and n = |f^-1(y)|.

    E[gamma] = sum_{z'} E[u_y . u_{f(z')}] E[e_{z'} . e_z]; E[gamma gamma'] = sum_{z', z''} of the product of
    the u-moment and the e-moment (the two sets are independent). Pairs z' != z'' with a non-zero
    e-moment would need a class count beyond (N, n); the e-moment of every such pair is computed and
    must vanish (asserted)."""
    out = {}
    for hit in (True, False):
        sizes = _class_sizes(hit)
        mean = sum(sizes[c] * isserlis_moment(((("y", _u_label(c, hit, "1")),)))
                   * isserlis_moment(((f"e_{c}", "e_self"),)) for c in sizes)
        second = sp.Integer(0)
        for c in sizes:                                       # diagonal pairs z' = z''
            ul = _u_label(c, hit, "1")
            eu = isserlis_moment((("y", ul), ("y", ul)))
            ee = isserlis_moment(((f"e_{c}", "e_self"), (f"e_{c}", "e_self")))
            second += sizes[c] * eu * ee
        # off-diagonal pairs z' != z'': the e-moment vanishes for every class combination
        for c1, c2 in itertools.product(sizes, repeat=2):
            if c1 == c2 == "self":
                continue
            l1, l2 = f"e_{c1}1" if c1 != "self" else "e_self", f"e_{c2}2" if c2 != "self" else "e_self"
            if isserlis_moment(((l1, "e_self"), (l2, "e_self"))) != 0:
                raise AssertionError(f"off-diagonal e-moment ({c1}, {c2}) does not vanish")
        key = "hit" if hit else "miss"
        out[f"mean_{key}"] = sp.simplify(mean)
        out[f"var_{key}"] = sp.factor(sp.simplify(second - mean ** 2))
    # covariance of two outputs y != y' at the same input: u-moment E[(u_y . u_w)(u_y' . u_w)] per class
    cov = sp.Integer(0)
    for w in ("y", "yp", "w"):
        cov += isserlis_moment((("y", w), ("yp", w)))
    out["cov_outputs"] = sp.simplify(cov)          # every class multiplies a zero u-moment
    return out


def moment_values(d: int, N: int, n: int, hit: bool) -> tuple[float, float]:
    """(mean, variance) of gamma_{z,y} at numbers d, N, n = |f^-1(y)| (hit: y = f(z))."""
    m = readout_moments()
    key = "hit" if hit else "miss"
    subs = {d_sym: d, N_sym: N, n_sym: n}
    return float(m[f"mean_{key}"].subs(subs)), float(m[f"var_{key}"].subs(subs))


# ----------------------------------------------------------------------------- predicted capacity
MAP_KINDS = ("injective", "mod2")
APPROXIMATIONS = ("independent", "union")


def predicted_recall(kind: str, d: int, N: int, approximation: str = "independent", nodes: int = 80) -> float:
    """Recall of an input predicted from the exact moments with Gaussian readouts.

    injective (M = N outputs, n_y = 1): t ~ N(1, V_hit) against N - 1 competitors N(0, V_miss), taken
    independent (they are uncorrelated): E_t[Phi(t / sd)^(N-1)] by Gauss-Hermite quadrature;
    'union': 1 - (N - 1) P(N(0, V_hit + V_miss) > 1). mod2 (two outputs, n = N/2 each): the one
    competitor, P(N(1, V_hit + V_miss) > 0) (both approximations agree)."""
    choice("map", kind, MAP_KINDS)
    choice("approximation", approximation, APPROXIMATIONS)
    positive_int("d", d)
    positive_int("N", N)
    if kind == "mod2":
        n_hit, n_miss = math.ceil(N / 2), N // 2
        _, v1 = moment_values(d, N, n_hit, True)
        _, v0 = moment_values(d, N, n_miss, False)
        return float(special.ndtr(1.0 / math.sqrt(v1 + v0)))
    _, v1 = moment_values(d, N, 1, True)
    _, v0 = moment_values(d, N, 1, False)
    if approximation == "union":
        return max(0.0, 1.0 - (N - 1) * float(special.ndtr(-1.0 / math.sqrt(v1 + v0))))
    x, w = np.polynomial.hermite_e.hermegauss(nodes)              # probabilists' Hermite: weight e^{-x^2/2}
    t = 1.0 + math.sqrt(v1) * x
    logphi = special.log_ndtr(t / math.sqrt(v0))
    return float(np.sum(w * np.exp((N - 1) * logphi)) / math.sqrt(2 * math.pi))


def predicted_capacity(kind: str, d: int, threshold: float = 0.99, approximation: str = "independent") -> int:
    """Largest N with predicted_recall >= threshold (bisection; recall decreases in N)."""
    if not 0 < threshold < 1:
        raise PopgradError(f"threshold must be in (0, 1), got {threshold}")
    lo, hi = 1, 2
    while predicted_recall(kind, d, hi, approximation) >= threshold:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if predicted_recall(kind, d, mid, approximation) >= threshold else (lo, mid)
    return lo
