"""Checks of Figure 2 and Sec. 3: attention statistics of the induction head, one attention layer against two."""

import os

import pytest

from popgrad.registry import assert_claim

SLOW = pytest.mark.skipif(os.environ.get("POPGRAD_SLOW") != "1", reason="slow (minutes on CPU): run with POPGRAD_SLOW=1")


def test_figure2_stats_vs_loop():
    # Figure 2: the attention statistics (layer 1 -> t-1; layer 2 -> after an earlier occurrence) equal a plain loop.
    assert_claim("figure2.stats_vs_loop")


def test_figure2_hand_built_pattern():
    # Figure 2: the eq. (7) head attends after earlier occurrences of trigger queries only (fixed Q), of all (Q = [N]).
    assert_claim("figure2.hand_built_pattern")


@pytest.mark.slow
@SLOW
def test_figure2_trained_pattern():
    # Figure 2 on trained models (3 seeds, fixed vs random triggers; slow: minutes on CPU).
    assert_claim("figure2.trained_pattern")


def test_sec3_one_layer_exact():
    # Sec. 3: the one-layer model (layer 2 removed, W_O^1 trained) computes its definition (float64).
    assert_claim("sec3.one_layer_exact")


@pytest.mark.slow
@SLOW
def test_sec3_one_vs_two_layers():
    # Sec. 3: two attention layers predict in-context tokens far better than one (3 seeds; slow: minutes on CPU).
    assert_claim("sec3.one_vs_two_layers")


def test_sec3_one_vs_two_layers_ci():
    # Sec. 3 at a CI size (fixed triggers, T = 32, batch 32, 200 steps): two attention layers beat one by >= 3 se.
    assert_claim("sec3.one_vs_two_layers_ci")


def test_figure2_values_exact():
    # attention_stats (argmax ties to the first key, cutoffs, fractions and se), induction_head (eq. (7), rescaling,
    # accuracies on models C and D) and token_stats (App. E pairs, class means) equal their definitions as loops.
    assert_claim("figure2.values_exact")
