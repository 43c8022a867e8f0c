"""Test `popgrad train`, the training loop and the shared model (software behaviour, not paper claims)."""

import json

import pytest
import torch

from popgrad.cli import main
from popgrad.errors import PopgradError
from popgrad.numerics import training as trn
from popgrad.numerics import transformer as tr

TINY = ["train", "--T", "16", "--d", "16", "--batch", "4", "--steps", "4", "--probe-every", "2", "--device", "cpu",
        "--cutoff", "4"]


def tiny(**over):
    return trn.TrainConfig(**{**dict(T=16, d=16, batch=4, steps=4, probe_every=2, device="cpu", cutoff=4), **over})


def test_train_markdown_json_csv_plot(tmp_path, capsys):
    """Test that the command prints the probe table, and --json, --csv and --plot write the curves."""
    assert main(TINY) == 0
    text = capsys.readouterr().out
    assert "| run | step | acc_in_context" in text and "recall_W_O2" in text
    csv, png = tmp_path / "c.csv", tmp_path / "p.png"
    assert main(TINY + ["--seeds", "2", "--json", "--csv", str(csv), "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in out["rows"]] == [0, 2, 4]
    assert all(r["seeds"] == 2 and "recall_W_O2_se" in r for r in out["rows"])
    assert csv.read_text().startswith("run,step,seeds,n_in_context,acc_in_context,acc_in_context_se")
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("argv, needle", [
    (["--steps", "0"], "--steps"),
    (["--freeze", "W_Q:3"], "cannot freeze"),
    (["--freeze", "W_K1:x"], "NAME[:STEP]"),
    (["--batch", "100000000"], "GiB"),
    (["--data", "D"], "model D needs"),
    (["--device", "tpu"], "device"),
    (["--plot", "/no/such/dir/x.png"], "no such directory"),
])
def test_train_bad_input_one_line_exit_2(argv, needle, capsys):
    """Test that bad input gives one line on stderr and exit status 2, before any training."""
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(TINY + argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err


def test_ctrl_c_keeps_curves(monkeypatch, capsys):
    """Test that Ctrl-C during training still prints the curves collected so far (exit 130)."""
    from popgrad.numerics import probes

    calls = {"n": 0}
    orig = probes.probe_row

    def interrupting(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return orig(*a, **k)
    monkeypatch.setattr(probes, "probe_row", interrupting)
    assert main(TINY + ["--json"]) == 130
    out = json.loads(capsys.readouterr().out)
    assert out["interrupted"] is True and [r["step"] for r in out["rows"]] == [0]


def test_freezing_keeps_matrices_fixed():
    """Test that a matrix frozen until step s does not move (no decay either) before s, and moves after."""
    res = trn.train(tiny(freeze=(("W_K1", 10), ("W_O2", 2)), steps=4))
    run = trn.setup(tiny())
    assert torch.equal(res["params"]["W_K1"], run.params["W_K1"].detach())
    assert not torch.equal(res["params"]["W_O2"], run.params["W_O2"].detach())
    assert not torch.equal(res["params"]["W_K2"], run.params["W_K2"].detach())


def test_seed_determinism_and_float64():
    """Test that a seed fixes the run, and float64 follows float32 closely over a few steps."""
    a, b = trn.train(tiny(seed=3)), trn.train(tiny(seed=3))
    assert a["rows"] == b["rows"]
    c = trn.train(tiny(seed=3, dtype="float64"))
    assert c["params"]["W_O2"].dtype == torch.float64
    assert torch.allclose(c["params"]["W_O2"].float(), a["params"]["W_O2"], rtol=1e-3, atol=1e-4)


def test_in_context_loss_matches_full_forward():
    """Test that the query-restricted in-context loss equals the masked loss of the full forward."""
    run = trn.setup(tiny(T=32, batch=16, dtype="float64"))
    z, mask, tgt = next(trn.BatchStream(run.model, run.cfg, torch.device("cpu"), seed=0))
    loss = trn.step_loss(run, z, mask, tgt)[0]
    full = tr.logits(run.tab, z, run.params, run.cfg.scale)
    ref = torch.nn.functional.cross_entropy(full[mask], tgt[mask])
    assert float(abs(loss - ref).detach()) < 1e-12


def test_model_d_and_w_f_paths():
    """Test that model D training and the W_F / KL probe run and report finite probes."""
    rows = trn.train(trn.TrainConfig(data="D", N=8, T=8, d=16, batch=8, steps=2, probe_every=1, device="cpu",
                                     cutoff=4))["rows"]
    assert rows[-1]["n_in_context"] == 8
    rows = trn.train(tiny(W_F=True, loss="all"))["rows"]
    assert all(r["kl_W_F"] > 0 for r in rows)


def test_presets_validate_and_shrink_on_cpu():
    """Test that every preset is a valid config and that the CPU shrinking scales the freezing step."""
    for name in trn.PRESETS:
        cfg = trn.preset_config(name, device="cpu")
        assert cfg.batch == 512 and cfg.eta in (0.05, 0.2, 1.0, 5.0)
    from popgrad.commands.train import configs
    from popgrad.cli import build_parser

    args = build_parser().parse_args(["train", "--preset", "fig3-wo2-first", "--device", "cpu"])
    groups, notes = configs(args)
    cfg = groups[0][1][0]
    assert cfg.batch < 512 and dict(cfg.freeze)["W_K1"] < 300 and "shrunk" in notes[0]


def test_query_positions_pack_the_mask():
    """Test that query_positions lists exactly the true positions of each row, in order."""
    mask = torch.tensor([[0, 1, 0, 1], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    pos, valid = tr.query_positions(mask)
    assert valid.sum(1).tolist() == [2, 0, 3]
    assert pos[0, :2].tolist() == [1, 3] and pos[2].tolist() == [0, 1, 2]
    with pytest.raises(PopgradError):
        tr.logit_scale(4, "cube")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_matches_cpu_in_float64():
    """Test that a float64 run on CUDA follows the same run on the CPU (same seed, same data stream up to device)."""
    cpu = trn.setup(tiny(dtype="float64"))
    gpu = trn.setup(tiny(dtype="float64", device="cuda"))
    z, mask, tgt = next(trn.BatchStream(cpu.model, cpu.cfg, torch.device("cpu"), seed=0))
    a = trn.step_loss(cpu, z, mask, tgt)[0]
    b = trn.step_loss(gpu, z.cuda(), mask.cuda(), tgt.cuda())[0]
    assert abs(float(a.detach()) - float(b.detach().cpu())) < 1e-10
    rows = trn.train(tiny(device="cuda"))["rows"]
    assert rows[-1]["step"] == 4


def test_maps_reading_and_full_estimate(tmp_path, capsys):
    """Test --maps (Figure 7 + 2 views), --reading, and that --full prints a time estimate before training."""
    png, maps = tmp_path / "c.png", tmp_path / "m.png"
    argv = ["train", "--preset", "fig3", "--full", "--batch", "2", "--T", "16", "--d", "8", "--steps", "2",
            "--probe-every", "1", "--cutoff", "4", "--device", "cpu", "--threads", "1", "--json"]
    assert main(argv + ["--plot", str(png), "--maps", str(maps), "--reading", "eq9"]) == 0
    captured = capsys.readouterr()
    assert "estimated time" in captured.err
    rows = json.loads(captured.out)["rows"]
    assert all(k in rows[-1] for k in ("code_W_K2", "code_W_K1", "code_W_K1_early", "recall_W_K2"))
    assert png.stat().st_size > 1000 and maps.stat().st_size > 1000
