"""Units of the capacity estimator, the law fits and `popgrad capacity` (numerics/capacity*.py)."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from popgrad.cli import main
from popgrad.errors import PopgradError
from popgrad.numerics.capacity import capacity_cells, summarize
from popgrad.numerics.capacity_law import compare_laws, fit_law, local_slopes
from popgrad.numerics.capacity_search import (NestedMemory, block_size, look_sizes, planned_bytes, search_capacity,
                                              wilson_interval)


def test_wilson_interval_contains_the_estimate_is_symmetric_and_narrows():
    """Test that the Wilson interval holds p_hat, mirrors under hits -> n - hits, and narrows with n."""
    for hits, n in ((0, 10), (7, 10), (990, 1000), (1000, 1000)):
        lo, hi = wilson_interval(hits, n, 1.96)
        assert 0 <= lo <= hits / n <= hi <= 1
        lo2, hi2 = wilson_interval(n - hits, n, 1.96)
        assert lo == pytest.approx(1 - hi2, abs=1e-12) and hi == pytest.approx(1 - lo2, abs=1e-12)
    widths = [np.subtract(*wilson_interval(int(0.99 * n), n, 2.0)[::-1]) for n in (100, 1000, 10000)]
    assert widths[0] > widths[1] > widths[2]


def test_look_sizes_double_and_end_at_the_sample():
    """Test that the looks start at first / S per memory, double, and end exactly at the sample size."""
    assert look_sizes(5000, 1, 1000) == [1000, 2000, 4000, 5000]
    assert look_sizes(100, 4, 1000) == [100]
    assert look_sizes(200, 1, 50) == [50, 100, 200]


def test_block_size_is_a_power_of_two_in_range():
    """Test that the embedding block is a power of two between 64 and 4096 for both maps."""
    for kind in ("injective", "mod2"):
        for d in (2, 16, 256, 4096, 10 ** 5):
            b = block_size(kind, d)
            assert 64 <= b <= 4096 and b & (b - 1) == 0


@settings(max_examples=10, deadline=None)
@given(order=st.permutations([37, 5, 200, 120, 64]), kind=st.sampled_from(["injective", "mod2"]))
def test_incremental_memory_equals_the_sum_from_scratch(order, kind):
    """Test that W_N grown from checkpoints in any visiting order equals sum_z u_f(z) e_z^T (float64)."""
    mem = NestedMemory(kind, 12, 2, seed=1, dtype="float64", block=64)
    for N in order:
        E, U = mem.embeddings(N)
        f = torch.arange(N) if kind == "injective" else torch.arange(N) % 2
        W = U[:, :, f] @ E.transpose(1, 2)
        want = W if kind == "injective" else U.transpose(1, 2) @ W
        assert torch.allclose(mem.state(N), want, rtol=1e-12, atol=1e-12)


@settings(max_examples=8, deadline=None)
@given(chunk=st.integers(1, 90), block=st.integers(1, 130), N=st.integers(1, 150),
       kind=st.sampled_from(["injective", "mod2"]))
def test_hits_do_not_depend_on_chunk_or_block(chunk, block, N, kind):
    """Test that the hits are the same for any chunk and output block sizes (ragged last ones)."""
    ref = NestedMemory(kind, 16, 2, seed=4, dtype="float64", block=64, chunk=1024)
    mem = NestedMemory(kind, 16, 2, seed=4, dtype="float64", block=64, chunk=chunk)
    z = torch.arange(N).expand(2, N)
    assert torch.equal(mem.hits(N, z), ref.hits(N, z))
    # a different storage block changes the draw, but the output-block loop must still match a dense check
    other = NestedMemory(kind, 16, 1, seed=4, dtype="float64", block=block, chunk=chunk)
    E, U = other.embeddings(N)
    f = torch.arange(N) if kind == "injective" else torch.arange(N) % 2
    scores = U.transpose(1, 2) @ (U[:, :, f] @ E.transpose(1, 2)) @ E                    # (1, M, N)
    target = scores[0, f, torch.arange(N)]
    scores[0, f, torch.arange(N)] = -math.inf
    assert torch.equal(other.hits(N, torch.arange(N)[None]), (target > scores[0].amax(0))[None])


def test_float32_recall_agrees_with_float64():
    """Test that float32 GEMMs change at most a few hits out of thousands at d = 64."""
    a = NestedMemory("injective", 64, 1, seed=2, dtype="float32").evaluate(400, 1e-9, queries=10 ** 6)
    b = NestedMemory("injective", 64, 1, seed=2, dtype="float64").evaluate(400, 1e-9, queries=10 ** 6)
    assert a.n == b.n == 400 and abs(a.hits - b.hits) <= 2


def test_evaluate_exhaustive_sampled_and_early_decisions():
    """Test exhaustive recall (interval of width 0), sampled looks, and the decided sign against the interval."""
    mem = NestedMemory("injective", 64, 1, seed=0)
    ex = mem.evaluate(40, 0.99, queries=1000)
    assert ex.exhaustive and ex.lo == ex.hi == ex.recall and ex.decided == 1
    sm = mem.evaluate(600, 0.99, queries=300, first_look=50)
    assert not sm.exhaustive and sm.n in (50, 100, 200, 300) and sm.lo <= sm.recall <= sm.hi
    assert sm.decided == (1 if sm.lo >= 0.99 else -1 if sm.hi < 0.99 else 0)
    bad = mem.evaluate(2000, 0.99, queries=10 ** 6)                  # stops once failing is certain
    assert bad.decided == -1 and bad.n < bad.population


def test_search_interval_holds_the_capacity_and_memory_is_reported():
    """Test lower <= capacity <= upper with sampled recall, and that the held bytes are below the plan."""
    res = search_capacity("injective", 96, 0.99, seed=1, queries=300, resolution=0.01)
    assert 0 < res.lower <= res.capacity <= res.upper
    assert 0 < res.peak_bytes <= planned_bytes("injective", 96, res.memories) * 2
    assert res.maxrss_bytes > 0 and res.as_dict()["evaluations"]


def test_huge_dimension_is_refused_before_allocating():
    """Test that a draw that cannot fit is refused with PopgradError naming the size."""
    with pytest.raises(PopgradError, match="d=1000000"):
        NestedMemory("injective", 10 ** 6).state(10)


def test_capacity_cells_take_a_count_per_map_and_d():
    """Test that memory seeds may depend on (map, d) and give seeds seed + k."""
    cells = capacity_cells(["injective"], [64, 1024], lambda kind, d: 3 if d <= 512 else 1, seed=5)
    assert [(c.params["d"], c.seed) for c in cells] == [(64, 5), (64, 6), (64, 7), (1024, 5)]
    with pytest.raises(PopgradError):
        capacity_cells(["injective"], [64], 0)


def test_summarize_gives_se_only_with_two_or_more_seeds():
    v = {"lower": 9, "upper": 11, "saturated": False, "memories": 1, "seconds": 1.0, "peak_bytes": 1,
         "maxrss_bytes": 1}
    one = summarize("injective", 64, [dict(v, capacity=10)])
    assert one["se"] is None and one["mean"] == 10
    two = summarize("injective", 64, [dict(v, capacity=10), dict(v, capacity=12)])
    assert two["se"] == pytest.approx(1.0)


def _rows(d, C, rel_se=0.01):
    return [{"d": x, "mean": c, "se": rel_se * c, "lower": c, "upper": c, "saturated": False} for x, c in zip(d, C)]


def test_law_fits_recover_the_law_that_made_the_data():
    """Test that exact c d^2 / ln d data favour d^2/ln d (chi^2 ~ 0) and c d^2.3 data give alpha = 2.3."""
    d = np.array([64, 128, 256, 512, 1024, 2048], float)
    res = compare_laws(_rows(d, 0.14 * d ** 2 / np.log(d)), p=2.0)
    assert res["best"] == "d^2/ln d" and res["laws"]["d^2/ln d"]["chi2"] < 1e-12
    assert res["laws"]["d^2/ln d"]["c"] == pytest.approx(0.14)
    power = fit_law("power", d, 0.02 * d ** 2.3, np.full(6, 0.01))
    assert power["exponent"] == pytest.approx(2.3) and power["exponent_ci"][0] < 2.3 < power["exponent_ci"][1]
    slopes = local_slopes(_rows(d, d ** 2))
    assert all(s["slope"] == pytest.approx(2.0) for s in slopes)
    assert slopes[-1]["d2_over_ln_d"] == pytest.approx(2 - math.log(math.log(2048) / math.log(1024)) / math.log(2))


def _cli_json(argv, capsys):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_seeds_alias_intervals_and_plan(capsys):
    """Test --seeds as an alias of --memory-seeds, an interval on every capacity, and --plan stopping early."""
    out = _cli_json(["capacity", "--dims", "32,48", "--maps", "injective", "--seeds", "2"], capsys)
    assert out["meta"]["params"]["memory_seeds"] == 2
    assert all(g["n"] == 2 and g["se"] is not None and g["lower"] <= g["upper"] for g in out["grid"])
    out = _cli_json(["capacity", "--dims", "48", "--maps", "injective", "--memory-seeds", "1"], capsys)
    assert out["rows"][0]["injective"].count("[") == 1
    assert main(["capacity", "--dims", "4096", "--maps", "injective", "--plan"]) in (0, 2)
    assert "plan" in capsys.readouterr().out


@pytest.mark.parametrize("argv, word", [(["--queries", "0"], "--queries"), (["--resolution", "0.7"], "--resolution"),
                                        (["--memory-seeds", "0"], "--memory-seeds"), (["--maps", "x"], "--maps")])
def test_cli_bad_arguments_exit_2_naming_the_option(argv, word, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["capacity"] + argv)
    assert exc.value.code == 2 and word in capsys.readouterr().err


def test_cli_combine_refits_earlier_runs_and_plots(tmp_path, capsys):
    """Test that --combine reads earlier --json outputs (later files replace a (map, d)), fits the laws
    over them without computing, and writes the plot; a file that is not such an output exits 2."""
    runs = []
    for dims in ("32,48", "48,64"):
        out = _cli_json(["capacity", "--dims", dims, "--maps", "injective", "--memory-seeds", "2"], capsys)
        path = tmp_path / f"run{len(runs)}.json"
        path.write_text(json.dumps(out))
        runs.append(str(path))
    png = tmp_path / "c.png"
    out = _cli_json(["capacity", "--combine", *runs, "--plot", str(png)], capsys)
    assert [g["d"] for g in out["grid"]] == [32, 48, 64] and png.stat().st_size > 0
    assert out["laws"]["injective"]["best"] in out["laws"]["injective"]["laws"]
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(SystemExit) as exc:
        main(["capacity", "--combine", str(bad)])
    assert exc.value.code == 2 and "--combine" in capsys.readouterr().err
