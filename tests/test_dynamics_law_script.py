"""Test the dynamics-law script (docs/results/dynamics_law.py) on a tiny plan: cells through the sweep cache,
the step-size pick against a direct loop over the cell values, and reading cells written by older code."""

import hashlib
import importlib.util
import json
import math
import os
import statistics
from pathlib import Path

import pytest

from popgrad.commands.dynamics import dynamics_cell
from popgrad.sweep import SweepOptions, canonical, run_cells

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "results" / "dynamics_law.py"


@pytest.fixture
def law(monkeypatch):
    spec = importlib.util.spec_from_file_location("dynamics_law_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "SETTINGS", [(4, 6, 16)])
    monkeypatch.setattr(mod, "CENTRE", (4, 6, 16))
    monkeypatch.setattr(mod, "MULTIPLIERS", (0.05, 0.2))
    monkeypatch.setattr(mod, "PILOT_SEEDS", (0, 1))
    monkeypatch.setattr(mod, "BUDGET", {"joint": 6, "alternating": 2})
    monkeypatch.setattr(mod, "THRESHOLD", 0.3)
    real_params = mod.params
    monkeypatch.setattr(mod, "params", lambda s, e, kind, budget=None: {
        **real_params(s, e, kind, budget), "n": 64, "n_eval": 128, "stop_at": 0.3})
    return mod


def test_pick_equals_a_loop_over_the_cells(law, tmp_path):
    """Test that the picked multiplier follows the rule (most seeds reaching, then smallest median, then
    smaller m), recomputed here from the cells' own rows."""
    cells = law.pilot_cells()
    run_cells(cells, SweepOptions(cache=str(tmp_path)), desc="pilot")
    reader = law.CacheReader(str(tmp_path))
    picked, table = law.best_multiplier(reader, (4, 6, 16))
    direct = {}
    for m in law.MULTIPLIERS:
        firsts = []
        for seed in law.PILOT_SEEDS:
            rows = dynamics_cell(**law.params((4, 6, 16), law.etas(m), "joint"), seed=seed)
            firsts.append(next((r["step"] for r in rows if r["accuracy"] >= 0.3), None))
        assert [table[m][s][0] for s in law.PILOT_SEEDS] == firsts
        med = statistics.median([math.inf if f is None else f for f in firsts])
        direct[m] = (-sum(f is not None for f in firsts), med, m)
    assert picked == min(direct.values())[2]
    assert len({v[:2] for v in direct.values()}) > 1, "the tiny plan should tell the multipliers apart"


def test_reader_finds_cells_of_other_sources_and_legacy_keys(law, tmp_path):
    """Test that a cell stored under another source hash, or under a key without one, is found."""
    cell = law.pilot_cells()[0]
    desc = {"fn": cell.fn_name, "params": canonical(cell.params), "seed": int(cell.seed), "popgrad": "0.0.1"}
    legacy = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()
    (tmp_path / f"{legacy}.json").write_text(json.dumps({"popgrad": "0.0.1", "value": [{"step": 0}], "seconds": 1.0}))
    assert law.CacheReader(str(tmp_path)).get(cell)["value"] == [{"step": 0}]
    from popgrad.sweep import cell_key
    other = cell_key(cell, source="f" * 64)
    os.remove(tmp_path / f"{legacy}.json")
    (tmp_path / f"{other}.json").write_text(json.dumps({"source": "f" * 64, "value": [{"step": 1}], "seconds": 1.0}))
    assert law.CacheReader(str(tmp_path)).get(cell)["value"] == [{"step": 1}]
