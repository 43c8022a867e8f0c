"""Checks of Example B.1 (Sec. 6; App. B.1, eq. (11)-(12))."""

from popgrad.registry import assert_claim


def test_example_b1_eq11_equals_eq12():
    # App. B.1: eq. (11) equals eq. (12) to float64 precision for uniform (y, t).
    assert_claim("example_b1.eq11_equals_eq12")


def test_example_b1_eq11_one_step():
    # App. B.1, eq. (11): one population gradient step from W_0 = 0 (vs autograd), uniform y.
    assert_claim("example_b1.eq11_one_step")


def test_example_b1_readout():
    # App. B.1: w_U(k)^T W_1 (w_E(y)+p_t) ~ (eta/N) 1{k=y} + O(1/N^2): limit exact, finite-d noise ~ d^-1/2.
    assert_claim("example_b1.readout")
