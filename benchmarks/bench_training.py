"""Benchmark: one SGD step of popgrad's lean step vs the model in the paper's public code structure.

Same frozen embeddings, same initial weights, same batch (fresh model-C sequences, T = 256,
d = 128, the fig3 setting: loss on in-context tokens, `embed="code"`, logits / sqrt(d)), same
torch.optim.SGD (momentum 0.9, weight decay 1e-4). Implementations:

- `paper structure`: `popgrad.numerics.paper_model` (nn.Linear wk/wv/wo per layer, full causal
  attention at every position, F.cross_entropy over the in-context positions), autograd;
- `popgrad autograd`: `training.step_loss` (the transformer module with fused attention), autograd;
- `popgrad lean`: `training.sgd_step` (`popgrad.numerics.lean_step`), what `popgrad train` runs.

Rounds are interleaved (one step of each, repeated) so that load on a shared machine hits all;
reports the median and min-max seconds per step, the minor page faults per step (median, from
`resource.getrusage`) and the ratio of medians (paper structure / implementation). The first
step's loss of every implementation is checked against the paper structure's.

Run: `OMP_NUM_THREADS=1 python benchmarks/bench_training.py --threads 1 [--batches 64,512] [--rounds 5]`.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from popgrad.cliutil import int_list, markdown_table
from popgrad.device import resolve_device
from popgrad.numerics import paper_model as pm
from popgrad.numerics import training as trn


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def bench(batch: int, rounds: int, device, T: int = 256, d: int = 128, dtype: str = "float32"):
    cfg = trn.TrainConfig(T=T, d=d, batch=batch, steps=1, probe_every=1, device=str(device), dtype=dtype,
                          embed="code", scale="sqrt", eta=0.2)
    run = trn.setup(cfg)
    auto = trn.setup(cfg)
    paper = pm.from_embeddings(run.emb, {k: v.detach() for k, v in run.params.items()})
    popt = torch.optim.SGD([p for p in paper.parameters() if p.requires_grad], lr=0.2, momentum=0.9, weight_decay=1e-4)
    z, mask, tgt = next(trn.BatchStream(run.model, run.cfg, device, seed=0))
    with torch.no_grad():
        ref = float(pm.paper_loss(paper, z, mask, tgt))
    gaps = {"paper structure": 0.0,
            "popgrad autograd": abs(float(trn.step_loss(auto, z, mask, tgt)[0].detach()) - ref),
            "popgrad lean": abs(float(trn.sgd_step(run, z, mask, tgt, False)["loss"]) / int(mask.sum()) - ref)}

    def step_paper():
        popt.zero_grad(set_to_none=True)
        pm.paper_loss(paper, z, mask, tgt).backward()
        popt.step()

    def step_autograd():
        auto.opt.zero_grad(set_to_none=True)
        trn.step_loss(auto, z, mask, tgt)[0].backward()
        auto.opt.step()

    def step_lean():
        out = trn.sgd_step(run, z, mask, tgt, False)
        run.opt.zero_grad(set_to_none=True)
        for name, g in out["grads"].items():
            run.params[name].grad = g
        run.opt.step()
    fns = {"paper structure": step_paper, "popgrad autograd": step_autograd, "popgrad lean": step_lean}
    for fn in fns.values():                                                     # warm-up (buffers, allocator)
        fn()
        fn()
    _sync(device)
    times = {k: [] for k in fns}
    faults = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            f0, start = _faults(), time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
            faults[name].append(_faults() - f0)
    base = statistics.median(times["paper structure"])
    return [{"batch": batch, "impl": k, "median_s": statistics.median(v), "min_s": min(v), "max_s": max(v),
             "ratio": base / statistics.median(v), "faults_per_step": statistics.median(faults[k]),
             "rounds": rounds, "first_loss_gap": gaps[k]} for k, v in times.items()]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int_list, default=[64, 512])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--T", type=int, default=256)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    rows = []
    for b in args.batches:
        rows += bench(b, args.rounds, dev, args.T, args.d)
    load = open("/proc/loadavg").read().split()[:3] if dev.type == "cpu" else ["n/a"]
    print(f"## one SGD step (fig3: in-context loss), T={args.T}, d={args.d}, device {dev}, torch threads "
          f"{torch.get_num_threads()}, {args.rounds} interleaved rounds, load average {' '.join(load)}\n")
    print(markdown_table(rows, ["batch", "impl", "median_s", "min_s", "max_s", "ratio", "faults_per_step", "rounds",
                                "first_loss_gap"]))


if __name__ == "__main__":
    main()
