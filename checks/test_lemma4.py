"""Lemma 4 (App. B.2, proof C.3): gradient of the second attention layer at W = 0."""

from popgrad.registry import assert_claim


def test_lemma4_line1_matches_autograd():
    # Lemma 4, first line: grad_W L(0) = sum_k E[(p_hat - 1{y=k}) (1/T) sum_t w_U(k)^T Phi_2 x_t (z_t - zbar) x_T^T],
    # held against torch autograd of the exact loss (13) on random sets and model D, Z = X and Z != X.
    assert_claim("lemma4.line1_vs_autograd")


def test_lemma4_line2_matches_line1():
    # Lemma 4, second line: the p_hat term minus sum_k p(y=k) E[. | y=k] equals the first line.
    assert_claim("lemma4.line2_vs_line1")


def test_lemma4_symbolic_derivative():
    # Lemma 4 at T = d = N = M = 2, all entries symbolic: line 1 minus the sympy derivative of (13) is 0.
    assert_claim("lemma4.symbolic")


def test_lemma4_scale_factor_at_zero():
    # B.2: with sigma(d^-1/2 Z^T W x_T) the gradient at W = 0 is d^-1/2 times the gradient without the factor.
    assert_claim("lemma4.scale_factor")
