"""Checks of Lemma 1 (Sec. 4.1, eq. (4)-(6); App. C.1)."""

from popgrad.registry import assert_claim


def test_lemma1_gradient_matches_autograd():
    # Lemma 1, eq. (5): the population gradient equals sum_k E_z[(p_hat - p) w_U(k) w_E(z)^T] (vs autograd of (4)).
    assert_claim("lemma1.gradient")


def test_lemma1_gradient_symbolic():
    # Lemma 1, eq. (4)-(5): sympy, (5) minus the derivative of (4) simplifies to exactly zero.
    assert_claim("lemma1.gradient_symbolic")


def test_lemma1_gd_form():
    # Lemma 1, eq. (6): GD iterates (with/without weight decay) are alpha_0 W_0 + sum alpha_ij w_U(j) w_E(i)^T.
    assert_claim("lemma1.gd_form")


def test_lemma1_optimum():
    # Lemma 1, remark after (6): at the optimum p_hat(.|z) = p(.|z) when d >= N (measured over d).
    assert_claim("lemma1.optimum")
