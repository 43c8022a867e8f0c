"""Training precision: float32, or bfloat16 matmuls with float32 master weights; `auto` measures.

`--precision bfloat16` runs the matmuls of the lean training step (`popgrad.numerics.lean_step`
with a bfloat16 `Workspace`) on bfloat16-rounded inputs, while the parameters, the SGD momentum
buffers, the softmax/cross-entropy and every reduction of the loss stay in float32. Whether that
is faster depends on the machine, not on its feature flags alone: a CPU reporting `avx512_bf16`
can still run a bfloat16 step slower than a float32 one. So `auto` decides from a measurement:
a few interleaved timed steps of both paths at the run's shapes on this machine (`time_steps`),
or the same measurement cached in the user cache dir under a key of CPU model, torch version,
threads, device and shapes (`TimingCache`), and it prints the measured ratio. Exact and
population paths (theory/, the dynamics) never use bfloat16.

Everything the choice depends on is injectable, so that each branch runs on any machine:
`Hardware` (CPU model and flags, torch version, threads, CUDA device and its capability) and the
timer (`resolve_precision(..., hardware=, timer=, cache=)`).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from popgrad.errors import PopgradError, choice

PRECISIONS = ("float32", "bfloat16", "auto")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
FASTER = 1.1              # auto picks bfloat16 only if its step is at least this many times faster
DECISIVE = 2.0            # a first round this far from 1 decides at once (the slow path is not timed further)
PROBE_BATCH = 32          # the first round runs at min(batch, PROBE_BATCH)
ROUNDS = 3                # interleaved rounds at the run's batch when the first round is not decisive
CACHE_ENV = "POPGRAD_CACHE_DIR"


@dataclass(frozen=True)
class Precision:
    """The resolved precision of a run: 'float32', 'bfloat16' or 'float64', and why it was chosen."""

    name: str
    reason: str

    @property
    def autocast(self) -> bool:
        """Whether the run's matmuls take bfloat16 inputs (the name kept from the autocast path)."""
        return self.name == "bfloat16"


