"""One sweep layer for every grid command: cells run in-process, on a Dask cluster, with a cache.

A sweep is a list of `Cell`s. A cell is a pure function of its parameters, its seed and the
popgrad version: `fn(**params, seed=seed)` returns a JSON-able result. Cells run

- in-process (default), one after the other;
- on a local process pool (`--workers N`: a Dask LocalCluster on the loopback interface);
- on an existing Dask cluster (`--scheduler ADDRESS`, e.g. one started by dask-jobqueue).

With `--cache DIR` every finished cell is written to DIR/<key>.json, where the key is a SHA-256
of the function's name, its parameters (arrays and dataclasses by content), the seed, the popgrad
version and a hash of popgrad's source (every .py file of popgrad, popgrad.theory and
popgrad.numerics, `source_hash`): a code change gives new keys. A re-run reads the finished cells
and computes only the missing ones. Each file also carries that source hash and a checksum of its
own content; a file that does not parse, does not match its key, fails its checksum (an edited
value) or was written by other sources is reported with a `SweepCacheWarning` and recomputed.
Writes are atomic (temporary file + os.replace), so a kill never leaves a half-written cell.
`popgrad cache list|verify|clear DIR` inspects and empties a cache; `popgrad cache sources DIR` lists
the popgrad sources that wrote its cells.

A long sweep need not be recomputed after an unrelated code change: with `reuse_other_sources`
(`--reuse-other-sources`) a cell missing under this code's key is read from the file another popgrad
source wrote for the same function, parameters and seed (checksum and key checked as for any cell).
That is only sound if the change left the cell's value alone, so the run first recomputes, for each
other source it reuses, its fastest reused cell here and requires the same value bit for bit; any
difference stops the run with a PopgradError before a reused value is returned.

Every result goes through one JSON round trip whether it was computed here, on a worker or read
from the cache, so the three give identical values. Dask is optional: the core never imports it
unless a cluster is asked for.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import math
import os
import re
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

import popgrad
from popgrad.cells import Cell, jsonable
from popgrad.errors import PopgradError

INSTALL_HINT = 'pip install -e ".[distributed]"'
CACHE_FORMAT = 2
SOURCE_PACKAGES = ("popgrad", "popgrad.theory", "popgrad.numerics")
DEFAULT_SCHEDULER_TIMEOUT = 60.0
POLL_SECONDS = 0.2                      # how often a distributed run looks at its results and workers


class SweepCacheWarning(UserWarning):
    """A cache file was unreadable, edited, written by other sources or did not match its key; the cell is recomputed."""


# ----------------------------------------------------------------------------- cells and keys
@dataclass(frozen=True)
class CellResult:
    """The value of a cell, the seconds it took when it was computed, whether it came from the cache, and
    the source hash that computed it when that was not this code (`reuse_other_sources`)."""

    value: Any
    seconds: float
    cached: bool
    source: str | None = None


def canonical(obj):
    """A JSON-able, order-independent description of `obj` for hashing (arrays by SHA-256 of content)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return {"float": repr(float(obj))}
    if isinstance(obj, dict):
        return {"dict": sorted([str(k), canonical(v)] for k, v in obj.items())}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if type(obj).__module__.startswith("torch"):
        if not hasattr(obj, "detach"):                           # torch.device, torch.dtype
            return {"torch": str(obj)}
        obj = obj.detach().cpu().numpy()                         # a tensor: hashed by content
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return {"array": hashlib.sha256(arr.tobytes()).hexdigest(), "dtype": str(arr.dtype), "shape": list(arr.shape)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}   # compare=False ones too
        return {"dataclass": f"{type(obj).__module__}.{type(obj).__qualname__}", "fields": canonical(fields)}
    raise PopgradError(f"sweep: cannot hash a parameter of type {type(obj).__name__}")


