"""Test the convergence script (docs/results/dynamics_convergence.py) on a tiny plan: its table's medians and
its W_K1-recall vs steps correlation against direct loops over `dynamics_cell` runs."""

import importlib.util
import json
import math
from pathlib import Path

import pytest
from scipy.stats import spearmanr

from popgrad.commands.dynamics import dynamics_cell
from popgrad.numerics.dynamics import median_interval
from popgrad.sweep import SweepOptions, run_cells

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "results" / "dynamics_convergence.py"
TINY = {"N": 4, "T": 8, "d": 32, "dtype": "float64", "device": "cpu", "k": 20, "rounds": 1, "loss": "full",
        "phat": "uniform", "n_eval": 256, "stop_at": None, "etas": {"W_O2": 6.0, "W_K2": 60.0, "W_K1": 60.0}}
THRESHOLDS = (0.4, 0.55)
SEEDS = range(5)


@pytest.fixture
def conv(monkeypatch):
    spec = importlib.util.spec_from_file_location("dynamics_convergence_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "BASE", TINY)
    monkeypatch.setattr(mod, "SETTINGS", [("alternating", "mc", 64, 1.0), ("alternating", "mc", 256, 1.0)])
    monkeypatch.setattr(mod, "STALL_STEP", 6)
    monkeypatch.setattr(mod, "THRESHOLDS", THRESHOLDS)
    return mod


def _direct(n):
    """(first steps to each threshold (None never), W_K1 recall at step 6) per seed, from dynamics_cell itself."""
    out = []
    for seed in SEEDS:
        rows = dynamics_cell(**TINY, kind="alternating", population="mc", n=n, seed=seed)
        first = [next((r["step"] for r in rows if r["accuracy"] >= th), None) for th in THRESHOLDS]
        out.append((*first, next(r["recall_W_K1"] for r in rows if r["step"] == 6)))
    return out


def test_report_equals_direct_loops(conv, tmp_path):
    """Test that the report's per-setting first steps and its Spearman table equal loops over fresh runs."""
    cells = [conv.cell(kind, pop, n, seed, m) for kind, pop, n, m in conv.SETTINGS for seed in SEEDS]
    run_cells(cells, SweepOptions(cache=str(tmp_path / "c")))
    conv.report(str(tmp_path / "c"), str(tmp_path / "out"))
    data = json.load(open(tmp_path / "out.json"))
    pooled = []
    for _, _, n, _ in conv.SETTINGS:
        direct = _direct(n)
        got = data[f"alternating/mc/{n}"]
        assert [got["first"][str(THRESHOLDS[0])][str(s)] for s in SEEDS] == [d[0] for d in direct]
        assert [got["first"][str(THRESHOLDS[1])][str(s)] for s in SEEDS] == [d[1] for d in direct]
        points = [(d[2], d[1]) for d in direct]
        pooled += points
        rho = spearmanr([p[0] for p in points], [math.inf if p[1] is None else p[1] for p in points]).statistic
        assert data["stall"][str(n)]["rho"] == pytest.approx(rho, nan_ok=True, abs=1e-12)
        med = median_interval([d[0] for d in direct if d[0] is not None], len(SEEDS))[0]
        row = next(line for line in open(tmp_path / "out.md") if line.startswith(f"| alternating | mc | {n} |"))
        assert row.split("|")[6].strip().startswith("-" if med is None else f"{med:.0f} ")
    reached = [p[1] for p in pooled if p[1] is not None]
    assert 0 < len(reached) < len(pooled) and len({p[0] for p in pooled}) > 1, "the tiny plan should vary"
    rho = spearmanr([p[0] for p in pooled], [math.inf if p[1] is None else p[1] for p in pooled]).statistic
    assert data["stall"]["pooled"]["rho"] == pytest.approx(rho, nan_ok=True, abs=1e-12)


def test_cells_at_default_step_keep_their_parameters(conv):
    """Test that a default-step cell is BASE with the setting (the cache key of the cells run before step
    multipliers existed), and that half a step halves every step size and scales the budget."""
    assert conv.cell("joint", "mc", 64, 3).params == {**TINY, "kind": "joint", "population": "mc", "n": 64}
    half = conv.cell("alternating", "fixed", 64, 3, 0.5).params
    assert half["etas"] == {layer: eta / 2 for layer, eta in TINY["etas"].items()}
    assert half["k"] == 2 * TINY["k"] and conv.cell("joint", "mc", 64, 3, 0.5).params["k"] == 30
    assert conv.key("joint", "mc", 64, 1.0) == "joint/mc/64" and conv.key("joint", "mc", 64, 0.5) == "joint/mc/64/x0.5"


def _setting(first_steps, seeds=10):
    """A report entry from first steps to the higher threshold (None = never), as `report` builds it."""
    reached = [s for s in first_steps if s is not None]
    return {"seeds": list(range(seeds)), "median": {THRESHOLDS[1]: list(median_interval(reached, seeds))},
            "reached": {THRESHOLDS[1]: len(reached)}}


def test_stability_verdicts(conv, monkeypatch):
    """Test the n -> 4n verdicts on hand-made settings: equal runs are stable; a shifted median is not; an
    unreached seed makes a pair unstable even when the medians agree."""
    monkeypatch.setattr(conv, "SETTINGS", [("joint", "mc", n, 1.0) for n in (16, 64, 256, 1024)])
    base = list(range(50, 60))
    data = {"joint/mc/16": _setting(base), "joint/mc/64": _setting(base),
            "joint/mc/256": _setting([s + 40 for s in base]), "joint/mc/1024": _setting(base[:-1] + [None])}
    table = conv.stability_table(data)
    assert data["stable"] == {"joint/mc/16 -> 64": True, "joint/mc/64 -> 256": False, "joint/mc/256 -> 1024": False}
    row = next(line for line in table.splitlines() if "| 256 -> 1024 |" in line)
    assert row.endswith("| no | 10/10, 9/10 | no |")
    data["joint/mc/1024"] = _setting([s + 41 for s in base[:-1]] + [None])
    conv.stability_table(data)
    assert data["stable"]["joint/mc/256 -> 1024"] is False                   # inside both, one seed never reached


def test_run_only_one_row(conv, monkeypatch, tmp_path):
    """Test that `run --only KIND/POP/N` computes that row's cells and no other, and that an unknown row is refused."""
    from popgrad.sweep import Cache

    monkeypatch.setattr(conv, "PLAN", {("alternating", "mc", 64, 1.0): range(2), ("alternating", "mc", 64, 0.5): range(1)})
    conv.main(["run", str(tmp_path / "c"), "--only", "alternating/mc/64/x0.5"])
    cache = Cache(str(tmp_path / "c"))
    assert cache.find(conv.cell("alternating", "mc", 64, 0, 0.5)) is not None
    assert all(cache.find(conv.cell("alternating", "mc", 64, s)) is None for s in range(2))
    with pytest.raises(SystemExit):
        conv.main(["run", str(tmp_path / "c"), "--only", "joint/mc/64"])
