"""Lemma 5 (App. B.2, proof C.4): gradient of the first attention layer at W = 0."""

from popgrad.registry import assert_claim


def test_lemma5_gradient_matches_autograd():
    # Lemma 5: the four terms sum to grad_W L(0) of the linearized two-layer loss (14), by torch autograd.
    assert_claim("lemma5.gradient_vs_autograd")


def test_lemma5_terms_match_proof():
    # Lemma 5 vs its proof: the four class-conditional terms equal eq. (35)-(36) with dl/dxi_k = p_hat - 1{y=k}.
    assert_claim("lemma5.terms_vs_proof")
