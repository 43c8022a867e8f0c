"""`popgrad recall-table`: one-step recall R_1 vs d and number of batches (App. E, Figure 9)."""

from __future__ import annotations

import argparse
import math

from popgrad.cliutil import (add_output_options, add_sweep_options, emit, int_at_least_2, int_list, markdown_table,
                             nonnegative_int, pm, positive_int, save_figure)
from popgrad.errors import PopgradError
from popgrad.sweep import describe, options_from_args, runner

NAME = "recall-table"
HELP = "one-step recall R_1 of W_O^2 vs dimension and number of batches (Figure 9)"
DESCRIPTION = ("Figure 9 of App. E: R_1 = (1/N) sum_k 1{k = argmax_k' (W_V^2 w_E(k'))^T (mu_k - mu)} with "
               "mu_k, mu estimated from the given number of batches of model C, mean ± standard error over "
               "seeds (a seed changes data and embeddings). Also the probe (9) of the one-step W_O^2 (eq. (15)).")
DIMS = [16, 32, 64, 128, 256, 512]
BATCHES = [1, 2, 4, 8, 16, 32, 64]
MAX_TOKENS = 5e9


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Model C options shared with `popgrad scaling`."""
    p.add_argument("--N", type=positive_int, default=None,
                   help="vocabulary size; N != 65 selects the all-uniform bigram model (default: 65, Shakespeare)")
    p.add_argument("--uniform", action="store_true", help="all-uniform bigram model (with --N)")
    p.add_argument("--T", type=int_at_least_2, default=256, help="sequence length (>= 2, default 256)")
    p.add_argument("--K", type=nonnegative_int, default=5, help="number of triggers (default 5)")
    p.add_argument("--triggers", choices=("random", "frequent", "rare"), default="random",
                   help="random: K draws from pi_q = pi_u per sequence (default); frequent/rare: fixed set")
    p.add_argument("--outputs", choices=("uniform", "bigram"), default="uniform", help="pi_o (default uniform)")
    p.add_argument("--text", metavar="FILE", help="custom text for pi_u and pi_b (character counts)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="sequences per batch (default 32)")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds (data and embeddings; default 3)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="first seed (default 0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto = CUDA when present")


def add_arguments(p):
    add_model_arguments(p)
    p.add_argument("--dims", type=int_list, default=DIMS, help="dimensions d (default 16,32,64,128,256,512)")
    p.add_argument("--batches", type=int_list, default=BATCHES, help="batch counts (default 1,2,4,8,16,32,64)")
    add_output_options(p, plot_help="also write R_1 vs batches (one curve per d, error bars) to FILE.png")
    add_sweep_options(p)


def model_from_args(args):
    from popgrad.numerics.recall import build_model_c  # lazy: torch loads only after the arguments are validated

    return build_model_c(args.N, args.T, args.K, args.triggers, args.outputs, args.text, args.uniform)


def check_budget(T: int, batches: int, batch_size: int, seeds: int, what: str = "--batches") -> None:
    """Refuse up front a run that would sample more than MAX_TOKENS tokens."""
    tokens = float(batches) * batch_size * T * seeds
    if tokens > MAX_TOKENS:
        raise PopgradError(f"{what} x --batch-size x --T x --seeds = {tokens:.2g} tokens, more than the limit "
                           f"{MAX_TOKENS:.0e}: reduce them")


def check_model_sizes(args, Ns=(), dims=()) -> None:
    """Refuse up front sizes whose tables or embeddings cannot fit in memory (names the option)."""
    from popgrad.errors import memory_budget  # lazy: torch loads only after the arguments are validated

    for n, opt in [(args.N, "--N")] + [(n, "--Ns") for n in Ns]:
        if n is not None:
            memory_budget(f"{opt} {n}", 8.0 * n * n)                     # pi_b, pi_o and alias tables
    N = args.N or 65
    for d, opt in dims:
        memory_budget(f"{opt} {d}", d * (2 * N + args.T + 3 * d))        # make_embeddings
    memory_budget(f"--T {args.T}", 4.0 * args.T * 512)                   # one chunk of int32 buffers


def cell_text(mean: float, se: float) -> str:
    return pm(mean, se)


def run(args) -> int:
    batches = sorted(set(args.batches))
    check_budget(args.T, max(batches), args.batch_size, args.seeds)
    check_model_sizes(args, dims=[(max(args.dims), "--dims")])
    sweep = options_from_args(args)
    # numerics (and torch) load only once the arguments are known to be good
    from popgrad.device import resolve_device  # lazy: torch loads only after the arguments are validated
    from popgrad.numerics.recall import recall_grid  # lazy: torch loads only after the arguments are validated

    model = model_from_args(args)
    device = resolve_device(args.device)
    cells = recall_grid(model, args.dims, batches, args.seeds, args.batch_size, args.seed, device, run=runner(sweep))
    long_rows = []
    for c in cells:
        (r1m, r1s), (pm, ps) = c.r1_mean_se, c.probe_mean_se
        long_rows.append({"d": c.d, "batches": c.batches, "tokens": c.batches * args.batch_size * model.T,
                          "pairs": c.pairs, "r1_mean": r1m, "r1_se": r1s, "probe_mean": pm, "probe_se": ps,
                          "r1_seeds": list(c.r1), "probe_seeds": list(c.probe)})
    columns = ["d"] + [str(b) for b in batches]
    wide = {key: [] for key in ("r1", "probe")}
    for d in dict.fromkeys(args.dims):
        for key in wide:
            row = {"d": d}
            for r in long_rows:
                if r["d"] == d:
                    row[str(r["batches"])] = cell_text(r[f"{key}_mean"], r[f"{key}_se"])
            wide[key].append(row)
    long_columns = ["d", "batches", "tokens", "pairs", "r1_mean", "r1_se", "probe_mean", "probe_se"]
    title = (f"One-step recall R_1 (rows d, columns batches of {args.batch_size} sequences; N={model.N}, "
             f"T={model.T}, K={model.K}, {args.triggers} triggers, {args.outputs} outputs; "
             f"mean ± se over {args.seeds} seeds; device {device.type})")
    out_args = argparse.Namespace(**{**vars(args), "csv": None})
    emit(wide["r1"], columns, out_args, title=title, extra={"cells": long_rows, "probe_rows": wide["probe"],
                                                          "sweep": describe(sweep)})
    if not args.json:
        print("\n## Probe (9) of the one-step W_O^2 (eq. (15)) against eq. (7)'s target\n")
        print(markdown_table(wide["probe"], columns))
    if args.csv:
        from popgrad.cliutil import write_csv  # lazy: torch loads only after the arguments are validated

        write_csv(args.csv, long_rows, long_columns)
    if args.plot:
        plot_recall(long_rows, args.plot, title=f"R_1 (N={model.N}, T={model.T}, K={model.K})")
    return 0


def plot_recall(rows, path: str, title: str = "") -> None:
    """R_1 vs batches, one curve per d, error bars = standard errors (reads rows only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for d in dict.fromkeys(r["d"] for r in rows):
        rs = [r for r in rows if r["d"] == d]
        se = [0.0 if not math.isfinite(r["r1_se"]) else r["r1_se"] for r in rs]
        ax.errorbar([r["batches"] for r in rs], [r["r1_mean"] for r in rs], yerr=se, marker="o", ms=3,
                    capsize=2, label=f"d={d}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("number of batches")
    ax.set_ylabel("one-step recall R_1")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
