"""`popgrad noisy`: noisy in-context recall (model E, SPEC §7): signals, sample complexities, truncation.

Parts (--part, default rates):
  signals     exact one-step signals at initialization (theory.noisy_recall) over N, T, eps:
              the feed-forward q -> noise margin and the W_O^2 y -> y margin, token coordinates
  rates       from n sampled sequences: the first n at which the one-step W_F maps q to the noise
              token and at which the one-step W_O^2 reaches R_1 >= --threshold, per seed, for each
              (N, eps); exponents in N of the medians with bootstrap intervals (popgrad.rates)
  truncation  train the two-layer model with a linear W_F on model E (loss on all tokens) over
              seeds and measure, at the in-context trigger positions, the noise probability and
              the accuracy on ybar with and without W_F, and layer-2 attention on ybar / noise
Every (N, eps, seed) or training seed is one sweep cell (--workers, --cache).
"""

from __future__ import annotations

import math

import numpy as np

from popgrad.cliutil import (add_output_options, add_sweep_options, emit, float_list, int_list, markdown_table,
                             nonnegative_int, positive_float, positive_int, save_figure)
from popgrad.errors import PopgradError
from popgrad.sweep import describe, options_from_args

NAME = "noisy"
HELP = "noisy in-context recall (model E): exact signals, sample complexities in N, truncation of W_F"
DESCRIPTION = ("Noisy in-context recall (model E, SPEC §7). --part signals: the exact one-step signals at "
               "initialization over N, T, eps (feed-forward q -> noise, W_O^2 y -> y; token coordinates). --part rates "
               "(default): from n sampled sequences, the first n at which the one-step W_F maps q to the noise token "
               "and at which the one-step W_O^2 reaches R_1 >= --threshold, per seed and (N, eps), with exponents in N "
               "and bootstrap intervals. --part truncation: train the two-layer model with a linear W_F on model E "
               "(loss on all tokens) and measure at the in-context triggers the noise probability and the accuracy "
               "on ybar with and without W_F, and layer-2 attention on ybar / noise positions. Every (N, eps, seed) "
               "or training seed is one sweep cell (--workers, --cache).")
RATE_COLUMNS = ("eps", "N", "n_ff_median", "n_ff_per_seed", "n_wo2_median", "n_wo2_per_seed", "pairs_ff_median",
                "pairs_wo2_median", "pairs_per_sequence")
SIGNAL_COLUMNS = ("eps", "N", "T", "ff_noise_entry", "ff_margin", "wo2_margin", "wo2_diag", "ratio_ff_wo2", "pairs")
TRUNC_KEYS = ("p_noise_full", "p_noise_no_ff", "acc_y_full", "acc_y_no_ff", "p_y_full", "p_y_no_ff", "attn_y",
              "attn_noise", "ff_noise", "head_recall_full", "head_recall_no_ff")


