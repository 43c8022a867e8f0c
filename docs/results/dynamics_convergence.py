"""Collect the convergence-in-n runs of `popgrad dynamics` from a sweep cache into one table.

Each run was made with (one command per line of the plan, any seed ranges; cells are cached per seed):
    OMP_NUM_THREADS=1 python -m popgrad dynamics --N 32 --T 16 --d 256 --etas 30:300:300 --schedule KIND \
        --population POP --n N --n-eval 2048 --k 200 --seed S0 --seeds S --stop --cache CACHE --json
This script reads only cached cells (it computes nothing) and writes markdown and JSON:
    python docs/results/dynamics_convergence.py CACHE docs/results/dynamics_convergence
"""

import json
import os
import sys

from popgrad.cells import Cell
from popgrad.commands.dynamics import dynamics_cell, summarize
from popgrad.sweep import cell_key

BASE = {"N": 32, "T": 16, "d": 256, "dtype": "float32", "device": "cpu", "k": 200, "rounds": 1, "loss": "full",
        "phat": "uniform", "n_eval": 2048, "stop_at": 0.9, "etas": {"W_O2": 30.0, "W_K2": 300.0, "W_K1": 300.0}}
SETTINGS = [(kind, pop, n) for kind in ("joint", "alternating") for pop in ("mc", "fixed")
            for n in (2048, 8192, 32768, 131072)]


def load(cache, kind, pop, n):
    """{seed: curve rows} of the cached cells of one setting."""
    out = {}
    for seed in range(20):
        params = {**BASE, "kind": kind, "population": pop, "n": n}
        path = os.path.join(cache, cell_key(Cell(dynamics_cell, params, seed)) + ".json")
        if os.path.exists(path):
            rec = json.load(open(path))
            out[seed] = {"rows": rec["value"], "seconds": rec["seconds"]}
    return out


def first(rows, th):
    return next((r["step"] for r in rows if r["accuracy"] >= th), None)


def main(cache, prefix):
    table, data = [], {}
    for kind, pop, n in SETTINGS:
        runs = load(cache, kind, pop, n)
        if not runs:
            continue
        rows = [r for s in sorted(runs) for r in runs[s]["rows"]]
        summ = {s["threshold"]: s for s in summarize(rows, [0.5, 0.9])}
        data[f"{kind}/{pop}/{n}"] = {"seeds": sorted(runs), "first": {th: {s: first(runs[s]["rows"], th) for s in runs}
                                                                      for th in (0.5, 0.9)},
                                     "seconds": {s: runs[s]["seconds"] for s in runs}}
        cells = []
        for th in (0.5, 0.9):
            s = summ[th]
            med = "-" if s["steps_median"] is None else f"{s['steps_median']:.0f}"
            lo = "-" if s["steps_median_lo"] is None else f"{s['steps_median_lo']:.0f}"
            hi = "inf" if s["steps_median_hi"] is None else f"{s['steps_median_hi']:.0f}"
            cells.append(f"{med} [{lo}, {hi}] | {s['reached']}/{s['seeds']}")
        per = "; ".join(f"{s}: {first(runs[s]['rows'], 0.5)}/{first(runs[s]['rows'], 0.9)}" for s in sorted(runs))
        secs = sum(r["seconds"] for r in runs.values()) / len(runs)
        table.append(f"| {kind} | {pop} | {n} | {len(runs)} | {cells[0]} | {cells[1]} | {secs:.0f} | {per} |")
    head = ("| schedule | samples | n per step | seeds | median step to 0.5 [95% CI] | reached 0.5 | "
            "median step to 0.9 [95% CI] | reached 0.9 | wall s per seed | per seed 0.5/0.9 |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    md = head + "\n" + "\n".join(table) + "\n"
    open(prefix + ".md", "w").write(md)
    json.dump(data, open(prefix + ".json", "w"), indent=1, default=str)
    print(md)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
