"""Test the `popgrad memories` command and the memory helpers (software behaviour and properties)."""

import json

import numpy as np
import pytest

from popgrad.cli import main
from popgrad.numerics import optim_regimes as opt
from popgrad.numerics import zipf_memories as zm
from popgrad.theory import readout_moments as rm


def test_zipf_probs_and_maps():
    """Test that Zipf probabilities sum to 1 and decrease, and the maps have the stated output counts."""
    p = zm.zipf_probs(100, 1.5)
    assert abs(p.sum() - 1) < 1e-12 and np.all(np.diff(p) < 0)
    assert zm.map_outputs("injective", 7)[1] == 7 and zm.map_outputs("mod2", 7)[1] == 2


def test_infinite_memory_error_decreases_in_n():
    """Test that sum_z p (1 - p)^n is 1 at n = 0 and decreases in n."""
    p = zm.zipf_probs(500, 2.0)
    e = zm.infinite_memory_error(p, [0, 1, 10, 100])
    assert abs(e[0] - 1) < 1e-12 and np.all(np.diff(e) < 0)


def test_scheme_weights():
    """Test the three memory schemes on given counts."""
    c = np.array([0, 1, 2, 5])
    assert zm.scheme_weights("counts", c).tolist() == [0, 1, 2, 5]
    assert zm.scheme_weights("seen", c).tolist() == [0, 1, 1, 1]
    assert zm.scheme_weights("threshold", c, 2).tolist() == [0, 0, 1, 1]


def test_memory_error_extremes():
    """Test that storing nothing gives error near 1 (injective) and a large d stores a few tokens perfectly."""
    p = zm.zipf_probs(50, 2.0)
    f, M = zm.map_outputs("injective", 50)
    assert zm.memory_error(p, f, M, np.zeros(50), 16, tail=200).error > 0.9
    q = (np.arange(50) < 5).astype(float)
    err = zm.memory_error(p, f, M, q, 512, tail=400).error
    assert err <= p[5:].sum() + 1e-9


def test_predicted_recall_decreases_in_N():
    """Test that the predicted recall falls as more associations are stored."""
    r = [rm.predicted_recall("injective", 64, N) for N in (4, 16, 64, 256)]
    assert all(a >= b for a, b in zip(r, r[1:]))


def test_sign_changes_and_first_reach():
    """Test the oscillation counters on small sequences."""
    assert opt.sign_changes(np.array([3, 2, 3, 2, 2, 1])) == 2          # -, +, -, (0), -
    assert opt.first_reach(np.array([0.5, 0.9, 1.0, 1.0])) == 2
    assert opt.first_reach(np.array([0.5, 0.9])) == float("inf")


def test_cli_moments_json(capsys):
    """Test that `popgrad memories moments --json` gives one row per map and d with the predicted capacity."""
    assert main(["memories", "moments", "--dims", "64", "--measure-dims", "none", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(r["map"], r["d"]) for r in out["rows"]] == [("injective", 64), ("mod2", 64)]
    assert all(r["predicted"] > 0 for r in out["rows"])


@pytest.mark.parametrize("argv", [["memories", "zipf", "--maps", "bogus"], ["memories", "zipf", "--alphas", "1"],
                                  ["memories", "nothing"], ["memories", "optim", "--plot", "x.png"]])
def test_cli_bad_arguments_exit_2(argv, capsys):
    """Test that a bad argument exits 2 with one line naming it."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_cli_zipf_json_rows_and_exponents(capsys, monkeypatch):
    """Test that `popgrad memories zipf --json` gives one row per (sweep point, scheme) and one fit per
    (sweep, scheme), each fit beside the theorem's exponent (threshold grids shortened to keep it fast)."""
    monkeypatch.setattr(zm, "S_GRID", (1, 2))
    monkeypatch.setattr(zm, "k_grid", lambda N: [4, 16])
    argv = ["memories", "zipf", "--maps", "mod2", "--alphas", "2", "--ns", "20,40,80", "--dims", "8,16,32",
            "--N", "64", "--d", "16", "--seeds", "2", "--bootstrap", "50", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["rows"]) == 2 * 3 * 3
    assert {(f["sweep"], f["scheme"]) for f in out["exponents"]} == {(s, q) for s in "nd" for q in zm.SCHEMES}
    assert all(0 <= r["error"] <= 1 for r in out["rows"])
    assert [f["theorem"] for f in out["exponents"] if f["sweep"] == "n"] == [0.5, 0.5, 0.5]
