"""Checks: noisy in-context recall (model E, SPEC §7; Chen, Bruna, Bietti 2024, talk section 3)."""

from popgrad.registry import assert_claim


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
