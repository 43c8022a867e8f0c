"""Documented defaults and presets are the ones the code runs (claims in popgrad/claims/defaults.py)."""

from popgrad.registry import assert_claim


def test_defaults_documented():
    # Sec. 5 / App. E: every preset's d, T, K, eta, momentum 0.9, weight decay 1e-4, batch 512, loss, W_F, triggers
    # and freezing, the CPU size, and every option default (docs/defaults.md, help texts) are what the code uses.
    assert_claim("defaults.documented")
