"""Invariances: token relabeling, reproducibility of exact paths, float32/CUDA vs CPU float64."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from popgrad.numerics.capacity import MemoryDraw, draw_memory, recall_misses
from popgrad.data import random_finite_pairs, FinitePairs
from popgrad.embeddings import Embeddings, make_embeddings
from popgrad.tolerances import FLOAT32, FLOAT64, rel_error

sizes = st.integers(min_value=2, max_value=12)
seeds = st.integers(min_value=0, max_value=10 ** 6)


def _relabel(emb: Embeddings, perm: torch.Tensor) -> Embeddings:
    """Token k of the new labeling is token perm[k] of the old one (columns of W_E, rows of W_U)."""
    return Embeddings(emb.W_E[:, perm], emb.W_U[perm], emb.P, emb.W_V1, emb.W_O1, emb.W_V2, seed=emb.seed)


@settings(max_examples=15)
@given(N=sizes, d=st.integers(min_value=2, max_value=64), seed=seeds)
def test_lemma1_one_step_memory_invariant_under_token_relabeling(N, d, seed):
    """Test that relabeling tokens of p(z, y) and the embeddings together leaves W_1 unchanged and permutes p_hat."""
    from popgrad.theory.lemma1 import one_step_memory, predicted_probs

    emb = make_embeddings(d, N, 2, seed=seed)
    pairs = random_finite_pairs(N, seed=seed)
    perm = torch.as_tensor(np.random.default_rng(seed).permutation(N))
    p2 = FinitePairs(pairs.p[np.ix_(perm.numpy(), perm.numpy())])
    emb2 = _relabel(emb, perm)
    W, W2 = one_step_memory(emb, pairs, 0.7), one_step_memory(emb2, p2, 0.7)
    assert rel_error(W2, W) <= FLOAT64.rtol
    assert rel_error(predicted_probs(W2, emb2), predicted_probs(W, emb)[perm][:, perm]) <= FLOAT64.rtol


@settings(max_examples=15)
@given(N=st.integers(min_value=2, max_value=64), d=st.integers(min_value=2, max_value=64), seed=seeds,
       kind=st.sampled_from(["injective", "mod2"]))
def test_memory_recall_invariant_under_input_relabeling(N, d, seed, kind):
    """Test that permuting the inputs z (embeddings and map together) leaves the recall count unchanged."""
    draw = draw_memory(kind, d, N, memories=2, seed=seed, dtype="float64")
    perm = torch.as_tensor(np.random.default_rng(seed).permutation(N))
    moved = MemoryDraw(kind, draw.E[:, :, perm], draw.U, draw.f[:, perm])
    assert recall_misses(moved) == recall_misses(draw)


@settings(max_examples=10)
@given(N=sizes, d=st.integers(min_value=2, max_value=32), seed=seeds)
def test_exact_paths_identical_across_runs_with_one_seed(N, d, seed):
    """Test that embeddings, data and one-step memories are bit-identical for one seed."""
    from popgrad.theory.lemma1 import one_step_memory

    runs = [one_step_memory(make_embeddings(d, N, 3, seed=seed), random_finite_pairs(N, seed=seed), 1.0)
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    a, b = draw_memory("injective", d, N, 2, seed=seed), draw_memory("injective", d, N, 2, seed=seed)
    assert torch.equal(a.E, b.E) and torch.equal(a.f, b.f)


@settings(max_examples=10)
@given(N=sizes, d=st.integers(min_value=2, max_value=64), seed=seeds)
def test_float32_matches_float64_within_stated_tolerance(N, d, seed):
    """Test that the one-step memory and B.1 readout in float32 agree with float64 within FLOAT32."""
    from popgrad.theory.example_b1 import one_step_W1_eq12, readout
    from popgrad.theory.lemma1 import one_step_memory

    emb = make_embeddings(d, N, 3, seed=seed)
    pairs = random_finite_pairs(N, seed=seed)
    W64 = one_step_memory(emb, pairs, 1.0)
    W32 = one_step_memory(emb.to(dtype="float32"), pairs, 1.0)
    assert W32.dtype == torch.float32
    assert rel_error(W32, W64) <= FLOAT32.rtol
    R64 = readout(emb, one_step_W1_eq12(emb, 1.0))
    e32 = emb.to(dtype="float32")
    assert rel_error(readout(e32, one_step_W1_eq12(e32, 1.0)), R64) <= FLOAT32.rtol


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_float64():
    """Test that the one-step memory on CUDA (float64 and float32) matches the CPU float64 result."""
    from popgrad.theory.lemma1 import one_step_memory

    emb = make_embeddings(32, 8, 3, seed=1)
    pairs = random_finite_pairs(8, seed=1)
    ref = one_step_memory(emb, pairs, 1.0)
    assert rel_error(one_step_memory(emb.to(device="cuda"), pairs, 1.0).cpu(), ref) <= FLOAT64.rtol * 100
    assert rel_error(one_step_memory(emb.to(dtype="float32", device="cuda"), pairs, 1.0).cpu(), ref) <= FLOAT32.rtol
