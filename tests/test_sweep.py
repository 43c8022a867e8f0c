"""Test the sweep layer (popgrad.sweep): cache keys, resume, corruption, atomic writes, and that a
Dask LocalCluster gives the same results as the in-process run for every grid command."""

import copy
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
def test_cell_key_depends_on_params_seed_version_and_source():
    """Test that the cache key changes with any parameter, the seed, the version or the source hash, not with dict order."""
    a = Cell(toy_cell, {"x": 1, "log": "l"}, seed=3)
    assert cell_key(a) == cell_key(Cell(toy_cell, {"log": "l", "x": 1}, seed=3))
    others = [Cell(toy_cell, {"x": 2, "log": "l"}, seed=3), Cell(toy_cell, {"x": 1, "log": "l"}, seed=4),
              Cell(toy_cell, {"x": 1.0, "log": "l"}, seed=3), Cell(_values, {"x": 1, "log": "l"}, seed=3)]
    keys = {cell_key(c) for c in others} | {cell_key(a, version="9.9.9"), cell_key(a, source="0" * 64)}
    assert cell_key(a) not in keys and len(keys) == len(others) + 2


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
    with pytest.warns(SweepCacheWarning, match="corrupted|checksum"):
        again = run_cells(_toy_cells(log, n=3), SweepOptions(cache=cache))
    assert _values(again) == good
    assert [r.cached for r in again] == [True, False, True]
    assert _calls(log) == [0, 1, 2, 1]
    assert json.load(open(path))["value"] == good[1]                       # rewritten


def test_edited_cache_value_is_detected_and_recomputed(tmp_path):
    """Test that a cache file whose value was edited (still valid JSON, same key) fails its checksum,
    is warned about, recomputed and rewritten."""
    log, cache = tmp_path / "log", str(tmp_path / "cache")
    good = _values(run_cells(_toy_cells(log, n=3), SweepOptions(cache=cache)))
    path = Cache(cache).path(cell_key(_toy_cells(log, n=3)[1]))
    record = json.load(open(path))
    record["value"]["draw"][0] *= 2.0                                       # a plausible edit
    json.dump(record, open(path, "w"))
    with pytest.warns(SweepCacheWarning, match="checksum does not match"):
        again = run_cells(_toy_cells(log, n=3), SweepOptions(cache=cache))
    assert _values(again) == good and [r.cached for r in again] == [True, False, True]
    assert json.load(open(path))["value"] == good[1]


def test_record_from_other_sources_is_recomputed(tmp_path, monkeypatch):
    """Test that a record under this code's key, with a valid checksum but written by other sources, is
    warned about and recomputed (the key alone is not trusted)."""
    log, cache = tmp_path / "log", str(tmp_path / "cache")
    cell = _toy_cells(log, n=1)[0]
    key = cell_key(cell)
    with monkeypatch.context() as m:
        m.setattr(sweep, "source_hash", lambda: "f" * 64)
        Cache(cache).store(key, cell, {"forged": True}, 1.0)
    with pytest.warns(SweepCacheWarning, match="other popgrad sources"):
        (again,) = run_cells([cell], SweepOptions(cache=cache))
    assert not again.cached and again.value["x"] == 0 and _calls(log) == [0]


def _copy_sources(tmp_path):
    """A copy of this popgrad's .py sources, by package-qualified name."""
    import shutil

    copy = {}
    for name, path in sweep.source_files().items():
        target = tmp_path / "src" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copy[name] = str(target)
    return copy


