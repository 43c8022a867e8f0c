"""Sweep cells: the plain description of one independent unit of work (core layer).

A grid function of numerics/ describes its work as a list of `Cell`s and takes a `run`
argument, a `Runner`: a callable `run(cells, desc) -> [value of each cell, in order]`. Left at
None it runs them here, one after the other (`run_in_process`); the commands layer passes
`popgrad.sweep.runner(options)`, which adds workers, a Dask scheduler and the cache. So the math
never imports the execution layer, and the execution layer never needs to know the math.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence


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
