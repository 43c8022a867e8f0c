"""`popgrad scaling`: how one-step recall scales with d, batches, N, T and K (App. E)."""

from __future__ import annotations

import argparse
import math

from popgrad.cliutil import (add_output_options, add_sweep_options, emit, int_list, markdown_table, positive_float,
                             positive_int, save_figure, split_list)
from popgrad.commands.recall_table import add_model_arguments, check_budget, check_model_sizes, model_from_args
from popgrad.errors import PopgradError
from popgrad.sweep import options_from_args

NAME = "scaling"
HELP = "sweep d, N, T, K: batches needed for R_1 >= threshold and fitted exponents (App. E)"
DESCRIPTION = ("For each swept value, the first number of batches (grid 1, 2, 3, 4, 6, 8, 12, ...) at which "
               "one-step recall R_1 reaches --threshold (inf if never within --max-batches), mean over seeds, "
               "R_1 and the one-step error 1 - R_1 at --max-batches, and log-log exponents. The d sweep uses "
               "the model C given by the model options; the N sweep the all-uniform model; T and K vary it.")
SWEEPS = ("d", "batches", "N", "T", "K")
COLUMNS = ("sweep", "value", "d", "batches_needed", "needed_per_seed", "r1_at_max", "error_at_max")


def _sweeps(text: str) -> list[str]:
    parts = split_list(text, "sweeps")
    bad = [p for p in parts if p not in SWEEPS]
    if bad:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(SWEEPS)}, got {text!r}")
    return list(dict.fromkeys(parts))


def add_arguments(p):
    add_model_arguments(p)
    p.add_argument("--sweeps", type=_sweeps, default=list(SWEEPS), help="which sweeps (default d,batches,N,T,K)")
    p.add_argument("--dims", type=int_list, default=[32, 64, 128, 256, 512], help="d values of the d sweep")
    p.add_argument("--Ns", type=int_list, default=[16, 32, 64, 128], help="N values (uniform model)")
    p.add_argument("--Ts", type=int_list, default=[64, 128, 256, 512], help="T values")
    p.add_argument("--Ks", type=int_list, default=[1, 2, 5, 10], help="K values")
    p.add_argument("--d", type=positive_int, default=128, help="d for the N, T, K sweeps (default 128)")
    p.add_argument("--max-batches", type=positive_int, default=128, help="largest batch count (default 128)")
    p.add_argument("--threshold", type=positive_float, default=0.9, help="R_1 target in (0, 1] (default 0.9)")
    add_output_options(p, plot_help="also write batches needed vs each swept value (log-log) to FILE.png")
    add_sweep_options(p)


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:g}"


