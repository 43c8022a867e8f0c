"""Test the population-count script (docs/results/dynamics_population_counts.py) on a tiny setting: `run` fills the
cache, and `report`'s table rows carry counts_vs_exact's summary for every n and threshold."""

import importlib.util
from pathlib import Path

from popgrad.numerics.dynamics_reference import counts_vs_exact

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "results" / "dynamics_population_counts.py"
TINY = {"N": 4, "T": 5, "d": 16, "etas": {"W_O2": 3.0, "W_K2": 10.0, "W_K1": 10.0}, "kind": "joint", "k": 15,
        "ns": (32, 128), "emb_seeds": (0, 1), "streams": 2, "thresholds": (0.4, 0.5)}


def test_run_then_report(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("dynamics_population_counts_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "SETTING", TINY)
    mod.main(["run", "--cache", str(tmp_path / "c")])
    assert len(list((tmp_path / "c").glob("*.json"))) == 2 + 2 * 2 * 2
    mod.main(["report", str(tmp_path / "c"), str(tmp_path / "out")])
    want = counts_vs_exact(**TINY)
    rows = [line.split("|")[1:-1] for line in (tmp_path / "out.md").read_text().splitlines() if line.startswith("| ")]
    body = [[c.strip() for c in r] for r in rows if r[0].strip().isdigit()]
    assert len(body) == len(TINY["ns"]) * len(TINY["thresholds"])
    for r in body:
        s = want["summary"][int(r[0])][float(r[1])]
        assert r[2] == f"{s['reached']}/{s['runs']}" and r[5] == f"{s['within']:.2f}"
        assert r[3] == ("-" if s["median_diff"] is None else f"{s['median_diff']:+.1f}")
