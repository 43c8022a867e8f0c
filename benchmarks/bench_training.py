"""Benchmark: one SGD step of popgrad's lean step vs the model in the paper's public code structure.

Same frozen embeddings, same initial weights, same batch (fresh model-C sequences, T = 256,
d = 128, the fig3 setting: loss on in-context tokens, `embed="code"`, logits / sqrt(d)), same
torch.optim.SGD (momentum 0.9, weight decay 1e-4). Implementations:

- `paper structure`: `popgrad.numerics.paper_model` (nn.Linear wk/wv/wo per layer, full causal
  attention at every position, F.cross_entropy over the in-context positions), autograd;
- `popgrad autograd`: `training.step_loss` (the transformer module with fused attention), autograd;
- `popgrad lean`: `training.sgd_step` (`popgrad.numerics.lean_step`), what `popgrad train` runs;
- `public module`, with `--paper-code PATH`: the paper's own `Transformer` from
  `PATH/ihead_basic_model.py` (a checkout of github.com/albietz/transformer-birth, which popgrad
  never vendors), built as its `ihead_basic_main.py` builds it (no feed-forward layers, frozen
  embeddings and output, wv/wo of layer 1 and wv of layer 2 frozen), popgrad's weights copied
  in, `F.cross_entropy(pred[sel], y[sel])`, and the same SGD over `model.parameters()`.

Rounds are interleaved (one step of each, repeated) so that load on a shared machine hits all;
reports the median and min-max seconds per step, the minor page faults per step (median, from
`resource.getrusage`), the ratio of medians against the paper structure (`ratio`) and, with
`--paper-code`, against the public module (`vs_public`). The first step's loss of every
implementation is checked against the paper structure's. The header names the CPU model,
threads and the load average at start and end.

Run: `OMP_NUM_THREADS=1 python benchmarks/bench_training.py --threads 1 [--batches 64,512] [--rounds 5]
[--paper-code ~/src/transformer-birth]`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from popgrad.cliutil import int_list, markdown_table
from popgrad.device import resolve_device
from popgrad.errors import PopgradError
from popgrad.numerics import paper_model as pm
from popgrad.numerics import training as trn
from popgrad.numerics.precision import Hardware


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def load_public_model(path) -> object:
    """The module `ihead_basic_model` of a transformer-birth checkout at `path` (PopgradError if absent)."""
    source = Path(path).expanduser() / "ihead_basic_model.py"
    if not source.is_file():
        raise PopgradError(f"--paper-code: no ihead_basic_model.py in {str(path)!r} (a checkout of "
                           "github.com/albietz/transformer-birth)")
    spec = importlib.util.spec_from_file_location("ihead_basic_model", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def public_model(module, run, scale: str = "sqrt"):
    """The paper's `Transformer` as its main script builds it, carrying the weights of popgrad's `run`."""
    emb, d = run.emb, run.emb.d
    T, N = emb.P.shape[1], emb.W_U.shape[0]
    args = module.ModelArgs(vocab_size=N, dim=d, max_length=T, final_ffn=False, first_ffn=False,
                            freeze_embeddings=True, freeze_output=True, no_sqrtd=scale == "none")
    model = module.Transformer(args).to(device=emb.W_E.device)
    if emb.W_E.dtype == torch.float64:
        model = model.double()                                               # floating tensors only
    f, g = d ** 0.5, 3 ** -0.5                                               # embed="code" (as the public code)
    a1, a2 = model.layers[0].attention, model.layers[1].attention
    with torch.no_grad():
        model.tok_embeddings.weight.copy_(f * emb.W_E.T)
        model.pe.copy_(f * emb.P.T)
        a1.wk.weight.copy_(run.params["W_K1"])
        a1.wv.weight.copy_(g * emb.W_V1)
        a1.wo.weight.copy_(g * emb.W_O1)
        a2.wk.weight.copy_(run.params["W_K2"])
        a2.wv.weight.copy_(g * emb.W_V2)
        a2.wo.weight.copy_(run.params["W_O2"])
        model.output.weight.copy_(g * emb.W_U)
    return model


def bench(batch: int, rounds: int, device, T: int = 256, d: int = 128, dtype: str = "float32", public=None):
    cfg = trn.TrainConfig(T=T, d=d, batch=batch, steps=1, probe_every=1, device=str(device), dtype=dtype,
                          embed="code", scale="sqrt", eta=0.2, cutoff=min(64, T))
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
    if public is not None:
        pub = public_model(public, run)
        pub_opt = torch.optim.SGD(pub.parameters(), lr=0.2, weight_decay=1e-4, momentum=0.9)
        with torch.no_grad():
            gaps["public module"] = abs(float(F.cross_entropy(pub(z)[mask], tgt[mask])) - ref)

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
    def step_public():                                                          # ihead_basic_main.py's step
        pub_opt.zero_grad()
        F.cross_entropy(pub(z)[mask], tgt[mask]).backward()
        pub_opt.step()
    fns = {"paper structure": step_paper, "popgrad autograd": step_autograd, "popgrad lean": step_lean}
    if public is not None:
        fns = {"public module": step_public, **fns}
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
    pub_s = statistics.median(times["public module"]) if public is not None else None
    return [{"batch": batch, "impl": k, "median_s": statistics.median(v), "min_s": min(v), "max_s": max(v),
             "ratio": base / statistics.median(v), "vs_public": None if pub_s is None else pub_s / statistics.median(v),
             "faults_per_step": statistics.median(faults[k]), "rounds": rounds, "first_loss_gap": gaps[k]}
            for k, v in times.items()]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int_list, default=[64, 512])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--T", type=int, default=256)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--paper-code", metavar="PATH",
                   help="a checkout of github.com/albietz/transformer-birth: also time its public Transformer module")
    args = p.parse_args(argv)
    try:
        public = load_public_model(args.paper_code) if args.paper_code else None
        dev = resolve_device(args.device)
    except PopgradError as exc:
        print(f"bench_training: error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    start = os.getloadavg()
    rows = []
    for b in args.batches:
        rows += bench(b, args.rounds, dev, args.T, args.d, public=public)
    end = os.getloadavg()
    print(f"## one SGD step (fig3: in-context loss), T={args.T}, d={args.d}, device {dev}, CPU "
          f"{Hardware.detect(dev).cpu_model or 'unknown'} ({os.cpu_count()} cores), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {args.rounds} interleaved rounds, load average "
          f"{start[0]:.2f} at start, {end[0]:.2f} at end"
          + (f"; public module from {args.paper_code}" if public is not None else "") + "\n")
    columns = ["batch", "impl", "median_s", "min_s", "max_s", "ratio"] + (["vs_public"] if public is not None else []) \
        + ["faults_per_step", "rounds", "first_loss_gap"]
    print(markdown_table(rows, columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
