"""Hypothesis properties of Appendix A: near-orthonormality and remappings of Gaussian embeddings.

Every bound has an explicit failure probability (DELTA, union-bounded over all vectors and pairs
of one example) derived from the exact law (popgrad.theory.concentration), so a failure means a bug, not
bad luck: over the whole suite fewer than 1e4 examples run, so P(any flake) < 1e-5.
"""

import math

import torch
from hypothesis import given, strategies as st

from popgrad.embeddings import gaussian_vectors
from popgrad.theory.concentration import (gram_bounds, inner_product_bound, laurent_massart_inner_bound,
                                  laurent_massart_norm_bound, norm_deviation_bound, remap_norm_bound,
                                  remap_orthogonality_bound, remap_variance, remap_variance_paper,
                                  wick_remap_second_moment)

DELTA = 1e-9
dims = st.integers(min_value=2, max_value=2048)
seeds = st.integers(min_value=0, max_value=2 ** 31 - 1)


@given(d=dims, n=st.integers(min_value=2, max_value=48), seed=seeds)
def test_appA_gram_matrix_within_high_probability_bounds(d, n, seed):
    """Test that |u_i^T u_i - 1| and |u_i^T u_j| of n Gaussian vectors lie within the union-bounded Chernoff bounds."""
    U = gaussian_vectors(n, d, seed=seed)             # (d, n)
    G = U.T @ U                                       # (n, n)
    diag_bound, off_bound = gram_bounds(n, d, DELTA)
    off = G - torch.diag(torch.diagonal(G))
    assert float((torch.diagonal(G) - 1).abs().max()) <= diag_bound
    assert float(off.abs().max()) <= off_bound


@given(d=st.integers(min_value=4, max_value=10 ** 6), delta=st.floats(min_value=1e-15, max_value=0.1))
def test_appA_bounds_scale_as_inverse_sqrt_d(d, delta):
    """Test that sqrt(d) x bound decreases in d to the Gaussian limit sqrt(2 ln(2/delta)) (App. A's O(1/sqrt(d)))."""
    L = math.log(2 / delta)
    ratio = inner_product_bound(d, delta) / math.sqrt(2 * L / d)   # 1 = Chernoff bound of the CLT limit
    assert 1 - 1e-9 <= ratio <= 1 + 0.6 * math.sqrt(L / d)         # sub-exponential correction only
    for bound in (inner_product_bound, norm_deviation_bound):
        assert bound(4 * d, delta) * math.sqrt(4 * d) <= bound(d, delta) * math.sqrt(d) * (1 + 1e-9)


@given(d=st.integers(min_value=1, max_value=10 ** 5), delta=st.floats(min_value=1e-15, max_value=0.5))
def test_appA_chernoff_bounds_never_exceed_laurent_massart(d, delta):
    """Test that the exact-MGF Chernoff bounds are at most the Laurent-Massart closed forms."""
    assert norm_deviation_bound(d, delta) <= laurent_massart_norm_bound(d, delta) * (1 + 1e-9)
    assert inner_product_bound(d, delta) <= laurent_massart_inner_bound(d, delta) * (1 + 1e-9)


@given(d=st.integers(min_value=2, max_value=512), n=st.integers(min_value=1, max_value=16), seed=seeds)
def test_appA_remapping_norm_and_near_orthogonality_within_bounds(d, n, seed):
    """Test that ||W x||^2 ~ 1 and x^T W x ~ 0 within their bounds (failure DELTA over the n vectors)."""
    x = gaussian_vectors(n, d, seed=seed)                          # (d, n)
    W = gaussian_vectors(d, d, seed=seed + 1).T * 1.0              # (d, d), entries N(0, 1/d)
    Wx = W @ x                                                     # (d, n)
    assert float(((Wx * Wx).sum(0) - 1).abs().max()) <= remap_norm_bound(d, DELTA / n)
    assert float((x * Wx).sum(0).abs().max()) <= remap_orthogonality_bound(d, DELTA / n)


def test_appA_remap_variance_exact_and_paper_expression_rejected():
    """Test that Var(x^T W x) = (d+2)/d^2 by a brute-force Wick sum, and that the paper's (d+5)/(2d^2) is not it."""
    for d in range(1, 7):
        assert wick_remap_second_moment(d) == remap_variance(d)
        if d >= 2:
            assert remap_variance_paper(d) != remap_variance(d)


def test_appA_remap_variance_monte_carlo():
    """Test that the sample second moment of x^T W x matches (d+2)/d^2 within 6 standard errors and rejects the paper's value."""
    d, m = 16, 120_000
    gen = torch.Generator().manual_seed(7)
    vals = []
    for _ in range(4):
        x = torch.randn(m // 4, d, generator=gen, dtype=torch.float64) / math.sqrt(d)      # (M, d)
        W = torch.randn(m // 4, d, d, generator=gen, dtype=torch.float64) / math.sqrt(d)   # (M, d, d)
        vals.append(torch.einsum("mi,mij,mj->m", x, W, x))
    s = torch.cat(vals) ** 2
    # exact fourth moment: E(x^T W x)^4 = 3 E||x||^8 / d^2, E||x||^8 = d(d+2)(d+4)(d+6)/d^4
    m4 = 3 * d * (d + 2) * (d + 4) * (d + 6) / d ** 6
    var = float(remap_variance(d))
    stderr = math.sqrt((m4 - var ** 2) / m)
    assert abs(float(s.mean()) - var) <= 6 * stderr
    assert abs(float(s.mean()) - float(remap_variance_paper(d))) > 6 * stderr
