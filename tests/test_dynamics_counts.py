"""Test the population counts of numerics.dynamics_reference against d x d references: the exact accuracy
against the d-space model's argmax on the enumerated model D, and the population count against plain gradient
descent on d x d matrices (autograd of induction_head_logits) with that accuracy."""

import torch

from popgrad.claims.dynamics import _plain_gd
from popgrad.data import SecondOccurrenceModel
from popgrad.embeddings import make_embeddings
from popgrad.numerics import theorem3_mc as mc
from popgrad.numerics.dynamics import LAYERS, coordinates, schedule
from popgrad.numerics.dynamics_reference import count_cell, counts_vs_exact, population_accuracy
from popgrad.numerics.induction_head import induction_head_logits

N, T, D = 4, 5, 16
ETAS = {"W_O2": 3.0, "W_K2": 10.0, "W_K1": 10.0}
THRESHOLDS = (0.5, 0.7)


def _d_space_accuracy(emb, W, z, y, prob):
    pred = induction_head_logits(emb, z, W["W_K1"], W["W_K2"], W["W_O2"])[:, -1].argmax(-1)
    return float((prob * (pred == y)).sum())


def test_population_accuracy_is_the_d_space_argmax():
    """Test the exact accuracy in token coordinates against the d x d model's argmax, at random non-zero weights
    scaled so that both right and wrong answers occur."""
    model, emb = SecondOccurrenceModel(N, T), make_embeddings(D, N, T, seed=3, dtype="float64")
    z, y, prob = mc.enumerated(model)
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for scale in (0.3, 1.0, 3.0):
        W = {k: scale * torch.randn(D, D, generator=gen, dtype=torch.float64) for k in LAYERS}
        got = population_accuracy(coordinates(emb), W, z, y, prob)
        assert abs(got - _d_space_accuracy(emb, W, z, y, prob)) < 1e-12
        seen.add(round(got, 6))
    assert len(seen) > 1 and all(0 < a < 1 for a in seen)


def test_population_count_is_plain_descent():
    """Test the exact count (enumerated model D) against plain d x d gradient descent scored by the d-space model."""
    model, emb = SecondOccurrenceModel(N, T), make_embeddings(D, N, T, seed=0, dtype="float64")
    z, y, prob = mc.enumerated(model)
    k = 60
    accs = [_d_space_accuracy(emb, W, z, y, prob) for W in _plain_gd(emb, z, y, prob, ETAS, schedule("joint", k))]
    want = {th: next((i + 1 for i, a in enumerate(accs) if a >= th), None) for th in THRESHOLDS}
    assert all(v is not None for v in want.values()), "the reference run should reach both thresholds"
    assert count_cell(N, T, D, ETAS, "joint", k, "enumerated", 1, THRESHOLDS, 0, 0) == [want[th] for th in THRESHOLDS]


def test_counts_vs_exact_pairs_each_run_with_its_population_count():
    """Test that counts_vs_exact's exact and Monte-Carlo counts are count_cell's, and its summary equals a loop."""
    ns, embs, streams = (64, 512), (0, 1), 2
    r = counts_vs_exact(N, T, D, ETAS, "joint", 40, ns, embs, streams, THRESHOLDS)
    for e in embs:
        exact = count_cell(N, T, D, ETAS, "joint", 40, "enumerated", 1, THRESHOLDS, e, 0)
        assert r["exact"][e] == dict(zip(THRESHOLDS, exact))
        for n in ns:
            assert r["mc"][n][e] == [dict(zip(THRESHOLDS, count_cell(N, T, D, ETAS, "joint", 40, "mc", n, THRESHOLDS, e, s)))
                                     for s in range(streams)]
    for n in ns:
        for th in THRESHOLDS:
            pairs = [(c[th], r["exact"][e][th]) for e in embs for c in r["mc"][n][e]]
            diffs = sorted(a - b for a, b in pairs if a is not None and b is not None)
            s = r["summary"][n][th]
            assert s["runs"] == len(embs) * streams and s["reached"] == sum(a is not None for a, _ in pairs)
            if diffs:
                mid = len(diffs) // 2
                assert s["median_diff"] == (diffs[mid] if len(diffs) % 2 else (diffs[mid - 1] + diffs[mid]) / 2)
            close = sum(a is not None and b is not None and abs(a - b) <= max(2, 0.05 * b) for a, b in pairs)
            assert s["within"] == close / len(pairs)
