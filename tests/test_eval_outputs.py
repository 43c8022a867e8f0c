"""Test `popgrad train --eval-outputs` (Figure 4 center: in-context accuracy on another output distribution)."""

import json

import numpy as np
import pytest
import torch

from popgrad.cli import main
from popgrad.numerics import paper_model as pm
from popgrad.numerics import samplers
from popgrad.numerics import training as trn

TINY = ["train", "--T", "32", "--d", "16", "--batch", "8", "--steps", "4", "--probe-every", "2", "--device", "cpu",
        "--cutoff", "4", "--K", "3", "--threads", "1"]


def tiny(**over):
    return trn.TrainConfig(**{**dict(T=32, d=16, batch=8, steps=4, probe_every=2, device="cpu", cutoff=4, K=3,
                                     embed="code", scale="sqrt"), **over})


def test_eval_outputs_column_in_json_and_csv(tmp_path, capsys):
    """Test that --eval-outputs adds acc_eval (mean ± SE over seeds) to every probe row of --json and --csv."""
    csv = tmp_path / "c.csv"
    assert main(TINY + ["--eval-outputs", "bigram", "--seeds", "2", "--json", "--csv", str(csv)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in out["rows"]] == [0, 2, 4]
    assert all(0 <= r["acc_eval"] <= 1 and "acc_eval_se" in r for r in out["rows"])
    assert "acc_eval" in csv.read_text().splitlines()[0]
    assert out["configs"]["custom"][0]["eval_outputs"] == "bigram"


def test_eval_outputs_needs_model_c(capsys):
    """Test that --eval-outputs with model D is refused with one line and exit status 2."""
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(["train", "--data", "D", "--N", "6", "--T", "7", "--d", "8", "--batch", "4", "--steps", "2",
                               "--probe-every", "1", "--cutoff", "4", "--device", "cpu", "--eval-outputs", "uniform"]))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--eval-outputs" in err


def test_eval_accuracy_matches_paper_structure_forward():
    """Test that acc_eval at a probe step equals the accuracy, at the in-context tokens of the same
    fresh eval batch, of the paper-structure model (numerics.paper_model) with the same weights."""
    cfg = tiny(eval_outputs="bigram", dtype="float64").validated()
    run = trn.setup(cfg)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for v in run.params.values():
            v.copy_(torch.randn(v.shape, generator=gen, dtype=v.dtype))
    got = trn.eval_accuracy(run, step=3)
    # the same batch, drawn by the sampler directly from a model built with outputs='bigram'
    model = trn.build_data_model(tiny(outputs="bigram"))
    z, q, _ = samplers.sample_model_c(samplers.model_c_sampler(model, "cpu"), cfg.batch,
                                      samplers.make_generator(trn.EVAL_SEED * 4 + cfg.seed, "cpu"))
    z = z.long()
    mask = trn.in_context_mask(z, q)
    ref = pm.from_embeddings(run.emb, {k: v.detach() for k, v in run.params.items()})
    with torch.no_grad():
        pred = ref(z).argmax(-1)
    hits = int((pred[:, :-1] == z[:, 1:])[mask[:, :-1]].sum())
    assert got["n_eval"] == int(mask.sum()) > 0
    assert got["acc_eval"] == pytest.approx(hits / int(mask.sum()), abs=1e-12)


def test_eval_model_swaps_only_the_outputs():
    """Test that the eval model keeps N, T, K, pi_b and the triggers and replaces pi_o by pi_b (or uniform)."""
    for trig in ("random", "frequent"):
        a = trn.build_data_model(tiny(triggers=trig))
        b = trn.eval_model(tiny(triggers=trig, eval_outputs="bigram"))
        assert (a.N, a.T, a.K, a.triggers) == (b.N, b.T, b.K, b.triggers)
        assert np.array_equal(a.pi_b, b.pi_b) and np.allclose(a.pi_o, 1.0 / a.N) and np.array_equal(b.pi_o, b.pi_b)