def source_files(packages: Sequence[str] = SOURCE_PACKAGES) -> dict[str, str]:
    """{'popgrad/theory/exact.py': absolute path, ...}: every .py file of the installed packages,
    named by package (so a source checkout and an installed wheel give the same names)."""
    files: dict[str, str] = {}
    for package in packages:
        spec = importlib.util.find_spec(package)
        folders = list(spec.submodule_search_locations or []) if spec else []
        top = package.replace(".", "/")
        for folder in folders[:1]:            # popgrad's second entry, in a checkout, is the checkout root
            for here, dirs, names in os.walk(folder):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
                for name in names:
                    if name.endswith(".py"):
                        rel = os.path.relpath(os.path.join(here, name), folder).replace(os.sep, "/")
                        files.setdefault(f"{top}/{rel}", os.path.join(here, name))
    return files


def hash_sources(files: dict[str, str]) -> str:
    """SHA-256 over (name, content) of every file, in name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        with open(files[name], "rb") as fh:
            content = fh.read()
        digest.update(f"{name}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def source_hash() -> str:
    """The hash of the popgrad source running in this process (computed once)."""
    return hash_sources(source_files())


def cell_key(cell: Cell, version: str | None = None, source: str | None = None) -> str:
    """SHA-256 of (function, parameters, seed, popgrad version, source hash): the cell's cache file name."""
    desc = {"fn": cell.fn_name, "params": canonical(cell.params), "seed": int(cell.seed),
            "popgrad": popgrad.__version__ if version is None else version,
            "source": source_hash() if source is None else source}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()


def normalize(value):
    """The value after one JSON round trip (tuples -> lists, numpy -> Python; inf and nan kept)."""
    return json.loads(json.dumps(jsonable(value, nonfinite_as_text=False), allow_nan=True))


def execute(fn: Callable, params: dict, seed: int) -> dict:
    """Run one cell (here or on a worker): {'value': normalized result, 'seconds': wall time,
    'popgrad': version, 'source': source hash} (the version and sources where the cell ran)."""
    t0 = time.perf_counter()
    value = normalize(fn(**params, seed=seed))
    return {"value": value, "seconds": time.perf_counter() - t0, "popgrad": popgrad.__version__,
            "source": source_hash()}


# ----------------------------------------------------------------------------- cache
def checksum(record: dict) -> str:
    """SHA-256 of a cache record's content (every field but the checksum itself)."""
    body = {k: v for k, v in record.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=True).encode()).hexdigest()


def inspect_file(path: str) -> tuple[str, dict | None, str]:
    """(status, record, why) of one cache file: 'ok' (usable by this code), 'stale' (written by other
    popgrad sources or version: never read, only recomputed) or 'bad' (unreadable, not a cache
    record, its name is not its key, or its checksum does not match its content)."""
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError) as exc:                         # json.JSONDecodeError is a ValueError
        return "bad", None, f"is corrupted ({type(exc).__name__}: {exc})"
    if not isinstance(record, dict) or record.get("format") != CACHE_FORMAT or "value" not in record:
        return "bad", None, "is corrupted (not a popgrad cache record of this format)"
    if record.get("checksum") != checksum(record):
        return "bad", record, "was edited or damaged: its checksum does not match its content"
    if os.path.basename(path) != f"{record.get('key')}.json":
        return "bad", record, "is corrupted: its key does not match its file name"
    if record.get("source") != source_hash() or record.get("popgrad") != popgrad.__version__:
        return "stale", record, (f"was written by other popgrad sources (source {str(record.get('source'))[:12]}, "
                                 f"this code {source_hash()[:12]})")
    return "ok", record, ""


def cache_files(directory: str) -> list[str]:
    """The cell files of a cache directory (<64 hex digits>.json), sorted."""
    names = [n for n in os.listdir(directory) if n.endswith(".json") and len(n) == 69
             and all(c in "0123456789abcdef" for c in n[:64])]
    return [os.path.join(directory, n) for n in sorted(names)]


def cache_sources(directory: str) -> dict[tuple[str, str], int]:
    """{(popgrad version, source hash): number of cell files} of the cache records in `directory`
    (files that are not cache records of this format are left out; `popgrad cache verify` names them)."""
    counts: dict[tuple[str, str], int] = {}
    for path in cache_files(directory):
        code = _record_code(path)
        if code is not None:
            counts[code] = counts.get(code, 0) + 1
    return counts


