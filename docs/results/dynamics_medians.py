"""The reference medians that the claim `dynamics.medians_reproduce` holds a fresh CI-sized run against.

A small setting of `popgrad dynamics` (SETTING below), joint and alternating, many seeds, float32, one torch
thread: per schedule and threshold, the median first step over the seeds (a seed that never reaches counts as
+inf) with its 95 % percentile-bootstrap interval, as `popgrad dynamics` prints them. These medians and
intervals are meant to hold on any machine within their error; the per-seed counts are one machine's (float32
kernels differ between CPUs and the dynamics amplify the difference). Each seed is the same as
    OMP_NUM_THREADS=1 python -m popgrad dynamics --N 8 --T 8 --d 64 --etas 7.5:75:75 --schedule KIND \\
        --n 2048 --n-eval 2048 --k 200 --seed S --seeds 1 --stop --json
Run (cached per seed; `--workers 2` splits it) and write docs/results/dynamics_medians.{json,md}:
    OMP_NUM_THREADS=1 python docs/results/dynamics_medians.py run CACHE
    python docs/results/dynamics_medians.py report CACHE docs/results/dynamics_medians --reuse-other-sources
(`--reuse-other-sources`: after a change to popgrad's sources the cached cells are read, not recomputed, once one
cell per earlier source is recomputed and found equal bit for bit.)
"""

import argparse
import json
import platform
from pathlib import Path

from popgrad.cells import Cell
from popgrad.commands.dynamics import dynamics_cell, summarize
from popgrad.sweep import SweepOptions, run_cells

SETTING = {"N": 8, "T": 8, "d": 64, "dtype": "float32", "device": "cpu", "k": 200, "rounds": 1, "loss": "full",
           "phat": "uniform", "population": "mc", "n": 2048, "n_eval": 2048, "stop_at": 0.9,
           "etas": {"W_O2": 7.5, "W_K2": 75.0, "W_K1": 75.0}}
SCHEDULES = ("joint", "alternating")
SEEDS = range(40)
THRESHOLDS = (0.5, 0.9)
FRESH = 5                  # seeds of the claim's fresh run: the range a 5-seed median falls in is reported too


def cells(kind: str, seeds=SEEDS) -> list[Cell]:
    return [Cell(dynamics_cell, {**SETTING, "kind": kind}, seed, label=f"{kind} seed {seed}") for seed in seeds]


def medians(rows: list[dict], seeds: int, budget: int) -> dict:
    """{threshold: {median, lo, hi, reached, seeds, fresh_lo, fresh_hi}}: `popgrad dynamics`' summary for one
    schedule's rows, and the 95 % range of a FRESH-seed median (`median_prediction_range`)."""
    from popgrad.numerics.dynamics import median_prediction_range

    out = {}
    for r in summarize(rows, THRESHOLDS, budget=budget):
        firsts = [next((x["step"] for x in rows if x["seed"] == s and x["accuracy"] >= r["threshold"]), None)
                  for s in sorted({x["seed"] for x in rows})]
        lo, hi = median_prediction_range([f for f in firsts if f is not None], seeds, FRESH)
        out[str(r["threshold"])] = {"median": r["steps_median"], "lo": r["steps_median_lo"],
                                    "hi": r["steps_median_hi"], "reached": r["reached"], "seeds": seeds,
                                    "fresh_lo": lo, "fresh_hi": hi}
    return out


def _run(kind: str, sweep: SweepOptions) -> list[dict]:
    rows = []
    for res in run_cells(cells(kind), sweep, desc=f"{kind} seeds"):
        rows.extend(res.value)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("cache")
    r.add_argument("--workers", type=int, default=None)
    w = sub.add_parser("report")
    w.add_argument("cache")
    w.add_argument("out", help="path without suffix: writes OUT.json and OUT.md")
    for q in (r, w):
        q.add_argument("--reuse-other-sources", action="store_true",
                       help="read cells cached by other popgrad sources (one per source is recomputed and compared)")
    args = p.parse_args(argv)
    sweep = SweepOptions(workers=getattr(args, "workers", None), cache=args.cache,
                         reuse_other_sources=args.reuse_other_sources)
    from popgrad.numerics.dynamics import schedule

    result = {"setting": {**SETTING, "etas": ":".join(f"{v:g}" for v in SETTING["etas"].values())},
              "seeds": [SEEDS.start, SEEDS.stop - 1], "thresholds": list(THRESHOLDS), "schedules": {},
              "per_seed": {}, "machine": platform.processor() or platform.machine()}
    for kind in SCHEDULES:
        rows = _run(kind, sweep)
        budget = len(schedule(kind, SETTING["k"], SETTING["rounds"]))
        result["schedules"][kind] = medians(rows, len(SEEDS), budget)
        first = {}
        for th in THRESHOLDS:
            first[str(th)] = [next((x["step"] for x in rows if x["seed"] == s and x["accuracy"] >= th), None)
                              for s in SEEDS]
        result["per_seed"][kind] = first
    if args.cmd == "report":
        out = Path(args.out)
        out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        lines = ["# Reference medians of `popgrad dynamics` at a CI size", "",
                 f"N = {SETTING['N']}, T = {SETTING['T']}, d = {SETTING['d']}, etas {result['setting']['etas']}, "
                 f"n = {SETTING['n']} fresh sequences per step, n_eval = {SETTING['n_eval']}, float32, budget "
                 f"--k {SETTING['k']}, seeds {SEEDS.start}-{SEEDS.stop - 1}, stopped at 0.9. Written by "
                 "`python docs/results/dynamics_medians.py report CACHE docs/results/dynamics_medians`; "
                 "the claim `dynamics.medians_reproduce` checks a fresh 5-seed run against these.", "",
                 f"| schedule | threshold | median step [95% bootstrap] | reached | 95% range of a {FRESH}-seed median |",
                 "|---|---|---|---|---|"]
        for kind, ths in result["schedules"].items():
            for th, m in ths.items():
                lines.append(f"| {kind} | {th} | {m['median']:g} [{m['lo']:g}, {m['hi']:g}] | "
                             f"{m['reached']}/{m['seeds']} | [{m['fresh_lo']:g}, {m['fresh_hi']:g}] |")
        lines += ["", f"The last column is where a median over {FRESH} seeds falls in 95 % of resamples of {FRESH} of "
                  f"these {len(SEEDS)} seeds (`median_prediction_range`): a {FRESH}-seed median scatters about "
                  f"sqrt({len(SEEDS)}/{FRESH}) times more than the {len(SEEDS)}-seed one, so the claim holds a fresh "
                  f"{FRESH}-seed median against that range, and this median against the fresh run's own interval.", "",
                  "Machine-independent: the medians and intervals (within their error). One machine's "
                  "(this one's: AMD EPYC, AVX2, float32 kernels): the per-seed counts in the JSON."]
        out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(json.dumps(result["schedules"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
