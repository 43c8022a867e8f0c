"""`popgrad capacity`: largest number of associations a random outer-product memory recalls, vs d.

Memory W = sum_z u_{f(z)} e_z^T (eq. (3)) with Gaussian N(0, 1/d) embeddings; recall as eq. (9).
For each d and each map (injective: random permutation, N outputs; mod2: f(z) = z mod 2), the
capacity is the largest N with mean recall >= --threshold (bisection on N, popgrad.numerics.capacity).
The fitted exponent is the log-log slope of capacity vs d; the talk claims about d^2 (injective)
and about d (mod2). For the injective map the slope of N ln N is also printed (log factor).
Local slopes between consecutive d show whether the exponent drifts. One sweep cell per (d, map):
--workers / --scheduler / --cache (popgrad.sweep).
"""

from __future__ import annotations

import time

from popgrad.numerics.capacity import MAPS, capacity_cells, fit_exponent, n_cap, peak_memory_floats, validate_threshold
from popgrad.cliutil import add_output_options, add_sweep_options, emit, int_list, nonnegative_int, positive_int, save_figure
from popgrad.errors import PopgradError, memory_budget
from popgrad.sweep import describe, options_from_args, run_cells

NAME = "capacity"
HELP = "storage capacity of random outer-product memories vs d (injective and z mod 2 maps)"
DEFAULT_DIMS = "16,32,64,128,256"
TALK = {"injective": 2.0, "mod2": 1.0}


def _threshold(text: str) -> float:
    import argparse

    try:
        return validate_threshold(float(text))
    except (ValueError, PopgradError):
        raise argparse.ArgumentTypeError(f"expected a recall threshold in (0, 1], got {text!r}") from None


def add_arguments(p):
    p.add_argument("--dims", type=int_list, default=int_list(DEFAULT_DIMS), metavar="D1,D2,...",
                   help=f"embedding dimensions (default {DEFAULT_DIMS})")
    p.add_argument("--seeds", type=positive_int, default=3, help="memories averaged per N, at least (default 3)")
    p.add_argument("--threshold", type=_threshold, default=0.99, help="recall threshold in (0, 1] (default 0.99)")
    p.add_argument("--maps", type=lambda s: _maps(s), default=list(MAPS), metavar="MAP,...",
                   help="maps to measure: injective, mod2 (default both)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="compute dtype (default float32)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="device (default auto)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="base random seed (default 0)")
    add_output_options(p, plot=True, plot_help="also plot capacity vs d (log-log) to FILE.png")
    add_sweep_options(p)


def _maps(text: str) -> list[str]:
    import argparse

    maps = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in maps if m not in MAPS]
    if not maps or bad:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {', '.join(MAPS)}, got {text!r}")
    return maps


def check_budget(args) -> None:
    """Refuse up front any d whose largest memory would not fit (with the estimate)."""
    for kind in args.maps:
        for d in args.dims:
            cap = n_cap(kind, d)
            memory_budget(f"--dims {d} ({kind}, N up to {cap}, --seeds {args.seeds})",
                          peak_memory_floats(kind, d, args.seeds))


def capacity_rows(args, sweep=None) -> list[dict]:
    """One row per d: capacity per map, whether it saturated, and the seconds its cell took
    (one sweep cell per (d, map); seconds are those of the original computation for cached cells)."""
    cells = capacity_cells(args.maps, args.dims, args.seeds, args.threshold, args.seed, args.dtype, args.device)
    results = run_cells(cells, sweep, desc="capacity cells")
    rows: dict[int, dict] = {}
    for cell, res in zip(cells, results):
        kind, d = cell.params["kind"], cell.params["d"]
        row = rows.setdefault(d, {"d": d})
        row[kind] = res.value["capacity"]
        row[f"{kind}_saturated"] = res.value["saturated"]
        row[f"{kind}_seconds"] = round(res.seconds, 2)
    return list(rows.values())


def add_local_slopes(rows, maps) -> None:
    """row['<map>_local_slope'] = log(c_i / c_{i-1}) / log(d_i / d_{i-1}) between consecutive d
    (None for the first d or when a capacity is < 2); the N ln N version as '<map>_local_slope_NlnN'."""
    for prev, row in zip(rows, rows[1:]):
        for kind in maps:
            c0, c1 = prev[kind], row[kind]
            ok = c0 >= 2 and c1 >= 2
            row[f"{kind}_local_slope"] = fit_exponent([prev["d"], row["d"]], [c0, c1]) if ok else None
            row[f"{kind}_local_slope_NlnN"] = (fit_exponent([prev["d"], row["d"]], [c0, c1], log_correct=True)
                                               if ok else None)


def fits(rows, maps) -> dict:
    """Fitted exponents of capacity vs d per map (and of N ln N for the log factor)."""
    d = [r["d"] for r in rows]
    out = {}
    for kind in maps:
        c = [r[kind] for r in rows]
        out[kind] = {"exponent": fit_exponent(d, c), "exponent_N_lnN": fit_exponent(d, c, log_correct=True),
                     "talk": TALK[kind]}
    return out


def plot(path: str, rows, maps, fitted) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    d = [r["d"] for r in rows]
    for kind in maps:
        ax.loglog(d, [max(r[kind], 0.5) for r in rows], "o-",
                  label=f"{kind}: slope {fitted[kind]['exponent']:.2f} (talk: {TALK[kind]:g})")
    ax.set_xticks(d, [str(x) for x in d])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("d (points with capacity < 2 are left out of the fit)")
    ax.set_ylabel("capacity N (recall >= threshold)")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def run(args) -> int:
    check_budget(args)
    sweep = options_from_args(args)
    t0 = time.perf_counter()
    rows = capacity_rows(args, sweep)
    fitted = fits(rows, args.maps)
    add_local_slopes(rows, args.maps)
    columns = ["d"] + [c for k in args.maps for c in (k, f"{k}_local_slope", f"{k}_seconds")]
    emit(rows, columns, args, title=f"popgrad capacity (recall >= {args.threshold:g}, {args.seeds} seeds)",
         extra={"fits": fitted, "seconds": round(time.perf_counter() - t0, 2), "sweep": describe(sweep)})
    if not args.json:
        print()
        for kind in args.maps:
            f = fitted[kind]
            print(f"{kind}: capacity ~ d^{f['exponent']:.2f} (N ln N ~ d^{f['exponent_N_lnN']:.2f}); "
                  f"talk: N ~ d^{f['talk']:g}")
        sat = [f"{k} at d={r['d']}" for r in rows for k in args.maps if r[f"{k}_saturated"]]
        if sat:
            print("saturated (capacity is only a lower bound): " + ", ".join(sat))
    if getattr(args, "plot", None):
        plot(args.plot, rows, args.maps, fitted)
    return 0