def _record_code(path: str) -> tuple[str, str] | None:
    """(version, source) of a cache record, read from the file's head where `Cache.store` writes them."""
    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.read(1024)
        version, source = (_HEAD_FIELD[f].search(head) for f in ("popgrad", "source"))
        if version and source:
            return version.group(1), source.group(1)
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != CACHE_FORMAT:
        return None
    return str(record.get("popgrad")), str(record.get("source"))


_HEAD_FIELD = {f: re.compile(rf'^\{{"format": {CACHE_FORMAT}, .*?"{f}": "([^"]*)"') for f in ("popgrad", "source")}


class Cache:
    """A directory of finished cells, one JSON file per key, written atomically."""

    def __init__(self, directory: str):
        self.directory = ensure_cache_dir(directory)
        self._other_codes: list[tuple[str, str]] | None = None

    def path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}.json")

    def load(self, key: str, cell: Cell) -> CellResult | None:
        """The cached result, None if absent; a file failing any check is warned about and ignored."""
        path = self.path(key)
        if not os.path.exists(path):
            return None
        record, why = _cell_record(path, cell, "ok")
        if record is None:
            warnings.warn(f"popgrad sweep: cache file {path} {why}; recomputing the cell",
                          SweepCacheWarning, stacklevel=3)
            return None
        return CellResult(record["value"], _seconds(record), True)

    def other_codes(self) -> list[tuple[str, str]]:
        """The (version, source) pairs other than this code's that wrote cells here, most cells first."""
        if self._other_codes is None:
            counts = cache_sources(self.directory)
            counts.pop((popgrad.__version__, source_hash()), None)
            self._other_codes = sorted(counts, key=lambda code: (-counts[code], code))
        return self._other_codes

    def find(self, cell: Cell) -> CellResult | None:
        """The cell as this code or, failing that, another popgrad source cached it (no recomputation check:
        for reading finished sweeps whose sources are known to agree)."""
        return self.load(cell_key(cell), cell) or self.load_other(cell)

    def load_other(self, cell: Cell) -> CellResult | None:
        """The cell as another popgrad source wrote it (same function, parameters and seed), None if no
        other source did; files failing the checks of `load` (checksum, key, content) are warned about
        and skipped."""
        for version, source in self.other_codes():
            path = self.path(cell_key(cell, version=version, source=source))
            if not os.path.exists(path):
                continue
            record, why = _cell_record(path, cell, "stale", popgrad=version, source=source)
            if record is None:
                warnings.warn(f"popgrad sweep: cache file {path} {why}; not reused", SweepCacheWarning, stacklevel=3)
                continue
            return CellResult(record["value"], _seconds(record), True, source=source)
        return None

    def store(self, key: str, cell: Cell, value, seconds: float) -> None:
        """Write the record (with its checksum) to a temporary file in the same directory, then
        os.replace it into place."""
        record = {"format": CACHE_FORMAT, "key": key, "fn": cell.fn_name, "seed": int(cell.seed),
                  "popgrad": popgrad.__version__, "source": source_hash(), "label": cell.label,
                  "seconds": round(float(seconds), 4), "written": time.strftime("%Y-%m-%dT%H:%M:%S"), "value": value}
        record["checksum"] = checksum(record)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh, allow_nan=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path(key))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


def _cell_record(path: str, cell: Cell, usable: str, **expected) -> tuple[dict | None, str]:
    """(record, '') when `inspect_file` gives the file status `usable` ('ok': this code's; 'stale': another
    source's) and the record holds `cell` (its function and seed, and the `expected` fields); (None, why)
    otherwise."""
    status, record, why = inspect_file(path)
    if status == usable and (record.get("fn") != cell.fn_name or record.get("seed") != int(cell.seed)
                             or any(record.get(k) != v for k, v in expected.items())):
        status, why = "bad", "is corrupted: its key does not match its content"
    return (record, "") if status == usable else (None, why)


def _seconds(record: dict) -> float:
    try:
        return float(record.get("seconds", math.nan))
    except (TypeError, ValueError):
        return math.nan


