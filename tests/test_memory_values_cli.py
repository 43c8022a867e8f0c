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


def _args(*argv):
    import argparse as ap
    p = ap.ArgumentParser()
    cmd.add_arguments(p)
    return p.parse_args(list(argv))


def test_memories_fallback_defaults_are_the_documented_ones(monkeypatch):
    """Test the defaults that --help states but argparse does not hold (docs/defaults.md, popgrad memories):
    zipf d sweep 32..512 at N = 4096, n sweep at d = 512, N = 16384, 5 seeds; factorized d = 256, m = d/16 .. d,
    3 seeds; moments d = 64..2048."""
    calls = []
    monkeypatch.setattr(cmd.zm, "n_sweep", lambda alpha, kind, ns, d, N, seeds, progress=None:
                        calls.append(("n", alpha, kind, list(ns), d, N, seeds)) or [])
    monkeypatch.setattr(cmd.zm, "d_sweep", lambda alpha, kind, dims, N, seeds, progress=None:
                        calls.append(("d", alpha, kind, list(dims), N, seeds)) or [])
    monkeypatch.setattr(cmd.zm, "fitted_exponents", lambda rows, resamples: calls.append(("fit", resamples)) or [])
    cmd._zipf(_args("zipf"))
    assert ("n", 1.5, "injective", [100, 300, 1000, 3000, 10000], 512, 16384, 5) in calls
    assert ("d", 2.0, "mod2", [32, 64, 128, 256, 512], 4096, 5) in calls
    assert ("fit", 1000) in calls and len(calls) == 2 * 2 * 2 + 1
    seen = []
    monkeypatch.setattr(cmd, "factorized_capacity",
                        lambda d, m, seed: seen.append((d, m, seed)) or {"capacity": 10 + m, "seconds": 0.0, "memories": 1})

    class Found:
        capacity = 100
    searched = []
    monkeypatch.setattr(cmd, "search_capacity", lambda *a, **k: searched.append((a, k)) or Found())
    cmd._factorized(_args("factorized"))
    assert sorted({m for _, m, _ in seen}) == [16, 32, 64, 128, 256] and {d for d, _, _ in seen} == {256}
    assert sorted({s for _, _, s in seen}) == [0, 1, 2]
    assert searched[-1] == (("injective", 256, 0.99, 0), {"resolution": 0.01})
    monkeypatch.setattr(cmd.rm, "predicted_capacity", lambda kind, d, threshold=0.99, approximation="independent": 8)
    searched.clear()
    rows, _, _, _ = cmd._moments(_args("moments"))
    assert [r["d"] for r in rows if r["map"] == "injective"] == [64, 128, 256, 512, 1024, 2048]
    assert [a[1] for a, _ in searched] == [64, 128, 256, 64, 128, 256]
