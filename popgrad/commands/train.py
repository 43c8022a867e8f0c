"""`popgrad train`: SGD on the Sec. 4.2 model with memory probes (Sec. 5, App. E; Figures 3, 5, 8).

Prints the probe curves (one row per probe step; mean over seeds with standard errors) as
markdown, --json or --csv; --plot writes the curves as a PNG. A progress bar shows the current
probes; Ctrl-C stops training and still writes the curves collected so far (exit 130).
Presets carry App. E's settings; on the CPU they shrink batch and steps (and the freezing step
in proportion) unless --full, and say so.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from popgrad.cliutil import (add_output_options, check_output_dir, add_sweep_options, emit, nonnegative_int, output_file, positive_float, positive_int,
                             write_csv)
from popgrad.errors import PopgradError
from popgrad.numerics.presets import FULL_SIZE, MAX_STEPS, PRESET_GROUPS, PRESETS
from popgrad.sweep import describe, options_from_args

NAME = "train"
HELP = "train the two-layer model by SGD on model C/D with recall (9), accuracy, loss, KL (10) and one-step cosine probes"
PROBES = ("acc_in_context", "loss_in_context", "loss_other", "recall_W_O2", "recall_W_K2", "recall_W_K1",
          "recall_W_K1_early", "recall_W_K1_late", "code_W_K2", "code_W_K1", "code_W_K1_early", "kl_W_F", "cos_W_O2", "cos_W_K2", "cos_W_K1",
          "acc_eval", "code_W_K2_Q")
MAX_SEEDS = 64
MAX_HEADS_SHOWN = 8                       # full model: per-head columns h0..h7
FULL_PROBES = (("prev_share", "induction_share")
               + tuple(f"{k}_h{j}" for k in ("prev", "induction", "recall_W_K1", "recall_W_K2", "code_W_K1", "code_W_K2")
                       for j in range(MAX_HEADS_SHOWN)))
PROBES = PROBES + FULL_PROBES


def add_arguments(p):
    p.add_argument("--preset", choices=tuple(PRESETS) + tuple(PRESET_GROUPS),
                   help="App. E setting (fig3-variants runs all five Figure 3 variants)")
    p.add_argument("--full", action="store_true", help="keep the App. E batch and steps on the CPU (slow)")
    p.add_argument("--data", choices=("C", "D"), help="model C (bigram + triggers, default) or D (second occurrence)")
    p.add_argument("--N", type=positive_int, help="vocabulary (model C: default tiny Shakespeare, 65; model D: required)")
    p.add_argument("--T", type=positive_int, help="sequence length (default 256)")
    p.add_argument("--K", type=nonnegative_int, help="number of triggers (model C)")
    p.add_argument("--triggers", choices=("random", "frequent", "rare"), help="model C triggers")
    p.add_argument("--outputs", choices=("uniform", "bigram"), help="model C output distribution pi_o")
    p.add_argument("--d", type=positive_int, help="embedding dimension (default 128)")
    p.add_argument("--batch", type=positive_int, help="sequences per SGD step (App. E: 512)")
    p.add_argument("--steps", type=positive_int, help="SGD steps")
    p.add_argument("--eta", type=positive_float, help="SGD step size")
    p.add_argument("--loss", choices=("in-context", "all"), help="tokens in the loss")
    p.add_argument("--W-F", dest="W_F", action="store_const", const=True, help="train a linear W_F (KL probe (10))")
    p.add_argument("--freeze", help="NAME[:STEP],...: keep matrices frozen until STEP (no STEP: throughout)")
    p.add_argument("--probe-every", type=positive_int, help="probe every k steps (default 10)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="first seed (embeddings, init, data)")
    p.add_argument("--seeds", type=positive_int, default=1, help="number of seeds (seed, seed+1, ...)")
    p.add_argument("--dtype", choices=("float32", "float64"), help="parameters and activations (default float32)")
    p.add_argument("--precision", choices=("float32", "bfloat16", "auto"), default="float32",
                   help="matmuls: float32 (default), bfloat16 (float32 master weights and loss) or auto "
                        "(bfloat16 where a few timed steps at the run's shapes find it faster here; cached)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's; 1 is faster on a busy machine)")
    p.add_argument("--scale", choices=("none", "sqrt"), help="attention logit factor: none (App. B, default) or 1/sqrt(d)")
    p.add_argument("--embed", choices=("unit", "code"),
                   help="unit: popgrad's N(0,1/d) embeddings (default); code: N(0,1) as the paper's code (presets)")
    p.add_argument("--init", choices=("linear", "zero"), help="trained-matrix init: nn.Linear uniform (default) or zero")
    p.add_argument("--layers", type=int, choices=(1, 2), help="attention layers: 2 (default) or 1 (layer 2 removed, W_O^1 trained)")
    p.add_argument("--cutoff", type=positive_int, help="W_K^1 recall split at target t < cutoff (default 64)")
    p.add_argument("--onestep-batches", type=nonnegative_int,
                   help="cosine probes vs one-step population matrices from this many batches of 32 (0 = off)")
    p.add_argument("--eval-outputs", choices=("uniform", "bigram"),
                   help="model C: also report in-context accuracy (acc_eval) on fresh batches with these outputs "
                        "pi_o (Figure 4 center: train on one output distribution, evaluate on the other)")
    p.add_argument("--checkpoint", metavar="DIR",
                   help="write an atomic checkpoint of each (run, seed) to DIR/<run>-seed<k>/ every --checkpoint-every steps")
    p.add_argument("--checkpoint-every", type=positive_int, default=50, metavar="K", help="steps between checkpoints (50)")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the runs checkpointed in DIR (same command otherwise); finished runs are read back")
    p.add_argument("--reading", choices=("paper", "eq9"),
                   help="key-query probes in --plot: the paper's code (presets' default) or eq. (9) (custom runs' default)")
    p.add_argument("--maps", metavar="PNG", type=output_file,
                   help="write Figure 7 (trained W_O^2, W_K^2, W_K^1 on their (7) targets) and Figure 2 attention maps "
                        "of the first run's first seed")
    p.add_argument("--model", choices=("simplified", "full"),
                   help="simplified (SPEC §5, default) or full (App. E: heads, MLP, layer norm, trained embeddings)")
    p.add_argument("--heads", type=positive_int, help="full model: attention heads per layer (default 1)")
    p.add_argument("--mlp", choices=("none", "second", "both"), help="full model: blocks with a ReLU MLP (default second)")
    p.add_argument("--norm", choices=("pre", "none", "post"), help="full model: layer norm layout (default pre)")
    p.add_argument("--frozen-embed", dest="train_embed", action="store_const", const=False,
                   help="full model: keep token/position embeddings and unembedding at their random init")
    add_output_options(p, plot_help="write the probe curves as a PNG (like Figures 3, 5, 8)")
    add_sweep_options(p)                                  # each (run, seed) is one cell


# ----------------------------------------------------------------------------- configs
FIELDS = ("data", "N", "T", "K", "triggers", "outputs", "d", "batch", "steps", "eta", "loss", "W_F",
          "probe_every", "dtype", "scale", "embed", "init", "cutoff", "onestep_batches", "layers",
          "model", "heads", "mlp", "norm", "train_embed", "eval_outputs")


def configs(args):
    """[(label, [TrainConfig per seed])] and the notes to print (shrinking on the CPU)."""
    from popgrad.device import resolve_device  # lazy: torch loads only after the arguments are validated
    from popgrad.numerics import training as trn  # lazy: torch loads only after the arguments are validated
    from popgrad.numerics.precision import check_precision, resolve_precision, run_precision  # lazy: as above

    device = str(resolve_device(args.device))
    given = {f: getattr(args, f) for f in FIELDS if getattr(args, f, None) is not None}
    if args.freeze is not None:
        given["freeze"] = trn.parse_freeze(args.freeze)
    check_precision(args.precision, args.dtype or "float32")
    given["precision"] = run_precision(args.precision, args.dtype or "float32") or args.precision
    names = PRESET_GROUPS.get(args.preset, (args.preset,)) if args.preset else (None,)
    out, notes = [], []
    for name in names:
        base = dict(PRESETS[name]) if name else {}
        size = dict(FULL_SIZE) if name else {}
        if name and device == "cpu" and not args.full:
            small = trn.cpu_size(name)
            factor = small["steps"] / size["steps"]
            if "freeze" in base and "freeze" not in given:
                base["freeze"] = tuple((k, s if s >= 2 ** 62 else max(1, round(s * factor))) for k, s in base["freeze"])
            changed = {k: (size[k], small[k]) for k in small if k not in given}
            size.update(small)
            if changed:
                notes.append(f"{name}: shrunk for the CPU: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())
                             + (f", freezing step 300 -> {round(300 * factor)}" if "freeze" in base and "freeze" not in given
                                and any(s < 2 ** 62 for _, s in base["freeze"]) else "")
                             + " (App. E sizes: --full)")
        cfg = trn.TrainConfig(**{**size, **base, **given, "device": device})
        if "probe_every" not in given:
            cfg = replace(cfg, probe_every=min(cfg.probe_every, cfg.steps))
        seeds = [replace(cfg, seed=args.seed + s).validated() for s in range(args.seeds)]
        out.append((name or "custom", seeds))
    if given["precision"] in ("auto", "bfloat16"):                  # auto: measured at the first run's shapes
        precision = resolve_precision(given["precision"], device, cfg=out[0][1][0])
        out = [(label, [replace(c, precision=precision.name) for c in cfgs]) for label, cfgs in out]
        notes.insert(0, f"precision {precision.name}: {precision.reason}")
    return out, notes


# ----------------------------------------------------------------------------- aggregation
def aggregate(label: str, runs: list[dict]) -> list[dict]:
    """Rows per probe step: mean over seeds and standard error (across seeds when >= 2 seeds,
    else binomial over in-context tokens for accuracy and over associations for recall)."""
    by_step: dict[int, list[dict]] = {}
    for r in runs:
        for row in r["rows"]:
            by_step.setdefault(row["step"], []).append(row)
    out = []
    for step in sorted(by_step):
        rows = by_step[step]
        agg = {"run": label, "step": step, "seeds": len(rows), "n_in_context": int(np.mean([r["n_in_context"] for r in rows]))}
        for k in PROBES:
            vals = np.array([r[k] for r in rows if k in r], dtype=float)
            if vals.size == 0:
                continue
            agg[k] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
            if np.isfinite(vals).sum() >= 2:
                agg[k + "_se"] = float(np.nanstd(vals, ddof=1) / math.sqrt(np.isfinite(vals).sum()))
            elif k == "acc_in_context":
                agg[k + "_se"] = rows[0]["acc_in_context_se"]
            elif k.startswith("recall_") and rows[0].get("n_" + k):             # binomial over associations
                p, n = agg[k], rows[0]["n_" + k]
                agg[k + "_se"] = math.sqrt(p * (1 - p) / n) if math.isfinite(p) else float("nan")
        out.append(agg)
    return out


def fmt(v, se=None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return f"{v:.3f}" if se is None or not math.isfinite(se) else f"{v:.3f} ± {se:.3f}"


def display_rows(rows, columns):
    return [{"run": r["run"], "step": r["step"], **{c: fmt(r.get(c), r.get(c + "_se")) for c in columns}} for r in rows]


# ----------------------------------------------------------------------------- run
def run(args) -> int:
    from popgrad.numerics import training as trn  # lazy: torch loads only after the arguments are validated

    if args.seeds > MAX_SEEDS:
        raise PopgradError(f"--seeds must be <= {MAX_SEEDS}, got {args.seeds}")
    if args.threads and args.threads > 1024:
        raise PopgradError(f"--threads must be <= 1024, got {args.threads}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.checkpoint_every > MAX_STEPS:
        raise PopgradError(f"--checkpoint-every must be <= {MAX_STEPS}, got {args.checkpoint_every}")
    if args.maps and args.layers == 1:
        raise PopgradError("--maps draws the two-layer head (Figure 7): not with --layers 1")
    if args.resume and args.checkpoint and args.resume != args.checkpoint:
        raise PopgradError("--resume DIR already checkpoints to DIR; give --checkpoint only for a new run")
    folder = args.resume or args.checkpoint
    if args.resume and not Path(args.resume).is_dir():
        raise PopgradError(f"--resume: no such directory: {args.resume}")
    if folder is not None:
        check_output_dir(folder, "--resume" if args.resume else "--checkpoint")
    groups, notes = configs(args)
    for _, cfgs in groups:
        for cfg in cfgs:
            trn.memory_check(cfg)                         # refuse up front, before any training
    sweep = options_from_args(args)
    if args.full:
        notes.append(estimate_note(groups, sweep))
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    results, interrupted = {}, False
    try:
        if sweep.distributed or sweep.cache is not None:
            results = _train_cells(groups, sweep, folder, args.checkpoint_every)
        else:
            for label, cfgs in groups:
                results[label] = []
                for cfg in cfgs:
                    res = _train_one(label, cfg, seed_folder(folder, label, cfg.seed), args.checkpoint_every)
                    results[label].append(res)
                    if res["interrupted"]:
                        raise KeyboardInterrupt
    except KeyboardInterrupt:
        interrupted = True
        print("popgrad train: interrupted; writing the curves collected so far", file=sys.stderr)
    rows = [r for label, runs in results.items() for r in aggregate(label, runs)]
    present = [c for c in PROBES if any(c in r for r in rows)]
    first = groups[0][1][0]
    seeds = len(groups[0][1])
    title = (f"popgrad train ({', '.join(label for label, _ in groups)}; data {first.data}, N="
             f"{'65 (Shakespeare)' if first.N is None and first.data == 'C' else first.N}, T={first.T}, K={first.K}, "
             f"d={first.d}, batch={first.batch}, steps={first.steps}, eta={first.eta:g}, loss {first.loss}, "
             f"scale {first.scale}, {first.dtype}{' (bfloat16 matmuls)' if first.precision == 'bfloat16' else ''}, {first.device}; mean ± SE over {seeds} seed(s)"
             + ("" if seeds > 1 else ", SE binomial over in-context tokens / memory associations") + ")"
             + (" — INTERRUPTED: curves so far" if interrupted else ""))
    extra = {"notes": notes, "interrupted": interrupted,
             "configs": {label: [vars(c) for c in cfgs] for label, cfgs in groups},
             "seconds": {label: [r["seconds"] for r in runs] for label, runs in results.items()},
             "per_seed": {label: [r["rows"] for r in runs] for label, runs in results.items()},
             "sweep": describe(sweep)}
    numeric = ["run", "step", "seeds", "n_in_context"] + [c for p in present for c in (p, p + "_se")]
    shown = argparse.Namespace(**{**vars(args), "csv": None})
    if args.json:
        emit(rows, numeric, shown, title=title, extra=extra)
    else:
        emit(display_rows(rows, present), ["run", "step"] + present, shown, title=title)
    if args.csv:
        write_csv(args.csv, rows, numeric)
    if args.plot and any(c.model == "full" for _, cfgs in groups for c in cfgs):
        from popgrad.numerics.full_model_plots import plot_full_curves  # lazy: torch loads only after validation

        plot_full_curves(rows, args.plot, plot_title(groups, seeds))
    elif args.plot:
        from popgrad.numerics.training_plots import plot_curves  # lazy: torch loads only after the arguments are validated

        reading = args.reading or ("paper" if args.preset else "eq9")
        plot_curves(rows, args.plot, plot_title(groups, seeds), reading, first.cutoff)
    if args.maps and results:
        _plot_maps(groups, results, args.maps)
    if not args.json and any(c.model == "full" and c.heads > 1 for _, cfgs in groups for c in cfgs):
        _print_head_table(groups, results)
    return 130 if interrupted else 0


def _print_head_table(groups, results) -> None:
    """Figure 11's per-head table: each seed's last probe, per-head previous-token / induction fractions."""
    from popgrad.numerics.full_model_plots import head_table  # lazy: torch loads only after validation

    for label, cfgs in groups:
        if cfgs[0].model == "full" and cfgs[0].heads > 1 and results.get(label):
            print()
            print(head_table(label, cfgs[0].heads, [r["rows"][-1] for r in results[label] if r["rows"]]))


def seed_folder(folder, label: str, seed: int):
    """The checkpoint folder of one (run, seed), or None without --checkpoint / --resume."""
    return None if folder is None else str(Path(folder) / f"{label}-seed{seed}")


def estimate_note(groups, sweep) -> str:
    """Time estimate of the whole command: one lean step measured at the run's size, times the steps."""
    import time

    from popgrad.numerics import training as trn  # lazy: torch loads only after the arguments are validated

    cfg = groups[0][1][0]
    run = trn.setup(cfg)
    z, mask, tgt = next(trn.BatchStream(run.model, run.cfg, run.tab.E.device, seed=0))
    trn.sgd_step(run, z, mask, tgt, False)                                   # warm-up (buffers)
    start = time.perf_counter()
    trn.sgd_step(run, z, mask, tgt, False)
    per = time.perf_counter() - start
    steps = sum(c.steps for _, cfgs in groups for c in cfgs)
    workers = sweep.workers or 1
    total = per * steps / workers
    return (f"estimated time {total / 60:.0f} min ({per:.2f} s per step measured now at batch {cfg.batch}, "
            f"{steps} steps in all, {workers} worker(s); probes and load add to it)")