def ensure_cache_dir(directory: str) -> str:
    """Create the cache directory if needed and check it is writable (PopgradError otherwise)."""
    if not directory or not str(directory).strip():
        raise PopgradError("--cache: expected a directory, got an empty string")
    directory = os.path.abspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise PopgradError(f"--cache: {directory!r} exists and is not a directory")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise PopgradError(f"--cache: cannot create {directory!r}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PopgradError(f"--cache: directory {directory!r} is not writable")
    return directory


# ----------------------------------------------------------------------------- options
@dataclass
class SweepOptions:
    """Where cells run (workers / scheduler / an existing client) and where they are cached."""

    workers: int | None = None
    scheduler: str | None = None
    cache: str | None = None
    client: Any = field(default=None, repr=False)       # a dask.distributed.Client (tests, notebooks)
    scheduler_timeout: float = DEFAULT_SCHEDULER_TIMEOUT  # seconds to wait for a first (or a new) worker
    reuse_other_sources: bool = False                   # read cells other popgrad sources cached (checked first)

    @property
    def distributed(self) -> bool:
        return self.client is not None or self.workers is not None or self.scheduler is not None


def options_from_args(args) -> SweepOptions:
    """SweepOptions from --workers / --scheduler / --cache, checked before any computing."""
    opts = SweepOptions(getattr(args, "workers", None), getattr(args, "scheduler", None), getattr(args, "cache", None),
                        scheduler_timeout=getattr(args, "scheduler_timeout", None) or DEFAULT_SCHEDULER_TIMEOUT,
                        reuse_other_sources=bool(getattr(args, "reuse_other_sources", False)))
    validate_options(opts)
    return opts


def validate_options(opts: SweepOptions) -> None:
    """Refuse up front: both --workers and --scheduler, dask missing, an unusable cache directory."""
    if opts.workers is not None and opts.scheduler is not None:
        raise PopgradError("--workers and --scheduler exclude each other (--scheduler uses the cluster's workers)")
    timeout = opts.scheduler_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise PopgradError(f"--scheduler-timeout: expected a finite number of seconds > 0, got {timeout!r}")
    if opts.distributed and opts.client is None:
        require_dask()
    if opts.cache is not None:
        ensure_cache_dir(opts.cache)
    elif opts.reuse_other_sources:
        raise PopgradError("--reuse-other-sources: needs --cache DIR (the cache whose cells it reuses)")


def require_dask():
    """Import dask.distributed or raise a one-line PopgradError saying how to install it."""
    try:
        import dask.distributed as dd
    except ImportError:
        raise PopgradError(f"--workers/--scheduler need Dask: {INSTALL_HINT}") from None
    return dd


def local_cluster(workers: int):
    """A LocalCluster of `workers` processes, one thread each; scheduler, workers and the
    scheduler's HTTP endpoint listen on 127.0.0.1 only (random free ports)."""
    import logging

    dd = require_dask()
    import dask

    # The workers' statistical profiler samples the running thread every 10 ms, which only costs
    # time for cells of many small torch calls; off (the nanny passes the configuration on).
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        return dd.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)


def _worker_code() -> tuple[str, str]:
    import popgrad.sweep as sw  # lazy: the module as loaded on the worker; as loaded on the worker

    return sw.popgrad.__version__, sw.source_hash()


def check_worker_versions(client) -> None:
    """Refuse a cluster whose workers run another popgrad version or other popgrad sources (cells
    are keyed by both). Workers that join later are checked on each result."""
    try:
        codes = client.run(_worker_code)
    except Exception as exc:                                     # e.g. popgrad missing on a worker
        raise PopgradError(f"--scheduler: the workers cannot run popgrad ({type(exc).__name__}: {exc}); "
                           "install the same popgrad on them") from None
    for addr, (version, source) in codes.items():
        _check_code(addr, version, source)


def _check_code(where, version, source):
    if version != popgrad.__version__:
        raise PopgradError(f"--scheduler: worker {where} runs popgrad {version}, this process {popgrad.__version__}; "
                           "install the same version on the workers")
    if source != source_hash():
        raise PopgradError(f"--scheduler: worker {where} runs other popgrad sources ({source[:12]}, this process "
                           f"{source_hash()[:12]}); install the same popgrad on the workers")


