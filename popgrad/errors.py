"""One error type for bad input, and the validators every public function uses.

Every message names the offending argument, so that a user sees
`popgrad: error: N must be a positive integer, got 0` and never a numpy traceback.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


class PopgradError(ValueError):
    """Bad argument to a popgrad function or command (the message names the argument)."""


def positive_int(name: str, value, minimum: int = 1) -> int:
    """Return `value` as int if it is an integer >= `minimum`, else raise PopgradError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            value = int(value)
        else:
            raise PopgradError(f"{name} must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise PopgradError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def positive_int_list(name: str, values) -> list[int]:
    """Return `values` (a non-empty sequence of integers >= 1) as a list, else raise PopgradError."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") or hasattr(values, "shape") and not values.shape:
        raise PopgradError(f"{name} must be a non-empty list of positive integers, got {values!r}")
    values = list(values)
    if not values:
        raise PopgradError(f"{name} must be a non-empty list of positive integers, got []")
    return [positive_int(f"{name}[{i}]", v) for i, v in enumerate(values)]


def positive_float(name: str, value, allow_zero: bool = False) -> float:
    """Return `value` as a finite float > 0 (or >= 0), else raise PopgradError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PopgradError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise PopgradError(f"{name} must be a finite number {bound}, got {value}")
    return value


def probability_vector(name: str, p, size: int | None = None, atol: float = 1e-9) -> np.ndarray:
    """Validate a probability vector (finite, non-negative, sums to one) as float64."""
    try:
        arr = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError):
        raise PopgradError(f"{name} must be an array of probabilities, got {type(p).__name__}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise PopgradError(f"{name} must be a non-empty 1-d array, got shape {arr.shape}")
    if size is not None and arr.size != size:
        raise PopgradError(f"{name} must have {size} entries, got {arr.size}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise PopgradError(f"{name} must be finite and non-negative")
    if abs(arr.sum() - 1.0) > atol:
        raise PopgradError(f"{name} must sum to 1, sums to {arr.sum():.6g}")
    return arr


def probability_table(name: str, p, shape: tuple[int, ...] | None = None,
                      rows: bool = False, atol: float = 1e-9) -> np.ndarray:
    """Validate a probability table: all entries sum to one, or each row does (`rows=True`)."""
    try:
        arr = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError):
        raise PopgradError(f"{name} must be an array of probabilities, got {type(p).__name__}") from None
    if arr.ndim != 2 or arr.size == 0:
        raise PopgradError(f"{name} must be a non-empty 2-d array, got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise PopgradError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise PopgradError(f"{name} must be finite and non-negative")
    sums = arr.sum(axis=1) if rows else np.array([arr.sum()])
    bad = np.flatnonzero(np.abs(sums - 1.0) > atol)
    if bad.size:
        where = f"row {bad[0]} " if rows else ""
        raise PopgradError(f"{name} {where}must sum to 1, sums to {sums[bad[0]]:.6g}")
    return arr


def choice(name: str, value, options) -> str:
    """Validate that `value` is one of `options`."""
    if value not in options:
        raise PopgradError(f"{name} must be one of {', '.join(map(str, options))}; got {value!r}")
    return value


def memory_budget(name: str, n_float64: float, limit_bytes: float | None = None) -> None:
    """Refuse up front a request that needs more memory than is available, with the estimate."""
    need = 8.0 * float(n_float64)
    if limit_bytes is None:
        limit_bytes = available_memory_bytes() * 0.8
    if need > limit_bytes:
        raise PopgradError(
            f"{name} needs about {need / 2**30:.1f} GiB, more than the {limit_bytes / 2**30:.1f} GiB "
            "available; reduce the sizes")


def available_memory_bytes() -> float:
    """Physical memory available now (Linux /proc/meminfo; 8 GiB if unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 8.0 * 2**30
