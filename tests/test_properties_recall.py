"""Hypothesis properties of memory recall (Sec. 4.1 eq. (3), eq. (9); Lemma 1; App. B.1)."""

import numpy as np
import torch
from hypothesis import given, settings, strategies as st

from popgrad.numerics.capacity import draw_memory, recall
from popgrad.data import FinitePairs
from popgrad.embeddings import make_embeddings
from popgrad.theory.concentration import guaranteed_recall_dim

seeds = st.integers(min_value=0, max_value=2 ** 31 - 1)


@settings(max_examples=10)
@given(N=st.integers(min_value=2, max_value=32), seed=seeds)
def test_outer_product_memory_recalls_every_association_above_threshold(N, seed):
    """Test that sum_z u_f(z) e_z^T recalls all N associations at d >= the guaranteed threshold (failure < 1e-9)."""
    d = guaranteed_recall_dim(N, 1e-9)
    draw = draw_memory("injective", d, N, memories=1, seed=seed, dtype="float64")
    assert recall(draw) == 1.0


def test_outer_product_recall_threshold_grows_with_N():
    """Test that the guaranteed dimension grows with N, sublinearly over N <= 128 (fitted slope in (0.3, 1))."""
    Ns = np.array([2, 4, 8, 16, 32, 64, 128])
    ds = np.array([guaranteed_recall_dim(int(n)) for n in Ns])
    assert np.all(np.diff(ds) > 0)
    slope = np.polyfit(np.log(Ns), np.log(ds), 1)[0]
    assert 0.3 < slope < 1.0


def _one_step_recall(N, d, seed):
    from popgrad.theory.lemma1 import one_step_memory

    perm = np.random.default_rng(seed).permutation(N)
    p = np.zeros((N, N))
    p[np.arange(N), perm] = 1.0 / N                   # y = f(z), z uniform
    emb = make_embeddings(d, N, 2, seed=seed)
    W = one_step_memory(emb, FinitePairs(p), eta=1.0)   # (d, d)
    scores = emb.W_U @ W @ emb.W_E                      # (N_k, N_z)
    return float((scores.argmax(dim=0) == torch.as_tensor(perm)).double().mean())


@settings(max_examples=8)
@given(N=st.integers(min_value=4, max_value=10), seed=st.integers(min_value=0, max_value=10 ** 6))
def test_lemma1_one_step_memory_recall_rises_to_one(N, seed):
    """Test that the Lemma 1 one-step memory recalls f perfectly at d = 2048 and not at d = 2 (mean of 8 draws)."""
    assert _one_step_recall(N, 2048, seed) == 1.0
    assert np.mean([_one_step_recall(N, 2, seed + k) for k in range(8)]) < 1.0


@settings(max_examples=6)
@given(N=st.integers(min_value=4, max_value=10), T=st.integers(min_value=2, max_value=8),
       seed=st.integers(min_value=0, max_value=10 ** 6))
def test_example_b1_one_step_argmax_accuracy_rises_to_one(N, T, seed):
    """Test that the B.1 one-step readout (eq. (12)) has argmax accuracy 1 at d = 2048 and below 1 at d = 2."""
    from popgrad.theory.example_b1 import argmax_accuracy, one_step_W1_eq12, readout

    def acc(d, s):
        emb = make_embeddings(d, N, T, seed=s)
        return argmax_accuracy(readout(emb, one_step_W1_eq12(emb, 1.0)))

    assert acc(2048, seed) == 1.0
    assert np.mean([acc(2, seed + k) for k in range(8)]) < 1.0
