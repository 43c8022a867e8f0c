"""`popgrad feedforward`: eq. (8)'s W_F and its KL (10) against d, with the exact orthonormal limit."""

from __future__ import annotations

import argparse
import math

from popgrad.cliutil import add_output_options, emit, int_list, nonnegative_int, positive_int, save_figure
from popgrad.errors import PopgradError

NAME = "feedforward"
HELP = "KL (10) of the printed feed-forward memory W_F (eq. (8)) against d, and its d -> infinity limit"
DESCRIPTION = ("Eq. (8) with log 0 floored at --floor, on the tiny-Shakespeare bigrams: eq. (10) (direction "
               "KL(pi_b || softmax(W_U W_F w_E(k))), the printed direction is +inf on these counts) at random "
               "N(0, 1/d) embeddings, mean ± se over --draws draws per d (Wishart Gram matrices, any d), the "
               "exact orthonormal limit mean_k log(1 + z_k e^floor) and the fitted exponent of KL(d) - limit.")
DIMS = [2 ** k for k in range(7, 21)]


def log_floor(text: str) -> float:
    """A finite log-probability <= 0 (the value that replaces log 0)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number <= 0, got {text!r}") from None
    if not math.isfinite(value) or value > 0:
        raise argparse.ArgumentTypeError(f"expected a finite number <= 0, got {text!r}")
    return value


def add_arguments(p):
    p.add_argument("--dims", type=int_list, default=DIMS, help="dimensions d >= 65 (default 2^7 .. 2^20)")
    p.add_argument("--floor", type=log_floor, default=-12.0, help="value of log 0 in eq. (8) (default -12)")
    p.add_argument("--draws", type=positive_int, default=40, help="embedding draws per d (default 40)")
    p.add_argument("--fit-from", type=positive_int, default=2048, help="fit the exponent on d >= this (default 2048)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the draws (default 0)")
    add_output_options(p, plot_help="also write KL (10) vs d (log-log, error bars, limit and uniform lines) to FILE.png")


MAX_DRAWS = 100_000                     # embedding draws per d (each draw holds an N x N logit table)


def run(args) -> int:
    if args.draws > MAX_DRAWS:
        raise PopgradError(f"--draws must be <= {MAX_DRAWS}, got {args.draws}")
    dims = sorted(set(args.dims))
    if dims[0] < 65:
        raise PopgradError(f"--dims must be >= 65 (N of the Shakespeare vocabulary), got {dims[0]}")
    fit = [d for d in dims if d >= args.fit_from]
    if len(fit) < 2:
        raise PopgradError(f"--fit-from {args.fit_from}: needs at least two --dims at or above it")
    from popgrad.data import bigram_trigger_model  # lazy: torch loads only after the arguments are validated
    from popgrad.numerics import feedforward as nf  # lazy: as above
    from popgrad.theory import feedforward as ff  # lazy: as above

    pb = bigram_trigger_model(T=8, K=1).pi_b
    limit, uni = ff.orthonormal_limit_kl(pb, args.floor), ff.uniform_kl(pb)
    samples = nf.kl_versus_d(pb, dims, args.draws, args.floor, args.seed)
    rows, (a, lo, hi, C) = nf.kl_table(samples, limit, args.fit_from)
    title = (f"KL (10) of eq. (8), floor {args.floor:g}, {args.draws} draws per d (seed {args.seed}); orthonormal limit "
             f"{limit:.6g} (exact), uniform predictor {uni:.4f}; KL - limit ~ d^{a:.3f} [{lo:.3f}, {hi:.3f}] (d >= {args.fit_from})")
    emit(rows, ["d", "kl", "kl_se", "excess", "d_times_excess"], args, title=title,
         extra={"limit": limit, "uniform": uni, "exponent": [a, lo, hi], "prefactor": C, "floor": args.floor,
                "zero_bigrams": int((pb <= 0).sum())})
    if args.plot:
        plot_kl(rows, limit, uni, args.plot, title=f"eq. (8), floor {args.floor:g}: KL (10) vs d (slope {a:.2f})")
    return 0


def plot_kl(rows, limit: float, uniform: float, path: str, title: str = "") -> None:
    """KL (10) and KL - limit vs d on log-log axes, with the exact limit and the uniform predictor (reads rows only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ds = [r["d"] for r in rows]
    ax.errorbar(ds, [r["kl"] for r in rows], yerr=[r["kl_se"] for r in rows], marker="o", ms=3, capsize=2, label="KL (10)")
    ax.plot(ds, [r["excess"] for r in rows], "s--", ms=3, label="KL - limit")
    ax.axhline(limit, color="k", lw=0.8, ls=":", label=f"orthonormal limit {limit:.2g}")
    ax.axhline(uniform, color="r", lw=0.8, ls="-.", label=f"uniform predictor {uniform:.2f}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("d")
    ax.set_ylabel("nats")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
