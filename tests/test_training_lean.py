"""Test the lean training step against the paper-structure module (float64, 1e-12) and its buffers."""

import resource

import pytest
import torch

from popgrad.numerics import lean_step as ls
from popgrad.numerics import paper_model as pm
from popgrad.numerics import training as trn

CASES = [("C", "in-context", False, ()), ("C", "all", True, ()), ("C", "in-context", False, (("W_K1", 99),)),
         ("C", "in-context", False, (("W_K2", 99), ("W_O2", 99))), ("C", "all", True, (("W_F", 99), ("W_K2", 99))),
         ("D", "in-context", False, ())]


def _case(data, loss, W_F, freeze, T=64, d=16, batch=20, seed=0):
    extra = dict(N=12) if data == "D" else dict(K=3)
    cfg = trn.TrainConfig(data=data, T=T, d=d, batch=batch, steps=1, probe_every=1, embed="code", scale="sqrt",
                          dtype="float64", device="cpu", loss=loss, W_F=W_F, freeze=freeze, cutoff=8, seed=seed, **extra)
    run = trn.setup(cfg)
    trn.apply_schedule(run, 0)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():                                   # random non-zero weights, away from init
        for v in run.params.values():
            v.copy_(torch.randn(v.shape, generator=gen, dtype=v.dtype) * 0.5)
    z, mask, tgt = next(trn.BatchStream(run.model, run.cfg, "cpu", seed=seed))
    return run, z, mask, tgt


@pytest.mark.parametrize("data, loss, W_F, freeze", CASES)
def test_lean_step_equals_paper_structure(data, loss, W_F, freeze):
    """Test that the lean step's loss and gradients equal autograd of the paper-structure module (float64)."""
    run, z, mask, tgt = _case(data, loss, W_F, freeze)
    keep = None if loss == "in-context" else mask | trn.other_mask(mask, data)
    out = ls.lean_step(run.tab, z, mask, tgt, run.params, "sqrt", ls.Workspace(), keep=keep)
    model = pm.from_embeddings(run.emb, {k: v.detach() for k, v in run.params.items()})
    for k, p in model.trained().items():
        p.requires_grad_(run.params[k].requires_grad)
    ref = pm.paper_loss(model, z, mask if keep is None else keep, tgt)
    ref.backward()
    ref = float(ref.detach())
    assert abs(float(out["loss"]) / out["n_loss"] - ref) <= 1e-12 * abs(ref)
    for k, p in model.trained().items():
        if p.grad is None:
            assert k not in out["grads"]
        else:
            assert float((out["grads"][k] - p.grad).abs().max()) <= 1e-12 * float(p.grad.abs().max())
    assert len(out["grads"]) == sum(p.requires_grad for p in run.params.values())


def test_lean_step_counts_against_loop():
    """Test that hits and the in-context loss sum equal a per-sequence loop over the full forward."""
    run, z, mask, tgt = _case("C", "in-context", False, ())
    out = ls.lean_step(run.tab, z, mask, tgt, run.params, "sqrt", ls.Workspace())
    model = pm.from_embeddings(run.emb, {k: v.detach() for k, v in run.params.items()})
    hits, total = 0, 0.0
    with torch.no_grad():
        for b in range(z.shape[0]):
            lg = model(z[b:b + 1])[0]
            for t in range(z.shape[1]):
                if mask[b, t]:
                    hits += int(lg[t].argmax() == tgt[b, t])
                    total += float(torch.nn.functional.cross_entropy(lg[t:t + 1], tgt[b, t:t + 1]))
    assert int(out["hits"]) == hits and out["n"] == int(mask.sum())
    assert abs(float(out["ctx_sum"]) - total) <= 1e-10 * total


def test_query_groups_cover_every_in_context_position():
    """Test that the layer-2 groups hold each in-context position once, padded rows flagged invalid."""
    gen = torch.Generator().manual_seed(3)
    mask = torch.rand(37, 50, generator=gen) < torch.rand(37, 1, generator=gen) ** 3
    mask[5] = False
    seen = set()
    for rows, pos, valid in ls.query_groups(mask, rows=4):
        m = pos.shape[1]
        assert m == int(mask[rows].sum(1).max())
        for i, r in enumerate(rows.tolist()):
            got = [int(p) for p, v in zip(pos[i], valid[i]) if v]
            assert got == torch.nonzero(mask[r]).flatten().tolist()
            assert all(0 <= p < mask.shape[1] for p in pos[i].tolist())
            seen.update((r, p) for p in got)
    assert seen == {(int(b), int(t)) for b, t in torch.nonzero(mask)}


def test_lean_step_reuses_its_buffers():
    """Test that after warm-up a step allocates no new workspace buffers and few pages (float32, batch 64)."""
    run, z, mask, tgt = _case("C", "in-context", False, (), T=128, d=32, batch=64)
    run = trn.setup(trn.TrainConfig(**{**vars(run.cfg), "dtype": "float32"}))
    ws = ls.Workspace()
    for _ in range(2):
        ls.lean_step(run.tab, z, mask, tgt, run.params, "sqrt", ws)
    ids = {k: v.data_ptr() for k, v in ws.flat.items()}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        ls.lean_step(run.tab, z, mask, tgt, run.params, "sqrt", ws)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert {k: v.data_ptr() for k, v in ws.flat.items()} == ids
    big = 64 * 128 * 128 * 4 // 4096                       # pages of one (B, T, T) float32 buffer
    assert faults < big, f"{faults} page faults in 3 steps"