def plot_title(groups, seeds: int) -> str:
    """A one-line figure title: the preset(s), batch, sizes and seeds (the full settings are in the table's title)."""
    first = groups[0][1][0]
    return (f"{', '.join(label for label, _ in groups) if len(groups) <= 2 else f'{len(groups)} variants'}: "
            f"batch {first.batch}, T={first.T}, d={first.d}, eta={first.eta:g}, mean ± SE over {seeds} seed(s)")


def _plot_maps(groups, results, path):
    """Figure 7 and Figure 2 views of the first run's first seed (its final weights, a fresh sequence)."""
    import torch

    from popgrad.numerics import training as trn  # lazy: torch loads only after the arguments are validated
    from popgrad.numerics.training_plots import plot_maps  # lazy: torch loads only after the arguments are validated

    label, cfgs = groups[0]
    res = results.get(label)
    if not res or "params" not in res[0]:
        raise PopgradError("--maps: no trained weights to show (was the run interrupted before its first step?)")
    if cfgs[0].model == "full":                                                # Figure 11: per head and layer
        from popgrad.numerics.full_model_plots import plot_full_maps  # lazy: torch loads only after validation

        return plot_full_maps(cfgs[0], res[0]["params"], path, f"{label}, seed {cfgs[0].seed}, step {cfgs[0].steps}")
    run = trn.setup(cfgs[0])
    params = {k: torch.as_tensor(v, dtype=run.tab.E.dtype, device=run.tab.E.device) for k, v in res[0]["params"].items()}
    z, _, _ = next(trn.BatchStream(run.model, run.cfg, run.tab.E.device, seed=10_000 + cfgs[0].seed))
    plot_maps(run.emb.to(dtype="float64"), run.tab, z[0], params, run.cfg.scale, path,
              f"{label}, seed {cfgs[0].seed}, step {cfgs[0].steps}")


