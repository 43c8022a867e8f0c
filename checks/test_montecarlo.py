"""Checks of the Monte-Carlo path (claims in popgrad/claims/montecarlo.py)."""

from popgrad.registry import assert_claim


def test_montecarlo_mu_rate_model_d_vs_enumeration():
    # App. B.3.1 / App. E: the Monte-Carlo mu_k - mu on model D converges to the exact
    # (enumerated) value at rate n^{-1/2}, each estimate within 4 standard errors.
    assert_claim("montecarlo.mu_rate")


def test_montecarlo_recall_trend_figure9():
    # App. E, Figure 9: one-step recall R_1 rises with the dimension d and with the number of batches.
    assert_claim("montecarlo.recall_trend")
