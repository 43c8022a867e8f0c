"""`popgrad memories`: associative memories as the talk states them (`paper/talk_associative_memories.md`).

Parts (the first argument):
- `moments`: exact mean and variance of the readout gamma_{z,y} = u_y^T W e_z (theory/readout_moments.py)
  at given d, N for the injective and z mod 2 maps, and the capacity they predict (Gaussian readouts,
  independent over the competitors; union bound) beside a measured capacity (numerics/capacity_search.py).
- `factorized`: capacity of W = W_1^T W_2 (random W_1, one Lemma 1 step on W_2) against m at fixed d.
- `zipf`: error of the one-step memory W = sum_z q(z) u_f(z) e_z^T under Zipf data against n (fixed d) and
  against d (n = infinity) for q = counts, 1{seen}, 1{seen >= s} (s tuned), fitted exponents with bootstrap
  intervals beside the theorem's (Cabannes, Dohmatob, Bietti 2024).
- `hutter`: the infinite-memory error sum_z p (1 - p)^n, exact beside Monte-Carlo, and its exponent in n.
- `optim`: optimizer regimes of Lemma 1's population loss under Zipf p, N = 64 (numerics/optim_regimes.py).
"""

from __future__ import annotations

import math
import sys

import numpy as np

from popgrad.claims import memories as cm
from popgrad.cliutil import add_output_options, emit, float_list, int_list, markdown_table, positive_int, split_list
from popgrad.errors import PopgradError
from popgrad.numerics import zipf_memories as zm
from popgrad.numerics.capacity_search import search_capacity
from popgrad.numerics.factorized import factorized_capacity
from popgrad.plotting import save_figure
from popgrad.rates import power_law_bootstrap
from popgrad.theory import readout_moments as rm

NAME = "memories"
HELP = "associative memories: readout moments, factorized capacity, Zipf scaling laws, optimizer regimes"
PARTS = ("moments", "factorized", "zipf", "hutter", "optim")


