"""Checks of eq. (8) (the feed-forward memory of the global bigrams) and eq. (10) (its KL probe)."""

import os

import pytest

from popgrad.registry import assert_claim

SLOW = pytest.mark.skipif(os.environ.get("POPGRAD_SLOW") != "1", reason="slow (minutes on CPU): run with POPGRAD_SLOW=1")


def test_eq8_token_space():
    # Eq. (8): W_F = W_U^T l^T W_E^T, and W_U W_F w_E(k) is row k of G_E l G_U (term-by-term sum, float64).
    assert_claim("eq8.token_space")


def test_eq8_orthonormal_limit():
    # Eq. (8) + (10): at orthonormal embeddings the KL is exactly mean_k log(1 + z_k e^floor) (popgrad's KL probe).
    assert_claim("eq8.orthonormal_limit")


def test_eq10_direction():
    # Eq. (10) as printed (KL(model || pi_b)) is infinite on the shipped counts; the reversed direction equals a plain loop.
    assert_claim("eq10.direction")


def test_eq8_kl_vs_d():
    # Eq. (8): its KL (10) at random embeddings falls like 1/d to the exact orthonormal limit; beats uniform from d ~ 1024.
    assert_claim("eq8.kl_vs_d")


def test_eq8_assembled_head_ci():
    # Eq. (7) + (8) without trigger rows at d = 256, 512: (8) drowns the head's in-context predictions; gap falls with d.
    assert_claim("eq8.assembled_head_ci")


@pytest.mark.slow
@SLOW
def test_eq8_assembled_head():
    # As above at d = 256 .. 2048, T = 256 (slow: minutes on CPU).
    assert_claim("eq8.assembled_head")


def test_eq8_values_exact():
    # Every number numerics/theory.feedforward return (floored log, uniform / limit KL, the second-order constant,
    # Wishart draws, KL per draw, the CLI's table and fit, the W_F variants) equals its plain loop; floor default = CLI's.
    assert_claim("eq8.values_exact")


def test_eq8_assembled_head_exact():
    # assembled_head's hits, masks (t <= T-2, non-trigger positions) and sums, and summarize's values and se, equal a
    # per-position loop over a separately written forward.
    assert_claim("eq8.assembled_head_exact")