# ----------------------------------------------------------------------------- running
def run_cells(cells: Sequence[Cell], options: SweepOptions | None = None, desc: str = "cells") -> list[CellResult]:
    """Run every cell (reading/writing the cache when asked); results in the order of `cells`.

    One progress bar counts cells done / total (cached cells count as done from the start). If a
    cell raises, every cell that finished is already in the cache; the first error is re-raised.
    """
    options = options or SweepOptions()
    validate_options(options)
    cells = list(cells)
    cache = Cache(options.cache) if options.cache is not None else None
    keys = [cell_key(c) for c in cells]
    results: list[CellResult | None] = [None] * len(cells)
    if cache is not None:
        for i, (c, k) in enumerate(zip(cells, keys)):
            results[i] = cache.load(k, c)
        if options.reuse_other_sources:
            _reuse_other_sources(cells, keys, results, cache)
    todo = [i for i, r in enumerate(results) if r is None]
    bar = _bar(len(cells), len(cells) - len(todo), desc)
    try:
        if todo and options.distributed:
            _run_dask(cells, keys, todo, results, cache, options, bar)
        else:
            for i in todo:
                _finish(i, execute(cells[i].fn, cells[i].params, cells[i].seed), cells, keys, results, cache, bar)
    finally:
        bar.close()
    return results  # type: ignore[return-value]


def _reuse_other_sources(cells, keys, results, cache) -> None:
    """Fill the missing results from cells other sources cached, after recomputing, for each such source,
    its fastest reused cell here and finding the same value (PopgradError otherwise)."""
    reused, by_source = {}, {}
    for i in [i for i, r in enumerate(results) if r is None]:
        found = cache.load_other(cells[i])
        if found is not None:
            reused[i] = found
            by_source.setdefault(found.source, []).append(i)
    for source, idx in by_source.items():
        i = min(idx, key=lambda j: (math.inf if math.isnan(reused[j].seconds) else reused[j].seconds, j))
        out = execute(cells[i].fn, cells[i].params, cells[i].seed)
        if not same_value(out["value"], reused[i].value):
            raise PopgradError(
                f"--reuse-other-sources: cell {cells[i].label or cells[i].fn_name} (seed {cells[i].seed}) computed by "
                f"this code differs from the one source {source[:12]} cached, so that source's {len(idx)} cells "
                f"cannot stand in for this code's; rerun without --reuse-other-sources")
        cache.store(keys[i], cells[i], out["value"], out["seconds"])
        reused[i] = CellResult(out["value"], out["seconds"], False)
    for i, r in reused.items():
        results[i] = r
    if reused:
        counts = ", ".join(f"{len(idx)} from {source[:12]}" for source, idx in by_source.items())
        print(f"--reuse-other-sources: {len(reused)} cells read from other popgrad sources ({counts}); the fastest "
              f"cell of each source was recomputed here and is identical", file=sys.stderr)


def same_value(a, b) -> bool:
    """Whether two normalized cell values are identical (NaN equal to NaN, 0.0 distinct from -0.0)."""
    return json.dumps(a, sort_keys=True, allow_nan=True) == json.dumps(b, sort_keys=True, allow_nan=True)


def runner(options: SweepOptions | None = None):
    """A `popgrad.cells.Runner` that runs cells through `run_cells` with `options` (workers,
    scheduler, cache): what the commands layer hands to the grid functions of numerics/."""
    options = options or SweepOptions()
    validate_options(options)

    def run(cells: Sequence[Cell], desc: str = "cells") -> list:
        return [r.value for r in run_cells(cells, options, desc=desc)]

    return run


def _finish(i, out, cells, keys, results, cache, bar) -> None:
    results[i] = CellResult(out["value"], out["seconds"], False)
    if cache is not None:
        cache.store(keys[i], cells[i], out["value"], out["seconds"])
    bar.update(1)


