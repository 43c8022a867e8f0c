"""Eq. (32) (App. C.3): the Jacobian of the softmax at zero."""

from popgrad.registry import assert_claim


def test_eq32_softmax_jacobian():
    # Eq. (32): d sigma(u)_t / d u_s at u = 0 is (1/T) 1{t=s} - 1/T^2 (autograd T = 1..8, sympy T = 1..6).
    assert_claim("eq32.softmax_jacobian")
