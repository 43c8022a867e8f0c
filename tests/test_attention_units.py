"""Unit tests for popgrad.theory.attention: shapes, conventions, input validation and invariants."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from popgrad.claims.attention import model_d_set, random_set
from popgrad.conventions import lemma_to_eq7
from popgrad.errors import PopgradError
from popgrad.theory import attention as att

L4_KEYS = ("X", "y", "weights", "W_U", "Phi_2", "Z")
L5_KEYS = ("X", "P", "y", "weights", "W_U", "Phi_1", "Phi_2", "W_2")


def l4(data, **over):
    out = {k: data[k] for k in L4_KEYS}
    out.update(over)
    return out


def l5(data, **over):
    out = {k: data[k] for k in L5_KEYS}
    out.update(over)
    return out


@pytest.fixture
def data():
    return random_set(0, distinct_keys=True, M=5, T=4, d=3, N=6)


def _lemma4_by_loop(data, phat="model"):
    """Lemma 4 line 1 by an explicit loop over sequences, labels and positions (reference for the unit tests)."""
    X, Z, y, w, W_U, Phi_2 = data["X"], data["Z"], data["y"], data["weights"], data["W_U"], data["Phi_2"]
    Z = X if Z is None else Z
    M, T, d = X.shape
    N = W_U.shape[0]
    G = torch.zeros(d, d, dtype=torch.float64)
    for m in range(M):
        xi = W_U @ Phi_2 @ X[m].mean(0)
        ph = torch.softmax(xi, 0) if phat == "model" else torch.full((N,), 1.0 / N, dtype=torch.float64)
        zbar = Z[m].mean(0)
        for k in range(N):
            coef = float(ph[k]) - (1.0 if int(y[m]) == k else 0.0)
            for t in range(T):
                G += w[m] * coef / T * float(W_U[k] @ Phi_2 @ X[m, t]) * torch.outer(Z[m, t] - zbar, X[m, -1])
    return G


def test_lemma4_gradients_match_a_per_sequence_loop(data):
    """Test that both lines of Lemma 4 equal an explicit loop over sequences, labels and positions (float64)."""
    for phat in ("model", "uniform"):
        ref = _lemma4_by_loop(data, phat)
        for fn in (att.lemma4_gradient_line1, att.lemma4_gradient_line2):
            g = fn(**l4(data), phat=phat)
            assert g.dtype == torch.float64
            assert torch.allclose(g, ref, rtol=1e-12, atol=1e-15)
    assert float((att.lemma4_gradient_line1(**l4(data), phat="model")
                  - att.lemma4_gradient_line1(**l4(data), phat="uniform")).abs().max()) > 1e-6


def test_eq7_variants_are_transposes(data):
    """Test that the *_eq7 functions are the transposes of the lemma-convention results, which are not symmetric."""
    g = att.lemma4_gradient_line1(**l4(data))
    assert float((g - g.T).abs().max()) > 1e-3 * float(g.abs().max())      # a missing transpose is visible
    assert torch.equal(att.lemma4_gradient_eq7(**l4(data)), g.T)
    assert torch.equal(lemma_to_eq7(g), g.T)
    g5 = att.lemma5_gradient(**l5(data))
    assert float((g5 - g5.T).abs().max()) > 1e-3 * float(g5.abs().max())
    assert torch.equal(att.lemma5_gradient_eq7(**l5(data)), g5.T)


def test_lemma5_terms_shapes_and_sum(data):
    """Test that lemma5_terms returns four non-zero matrices whose sum is lemma5_gradient and the proof form."""
    terms = att.lemma5_terms(**l5(data))
    assert len(terms) == 4 and all(float(t.abs().max()) > 1e-8 for t in terms)
    assert torch.allclose(sum(terms), att.lemma5_gradient(**l5(data)), rtol=0, atol=0)
    assert torch.allclose(sum(terms), att.lemma5_gradient_proof(**l5(data)), rtol=1e-11, atol=1e-15)


def test_default_keys_and_query_are_x(data):
    """Test that Z = None and query = None mean Z = X and x_T = X[:, -1]."""
    X = data["X"]
    a = att.lemma4_gradient_line1(**l4(data, Z=None))
    b = att.lemma4_gradient_line1(**l4(data, Z=X.clone()), query=X[:, -1].clone())
    assert torch.allclose(a, b, rtol=1e-14, atol=0)


def test_softmax_jacobian_values():
    """Test that eq. (32) has diagonal (T-1)/T^2, off-diagonal -1/T^2, rows summing to 0."""
    J = att.softmax_jacobian_at_zero(4)
    assert J.shape == (4, 4)
    assert torch.allclose(J.diagonal(), torch.full((4,), 3 / 16, dtype=torch.float64))
    assert float(J[0, 1]) == pytest.approx(-1 / 16, abs=1e-16) and float(J[3, 2]) == pytest.approx(-1 / 16, abs=1e-16)
    assert torch.allclose(J.sum(1), torch.zeros(4, dtype=torch.float64), atol=1e-16)


def test_first_layer_at_zero_is_causal_mean(data):
    """Test that z_t(0) = (1/t) sum_{s<=t} Phi_1 x_s (uniform causal attention at W = 0)."""
    X, P, Phi_1 = data["X"], data["P"], data["Phi_1"]
    Z = att.lemma5_first_layer(torch.zeros(3, 3, dtype=torch.float64), X, P, Phi_1)
    t = torch.arange(1, X.shape[1] + 1, dtype=torch.float64)
    assert torch.allclose(Z, (X.cumsum(1) / t[None, :, None]) @ Phi_1.T, rtol=1e-13, atol=1e-15)


def test_first_layer_is_causal(data):
    """Test that z_t(W) does not depend on x_s for s > t at a random W."""
    X, P, Phi_1 = data["X"], data["P"], data["Phi_1"]
    W = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    X2 = X.clone()
    X2[:, -1] += 1.0
    a = att.lemma5_first_layer(W, X, P, Phi_1)
    b = att.lemma5_first_layer(W, X2, P, Phi_1)
    assert torch.equal(a[:, :-1], b[:, :-1]) and not torch.equal(a[:, -1], b[:, -1])


def test_float32_follows_input_dtype(data):
    """Test that float32 inputs give float32 gradients close to float64."""
    d32 = {k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in data.items()}
    g32 = att.lemma4_gradient_line1(**l4(d32))
    assert g32.dtype == torch.float32
    assert torch.allclose(g32.double(), att.lemma4_gradient_line1(**l4(data)), rtol=1e-4, atol=1e-6)


def test_model_d_set_is_a_probability_set():
    """Test that the model-D grid weights sum to one and labels are tokens."""
    d = model_d_set(3, 4, distinct_keys=True)
    assert abs(float(d["weights"].sum()) - 1) < 1e-12 and int(d["y"].max()) < 3
    assert d["Z"].shape == d["X"].shape


@pytest.mark.parametrize("over, word", [
    ({"X": torch.zeros(4, 3)}, "X"),
    ({"W_U": torch.zeros(6, 2)}, "W_U"),
    ({"Phi_2": torch.zeros(2, 2)}, "Phi_2"),
    ({"y": torch.tensor([0, 1, 2, 3, 6])}, "y"),
    ({"y": torch.tensor([0.0, 1, 2, 3, 4])}, "y"),
    ({"y": torch.tensor([0, 1])}, "y"),
    ({"weights": torch.full((5,), 0.3, dtype=torch.float64)}, "weights"),
    ({"weights": torch.tensor([1.5, -0.5, 0, 0, 0], dtype=torch.float64)}, "weights"),
    ({"Z": torch.zeros(5, 4, 2)}, "Z"),
    ({"X": torch.full((5, 4, 3), float("nan"))}, "X"),
])
def test_lemma4_rejects_bad_input(data, over, word):
    """Test that Lemma 4 functions raise PopgradError naming the bad argument."""
    for fn in (att.lemma4_gradient_line1, att.lemma4_gradient_line2):
        with pytest.raises(PopgradError, match=word):
            fn(**l4(data, **over))
    with pytest.raises(PopgradError, match=word):
        att.lemma4_loss(torch.zeros(3, 3, dtype=torch.float64), **l4(data, **over))


@pytest.mark.parametrize("over, word", [
    ({"P": torch.zeros(3, 5)}, "P"),
    ({"Phi_1": torch.zeros(3, 2)}, "Phi_1"),
    ({"W_2": torch.zeros(2, 3)}, "W_2"),
    ({"weights": torch.zeros(5, dtype=torch.float64)}, "weights"),
])
def test_lemma5_rejects_bad_input(data, over, word):
    """Test that Lemma 5 functions raise PopgradError naming the bad argument."""
    for fn in (att.lemma5_gradient, att.lemma5_gradient_proof, att.lemma5_terms):
        with pytest.raises(PopgradError, match=word):
            fn(**l5(data, **over))


def test_bad_phat_and_T_rejected(data):
    """Test that phat must be model|uniform, T a positive integer, W (d, d)."""
    with pytest.raises(PopgradError, match="phat"):
        att.lemma4_gradient_line1(**l4(data), phat="exact")
    with pytest.raises(PopgradError, match="phat"):
        att.lemma5_loss(torch.zeros(3, 3, dtype=torch.float64), **l5(data), phat="none")
    with pytest.raises(PopgradError, match="T"):
        att.softmax_jacobian_at_zero(0)
    with pytest.raises(PopgradError, match="W"):
        att.lemma4_loss(torch.zeros(2, 2, dtype=torch.float64), **l4(data))


@given(seed=st.integers(0, 10_000), split=st.floats(0.1, 0.9))
def test_gradients_invariant_to_splitting_a_sequence(seed, split):
    """Test that splitting one sequence's weight over two copies leaves both lemmas' gradients unchanged."""
    data = random_set(seed % 50, distinct_keys=bool(seed % 2), M=4, T=3, d=2, N=3)
    dup = dict(data)
    for k in ("X", "Z", "y"):
        if dup[k] is not None:
            dup[k] = torch.cat([data[k], data[k][:1]])
    w = data["weights"]
    dup["weights"] = torch.cat([w[:1] * split, w[1:], w[:1] * (1 - split)])
    for fn in (att.lemma4_gradient_line1, att.lemma4_gradient_line2):
        assert torch.allclose(fn(**l4(dup)), fn(**l4(data)), rtol=1e-12, atol=1e-15)
    assert torch.allclose(att.lemma5_gradient(**l5(dup)), att.lemma5_gradient(**l5(data)), rtol=1e-12, atol=1e-15)


@given(seed=st.integers(0, 10_000))
def test_uniform_phat_gradient_vanishes_for_constant_rows(seed):
    """Test that with identical output embeddings and p_hat = 1/N both lemmas' gradients vanish."""
    data = random_set(seed % 50, distinct_keys=False, M=4, T=3, d=2, N=3)
    W_U = data["W_U"][:1].expand(3, -1).clone()
    g4 = att.lemma4_gradient_line1(**l4(data, W_U=W_U), phat="uniform")
    g5 = att.lemma5_gradient(**l5(data, W_U=W_U), phat="uniform")
    assert float(g4.abs().max()) < 1e-15 and float(g5.abs().max()) < 1e-15
