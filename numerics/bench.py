"""Benchmarks of the Monte-Carlo path (not timed tests): block sampler vs per-token reference.

Definition of the ratio (what `popgrad bench` prints). For one batch size b and one round:
- the block sampler is timed from a fresh `model_c_batches` stream (no block drawn yet) over
  n = ceil(block / b) consecutive `.next(b)` calls: the time includes every block refill, so it
  is the cost per batch amortized over whole blocks (the first batch pays for the block; its
  latency is reported separately as `first_batch_ms`);
- the per-token reference (`reference_batch`, one sequence and one token at a time, one
  thread) is timed in the same round on min(b, ref_sequences) sequences (its cost is linear in
  the number of sequences: there is no per-batch work to amortize);
- ratio = sampler tokens/s / reference tokens/s of that round.
Rounds interleave reference and sampler runs, so both see the same machine load; the medians
and min-max over rounds are reported (and the mean ratio with its standard error over rounds),
with the load average and core count.

Distance to the limit: `copy_bandwidth` is the measured memory copy rate (bytes written per
second by `dst.copy_(src)` on 64 MiB, best of 5). The sampler writes `output_bytes_per_token`
(int32 token + its share of the int64 triggers and outputs) to the memory it hands out, so
bandwidth / bytes per token is the tokens/s of a sampler that did nothing but write its output.
"""

from __future__ import annotations

import math
import os
import statistics
import time

import torch

from popgrad.errors import positive_int
from popgrad.numerics.recall import recall_grid
from popgrad.numerics.reference_sampler import reference_batch
from popgrad.numerics.samplers import default_block, model_c_batches, model_c_sampler

COPY_BYTES = 2 ** 26


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _threads:
    """Run a block with `n` torch CPU threads (None: leave as is)."""

    def __init__(self, n):
        self.n, self.old = n, None

    def __enter__(self):
        if self.n is not None:
            self.old = torch.get_num_threads()
            torch.set_num_threads(positive_int("threads", self.n))

    def __exit__(self, *exc):
        if self.old is not None:
            torch.set_num_threads(self.old)


def machine_load() -> tuple[float, float, float]:
    """1, 5 and 15-minute load averages (nan where the OS has none)."""
    return os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3


