"""Unit tests of the shared foundation: embeddings, data models, corpus counts, CLI."""

import numpy as np
import pytest
import torch

from popgrad.corpus import count_text, default_counts
from popgrad.data import SecondOccurrenceModel, bigram_trigger_model, conditioned_bigram_chain
from popgrad.embeddings import make_embeddings
from popgrad.errors import PopgradError
from popgrad.numerics.samplers import make_generator, sample_model_d


def test_embeddings_shapes_and_seed_reproducible():
    """Test that make_embeddings gives the documented shapes and is a pure function of its seed."""
    a = make_embeddings(16, 5, 7, seed=3)
    b = make_embeddings(16, 5, 7, seed=3)
    assert a.W_E.shape == (16, 5) and a.W_U.shape == (5, 16) and a.P.shape == (16, 7)
    assert torch.equal(a.W_E, b.W_E) and torch.equal(a.W_V2, b.W_V2)
    assert not torch.equal(a.W_E, make_embeddings(16, 5, 7, seed=4).W_E)


def test_embeddings_float32_is_rounded_float64():
    """Test that the float32 embeddings are the float64 ones rounded (same draw on every dtype)."""
    a = make_embeddings(8, 3, 4, seed=1)
    b = make_embeddings(8, 3, 4, seed=1, dtype="float32")
    assert torch.equal(a.W_U.float(), b.W_U)


def test_shipped_counts_match_corpus_file():
    """Test that the shipped tiny Shakespeare counts equal a fresh count of the text file."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
    if not path.exists():
        pytest.skip("shared/data/tinyshakespeare.txt not beside this checkout")
    fresh = count_text(path.read_text(encoding="utf-8"))
    shipped = default_counts()
    assert fresh.vocab == shipped.vocab and shipped.N == 65
    assert int(shipped.unigram.sum()) == 1_115_394
    assert np.array_equal(fresh.bigram, shipped.bigram)
    assert shipped.bigram.sum() == shipped.unigram.sum() - 1


def test_model_d_enumeration_equals_conditioned_bigram_chain():
    """Test that model D's enumeration is the uniform bigram chain conditioned as SPEC §2 D says."""
    for N, T in [(2, 3), (2, 5), (3, 4), (3, 5), (4, 4)]:
        z, p, y = SecondOccurrenceModel(N, T).enumerate()
        mine = {}
        for zz, pp, yy in zip(z, p, y):
            key = (tuple(int(v) for v in zz), int(yy))
            mine[key] = mine.get(key, 0.0) + pp
        ref = conditioned_bigram_chain(N, T)
        assert set(mine) == set(ref)
        assert max(abs(mine[k] - ref[k]) for k in ref) < 1e-15


def test_model_d_sampler_matches_enumeration():
    """Test that sampled model-D sequences have the enumerated distribution (chi-square, fixed seed)."""
    from scipy.stats import chisquare

    N, T = 3, 4
    z, p, y = SecondOccurrenceModel(N, T).enumerate()
    index = {(tuple(int(v) for v in zz), int(yy)): i for i, (zz, yy) in enumerate(zip(z, y))}
    zs, ys, _, _ = sample_model_d(SecondOccurrenceModel(N, T), 200_000, make_generator(0))
    codes = [index[(tuple(r), int(l))] for r, l in zip(zs.tolist(), ys.tolist())]
    counts = np.bincount(codes, minlength=len(p))
    stat, pvalue = chisquare(counts, p * counts.sum())
    assert pvalue > 1e-4, (stat, pvalue)


@pytest.mark.parametrize("kwargs, match", [
    (dict(N=0, T=5), "N"), (dict(N=3, T=2), "T"), (dict(N=3.5, T=5), "N")])
def test_model_d_rejects_bad_sizes(kwargs, match):
    """Test that model D refuses N < 2, T < 3 and non-integers with the argument's name."""
    with pytest.raises(PopgradError, match=match):
        SecondOccurrenceModel(**kwargs)


def test_bad_text_and_K():
    """Test clear errors: one-character text, K > N random triggers."""
    with pytest.raises(PopgradError, match="distinct"):
        count_text("aaaa")
    with pytest.raises(PopgradError, match="K"):
        bigram_trigger_model(K=70)