def add_arguments(p):
    p.add_argument("--part", choices=("rates", "signals", "truncation"), default="rates", help="what to compute (rates)")
    p.add_argument("--Ns", type=int_list, default=[8, 16, 32, 64, 128], help="N values (rates: 8,16,32,64,128)")
    p.add_argument("--Ts", type=int_list, default=[16, 32, 64], help="T values of --part signals (16,32,64)")
    p.add_argument("--eps", type=float_list, default=[0.2, 0.5], help="noise probabilities (0.2,0.5)")
    p.add_argument("--T", type=positive_int, default=256, help="sequence length for rates / truncation (256)")
    p.add_argument("--seeds", type=positive_int, default=5, help="seeds (rates 5; truncation uses --train-seeds)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="first seed")
    p.add_argument("--max-n", type=positive_int, default=2 ** 15, help="largest number of sequences (32768)")
    p.add_argument("--threshold", type=positive_float, default=0.9, help="R_1 target in (0, 1] (0.9)")
    p.add_argument("--d", type=nonnegative_int, default=0, help="embedding dimension of the readouts; 0 = token "
                                                               "coordinates (orthonormal, default)")
    p.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples (2000)")
    g = p.add_argument_group("--part truncation")
    g.add_argument("--train-N", type=positive_int, default=8, help="N (8)")
    g.add_argument("--train-T", type=positive_int, default=32, help="T (32)")
    g.add_argument("--train-eps", type=positive_float, default=0.5, help="eps (0.5)")
    g.add_argument("--train-d", type=positive_int, default=64, help="d (64)")
    g.add_argument("--batch", type=positive_int, default=64, help="sequences per SGD step (64)")
    g.add_argument("--steps", type=positive_int, default=1500, help="SGD steps (1500)")
    g.add_argument("--eta", type=positive_float, default=1.0, help="SGD step size (1.0)")
    g.add_argument("--probe-every", type=positive_int, default=50, help="learning-curve spacing (50)")
    g.add_argument("--train-seeds", type=positive_int, default=3, help="training seeds (3)")
    g.add_argument("--test-batch", type=positive_int, default=512, help="test sequences (512)")
    add_output_options(p, plot_help="write the figure (rates: sample complexities vs N; truncation: curves) to FILE.png")
    add_sweep_options(p)


LIMITS = (("Ns", 2, 4096), ("Ts", 3, 1024), ("T", 3, 4096), ("seeds", 1, 1000), ("max_n", 1, 2 ** 22),
          ("d", 0, 4096), ("resamples", 1, 100_000), ("train_N", 2, 1024), ("train_T", 3, 1024), ("train_d", 1, 1024),
          ("batch", 1, 65_536), ("steps", 1, 1_000_000), ("probe_every", 1, 1_000_000), ("train_seeds", 1, 64),
          ("test_batch", 1, 65_536))


def validate_args(args) -> None:
    """Refuse every out-of-range option up front, whichever --part runs (one line naming the option)."""
    for name, lo, hi in LIMITS:
        values = getattr(args, name)
        for v in values if isinstance(values, list) else [values]:
            if not lo <= v <= hi:
                raise PopgradError(f"--{name.replace('_', '-')} must be in {lo}..{hi}, got {v}")
    for e in args.eps:
        if not 0 < e < 1:
            raise PopgradError(f"--eps: each eps must be in (0, 1), got {e}")
    if not 0 < args.train_eps < 1:
        raise PopgradError(f"--train-eps must be in (0, 1), got {args.train_eps}")
    if args.threshold > 1:
        raise PopgradError(f"--threshold must be in (0, 1], got {args.threshold}")
    if args.eta > 1e3:
        raise PopgradError(f"--eta must be <= 1000, got {args.eta}")
    if args.probe_every > args.steps:
        raise PopgradError(f"--probe-every must be <= --steps ({args.steps}), got {args.probe_every}")


def run(args) -> int:
    validate_args(args)
    sweep = options_from_args(args)
    if args.part == "signals":
        return run_signals(args)
    if args.part == "truncation":
        return run_truncation(args, sweep)
    return run_rates(args, sweep)


# ----------------------------------------------------------------------------- signals
def run_signals(args) -> int:
    for e in args.eps:
        if e >= 1:
            raise PopgradError(f"--eps: each eps must be in (0, 1), got {e}")
    for N in args.Ns:
        if N < 2 or N > 256:
            raise PopgradError(f"--Ns: N must be in 2..256 for the exact engine, got {N}")
    for T in args.Ts:
        if T < 3 or T > 1024:
            raise PopgradError(f"--Ts: T must be in 3..1024 for the exact engine, got {T}")
    from popgrad.data import noisy_recall_model  # lazy: numpy-only, after validation
    from popgrad.theory.noisy_recall import signals  # lazy: torch loads only after the arguments are validated

    rows = []
    for e in args.eps:
        for N in args.Ns:
            for T in args.Ts:
                s = signals(noisy_recall_model(N, T, e))
                rows.append({"eps": e, "N": N, "T": T, **s, "ratio_ff_wo2": s["ff_margin"] / s["wo2_diag"]})
    emit(rows, SIGNAL_COLUMNS, args, title="Exact one-step signals at initialization (token coordinates, model E "
                                          "with uniform pi_u, pi_b, q = 0; theory.noisy_recall)")
    return 0


# ----------------------------------------------------------------------------- rates
def run_rates(args, sweep) -> int:
    from popgrad.numerics.noisy_recall import validate_sweep  # lazy: torch loads only after the arguments are validated

    validate_sweep(args.Ns, args.T, args.eps, args.max_n, args.threshold)
    from popgrad.numerics.noisy_recall import sample_complexity_cells  # lazy: as above
    from popgrad.sweep import run_cells  # lazy: as above

    cells = sample_complexity_cells(args.Ns, args.T, args.eps, args.seeds, args.max_n, args.threshold, args.d, args.seed)
    values = [r.value for r in run_cells(cells, sweep, desc="noisy recall cells")]
    rows, fits = rate_rows(args, values)
    emit(rows, RATE_COLUMNS, args,
         title=(f"Sequences n (T = {args.T}) until the one-step W_F maps q -> noise (n_ff) and the one-step W_O^2 "
                f"reaches R_1 >= {args.threshold:g} (n_wo2); median over {args.seeds} seeds, "
                f"{'token coordinates' if args.d == 0 else f'd = {args.d}'}"),
         extra={"fits": fits, "sweep": describe(sweep), "per_cell": values})
    if not args.json:
        print("\n## Exponents in N (median over seeds; 95% bootstrap interval); theorem: W_F O(1) = N^0, "
              "attention O(N) = N^1\n")
        print(markdown_table(fits, ("eps", "quantity", "exponent", "lo", "hi", "dropped_resamples")))
    if args.plot:
        plot_rates(rows, fits, args.plot, args.threshold)
    return 0


def rate_rows(args, values):
    """Table rows per (eps, N) and the fitted exponents with bootstrap intervals per (eps, quantity)."""
    from popgrad.numerics.noisy_recall import rate_table  # lazy: torch loads only after the arguments are validated

    return rate_table(values, args.Ns, args.eps, args.seeds, args.resamples, args.seed)


def plot_rates(rows, fits, path: str, threshold: float) -> None:
    """Median sequences (left) and in-context pairs (right) to q -> noise (W_F) and to R_1 >= threshold
    (W_O^2) vs N, log-log, with the fitted exponents in the legend (reads rows and fits)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9))
    panels = ((("n_ff_median", "W_F q->noise (sequences)"), ("n_wo2_median", "W_O^2 R_1 (sequences)"), "sequences n"),
              (("pairs_ff_median", "W_F q->noise (in-context pairs)"), ("pairs_wo2_median", "W_O^2 R_1 (in-context pairs)"),
               "in-context trigger pairs"))
    for ax, (ff, wo, ylabel) in zip(axes, panels):
        for e, mk in zip(sorted({r["eps"] for r in rows}), ("o", "s", "^", "D")):
            rs = [r for r in rows if r["eps"] == e]
            slope = {f["quantity"]: f for f in fits if f["eps"] == e}
            for (key, q), ls, who in ((ff, "--", "W_F"), (wo, "-", "W_O^2")):
                pts = [(r["N"], r[key]) for r in rs if math.isfinite(r[key])]
                if pts:
                    f = slope.get(q, {})
                    ax.plot(*zip(*pts), ls, marker=mk, label=f"{who}, eps={e:g}: N^{f.get('exponent', math.nan):.2f} "
                            f"[{f.get('lo', math.nan):.2f}, {f.get('hi', math.nan):.2f}]")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("N")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.suptitle(f"one-step W_F: q -> noise; one-step W_O^2: R_1 >= {threshold:g} (median over seeds)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


# ----------------------------------------------------------------------------- truncation
def run_truncation(args, sweep) -> int:
    if not 0 < args.train_eps < 1:
        raise PopgradError(f"--train-eps must be in (0, 1), got {args.train_eps}")
    if args.train_N < 2 or args.train_T < 3:
        raise PopgradError(f"--train-N must be >= 2 and --train-T >= 3, got {args.train_N}, {args.train_T}")
    if args.probe_every > args.steps:
        raise PopgradError(f"--probe-every must be <= --steps ({args.steps}), got {args.probe_every}")
    from popgrad.cells import Cell  # lazy: torch loads only after the arguments are validated
    from popgrad.numerics.noisy_training import seed_summary, train_noisy_cell  # lazy: as above
    from popgrad.sweep import run_cells  # lazy: as above

    cells = [Cell(train_noisy_cell, {"N": args.train_N, "T": args.train_T, "eps": args.train_eps, "d": args.train_d,
                                     "batch": args.batch, "steps": args.steps, "eta": args.eta,
                                     "probe_every": args.probe_every, "test_batch": args.test_batch,
                                     "scale": "sqrt", "embed": "code"}, args.seed + s, label=f"seed {args.seed + s}")
             for s in range(args.train_seeds)]
    values = [r.value for r in run_cells(cells, sweep, desc="noisy training seeds")]
    rows = []
    for k in TRUNC_KEYS:
        m, se = seed_summary(values, k)
        per = " ".join(f"{v['final'][k]:.3f}" for v in values)
        rows.append({"metric": k, "mean": m, "se": se, "per_seed": per})
    title = (f"Model E (N = {args.train_N}, T = {args.train_T}, eps = {args.train_eps:g}) trained with a linear W_F, "
             f"d = {args.train_d}, {args.steps} steps of {args.batch}, eta = {args.eta:g}; in-context trigger positions "
             f"of {args.test_batch} fresh sequences; mean over {args.train_seeds} seeds (se over seeds)")
    emit(rows, ("metric", "mean", "se", "per_seed"), args, title=title,
         extra={"curves": [v["curves"] for v in values], "sweep": describe(sweep)})
    if args.plot:
        plot_truncation(values, args.plot, args.train_eps)
    return 0


def plot_truncation(values, path: str, eps: float) -> None:
    """Learning curves (mean over seeds): noise probability and ybar accuracy with / without W_F, attention."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in values[0]["curves"]]

    def mean(key):
        return np.mean([[r[key] for r in v["curves"]] for v in values], axis=0)

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
    ax = axes[0]
    ax.plot(steps, mean("p_noise_full"), label="P(noise), with W_F")
    ax.plot(steps, mean("p_noise_no_ff"), label="P(noise), W_F removed")
    ax.axhline(eps, color="gray", ls=":", lw=1)
    ax.set_title("noise probability at triggers", fontsize=9)
    ax = axes[1]
    ax.plot(steps, mean("acc_y_full"), label="acc on ybar, with W_F")
    ax.plot(steps, mean("acc_y_no_ff"), label="acc on ybar, W_F removed")
    ax.plot(steps, mean("ff_noise"), ls="--", label="W_F memory: q -> noise")
    ax.plot(steps, mean("head_recall_full"), ls=":", label="head recall (9), (I + W_F) W_O^2")
    ax.plot(steps, mean("head_recall_no_ff"), ls=":", label="head recall (9), W_O^2 alone")
    ax.set_title("in-context head vs feed-forward memory", fontsize=9)
    ax = axes[2]
    ax.plot(steps, mean("attn_y"), label="layer-2 attention on ybar positions")
    ax.plot(steps, mean("attn_noise"), label="on noise positions")
    ax.set_title("attention of the trigger query", fontsize=9)
    for ax in axes:
        ax.set_xlabel("SGD step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