def add_arguments(p):
    p.add_argument("part", nargs="?", choices=PARTS, help="which part: " + ", ".join(PARTS))
    p.add_argument("--dims", type=int_list, default=None,
                   help="d values (moments: 64,128,256,512,1024,2048; zipf d sweep: 32,64,128,256,512)")
    p.add_argument("--measure-dims", type=lambda t: [] if t == "none" else int_list(t), default=[64, 128, 256],
                   help="moments: d values whose capacity is also measured (default 64,128,256; 'none')")
    p.add_argument("--d", type=positive_int, default=None, help="factorized: d (default 256); zipf: d of the n sweep "
                   "(default 512)")
    p.add_argument("--ms", type=int_list, default=None, help="factorized: m values (default d/16 .. d, doubling)")
    p.add_argument("--alphas", type=float_list, default=[1.5, 2.0], help="zipf: Zipf exponents (default 1.5,2)")
    p.add_argument("--maps", type=lambda t: split_list(t, "maps"), default=["injective", "mod2"],
                   help="zipf: maps (injective, mod2)")
    p.add_argument("--ns", type=int_list, default=[100, 300, 1000, 3000, 10000], help="zipf: sample sizes n")
    p.add_argument("--N", type=positive_int, default=None, help="zipf: tokens (n sweep 16384, d sweep 4096)")
    p.add_argument("--seeds", type=positive_int, default=None, help="memory seeds per point (default: zipf 5, factorized 3)")
    p.add_argument("--bootstrap", type=positive_int, default=1000,
                   help="zipf, factorized: bootstrap resamples of the exponent intervals (default 1000)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    add_output_options(p, plot_help="also write the part's figure to FILE.png")


# ----------------------------------------------------------------------------- parts
def _moments(args):

    dims = args.dims or [64, 128, 256, 512, 1024, 2048]
    rows = []
    for kind in ("injective", "mod2"):
        for d in dims:
            pred = rm.predicted_capacity(kind, d)
            union = rm.predicted_capacity(kind, d, approximation="union")
            n = 1 if kind == "injective" else pred // 2
            _, v1 = rm.moment_values(d, pred, max(n, 1), True)
            _, v0 = rm.moment_values(d, pred, max(n, 1), False)
            meas = search_capacity(kind, d, 0.99, 0, resolution=0.01).capacity if d in args.measure_dims else None
            rows.append({"map": kind, "d": d, "predicted": pred, "union_bound": union, "var_hit_at_C": v1,
                         "var_miss_at_C": v0, "measured": meas,
                         "ratio": pred / meas if meas else None,
                         "C_over_d^p": pred / d ** (2 if kind == "injective" else 1)})
            print(f"moments {kind} d={d}: predicted {pred}", file=sys.stderr)
    m = rm.readout_moments()
    title = ("Exact readout moments: Var(y = f(z)) = " + str(m["var_hit"]) + ", Var(y != f(z)) = "
             + str(m["var_miss"]) + ", Cov = " + str(m["cov_outputs"]) + " (n = |f^-1(y)|)")
    return rows, ["map", "d", "predicted", "union_bound", "measured", "ratio", "C_over_d^p", "var_hit_at_C",
                  "var_miss_at_C"], title, None


def _factorized(args):

    d = args.d or 256
    ms = args.ms or [d // 16 * 2 ** k for k in range(5) if d // 16 * 2 ** k >= 1]
    seeds = args.seeds or 3
    rows, caps = [], {}
    for m in ms:
        res = [factorized_capacity(d, m, seed=s) for s in range(seeds)]
        caps[m] = [r["capacity"] for r in res]
        c = np.asarray(caps[m], dtype=float)
        rows.append({"d": d, "m": m, "capacity": float(c.mean()),
                     "se": float(c.std(ddof=1) / math.sqrt(c.size)) if c.size > 1 else float("nan"),
                     "per_seed": caps[m], "C/(m d)": float(c.mean()) / (m * d),
                     "memories": res[0]["memories"], "seconds": round(sum(r["seconds"] for r in res), 1)})
        print(f"factorized d={d} m={m}: {caps[m]}", file=sys.stderr)
    full = search_capacity("injective", d, 0.99, 0, resolution=0.01).capacity
    fits = {}
    for lo_m in (ms[0], ms[1] if len(ms) > 3 else ms[0]):
        pts = {(m,): np.maximum(np.asarray(v, float), 0.5) for m, v in caps.items() if m >= lo_m}
        if len(pts) >= 3:
            point, lo, hi, _ = power_law_bootstrap(pts, resamples=args.bootstrap)
            fits[lo_m] = (float(point[1]), float(lo[1]), float(hi[1]))
    extra = {"unfactorized_capacity": full, "C/d^2_unfactorized": full / d ** 2,
             "exponents": {f"m >= {k}": v for k, v in fits.items()}}
    title = (f"Factorized memories at d = {d}: unfactorized capacity {full} (C/d^2 = {full / d ** 2:.4f}); "
             + "; ".join(f"exponent in m over m >= {k}: {v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]" for k, v in fits.items()))
    return rows, ["d", "m", "capacity", "se", "per_seed", "C/(m d)", "memories", "seconds"], title, extra


def _zipf(args):

    for k in args.maps:
        if k not in zm.MAPS:
            raise PopgradError(f"--maps: unknown map {k!r} (expected {', '.join(zm.MAPS)})")
    for a in args.alphas:
        if not a > 1:
            raise PopgradError(f"--alphas: alpha must be > 1, got {a}")
    dims = args.dims or [32, 64, 128, 256, 512]
    d_n = args.d or 512
    seeds = args.seeds or 5
    rows = []
    log = lambda t: print(t, file=sys.stderr)                                  # noqa: E731
    for alpha in args.alphas:
        for kind in args.maps:
            rows += zm.n_sweep(alpha, kind, args.ns, d_n, args.N or 16384, seeds, progress=log)
            rows += zm.d_sweep(alpha, kind, dims, args.N or 4096, seeds, progress=log)
    fits = zm.fitted_exponents(rows, resamples=args.bootstrap)
    for r in rows:
        r["error_median"] = float(np.median(r["errors"]))
        M = 2 if r["map"] == "mod2" else r["N"]
        if r["sweep"] == "n":
            r["chance_floor"] = r["infinite_memory"] * (1 - 1 / M)        # unseen tokens guessed among M outputs
    title = "Exponents b of error ~ x^-b (medians over seeds, 95% bootstrap interval) vs the theorem\n\n" + \
        markdown_table(fits, ["sweep", "alpha", "map", "scheme", "points", "exponent", "lo", "hi", "theorem"])
    return rows, ["sweep", "alpha", "map", "scheme", "n", "d", "N", "s", "k", "error", "se", "error_median",
                  "infinite_memory", "chance_floor"], title, {"exponents": fits}


def _hutter(args):
    rows = []
    N = args.N or 10 ** 5
    for alpha in args.alphas:
        p = zm.zipf_probs(N, alpha)
        exact = zm.infinite_memory_error(p, args.ns)
        for n, ex in zip(args.ns, exact):
            mc = cm.multinomial_unseen_mass(p, n, 200, seed=int(n * alpha))
            mean, se, z = zm.mc_z_score(mc, float(ex))
            rows.append({"alpha": alpha, "N": N, "n": n, "exact": float(ex), "monte_carlo": mean, "mc_se": se, "z": z})
        slope = -float(np.polyfit(np.log(args.ns), np.log(exact), 1)[0])
        print(f"alpha={alpha:g}: exponent {slope:.3f} vs (alpha-1)/alpha = {(alpha - 1) / alpha:.3f}", file=sys.stderr)
    return rows, ["alpha", "N", "n", "exact", "monte_carlo", "mc_se", "z"], \
        "Infinite-memory error sum_z p(z) (1 - p(z))^n: exact vs Monte-Carlo (200 samples of n tokens)", None


def _optim(args):

    rows = []
    for eta, k, med, lo, hi, stalled, top in cm.measure_opt_log_margins().details["rows"]:
        rows.append({"regime": "orthonormal margins", "eta": eta, "d": 64, "value": med,
                     "what": f"median slope of margin vs ln t, t = {cm.LOG_STEPS // 10}..{cm.LOG_STEPS}, over {k} "
                             f"tokens past the transient (range [{lo}, {hi}]); {stalled} stalled (margin up to {top})"})
    rows.append({"regime": "large batch step", "eta": 1.0, "d": "any",
                 "value": float(cm.measure_opt_large_batch().rate.split("^")[1]), "what": "slope of ln q on ln p"})
    for eta in cm.SGD_ETAS:
        rows.append({"regime": "batch-1 SGD", "eta": eta, "d": cm.SGD_D, "value": float(np.mean(cm.sgd_slopes(eta))),
                     "what": "slope of ln q on ln p, seen tokens"})
    for d, etas in ((cm.OSC_D, (10.0, 100.0, 1000.0, 10000.0)), (cm.OVER_D, (10.0, 100.0, 1000.0, 10000.0))):
        tab = cm.oscillation_table(d=d, etas=etas, steps=2000)
        for eta in etas:
            sel = [r for r in tab if r["eta"] == eta]
            rows.append({"regime": f"correlated d={d}", "eta": eta, "d": d,
                         "value": float(np.median([r["first_perfect"] for r in sel])),
                         "what": "median first step with accuracy 1",
                         "sign_changes": [r["sign_changes"] for r in sel],
                         "weighted_peak": float(np.mean([r["peak_weighted"] for r in sel])),
                         "weighted_final": float(np.mean([r["final_weighted"] for r in sel]))})
    return rows, ["regime", "eta", "d", "value", "what", "sign_changes", "weighted_peak", "weighted_final"], \
        "Optimizer regimes (Zipf alpha = 1.5, N = 64; 3 seeds)", None


# ----------------------------------------------------------------------------- plots
def _plot(part: str, rows, extra, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if part == "zipf":
        maps = sorted({r["map"] for r in rows})
        fig, axes = plt.subplots(2, len(maps), figsize=(5.5 * len(maps), 8), squeeze=False)
        for j, kind in enumerate(maps):
            for i, sweep in enumerate(("n", "d")):
                ax = axes[i][j]
                for (alpha, scheme), style in zip(sorted({(r["alpha"], r["scheme"]) for r in rows}),
                                                  itertools_cycle()):
                    sel = [r for r in rows if r["sweep"] == sweep and r["map"] == kind and r["alpha"] == alpha
                           and r["scheme"] == scheme]
                    if sel:
                        ax.plot([r[sweep] for r in sel], [max(r["error_median"], 1e-5) for r in sel], style,
                                label=f"alpha={alpha:g} {scheme}")
                if sweep == "n":
                    for alpha in sorted({r["alpha"] for r in rows}):
                        sel = [r for r in rows if r["sweep"] == "n" and r["map"] == kind and r["alpha"] == alpha
                               and r["scheme"] == "counts"]
                        ax.plot([r["n"] for r in sel], [r["chance_floor"] for r in sel], "k:", lw=1)
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlabel("n (d fixed)" if sweep == "n" else "d (n = infinity)")
                ax.set_ylabel("error (median over seeds)")
                ax.set_title(f"{kind}: error vs {sweep}" + (" (dotted: infinite memory)" if sweep == "n" else ""))
                ax.legend(fontsize=7)
        fig.tight_layout()
    elif part == "factorized":
        fig, ax = plt.subplots(figsize=(5.5, 4))
        ax.errorbar([r["m"] for r in rows], [r["capacity"] for r in rows], [r["se"] for r in rows], fmt="o-",
                    label="factorized W_1^T W_2")
        d = rows[0]["d"]
        ax.axhline(extra["unfactorized_capacity"], color="k", ls=":", label="unfactorized, same d")
        ms = np.array([r["m"] for r in rows], float)
        ax.plot(ms, 0.013 * ms * d, "g--", lw=1, label="0.013 m d")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("m")
        ax.set_ylabel("capacity (recall >= 0.99)")
        ax.set_title(f"factorized memory, d = {d}")
        ax.legend(fontsize=8)
        fig.tight_layout()
    elif part == "moments":
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for kind, p in (("injective", 2), ("mod2", 1)):
            sel = [r for r in rows if r["map"] == kind]
            ax.plot([r["d"] for r in sel], [r["predicted"] / r["d"] ** p for r in sel], "o-", label=f"{kind} predicted")
            ms = [r for r in sel if r["measured"]]
            ax.plot([r["d"] for r in ms], [r["measured"] / r["d"] ** p for r in ms], "x", ms=9,
                    label=f"{kind} measured")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("d")
        ax.set_ylabel("capacity / d^2 (injective), / d (mod 2)")
        ax.legend(fontsize=8)
        fig.tight_layout()
    else:
        raise PopgradError("--plot: the optim part has no figure")
    save_figure(fig, path)


def itertools_cycle():
    import itertools
    return itertools.cycle(["o-", "s--", "^-.", "v-", "D--", "x-."])


# The largest sizes accepted (a larger one is refused up front, before any work).
CAPS = {"dims": 16384, "measure_dims": 16384, "d": 16384, "ms": 16384, "ns": 10 ** 8, "N": 10 ** 7,
        "bootstrap": 10 ** 6, "threads": 1024}


def check_sizes(args) -> None:
    """Refuse a size above its cap, naming the option."""
    for name, cap in CAPS.items():
        value = getattr(args, name)
        for v in value if isinstance(value, list) else [value]:
            if v is not None and v > cap:
                raise PopgradError(f"--{name.replace('_', '-')}: at most {cap}, got {v}")
    if args.part is None:
        raise PopgradError(f"part: give one of {', '.join(PARTS)} (popgrad memories PART)")


def run(args) -> int:
    import torch

    check_sizes(args)
    torch.set_num_threads(args.threads)
    if args.part in ("optim", "hutter") and args.plot:
        raise PopgradError(f"--plot: the {args.part} part has no figure")
    rows, columns, title, extra = {"moments": _moments, "factorized": _factorized, "zipf": _zipf,
                                   "hutter": _hutter, "optim": _optim}[args.part](args)
    emit(rows, columns, args, title=title, extra=extra)
    if args.plot:
        _plot(args.part, rows, extra, args.plot)
    return 0
