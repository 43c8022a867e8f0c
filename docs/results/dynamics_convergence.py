"""The convergence-in-n runs of `popgrad dynamics`: run them (sweep layer, resumable cache) and tabulate them.

Every row of the plan is `popgrad dynamics` at N=32, T=16, d=256, float32, 2048 evaluation sequences, stopped
at 0.9, at the step sizes 30:300:300 of the law's centre (budget 200 steps (joint) / 200 per layer (alternating)) or at half
of them, 15:150:150 (budget 300 joint steps / 400 per layer), or, joint at n = 131072 only, at a quarter,
7.5:75:75 (budget 400); the same cells as
    OMP_NUM_THREADS=1 python -m popgrad dynamics --N 32 --T 16 --d 256 --etas 30:300:300 --schedule KIND \\
        --population POP --n N --n-eval 2048 --k 200 --seed S0 --seeds S --stop --cache CACHE --json
Run the plan (any part of it; cached cells are skipped), then write markdown and JSON from the cache:
    OMP_NUM_THREADS=1 python docs/results/dynamics_convergence.py run CACHE --workers 2 --reuse-other-sources
    OMP_NUM_THREADS=1 python docs/results/dynamics_convergence.py run CACHE --only joint/mc/131072/x0.5   # one row
    python docs/results/dynamics_convergence.py report CACHE docs/results/dynamics_convergence
"""

import argparse
import json
import math
from pathlib import Path

from popgrad.cells import Cell
from popgrad.commands.dynamics import dynamics_cell, summarize
from popgrad.sweep import Cache, SweepOptions, run_cells

BASE = {"N": 32, "T": 16, "d": 256, "dtype": "float32", "device": "cpu", "k": 200, "rounds": 1, "loss": "full",
        "phat": "uniform", "n_eval": 2048, "stop_at": 0.9, "etas": {"W_O2": 30.0, "W_K2": 300.0, "W_K1": 300.0}}
THRESHOLDS = (0.5, 0.9)
STALL_STEP = 90
NS = (2048, 8192, 32768, 131072)
STEPS = (1.0, 0.5, 0.25)                            # multipliers of BASE's step sizes
BUDGET = {1.0: {"joint": 1.0, "alternating": 1.0}, 0.5: {"joint": 1.5, "alternating": 2.0},   # k, in units of BASE's
          0.25: {"joint": 2.0, "alternating": 3.0}}
SETTINGS = [(kind, pop, n, m) for m in STEPS for kind in ("joint", "alternating") for pop in ("mc", "fixed") for n in NS]
PLAN = {("joint", "mc", 2048, 1.0): range(10), ("alternating", "mc", 2048, 1.0): range(10),   # in the order they run
        ("joint", "fixed", 2048, 1.0): range(5), ("alternating", "fixed", 2048, 1.0): range(4),
        ("joint", "mc", 8192, 1.0): range(10), ("alternating", "mc", 8192, 1.0): range(10),
        ("joint", "mc", 32768, 1.0): range(10), ("alternating", "mc", 32768, 1.0): range(10),
        ("alternating", "mc", 131072, 1.0): range(10),
        ("joint", "fixed", 8192, 1.0): range(10), ("joint", "fixed", 32768, 1.0): range(10),
        ("alternating", "fixed", 8192, 1.0): range(5), ("joint", "mc", 131072, 1.0): range(10),
        **{("joint", "mc", n, 0.5): range(10) for n in (131072, 32768, 8192, 2048)},
        **{("alternating", "mc", n, 0.5): range(10) for n in NS},
        ("joint", "mc", 131072, 0.25): range(4)}


def budget(kind, m) -> int:
    """k (steps, or steps per layer) of a run at `m` times BASE's step sizes."""
    return round(BASE["k"] * BUDGET[m][kind])


def cell(kind, pop, n, seed, m=1.0) -> Cell:
    """Seed `seed` of a setting, at `m` times BASE's step sizes (with that multiplier's budget of steps)."""
    etas = {layer: m * eta for layer, eta in BASE["etas"].items()}
    return Cell(dynamics_cell, {**BASE, "kind": kind, "population": pop, "n": n, "k": budget(kind, m), "etas": etas},
                seed, label=f"{kind} {pop} {n} {seed}" + ("" if m == 1 else f" step x{m:g}"))


