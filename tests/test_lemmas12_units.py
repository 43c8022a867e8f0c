"""Unit tests of popgrad.theory.lemma1, popgrad.theory.lemma2, popgrad.theory.example_b1, popgrad.theory.appendix_a: input validation and invariants."""

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from popgrad.data import FiniteMixture, random_finite_pairs
from popgrad.embeddings import make_embeddings
from popgrad.errors import PopgradError
from popgrad.theory import appendix_a, example_b1, lemma1, lemma2


@pytest.fixture
def setup1():
    return make_embeddings(6, 4, 3, seed=0), random_finite_pairs(4, seed=0)


# ----------------------------------------------------------------------------- lemma 1
def test_lemma1_rejects_wrong_N(setup1):
    """Test that pairs with a different N than the embeddings is refused, naming N."""
    emb, _ = setup1
    with pytest.raises(PopgradError, match="N="):
        lemma1.lemma1_gradient(torch.zeros(6, 6, dtype=torch.float64), emb, random_finite_pairs(5))


def test_lemma1_rejects_bad_W_shape(setup1):
    """Test that a W that is not (d, d) is refused."""
    emb, pairs = setup1
    with pytest.raises(PopgradError, match="W must have shape"):
        lemma1.lemma1_population_loss(torch.zeros(5, 6, dtype=torch.float64), emb, pairs)
    with pytest.raises(PopgradError, match="torch.Tensor"):
        lemma1.lemma1_gradient(np.zeros((6, 6)), emb, pairs)


def test_lemma1_rejects_bad_types_and_steps(setup1):
    """Test that non-Embeddings, non-FinitePairs, eta <= 0, negative steps and weight decay are refused."""
    emb, pairs = setup1
    W0 = torch.zeros(6, 6, dtype=torch.float64)
    with pytest.raises(PopgradError, match="emb"):
        lemma1.one_step_memory("emb", pairs, 1.0)
    with pytest.raises(PopgradError, match="pairs"):
        lemma1.one_step_memory(emb, pairs.p, 1.0)
    with pytest.raises(PopgradError, match="eta"):
        lemma1.one_step_memory(emb, pairs, 0.0)
    with pytest.raises(PopgradError, match="steps"):
        lemma1.gradient_descent(emb, pairs, W0, 0.1, -1)
    with pytest.raises(PopgradError, match="weight_decay"):
        lemma1.gradient_descent(emb, pairs, W0, 0.1, 2, weight_decay=-0.1)


def test_lemma1_gradient_descent_iterates(setup1):
    """Test that gradient_descent starts at W0, each iterate is W - eta (autograd grad + lambda W), and
    return_all=False gives the last iterate."""
    emb, pairs = setup1
    W0 = torch.eye(6, dtype=torch.float64)
    Ws = lemma1.gradient_descent(emb, pairs, W0, 0.3, 4, weight_decay=0.1)
    assert Ws.shape == (5, 6, 6) and torch.equal(Ws[0], W0)
    for t in range(4):
        W = Ws[t].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(lemma1.lemma1_population_loss(W, emb, pairs), W)
        assert torch.allclose(Ws[t + 1], Ws[t] - 0.3 * (g + 0.1 * Ws[t]), rtol=1e-12, atol=1e-15)
    assert torch.allclose(lemma1.gradient_descent(emb, pairs, W0, 0.3, 4, weight_decay=0.1, return_all=False), Ws[-1])


def test_lemma1_gd_decreases_loss(setup1):
    """Test that small-step gradient descent decreases the convex population loss."""
    emb, pairs = setup1
    Ws = lemma1.gradient_descent(emb, pairs, torch.zeros(6, 6, dtype=torch.float64), 0.2, 5)
    losses = [float(lemma1.lemma1_population_loss(W, emb, pairs)) for W in Ws]
    assert all(b < a for a, b in zip(losses, losses[1:]))


def test_lemma1_one_step_memory_is_minus_eta_grad(setup1):
    """Test that one_step_memory is -eta times the gradient at zero."""
    emb, pairs = setup1
    g0 = lemma1.lemma1_gradient(torch.zeros(6, 6, dtype=torch.float64), emb, pairs)
    assert torch.allclose(lemma1.one_step_memory(emb, pairs, 0.5), -0.5 * g0)


