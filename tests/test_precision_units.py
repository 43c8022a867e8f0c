"""Training precision: resolution of --precision, the autocast step against the lean step, bfloat16 numerics."""

import pytest
import torch

from popgrad.errors import PopgradError
from popgrad.numerics import training as trn

SMALL = dict(T=24, d=12, batch=6, K=3, steps=1, probe_every=1, cutoff=8, device="cpu")


def _batch(run, seed=3):
    return next(trn.BatchStream(run.model, run.cfg, "cpu", seed=seed))


@pytest.mark.parametrize("loss,W_F", [("in-context", False), ("all", True)])
def test_autocast_step_without_autocast_equals_lean_step(loss, W_F):
    """Test that the autograd step behind --precision bfloat16, run in float64 with autocast off,
    gives the lean step's loss, counts and gradients (the glue of the two paths)."""
    run = trn.setup(trn.TrainConfig(**SMALL, loss=loss, W_F=W_F, dtype="float64"))
    assert not run.precision.autocast
    z, mask, tgt = _batch(run)
    lean = trn.sgd_step(run, z, mask, tgt, True)
    auto = trn.autocast_step(run, z, mask, tgt)
    for key in ("n_loss", "hits", "n"):
        assert int(lean[key]) == int(auto[key]), key
    assert abs(float(lean["loss"]) - float(auto["loss"])) <= 1e-10 * abs(float(lean["loss"]))
    assert abs(float(lean["ctx_sum"]) - float(auto["ctx_sum"])) <= 1e-10 * abs(float(lean["ctx_sum"]))
    assert set(lean["grads"]) == set(auto["grads"]) == set(run.params)
    for name, g in lean["grads"].items():
        err = float((g - auto["grads"][name]).norm() / g.norm())
        assert err <= 1e-10, (name, err)


def test_bfloat16_step_is_a_rounding_of_the_float32_step():
    """Test that the bfloat16 autocast step keeps float32 master weights and gradients, and that its
    loss and gradients differ from float32's by a bfloat16 rounding (relative 1e-4 < error < 5e-2)."""
    f32 = trn.setup(trn.TrainConfig(**SMALL, embed="code", scale="sqrt"))
    b16 = trn.setup(trn.TrainConfig(**SMALL, embed="code", scale="sqrt", precision="bfloat16"))
    assert b16.cfg.precision == "bfloat16" and b16.precision.autocast
    z, mask, tgt = _batch(f32)
    ref, out = trn.sgd_step(f32, z, mask, tgt, False), trn.sgd_step(b16, z, mask, tgt, False)
    assert all(p.dtype == torch.float32 for p in b16.params.values())
    rel_loss = abs(out["loss"] - float(ref["loss"])) / abs(float(ref["loss"]))
    assert rel_loss < 5e-2
    errs = []
    for name, g in ref["grads"].items():
        assert out["grads"][name].dtype == torch.float32
        errs.append(float((g - out["grads"][name]).norm() / g.norm()))
    assert 1e-4 < max(errs) < 5e-2, errs          # really rounded, and only by a rounding


def test_precision_arguments_are_checked():
    """Test that a bad --precision, or bfloat16 with float64 master weights, is refused by name."""
    with pytest.raises(PopgradError, match="precision"):
        trn.TrainConfig(**SMALL, precision="half").validated()
    with pytest.raises(PopgradError, match="--precision bfloat16 needs --dtype float32"):
        trn.TrainConfig(**SMALL, precision="bfloat16", dtype="float64").validated()
    run = trn.setup(trn.TrainConfig(**SMALL, precision="auto", dtype="float64"))
    assert run.cfg.precision == "float64" and not run.precision.autocast


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bfloat16_step_on_cuda():
    """Test that the bfloat16 step runs on CUDA and rounds the float32 step there too."""
    cfg = dict(SMALL, device="cuda", embed="code", scale="sqrt")
    f32, b16 = trn.setup(trn.TrainConfig(**cfg)), trn.setup(trn.TrainConfig(**cfg, precision="bfloat16"))
    z, mask, tgt = next(trn.BatchStream(f32.model, f32.cfg, f32.tab.E.device, seed=3))
    ref, out = trn.sgd_step(f32, z, mask, tgt, False), trn.sgd_step(b16, z, mask, tgt, False)
    for name, g in ref["grads"].items():
        assert float((g - out["grads"][name]).norm() / g.norm()) < 5e-2
