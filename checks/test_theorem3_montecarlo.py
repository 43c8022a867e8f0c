"""Theorem 3 (App. B.3): Monte-Carlo one-step matrices and the exact engine, against autograd."""

from popgrad.registry import assert_claim


def test_theorem3_mc_rate():
    # Theorem 3, B.3.1-B.3.3: autograd of the simplified architectures on n sampled model-D sequences
    # converges to autograd on the enumerated model D at rate n^-1/2 (fitted slope in [-0.6, -0.4]).
    assert_claim("theorem3.mc_rate")


def test_theorem3_engine_vs_autograd():
    # Theorem 3, (15), (17), Lemma 5: the exact engine's step matrices equal -eta * autograd of the
    # population loss on the enumerated model D, for p_hat = 1/N and the true p_hat (rel <= 1e-10).
    assert_claim("theorem3.engine_vs_autograd")