def _run_dask(cells, keys, todo, results, cache, options, bar) -> None:
    dd = require_dask()
    cluster = client = None
    try:
        if options.client is not None:
            client = options.client
        elif options.scheduler is not None:
            try:
                client = dd.Client(options.scheduler, timeout=10)
            except (OSError, TimeoutError, ValueError) as exc:
                raise PopgradError(f"--scheduler: cannot connect to {options.scheduler!r}: {exc}") from None
        else:
            cluster = local_cluster(options.workers)
            client = dd.Client(cluster)
        where = options.scheduler or getattr(getattr(client, "scheduler", None), "address", None) or "the cluster"
        watch = WorkerWatch(where, options.scheduler_timeout, option="--workers" if options.workers else "--scheduler")
        watch.wait_for_first(lambda: _count_workers(client), bar)
        check_worker_versions(client)
        run_id = uuid.uuid4().hex[:8]                               # fresh task keys on every run
        futures = {client.submit(execute, cells[i].fn, cells[i].params, cells[i].seed, pure=False,
                                 key=f"popgrad-cell-{i}-{keys[i][:12]}-{run_id}"): i for i in todo}
        error = None
        ready = dd.as_completed(futures)
        remaining = len(futures)
        while remaining:
            batch = ready.next_batch(block=False)
            if not batch:
                watch.update(_count_workers(client), bar)
                time.sleep(POLL_SECONDS)
                continue
            for fut in batch:
                remaining -= 1
                i = futures[fut]
                try:
                    out = fut.result()
                except Exception as exc:                          # keep caching the others
                    error = error or exc
                    continue
                _check_code("running a cell", out["popgrad"], out["source"])
                _finish(i, out, cells, keys, results, cache, bar)
        if error is not None:
            raise error
    finally:
        if options.client is None and client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def _count_workers(client) -> int:
    """How many workers the scheduler has now (one round trip)."""
    return len(client.nthreads())


class WorkerWatch:
    """The workers of a distributed run: waits for a first one, reports losses on stderr, shows the
    count on the progress bar, and gives up when none has been there for `timeout` seconds."""

    def __init__(self, address: str, timeout: float, option: str = "--scheduler",
                 clock: Callable[[], float] = time.monotonic, err=None):
        self.address, self.timeout, self.option, self.clock, self.err = address, float(timeout), option, clock, err
        self.count = 0            # workers at the last look
        self.most = 0             # the most workers seen at once
        self.empty_since = None   # when the count last dropped to zero

    def wait_for_first(self, count: Callable[[], int], bar=None) -> int:
        """Block until the cluster has a worker; PopgradError (address, workers seen) after `timeout` s."""
        self.empty_since = self.clock()
        while True:
            self.update(count(), bar)
            if self.count:
                return self.count
            time.sleep(POLL_SECONDS)

    def update(self, n: int, bar=None) -> None:
        """Record the worker count `n`: a loss is reported on stderr; none for `timeout` s raises."""
        now = self.clock()
        if n < self.count:
            self._say(bar, f"popgrad sweep: lost {self.count - n} worker(s) of {self.count} on {self.address}; "
                      f"{n} left" + ("" if n else f", waiting up to {self.timeout:g} s for a new one"))
        if n == 0 and (self.count or self.empty_since is None):
            self.empty_since = now
        self.count, self.most = n, max(self.most, n)
        if bar is not None:
            bar.set_postfix_str(f"{n} worker{'s' if n != 1 else ''}", refresh=False)
        if n == 0 and now - self.empty_since >= self.timeout:
            seen = "no worker" if not self.most else f"{self.most} worker{'s' if self.most != 1 else ''} at most, none now"
            raise PopgradError(f"{self.option}: {self.address} had no worker for {self.timeout:g} s (saw {seen}); "
                               "start workers on it or raise --scheduler-timeout")

    def _say(self, bar, line: str) -> None:
        if bar is not None and hasattr(bar, "write"):            # above the progress bar, not through it
            bar.write(line, file=self.err or sys.stderr)
        else:
            print(line, file=self.err or sys.stderr, flush=True)


def _bar(total: int, done: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=desc, unit="cell", file=sys.stderr, disable=None, leave=False)


# ----------------------------------------------------------------------------- CLI helpers
def describe(options: SweepOptions) -> dict:
    """How a sweep ran, for the run metadata."""
    where = ("client" if options.client is not None else f"scheduler {options.scheduler}" if options.scheduler
             else f"LocalCluster({options.workers} workers)" if options.workers else "in-process")
    return {"execution": where, "cache": options.cache}
