"""The convergence-in-n runs of `popgrad dynamics`: run them (sweep layer, resumable cache) and tabulate them.

Every row of the plan is `popgrad dynamics` at N=32, T=16, d=256, etas 30:300:300, float32, 2048 evaluation
sequences, stopped at 0.9 with a budget of 200 steps (joint) / 200 per layer (alternating); the same cells as
    OMP_NUM_THREADS=1 python -m popgrad dynamics --N 32 --T 16 --d 256 --etas 30:300:300 --schedule KIND \\
        --population POP --n N --n-eval 2048 --k 200 --seed S0 --seeds S --stop --cache CACHE --json
Run the plan (any part of it; cached cells are skipped), then write markdown and JSON from the cache:
    OMP_NUM_THREADS=1 python docs/results/dynamics_convergence.py run CACHE --workers 2 --reuse-other-sources
    python docs/results/dynamics_convergence.py report CACHE docs/results/dynamics_convergence
"""

import argparse
import json
import math

from popgrad.cells import Cell
from popgrad.commands.dynamics import dynamics_cell, summarize
from popgrad.sweep import Cache, SweepOptions, run_cells

BASE = {"N": 32, "T": 16, "d": 256, "dtype": "float32", "device": "cpu", "k": 200, "rounds": 1, "loss": "full",
        "phat": "uniform", "n_eval": 2048, "stop_at": 0.9, "etas": {"W_O2": 30.0, "W_K2": 300.0, "W_K1": 300.0}}
THRESHOLDS = (0.5, 0.9)
STALL_STEP = 90
SETTINGS = [(kind, pop, n) for kind in ("joint", "alternating") for pop in ("mc", "fixed")
            for n in (2048, 8192, 32768, 131072)]
PLAN = {("joint", "mc", 2048): range(10), ("alternating", "mc", 2048): range(10),      # in the order they run
        ("joint", "fixed", 2048): range(5), ("alternating", "fixed", 2048): range(4),
        ("joint", "mc", 8192): range(10), ("alternating", "mc", 8192): range(10),
        ("joint", "mc", 32768): range(10), ("alternating", "mc", 32768): range(10),
        ("alternating", "mc", 131072): range(10),
        ("joint", "fixed", 8192): range(10), ("joint", "fixed", 32768): range(10), ("alternating", "fixed", 8192): range(5),
        ("joint", "mc", 131072): range(10)}


def cell(kind, pop, n, seed) -> Cell:
    return Cell(dynamics_cell, {**BASE, "kind": kind, "population": pop, "n": n}, seed, label=f"{kind} {pop} {n} {seed}")


def load(reader, kind, pop, n):
    """{seed: curve rows and seconds} of the cached cells of one setting."""
    out = {}
    for seed in range(20):
        rec = reader.find(cell(kind, pop, n, seed))
        if rec is not None:
            out[seed] = {"rows": rec.value, "seconds": rec.seconds}
    return out


def first(rows, th):
    return next((r["step"] for r in rows if r["accuracy"] >= th), None)


