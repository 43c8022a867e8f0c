"""`popgrad dynamics`: population gradient steps beyond one per layer.

k population gradient steps per layer, top-down (W_O^2, then W_K^2, then W_K^1), repeated for
--rounds rounds ("consecutive"), or alternating one step per layer ("alternating"), or all three
together ("joint"), on model D. After every step: the assembled head's accuracy at position T on
--n-eval fresh sequences (standard error sqrt(p(1-p)/n)) and the recall (9) of each matrix against
eq. (7). The summary table answers: how many steps, at which step sizes, reach --thresholds
accuracy (mean and standard error over --seeds; a seed that never reaches counts as "not reached").

Two losses (--loss): "full" (the cross-entropy at position T of the full Sec. 4.2 model, default)
and "b3" (the simplified per-layer losses of App. B.3; a layer's first step from zero is the
exact engine's when --phat uniform). See popgrad.numerics.dynamics.
--population mc (fresh sequences per step), fixed (the same --n sequences every step) or enumerated
(model D exactly). On one machine the same seed and arguments print the same numbers with any thread
count and with --workers (one torch thread per step, per-(seed, step) streams, fixed-order float64
sums); float32 per-seed counts differ between CPUs, the medians hold within their intervals
(docs/dynamics.md). A seed that has not reached a threshold after --k x --rounds steps per layer
counts as never reaching it, and the output says how many did (a note line; `out_of_budget`).
Ctrl-C stops the run and prints (and writes) the rows collected so far.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from popgrad.cliutil import (add_output_options, add_sweep_options, emit, nonnegative_int, positive_int, progress,
                             save_figure, write_csv)
from popgrad.errors import PopgradError, memory_budget
from popgrad.numerics.options import LOSSES, PHAT, POPULATIONS, SCHEDULES
from popgrad.sweep import Cell, describe, options_from_args, run_cells

NAME = "dynamics"
HELP = "Population dynamics: k gradient steps per layer, top-down, in rounds; accuracy and recall per step"
CURVE = ("etas", "schedule", "seed", "step", "round", "layer", "steps_W_O2", "steps_W_K2", "steps_W_K1",
         "loss", "accuracy", "accuracy_se", "n_eval", "recall_W_O2", "recall_W_K2", "recall_W_K1", "cos_engine")
SUMMARY = ("etas", "schedule", "threshold", "reached", "seeds", "fraction", "steps_median", "steps_median_lo",
           "steps_median_hi", "steps_mean", "steps_se", "steps_per_layer_mean",
           "best_accuracy", "best_accuracy_se", "final_accuracy", "final_accuracy_se", "n_eval", "steps_run",
           "out_of_budget")
DEFAULT_ETAS = "15:150:150"   # at these step sizes the step counts are converged in n from n = 2048 (docs/dynamics.md)
DEFAULT_K = 200            # reaches every count of docs/dynamics.md at 15:150:150 (joint <= 113, alternating <= 164 per layer)
MAX_STEPS = 1_000_000      # steps per layer (k x rounds), and --every
MAX_SEEDS = 1000


def eta_triples(text: str) -> list[dict]:
    """'100:300:1000,30:100:100' -> [{W_O2: 100, W_K2: 300, W_K1: 1000}, ...] (eta_O:eta_K2:eta_K1)."""
    out = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        vals = part.split(":")
        if len(vals) == 1:
            vals = vals * 3
        if len(vals) != 3:
            raise argparse.ArgumentTypeError(f"expected eta_O:eta_K2:eta_K1 (or one number), got {part!r}")
        try:
            nums = [float(v) for v in vals]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected numbers in {part!r}") from None
        if not all(math.isfinite(v) and v > 0 for v in nums):
            raise argparse.ArgumentTypeError(f"step sizes must be finite and > 0, got {part!r}")
        out.append(dict(zip(("W_O2", "W_K2", "W_K1"), nums)))
    if not out:
        raise argparse.ArgumentTypeError(f"expected at least one eta_O:eta_K2:eta_K1, got {text!r}")
    return out


def thresholds(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected accuracies in (0, 1], got {text!r}") from None
    if not vals or not all(0 < v <= 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected accuracies in (0, 1], got {text!r}")
    return sorted(vals)


def add_arguments(p):
    p.add_argument("--N", type=positive_int, default=32, help="vocabulary size (>= 2)")
    p.add_argument("--T", type=positive_int, default=16, help="sequence length (>= 3)")
    p.add_argument("--d", type=positive_int, default=256, help="embedding dimension")
    p.add_argument("--etas", type=eta_triples, default=eta_triples(DEFAULT_ETAS),
                   help=f"step sizes eta_O:eta_K2:eta_K1, several separated by commas (default {DEFAULT_ETAS})")
    p.add_argument("--schedule", default="alternating", choices=SCHEDULES + ("all",),
                   help="consecutive (k steps per layer per round), alternating (default), joint, or all three")
    p.add_argument("--k", type=positive_int, default=DEFAULT_K,
                   help=f"steps per layer per round (default {DEFAULT_K}); a seed that has not reached a threshold "
                        "when they run out is counted as never reaching it, and the output says how many did")
    p.add_argument("--rounds", type=positive_int, default=1, help="rounds of the top-down pass (default 1)")
    p.add_argument("--loss", default="full", choices=LOSSES, help="full Sec. 4.2 cross-entropy (default) or the B.3 losses")
    p.add_argument("--phat", default="uniform", choices=PHAT, help="--loss b3 only: p_hat = 1/N (theorem) or true")
    p.add_argument("--population", default="mc", choices=POPULATIONS,
                   help="mc: --n fresh Monte-Carlo sequences per step (default); fixed: the same --n sequences every "
                        "step (full-batch descent on an empirical population); enumerated: model D exactly (small N, T)")
    p.add_argument("--n", type=positive_int, default=2048, help="Monte-Carlo sequences per step (default 2048)")
    p.add_argument("--n-eval", type=positive_int, default=2048, help="fresh sequences for the accuracy (default 2048)")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds (embeddings and data) (default 3)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="first seed (default 0)")
    p.add_argument("--thresholds", type=thresholds, default=[0.5, 0.9], help="accuracies to reach (default 0.5,0.9)")
    p.add_argument("--stop", action="store_true",
                   help="stop each seed once it reaches the largest threshold (its final accuracy is then that step's)")
    p.add_argument("--every", type=positive_int, default=5, help="print every k-th step in the markdown curve (all in --csv/--json)")
    p.add_argument("--dtype", default="auto", choices=("auto", "float64", "float32"),
                   help="auto (default): float32 for Monte-Carlo steps of the full loss, float64 for --population "
                        "enumerated and --loss b3 (exact engine)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda[:N]")
    add_output_options(p, plot_help="accuracy (and recalls) vs step, one curve per schedule and step sizes")
    add_sweep_options(p)                                  # each (etas, schedule, seed) is one cell


def _validate(args):
    if args.N < 2 or args.T < 3:
        raise PopgradError(f"model D needs N >= 2 and T >= 3, got N={args.N}, T={args.T}")
    if args.k * args.rounds > MAX_STEPS:
        raise PopgradError(f"--k {args.k} x --rounds {args.rounds} steps per layer: at most {MAX_STEPS}")
    if args.seeds > MAX_SEEDS:
        raise PopgradError(f"--seeds must be <= {MAX_SEEDS}, got {args.seeds}")
    if args.every > MAX_STEPS:
        raise PopgradError(f"--every must be <= {MAX_STEPS}, got {args.every}")
    memory_budget(f"--n-eval {args.n_eval} sequences with --T {args.T} (held at once)", 4.0 * args.n_eval * args.T)
    if args.population == "enumerated" and (args.T > 64 or args.N > 10_000):
        raise PopgradError(f"--population enumerated: model D with N={args.N}, T={args.T} is far too large; use --population mc")
    if args.population == "enumerated":
        sequences = args.N ** 2 * (args.N - 1) ** (args.T - 2) * (args.T - 2)
        if sequences > 200_000:
            raise PopgradError(f"--population enumerated: model D with N={args.N}, T={args.T} has about "
                               f"{sequences:.2e} sequences (limit 2e5); use --population mc")
        n = min(sequences, 200_000)
    else:
        n = args.n
    from popgrad.numerics.dynamics import memory_estimate_floats  # lazy: torch loads only after the arguments are validated

    memory_budget(f"--n {n} with --N {args.N} --T {args.T} --d {args.d} --loss {args.loss}",
                  memory_estimate_floats(args.N, args.T, args.d, n, args.n_eval, args.loss))
    if args.loss == "full" and args.phat != "uniform":
        raise PopgradError("--phat applies to --loss b3 only (the full loss uses the true softmax)")
    if args.dtype == "auto":
        args.dtype = "float32" if (args.population != "enumerated" and args.loss == "full") else "float64"
    if args.loss == "b3" and args.dtype != "float64":
        raise PopgradError("--loss b3 uses the exact engine, which needs --dtype float64")
    return SCHEDULES if args.schedule == "all" else (args.schedule,)


def eta_label(etas: dict) -> str:
    return ":".join(f"{etas[k]:g}" for k in ("W_O2", "W_K2", "W_K1"))


def curve(N, T, d, dtype, device, etas, kind, k, rounds, loss, phat, population, n, n_eval, seed, stop_at=None):
    """The curve rows of one (etas, schedule, seed) run, one per step; with `stop_at`, up to the first
    step whose accuracy reaches it."""
    from popgrad.data import SecondOccurrenceModel  # lazy: torch loads only after the arguments are validated
    from popgrad.embeddings import make_embeddings  # lazy: torch loads only after the arguments are validated
    from popgrad.numerics.dynamics import dynamics  # lazy: torch loads only after the arguments are validated

    emb = make_embeddings(d, N, T, seed=seed, dtype=dtype, device=device)
    for r in dynamics(SecondOccurrenceModel(N, T), emb, etas, k=k, rounds=rounds, kind=kind, loss=loss, phat=phat,
                      population=population, n=n, n_eval=n_eval, seed=seed, engine_cosine=True):
        yield {"etas": eta_label(etas), "schedule": kind, "seed": seed, **{c: v for c, v in r.items() if not c.startswith("_")}}
        if stop_at is not None and r["accuracy"] >= stop_at:
            return


def dynamics_cell(N, T, d, dtype, device, etas, kind, k, rounds, loss, phat, population, n, n_eval, stop_at,
                  seed) -> list[dict]:
    """One (etas, schedule, seed) run as a pure sweep cell: its curve rows."""
    return list(curve(N, T, d, dtype, device, etas, kind, k, rounds, loss, phat, population, n, n_eval, seed, stop_at))


def _base(args) -> dict:
    from popgrad.device import resolve_device  # lazy: torch loads only after the arguments are validated

    return {"N": args.N, "T": args.T, "d": args.d, "dtype": args.dtype, "device": str(resolve_device(args.device)),
            "k": args.k, "rounds": args.rounds, "loss": args.loss, "phat": args.phat, "population": args.population,
            "n": args.n, "n_eval": args.n_eval, "stop_at": max(args.thresholds) if args.stop else None}


def collect(args, schedules, rows: list, bar=None):
    """Run every (etas, schedule, seed) here; append curve rows to `rows` as they come (kept on Ctrl-C)."""
    base = _base(args)
    for etas in args.etas:
        for kind in schedules:
            for seed in range(args.seed, args.seed + args.seeds):
                for r in curve(**base, etas=etas, kind=kind, seed=seed):
                    rows.append(r)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix_str(f"{kind} seed {seed} acc {r['accuracy']:.3f} "
                                            f"R(O2,K2,K1) {r['recall_W_O2']:.2f},{r['recall_W_K2']:.2f},{r['recall_W_K1']:.2f}")


def collect_cells(args, schedules, rows: list, sweep) -> None:
    """Every (etas, schedule, seed) as one cell of popgrad.sweep (--workers / --scheduler / --cache)."""
    base = _base(args)
    cells = [Cell(dynamics_cell, {**base, "etas": etas, "kind": kind}, seed, label=f"{kind} seed {seed}")
             for etas in args.etas for kind in schedules for seed in range(args.seed, args.seed + args.seeds)]
    for res in run_cells(cells, sweep, desc="dynamics runs"):
        rows.extend(res.value)


def summarize(rows, ths, budget: int | None = None) -> list[dict]:
    """Per (etas, schedule, threshold): seeds reaching it, the median first step with a bootstrap interval
    (unreached seeds count as +inf), mean and se over the seeds that reach it, best and final accuracy;
    with `budget` (the steps of a full run), the seeds that ran all of them without reaching it
    (`out_of_budget`; an interrupted seed is not counted there)."""
    from popgrad.numerics.dynamics import median_interval  # lazy: torch loads only after the arguments are validated

    groups = {}
    for r in rows:
        groups.setdefault((r["etas"], r["schedule"]), {}).setdefault(r["seed"], []).append(r)
    out = []
    for (etas, kind), seeds in groups.items():
        finals = [c[-1] for c in seeds.values()]
        bests = [max(c, key=lambda r: r["accuracy"]) for c in seeds.values()]
        for th in ths:
            firsts = [next((r for r in c if r["accuracy"] >= th), None) for c in seeds.values()]
            hit = [f for f in firsts if f is not None]
            steps = [f["step"] for f in hit]
            per_layer = [max(f["steps_W_O2"], f["steps_W_K2"], f["steps_W_K1"]) for f in hit]
            med, lo, hi = median_interval(steps, len(seeds))
            short = [seed for seed, c, f in zip(seeds, seeds.values(), firsts)
                     if f is None and budget is not None and c[-1]["step"] >= budget]
            out.append({"etas": etas, "schedule": kind, "threshold": th, "reached": len(hit), "seeds": len(seeds),
                        "fraction": len(hit) / len(seeds), "steps_median": med, "steps_median_lo": lo,
                        "steps_median_hi": hi,
                        "steps_mean": _mean(steps), "steps_se": _se(steps), "steps_per_layer_mean": _mean(per_layer),
                        "best_accuracy": _mean([b["accuracy"] for b in bests]),
                        "best_accuracy_se": _pooled_se(bests), "final_accuracy": _mean([f["accuracy"] for f in finals]),
                        "final_accuracy_se": _pooled_se(finals), "n_eval": finals[0]["n_eval"],
                        "steps_run": max(f["step"] for f in finals),
                        "out_of_budget": len(short) if budget is not None else None, "out_of_budget_seeds": short})
    return out


def budget_notes(summary, k: int, rounds: int, steps: int) -> list[str]:
    """One line per (etas, schedule, threshold) where seeds ran out of the step budget before reaching it."""
    return [f"note: {r['out_of_budget']} of {r['seeds']} seeds ({r['schedule']}, etas {r['etas']}) ran out of the "
            f"budget (--k {k} x --rounds {rounds}: {steps} steps) before accuracy {r['threshold']:g}; they count as "
            f"never reaching it (+inf in the median); seeds {', '.join(map(str, r['out_of_budget_seeds']))}; "
            f"a larger --k may reach it" for r in summary if r.get("out_of_budget")]


def _mean(v):
    return sum(v) / len(v) if v else None


def _se(v):
    if len(v) < 2:
        return None
    m = sum(v) / len(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1) / len(v))


def _pooled_se(rows):
    """Standard error of the mean accuracy over seeds: between-seed spread if >= 2 seeds, else binomial."""
    acc = [r["accuracy"] for r in rows]
    if len(acc) >= 2:
        return _se(acc)
    return rows[0]["accuracy_se"]


def plot(rows, path):
    import matplotlib                                 # optional and slow to import: only for --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    groups = {}
    for r in rows:
        groups.setdefault((r["etas"], r["schedule"]), {}).setdefault(r["step"], []).append(r)
    for (etas, kind), by_step in groups.items():
        steps = sorted(by_step)
        acc = np.array([np.mean([r["accuracy"] for r in by_step[s]]) for s in steps])
        se = np.array([_pooled_se(by_step[s]) or 0.0 for s in steps])
        line, = axes[0].plot(steps, acc, label=f"{kind}, eta {etas}")
        axes[0].fill_between(steps, acc - se, acc + se, color=line.get_color(), alpha=0.25)
        for name, style in (("W_O2", ":"), ("W_K2", "--"), ("W_K1", "-")):
            rec = [np.mean([r[f"recall_{name}"] for r in by_step[s]]) for s in steps]
            axes[1].plot(steps, rec, style, color=line.get_color(), label=f"{name} ({kind})")
    axes[0].set(xlabel="population gradient step", ylabel="accuracy at position T (model D)",
                title="assembled head (mean over seeds, +-1 se)")
    axes[0].axhline(0.5, color="grey", lw=0.5)
    axes[0].axhline(0.9, color="grey", lw=0.5)
    axes[1].set(xlabel="population gradient step", ylabel="memory recall (9) vs (7)", title="recall per matrix")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=6, ncol=3)
    fig.tight_layout()
    save_figure(fig, path)


def run(args) -> int:
    schedules = _validate(args)
    from popgrad.numerics.dynamics import schedule  # lazy: torch loads only after the arguments are validated

    steps_per_run = len(schedule(schedules[0], args.k, args.rounds)) + 1
    total = steps_per_run * len(args.etas) * len(schedules) * args.seeds
    sweep = options_from_args(args)
    rows, interrupted = [], False
    cells = sweep.distributed or sweep.cache is not None
    bar = None if cells else progress(total=total, desc="dynamics")
    try:
        if cells:
            collect_cells(args, schedules, rows, sweep)
        else:
            collect(args, schedules, rows, bar)
    except KeyboardInterrupt:
        interrupted = True
        print(f"popgrad dynamics: interrupted; writing the {len(rows)} rows collected so far", file=sys.stderr)
    finally:
        if bar is not None:
            bar.close()
    if not rows:
        return 130 if interrupted else 0
    summary = summarize(rows, args.thresholds, budget=steps_per_run - 1)
    notes = budget_notes(summary, args.k, args.rounds, steps_per_run - 1)
    if args.plot:
        plot(rows, args.plot)
    title = (f"popgrad dynamics (N={args.N}, T={args.T}, d={args.d}, loss={args.loss}, k={args.k}, "
             f"rounds={args.rounds}, n={args.n} per step ({args.population}), n_eval={args.n_eval}, "
             f"seeds {args.seed}..{args.seed + args.seeds - 1}{', INTERRUPTED' if interrupted else ''})")
    if args.json:
        emit(rows, CURVE, args, extra={"summary": summary, "summary_columns": list(SUMMARY), "interrupted": interrupted,
                                       "budget_steps": steps_per_run - 1, "budget_notes": notes,
                                       "sweep": describe(sweep)})
    else:
        plain = argparse.Namespace(json=False, csv=None)
        shown = [r for r in rows if r["step"] % args.every == 0 or r is rows[-1]]
        emit(summary, SUMMARY, plain, title=title + ": steps to reach accuracy")
        for line in notes:
            print(line)
        print()
        emit(shown, CURVE, plain, title=f"curves (every {args.every}th step; --csv and --json have every step)")
        if args.csv:
            write_csv(args.csv, rows, CURVE)
    return 130 if interrupted else 0
