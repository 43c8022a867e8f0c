"""Device and dtype resolution shared by every path (`auto` = CUDA when present, else CPU)."""

from __future__ import annotations

import torch

from popgrad.errors import PopgradError

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return a torch.device for `auto`, `cpu`, `cuda` or `cuda:N`; raise PopgradError otherwise."""
    if isinstance(device, torch.device):
        device = str(device)
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str):
        raise PopgradError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise PopgradError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from None
        if not torch.cuda.is_available():
            raise PopgradError(f"device {device!r} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise PopgradError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
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
