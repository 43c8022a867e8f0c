"""Unit tests of the Figure 2 statistics (numerics.attention_stats) on hand-built attention maps, and of the
eq. (8) helpers (theory.feedforward, numerics.feedforward)."""

import math

import numpy as np
import pytest
import torch

from popgrad.errors import PopgradError
from popgrad.numerics import attention_stats as ast
from popgrad.numerics import feedforward as nf
from popgrad.theory import feedforward as ff


def one_hot_maps(targets, T):
    """(B, T, T) attention with all weight on key targets[b][t] (must be <= t)."""
    B = len(targets)
    A = torch.zeros(B, T, T)
    for b in range(B):
        for t in range(T):
            A[b, t, targets[b][t]] = 1.0
    return A


def test_previous_token_counts_known_values():
    """Test that a map attending to t-1 counts every position t >= 1, and one attending to 0 counts only t = 1."""
    T = 6
    prev = one_hot_maps([[max(t - 1, 0) for t in range(T)]], T)
    first = one_hot_maps([[0] * T], T)
    assert ast.previous_token_counts(prev) == (T - 1, T - 1)
    assert ast.previous_token_counts(first) == (1, T - 1)


def test_induction_counts_known_values():
    """Test hits and splits on a hand-made sequence: z = a b a c b a x, triggers {a}."""
    z = torch.tensor([[0, 1, 0, 2, 1, 0, 9]])                               # a=0 b=1 c=2; last position excluded
    q = torch.tensor([[0]])
    # repeated queries: t=2 (a), t=4 (b), t=5 (a); t=6 excluded (last position)
    # t=2 -> key 1 (after a at 0): hit; t=4 -> key 2 (after b at 1): hit; t=5 -> key 4 (after c): miss
    targets = [[0, 0, 1, 0, 2, 4, 0]]
    out = ast.induction_counts(one_hot_maps(targets, 7), z, q)
    assert out == {"hits_trigger": 1, "n_trigger": 2, "hits_other": 1, "n_other": 1}


def test_repeated_queries_excludes_first_occurrence_and_last_position():
    """Test that first occurrences and the last position are never repeated queries."""
    z = torch.tensor([[3, 3, 4, 3]])
    assert ast.repeated_queries(z).tolist() == [[False, True, False, False]]


def test_fraction_binomial_se():
    """Test the binomial standard error and the empty case."""
    p, se = ast.fraction(3, 4)
    assert p == 0.75 and se == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    assert all(math.isnan(v) for v in ast.fraction(0, 0))


def test_wishart_gram_moments():
    """Test that Bartlett draws have E G = I and Var G_ij = 1/d off the diagonal, 2/d on it (Wishart(d, I/d))."""
    G = nf.wishart_gram(5, 50, np.random.default_rng(0), count=4000)
    assert torch.allclose(G.mean(0), torch.eye(5, dtype=torch.float64), atol=0.02)
    var = G.var(0)
    assert var[0, 1].item() == pytest.approx(1 / 50, rel=0.1)
    assert var[2, 2].item() == pytest.approx(2 / 50, rel=0.1)


def test_wishart_gram_refuses_d_below_N():
    """Test that d < N is refused with a PopgradError naming d."""
    with pytest.raises(PopgradError, match="d="):
        nf.wishart_gram(5, 3, np.random.default_rng(0))


def test_floored_log_floor_and_dropped_rows():
    """Test that zeros become the floor, dropped rows become zero, and a positive floor is refused."""
    pb = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    ell = ff.floored_log(pb, -7.0, drop_rows=(2,))
    assert ell[0, 2] == -7.0 and ell[1, 1] == -7.0 and ell[0, 0] == pytest.approx(math.log(0.5))
    assert torch.all(ell[2] == 0)
    with pytest.raises(PopgradError):
        ff.floored_log(pb, 1.0)


def test_orthonormal_limit_kl_is_zero_without_zeros():
    """Test that a strictly positive pi_b has limit KL 0 (the logits are log pi_b exactly)."""
    pb = np.full((4, 4), 0.25)
    assert ff.orthonormal_limit_kl(pb) == 0.0


def test_one_layer_config_names_and_refusals():
    """Test that the one-layer model trains W_K1 and W_O1 (and W_F), and refuses model D and one-step probes."""
    from popgrad.numerics.training import TrainConfig, trained_names

    assert trained_names(TrainConfig(layers=1)) == ("W_K1", "W_O1")
    assert trained_names(TrainConfig(layers=1, W_F=True)) == ("W_K1", "W_O1", "W_F")
    with pytest.raises(PopgradError, match="layers"):
        TrainConfig(layers=3).validated()
    with pytest.raises(PopgradError, match="one-layer"):
        TrainConfig(layers=1, onestep_batches=2).validated()
    with pytest.raises(PopgradError, match="W_K2"):
        TrainConfig(layers=1, freeze=(("W_K2", 5),)).validated()
