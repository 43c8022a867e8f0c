"""Every standard error and interval popgrad prints (claims in popgrad/claims/uncertainty.py)."""

from popgrad.registry import assert_claim


def test_uncertainty_binomial_se():
    # The se sqrt(p(1-p)/n) beside every accuracy equals scipy's binomial std / n, the Monte-Carlo spread of
    # p_hat, and p_hat ± 1.96 se covers p at 95 % (probes, head ablation, dynamics, `popgrad train` one seed).
    assert_claim("uncertainty.binomial_se")


def test_uncertainty_mean_se():
    # Every mean ± se over seeds is numpy's mean and scipy.stats.sem (ddof = 1); E[se^2] = Var(mean).
    assert_claim("uncertainty.mean_se")


def test_uncertainty_group_se():
    # The theorem3 table's mc_stderr and the recall margins' se over 8 groups are scipy.stats.sem of the groups.
    assert_claim("uncertainty.group_se")


def test_uncertainty_wilson_interval():
    # The capacity search's interval is scipy's Wilson interval at the Bonferroni level; 95 % coverage.
    assert_claim("uncertainty.wilson_interval")


def test_uncertainty_median_bootstrap():
    # The dynamics tables' median steps carry the exact bootstrap 2.5/97.5 % points (not 5/95 %); coverage ~95 %.
    assert_claim("uncertainty.median_bootstrap")


def test_uncertainty_slope_se():
    # Slopes and exponents carry the least-squares se (linregress, curve_fit), match the Monte-Carlo spread of
    # slopes, and the 95 % exponent interval covers at >= 95 %.
    assert_claim("uncertainty.slope_se")


def test_uncertainty_moments_se():
    # App. A: the Monte-Carlo se of a mean and of a variance (behind every 4-stderr tolerance) equal the spread of
    # those estimates over 400 independent runs; se_mean = scipy.stats.sem.
    assert_claim("uncertainty.moments_se")


def test_uncertainty_mc_comparator():
    # MC_Z over the largest number of entries a Monte-Carlo claim compares: false alarms <= 1e-2 and a 5-se bias in
    # one entry flagged with probability >= 0.8 (normal law vs simulation), so a too-strict or too-lax MC_Z fails.
    assert_claim("uncertainty.mc_comparator")
