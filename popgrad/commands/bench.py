"""`popgrad bench`: reference vs fast model-C sampler (tokens/s, ratio) and recall-table wall time."""

from __future__ import annotations

import os

import torch

from popgrad.cliutil import add_output_options, emit, positive_int

NAME = "bench"
HELP = "benchmark the samplers (reference vs fast, CPU and CUDA) and the default recall table"
MAX_REF_TOKENS = 1e7
COLUMNS = ("what", "device", "threads", "tokens", "seconds", "tokens_per_s", "ratio_vs_reference")


def add_arguments(p):
    p.add_argument("--T", type=positive_int, default=256, help="sequence length (default 256)")
    p.add_argument("--ref-sequences", type=positive_int, default=100,
                   help="sequences per reference run (default 100)")
    p.add_argument("--batch", type=positive_int, default=8192, help="sequences per fast-sampler call (default 8192)")
    p.add_argument("--repeats", type=positive_int, default=3, help="runs per measurement, best kept (default 3)")
    p.add_argument("--no-table", action="store_true", help="skip timing the default recall table")
    add_output_options(p, plot=False)


def run(args) -> int:
    from popgrad.numerics.bench import fast_tokens_per_s, recall_table_seconds, reference_tokens_per_s
    from popgrad.numerics.recall import build_model_c
    from popgrad.commands.recall_table import BATCHES, DIMS
    from popgrad.errors import PopgradError

    from popgrad.errors import memory_budget

    if args.T < 2:
        raise PopgradError(f"--T must be >= 2, got {args.T}")
    if args.ref_sequences * args.T > MAX_REF_TOKENS:
        raise PopgradError(f"--ref-sequences x --T = {args.ref_sequences * args.T:.2g} tokens for the reference "
                           f"sampler, more than {MAX_REF_TOKENS:.0e} (about a minute): reduce them")
    if args.repeats > 100:
        raise PopgradError(f"--repeats must be at most 100, got {args.repeats}")
    memory_budget(f"--batch {args.batch} x --T {args.T}", (3 * args.T + 130) * args.batch / 2)
    model = build_model_c(T=args.T)
    ref, ref_s = reference_tokens_per_s(model, args.ref_sequences, max(1, min(args.repeats, 2)))
    rows = [{"what": "reference sampler (numpy, per token)", "device": "cpu", "threads": 1,
             "tokens": args.ref_sequences * model.T, "seconds": ref_s, "tokens_per_s": ref, "ratio_vs_reference": 1.0}]
    configs = [("cpu", 1), ("cpu", torch.get_num_threads())]
    if torch.cuda.is_available():
        configs.append(("cuda", None))
    for device, threads in dict.fromkeys(configs):
        tps, secs = fast_tokens_per_s(model, args.batch, device, threads, args.repeats)
        rows.append({"what": f"fast sampler (batch {args.batch})", "device": device,
                     "threads": threads if threads is not None else "", "tokens": args.batch * model.T,
                     "seconds": secs, "tokens_per_s": tps, "ratio_vs_reference": tps / ref})
    if not args.no_table:
        for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
            secs = recall_table_seconds(build_model_c(), DIMS, BATCHES, 3, device)
            rows.append({"what": f"recall-table defaults ({len(DIMS)} d x {len(BATCHES)} batch counts x 3 seeds)",
                         "device": device, "threads": "", "tokens": 3 * max(BATCHES) * 32 * 256, "seconds": secs,
                         "tokens_per_s": None, "ratio_vs_reference": None})
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    emit(rows, COLUMNS, args, title=f"popgrad bench (T={model.T}; {os.cpu_count()} CPU cores, "
                                    f"1-min load average {load:.1f} at the end)")
    return 0
