"""Checks: noisy in-context recall (model E, SPEC §7; Chen, Bruna, Bietti 2024, talk section 3)."""

import os

import pytest

from popgrad.registry import assert_claim

SLOW = pytest.mark.skipif(os.environ.get("POPGRAD_SLOW") != "1", reason="slow (minutes on CPU): run with POPGRAD_SLOW=1")


def test_noisy_ff_gradient_vs_autograd():
    # Talk §3: the feed-forward gradient at initialization, W_U^T G_F W_E^T (engine vs autograd of the exact loss).
    assert_claim("noisy.ff_gradient_vs_autograd")


def test_noisy_wo2_gradient_vs_autograd():
    # Talk §3 / App. B.3.1: the W_O^2 gradient at initialization with uniform attention (engine vs autograd).
    assert_claim("noisy.wo2_gradient_vs_autograd")


def test_noisy_ff_noise_entry_closed_form():
    # Talk §3 Result 1: G_F[noise, q] = eps - 1/(N+1) exactly, for every T and bigram table.
    assert_claim("noisy.ff_noise_entry_closed_form")


def test_noisy_sampler_vs_engine():
    # SPEC §7: one model E; the sampler's gradient statistics agree with the exact engine within 4 se.
    assert_claim("noisy.sampler_vs_engine")


def test_noisy_signal_rates():
    # Talk §3 Remark 1: the feed-forward q -> noise signal ~ eps; attention's y -> y signal smaller by >= N.
    assert_claim("noisy.signal_rates")


@pytest.mark.slow
@SLOW
def test_noisy_sample_complexity():
    # Talk (Chen, Bruna, Bietti 2024, informal theorem): W_F learns q -> noise from O(1) samples, attention O(N). Slow.
    assert_claim("noisy.sample_complexity")


def test_noisy_sample_complexity_ci():
    # The same at CI size (N in 8..32, T = 128, eps = 0.5, 3 seeds).
    assert_claim("noisy.sample_complexity_ci")


def test_noisy_ff_learns_noise_first():
    # Talk: fast-slow dynamics, the feed-forward layer learns q -> noise before attention learns the recall.
    assert_claim("noisy.ff_learns_noise_first")


@pytest.mark.slow
@SLOW
def test_noisy_truncation():
    # Talk §3: noise ~eps with the feed-forward layer, gone without it; attention on ybar, not on noise. Slow.
    assert_claim("noisy.truncation")


def test_noisy_r1_ties():
    # R_1 counts a label only when its own output is the unique argmax (SPEC §4: ties and unseen labels are misses):
    # r1_noisy vs a plain loop on hand-built pair statistics with exact ties.
    assert_claim("noisy.r1_ties")


def test_noisy_values_exact():
    # Every number of `popgrad noisy --part signals / rates` equals its plain-loop value: the exact signals (W_O^2
    # diagonal minus the mean over the |outputs| - 1 other outputs, margins, E|I|) vs enumeration; q -> noise with ties
    # as misses, R_1 with a Gram matrix, pair statistics, n grid, a sweep cell's first n, the rate table.
    assert_claim("noisy.values_exact")


def test_noisy_truncation_exact():
    # Every truncation metric (means, se with ddof 1, head recall, W_F readout and margin) and the seed aggregation
    # equal a numpy forward of SPEC §5's model and plain loops over the in-context trigger positions.
    assert_claim("noisy.truncation_exact")


def test_noisy_command_values():
    # `popgrad noisy --json` prints the exact signals and their ratio, the truncation metrics' mean / se (ddof 1) /
    # per-seed values over seeds, and accepts exactly the arguments model E allows.
    assert_claim("noisy.command_values")
