"""Checks of the capacity estimator (claims in popgrad/claims/capacity.py)."""

from popgrad.registry import assert_claim


def test_capacity_chunked_recall_matches_per_input_loop():
    # Eq. (3) + (9): recall computed in query chunks and output blocks with a running max (exhaustive and
    # on sampled queries, ragged last chunk and block) equals a per-input argmax loop, hit for hit.
    assert_claim("capacity.chunked_vs_loop")


def test_capacity_search_returns_a_crossing():
    # The capacity search at resolution 0 returns C with recall(C) >= 0.99 > recall(C + 1), recall
    # recomputed input by input; with exhaustive recall its interval is [C, C].
    assert_claim("capacity.search_crossing")


def test_capacity_interval_coverage_of_sampled_recall():
    # The sampled recall's Wilson interval covers the exhaustive recall of the same memory (d = 128, 256)
    # at a measured rate >= 0.90.
    assert_claim("capacity.interval_coverage")


def test_capacity_law_exponent_near_talk():
    # Talk, "Capacity: Intuition": f injective stores N ~ d^2; the fitted exponent over d = 64..256 is
    # within 0.6 of 2 and the independent OLS slope lies inside its 95% interval.
    assert_claim("capacity.law_exponent")