# ----------------------------------------------------------------------------- what the machine says
def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is unreadable)."""
    return frozenset(_cpuinfo_field(path, "flags").split())


def cpu_model(path: str = "/proc/cpuinfo") -> str:
    """The CPU model name the kernel reports ('' where unknown)."""
    return _cpuinfo_field(path, "model name")


def _cpuinfo_field(path: str, name: str) -> str:
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


@dataclass(frozen=True)
class CudaDevice:
    """A CUDA device as the choice sees it: name, compute capability, bfloat16 support."""

    name: str
    capability: tuple
    bf16_supported: bool


@dataclass(frozen=True)
class Hardware:
    """What the machine reports about itself. `detect` reads it; tests build one per branch."""

    cpu_model: str = ""
    cpu_flags: frozenset = frozenset()
    torch_version: str = torch.__version__
    threads: int = 1
    cuda: CudaDevice | None = None           # the CUDA device a run would use; None without CUDA
    cpu_capability: str = ""                  # torch's CPU kernel level (DEFAULT, AVX2, AVX512)

    @classmethod
    def detect(cls, device="cpu") -> "Hardware":
        device = torch.device(device)
        cuda = None
        if device.type == "cuda":
            major, minor = torch.cuda.get_device_capability(device)
            cuda = CudaDevice(torch.cuda.get_device_name(device), (major, minor), bool(torch.cuda.is_bf16_supported()))
        return cls(cpu_model(), cpu_flags(), torch.__version__, torch.get_num_threads(), cuda,
                   torch.backends.cpu.get_cpu_capability())

    def bf16_claim(self, device_type: str) -> tuple[bool, str]:
        """(does the device claim native bfloat16 matmuls?, the evidence in words). A claim, not a speed."""
        if device_type == "cuda":
            if self.cuda is None:
                return False, "no CUDA device"
            major, minor = self.cuda.capability
            ok = major >= 8 and self.cuda.bf16_supported
            return ok, f"{self.cuda.name} (compute capability {major}.{minor}{'' if ok else ' < 8.0: no bf16 tensor cores'})"
        if device_type == "cpu":
            have = sorted(set(CPU_BF16_FLAGS) & set(self.cpu_flags))
            if have:
                return True, f"CPU reports {', '.join(have)}"
            return False, f"CPU reports neither {' nor '.join(CPU_BF16_FLAGS)}: bfloat16 is emulated"
        return False, f"device type {device_type!r}"

    def key(self, device_type: str) -> str:
        """The part of a cache key that names the machine."""
        where = f"cuda {self.cuda.name} {self.cuda.capability}" if device_type == "cuda" and self.cuda else \
            f"cpu {self.cpu_model or 'unknown'}"
        return f"{where} | torch {self.torch_version} | threads {self.threads}"


def fast_bf16(device, hardware: Hardware | None = None) -> tuple[bool, str]:
    """(does `device` claim native bfloat16?, the evidence). The flag only: `auto` also measures."""
    device = torch.device(device)
    hw = Hardware.detect(device) if hardware is None else hardware
    return hw.bf16_claim(device.type)


# ----------------------------------------------------------------------------- the measurement
@dataclass(frozen=True)
class StepTiming:
    """Seconds per training step of both paths in interleaved rounds, and where they come from."""

    float32_s: tuple
    bfloat16_s: tuple
    batch: int
    source: str = "measured"                 # 'measured' or 'cached'

    @property
    def ratio(self) -> float:
        """Median bfloat16 step / median float32 step (> 1: bfloat16 is slower)."""
        return statistics.median(self.bfloat16_s) / statistics.median(self.float32_s)

    def words(self) -> str:
        r = self.ratio
        how = f"{r:.1f}x slower" if r >= 1 else f"{1 / r:.1f}x faster"
        return (f"bfloat16 step {how} here ({self.source}, batch {self.batch}, "
                f"{len(self.float32_s)} interleaved round{'s' * (len(self.float32_s) != 1)})")


SHAPE_FIELDS = ("data", "N", "T", "K", "d", "batch", "loss", "W_F")


def shape_key(cfg) -> str:
    """The shapes of a TrainConfig that set a step's cost (`SHAPE_FIELDS`)."""
    return ", ".join(f"{k}={getattr(cfg, k)}" for k in SHAPE_FIELDS)


def time_steps(cfg, device, rounds: int = ROUNDS, probe_batch: int = PROBE_BATCH) -> StepTiming:
    """Interleaved timed SGD steps of the float32 and the bfloat16 lean step at `cfg`'s shapes.

    One warm-up step of each, then one timed round at batch min(batch, probe_batch): if one path is
    DECISIVE times faster there, that round decides (a slow emulated path is not timed at the full
    batch). Otherwise `rounds` rounds at the run's own batch.
    """
    from popgrad.numerics import training as trn  # lazy: training imports this module

    def steps(batch: int, n: int) -> StepTiming:
        base = replace(cfg, batch=batch, steps=1, probe_every=1, device=str(device), dtype="float32")
        runs = {p: trn.setup(replace(base, precision=p)) for p in ("float32", "bfloat16")}
        first = runs["float32"]
        z, mask, tgt = next(trn.BatchStream(first.model, first.cfg, first.tab.E.device, seed=0))
        seconds = {p: [] for p in runs}
        for i in range(n + 1):
            for p, run in runs.items():
                _sync(device)
                start = time.perf_counter()
                trn.sgd_step(run, z, mask, tgt, False)
                _sync(device)
                if i:                                            # round 0 is the warm-up
                    seconds[p].append(time.perf_counter() - start)
        return StepTiming(tuple(seconds["float32"]), tuple(seconds["bfloat16"]), batch)

    small = min(cfg.batch, probe_batch)
    first = steps(small, 1)
    if small == cfg.batch and rounds <= 1:
        return first
    if not 1 / DECISIVE < first.ratio < DECISIVE:
        return first
    return steps(cfg.batch, rounds)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- the cache
