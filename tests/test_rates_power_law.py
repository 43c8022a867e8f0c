"""Test the power-law fits behind the dynamics law (popgrad.rates)."""

import numpy as np
import pytest

from popgrad.rates import power_law_bootstrap, power_law_exponents

STAR = [(32, 16, 256)] + [(N, 16, 256) for N in (8, 16, 64)] + [(32, T, 256) for T in (8, 32)] + \
       [(32, 16, d) for d in (64, 128, 512)]


def law(N, T, d, a=3.0, b=0.7, c=0.4, e=-0.2):
    return np.exp(a) * N ** b * T ** c * d ** e


def test_exponents_recovered_exactly_on_a_star_design():
    """Test that exact power-law data on the star design gives its exponents back to round-off."""
    fit = power_law_exponents({s: law(*s) for s in STAR})
    np.testing.assert_allclose(fit, [3.0, 0.7, 0.4, -0.2], atol=1e-10)


def test_exponents_equal_a_hand_solved_normal_equation():
    """Test the fit against the normal equations written out with numpy on noisy data."""
    rng = np.random.default_rng(1)
    pts = {s: law(*s) * np.exp(rng.normal(0, 0.1)) for s in STAR}
    X = np.array([[1, np.log(N), np.log(T), np.log(d)] for N, T, d in sorted(pts)])
    y = np.log([pts[s] for s in sorted(pts)])
    np.testing.assert_allclose(power_law_exponents(pts), np.linalg.solve(X.T @ X, X.T @ y), atol=1e-10)


def test_bootstrap_interval_covers_the_truth_and_counts_infinite_medians():
    """Test that the bootstrap interval covers the generating exponents, and that a point whose values are
    mostly inf makes resamples dropped (not fitted)."""
    rng = np.random.default_rng(2)
    samples = {s: law(*s) * np.exp(rng.normal(0, 0.1, size=10)) for s in STAR}
    point, lo, hi, dropped = power_law_bootstrap(samples, resamples=500)
    assert dropped == 0 and np.all(lo <= point) and np.all(point <= hi)
    assert np.all(lo[1:] <= [0.7, 0.4, -0.2]) and np.all([0.7, 0.4, -0.2] <= hi[1:])
    samples[STAR[1]] = np.array([np.inf] * 4 + list(samples[STAR[1]][:6]))
    _, _, _, dropped = power_law_bootstrap(samples, resamples=500)
    assert 0 < dropped < 500


def test_degenerate_design_is_refused():
    """Test that points varying only N cannot determine exponents of T and d."""
    with pytest.raises(ValueError, match="do not determine"):
        power_law_exponents({(N, 16, 256): float(N) for N in (8, 16, 32, 64)})
