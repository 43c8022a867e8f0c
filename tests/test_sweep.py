"""Test the sweep layer (popgrad.sweep): cache keys, resume, corruption, atomic writes, and that a
Dask LocalCluster gives the same results as the in-process run for every grid command."""

import json
import os
import sys

import numpy as np
import pytest

from popgrad import sweep
from popgrad.cli import main
from popgrad.errors import PopgradError
from popgrad.sweep import Cache, Cell, SweepCacheWarning, SweepOptions, cell_key, run_cells

# Small grids of every grid command (a few seconds each in-process).
GRIDS = {
    "capacity": ["capacity", "--dims", "16,32"],
    "recall-table": ["recall-table", "--dims", "8,16", "--batches", "1,2", "--T", "64", "--seeds", "2"],
    "scaling": ["scaling", "--sweeps", "d,N,batches", "--dims", "16,32", "--Ns", "16", "--max-batches", "4",
                "--seeds", "2", "--T", "64", "--d", "32"],
    "dynamics": ["dynamics", "--N", "5", "--T", "5", "--d", "16", "--k", "2", "--n", "64", "--n-eval", "64", "--seeds", "2",
                 "--schedule", "alternating", "--dtype", "float64", "--device", "cpu"],
    "train": ["train", "--T", "16", "--d", "16", "--batch", "4", "--steps", "4", "--probe-every", "2", "--seeds", "2",
              "--cutoff", "8", "--dtype", "float64", "--device", "cpu", "--threads", "1"],
}
METADATA = ("meta", "seconds", "sweep", "maxrss_bytes")  # run metadata: params, versions, time, wall seconds, where it ran, peak RSS


# ----------------------------------------------------------------------------- toy cells
def toy_cell(x, log, fail_dir=None, seed=0):
    """A pure cell: a value from (x, seed). Appends x to `log` (to count calls); when `fail_dir` is
    given and has no file fail-<x>, creates it and raises once (a simulated kill)."""
    with open(log, "a") as fh:
        fh.write(f"{x}\n")
    if fail_dir is not None:
        flag = os.path.join(fail_dir, f"fail-{x}")
        if not os.path.exists(flag):
            open(flag, "w").close()
            raise RuntimeError(f"simulated kill at cell {x}")
    rng = np.random.default_rng([x, seed])
    return {"x": x, "draw": rng.standard_normal(3), "inf": float("inf"), "pair": (x, x + 1)}


def _calls(log) -> list[int]:
    return [int(line) for line in open(log).read().split()] if os.path.exists(log) else []


def _toy_cells(log, fail_dir=None, n=5):
    return [Cell(toy_cell, {"x": x, "log": str(log), "fail_dir": fail_dir}, seed=7) for x in range(n)]


def _values(results):
    return [r.value for r in results]


# ----------------------------------------------------------------------------- keys and values
def test_cell_key_depends_on_params_seed_and_version():
    """Test that the cache key changes with any parameter, the seed or the version, not with dict order."""
    a = Cell(toy_cell, {"x": 1, "log": "l"}, seed=3)
    assert cell_key(a) == cell_key(Cell(toy_cell, {"log": "l", "x": 1}, seed=3))
    others = [Cell(toy_cell, {"x": 2, "log": "l"}, seed=3), Cell(toy_cell, {"x": 1, "log": "l"}, seed=4),
              Cell(toy_cell, {"x": 1.0, "log": "l"}, seed=3), Cell(_values, {"x": 1, "log": "l"}, seed=3)]
    keys = {cell_key(c) for c in others} | {cell_key(a, version="9.9.9")}
    assert cell_key(a) not in keys and len(keys) == len(others) + 1


def test_cell_key_hashes_arrays_and_models_by_content():
    """Test that arrays and model C dataclasses are hashed by content (equal content, equal key)."""
    from dataclasses import replace

    from popgrad.numerics.recall import build_model_c

    key = lambda p: cell_key(Cell(toy_cell, p))  # noqa: E731
    assert key({"a": np.arange(4.0)}) == key({"a": np.arange(4.0)})
    assert key({"a": np.arange(4.0)}) != key({"a": np.arange(4.0) + 1e-12})
    model = build_model_c(T=64)
    assert key({"m": model}) == key({"m": replace(model)})
    assert key({"m": model}) != key({"m": replace(model, T=65)})
    assert key({"m": model}) != key({"m": replace(model, pi_u=np.roll(model.pi_u, 1))})
    with pytest.raises(PopgradError, match="cannot hash"):
        key({"o": object()})


