"""The execution layer returns the values of the math: cells run in process, through the sweep runner and
from its cache give what a plain loop over the cell function gives (App. E's recall grid as the example).

sweep.runner_values   recall_seed_cell called in a loop == run_with(None) == sweep.runner without cache ==
                      sweep.runner with a fresh cache == the same runner again, read back from the cache;
                      every cell of the grid has its own cache key
"""

from __future__ import annotations

import tempfile

import numpy as np

from popgrad import sweep
from popgrad.cells import run_with
from popgrad.data import uniform_bigram_trigger_model
from popgrad.numerics.recall import recall_cells, recall_seed_cell
from popgrad.registry import Claim, Measurement, register
from popgrad.tolerances import nanmax



def _cells():
    """Two recall grids that differ in one parameter value (batch_size), two seeds each."""
    model = uniform_bigram_trigger_model(8, 24, 1)
    return (recall_cells(model, [16], [1, 2], seeds=2, batch_size=16, seed=3, device="cpu")
            + recall_cells(model, [16], [1, 2], seeds=2, batch_size=24, seed=3, device="cpu"))


def loop_values(cells):
    """The reference: the cell function called once per cell, here."""
    return [recall_seed_cell(**c.params, seed=c.seed) for c in cells]


def _gap(a, b) -> float:
    """Largest |difference| over the fields of two cell values (inf when the shapes differ)."""
    worst = 0.0
    for k in ("pairs", "r1", "probe"):
        x, y = np.asarray(a[k], dtype=np.float64), np.asarray(b[k], dtype=np.float64)
        if x.shape != y.shape:
            return float("inf")
        worst = max(worst, float(np.abs(x - y).max()))
    return worst


def measure_runner_values() -> Measurement:
    cells = _cells()
    ref = loop_values(cells)
    with tempfile.TemporaryDirectory(prefix="popgrad-claim-cache-") as tmp:
        opts = sweep.SweepOptions(cache=tmp)
        paths = {"run_with(None)": run_with(None, cells, "cells"),
                 "sweep.runner, no cache": sweep.runner()(cells, "cells"),
                 "sweep.runner, fresh cache": sweep.runner(opts)(cells, "cells")}
        second = sweep.run_cells(cells, opts, desc="cells")
        paths["sweep.runner, read from the cache"] = [r.value for r in second]
        cached = sum(r.cached for r in second)
    keys = len({sweep.cell_key(c) for c in cells})
    gaps = {name: max(_gap(v, r) for v, r in zip(vals, ref)) if len(vals) == len(ref) else float("inf")
            for name, vals in paths.items()}
    distinct = float(np.ptp([np.asarray(v["r1"]).sum() for v in ref]) > 0)     # the cells' values differ
    ok = cached == len(cells) and keys == len(cells) and distinct
    return Measurement(nanmax(gaps.values()) if ok else float("inf"), 0.0, "exact",
                       note=(f"{len(cells)} recall cells (2 seeds x 2 batch sizes, uniform model C N=8, T=24): every path "
                             f"equals the loop (max |diff| {nanmax(gaps.values()):.1e}); second cached pass {cached}/{len(cells)} "
                             f"from the cache; {keys} distinct keys"),
                       details={"gaps": gaps, "cached": cached, "distinct_keys": keys})


register(Claim(
    id="sweep.runner_values",
    statement="Grid cells give the same values run in process, through the sweep runner, and read back from its "
              "cache, and every cell has its own cache key",
    where="App. E (the recall grid of Figure 9) as the example; the execution layer of every grid command",
    compared="recall_seed_cell called in a loop vs run_with(None), sweep.runner without and with a cache, and the "
             "cached second pass; shared: the cells and their function (the computation being executed)",
    kind="exact", tolerance="== (JSON round trip is exact); every cell cached on the second pass; distinct keys",
    measure=measure_runner_values,
    code=("popgrad.cells.run_in_process", "popgrad.sweep.runner", "popgrad.sweep.run_cells", "popgrad.sweep.cell_key",
          "popgrad.sweep.Cache"),
    sides=(("popgrad.cells.run_in_process", "popgrad.sweep.runner", "popgrad.sweep.run_cells"),
           ("popgrad.claims.sweeps.loop_values",))))
