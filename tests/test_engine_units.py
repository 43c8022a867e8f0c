"""Unit tests: the model-D exact engine (popgrad.theory.model_d_exact) and the theorem-3 API (popgrad.theory.theorem3)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from popgrad.data import SecondOccurrenceModel
from popgrad.embeddings import make_embeddings
from popgrad.errors import PopgradError
from popgrad.memory import memory_recall
from popgrad.theory import model_d_exact as mx
from popgrad.theory import theorem3 as t3


@given(T=st.integers(3, 12))
def test_type_marginals_are_laws(T):
    """Test that Pi1 rows are distributions and Pi2 (off-diagonal) marginalizes to Pi1."""
    Pi1, Pi2 = mx.type_marginals(T)
    assert torch.allclose(Pi1.sum(-1), torch.ones(2, T, dtype=torch.float64))
    off = 1.0 - torch.eye(T, dtype=torch.float64)
    assert torch.allclose(Pi2.sum((-1, -2)), off.expand(2, T, T))
    assert torch.allclose(Pi2.sum(-1).sum(2) / (T - 1), Pi1)


@given(N=st.integers(2, 9), T=st.integers(3, 10))
def test_label_token_means_rows_sum_to_weight(N, T):
    """Test that E[sum_s w_s 1{z_s = i} | y = k] sums over i to sum_s w_s for every label k."""
    w = torch.rand(T, dtype=torch.float64, generator=torch.Generator().manual_seed(N * 31 + T))
    M = mx.label_token_means(N, T, w)
    assert torch.allclose(M.sum(1), w.sum().expand(N))
    assert (M >= -1e-15).all()


@given(N=st.integers(2, 7), T=st.integers(3, 8))
def test_token_law_rationals_are_probabilities(N, T):
    """Test that P(z_t=k|y=k) + (N-1) P(z_t=i|y=k) = 1 at every position, exactly."""
    same, other = mx.token_law_given_output(N, T)
    assert all(same[t] + (N - 1) * other[t] == 1 for t in range(1, T + 1))


def test_statistics_are_linear_in_readouts():
    """Test that the step-3 statistic Q is bilinear in (Gt, Km)."""
    g = torch.Generator().manual_seed(0)
    G1, G2, K = (torch.randn(5, 5, generator=g, dtype=torch.float64) for _ in range(3))
    lhs = mx.value_key_pair_statistic(G1 + 2 * G2, K, 6)
    rhs = mx.value_key_pair_statistic(G1, K, 6) + 2 * mx.value_key_pair_statistic(G2, K, 6)
    assert torch.allclose(lhs, rhs)


def test_step_shapes_and_convention():
    """Test that the steps scale with eta and step 2 is the TRANSPOSE of the lemma-convention autograd gradient."""
    from popgrad.claims.engine import reference_step2

    model, emb = SecondOccurrenceModel(4, 5), make_embeddings(8, 4, 5)
    W1 = t3.step1_W_O2(model, emb, eta=2.0)
    W2 = t3.step2_W_K2(model, emb, W1)
    W3 = t3.step3_W_K1(model, emb, W1, W2)
    assert W1.shape == W2.shape == W3.shape == (8, 8) and W3.dtype == torch.float64
    assert torch.allclose(t3.step1_W_O2(model, emb, eta=1.0) * 2.0, W1, rtol=1e-14, atol=0)
    z, p, y = (torch.as_tensor(a) for a in model.enumerate())
    lemma = reference_step2(emb, W1, z, p, y).T                      # key^T W query convention
    assert torch.allclose(W2, lemma.T, rtol=1e-10, atol=1e-15)         # eq. (7): query^T W key
    assert float((W2 - lemma).norm()) > 1e-3 * float(W2.norm())        # and the untransposed one is rejected


def test_bad_inputs_name_the_argument():
    """Test that wrong model, dtype, eta and phat raise PopgradError naming the argument."""
    model, emb = SecondOccurrenceModel(4, 5), make_embeddings(8, 4, 5)
    with pytest.raises(PopgradError, match="model"):
        t3.step1_W_O2("D", emb)
    with pytest.raises(PopgradError, match="float64"):
        t3.step1_W_O2(model, emb.to(dtype="float32"))
    with pytest.raises(PopgradError, match="eta"):
        t3.step1_W_O2(model, emb, eta=-1.0)
    with pytest.raises(PopgradError, match="phat"):
        t3.step2_W_K2(model, emb, t3.step1_W_O2(model, emb), phat="softmax")
    with pytest.raises(PopgradError, match="N"):
        t3.step1_W_O2(SecondOccurrenceModel(5, 5), emb)


def test_recall_of_target_and_ties():
    """Test that recall (9) of the target memory is 1 at large d and that ties count as misses."""
    emb = make_embeddings(512, 16, 8)
    target = emb.W_U.T @ (emb.W_V2 @ emb.W_E).T
    assert memory_recall(target, emb.W_V2 @ emb.W_E, emb.W_U.T, torch.arange(16)) == 1.0
    assert memory_recall(torch.zeros(512, 512, dtype=torch.float64), emb.W_E, emb.W_E, torch.arange(16)) == 0.0


def test_tau_closed_form():
    """Test that tau(N, T) equals 1/(NT) + (N-1)/N * (1/(T-2)) sum_{t_o=2}^{T-1} sum_{t>=t_o} 1/t."""
    import sympy

    N, T = 7, 9
    H = lambda a: sum(sympy.Rational(1, t) for t in range(a, T + 1))
    expect = sympy.Rational(1, N * T) + sympy.Rational(N - 1, N) * sum(H(u) for u in range(2, T)) / (T - 2)
    assert t3.tau(N, T) == expect