def train_seed_cell(config: dict, seed: int, checkpoint: str | None = None, checkpoint_every: int = 50) -> dict:
    """One seed of one training run as a pure sweep cell: {'rows': probe rows, 'seconds'}."""
    from popgrad.numerics.training import TrainConfig, train  # lazy: torch loads only after the arguments are validated

    fields = {**config, "freeze": tuple(tuple(f) for f in config["freeze"]), "seed": seed}
    res = train(TrainConfig(**fields).validated(), checkpoint_dir=checkpoint, checkpoint_every=checkpoint_every)
    return {"rows": res["rows"], "seconds": res["seconds"], "interrupted": False,
            "params": {k: v.cpu().tolist() for k, v in res["params"].items()}}


def _train_cells(groups, sweep, folder=None, every: int = 50) -> dict:
    """Every (run, seed) as one cell of popgrad.sweep (--workers / --scheduler / --cache)."""
    from popgrad.sweep import Cell, run_cells  # lazy: torch loads only after the arguments are validated

    cells = [Cell(train_seed_cell, {"config": {k: v for k, v in vars(cfg).items() if k != "seed"},
                                    "checkpoint": seed_folder(folder, label, cfg.seed), "checkpoint_every": every},
                  cfg.seed, label=f"{label} seed {cfg.seed}") for label, cfgs in groups for cfg in cfgs]
    values = iter(r.value for r in run_cells(cells, sweep, desc="training runs"))
    return {label: [next(values) for _ in cfgs] for label, cfgs in groups}


def _train_one(label, cfg, folder=None, every: int = 50):
    """One seed with a progress bar showing the current probes."""
    from popgrad.cliutil import progress  # lazy: torch loads only after the arguments are validated
    from popgrad.numerics.training import train  # lazy: torch loads only after the arguments are validated

    bar = progress(total=cfg.steps, desc=f"{label} seed {cfg.seed}")
    nan = float("nan")                                    # the one-layer model has no recall probes

    def update(step, row):
        bar.n = step
        bar.set_postfix_str(f"acc {row['acc_in_context']:.2f} WO2 {row.get('recall_W_O2', nan):.2f} "
                            f"WK2 {row.get('recall_W_K2', nan):.2f} WK1 {row.get('recall_W_K1', nan):.2f}", refresh=True)
    try:
        return train(cfg, callback=update, checkpoint_dir=folder, checkpoint_every=every)
    finally:
        bar.close()
