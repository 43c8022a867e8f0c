"""`popgrad bench`: block sampler vs per-token reference at several batch sizes, interleaved rounds.

Prints, per batch size and (device, threads), the median and min-max over rounds of tokens/s
and of the ratio to the per-token reference timed in the same round, the memory copy limit
(tokens/s of writing the output at the measured copy bandwidth), the core count and the load
average. The ratio is defined in `popgrad.numerics.bench` (amortized over whole blocks).
"""

from __future__ import annotations

import os
import sys

from popgrad.cliutil import add_output_options, emit, int_list, positive_int, progress

NAME = "bench"
HELP = "benchmark the block sampler against the per-token reference (batch 32, 512, 8192; 1 and all threads)"
MAX_REF_TOKENS = 1e7
COLUMNS = ("what", "batch", "device", "threads", "block", "rounds", "tokens_per_s", "tokens_per_s_min",
           "tokens_per_s_max", "ratio_vs_reference", "ratio_min", "ratio_max", "ratio_mean", "ratio_se",
           "first_batch_ms", "limit_tokens_per_s", "fraction_of_limit", "seconds")


def add_arguments(p):
    p.add_argument("--T", type=positive_int, default=256, help="sequence length (default 256)")
    p.add_argument("--batch", type=int_list, default=[32, 512, 8192],
                   help="comma-separated batch sizes (default 32,512,8192)")
    p.add_argument("--threads", type=int_list, default=None,
                   help=f"comma-separated CPU thread counts (default 1 and all: 1,{os.cpu_count()})")
    p.add_argument("--rounds", "--repeats", dest="rounds", type=positive_int, default=7,
                   help="interleaved rounds, medians and min-max over them (default 7)")
    p.add_argument("--ref-sequences", type=positive_int, default=128,
                   help="at most this many sequences per reference run (default 128; its cost is linear)")
    p.add_argument("--block", type=positive_int, default=None,
                   help="sequences per sampler block (default: about 2^21 tokens on CPU, 2^24 on CUDA)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CPU, and CUDA too when present (default auto)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 2 rounds, 4 reference sequences, no recall table (numbers not meaningful)")
    p.add_argument("--no-table", action="store_true", help="skip timing the default recall table")
    add_output_options(p, plot=False)


def run(args) -> int:
    import torch  # here, not at the top: bad arguments are refused before torch loads
    from popgrad.commands.recall_table import BATCHES, DIMS  # lazy: torch loads only after the arguments are validated
    from popgrad.errors import PopgradError, memory_budget  # lazy: torch loads only after the arguments are validated
    from popgrad.numerics.bench import (copy_bandwidth, interleaved_bench, machine_load, output_bytes_per_token,  # lazy: torch loads only after the arguments are validated
                                        recall_table_seconds)
    from popgrad.numerics.recall import build_model_c  # lazy: torch loads only after the arguments are validated

    if args.quick:
        args.rounds, args.ref_sequences, args.no_table = min(args.rounds, 2), min(args.ref_sequences, 4), True
    if args.T < 2:
        raise PopgradError(f"--T must be >= 2, got {args.T}")
    if args.ref_sequences * args.T > MAX_REF_TOKENS:
        raise PopgradError(f"--ref-sequences x --T = {args.ref_sequences * args.T:.2g} tokens for the reference "
                           f"sampler, more than {MAX_REF_TOKENS:.0e} (about a minute per round): reduce them")
    if args.rounds > 100:
        raise PopgradError(f"--rounds must be at most 100, got {args.rounds}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise PopgradError("--device cuda requested but CUDA is not available on this machine")
    threads = args.threads or [1, os.cpu_count() or 1]
    if max(threads) > 4 * (os.cpu_count() or 1):
        raise PopgradError(f"--threads {max(threads)} is more than 4x the {os.cpu_count()} cores")
    devices = {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []), "cpu": ["cpu"],
               "cuda": ["cuda"]}[args.device]
    if args.block is not None:
        memory_budget(f"--block {args.block} x --T {args.T}", (3 * args.T + 130) * args.block / 2)
    for b in args.batch:
        memory_budget(f"--batch {b} x --T {args.T}", (3 * args.T + 130) * b / 2)
    model = build_model_c(T=args.T)
    load_start = machine_load()
    bw = {f"cpu_{t}_threads": copy_bandwidth("cpu", threads=t) for t in dict.fromkeys(threads)}
    if "cuda" in devices:
        bw["cuda"] = copy_bandwidth("cuda")
    rows = interleaved_bench(model, args.batch, threads, args.rounds, args.ref_sequences, devices, args.block,
                             progress=lambda it, n: progress(it, total=n, desc="bench rounds"))
    per_token = output_bytes_per_token(model)
    for row in rows:
        if row["what"] == "block sampler":
            key = "cuda" if row["device"] == "cuda" else f"cpu_{row['threads']}_threads"
            row["copy_bandwidth_bytes_per_s"] = bw[key]
            row["limit_tokens_per_s"] = bw[key] / per_token
            row["fraction_of_limit"] = row["tokens_per_s"] / row["limit_tokens_per_s"]
    if not args.no_table:
        for device in devices:
            secs = recall_table_seconds(build_model_c(), DIMS, BATCHES, 3, device)
            rows.append({"what": f"recall-table defaults ({len(DIMS)} d x {len(BATCHES)} batch counts x 3 seeds), "
                                 "wall time", "device": device, "seconds": secs})
    load_end = machine_load()
    machine = {"cpu_cores": os.cpu_count(), "torch_threads_all": threads[-1],
               "load_average_start": load_start, "load_average_end": load_end,
               "cuda": torch.cuda.get_device_name() if "cuda" in devices else None,
               "copy_bandwidth_bytes_per_s": bw, "output_bytes_per_token": per_token}
    definition = ("ratio = block-sampler tokens/s / per-token-reference tokens/s, same round; sampler timed "
                  "from a fresh stream over ceil(block/batch) batches (block refills included, first batch "
                  "pays the refill); reference timed on min(batch, ref_sequences) sequences; median [min-max] "
                  "over interleaved rounds")
    emit(rows, COLUMNS, args, extra={"machine": machine, "model": {"N": model.N, "T": model.T, "K": model.K},
                                     "definition": definition},
         title=f"popgrad bench (model C: N={model.N}, T={model.T}, K={model.K} random triggers; "
               f"{os.cpu_count()} CPU cores; load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end)")
    if not args.json:
        gbs = ", ".join(f"{k.replace('_', ' ')} {v / 1e9:.1f} GB/s" for k, v in bw.items())
        sys.stdout.write(f"\n{definition}.\nMemory copy bandwidth (bytes written/s): {gbs}; the sampler writes "
                         f"{per_token:.2f} bytes per token, limit_tokens_per_s = bandwidth / that.\n")
    return 0