def test_results_identical_cached_and_uncached(tmp_path):
    """Test that a run writing the cache, a run reading it and an uncached run give identical values."""
    log = tmp_path / "log"
    plain = _values(run_cells(_toy_cells(log)))
    first = run_cells(_toy_cells(log), SweepOptions(cache=str(tmp_path / "c")))
    second = run_cells(_toy_cells(log), SweepOptions(cache=str(tmp_path / "c")))
    assert not any(r.cached for r in first) and all(r.cached for r in second)
    assert plain == _values(first) == _values(second)
    assert plain[0]["inf"] == float("inf") and plain[0]["pair"] == [0, 1]    # one JSON round trip for all
    assert _calls(log) == list(range(5)) * 2                                 # the cached run computed nothing


def test_killed_sweep_resumes_from_cache(tmp_path):
    """Test that a sweep killed at cell 3 keeps cells 0-2 and, re-run, computes only cells 3 and 4."""
    log, cache = tmp_path / "log", str(tmp_path / "cache")
    fail = tmp_path / "fail"
    fail.mkdir()
    (fail / "fail-0").touch(), (fail / "fail-1").touch(), (fail / "fail-2").touch(), (fail / "fail-4").touch()
    with pytest.raises(RuntimeError, match="simulated kill at cell 3"):
        run_cells(_toy_cells(log, str(fail)), SweepOptions(cache=cache))
    assert _calls(log) == [0, 1, 2, 3]
    assert len([f for f in os.listdir(cache) if f.endswith(".json")]) == 3
    resumed = run_cells(_toy_cells(log, str(fail)), SweepOptions(cache=cache))
    assert _calls(log) == [0, 1, 2, 3, 3, 4]
    assert [r.cached for r in resumed] == [True, True, True, False, False]
    assert _values(resumed) == _values(run_cells(_toy_cells(tmp_path / "log2")))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other-key", "empty"])
def test_corrupted_cache_file_is_detected_and_recomputed(tmp_path, damage):
    """Test that a damaged cache file gives a SweepCacheWarning, is recomputed and rewritten."""
    log, cache = tmp_path / "log", str(tmp_path / "cache")
    good = _values(run_cells(_toy_cells(log, n=3), SweepOptions(cache=cache)))
    path = Cache(cache).path(cell_key(_toy_cells(log, n=3)[1]))
    text = open(path).read()
    other = open(Cache(cache).path(cell_key(_toy_cells(log, n=3)[2]))).read()
    damaged = {"truncate": text[: len(text) // 2], "garbage": "\x00\xff not json", "other-key": other,
               "empty": ""}[damage]
    with open(path, "w") as fh:
        fh.write(damaged)
    with pytest.warns(SweepCacheWarning, match="corrupted"):
        again = run_cells(_toy_cells(log, n=3), SweepOptions(cache=cache))
    assert _values(again) == good
    assert [r.cached for r in again] == [True, False, True]
    assert _calls(log) == [0, 1, 2, 1]
    assert json.load(open(path))["value"] == good[1]                       # rewritten


def test_cache_writes_are_atomic(tmp_path, monkeypatch):
    """Test that a write killed midway leaves neither a partial cell file nor a temporary file."""
    cache = Cache(str(tmp_path / "cache"))
    cell = _toy_cells(tmp_path / "log", n=1)[0]

    def dying_dump(obj, fh, **kw):
        fh.write('{"format": 1, "key": ')
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep.json, "dump", dying_dump)
    with pytest.raises(KeyboardInterrupt):
        cache.store(cell_key(cell), cell, {"x": 0}, 1.0)
    assert os.listdir(cache.directory) == []


def test_cache_option_refuses_a_file(tmp_path):
    """Test that --cache naming a regular file is refused up front with one line, exit 2."""
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(PopgradError, match="--cache"):
        run_cells([], SweepOptions(cache=str(f)))


def test_cached_command_identical_to_uncached(tmp_path, capsys):
    """Test that `popgrad capacity --cache DIR` (first and second run) prints the uncached results."""
    runs = []
    for extra in ([], ["--cache", str(tmp_path)], ["--cache", str(tmp_path)]):
        assert main(GRIDS["capacity"] + ["--maps", "mod2", "--json"] + extra) == 0
        runs.append(_results(json.loads(capsys.readouterr().out)))
    assert runs[0] == runs[1] == runs[2]
    assert len(os.listdir(tmp_path)) == 2                                  # 2 dims x 1 map


def test_workers_without_dask_say_how_to_install(monkeypatch, capsys):
    """Test that --workers / --scheduler without Dask exit 2 with one line naming the install command."""
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    for opt in (["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:1"]):
        assert main(GRIDS["capacity"] + opt) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and 'pip install -e ".[distributed]"' in err[0]