def run(args) -> int:
    if args.threshold > 1:
        raise PopgradError(f"--threshold must be in (0, 1], got {args.threshold}")
    sweeps = args.sweeps
    ref = 4 if "batches" in sweeps else 1                               # the batches sweep's reference run
    check_budget(args.T, args.max_batches * ref, args.batch_size, args.seeds + ref, what="--max-batches")
    check_model_sizes(args, Ns=args.Ns if "N" in sweeps else (),
                      dims=[(max(args.dims), "--dims")] * ("d" in sweeps) + [(args.d, "--d")])
    for t in args.Ts if "T" in sweeps else []:
        if t < 2:
            raise PopgradError(f"--Ts: T must be >= 2, got {t}")
        check_budget(t, args.max_batches, args.batch_size, args.seeds, what="--Ts")
    for n in args.Ns if "N" in sweeps else []:
        if n < 2:
            raise PopgradError(f"--Ns: N must be >= 2, got {n}")
    sweep = options_from_args(args)
    base = model_from_args(args)
    for ks in args.Ks if "K" in sweeps else []:
        if ks > base.N:
            raise PopgradError(f"--Ks: K={ks} exceeds the vocabulary size N={base.N}")
    # numerics (and torch) load only once the arguments are known to be good
    from popgrad.device import resolve_device  # lazy: torch loads only after the arguments are validated
    from popgrad.numerics.scaling import (batch_points, batch_sweep_cell, error_exponent, fitted_exponent,  # lazy: torch loads only after the arguments are validated
                                          scaling_cells, scaling_jobs, scaling_points)
    from popgrad.sweep import Cell, describe, run_cells  # lazy: torch loads only after the arguments are validated

    device = resolve_device(args.device)
    jobs = scaling_jobs([sw for sw in args.sweeps if sw != "batches"], args.dims, args.Ns, args.Ts, args.Ks,
                        args.d, base)
    cells = scaling_cells(jobs, args.max_batches, args.seeds, args.batch_size, args.seed, device)
    if "batches" in args.sweeps:                                       # one more cell, same progress bar
        cells.append(Cell(batch_sweep_cell, {"model": base, "d": args.d, "max_batches": args.max_batches,
                                             "seeds": args.seeds, "batch_size": args.batch_size,
                                             "device": str(device)}, args.seed, label="batches sweep"))
    values = [r.value for r in run_cells(cells, sweep, desc="scaling cells")]
    n_grid = len(cells) - ("batches" in args.sweeps)
    res = scaling_points(jobs, cells[:n_grid], values[:n_grid], args.threshold)
    rows, summary = [], []
    for sw, pts in res.items():
        for p in pts:
            rows.append({"sweep": sw, "value": p.value, "d": p.d, "batches_needed": p.needed_mean,
                         "needed_per_seed": " ".join(_fmt(x) for x in p.needed), "r1_at_max": p.r1_final,
                         "error_at_max": 1.0 - p.r1_final, "r1_curve": list(p.r1_curve), "grid": list(p.grid)})
        summary.append({"sweep": sw, "exponent_batches_needed": fitted_exponent(pts),
                        "exponent_error_at_max": error_exponent(pts),
                        "points_used": sum(math.isfinite(p.needed_mean) for p in pts), "points": len(pts)})
    batch_rows, slope = [], math.nan
    if "batches" in args.sweeps:
        pts, slope = batch_points(values[-1])
        batch_rows = [{"batches": p.batches, "tokens": p.batches * args.batch_size * base.T, "r1_at_d": p.r1,
                       "direction_error": p.direction_error} for p in pts]
    title = (f"Batches of {args.batch_size} sequences needed for R_1 >= {args.threshold:g} (max {args.max_batches}; "
             f"mean over {args.seeds} seeds; device {device.type})")
    emit(rows, COLUMNS, args, title=title, extra={"exponents": summary, "batches_sweep": batch_rows,
                                                  "direction_error_slope": slope, "sweep": describe(sweep)})
    if not args.json and rows:
        print("\n## Fitted exponents: batches needed ~ value^a (values that reached the threshold); "
              "1 - R_1 at max batches ~ value^b (values with 1 - R_1 > 0)\n")
        print(markdown_table(summary, ("sweep", "exponent_batches_needed", "exponent_error_at_max", "points_used",
                                       "points")))
    if not args.json and batch_rows:
        print(f"\n## One-step error vs batches (d = {args.d} for R_1; direction error = relative Frobenius error "
              f"of c_k - c against an independent run with 4x the batches)\n")
        print(markdown_table(batch_rows, ("batches", "tokens", "r1_at_d", "direction_error")))
        print(f"\ndirection error ~ batches^{slope:.3f} (fit over 8 <= batches <= {args.max_batches // 4}; "
              "Monte-Carlo rate n^-0.5)")
    if args.plot:
        plot_scaling(rows, batch_rows, args.plot, args.threshold)
    return 0


def plot_scaling(rows, batch_rows, path: str, threshold: float) -> None:
    """Batches needed vs swept value, one panel per sweep, and the one-step direction error vs
    batches, log-log (reads rows only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = list(dict.fromkeys(r["sweep"] for r in rows))
    panels = len(sweeps) + bool(batch_rows)
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 3.2), squeeze=False)
    if batch_rows:
        ax = axes[0][len(sweeps)]
        ax.loglog([r["batches"] for r in batch_rows], [r["direction_error"] for r in batch_rows], "o-", base=2)
        ax.set_xlabel("batches")
        ax.set_ylabel("rel. error of c_k - c")
    for ax, sw in zip(axes[0], sweeps):
        rs = [r for r in rows if r["sweep"] == sw and math.isfinite(r["batches_needed"])]
        if rs:
            ax.plot([r["value"] for r in rs], [r["batches_needed"] for r in rs], "o-")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log", base=2)
        else:
            ax.text(0.5, 0.5, "threshold never reached", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(sw)
        ax.set_ylabel(f"batches for R_1 >= {threshold:g}")
    fig.tight_layout()
    save_figure(fig, path)
