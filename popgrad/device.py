"""Device and dtype resolution shared by every path (`auto` = CUDA when present, else CPU).

What the machine has is read through a `CudaProbe`, which tests replace by one built by hand
(`resolve_device("auto", cuda=CudaProbe(True, 1))`), so that every branch runs on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from popgrad.errors import PopgradError

DTYPES = {"float64": torch.float64, "float32": torch.float32}


@dataclass(frozen=True)
class CudaProbe:
    """Is CUDA available, and how many devices: `detect()` asks torch; tests build one."""

    available: bool
    count: int = 0

    @classmethod
    def detect(cls) -> "CudaProbe":
        ok = torch.cuda.is_available()
        return cls(ok, torch.cuda.device_count() if ok else 0)


def resolve_device(device: str | torch.device | None = "auto", cuda: CudaProbe | None = None) -> torch.device:
    """Return a torch.device for `auto`, `cpu`, `cuda` or `cuda:N`; raise PopgradError otherwise.
    `cuda`: what the machine has (default `CudaProbe.detect()`)."""
    if isinstance(device, torch.device):
        device = str(device)
    probe = CudaProbe.detect() if cuda is None else cuda
    if device is None or device == "auto":
        return torch.device("cuda" if probe.available else "cpu")
    if not isinstance(device, str):
        raise PopgradError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise PopgradError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from None
        if not probe.available:
            raise PopgradError(f"device {device!r} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= probe.count:
            raise PopgradError(f"device {device!r}: only {probe.count} CUDA device(s)")
        return dev
    raise PopgradError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Return torch.float64 / torch.float32 from a name or dtype; raise PopgradError otherwise."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise PopgradError(f"dtype must be float64 or float32, got {dtype}")
        return dtype
    if dtype not in DTYPES:
        raise PopgradError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return DTYPES[dtype]