# ----------------------------------------------------------------------------- lemma 2
def _mixture(d=5, N=3, M=6):
    x = torch.randn(M, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return FiniteMixture(x, torch.arange(M) % N, torch.full((M,), 1.0 / M, dtype=torch.float64), N)


def test_lemma2_rejects_wrong_shapes():
    """Test that W_U not (N, d) and W not (d, d) are refused, naming the argument."""
    mix = _mixture()
    with pytest.raises(PopgradError, match="W_U"):
        lemma2.lemma2_gradient(torch.zeros(5, 5, dtype=torch.float64), torch.zeros(4, 5, dtype=torch.float64), mix)
    with pytest.raises(PopgradError, match="W must"):
        lemma2.lemma2_population_loss(torch.zeros(4, 4, dtype=torch.float64), torch.zeros(3, 5, dtype=torch.float64), mix)
    with pytest.raises(PopgradError, match="mixture"):
        lemma2.lemma2_gradient(torch.zeros(5, 5), torch.zeros(3, 5), "mix")


def test_lemma2_missing_class_is_finite():
    """Test that a class with p(y=k) = 0 gives a finite gradient (its term is E[p_hat(k|x) x])."""
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    mix = FiniteMixture(x, torch.tensor([0, 0, 1, 1]), torch.full((4,), 0.25, dtype=torch.float64), 3)
    W = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    W_U = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    g = lemma2.lemma2_gradient(W, W_U, mix)
    Wr = W.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(lemma2.lemma2_population_loss(Wr, W_U, mix), Wr)
    assert torch.isfinite(g).all() and torch.allclose(g, auto, rtol=1e-10, atol=1e-13)


# ----------------------------------------------------------------------------- example B.1
def test_example_b1_validation():
    """Test that bad eta, probs shape, W1 shape and a too-small d for orthonormal embeddings are refused."""
    emb = make_embeddings(8, 3, 2, seed=0)
    with pytest.raises(PopgradError, match="eta"):
        example_b1.one_step_W1_eq12(emb, -1.0)
    with pytest.raises(PopgradError, match="probs"):
        example_b1.one_step_W1_eq11(emb, 1.0, probs=np.full((2, 3), 1 / 6))
    with pytest.raises(PopgradError, match="W1"):
        example_b1.readout(emb, torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(PopgradError, match="2N \\+ T"):
        example_b1.orthonormal_embeddings(5, 3, 2)
    probs = np.zeros((3, 2))
    probs[:2] = 0.25
    with pytest.raises(PopgradError, match="every label"):
        example_b1.one_step_W1_eq11(emb, 1.0, probs=probs)


def test_example_b1_readout_values_and_accuracy():
    """Test that with orthonormal embeddings the readout is exactly (eta/N)(1{k=y} - 1/N) with accuracy 1, and ties are misses."""
    emb = example_b1.orthonormal_embeddings(16, 4, 3, seed=1)
    R = example_b1.readout(emb, example_b1.one_step_W1_eq12(emb, 2.0))
    assert R.shape == (4, 4, 3)
    assert torch.allclose(R, example_b1.readout_orthonormal_limit(4, 3, 2.0).to(R), rtol=1e-12, atol=1e-15)
    assert float(R[1, 1, 0]) == pytest.approx(2.0 / 4 * (1 - 1 / 4), abs=1e-14)
    assert example_b1.argmax_accuracy(R) == 1.0
    assert example_b1.argmax_accuracy(torch.zeros(4, 4, 3)) == 0.0


@given(st.integers(2, 6), st.integers(1, 4), st.integers(0, 50))
def test_example_b1_eq11_matches_lemma2_step_for_uniform_y(N, T, seed):
    """Test that eq. (11) equals the Lemma 2 one-step memory whenever y is uniform."""
    emb = make_embeddings(8, N, T, seed=seed)
    a = example_b1.one_step_W1_eq11(emb, 1.0)
    b = example_b1.one_step_W1_lemma2(emb, 1.0)
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-13)


# ----------------------------------------------------------------------------- appendix A
def test_appendix_a_validation():
    """Test that unknown quantities, a too-large d for Isserlis and a missing fixed x are refused."""
    with pytest.raises(PopgradError, match="quantity"):
        appendix_a.moments_index_counting("trace")
    with pytest.raises(PopgradError, match="d <= 6"):
        appendix_a.moments_isserlis("xWx", 7)
    with pytest.raises(PopgradError, match="x_fixed"):
        appendix_a.monte_carlo_moments("remap_fixed", 4, 10)
    with pytest.raises(PopgradError, match="n must"):
        appendix_a.monte_carlo_moments("inner", 4, 1)


def test_appendix_a_gaussian_moments():
    """Test that M2 = 1 and M4 = 3 for the standard Gaussian."""
    assert appendix_a.gaussian_moment(2) == 1 and appendix_a.gaussian_moment(4) == 3


def test_appendix_a_known_moments():
    """Test the exact moments against values derivable by hand: E u^Tu = 1, Var u^Tu = 2/d, Var u_i^Tu_j = 1/d,
    E(x^T W x)^2 = (d+2)/d^2 (entries N(0, 1/d))."""
    d = appendix_a.d_sym
    mean, var = appendix_a.moments_index_counting("norm_sq")
    assert mean == 1 and (var - 2 / d).simplify() == 0
    mean, var = appendix_a.moments_index_counting("inner")
    assert mean == 0 and (var - 1 / d).simplify() == 0
    assert (appendix_a.xWx_second_moment() - (d + 2) / d**2).simplify() == 0
