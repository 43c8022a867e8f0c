"""Benchmarks of the Monte-Carlo path (not timed tests): reference vs fast sampler, recall table.

All timings are wall-clock, best of `repeats`, in this process. The reference sampler is
single-threaded Python; the fast sampler is timed with one torch thread (like for like) and
with all of them.
"""

from __future__ import annotations

import time

import torch

from popgrad.numerics.reference_sampler import reference_batch
from popgrad.numerics.samplers import make_generator, model_c_sampler, sample_model_c
from popgrad.errors import positive_int


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_tokens_per_s(model, sequences: int = 100, repeats: int = 2) -> tuple[float, float]:
    """(tokens/s, seconds of the best run) of the per-token reference sampler."""
    sequences, repeats = positive_int("sequences", sequences), positive_int("repeats", repeats)
    best = min(_timed(lambda r=r: reference_batch(model, sequences, seed=r)) for r in range(repeats))
    return sequences * model.T / best, best


def fast_tokens_per_s(model, batch: int = 8192, device="cpu", threads: int | None = None,
                      repeats: int = 3) -> tuple[float, float]:
    """(tokens/s, seconds of the best run) of `sample_model_c` with `batch` sequences per call."""
    batch, repeats = positive_int("batch", batch), positive_int("repeats", repeats)
    sampler = model_c_sampler(model, device)
    gen = make_generator(0, sampler.device)
    out = torch.empty((model.T, batch), dtype=torch.int32, device=sampler.device)
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(positive_int("threads", threads))
    try:
        sample_model_c(sampler, batch, gen, out=out)                        # warm-up
        _sync(sampler.device)

        def once():
            sample_model_c(sampler, batch, gen, out=out)
            _sync(sampler.device)
        best = min(_timed(once) for _ in range(repeats))
    finally:
        torch.set_num_threads(old)
    return batch * model.T / best, best


def recall_table_seconds(model, dims, batches, seeds: int = 3, device="auto") -> float:
    """Wall time of the recall table (statistics, embeddings and scoring), one run."""
    from popgrad.numerics.recall import recall_grid

    return _timed(lambda: recall_grid(model, dims, batches, seeds, device=device))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
