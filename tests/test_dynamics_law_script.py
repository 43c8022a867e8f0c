"""Test the dynamics-law script (docs/results/dynamics_law.py) on a tiny plan: cells through the sweep cache,
the step-size pick against a direct loop over the cell values, and reading cells written by other sources."""

import importlib.util
import math
import statistics
from pathlib import Path

import pytest

from popgrad import sweep
from popgrad.commands.dynamics import dynamics_cell
from popgrad.sweep import SweepOptions, run_cells

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "results" / "dynamics_law.py"


@pytest.fixture
def law(monkeypatch):
    spec = importlib.util.spec_from_file_location("dynamics_law_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "SETTINGS", [(4, 6, 16)])
    monkeypatch.setattr(mod, "STAR", [(4, 6, 16)])
    monkeypatch.setattr(mod, "CORNERS", [])
    monkeypatch.setattr(mod, "EXTEND_WITHIN", (0.05, 0.2))       # no extension unless a test widens it
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
    cells = law.pilot_cells(sweep.Cache(str(tmp_path)))
    run_cells(cells, SweepOptions(cache=str(tmp_path)), desc="pilot")
    reader = sweep.Cache(str(tmp_path))
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


def test_report_reads_cells_of_other_sources(law, tmp_path, monkeypatch):
    """Test that the step-size pick reads pilot cells cached by other popgrad sources (Cache.find), equal to
    the pick on cells cached by this code."""
    here = str(tmp_path / "here")
    run_cells(law.pilot_cells(sweep.Cache(here)), SweepOptions(cache=here), desc="pilot")
    other = str(tmp_path / "other")
    with monkeypatch.context() as m:
        m.setattr(sweep, "source_hash", lambda: "f" * 64)
        run_cells(law.pilot_cells(sweep.Cache(other)), SweepOptions(cache=other), desc="pilot")
    assert sweep.cache_sources(other) == {(sweep.popgrad.__version__, "f" * 64): 2 * len(law.PILOT_SEEDS)}
    (m_other, t_other), (m_here, t_here) = (law.best_multiplier(sweep.Cache(c), (4, 6, 16)) for c in (other, here))
    without_seconds = {m: {seed: run[:2] for seed, run in runs.items()} for m, runs in t_here.items()}
    assert m_other == m_here and {m: {seed: run[:2] for seed, run in runs.items()} for m, runs in t_other.items()} \
        == without_seconds


def test_pilot_extends_an_edge_pick_until_it_is_inside(law, tmp_path, monkeypatch):
    """Test the pilot phase's extension: starting from one multiplier the pick is at both edges, so the
    phase adds halvings and doublings (within EXTEND_WITHIN) until the pick, recomputed here by a loop over
    the cells of the final multipliers, lies strictly inside them or at a bound."""
    monkeypatch.setattr(law, "MULTIPLIERS", (0.1,))
    monkeypatch.setattr(law, "EXTEND_WITHIN", (0.0125, 0.8))
    cache = str(tmp_path / "c")
    law.main(["run", "pilot", "--cache", cache])
    ms = law.pilot_multipliers(sweep.Cache(cache), (4, 6, 16))
    assert len(ms) > 1 and ms == sorted(ms) and all(b == 2 * a for a, b in zip(ms, ms[1:]))
    firsts = {m: [next((r["step"] for r in dynamics_cell(**law.params((4, 6, 16), law.etas(m), "joint"), seed=seed)
                        if r["accuracy"] >= 0.3), None) for seed in law.PILOT_SEEDS] for m in ms}
    rank = {m: (-sum(f is not None for f in v), statistics.median([math.inf if f is None else f for f in v]), m)
            for m, v in firsts.items()}
    best = min(rank.values())[2]
    assert law.best_multiplier(sweep.Cache(cache), (4, 6, 16))[0] == best
    assert (ms[0] < best < ms[-1]) or (best == ms[0] and ms[0] / 2 < 0.0125) or (best == ms[-1] and ms[-1] * 2 > 0.8)
    assert len(sweep.cache_files(cache)) == len(ms) * len(law.PILOT_SEEDS)
