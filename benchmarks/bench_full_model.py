"""Benchmark: one SGD step of App. E's full model, popgrad's definition vs the public code's module structure.

Same weights, same batch (fresh model-C sequences, T = 256, d = 128, K = 5, the fig10 / fig11 settings:
ReLU MLP in the second block, pre-layer-norm, every parameter trained; loss on in-context tokens as the
presets, or on all tokens), same torch.optim.SGD (momentum 0.9, weight decay 1e-4). Both are autograd:

- `paper structure`: `popgrad.numerics.full_model_paper` (nn.Module per block, nn.Linear heads,
  explicit (B, H, T, T) scores with an additive -inf mask, F.cross_entropy over the selected positions);
- `popgrad full`: `training.sgd_step` on a full-model run (`popgrad.numerics.full_model.full_step`:
  one GEMM for Q, K, V, fused causal attention, and with the in-context loss the second block at the
  in-context positions only), what `popgrad train` runs.

Rounds are interleaved (one step of each, repeated) so that load on a shared machine hits both;
reports the median CPU seconds per step (`time.process_time`, one thread: what the step costs,
whatever the load) and the median and min-max wall seconds, each with the ratio of medians
(paper structure / popgrad). The first step's losses are checked against each other.

Run: `OMP_NUM_THREADS=1 python benchmarks/bench_full_model.py --threads 1 [--batches 64,512] [--heads 1,4] [--losses in-context,all] [--rounds 5]`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from popgrad.cliutil import int_list, markdown_table
from popgrad.numerics import full_model_paper as fp
from popgrad.numerics import training as trn


def bench(batch: int, heads: int, loss: str, rounds: int, T: int = 256, d: int = 128):
    cfg = trn.TrainConfig(T=T, d=d, batch=batch, steps=1, probe_every=1, device="cpu", embed="code", scale="sqrt",
                          eta=0.2, K=5, loss=loss, model="full", heads=heads, mlp="second", norm="pre")
    run = trn.setup(cfg)
    trn.apply_schedule(run, 0)
    paper = fp.from_params({k: v.detach() for k, v in run.params.items()}, heads, "second", "pre").float()
    popt = torch.optim.SGD(paper.parameters(), lr=0.2, momentum=0.9, weight_decay=1e-4)
    z, mask, tgt = next(trn.BatchStream(run.model, run.cfg, "cpu", seed=0))
    sel = mask if loss == "in-context" else mask | trn.other_mask(mask, "C")
    with torch.no_grad():
        ref = float(fp.paper_loss(paper, z, sel, tgt))
    out = trn.sgd_step(run, z, mask, tgt, False)
    gap = abs(out["loss"] / out["n_loss"] - ref)

    def step_paper():
        popt.zero_grad(set_to_none=True)
        fp.paper_loss(paper, z, sel, tgt).backward()
        popt.step()

    def step_full():
        o = trn.sgd_step(run, z, mask, tgt, False)
        run.opt.zero_grad(set_to_none=True)
        for name, g in o["grads"].items():
            run.params[name].grad = g
        run.opt.step()
    fns = {"paper structure": step_paper, "popgrad full": step_full}
    for fn in fns.values():                                                     # warm-up
        fn()
    times = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - c0)
    base, cbase = statistics.median(times["paper structure"]), statistics.median(cpu["paper structure"])
    return [{"batch": batch, "heads": heads, "loss": loss, "impl": k, "cpu_median_s": statistics.median(cpu[k]),
             "cpu_ratio": cbase / statistics.median(cpu[k]), "median_s": statistics.median(v), "min_s": min(v),
             "max_s": max(v), "ratio": base / statistics.median(v), "rounds": rounds,
             "first_loss_gap": gap if k != "paper structure" else 0.0} for k, v in times.items()]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int_list, default=[64, 512])
    p.add_argument("--heads", type=int_list, default=[1, 4])
    p.add_argument("--losses", default="in-context,all", help="comma-separated: in-context (the presets), all")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--T", type=int, default=256)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    before = open("/proc/loadavg").read().split()[:3]
    rows = [r for b in args.batches for h in args.heads for loss in args.losses.split(",")
            for r in bench(b, h, loss, args.rounds, args.T, args.d)]
    after = open("/proc/loadavg").read().split()[:3]
    print(f"## one SGD step of the full model (fig10/fig11: MLP in block 2, pre-norm, all trained), "
          f"T={args.T}, d={args.d}, cpu, torch threads {torch.get_num_threads()}, {args.rounds} interleaved rounds, "
          f"load average {' '.join(before)} (start) / {' '.join(after)} (end)\n")
    print(markdown_table(rows, ["batch", "heads", "loss", "impl", "cpu_median_s", "cpu_ratio", "median_s", "min_s", "max_s", "ratio", "rounds", "first_loss_gap"]))


if __name__ == "__main__":
    main()