def cache_dir() -> Path:
    """The user cache dir: $POPGRAD_CACHE_DIR, else $XDG_CACHE_HOME/popgrad, else ~/.cache/popgrad."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "popgrad"


@dataclass
class TimingCache:
    """Measured step timings in one JSON file, by key (machine | torch | threads | device | shapes).

    An unreadable or malformed file reads as empty; a file that cannot be written is skipped (the
    measurement is then simply repeated next time)."""

    path: Path = field(default_factory=lambda: cache_dir() / "precision_timings.json")

    def _read(self) -> dict:
        try:
            data = json.loads(Path(self.path).read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, key: str) -> StepTiming | None:
        rec = self._read().get(key)
        try:
            return StepTiming(tuple(map(float, rec["float32_s"])), tuple(map(float, rec["bfloat16_s"])),
                              int(rec["batch"]), "cached")
        except (TypeError, KeyError, ValueError):
            return None

    def put(self, key: str, timing: StepTiming) -> None:
        data = self._read()
        data[key] = {"float32_s": list(timing.float32_s), "bfloat16_s": list(timing.bfloat16_s),
                     "batch": timing.batch, "ratio": timing.ratio, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        path = Path(self.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".precision-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1)
            os.replace(tmp, path)
        except OSError:
            pass


# ----------------------------------------------------------------------------- the choice
USER_CACHE = "user"


def resolve_precision(precision: str, device, cfg=None, hardware: Hardware | None = None,
                      timer: Callable | None = None, cache=USER_CACHE) -> Precision:
    """'float32' | 'bfloat16' | 'auto' -> Precision. `auto` picks bfloat16 only where a measured
    bfloat16 step at `cfg`'s shapes is at least FASTER times faster than the float32 lean step.

    `hardware` (default: `Hardware.detect(device)`), `timer(cfg, device) -> StepTiming` (default
    `time_steps`) and `cache` (a TimingCache, None for none, default the user cache dir) are the
    injection points. Without `cfg` there are no shapes to measure at, and auto keeps float32.
    """
    choice("precision", precision, PRECISIONS)
    device = torch.device(device)
    hw = Hardware.detect(device) if hardware is None else hardware
    claimed, why = hw.bf16_claim(device.type)
    if precision == "float32":
        return Precision("float32", "requested")
    if precision == "bfloat16":
        return Precision("bfloat16", "requested" if claimed else f"requested; likely slow here: {why}")
    if device.type == "cuda" and not claimed:
        return Precision("float32", f"auto: {why}")
    if device.type not in ("cpu", "cuda"):
        return Precision("float32", f"auto: {why}")
    if cfg is None:
        return Precision("float32", f"auto: no run shapes to measure at; {why}")
    store = TimingCache() if cache == USER_CACHE else cache
    key = f"{hw.key(device.type)} | {device.type} | {shape_key(cfg)}"
    timing = store.get(key) if store is not None else None
    if timing is None:
        timing = (timer or time_steps)(cfg, device)
        if store is not None:
            store.put(key, timing)
    pick = "bfloat16" if timing.ratio * FASTER <= 1 else "float32"
    return Precision(pick, f"auto: {timing.words()}; {why}")


def check_precision(precision: str, dtype: str) -> None:
    """bfloat16 keeps float32 master weights: it needs --dtype float32. With --dtype float64,
    `float32` and `auto` both mean: no reduced precision (float64 throughout, recorded as 'float64').
    'float64', the record of such a run, is accepted back with any dtype: the run's own dtype throughout."""
    if precision == "float64":
        return
    choice("precision", precision, PRECISIONS)
    if precision == "bfloat16" and dtype != "float32":
        raise PopgradError(f"--precision bfloat16 needs --dtype float32 (master weights), got --dtype {dtype}")


def run_precision(precision: str, dtype: str) -> str | None:
    """The precision a run records without measuring: 'float64' for every --dtype float64 run (its
    matmuls run in float64); 'float32' for a float32 run whose config came from a float64 run's
    record; else None (resolve it: `resolve_precision`)."""
    if dtype == "float64":
        return "float64"
    return "float32" if precision == "float64" else None


def autocast(precision: Precision, device):
    """The context in which the autograd reference step runs: bfloat16 autocast, or nothing."""
    if not precision.autocast:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
