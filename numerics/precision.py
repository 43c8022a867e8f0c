"""Training precision: float32, or bfloat16 matmuls under autocast with float32 master weights.

`--precision bfloat16` runs the forward and backward matmuls of the training model in bfloat16
(torch.autocast) while the parameters, the SGD momentum buffers, the softmax/cross-entropy and
every reduction of the loss stay in float32. It pays only where the hardware multiplies bfloat16
natively: CPUs with AMX (`amx_bf16`) or AVX-512 BF16 (`avx512_bf16`), and CUDA GPUs of compute
capability 8.0 or higher (tensor cores). Elsewhere torch emulates bfloat16 matmuls, correctly
but far slower than float32, so `auto` picks float32 there and says why. Exact and population
paths (theory/, the dynamics) never use this: they stay float64/float32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from popgrad.errors import PopgradError, choice

PRECISIONS = ("float32", "bfloat16", "auto")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class Precision:
    """The resolved precision of a run: 'float32' or 'bfloat16', and why it was chosen."""

    name: str
    reason: str

    @property
    def autocast(self) -> bool:
        return self.name == "bfloat16"


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is unreadable)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def fast_bf16(device) -> tuple[bool, str]:
    """(does `device` multiply bfloat16 natively?, the evidence in words)."""
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        name = torch.cuda.get_device_name(device)
        ok = major >= 8 and torch.cuda.is_bf16_supported()
        return ok, f"{name} (compute capability {major}.{minor}{'' if ok else ' < 8.0: no bf16 tensor cores'})"
    if device.type == "cpu":
        have = sorted(set(CPU_BF16_FLAGS) & cpu_flags())
        if have:
            return True, f"CPU with {', '.join(have)}"
        return False, (f"CPU without {' or '.join(CPU_BF16_FLAGS)} "
                       f"(torch CPU capability {torch.backends.cpu.get_cpu_capability()}): bfloat16 is emulated")
    return False, f"device type {device.type!r}"


def resolve_precision(precision: str, device) -> Precision:
    """'float32' | 'bfloat16' | 'auto' -> Precision; `auto` picks bfloat16 only where it is fast."""
    choice("precision", precision, PRECISIONS)
    ok, why = fast_bf16(device)
    if precision == "auto":
        return Precision("bfloat16", f"auto: {why}") if ok else Precision("float32", f"auto: {why}")
    if precision == "bfloat16" and not ok:
        return Precision("bfloat16", f"requested; slow here: {why}")
    return Precision(precision, "requested")


def check_precision(precision: str, dtype: str) -> None:
    """bfloat16 autocast keeps float32 master weights: it needs --dtype float32. With another
    dtype, `float32` and `auto` both mean: no reduced precision (the run's own dtype throughout)."""
    choice("precision", precision, PRECISIONS)
    if precision == "bfloat16" and dtype != "float32":
        raise PopgradError(f"--precision bfloat16 needs --dtype float32 (master weights), got --dtype {dtype}")


def autocast(precision: Precision, device):
    """The context in which the model's forward runs: bfloat16 autocast, or nothing."""
    if not precision.autocast:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