def test_workers_and_scheduler_exclude_each_other(capsys):
    """Test that giving both --workers and --scheduler is refused with one line."""
    assert main(GRIDS["capacity"] + ["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_core_imports_without_dask():
    """Test that the sweep layer imports without Dask, and that no module imports Dask at import time."""
    import re
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = "import sys, popgrad.sweep, popgrad.cliutil; assert 'dask' not in sys.modules and 'distributed' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
    top_level = re.compile(r"^(import|from)\s+(dask|distributed)\b", re.M)
    for folder in ("popgrad", "popgrad/commands", "numerics", "theory"):
        for name in os.listdir(os.path.join(root, folder)):
            if name.endswith(".py"):
                text = open(os.path.join(root, folder, name), encoding="utf-8").read()
                assert not top_level.search(text), f"{folder}/{name} imports Dask at module level"


# ----------------------------------------------------------------------------- Dask
def _results(payload: dict):
    """Every field of a --json output but the run metadata (and the per-cell wall seconds)."""
    if isinstance(payload, dict):
        return {k: _results(v) for k, v in payload.items()
                if k not in METADATA and not k.endswith("_seconds")}
    if isinstance(payload, list):
        return [_results(v) for v in payload]
    return payload


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster (2 worker processes on 127.0.0.1, as --workers 2 builds) for the module."""
    pytest.importorskip("dask.distributed", reason='Dask is not installed: pip install -e ".[distributed]"')
    c = sweep.local_cluster(2)
    yield c
    c.close()


def _json_run(argv, capsys):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("command", sorted(GRIDS))
def test_local_cluster_matches_in_process(cluster, command, capsys):
    """Test that each grid command on a 2-worker LocalCluster (--scheduler ADDRESS) gives the same
    results as in-process, every field but the run metadata."""
    here = _json_run(GRIDS[command], capsys)
    there = _json_run(GRIDS[command] + ["--scheduler", cluster.scheduler_address], capsys)
    assert there["sweep"]["execution"].startswith("scheduler tcp://127.0.0.1:")
    assert _results(there) == _results(here)


def test_workers_run_this_checkout(cluster):
    """Test that the workers import the same popgrad (same file) as this process."""
    import dask.distributed as dd

    import popgrad

    with dd.Client(cluster) as client:
        files = client.run(lambda: __import__("popgrad").__file__)
    assert set(files.values()) == {popgrad.__file__}


def test_killed_cluster_sweep_resumes_from_cache(cluster, tmp_path):
    """Test resume on the cluster: a cell raising once leaves the others cached; the re-run computes
    only it, and the values equal the in-process ones."""
    import dask.distributed as dd

    log, cache, fail = tmp_path / "log", str(tmp_path / "cache"), tmp_path / "fail"
    fail.mkdir()
    for x in (0, 1, 3, 4):
        (fail / f"fail-{x}").touch()
    with dd.Client(cluster) as client:
        opts = SweepOptions(cache=cache, client=client)
        with pytest.raises(RuntimeError, match="simulated kill at cell 2"):
            run_cells(_toy_cells(log, str(fail)), opts)
        assert sorted(_calls(log)) == [0, 1, 2, 3, 4]
        resumed = run_cells(_toy_cells(log, str(fail)), opts)
    assert [r.cached for r in resumed] == [True, True, False, True, True]
    assert sorted(_calls(log)) == [0, 1, 2, 2, 3, 4]
    assert _values(resumed) == _values(run_cells(_toy_cells(tmp_path / "log2")))


def test_train_seeds_cached_identical_to_in_process(tmp_path, capsys):
    """Test that `popgrad train --cache DIR` (first and second run) prints the in-process curves, one cell per seed."""
    runs = []
    for extra in ([], ["--cache", str(tmp_path)], ["--cache", str(tmp_path)]):
        runs.append(_results(_json_run(GRIDS["train"] + extra, capsys)))
    assert runs[0] == runs[1] == runs[2]
    assert len(os.listdir(tmp_path)) == 2                                  # 2 seeds x 1 run


def test_dynamics_seeds_cached_identical_to_in_process(tmp_path, capsys):
    """Test that `popgrad dynamics --cache DIR` (first and second run) prints the in-process curves, one cell per seed."""
    runs = []
    for extra in ([], ["--cache", str(tmp_path)], ["--cache", str(tmp_path)]):
        runs.append(_results(_json_run(GRIDS["dynamics"] + extra, capsys)))
    assert runs[0] == runs[1] == runs[2]
    assert len(os.listdir(tmp_path)) == 2                                  # 2 seeds x 1 schedule x 1 etas
