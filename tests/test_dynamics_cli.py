"""Test the `popgrad dynamics` command and the schedule / summary helpers (software behaviour)."""

import json
import os
import subprocess
import sys

import pytest

from popgrad.cli import main
from popgrad.commands import dynamics as cmd
from popgrad.numerics import dynamics as dy

SMALL = ["dynamics", "--N", "5", "--T", "5", "--d", "16", "--k", "2", "--n", "64", "--n-eval", "64",
         "--seeds", "2", "--etas", "5:20:20"]


def test_schedules_give_k_rounds_steps_per_layer():
    """Test that every schedule takes k * rounds steps on each layer, top-down within a round."""
    for kind in dy.SCHEDULES:
        plan = dy.schedule(kind, 3, 2)
        for name in dy.LAYERS:
            assert sum(name in names for _, names in plan) == 6
    cons = [names[0] for _, names in dy.schedule("consecutive", 2, 1)]
    assert cons == ["W_O2", "W_O2", "W_K2", "W_K2", "W_K1", "W_K1"]
    alt = [names[0] for _, names in dy.schedule("alternating", 2, 1)]
    assert alt == ["W_O2", "W_K2", "W_K1", "W_O2", "W_K2", "W_K1"]


def test_json_has_curves_summary_and_standard_errors(capsys):
    """Test that --json carries one row per step and seed, and a summary per schedule and threshold."""
    assert main(SMALL + ["--schedule", "alternating", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows, summary = out["rows"], out["summary"]
    assert len(rows) == 2 * (6 + 1)
    assert {r["seed"] for r in rows} == {0, 1}
    for r in rows:
        assert 0 <= r["accuracy"] <= 1 and r["accuracy_se"] >= 0 and r["n_eval"] == 64
        assert all(0 <= r[f"recall_{k}"] <= 1 for k in dy.LAYERS)
    assert [s["threshold"] for s in summary] == [0.5, 0.9]
    assert out["interrupted"] is False


def test_markdown_csv_and_plot(tmp_path, capsys):
    """Test the markdown tables (summary and curves), --csv with every step, and --plot."""
    csv, png = tmp_path / "dyn.csv", tmp_path / "dyn.png"
    assert main(SMALL + ["--schedule", "all", "--seeds", "1", "--csv", str(csv), "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "steps to reach accuracy" in text and "| consecutive |" in text and "| joint |" in text
    lines = csv.read_text().splitlines()
    assert lines[0].startswith("etas,schedule,seed,step")
    assert len(lines) == 1 + 7 + 7 + 3          # joint updates the three layers in one step
    assert png.stat().st_size > 0


def test_summary_counts_seeds_that_reach():
    """Test the summary: first step at which accuracy >= threshold, mean and se over seeds that reach it."""
    def row(seed, step, acc):
        return {"etas": "1:1:1", "schedule": "joint", "seed": seed, "step": step, "accuracy": acc,
                "accuracy_se": 0.01, "n_eval": 100, "steps_W_O2": step, "steps_W_K2": step, "steps_W_K1": step}
    rows = [row(0, 0, 0.1), row(0, 1, 0.6), row(0, 2, 0.95), row(1, 0, 0.1), row(1, 1, 0.2), row(1, 2, 0.7)]
    s = {r["threshold"]: r for r in cmd.summarize(rows, [0.5, 0.9])}
    assert s[0.5]["reached"] == 2 and s[0.5]["steps_mean"] == 1.5 and s[0.5]["steps_se"] == pytest.approx(0.5)
    assert s[0.9]["reached"] == 1 and s[0.9]["steps_mean"] == 2 and s[0.9]["steps_se"] is None
    assert s[0.9]["final_accuracy"] == pytest.approx(0.825)


@pytest.mark.parametrize("bad", [["--N", "1"], ["--T", "2"], ["--k", "0"], ["--etas", "1:2"], ["--etas", "-1"],
                                 ["--thresholds", "1.5"], ["--n", "100000000000"], ["--phat", "true"],
                                 ["--population", "enumerated"], ["--csv", "/no/such/dir/x.csv"],
                                 ["--loss", "b3", "--dtype", "float32"]])
def test_bad_arguments_exit_2(bad, capsys):
    """Test that bad arguments (and a refused memory estimate) exit 2 with one line, before computing."""
    try:
        code = main(["dynamics", *bad])
    except SystemExit as exc:           # argparse errors
        code = exc.code
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0]


def test_bad_argument_from_the_shell_is_one_line():
    """Test the installed entry point: a bad argument gives one stderr line and exit status 2, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "popgrad", "dynamics", "--n", "100000000000"], capture_output=True,
                          text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "GiB" in proc.stderr


def test_ctrl_c_keeps_rows(tmp_path, capsys, monkeypatch):
    """Test that Ctrl-C (KeyboardInterrupt) mid-run prints and writes the rows collected so far, exit 130."""
    calls = {"n": 0}
    real = dy.accuracy

    def interrupted_accuracy(*a, **kw):          # Ctrl-C arrives during the 5th evaluation
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(dy, "accuracy", interrupted_accuracy)
    csv = tmp_path / "part.csv"
    assert main(SMALL + ["--schedule", "joint", "--k", "50", "--csv", str(csv)]) == 130
    captured = capsys.readouterr()
    assert "INTERRUPTED" in captured.out and "interrupted" in captured.err
    assert len(csv.read_text().splitlines()) == 1 + 4


def test_b3_loss_uses_engine_for_first_steps(capsys):
    """Test --loss b3 on the enumerated model D: the first step of each layer is the engine's (cosine 1)."""
    assert main(["dynamics", "--N", "3", "--T", "4", "--d", "8", "--k", "2", "--seeds", "1", "--loss", "b3",
                 "--population", "enumerated", "--schedule", "consecutive", "--n-eval", "32", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    firsts = [r for r in rows if r["cos_engine"] is not None]
    assert [r["layer"] for r in firsts] == ["W_O2", "W_K2", "W_K1"]
    assert all(abs(r["cos_engine"] - 1) < 1e-12 for r in firsts)