def copy_bandwidth(device="cpu", nbytes: int = COPY_BYTES, repeats: int = 5, threads: int | None = None) -> float:
    """Memory copy rate in bytes written per second: best of `repeats` dst.copy_(src) of `nbytes`."""
    dev = torch.device(device)
    src = torch.ones(nbytes // 4, dtype=torch.int32, device=dev)
    dst = torch.empty_like(src)
    best = math.inf
    with _threads(threads if dev.type == "cpu" else None):
        for _ in range(positive_int("repeats", repeats) + 1):                 # first copy: page faults
            _sync(dev)
            start = time.perf_counter()
            dst.copy_(src)
            _sync(dev)
            best = min(best, time.perf_counter() - start)
    return nbytes / best


def output_bytes_per_token(model) -> float:
    """Bytes the sampler hands out per token: int32 z, plus int64 q and o (K each) per T tokens."""
    return 4.0 + 16.0 * model.K / model.T


def reference_round(model, sequences: int, seed: int) -> float:
    """Tokens/s of the per-token reference on `sequences` sequences (wall clock)."""
    start = time.perf_counter()
    reference_batch(model, sequences, seed=seed)
    return sequences * model.T / (time.perf_counter() - start)


def sampler_round(sampler, batch: int, block: int, seed: int, threads: int | None = None) -> dict:
    """One timed round of the block sampler at `batch`: a fresh stream, ceil(block / batch)
    batches (every refill included). Returns tokens/s, batches, blocks drawn, first-batch s."""
    n = max(1, -(-block // batch))
    dev = sampler.device
    with _threads(threads if dev.type == "cpu" else None):
        _sync(dev)
        start = time.perf_counter()
        draw = model_c_batches(sampler, seed, block=block)
        draw.next(batch)
        _sync(dev)
        first = time.perf_counter() - start
        for _ in range(n - 1):
            draw.next(batch)
        _sync(dev)
        total = time.perf_counter() - start
    return {"tokens_per_s": n * batch * sampler.model.T / total, "batches": n, "blocks": draw.blocks_drawn,
            "first_batch_s": first}


def summary(values) -> tuple[float, float, float]:
    """(median, min, max) of a list of numbers."""
    return statistics.median(values), min(values), max(values)


def mean_se(values) -> tuple[float, float]:
    """(mean, standard error of the mean) over rounds; se is nan for one round."""
    n = len(values)
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) / math.sqrt(n) if n > 1 else math.nan)


def interleaved_bench(model, batches=(32, 512, 8192), threads=(1,), rounds: int = 7, ref_sequences: int = 128,
                      devices=("cpu",), block: int | None = None, progress=None) -> list[dict]:
    """Time the block sampler against the per-token reference, interleaved over `rounds`.

    Per round and batch size: one reference run, then one sampler round per (device, threads)
    config. Returns one row per batch size for the reference, then one per config, with the
    median, min and max over rounds of tokens/s and of the ratio (see the module docstring).
    """
    rounds = positive_int("rounds", rounds)
    batches = [positive_int("batch", b) for b in batches]
    configs = [(torch.device(d), t if torch.device(d).type == "cpu" else None)
               for d in devices for t in (threads if torch.device(d).type == "cpu" else (None,))]
    configs = list(dict.fromkeys(configs))
    samplers = {dev: model_c_sampler(model, dev) for dev, _ in configs}
    blocks = {dev: block or default_block(model.T, model.N, dev) for dev in samplers}
    for dev, s in samplers.items():                                            # warm-up (allocator, caches)
        model_c_batches(s, 0, block=blocks[dev]).next(1)
        _sync(dev)
    ref = {b: [] for b in batches}
    fast = {(b, c): [] for b in batches for c in configs}
    steps = range(rounds) if progress is None else progress(range(rounds), rounds)
    for r in steps:
        for b in batches:
            ref[b].append(reference_round(model, min(b, ref_sequences), seed=r))
            for dev, t in configs:
                fast[b, (dev, t)].append(sampler_round(samplers[dev], b, blocks[dev], seed=r, threads=t))
    rows = []
    for b in batches:
        med, lo, hi = summary(ref[b])
        rows.append({"what": "reference (numpy, per token)", "batch": b, "device": "cpu", "threads": 1,
                     "block": None, "rounds": rounds, "ref_sequences": min(b, ref_sequences),
                     "tokens_per_s": med, "tokens_per_s_min": lo, "tokens_per_s_max": hi,
                     "ratio_vs_reference": 1.0, "ratio_min": 1.0, "ratio_max": 1.0, "ratio_mean": 1.0,
                     "ratio_se": 0.0})
        for dev, t in configs:
            runs = fast[b, (dev, t)]
            tps = [x["tokens_per_s"] for x in runs]
            ratio = [x["tokens_per_s"] / y for x, y in zip(runs, ref[b])]
            med, lo, hi = summary(tps)
            rmed, rlo, rhi = summary(ratio)
            rows.append({"what": "block sampler", "batch": b, "device": dev.type,
                         "threads": t if t is not None else "", "block": blocks[dev], "rounds": rounds,
                         "ref_sequences": min(b, ref_sequences), "batches_per_round": runs[0]["batches"],
                         "blocks_per_round": runs[0]["blocks"],
                         "tokens_per_s": med, "tokens_per_s_min": lo, "tokens_per_s_max": hi,
                         "ratio_vs_reference": rmed, "ratio_min": rlo, "ratio_max": rhi,
                         "ratio_mean": mean_se(ratio)[0], "ratio_se": mean_se(ratio)[1],
                         "first_batch_ms": 1e3 * statistics.median(x["first_batch_s"] for x in runs)})
    return rows


def recall_table_seconds(model, dims, batches, seeds: int = 3, device="auto") -> float:
    """Wall time of the recall table (statistics, embeddings and scoring), one run."""
    start = time.perf_counter()
    recall_grid(model, dims, batches, seeds, device=device)
    return time.perf_counter() - start
