"""Checks: the exact model-D engine against enumeration and Monte-Carlo (App. B.3)."""

from popgrad.registry import assert_claim


def test_engine_token_law_exact_rationals_match_enumeration():
    # Model D (App. B.3): P(z_t = k | y = k), P(z_t = i | y = k) as exact rationals equal enumeration sums.
    assert_claim("engine.token_law")


def test_engine_eq15_eq17_match_monte_carlo():
    # Eq. (15), (17): the exact engine agrees with Monte-Carlo averages over model D within 4 standard errors.
    assert_claim("engine.monte_carlo")


def test_engine_model_d_equals_conditioned_bigram_chain():
    # SPEC §2 D / App. B.3: model D is the uniform bigram chain with q -> o conditioned on q twice, second at T.
    assert_claim("engine.model_d_chain")
