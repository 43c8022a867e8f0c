"""Checks of the capacity estimator (claims in popgrad/claims/capacity.py)."""

import os

import pytest

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


def test_capacity_sampled_bias_small():
    # d = 256, 1000 sampled queries per N, 5 draws: the sampled crossing lies within 4 % of the exhaustive crossing
    # (recall counted over every stored input by a plain float64 loop at C and C_s, interpolated), and
    # every reported C (stepped down from C_s until exhaustively verified) has loop recall >= 0.99.
    assert_claim("capacity.sampled_bias_small")


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("POPGRAD_SLOW") != "1", reason="slow (minutes on CPU): run with POPGRAD_SLOW=1")
def test_capacity_sampled_bias():
    # As above at d = 512 (seeds 0-2) and 1024 (seed 0) with the command's defaults (5000 sampled queries): bias within 2 %,
    # every reported C with exhaustive recall >= 0.99 (slow: ~3 CPU-minutes, 12 min wall at load 8).
    assert_claim("capacity.sampled_bias")


def test_capacity_values_exact():
    # Every number `popgrad capacity` prints beside C (se of ln C, law fits with chi^2/AIC/c/exponent and 95 %
    # interval, chosen law, local slopes ± se, mean ± se and averaged interval over seeds, exhaustive and sampled
    # recall columns, plan sizes, documented memory-seed default, the threshold's edge, bisection) = an
    # independent computation (curve_fit, statistics, a float64 per-input loop, the docstrings' formulas).
    assert_claim("capacity.values_exact")