def test_source_hash_covers_every_package_and_changes_with_any_byte(tmp_path):
    """Test that the source hash covers popgrad, popgrad.theory and popgrad.numerics, equals the hash of
    a copy, and changes (and so does every key) when one byte of any of them changes."""
    copy = _copy_sources(tmp_path)
    assert {"popgrad/sweep.py", "popgrad/commands/cache.py", "popgrad/theory/__init__.py",
            "popgrad/numerics/recall.py"} <= set(copy)
    assert sweep.hash_sources(copy) == sweep.source_hash()
    cell = _toy_cells(tmp_path / "log", n=1)[0]
    for name in ("popgrad/errors.py", "popgrad/theory/__init__.py", "popgrad/numerics/recall.py"):
        original = open(copy[name], "rb").read()
        open(copy[name], "wb").write(original[:-1] + bytes([original[-1] ^ 1]))
        changed = sweep.hash_sources(copy)
        assert changed != sweep.source_hash(), name
        assert cell_key(cell, source=changed) != cell_key(cell), name
        open(copy[name], "wb").write(original)
    assert sweep.hash_sources(copy) == sweep.source_hash()


def test_code_change_recomputes_and_leaves_stale_files(tmp_path, monkeypatch, capsys):
    """Test that after a one-byte change of the sources every cell is recomputed (new keys), and that
    `popgrad cache verify` then reports the old files as stale and the new ones as ok."""
    log, cache = tmp_path / "log", str(tmp_path / "cache")
    run_cells(_toy_cells(log, n=2), SweepOptions(cache=cache))
    copy = _copy_sources(tmp_path)
    with open(copy["popgrad/numerics/recall.py"], "a") as fh:
        fh.write("\n")
    monkeypatch.setattr(sweep, "source_files", lambda packages=sweep.SOURCE_PACKAGES: copy)
    sweep.source_hash.cache_clear()
    try:
        again = run_cells(_toy_cells(log, n=2), SweepOptions(cache=cache))
        assert not any(r.cached for r in again) and _calls(log) == [0, 1, 0, 1]
        assert main(["cache", "verify", cache, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)["rows"]
    finally:
        sweep.source_hash.cache_clear()
    assert sorted(r["status"] for r in rows) == ["ok", "ok", "stale", "stale"]


def _cache_as_other_source(cells, cache, monkeypatch, source="a" * 64, value=None):
    """Cache `cells` as popgrad sources with hash `source` would (their value, or `value` for every cell)."""
    with monkeypatch.context() as m:
        m.setattr(sweep, "source_hash", lambda: source)
        if value is None:
            run_cells(cells, SweepOptions(cache=cache))
        else:
            for c in cells:
                Cache(cache).store(cell_key(c), c, value, 1.0)


def test_reuse_other_sources_reads_their_cells_after_recomputing_one(tmp_path, monkeypatch):
    """Test that --reuse-other-sources returns the cells another source cached, recomputing exactly one of
    them here (stored under this code's key), and that the values equal a fresh in-process run."""
    log, cache = tmp_path / "log", str(tmp_path / "cache")
    _cache_as_other_source(_toy_cells(log, n=4), cache, monkeypatch)
    assert _calls(log) == [0, 1, 2, 3]
    got = run_cells(_toy_cells(log, n=4), SweepOptions(cache=cache, reuse_other_sources=True))
    recomputed = _calls(log)[4:]
    assert len(recomputed) == 1
    assert [r.source for r in got] == [None if x in recomputed else "a" * 64 for x in range(4)]
    assert [r.cached for r in got] == [x not in recomputed for x in range(4)]
    fresh = run_cells(_toy_cells(tmp_path / "log2", n=4))
    assert _values(got) == _values(fresh)
    assert sweep.cache_sources(cache) == {(sweep.popgrad.__version__, "a" * 64): 4, (sweep.popgrad.__version__, sweep.source_hash()): 1}
    again = run_cells(_toy_cells(log, n=4), SweepOptions(cache=cache))     # without reuse: only this code's cell
    assert [r.cached for r in again] == [x in recomputed for x in range(4)]


def test_reuse_other_sources_refuses_when_the_recomputed_cell_differs(tmp_path, monkeypatch):
    """Test that a source whose cached value differs from this code's stops the run with a PopgradError
    naming the source, and that nothing of it is stored under this code's keys."""
    log, cache = tmp_path / "log", str(tmp_path / "cache")
    cells = _toy_cells(log, n=3)
    _cache_as_other_source(cells, cache, monkeypatch, source="b" * 64, value={"x": -1})
    with pytest.raises(PopgradError, match="--reuse-other-sources: .*differs from the one source bbbbbbbbbbbb cached"):
        run_cells(cells, SweepOptions(cache=cache, reuse_other_sources=True))
    assert sweep.cache_sources(cache) == {(sweep.popgrad.__version__, "b" * 64): 3}


def test_reuse_other_sources_skips_an_edited_file(tmp_path, monkeypatch):
    """Test that another source's file whose checksum fails is warned about and its cell computed here."""
    log, cache = tmp_path / "log", str(tmp_path / "cache")
    cells = _toy_cells(log, n=2)
    _cache_as_other_source(cells, cache, monkeypatch)
    path = Cache(cache).path(cell_key(cells[1], source="a" * 64))
    record = json.load(open(path))
    record["value"]["x"] = 99
    json.dump(record, open(path, "w"))
    with pytest.warns(SweepCacheWarning, match="checksum .*not reused"):
        got = run_cells(cells, SweepOptions(cache=cache, reuse_other_sources=True))
    assert _values(got) == _values(run_cells(_toy_cells(tmp_path / "log2", n=2)))
    assert not got[1].cached and got[1].source is None


def test_reuse_other_sources_needs_a_cache(capsys):
    """Test that --reuse-other-sources without --cache exits 2 naming both options."""
    assert main(GRIDS["dynamics"] + ["--reuse-other-sources"]) == 2
    assert "--reuse-other-sources: needs --cache" in capsys.readouterr().err


def test_cache_find_prefers_this_code_then_other_sources(tmp_path, monkeypatch):
    """Test Cache.find: this code's cell when cached, else another source's, else None."""
    log, cache = tmp_path / "log", str(tmp_path / "cache")
    cells = _toy_cells(log, n=3)
    _cache_as_other_source(cells[:2], cache, monkeypatch, value={"other": True})
    run_cells(cells[:1], SweepOptions(cache=cache))
    found = [Cache(cache).find(c) for c in cells]
    assert found[0].value["x"] == 0 and found[0].source is None
    assert found[1].value == {"other": True} and found[1].source == "a" * 64
    assert found[2] is None


def test_cache_sources_equals_reading_every_record(tmp_path, monkeypatch, capsys):
    """Test that cache_sources (which reads each file's head) counts what parsing every file gives, for
    records written by Cache.store, a record with its fields in another order (full parse) and a file
    that is no record; and that `popgrad cache sources` lists the same."""
    log, cache = tmp_path / "log", str(tmp_path / "cache")
    _cache_as_other_source(_toy_cells(log, n=3), cache, monkeypatch, source="c" * 64)
    run_cells(_toy_cells(log, n=2), SweepOptions(cache=cache))
    reordered = {"value": 1, "format": sweep.CACHE_FORMAT, "popgrad": "9.9", "source": "d" * 64, "key": "e" * 64}
    json.dump(reordered, open(os.path.join(cache, "e" * 64 + ".json"), "w"))
    open(os.path.join(cache, "f" * 64 + ".json"), "w").write("not json")
    direct = {}
    for path in sweep.cache_files(cache):
        try:
            rec = json.load(open(path))
        except ValueError:
            continue
        code = (rec["popgrad"], rec["source"])
        direct[code] = direct.get(code, 0) + 1
    assert sweep.cache_sources(cache) == direct and len(direct) == 3
    assert main(["cache", "sources", cache, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {(r["popgrad"], r["source"]): r["cells"] for r in rows} == direct
    assert [r["source"] for r in rows if r["this_code"]] == [sweep.source_hash()]


def _perturbed(value):
    """Every copy of `value` with one leaf changed (ints, floats by one ulp, strings, booleans, one
    array entry, one dataclass field, one list item or dict entry)."""
    import dataclasses

    if isinstance(value, bool):
        yield not value
    elif isinstance(value, (int, np.integer)):
        yield int(value) + 1
    elif isinstance(value, (float, np.floating)):
        yield float(np.nextafter(float(value), np.inf))
    elif isinstance(value, str):
        yield value + "x"
    elif value is None:
        yield 0
    elif isinstance(value, np.ndarray):
        for index in {0, value.size - 1} if value.size else ():
            flat = value.copy().reshape(-1)
            flat[index] = next(iter(_perturbed(flat[index].item())))
            yield flat.reshape(value.shape)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            for other in _perturbed(item):
                yield type(value)([*value[:i], other, *value[i + 1:]])
        yield type(value)([*value, value[-1] if value else 0])
    elif isinstance(value, dict):
        for k, item in value.items():
            for other in _perturbed(item):
                yield {**value, k: other}
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            for other in _perturbed(getattr(value, f.name)):
                changed = copy.copy(value)                   # no __post_init__: the key must see even invalid changes
                object.__setattr__(changed, f.name, other)
                yield changed
    else:
        raise AssertionError(f"no perturbation for a parameter of type {type(value).__name__}")


class _Captured(Exception):
    pass


@pytest.mark.parametrize("command", sorted(GRIDS))
def test_every_parameter_of_every_cell_is_in_its_key(command, monkeypatch, tmp_path):
    """Test, on the real cells of each grid command, that changing any one parameter leaf (or the seed)
    of a cell changes its cache key."""
    seen = []

    def capture(cell, *a, **kw):
        seen.append(cell)
        raise _Captured

    monkeypatch.setattr(sweep, "cell_key", capture)
    with pytest.raises(_Captured):
        main(GRIDS[command] + ["--cache", str(tmp_path)])
    monkeypatch.undo()
    (cell,) = seen
    base = cell_key(cell)
    changed = 0
    for name, value in cell.params.items():
        for other in _perturbed(value):
            assert cell_key(Cell(cell.fn, {**cell.params, name: other}, cell.seed)) != base, (name, other)
            changed += 1
    assert cell_key(Cell(cell.fn, cell.params, cell.seed + 1)) != base
    assert changed >= len(cell.params)


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
    assert len(os.listdir(tmp_path)) == 6                                  # 2 dims x 1 map x 3 memory seeds


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



def test_dynamics_reuse_other_sources_prints_the_fresh_curves(tmp_path, capsys, monkeypatch):
    """Test `popgrad dynamics --cache DIR --reuse-other-sources` after a (simulated) code change: it prints
    the curves of a fresh run, recomputes one of the 2 cells and says so on stderr."""
    with monkeypatch.context() as m:
        m.setattr(sweep, "source_hash", lambda: "e" * 64)
        _json_run(GRIDS["dynamics"] + ["--cache", str(tmp_path)], capsys)
    fresh = _results(_json_run(GRIDS["dynamics"], capsys))
    assert main(GRIDS["dynamics"] + ["--cache", str(tmp_path), "--reuse-other-sources", "--json"]) == 0
    out = capsys.readouterr()
    assert _results(json.loads(out.out)) == fresh
    assert "2 cells read from other popgrad sources (2 from eeeeeeeeeeee)" in out.err
    assert sweep.cache_sources(str(tmp_path)) == {(sweep.popgrad.__version__, "e" * 64): 2,
                                                  (sweep.popgrad.__version__, sweep.source_hash()): 1}

# ----------------------------------------------------------------------------- workers come and go
class _Bar:
    """Records what a run shows on its progress bar and writes above it."""

    def __init__(self):
        self.postfix, self.lines = [], []

    def set_postfix_str(self, text, refresh=True):
        self.postfix.append(text)

    def write(self, line, file=None):
        self.lines.append(line)


def test_worker_watch_reports_losses_shows_count_and_gives_up():
    """Test that the worker watch reports each loss, shows the count, and raises (naming the address
    and the most workers seen) only after `timeout` seconds without any worker."""
    now = [0.0]
    watch = sweep.WorkerWatch("tcp://127.0.0.1:9", 5.0, clock=lambda: now[0])
    bar = _Bar()
    watch.update(3, bar)
    watch.update(2, bar)
    assert bar.postfix == ["3 workers", "2 workers"]
    assert bar.lines == ["popgrad sweep: lost 1 worker(s) of 3 on tcp://127.0.0.1:9; 2 left"]
    now[0] = 1.0
    watch.update(0, bar)
    assert "2 worker(s) of 2" in bar.lines[-1] and "waiting up to 5 s" in bar.lines[-1]
    now[0] = 5.9
    watch.update(0, bar)                                  # 4.9 s without a worker: still waiting
    now[0] = 6.0
    with pytest.raises(PopgradError, match=r"^--scheduler: tcp://127\.0\.0\.1:9 had no worker for 5 s "
                                           r"\(saw 3 workers at most, none now\)"):
        watch.update(0, bar)
    watch = sweep.WorkerWatch("tcp://127.0.0.1:9", 5.0, clock=lambda: now[0])
    watch.update(0)
    now[0] = 11.0
    watch.update(2)                                       # a worker joined in time: no error, no loss line
    assert watch.count == 2


def _alarm(seconds):
    """A hang guard (not a speed bound): SIGALRM raises after `seconds`."""
    import signal

    def ring(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)


def test_scheduler_without_workers_exits_2_after_its_timeout(capsys):
    """Test `--scheduler` on a real scheduler (loopback) that has no worker: exit 2 after
    --scheduler-timeout, one line naming the address and the workers seen (none)."""
    import signal
    import time

    dd = pytest.importorskip("dask.distributed", reason='Dask is not installed: pip install -e ".[distributed]"')
    with dd.LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address="127.0.0.1:0") as empty:
        _alarm(120)
        try:
            start = time.monotonic()
            code = main(GRIDS["recall-table"] + ["--scheduler", empty.scheduler_address, "--scheduler-timeout", "1.5"])
            waited = time.monotonic() - start
        finally:
            signal.alarm(0)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert empty.scheduler_address in err[0] and "saw no worker" in err[0] and "--scheduler-timeout" in err[0], err
    assert waited >= 1.5                                  # it did wait for workers first


def test_lost_worker_is_reported_and_the_run_completes(tmp_path, capsys):
    """Test that a worker leaving mid-run is reported on stderr and the run still gives the in-process values."""
    import threading
    import time

    dd = pytest.importorskip("dask.distributed", reason='Dask is not installed: pip install -e ".[distributed]"')
    log = tmp_path / "log"
    cells = [Cell(slow_cell, {"x": x, "log": str(log)}, seed=1) for x in range(8)]
    with dd.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                         dashboard_address="127.0.0.1:0") as cluster, dd.Client(cluster) as client:
        def shrink():
            while len(_calls(log)) < 2:
                time.sleep(0.05)
            cluster.scale(1)

        thread = threading.Thread(target=shrink, daemon=True)
        thread.start()
        got = _values(run_cells(cells, SweepOptions(client=client)))
        thread.join(10)
    err = capsys.readouterr().err
    assert "lost 1 worker(s) of 2" in err and "1 left" in err, err
    assert got == [slow_cell(x, str(tmp_path / "log2"), seed=1) for x in range(8)]


def slow_cell(x, log, seed=0):
    """A toy cell taking 0.3 s (so that workers can leave mid-run)."""
    import time

    with open(log, "a") as fh:
        fh.write(f"{x}\n")
    time.sleep(0.3)
    return {"x": x, "seed": seed}
