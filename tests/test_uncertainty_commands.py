"""Test that the commands' own ± aggregations equal scipy (the claim layer may not import the commands):
`popgrad train` (mean ± se over seeds, one-seed binomial), `popgrad dynamics` (_se, _pooled_se) and the
theorem3 table's mc_stderr over its Monte-Carlo groups."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from popgrad.commands import dynamics as dyn_cmd
from popgrad.commands import theorem3 as t3_cmd
from popgrad.commands.train import aggregate
from popgrad.embeddings import make_embeddings
from popgrad.memory import eq7_targets


@pytest.mark.parametrize("n", [2, 3, 7])
def test_train_aggregate_is_mean_and_sem_over_seeds(n):
    """Test that `popgrad train`'s rows are the mean and scipy.stats.sem (ddof = 1) of the per-seed values."""
    rng = np.random.default_rng(n)
    v = rng.random(n)
    runs = [{"rows": [{"step": 0, "n_in_context": 10, "acc_in_context": x, "acc_in_context_se": 0.0,
                       "recall_W_K1": x, "n_recall_W_K1": 5, "loss_other": 2 * x}]} for x in v]
    agg = aggregate("x", runs)[0]
    for k, vals in (("acc_in_context", v), ("recall_W_K1", v), ("loss_other", 2 * v)):
        assert agg[k] == pytest.approx(vals.mean(), rel=1e-12)
        assert agg[k + "_se"] == pytest.approx(stats.sem(vals), rel=1e-12)


def test_train_aggregate_one_seed_is_binomial():
    """Test that with one seed the accuracy se is passed through and the recall se is binomial over associations."""
    row = {"step": 0, "n_in_context": 311, "acc_in_context": 0.62, "acc_in_context_se": 0.0275, "recall_W_O2": 0.4,
           "n_recall_W_O2": 65}
    agg = aggregate("x", [{"rows": [row]}])[0]
    assert agg["acc_in_context_se"] == 0.0275
    assert agg["recall_W_O2_se"] == pytest.approx(stats.binom(65, 0.4).std() / 65, rel=1e-12)


@pytest.mark.parametrize("n", [2, 3, 7])
def test_dynamics_command_se_is_sem(n):
    """Test that `popgrad dynamics`' steps_se and accuracy se over seeds equal scipy.stats.sem."""
    v = list(np.random.default_rng(10 + n).integers(1, 500, size=n).astype(float))
    assert dyn_cmd._se(v) == pytest.approx(stats.sem(v), rel=1e-12)
    assert dyn_cmd._pooled_se([{"accuracy": x, "accuracy_se": 0.0} for x in v]) == pytest.approx(stats.sem(v), rel=1e-12)
    assert dyn_cmd._pooled_se([{"accuracy": 0.5, "accuracy_se": 0.031}]) == 0.031


def test_theorem3_mc_stderr_is_sem_over_groups():
    """Test that the theorem3 table's mc_stderr is scipy.stats.sem of the group values: groups c_g W0 make every
    (linear) score c_g q(W0), so mc = mean(c) q(W0) and mc_stderr = |q(W0)| sem(c); q(W0) by a loop."""
    d, N, T, G = 10, 5, 7, t3_cmd.GROUPS
    emb = make_embeddings(d, N, T, seed=2, dtype="float64")
    gen = torch.Generator().manual_seed(3)
    c = torch.rand(G, generator=gen, dtype=torch.float64) + 0.5
    base = {k: torch.randn(d, d, generator=gen, dtype=torch.float64) for k in ("W_O2", "W_K2", "W_K1")}
    rows, _ = t3_cmd.step_rows(emb, None, {k: c[:, None, None] * W for k, W in base.items()}, 1.0)
    tg = eq7_targets(emb)
    checked = 0
    for r in rows:
        if r["quantity"] != "target score":
            continue
        name = next(k for k, lab in t3_cmd.STEP_LABEL.items() if lab == r["step"])
        U, V, t = tg[name]
        q0 = float(np.mean([float(V[:, int(tt)] @ base[name] @ U[:, i]) for i, tt in enumerate(t)]))
        assert r["mc"] == pytest.approx(q0 * float(c.mean()), rel=1e-10)
        assert r["mc_stderr"] == pytest.approx(abs(q0) * stats.sem(c.numpy()), rel=1e-10)
        checked += 1
    assert checked == 3 and math.isfinite(rows[0]["mc_stderr"])
