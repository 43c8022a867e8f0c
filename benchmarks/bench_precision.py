"""Benchmark: the training step in float32 and in bfloat16, and what the hardware can do in each.

Two measurements in one interleaved run (one round = one of each, repeated; median and min-max):

1. The machine's limit: GFLOP/s of the training model's two matmul shapes, in float32 and
   bfloat16: the batched attention scores (B, T, d) x (B, d, T) and a d x d projection of every
   token (B T, d) x (d, d).
2. One SGD step of the fig3 setting (T = 256, d = 128, loss on in-context tokens, the public
   code's parameterization) at each batch: popgrad's lean float32 step (what `popgrad train`
   runs in float32), the float32 autograd step, the bfloat16 lean step (what
   `--precision bfloat16` runs: the lean step with bfloat16 matmul inputs, float32 master
   weights and loss) and the bfloat16 autograd step under torch.autocast. The achieved GFLOP/s
   of a step counts the model's matmul FLOPs (forward x 3 for forward + backward).

The header names the CPU (model, bfloat16 flags, torch's kernel level), threads and load; the
last line says what `--precision auto` would pick from these timings (it measures the same two
lean steps at a run's own shapes: `popgrad.numerics.precision.time_steps`).

Run: `OMP_NUM_THREADS=1 python benchmarks/bench_precision.py --threads 1 [--batches 64,512] [--rounds 5]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from popgrad.cliutil import int_list, markdown_table
from popgrad.device import resolve_device
from popgrad.numerics import training as trn
from popgrad.numerics.precision import CPU_BF16_FLAGS, FASTER, Hardware


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timed(fn, dev) -> float:
    _sync(dev)
    t0 = time.perf_counter()
    fn()
    _sync(dev)
    return time.perf_counter() - t0


def matmul_rates(batch: int, T: int, d: int, rounds: int, dev) -> list[dict]:
    """GFLOP/s of the score and projection matmuls in float32 and bfloat16, interleaved."""
    shapes = {"scores (B,T,d)x(B,d,T)": ((batch, T, d), (batch, d, T), 2 * batch * T * T * d),
              "projection (BT,d)x(d,d)": ((batch * T, d), (d, d), 2 * batch * T * d * d)}
    cases = {}
    for name, (sa, sb, flops) in shapes.items():
        for dt in (torch.float32, torch.bfloat16):
            a, b = torch.randn(sa, device=dev).to(dt), torch.randn(sb, device=dev).to(dt)
            cases[(name, str(dt).replace("torch.", ""))] = (lambda a=a, b=b: a @ b, flops)
    times = {k: [] for k in cases}
    for fn, _ in cases.values():
        fn()
    for _ in range(rounds):
        for k, (fn, _) in cases.items():
            times[k].append(_timed(fn, dev))
    return [{"shape": k[0], "dtype": k[1], "GFLOP/s": flops / statistics.median(times[k]) / 1e9,
             "median_ms": 1e3 * statistics.median(times[k])} for k, (_, flops) in cases.items()]


def step_flops(batch: int, T: int, d: int, N: int, m: float) -> float:
    """Matmul FLOPs of one step (forward x 3): layer 1 at every position, layer 2 and the unembedding
    at the m in-context positions per sequence (what the loss needs)."""
    layer1 = 2 * batch * T * d * d + 2 * 2 * batch * T * T * d / 2          # queries; scores + values (causal half)
    layer2 = 2 * batch * T * d * d + 2 * 2 * batch * m * T * d + 2 * batch * m * d * d
    return 3.0 * (layer1 + layer2 + 2 * batch * m * d * N)


def bench_steps(batch: int, rounds: int, dev, T: int = 256, d: int = 128) -> list[dict]:
    """Seconds per SGD step: lean and autograd float32, lean and autocast bfloat16 (interleaved rounds)."""
    base = dict(T=T, d=d, batch=batch, steps=1, probe_every=1, device=str(dev), embed="code", scale="sqrt", eta=0.2,
                cutoff=min(64, T))
    runs = {"float32 lean": trn.setup(trn.TrainConfig(**base)),
            "float32 autograd": trn.setup(trn.TrainConfig(**base)),
            "bfloat16 lean": trn.setup(trn.TrainConfig(**base, precision="bfloat16")),
            "bfloat16 autocast": trn.setup(trn.TrainConfig(**base, precision="bfloat16"))}
    z, mask, tgt = next(trn.BatchStream(runs["float32 lean"].model, runs["float32 lean"].cfg, dev, seed=0))

    def lean(run):
        out = trn.sgd_step(run, z, mask, tgt, False)
        run.opt.zero_grad(set_to_none=True)
        for name, g in out["grads"].items():
            run.params[name].grad = g
        run.opt.step()

    def autograd(run):
        out = trn.autocast_step(run, z, mask, tgt)                           # autograd; autocast in bfloat16 runs
        run.opt.zero_grad(set_to_none=True)
        for name, g in out["grads"].items():
            run.params[name].grad = g
        run.opt.step()

    fns = {"float32 lean": lambda: lean(runs["float32 lean"]),
           "float32 autograd": lambda: autograd(runs["float32 autograd"]),
           "bfloat16 lean": lambda: lean(runs["bfloat16 lean"]),
           "bfloat16 autocast": lambda: autograd(runs["bfloat16 autocast"])}
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            times[k].append(_timed(fn, dev))
    m = float(mask.sum()) / batch
    flops = step_flops(batch, T, d, runs["float32 lean"].tab.U.shape[0], m)
    ref = statistics.median(times["float32 lean"])
    return [{"batch": batch, "step": k, "median_s": statistics.median(v), "min_s": min(v), "max_s": max(v),
             "speedup_vs_float32_lean": ref / statistics.median(v),
             "GFLOP/s": flops / statistics.median(v) / 1e9} for k, v in times.items()]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int_list, default=[64], help="batch sizes (default 64)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--device", default="auto")
    p.add_argument("--T", type=int, default=256, help="sequence length (default 256, the fig3 setting)")
    p.add_argument("--d", type=int, default=128, help="embedding dimension (default 128)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    print(machine_line(dev, args.threads) + "\n")
    print(markdown_table(matmul_rates(max(args.batches), args.T, args.d, args.rounds, dev),
                         ("shape", "dtype", "GFLOP/s", "median_ms")))
    rows = [r for b in args.batches for r in bench_steps(b, args.rounds, dev, args.T, args.d)]
    print()
    print(markdown_table(rows, ("batch", "step", "median_s", "min_s", "max_s", "speedup_vs_float32_lean", "GFLOP/s")))
    print()
    for b in args.batches:
        lean16 = next(r for r in rows if r["batch"] == b and r["step"] == "bfloat16 lean")
        r = 1 / lean16["speedup_vs_float32_lean"]
        pick = "bfloat16" if r * FASTER <= 1 else "float32"
        print(f"batch {b}: bfloat16 lean step {r:.2f}x the float32 lean step's time: --precision auto -> {pick}")
    print(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def machine_line(dev, threads: int) -> str:
    """Device, CPU model, its bfloat16 flags and torch kernel level, threads, load average."""
    hw = Hardware.detect(dev)
    flags = sorted(set(CPU_BF16_FLAGS) & set(hw.cpu_flags)) or ["no avx512_bf16 / amx_bf16"]
    gpu = f", GPU {hw.cuda.name} (compute capability {hw.cuda.capability[0]}.{hw.cuda.capability[1]})" if hw.cuda else ""
    return (f"device {dev}{gpu}; CPU {hw.cpu_model or 'unknown'} ({', '.join(flags)}; torch CPU capability "
            f"{hw.cpu_capability}); torch {hw.torch_version}, {threads} thread(s); load average "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
