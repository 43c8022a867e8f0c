"""`popgrad capacity`: how many associations a random outer-product memory recalls, vs d.

Memory W = sum_z u_{f(z)} e_z^T (eq. (3)) with Gaussian N(0, 1/d) embeddings; recall as eq. (9).
For each d and each map (injective, N outputs; mod2: f(z) = z mod 2), the capacity C is searched on
a nested draw that grows W (popgrad.numerics.capacity_search): the crossing of recall = --threshold
by galloping and bisection (exhaustive recall while S N <= --queries, else a sample of queries
with a Wilson interval, so every capacity comes with an interval), then stepped down one search
step at a time to the first N whose exhaustive recall (every stored input) is >= --threshold; the
table shows that exhaustive recall beside the sampled one. Mean ± se over --memory-seeds draws. The law
(c d^2, c d^2 / ln d, c d^alpha) is fitted when three or more d are measured
(popgrad.numerics.capacity_law). One sweep cell per (d, map, memory seed): --workers /
--scheduler / --cache (popgrad.sweep). The expected memory and a rough time are printed first.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time

import numpy as np

from popgrad.cliutil import (add_output_options, add_sweep_options, emit, int_list, nonnegative_int, positive_int,
                             save_figure)
from popgrad.errors import PopgradError, memory_budget
from popgrad.numerics.capacity_law import compare_laws, local_slopes
from popgrad.numerics.capacity_plan import guess_capacity, planned_bytes, planned_flops, validate_threshold
from popgrad.numerics.options import MAPS, QUERIES, RESOLUTION
from popgrad.sweep import describe, options_from_args, runner

NAME = "capacity"
HELP = "storage capacity of random outer-product memories vs d (injective and z mod 2 maps), with intervals"
DEFAULT_DIMS = "16,32,64,128,256"
TALK = {"injective": 2.0, "mod2": 1.0}
DEFAULT_SEEDS, AFFORDABLE_D = 3, 512


def memory_seeds(args, kind: str, d: int) -> int:
    """--memory-seeds, or by default 3 memory seeds where d <= 512 (or any mod2 d), 1 above."""
    if args.memory_seeds is not None:
        return args.memory_seeds
    return DEFAULT_SEEDS if d <= AFFORDABLE_D or kind == "mod2" else 1


def _threshold(text: str) -> float:
    try:
        return validate_threshold(float(text))
    except (ValueError, PopgradError):
        raise argparse.ArgumentTypeError(f"expected a recall threshold in (0, 1], got {text!r}") from None


def _resolution(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 0.5:
        raise argparse.ArgumentTypeError(f"expected a relative resolution in [0, 0.5), got {text!r}")
    return value


MAX_QUERIES = 10 ** 7


def _queries(text: str) -> int:
    value = positive_int(text)
    if value > MAX_QUERIES:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_QUERIES} queries per N, got {text!r}")
    return value


def _threads(text: str) -> int:
    value = nonnegative_int(text)
    if value > 1024:
        raise argparse.ArgumentTypeError(f"expected at most 1024 threads, got {text!r}")
    return value


def _run_json(path: str) -> list[dict]:
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            grid = json.load(fh)["grid"]
        assert isinstance(grid, list) and all({"kind", "d", "mean", "se", "lower", "upper"} <= set(g) for g in grid)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise argparse.ArgumentTypeError(f"expected the --json output of `popgrad capacity`, got {path!r}") from None
    return grid


def _fit_from(text: str) -> int:
    value = nonnegative_int(text)
    if value > 10 ** 6:
        raise argparse.ArgumentTypeError(f"expected a dimension of at most 1000000, got {text!r}")
    return value


def _maps(text: str) -> list[str]:
    maps = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in maps if m not in MAPS]
    if not maps or bad:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {', '.join(MAPS)}, got {text!r}")
    return maps


def add_arguments(p):
    p.add_argument("--dims", type=int_list, default=int_list(DEFAULT_DIMS), metavar="D1,D2,...",
                   help=f"embedding dimensions (default {DEFAULT_DIMS})")
    p.add_argument("--memory-seeds", "--seeds", dest="memory_seeds", type=positive_int, default=None,
                   help=f"independent memory draws per (d, map); capacity is mean ± se over them (default "
                        f"{DEFAULT_SEEDS} for d <= {AFFORDABLE_D}, 1 above: its interval instead)")
    p.add_argument("--threshold", type=_threshold, default=0.99, help="recall threshold in (0, 1] (default 0.99)")
    p.add_argument("--maps", type=_maps, default=list(MAPS), metavar="MAP,...",
                   help="maps to measure: injective, mod2 (default both)")
    p.add_argument("--queries", type=_queries, default=QUERIES,
                   help=f"most (memory, z) pairs read at one N; beyond it recall is sampled (default {QUERIES})")
    p.add_argument("--resolution", type=_resolution, default=RESOLUTION,
                   help=f"relative resolution of the search over N (default {RESOLUTION}; 0 = exact N)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="GEMM dtype (default float32)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="device (default auto)")
    p.add_argument("--threads", type=_threads, default=0, help="torch threads per cell (default 0: torch's)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="first memory seed (default 0)")
    p.add_argument("--plan", action="store_true", help="print the memory and time estimates and stop")
    p.add_argument("--fit-from", type=_fit_from, default=0, metavar="D",
                   help="fit the laws to the dimensions d >= D only (default: all)")
    p.add_argument("--combine", nargs="+", metavar="RUN.json", type=_run_json,
                   help="compute nothing: table, local slopes and law fits over the grids of earlier --json outputs "
                        "(a later file's (map, d) replaces an earlier one's)")
    add_output_options(p, plot=True, plot_help="also plot capacity vs d (log-log) to FILE.png")
    add_sweep_options(p)


def check_budget(args) -> None:
    """Refuse up front any d whose expected draw would not fit (with the estimate)."""
    for kind in args.maps:
        for d in args.dims:
            memory_budget(f"--dims {d} ({kind}, N up to about {2 * guess_capacity(kind, d):.0f})",
                          planned_bytes(kind, d, dtype=args.dtype) / 8.0)


def plan_lines(args) -> list[str]:
    """Per (map, d): expected capacity, memory held and a rough time at the GEMM rate measured now."""
    from popgrad.numerics.capacity_search import measured_gflops  # lazy: torch loads only after the arguments are validated

    rate = measured_gflops(args.dtype, "cuda" if args.device == "cuda" else "cpu")
    lines = [f"plan (GEMM rate now: {rate:.1f} GFLOP/s, {args.dtype}; times are rough):"]
    for kind in args.maps:
        for d in args.dims:
            flops = planned_flops(kind, d, args.queries, args.resolution)
            lines.append(f"  {kind} d={d}: capacity ~ {guess_capacity(kind, d):.0f}, holds ~ "
                         f"{planned_bytes(kind, d, dtype=args.dtype) / 2**20:.0f} MiB, ~ "
                         f"{flops / (rate * 1e9) / 60 * memory_seeds(args, kind, d):.1f} min "
                         f"({memory_seeds(args, kind, d)} memory seed(s))")
    return lines


def _fmt_capacity(row) -> str:
    if row["se"] is not None:
        return f"{row['mean']:.1f} ± {row['se']:.1f}"
    return f"{row['mean']:.0f} [{row['lower']:.0f}, {row['upper']:.0f}]"


def table_rows(grid, maps) -> list[dict]:
    """One row per d: capacity (mean ± se, or C [lower, upper] with one seed), interval, local slope ± se,
    seconds (sum over seeds), peak MiB held by the search."""
    rows: dict[int, dict] = {}
    for kind in maps:
        series = sorted((g for g in grid if g["kind"] == kind), key=lambda g: g["d"])
        for g, sl in zip(series, [None] + local_slopes(series)):
            row = rows.setdefault(g["d"], {"d": g["d"]})
            row[kind] = _fmt_capacity(g)
            row[f"{kind}_mean"], row[f"{kind}_se"] = g["mean"], g["se"]
            row[f"{kind}_interval"] = f"[{g['lower']:.0f}, {g['upper']:.0f}]"
            row[f"{kind}_saturated"] = g["saturated"]
            row[f"{kind}_local_slope"] = (f"{sl['slope']:.3f} ± {sl['se']:.3f}" if sl and sl["slope"] is not None
                                          else None)
            row[f"{kind}_seconds"] = round(g["seconds"], 1)
            row[f"{kind}_peak_MiB"] = round(g["peak_bytes"] / 2**20, 1)
            row[f"{kind}_capacities"] = g["capacities"]
            sampled = [x for x in g.get("sampled_capacities") or [] if x is not None]
            row[f"{kind}_sampled_C"] = _fmt_mean(sampled) if sampled and len(sampled) == g.get("n") else None
            exact = g.get("exhaustive_recall_min")
            row[f"{kind}_exhaustive_recall"] = round(exact, 5) if exact is not None else None
            est = [x for x in g.get("sampled_recalls") or [] if x is not None]
            row[f"{kind}_sampled_recall"] = round(float(np.mean(est)), 5) if est else None
    return [rows[d] for d in sorted(rows)]


def _fmt_mean(values) -> str:
    """mean ± se over seeds (one value: the value)."""
    v = np.asarray(values, dtype=float)
    if v.size == 1:
        return f"{v[0]:.0f}"
    return f"{v.mean():.1f} ± {v.std(ddof=1) / math.sqrt(v.size):.1f}"


def plot(path: str, grid, maps) -> None:
    """Left: capacity vs d (log-log); right: capacity / d^p (p = the talk's exponent), mean ± se bands
    (or the capacity interval with one memory seed)."""
    import matplotlib                   # heavy optional dependency, loaded only for --plot
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for kind in maps:
        series = sorted((g for g in grid if g["kind"] == kind and g["mean"] >= 1), key=lambda g: g["d"])
        d = np.array([g["d"] for g in series], dtype=float)
        mean = np.array([g["mean"] for g in series])
        lo = np.array([g["mean"] - g["se"] if g["se"] is not None else g["lower"] for g in series])
        hi = np.array([g["mean"] + g["se"] if g["se"] is not None else g["upper"] for g in series])
        p = TALK[kind]
        ax.loglog(d, mean, "o-", label=f"{kind} (talk: $d^{{{p:g}}}$)")
        ax.fill_between(d, lo, hi, alpha=0.3)
        bx.semilogx(d, mean / d ** p, "o-", label=f"{kind}: $N / d^{{{p:g}}}$")
        bx.fill_between(d, lo / d ** p, hi / d ** p, alpha=0.3)
    dims = sorted({g["d"] for g in grid})
    for axis in (ax, bx):
        axis.set_xticks(dims, [str(x) for x in dims])
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_xlabel("$d$")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    ax.set_ylabel("capacity $N$ (recall $\\geq$ threshold)")
    ax.set_title("Capacity of $W=\\sum_z u_{f(z)} e_z^\\top$")
    bx.set_ylabel("$N / d^p$")
    bx.set_title("Capacity over the talk's law")
    fig.tight_layout()
    save_figure(fig, path)


def run(args) -> int:
    sweep = options_from_args(args)
    if args.combine:
        return report(combined(args.combine, args.maps), args, time.perf_counter(), sweep)
    if args.plan:                                     # the estimate first, even for a d refused here
        print("\n".join(plan_lines(args)))
        check_budget(args)
        return 0
    check_budget(args)
    print("\n".join(plan_lines(args)), file=sys.stderr)
    _log_to_stderr()
    t0 = time.perf_counter()
    from popgrad.numerics.capacity import capacity_grid  # lazy: torch loads only after the arguments are validated

    grid = capacity_grid(args.maps, args.dims, lambda kind, d: memory_seeds(args, kind, d), args.threshold,
                         args.seed, args.queries, args.resolution, args.dtype, args.device, args.threads,
                         run=runner(sweep))
    return report(grid, args, t0, sweep)


def combined(grids: list[list[dict]], maps) -> list[dict]:
    """The (map, d) entries of several runs' grids; a later run's entry replaces an earlier one's."""
    out = {}
    for grid in grids:
        for g in grid:
            if g["kind"] in maps:
                out[(g["kind"], g["d"])] = g
    return [out[k] for k in sorted(out, key=lambda k: (k[1], k[0]))]


def report(grid, args, t0, sweep) -> int:
    """Print the table (markdown or --json), the law lines, and the plot."""
    maps = [k for k in args.maps if any(g["kind"] == k for g in grid)]
    rows = table_rows(grid, maps)
    laws = {kind: compare_laws([g for g in grid if g["kind"] == kind], dmin=args.fit_from, p=TALK[kind])
            for kind in maps}
    columns = ["d"] + [c for k in maps for c in (k, f"{k}_interval", f"{k}_exhaustive_recall", f"{k}_sampled_C",
                                                      f"{k}_sampled_recall", f"{k}_local_slope", f"{k}_seconds",
                                                      f"{k}_peak_MiB")]
    emit(rows, columns, args, title=f"popgrad capacity (recall >= {args.threshold:g}; C: mean ± se over memory seeds, "
                                    "or C [interval] with one; exhaustive_recall: the smallest over the seeds of "
                                    "the recall at C over every stored input; sampled_C: the sampled crossing "
                                    "before that check, sampled_recall: its mean estimate)",
         extra={"grid": grid, "laws": laws, "seconds": round(time.perf_counter() - t0, 2), "sweep": describe(sweep)})
    if not args.json:
        print()
        for kind in maps:
            print(law_summary(kind, laws[kind]))
        sat = [f"{g['kind']} at d={g['d']}" for g in grid if g["saturated"]]
        if sat:
            print("saturated (capacity is only a lower bound): " + ", ".join(sat))
    if getattr(args, "plot", None):
        plot(args.plot, grid, maps)
    return 0


def _log_to_stderr() -> None:
    """Show the search's one line per evaluated N (logger popgrad.capacity) on stderr."""
    log = logging.getLogger("popgrad.capacity")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def law_summary(kind: str, laws: dict) -> str:
    """One line: the fitted exponent with its 95% interval and the law with the lowest AIC."""
    if not laws["laws"]:
        return f"{kind}: fewer than 3 dimensions with capacity >= 2, no law fitted (talk: N ~ d^{TALK[kind]:g})"
    p = laws["laws"]["power"]
    b = next(v for k, v in laws["laws"].items() if "beta" in k)
    aic = ", ".join(f"{k} {v['aic']:.1f}" for k, v in laws["laws"].items())
    return (f"{kind}: capacity ~ d^{p['exponent']:.3f} (95% [{p['exponent_ci'][0]:.3f}, {p['exponent_ci'][1]:.3f}]) "
            f"over d = {laws['dims'][0]}..{laws['dims'][-1]}; d^{TALK[kind]:g}/(ln d)^beta: beta = {b['log_power']:.2f} "
            f"(95% [{b['log_power_ci'][0]:.2f}, {b['log_power_ci'][1]:.2f}]); AIC {aic}: {laws['best']} favoured "
            f"({laws['best_scaled']} with a fitted scale); talk: N ~ d^{TALK[kind]:g}")
