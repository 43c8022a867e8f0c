"""Monte-Carlo step counts against the population count, where the population count is computable.

At N = 4, T = 5 model D has 432 sequences, so `popgrad dynamics --population enumerated` follows the exact
population gradient. Per embedding seed, the population count is the first step at which the head's exact
accuracy (the enumerated model D, `population_accuracy`) reaches a threshold on that trajectory; each
Monte-Carlo run (n fresh sequences per step, one stream) is scored the same way, so the only difference is
the sampling of the gradient (`popgrad.numerics.dynamics_reference.counts_vs_exact`).
Joint schedule, float64, d = 32, etas 3:10:10, budget 120 steps, thresholds 0.5 and 0.9; embedding seeds 0-4,
4 streams each, n in {64, 256, 1024, 4096, 16384}. Run through the sweep layer (resumable), then report:

    OMP_NUM_THREADS=1 python docs/results/dynamics_population_counts.py run --cache DIR
    python docs/results/dynamics_population_counts.py report DIR docs/results/dynamics_population_counts

(`report` computes any cell the cache lacks.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from popgrad.numerics.dynamics_reference import counts_vs_exact
from popgrad.sweep import SweepOptions, runner

SETTING = {"N": 4, "T": 5, "d": 32, "etas": {"W_O2": 3.0, "W_K2": 10.0, "W_K1": 10.0}, "kind": "joint", "k": 120,
           "ns": (64, 256, 1024, 4096, 16384), "emb_seeds": tuple(range(5)), "streams": 4, "thresholds": (0.5, 0.9)}


def compute(options: SweepOptions) -> dict:
    return counts_vs_exact(**SETTING, run=runner(options))


def _step(x) -> str:
    return "-" if x is None else str(x)


def report(result: dict, prefix: str) -> str:
    s = SETTING
    lines = [f"N={s['N']}, T={s['T']}, d={s['d']}, {s['kind']}, etas " + ":".join(f"{v:g}" for v in s["etas"].values())
             + f", budget {s['k']} steps; {len(s['emb_seeds'])} embedding seeds x {s['streams']} streams per n", "",
             "Population counts (exact trajectory) per embedding seed: "
             + "; ".join(f"{e}: " + "/".join(_step(result["exact"][e][th]) for th in s["thresholds"])
                         for e in s["emb_seeds"]), "",
             "| n per step | threshold | reached | median (MC - population) | median abs | within max(2, 5 %) | "
             "MC counts per embedding seed (population count first) |", "|---|---|---|---|---|---|---|"]
    for n in s["ns"]:
        for th in s["thresholds"]:
            r = result["summary"][n][th]
            med = "-" if r["median_diff"] is None else f"{r['median_diff']:+.1f}"
            mad = "-" if r["median_abs_diff"] is None else f"{r['median_abs_diff']:.1f}"
            runs = "; ".join(f"{_step(result['exact'][e][th])}: " + ",".join(_step(c[th]) for c in result["mc"][n][e])
                             for e in s["emb_seeds"])
            lines.append(f"| {n} | {th} | {r['reached']}/{r['runs']} | {med} | {mad} | {r['within']:.2f} | {runs} |")
    md = "\n".join(lines) + "\n"
    Path(prefix + ".md").write_text(md)
    Path(prefix + ".json").write_text(json.dumps(result, indent=1, default=str))
    return md


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--cache", required=True)
    r.add_argument("--workers", type=int)
    q = sub.add_parser("report")
    q.add_argument("cache")
    q.add_argument("prefix")
    args = p.parse_args(argv)
    if args.what == "run":
        compute(SweepOptions(workers=args.workers, cache=args.cache))
        return
    print(report(compute(SweepOptions(cache=args.cache)), args.prefix))


if __name__ == "__main__":
    main()
