"""Test the full model of App. E (software behaviour: probes, CLI, presets), not paper claims."""

import json

import pytest
import torch

from popgrad.cli import main
from popgrad.numerics import full_model as fm
from popgrad.numerics import probes
from popgrad.numerics import training as trn
from popgrad.numerics.full_model_plots import head_summary

TINY = ["train", "--T", "16", "--d", "16", "--batch", "4", "--steps", "2", "--probe-every", "1", "--device", "cpu",
        "--cutoff", "4"]


def test_attention_probe_counts_equal_loops():
    """Test that the per-head previous-token and induction counts equal Python loops over positions."""
    gen = torch.Generator().manual_seed(0)
    B, H, T = 3, 2, 9
    A = torch.softmax(torch.randn(B, H, T, T, generator=gen).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), -1e9), -1)
    z = torch.randint(3, (B, T), generator=gen)
    mask = torch.rand(B, T, generator=gen) < 0.5
    prev = [sum(int(A[b, h, t].argmax()) == t - 1 for b in range(B) for t in range(1, T)) for h in range(H)]
    ind = [sum(bool(mask[b, t]) and (lambda s: 1 <= s <= t and int(z[b, s - 1]) == int(z[b, t]))(int(A[b, h, t].argmax()))
               for b in range(B) for t in range(T)) for h in range(H)]
    assert fm.previous_token_hits(A).tolist() == prev
    assert fm.induction_hits(A, z, mask).tolist() == ind
    assert fm.top_share([3, 1, 0, 0]) == 0.75


def test_full_probes_with_one_identity_head_equal_simplified_probes():
    """Test that with H = 1, W_Q = I and code-scaled frozen embeddings, the full model's recall probes are the
    simplified model's (recall (9) is invariant to the positive rescalings of the code scaling)."""
    cfg = trn.TrainConfig(T=16, d=16, batch=4, steps=1, probe_every=1, device="cpu", cutoff=4, dtype="float64",
                          embed="code", scale="sqrt")
    simple = trn.setup(cfg)
    full = trn.setup(trn.TrainConfig(**{**vars(cfg), "model": "full", "mlp": "none", "norm": "none"}))
    p = {k: v.detach().clone() for k, v in full.params.items()}
    p["W_Q1"], p["W_Q2"] = torch.eye(16, dtype=torch.float64), torch.eye(16, dtype=torch.float64)
    for k in ("W_K1", "W_K2", "W_O2"):
        p[k] = simple.params[k].detach()
    mine = fm.full_recall_probes(p, 1, 4)
    emb64 = simple.emb.to(dtype="float64")
    theirs = {**probes.recall_probes(emb64, {k: v.detach() for k, v in simple.params.items()}, 4),
              **probes.code_probes(emb64, {k: v.detach() for k, v in simple.params.items()}, 4)}
    for k in ("recall_W_O2", "recall_W_K2", "recall_W_K1", "recall_W_K1_early", "recall_W_K1_late", "code_W_K2",
              "code_W_K1", "code_W_K1_early"):
        assert mine[k] == pytest.approx(theirs[k], abs=1e-12), k


def test_full_model_cli_fig11_table_plot_maps(tmp_path, capsys):
    """Test that `popgrad train --preset fig11` at a tiny size prints the curves and the per-head table, and
    writes the Figure 10-style curves and the Figure 11 maps."""
    png, maps = tmp_path / "c.png", tmp_path / "m.png"
    assert main(TINY + ["--preset", "fig11", "--plot", str(png), "--maps", str(maps), "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "prev_h3" in out and "per-head attention at the last probe" in out and "induction h3" in out
    assert png.stat().st_size > 1000 and maps.stat().st_size > 1000


def test_full_model_json_rows_and_frozen_embeddings(capsys):
    """Test that --json rows carry the full model's probes and --frozen-embed keeps E, P, U fixed."""
    assert main(TINY + ["--model", "full", "--mlp", "both", "--norm", "post", "--frozen-embed", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["step"] for r in rows] == [0, 1, 2] and all("code_W_K1" in r for r in rows)
    res = trn.train(trn.TrainConfig(T=16, d=16, batch=4, steps=2, probe_every=1, device="cpu", cutoff=4, model="full",
                                    train_embed=False))
    run = trn.setup(trn.TrainConfig(T=16, d=16, batch=4, steps=2, probe_every=1, device="cpu", cutoff=4, model="full"))
    for k in fm.EMBED_NAMES:
        assert torch.equal(res["params"][k], run.params[k].detach())
    assert not torch.equal(res["params"]["W_Q1"], run.params["W_Q1"].detach())


def test_head_summary():
    """Test the per-seed head summary: previous-token head, its share, induction heads above the spread threshold."""
    row = {"prev_h0": 0.1, "prev_h1": 0.9, "induction_h0": 0.5, "induction_h1": 0.5}
    s = head_summary(row, 2)
    assert s["prev_head"] == 1 and s["prev_share"] == pytest.approx(0.9) and s["induction_heads"] == 2


@pytest.mark.parametrize("argv, needle", [
    (["--model", "full", "--heads", "3"], "heads must divide"),
    (["--model", "full", "--W-F"], "--W-F"),
])
def test_full_model_bad_input_exit_2(argv, needle, capsys):
    """Test that impossible full-model options exit 2 with one line naming them."""
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(TINY + argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err