def report(cache, prefix):
    reader = Cache(cache)
    table, data = [], {}
    for kind, pop, n in SETTINGS:
        runs = load(reader, kind, pop, n)
        if not runs:
            continue
        rows = [r for s in sorted(runs) for r in runs[s]["rows"]]
        summ = {s["threshold"]: s for s in summarize(rows, list(THRESHOLDS))}
        data[f"{kind}/{pop}/{n}"] = {"seeds": sorted(runs), "first": {th: {s: first(runs[s]["rows"], th) for s in runs}
                                                                      for th in THRESHOLDS},
                                     "seconds": {s: runs[s]["seconds"] for s in runs}}
        cells = []
        for th in THRESHOLDS:
            s = summ[th]
            med = "-" if s["steps_median"] is None else f"{s['steps_median']:.0f}"
            lo = "-" if s["steps_median_lo"] is None else f"{s['steps_median_lo']:.0f}"
            hi = "inf" if s["steps_median_hi"] is None else f"{s['steps_median_hi']:.0f}"
            cells.append(f"{med} [{lo}, {hi}] | {s['reached']}/{s['seeds']}")
        per = "; ".join(f"{s}: " + "/".join(str(first(runs[s]["rows"], th)) for th in THRESHOLDS) for s in sorted(runs))
        secs = sum(r["seconds"] for r in runs.values()) / len(runs)
        table.append(f"| {kind} | {pop} | {n} | {len(runs)} | {cells[0]} | {cells[1]} | {secs:.0f} | {per} |")
    lo_th, hi_th = THRESHOLDS
    head = (f"| schedule | samples | n per step | seeds | median step to {lo_th} [95% CI] | reached {lo_th} | "
            f"median step to {hi_th} [95% CI] | reached {hi_th} | wall s per seed | per seed {lo_th}/{hi_th} |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    md = head + "\n" + "\n".join(table) + "\n" + stall_table(reader, data)
    open(prefix + ".md", "w").write(md)
    json.dump(data, open(prefix + ".json", "w"), indent=1, default=str)
    print(md)


def stall_table(reader, data) -> str:
    """Alternating, fresh samples: Spearman correlation between W_K1's recall (9) after STALL_STEP steps and
    the steps to the higher threshold (never reached = +inf, ranked last), per n and pooled."""
    from scipy.stats import spearmanr

    lines = ["", f"## Alternating: W_K1 recall after {STALL_STEP} steps vs steps to {THRESHOLDS[1]} (Spearman; never reached "
             "ranks last)", "", "| n per step | seeds | rho | p | (recall, steps) per seed |", "|---|---|---|---|---|"]
    pooled = []
    for kind, pop, n in SETTINGS:
        if kind != "alternating" or pop != "mc":
            continue
        pts = []
        for seed, run in sorted(load(reader, kind, pop, n).items()):
            at = [r for r in run["rows"] if r["step"] == STALL_STEP]
            if at:
                pts.append((at[0]["recall_W_K1"], first(run["rows"], THRESHOLDS[1])))
        if len(pts) < 3:
            continue
        pooled += pts
        rho, pv = spearmanr([p[0] for p in pts], [_last_if_never(p[1]) for p in pts])
        data.setdefault("stall", {})[str(n)] = {"rho": rho, "p": pv, "points": pts}
        lines.append(f"| {n} | {len(pts)} | {rho:+.2f} | {pv:.3f} | "
                     + ", ".join(f"({r:.2f}, {'-' if st is None else st})" for r, st in sorted(pts, key=lambda p: (p[0], _last_if_never(p[1])))) + " |")
    if pooled:
        rho, pv = spearmanr([p[0] for p in pooled], [_last_if_never(p[1]) for p in pooled])
        data.setdefault("stall", {})["pooled"] = {"rho": rho, "p": pv}
        lines.append(f"| pooled | {len(pooled)} | {rho:+.2f} | {pv:.1g} | |")
    return "\n".join(lines) + "\n"


def _last_if_never(step):
    """A first step for ranking: never reached (None) ranks after every reached step."""
    return math.inf if step is None else step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("cache")
    r.add_argument("--workers", type=int)
    r.add_argument("--reuse-other-sources", action="store_true",
                   help="read the cells other popgrad sources cached (the cache keys carry a hash of the sources, so "
                        "a plain rerun after a code change recomputes every cell; popgrad.sweep checks one per source)")
    q = sub.add_parser("report")
    q.add_argument("cache")
    q.add_argument("prefix")
    args = p.parse_args(argv)
    if args.what == "report":
        return report(args.cache, args.prefix)
    cells = [cell(*setting, seed) for setting, seeds in PLAN.items() for seed in seeds]
    run_cells(cells, SweepOptions(workers=args.workers, cache=args.cache, reuse_other_sources=args.reuse_other_sources),
              desc="dynamics convergence")


if __name__ == "__main__":
    main()