def _step_suffix(m) -> str:
    return "" if m == 1 else f"/x{m:g}"


def key(kind, pop, n, m) -> str:
    """The JSON key of a setting: KIND/POP/N at BASE's step sizes (30:300:300), KIND/POP/N/xM at M times them."""
    return f"{kind}/{pop}/{n}{_step_suffix(m)}"


def etas_text(m) -> str:
    return ":".join(f"{m * eta:g}" for eta in BASE["etas"].values())


def load(reader, kind, pop, n, m=1.0):
    """{seed: curve rows and seconds} of the cached cells of one setting."""
    out = {}
    for seed in range(20):
        rec = reader.find(cell(kind, pop, n, seed, m))
        if rec is not None:
            out[seed] = {"rows": rec.value, "seconds": rec.seconds}
    return out


def first(rows, th):
    return next((r["step"] for r in rows if r["accuracy"] >= th), None)


def report(cache, prefix):
    reader = Cache(cache)
    table, data = [], {}
    for kind, pop, n, m in SETTINGS:
        runs = load(reader, kind, pop, n, m)
        if not runs:
            continue
        rows = [r for s in sorted(runs) for r in runs[s]["rows"]]
        summ = {s["threshold"]: s for s in summarize(rows, list(THRESHOLDS))}
        entry = data[key(kind, pop, n, m)] = {
            "seeds": sorted(runs), "etas": etas_text(m), "k": budget(kind, m),
            "first": {th: {s: first(runs[s]["rows"], th) for s in runs} for th in THRESHOLDS},
            "median": {th: [summ[th]["steps_median"], summ[th]["steps_median_lo"], summ[th]["steps_median_hi"]]
                       for th in THRESHOLDS},
            "reached": {th: summ[th]["reached"] for th in THRESHOLDS},
            "seconds": {s: runs[s]["seconds"] for s in runs}}
        cells = [f"{_interval_text(entry['median'][th])} | {summ[th]['reached']}/{summ[th]['seeds']}" for th in THRESHOLDS]
        per = "; ".join(f"{s}: " + "/".join(str(first(runs[s]["rows"], th)) for th in THRESHOLDS) for s in sorted(runs))
        secs = sum(r["seconds"] for r in runs.values()) / len(runs)
        table.append(f"| {kind} | {pop} | {n} | {etas_text(m)} | {len(runs)} | {cells[0]} | {cells[1]} | {secs:.0f} | {per} |")
    lo_th, hi_th = THRESHOLDS
    head = (f"| schedule | samples | n per step | step sizes | seeds | median step to {lo_th} [95% CI] | reached {lo_th} | "
            f"median step to {hi_th} [95% CI] | reached {hi_th} | wall s per seed | per seed {lo_th}/{hi_th} |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    md = head + "\n" + "\n".join(table) + "\n" + stability_table(data) + stall_table(reader, data)
    Path(prefix + ".md").write_text(md)
    Path(prefix + ".json").write_text(json.dumps(data, indent=1, default=str))
    print(md)


def _interval_text(mlh) -> str:
    med, lo, hi = mlh
    return f"{'-' if med is None else f'{med:.0f}'} [{'-' if lo is None else f'{lo:.0f}'}, {'inf' if hi is None else f'{hi:.0f}'}]"


def _inside(x, interval) -> bool:
    """x (None = +inf) within [lo, hi] (hi None = +inf); a never-reached median (None) is inside only an open interval."""
    lo, hi = interval[1], interval[2]
    x = math.inf if x is None else x
    return lo is not None and lo <= x <= (math.inf if hi is None else hi)


def stability_table(data) -> str:
    """Per schedule, samples and step sizes, each pair of successive n (x4): is each median at the higher
    threshold inside the other's 95% interval, and do both reach it on every seed? "stable" = all three."""
    th = THRESHOLDS[1]
    lines = ["", f"## Does n -> 4n move the median step to {th}? (each median inside the other's 95% interval, every seed reaching)",
             "", "| schedule | samples | step sizes | n -> 4n | median at n | median at 4n | inside both | reached | stable |",
             "|---|---|---|---|---|---|---|---|---|"]
    for kind, pop, n, m in SETTINGS:
        a, b = data.get(key(kind, pop, n, m)), data.get(key(kind, pop, 4 * n, m))
        if a is None or b is None:
            continue
        inside = _inside(a["median"][th][0], b["median"][th]) and _inside(b["median"][th][0], a["median"][th])
        every = a["reached"][th] == len(a["seeds"]) and b["reached"][th] == len(b["seeds"])
        data.setdefault("stable", {})[f"{key(kind, pop, n, m)} -> {4 * n}"] = inside and every
        lines.append(f"| {kind} | {pop} | {etas_text(m)} | {n} -> {4 * n} | {_interval_text(a['median'][th])} | "
                     f"{_interval_text(b['median'][th])} | {'yes' if inside else 'no'} | "
                     f"{a['reached'][th]}/{len(a['seeds'])}, {b['reached'][th]}/{len(b['seeds'])} | "
                     f"{'yes' if inside and every else 'no'} |")
    return "\n".join(lines) + "\n"


def stall_table(reader, data) -> str:
    """Alternating, fresh samples: Spearman correlation between W_K1's recall (9) after STALL_STEP steps and
    the steps to the higher threshold (never reached = +inf, ranked last), per n and step sizes, and pooled
    over n per step sizes."""
    from scipy.stats import spearmanr

    title = (f"## Alternating: W_K1 recall after {STALL_STEP} steps vs steps to {THRESHOLDS[1]} (Spearman; never "
             "reached ranks last)")
    lines = ["", title, "", "| n per step | step sizes | seeds | rho | p | (recall, steps) per seed |",
             "|---|---|---|---|---|---|"]
    for m in STEPS:
        pooled = []
        for kind, pop, n, mm in SETTINGS:
            if kind != "alternating" or pop != "mc" or mm != m:
                continue
            pts = []
            for seed, run in sorted(load(reader, kind, pop, n, m).items()):
                at = [r for r in run["rows"] if r["step"] == STALL_STEP]
                if at:
                    pts.append((at[0]["recall_W_K1"], first(run["rows"], THRESHOLDS[1])))
            if len(pts) < 3:
                continue
            pooled += pts
            rho, pv = spearmanr([p[0] for p in pts], [_last_if_never(p[1]) for p in pts])
            data.setdefault("stall", {})[f"{n}{_step_suffix(m)}"] = {"rho": rho, "p": pv, "points": pts}
            lines.append(f"| {n} | {etas_text(m)} | {len(pts)} | {rho:+.2f} | {pv:.3f} | "
                         + ", ".join(f"({r:.2f}, {'-' if st is None else st})"
                                     for r, st in sorted(pts, key=lambda p: (p[0], _last_if_never(p[1])))) + " |")
        if pooled:
            rho, pv = spearmanr([p[0] for p in pooled], [_last_if_never(p[1]) for p in pooled])
            data.setdefault("stall", {})[f"pooled{_step_suffix(m)}"] = {"rho": rho, "p": pv}
            lines.append(f"| pooled | {etas_text(m)} | {len(pooled)} | {rho:+.2f} | {pv:.1g} | |")
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
    r.add_argument("--only", action="append", metavar="KIND/POP/N[/xM]",
                   help="run only this row of the plan (repeatable), e.g. joint/mc/131072/x0.5")
    r.add_argument("--reuse-other-sources", action="store_true",
                   help="read the cells other popgrad sources cached (the cache keys carry a hash of the sources, so "
                        "a plain rerun after a code change recomputes every cell; popgrad.sweep checks one per source)")
    q = sub.add_parser("report")
    q.add_argument("cache")
    q.add_argument("prefix")
    args = p.parse_args(argv)
    if args.what == "report":
        return report(args.cache, args.prefix)
    plan = {setting: seeds for setting, seeds in PLAN.items() if not args.only or key(*setting) in args.only}
    unknown = set(args.only or ()) - {key(*setting) for setting in PLAN}
    if unknown:
        p.error(f"--only: not in the plan: {', '.join(sorted(unknown))} (rows: {', '.join(key(*s) for s in PLAN)})")
    cells = [cell(kind, pop, n, seed, m) for (kind, pop, n, m), seeds in plan.items() for seed in seeds]
    run_cells(cells, SweepOptions(workers=args.workers, cache=args.cache, reuse_other_sources=args.reuse_other_sources),
              desc="dynamics convergence")


if __name__ == "__main__":
    main()
