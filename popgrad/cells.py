"""Sweep cells: the plain description of one independent unit of work (core layer).

A grid function of numerics/ describes its work as a list of `Cell`s and takes a `run`
argument, a `Runner`: a callable `run(cells, desc) -> [value of each cell, in order]`. Left at
None it runs them here, one after the other (`run_in_process`); the commands layer passes
`popgrad.sweep.runner(options)`, which adds workers, a Dask scheduler and the cache. So the math
never imports the execution layer, and the execution layer never needs to know the math.

What running work shows, shared by the library, the sweep layer and the CLI: `jsonable` (the
plain JSON form of a result) and `progress` (a progress bar on stderr).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class Cell:
    """One independent unit of a sweep: `fn(**params, seed=seed)` -> JSON-able result.

    `fn` must be a module-level function (it is sent to workers by reference). `params` may hold
    numbers, strings, lists, dicts, numpy arrays and dataclasses of those (hashed by content).
    """

    fn: Callable
    params: dict
    seed: int = 0
    label: str = ""

    @property
    def fn_name(self) -> str:
        return f"{self.fn.__module__}:{self.fn.__qualname__}"


class Runner(Protocol):
    def __call__(self, cells: Sequence[Cell], desc: str = "cells") -> list: ...


def run_in_process(cells: Sequence[Cell], desc: str = "cells") -> list:
    """Run every cell here, in order: `[cell.fn(**cell.params, seed=cell.seed) for cell in cells]`."""
    return [cell.fn(**cell.params, seed=cell.seed) for cell in cells]


def run_with(run: Runner | None, cells: Sequence[Cell], desc: str = "cells") -> list:
    """The values of `cells` through `run` (in process when None)."""
    return (run or run_in_process)(cells, desc)


def jsonable(v, nonfinite_as_text: bool = True):
    """Plain Python for JSON: dicts, lists, numbers, strings (numpy and tensors converted). Non-finite
    floats become the strings 'inf' / 'nan' for the --json outputs, or stay floats
    (`nonfinite_as_text=False`, the sweep cache's JSON with allow_nan)."""
    if isinstance(v, dict):
        return {str(k): jsonable(x, nonfinite_as_text) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x, nonfinite_as_text) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist(), nonfinite_as_text)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) or not nonfinite_as_text else str(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if hasattr(v, "tolist"):
        return jsonable(v.tolist(), nonfinite_as_text)
    return v


def progress(iterable: Iterable | None = None, total: int | None = None, desc: str = ""):
    """A tqdm progress bar on stderr (hidden when stderr is not a terminal)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, disable=None, leave=False)
