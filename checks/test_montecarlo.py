"""Checks of the Monte-Carlo path (claims in popgrad/claims/montecarlo.py)."""

from popgrad.registry import assert_claim


def test_montecarlo_mu_rate_model_d_vs_enumeration():
    # App. B.3.1 / App. E: the Monte-Carlo mu_k - mu on model D converges to the exact
    # (enumerated) value at rate n^{-1/2}, each estimate within 4 standard errors.
    assert_claim("montecarlo.mu_rate")


def test_montecarlo_recall_trend_figure9():
    # App. E, Figure 9: one-step recall R_1 rises with the dimension d and with the number of batches.
    assert_claim("montecarlo.recall_trend")


def test_appendix_e_statistics_match_per_sequence_recomputation():
    # App. E: the pairs x_t = (1/t) sum_{s<=t} W_V^2 w_E(z_s) at in-context positions, y = z_{t+1}: the pipeline's
    # class sums and counts equal a per-sequence recomputation from the raw tokens.
    assert_claim("appendix_e.statistics")


def test_montecarlo_r1_matches_recomputation_by_hand():
    # App. E: R_1 from the token statistics equals R_1 recomputed in d-space from the raw sequences.
    assert_claim("montecarlo.r1_direct")


def test_training_model_c_pairs():
    # App. E: the in-context pairs of model C (prefix counts at a trigger seen earlier, labelled z_{t+1}, the last
    # labelled position included) and their class sums equal a per-token loop.
    assert_claim("training.model_c_pairs")
