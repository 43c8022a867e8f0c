"""The aggregations `popgrad memories optim / factorized / moments` do on top of the library (the library's values
are held by the memory_values claims; here the inputs are planted so that each aggregation is read exactly)."""

import argparse
import math
import statistics

import pytest

from popgrad.claims import memories as cm
from popgrad.commands import memories as cmd
from popgrad.registry import Measurement


def test_optim_rows_aggregate_the_regimes(monkeypatch):
    """Test that the optim table's values are the mean SGD slope, the median first-perfect step and the mean peaks."""
    monkeypatch.setattr(cm, "measure_opt_log_margins",
                        lambda: Measurement(0.0, 1.0, "approx", details={"rows": [(1.0, 3, 1.05, 1.0, 1.1, 0, 8.5)]}))
    monkeypatch.setattr(cm, "measure_opt_large_batch", lambda: Measurement(0.0, 1.0, "approx", rate="q ~ p^1.003"))
    slopes = {eta: [0.5 + i * eta / 1000 for i in range(3)] for eta in cm.SGD_ETAS}
    monkeypatch.setattr(cm, "sgd_slopes", lambda eta: slopes[eta])
    firsts = [5.0, 7.0, math.inf]

    def table(d, etas, steps):
        return [{"d": d, "eta": e, "seed": s, "sign_changes": s, "first_perfect": firsts[s], "peak_weighted": 0.5 + s / 10,
                 "final_weighted": 0.4 + s / 10} for e in etas for s in range(3)]
    monkeypatch.setattr(cm, "oscillation_table", table)
    rows, _, _, _ = cmd._optim(argparse.Namespace())
    assert rows[0]["value"] == 1.05 and rows[1]["value"] == pytest.approx(1.003)
    sgd = [r for r in rows if r["regime"] == "batch-1 SGD"]
    assert [r["value"] for r in sgd] == pytest.approx([statistics.fmean(slopes[e]) for e in cm.SGD_ETAS])
    corr = [r for r in rows if r["regime"].startswith("correlated")]
    assert len(corr) == 8
    for r in corr:
        assert r["value"] == 7.0 and r["sign_changes"] == [0, 1, 2]
        assert r["weighted_peak"] == pytest.approx(0.6) and r["weighted_final"] == pytest.approx(0.5)


def test_factorized_rows_and_moments_ratio(monkeypatch):
    """Test the factorized table (mean, sem, C/(m d), unfactorized C/d^2) and the moments ratio predicted/measured."""
    caps = {(2, 0): 10, (2, 1): 12, (2, 2): 17, (4, 0): 30, (4, 1): 31, (4, 2): 35, (8, 0): 60, (8, 1): 70, (8, 2): 64}
    monkeypatch.setattr(cmd, "factorized_capacity",
                        lambda d, m, seed: {"capacity": caps[(m, seed)], "seconds": 0.1, "memories": 3})

    class Found:
        capacity = 100
    monkeypatch.setattr(cmd, "search_capacity", lambda *a, **k: Found())
    rows, _, _, extra = cmd._factorized(argparse.Namespace(d=8, ms=[2, 4, 8], seeds=3, bootstrap=10))
    for r in rows:
        v = [caps[(r["m"], s)] for s in range(3)]
        assert r["capacity"] == pytest.approx(statistics.fmean(v))
        assert r["se"] == pytest.approx(statistics.stdev(v) / math.sqrt(3))
        assert r["C/(m d)"] == pytest.approx(statistics.fmean(v) / (r["m"] * 8))
    assert extra["unfactorized_capacity"] == 100 and extra["C/d^2_unfactorized"] == pytest.approx(100 / 64)
    rows, _, _, _ = cmd._moments(argparse.Namespace(dims=[64], measure_dims=[64]))
    for r in rows:
        assert r["measured"] == 100 and r["ratio"] == pytest.approx(r["predicted"] / 100)
