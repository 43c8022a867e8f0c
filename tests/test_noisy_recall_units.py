"""Tests: model E (noisy in-context recall) data model, sampler, engine invariants and the `popgrad noisy` CLI."""

import math

import numpy as np
import pytest
import torch

from popgrad.cli import main
from popgrad.data import NoisyRecallModel, noisy_recall_model
from popgrad.errors import PopgradError
from popgrad.numerics.noisy_recall import PairStats, add_pairs, ff_maps_q_to_noise, n_grid, r1_noisy
from popgrad.numerics.samplers import make_generator, sample_model_e
from popgrad.theory import noisy_recall as nr


def test_enumeration_is_a_probability_distribution():
    """Test that the brute-force enumeration of model E sums to one and shows noise only after q."""
    model = noisy_recall_model(3, 5, 0.4, q=1)
    z, p, y = model.enumerate()
    assert abs(p.sum() - 1) < 1e-12
    noise_at = z[:, 1:] == model.noise
    assert not (noise_at & (z[:, :-1] != model.q) & (z[:, :-1] != model.noise)).any()
    assert not (z[:, 0] == model.noise).any()
    assert set(np.unique(y)) <= set(range(3))


def test_sampler_deterministic_and_in_range():
    """Test that the sampler is deterministic per seed and emits tokens in 0..N, noise only after a trigger or noise."""
    model = noisy_recall_model(5, 40, 0.5, q=2)
    z1, y1 = sample_model_e(model, 300, make_generator(7))
    z2, y2 = sample_model_e(model, 300, make_generator(7))
    assert torch.equal(z1, z2) and torch.equal(y1, y2)
    assert int(z1.min()) >= 0 and int(z1.max()) <= 5
    prev, cur = z1[:, :-1], z1[:, 1:]
    assert not bool(((cur == 5) & (prev != 2) & (prev != 5)).any())
    after_q = cur[prev == 2]
    ys = y1[:, None].expand_as(prev)[prev == 2]
    assert bool(((after_q == ys) | (after_q == 5)).all())


def test_eps_zero_has_no_noise_and_engine_noise_column_vanishes():
    """Test that eps = 0 gives no noise token (sampler) and G_F[noise, q] = -1/V (engine)."""
    model = noisy_recall_model(4, 12, 0.0)
    z, _ = sample_model_e(model, 200, make_generator(0))
    assert int(z.max()) < 4
    g = nr.token_gradients(model)
    assert abs(g.G_F[4, 0] + 1 / 5) < 1e-12
    assert abs(g.pi_I.sum() - 1) < 1e-12


def test_gradient_rows_sum_to_zero():
    """Test the invariant sum_k G[k, j] = 0 (the softmax residual sums to zero) for both gradients."""
    g = nr.token_gradients(noisy_recall_model(6, 20, 0.3, q=3))
    assert np.abs(g.G_F.sum(0)).max() < 1e-14 and np.abs(g.G_O.sum(0)).max() < 1e-14


def test_model_validation():
    """Test that bad model E parameters raise PopgradError naming them."""
    with pytest.raises(PopgradError, match="eps"):
        noisy_recall_model(4, 8, 1.0)
    with pytest.raises(PopgradError, match="q"):
        noisy_recall_model(4, 8, 0.2, q=4)
    with pytest.raises(PopgradError, match="max_rows"):
        noisy_recall_model(8, 12, 0.2).enumerate()


def test_readouts_from_stats():
    """Test the empirical readouts on hand-made statistics: noise count wins; R_1 with perfect bumps is 1."""
    st = PairStats(np.array([1.0, 2.0, 0.0, 3.0]), np.zeros((4, 4)))
    assert ff_maps_q_to_noise(st)
    st.n[1] = 3.0
    assert not ff_maps_q_to_noise(st)                              # a tie is a miss
    S = np.eye(4)[:, :] * 2.0 + 1.0
    st2 = PairStats(np.array([2.0, 2.0, 2.0, 1.0]), S)
    assert r1_noisy(st2) == 1.0
    assert n_grid(10) == [1, 2, 3, 4, 6, 8, 10]


def test_add_pairs_counts_in_context_positions():
    """Test that add_pairs counts one pair per in-context trigger position (hand-made sequence)."""
    z = torch.tensor([[0, 1, 2, 0, 3, 0, 1]])                      # q = 0 at 0, 3, 5: in-context 3 and 5
    st = add_pairs(PairStats.empty(4), z, 0)
    assert st.pairs == 2 and st.n[3] == 1 and st.n[1] == 1
    assert np.allclose(st.S[3], np.array([2, 1, 1, 0]) / 4)


@pytest.mark.parametrize("argv, word", [(["noisy", "--eps", "1.5"], "eps"), (["noisy", "--Ns", "1"], "N"),
                                        (["noisy", "--part", "truncation", "--train-eps", "1"], "train-eps")])
def test_cli_bad_arguments_exit_2(argv, word, capsys):
    """Test that bad arguments exit 2 with one line naming them."""
    assert main(argv) == 2
    assert word in capsys.readouterr().err


def test_cli_rates_small(capsys):
    """Test a small rates run prints the table and the exponents."""
    assert main(["noisy", "--Ns", "4,8", "--eps", "0.5", "--T", "32", "--seeds", "2", "--max-n", "64",
                 "--resamples", "50"]) == 0
    out = capsys.readouterr().out
    assert "n_wo2_median" in out and "Exponents in N" in out


def test_training_config_accepts_model_e_and_streams_batches():
    """Test that TrainConfig(data='E') builds model E with V = N + 1 embeddings and in-context masks at triggers."""
    from popgrad.numerics import training as trn

    cfg = trn.TrainConfig(data="E", N=5, T=16, eps=0.5, d=8, batch=4, steps=2, probe_every=1, loss="all", W_F=True,
                          device="cpu", cutoff=16)
    run = trn.setup(cfg)
    assert run.emb.N == 6 and run.model.noise == 5
    z, mask, tgt = next(trn.BatchStream(run.model, run.cfg, torch.device("cpu"), seed=0))
    assert z.shape == (4, 16) and bool((z[mask] == 0).all())
    with pytest.raises(PopgradError, match="eps"):
        trn.TrainConfig(data="E", N=5, T=16, eps=1.5, cutoff=16).validated()
