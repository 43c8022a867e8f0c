"""Checks of Lemma 2 (Sec. 6; App. C.2)."""

from popgrad.registry import assert_claim


def test_lemma2_gradient_matches_autograd():
    # Lemma 2: grad L = sum_k p(y=k) w_U(k) (mu_hat_k - mu_k)^T with C.2's mu_hat_k (vs autograd).
    assert_claim("lemma2.gradient")


def test_lemma2_gradient_symbolic():
    # Lemma 2 (C.2): the formula minus the sympy derivative of the loss simplifies to exactly zero.
    assert_claim("lemma2.gradient_symbolic")


def test_lemma2_mu_hat_erratum():
    # Lemma 2, Sec. 6 vs C.2: the statement's mu_hat_k (no 1/p(y=k)) is rejected; C.2's matches autograd.
    assert_claim("lemma2.mu_hat_erratum")
