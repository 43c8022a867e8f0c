"""Tolerances, declared once per (path, dtype). Every check takes its tolerance from here.

    exact rationals / sympy     : equality (`==` after simplification), no tolerance
    float64 identities          : relative error <= FLOAT64.rtol (norm-relative, see rel_error)
    float32 vs float64          : relative error <= FLOAT32.rtol
    Monte-Carlo vs exact        : |mc - exact| <= MC_Z * stderr + MC_ATOL
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


FLOAT64 = Tolerance(rtol=1e-10, atol=1e-13)
FLOAT32 = Tolerance(rtol=1e-4, atol=1e-6)
MC_Z = 4.0          # standard errors allowed between a Monte-Carlo estimate and its exact value
MC_ATOL = 1e-12


def rel_error(a, b) -> float:
    """Norm-relative error ||a - b|| / max(||b||, tiny), computed in float64."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    denom = max(float(torch.linalg.vector_norm(b)), 1e-300)
    return float(torch.linalg.vector_norm(a - b)) / denom


def max_abs_error(a, b):
    """(largest |a - b|, index where it occurs) for failure messages."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    diff = (a - b).abs()
    flat = int(torch.argmax(diff))
    idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape)) if diff.ndim else ()
    return float(diff.max()) if diff.numel() else 0.0, idx


def nanmax(values) -> float:
    """The largest of the values, a nan counted as inf: a claim whose error is the maximum of its parts fails on a
    nan part (Python's max skips a nan that is not first)."""
    return max((math.inf if math.isnan(v) else v) for v in values)


def worst_key(errors: dict):
    """The key of the largest value of `errors`, a nan counted as inf."""
    return max(errors, key=lambda k: math.inf if math.isnan(errors[k]) else errors[k])
