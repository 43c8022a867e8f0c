"""Benchmark: one SGD training step of popgrad's model vs a plain nn.Module of the same model.

Same frozen embeddings, same initial weights, same batch (fresh model-C sequences, T = 256,
d = 128), same loss (in-context tokens, or all tokens), same torch.optim.SGD (momentum 0.9,
weight decay 1e-4). The plain module is what one writes from Sec. 4.2 with nn.Linear layers:
W_V / W_O applied to every token, full logits then a masked cross-entropy. Rounds are
interleaved (plain, popgrad, plain, popgrad, ...) so that load on a shared machine hits both;
reports the median and min-max per step and the ratio of medians (plain / popgrad: > 1 means
popgrad is faster). Also checks that both give the same loss on the first batch.

Run: `python benchmarks/bench_training.py [--batches 32,512] [--rounds 5] [--device auto]`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from popgrad.cliutil import int_list, markdown_table
from popgrad.device import resolve_device
from popgrad.numerics import training as trn
from popgrad.numerics import transformer as tr


class PlainTwoLayer(nn.Module):
    """Sec. 4.2 written plainly: frozen embeddings and W_V, W_O as buffers / frozen Linear layers."""

    def __init__(self, tab: tr.FrozenTables, params: dict, Phi1_V, Phi1_O, c: float):
        super().__init__()
        d = tab.d
        self.register_buffer("E", tab.E.clone())
        self.register_buffer("P", tab.P.clone())
        self.c = c
        self.wk1, self.wk2, self.wo2 = (nn.Linear(d, d, bias=False) for _ in range(3))
        self.wv1, self.wo1, self.wv2 = (nn.Linear(d, d, bias=False) for _ in range(3))
        self.out = nn.Linear(d, tab.U.shape[0], bias=False)
        with torch.no_grad():
            for lin, W in ((self.wk1, params["W_K1"].T), (self.wk2, params["W_K2"].T), (self.wo2, params["W_O2"]),
                           (self.wv1, Phi1_V), (self.wo1, Phi1_O), (self.wv2, tab.V2), (self.out, tab.U)):
                lin.weight.copy_(W)
        for lin in (self.wv1, self.wo1, self.wv2, self.out):
            lin.weight.requires_grad_(False)

    def forward(self, z):
        T = z.shape[1]
        x = self.E[z] + self.P[:T]
        causal = torch.ones(T, T, dtype=torch.bool, device=z.device).tril()
        s1 = (self.c * x @ self.wk1.weight.T) @ x.transpose(1, 2)                 # x_t^T W_K^1 x_s
        h = x + self.wo1(self.wv1(torch.softmax(s1.masked_fill(~causal, float("-inf")), -1) @ x))
        s2 = (self.c * h @ self.wk2.weight.T) @ h.transpose(1, 2)
        out = h + self.wo2(self.wv2(torch.softmax(s2.masked_fill(~causal, float("-inf")), -1) @ h))
        return self.out(out)                                                     # (B, T, N)


def plain_loss(model, z, mask, tgt, loss):
    lg = model(z)
    keep = mask if loss == "in-context" else (mask | trn.other_mask(mask, "C"))
    return torch.nn.functional.cross_entropy(lg[keep], tgt[keep])


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench(batch: int, rounds: int, device, loss: str, T: int = 256, d: int = 128):
    cfg = trn.TrainConfig(T=T, d=d, batch=batch, steps=1, loss=loss, device=str(device),
                          embed="code", scale="sqrt", eta=0.2)
    run = trn.setup(cfg)
    tab = run.tab
    g = 1.0 / 3 ** 0.5                                                           # as frozen_tables(embed='code')
    plain = PlainTwoLayer(tab, run.params, g * run.emb.W_V1, g * run.emb.W_O1, tr.logit_scale(d, "sqrt")).to(device)
    popt = torch.optim.SGD([p for p in plain.parameters() if p.requires_grad], lr=0.2, momentum=0.9, weight_decay=1e-4)
    stream = trn.BatchStream(run.model, run.cfg, device, seed=0)
    z, mask, tgt = next(stream)
    with torch.no_grad():
        same = abs(float(plain_loss(plain, z, mask, tgt, loss)) - float(trn.step_loss(run, z, mask, tgt)[0]))

    def step_plain():
        popt.zero_grad(set_to_none=True)
        plain_loss(plain, z, mask, tgt, loss).backward()
        popt.step()

    def step_popgrad():
        run.opt.zero_grad(set_to_none=True)
        trn.step_loss(run, z, mask, tgt)[0].backward()
        run.opt.step()
    times = {"plain nn.Module": [], "popgrad": []}
    for fn in (step_plain, step_popgrad):                                        # warm-up
        fn()
    _sync(device)
    for _ in range(rounds):
        for name, fn in (("plain nn.Module", step_plain), ("popgrad", step_popgrad)):
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [{"batch": batch, "loss": loss, "impl": k, "median_s": med[k], "min_s": min(v), "max_s": max(v),
             "rounds": rounds} for k, v in times.items()]
    rows.append({"batch": batch, "loss": loss, "impl": "ratio plain/popgrad", "median_s": med["plain nn.Module"] / med["popgrad"],
                 "rounds": rounds, "first_loss_gap": same})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int_list, default=[32, 512])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--T", type=int, default=256)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    rows = []
    for loss in ("in-context", "all"):
        for b in args.batches:
            rows += bench(b, args.rounds, dev, loss, args.T, args.d)
    print(f"## one SGD step, T={args.T}, d={args.d}, device {dev}, torch threads {torch.get_num_threads()}, "
          f"{args.rounds} interleaved rounds\n")
    print(markdown_table(rows, ["batch", "loss", "impl", "median_s", "min_s", "max_s", "rounds", "first_loss_gap"]))


if __name__ == "__main__":
    main()
