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


FACTORIAL = [(N, T, d) for N in (8, 32) for T in (8, 16) for d in (64, 256)]


def test_interactions_recovered_exactly_on_a_factorial():
    """Test that on a 2^3 factorial, data with known pairwise interactions of the centred logs give back the
    centre exponents and the interactions to round-off; without interactions they fit 0."""
    centre = np.log(FACTORIAL).mean(axis=0)

    def with_interactions(N, T, d, g=(0.3, -0.2, 0.1)):
        u = np.log([N, T, d]) - centre
        return law(N, T, d) * np.exp(g[0] * u[0] * u[1] + g[1] * u[0] * u[2] + g[2] * u[1] * u[2])

    fit = power_law_exponents({s: with_interactions(*s) for s in FACTORIAL}, interactions=True)
    np.testing.assert_allclose(fit, [3.0, 0.7, 0.4, -0.2, 0.3, -0.2, 0.1], atol=1e-10)
    plain = power_law_exponents({s: law(*s) for s in FACTORIAL}, interactions=True)
    np.testing.assert_allclose(plain, [3.0, 0.7, 0.4, -0.2, 0, 0, 0], atol=1e-10)


def test_interaction_is_the_change_of_an_exponent_across_the_other_factor():
    """Test the meaning of g_12 by a direct computation: on a 2^2 design, g_12 equals the difference of the
    N-exponents measured at the two T levels, divided by the distance in log T."""
    y = {(8, 8): 5.0, (32, 8): 11.0, (8, 16): 6.0, (32, 16): 21.0}
    slope = {T: np.log(y[(32, T)] / y[(8, T)]) / np.log(4) for T in (8, 16)}
    fit = power_law_exponents(y, interactions=True)
    np.testing.assert_allclose(fit[3], (slope[16] - slope[8]) / np.log(2), atol=1e-12)
    np.testing.assert_allclose(fit[1], (slope[8] + slope[16]) / 2, atol=1e-12)


def test_star_design_cannot_determine_interactions():
    """Test that the star design (each factor varied alone) is refused for the interaction model."""
    with pytest.raises(ValueError, match="do not determine"):
        power_law_exponents({s: law(*s) for s in STAR}, interactions=True)


def test_bootstrap_with_interactions_covers_zero_when_there_are_none():
    """Test that noisy data without interactions give interaction intervals containing 0 and main-effect
    intervals containing the truth."""
    rng = np.random.default_rng(3)
    samples = {s: law(*s) * np.exp(rng.normal(0, 0.1, size=10)) for s in FACTORIAL}
    point, lo, hi, dropped = power_law_bootstrap(samples, resamples=500, interactions=True)
    assert dropped == 0 and point.shape == (7,)
    assert np.all(lo[4:] <= 0) and np.all(0 <= hi[4:])
    assert np.all(lo[1:4] <= [0.7, 0.4, -0.2]) and np.all([0.7, 0.4, -0.2] <= hi[1:4])
