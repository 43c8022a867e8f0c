"""Checks of Appendix A (associative memories with random vectors)."""

from popgrad.registry import assert_claim


def test_appendix_a_moments_symbolic():
    # App. A: index-counting moments (symbolic d) equal the Isserlis expansion at d = 1..5 and the paper's facts.
    assert_claim("appendix_a.moments_symbolic")


def test_appendix_a_moments_mc():
    # App. A: exact means and variances agree with float64 Monte Carlo within 4 standard errors.
    assert_claim("appendix_a.moments_mc")


def test_appendix_a_xWx_variance():
    # App. A: E(x^T W x)^2 = (d+2)/d^2, not the printed (d+5)/(2 d^2) (erratum; sympy, Isserlis, Monte Carlo).
    assert_claim("appendix_a.xWx_variance")


def test_appendix_a_concentration():
    # App. A: the std of u^Tu, u_i^Tu_j, ||Wx||^2, x^TWx decays like d^-1/2 (fitted slope).
    assert_claim("appendix_a.concentration")
