"""Storage capacity of the sum-of-outer-products memory (paper Sec. 4.1 eq. (3); the talk's "Capacity").

For random Gaussian input embeddings e_z (z in [N]) and output embeddings u_y (y in [M]), all
entries N(0, 1/d), and a map f: [N] -> [M], the memory is eq. (3) with alpha = 1:

    W = sum_z u_{f(z)} e_z^T                         (d, d)
    gamma_{z,y} = u_y^T W e_z,   recall R = (1/N) sum_z 1{argmax_y gamma_{z,y} = f(z)}   (eq. (9))

Ties count as misses (SPEC §4). Two maps: `injective` (M = N outputs) and `mod2` (f(z) = z mod 2,
M = 2). The capacity at dimension d: the sampled crossing of recall = threshold, stepped down to the
first N whose exhaustive recall is >= the threshold (`capacity_search`; docs/capacity.md).

The search itself lives in `capacity_search` (a nested draw that grows W, chunked recall with a
running max, sampled queries with a Wilson interval, galloping then bisection); this module holds
the fresh-draw recall used by the property tests (`draw_memory`, `recall`) and the sweep cells:
one cell per (map, d, memory seed), each an independent nested draw.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from popgrad.cells import Cell, Runner, run_with
from popgrad.device import resolve_device, resolve_dtype
from popgrad.errors import choice, memory_budget, positive_int
from popgrad.numerics.capacity_plan import validate_threshold  # noqa: F401 (re-exported)
from popgrad.numerics.capacity_search import (ALPHA, MAPS, QUERIES, RESOLUTION, check_search_args,  # noqa: F401
                                              n_cap, search_capacity)                    # MAPS, n_cap: re-exported

LOG = logging.getLogger("popgrad.capacity")   # one line per evaluated N (the command shows it on stderr)
CHUNK = 2048  # columns z per block of gamma in `recall_misses`: (S, M, CHUNK) floats at a time


def capacity_memory_floats(kind: str, d: int, N: int, memories: int) -> int:
    """Floats held at once by one fresh-draw recall evaluation (embeddings, memory, one block of gamma)."""
    m_out = N if kind == "injective" else 2
    memory = d * d + m_out * d if m_out >= d else m_out * N + m_out * d   # see recall_misses
    return memories * (2 * d * N + d * m_out + N + memory + m_out * min(N, CHUNK))


@dataclass
class MemoryDraw:
    """`S` independent memories with N associations each at dimension d."""

    kind: str
    E: torch.Tensor     # (S, d, N) input embeddings e_z
    U: torch.Tensor     # (S, d, M) output embeddings u_y (M = N for injective, 2 for mod2)
    f: torch.Tensor     # (S, N) int64 the association map z -> f(z)


def draw_memory(kind: str, d: int, N: int, memories: int, seed: int = 0, dtype="float32",
                device="cpu") -> MemoryDraw:
    """Draw `memories` independent memories of size N (seeded per (seed, d, N); drawn in float64 on CPU).

    Embeddings: i.i.d. N(0, 1/d) entries. Injective map: a uniformly random permutation of [N]
    per memory (argsort of uniform keys); mod2 map: f(z) = z mod 2.
    """
    choice("map", kind, MAPS)
    d, N, S = positive_int("d", d), positive_int("N", N), positive_int("memories", memories)
    memory_budget(f"capacity at d={d}, N={N} with {S} memories", capacity_memory_floats(kind, d, N, S))
    seed = positive_int("seed", seed, minimum=0)
    mix = ((seed * len(MAPS) + MAPS.index(kind)) * 1_000_003 + d) * 1_000_000_007 + N
    gen = torch.Generator().manual_seed(mix % (2 ** 63))
    m_out = N if kind == "injective" else 2
    E = torch.randn((S, d, N), generator=gen, dtype=torch.float64) / math.sqrt(d)
    U = torch.randn((S, d, m_out), generator=gen, dtype=torch.float64) / math.sqrt(d)
    if kind == "injective":
        f = torch.argsort(torch.rand((S, N), generator=gen, dtype=torch.float64), dim=1)
    else:
        f = (torch.arange(N) % 2).expand(S, N).contiguous()
    kw = {"dtype": resolve_dtype(dtype), "device": resolve_device(device)}
    return MemoryDraw(kind, E.to(**kw), U.to(**kw), f.to(device=kw["device"]))


def recall_misses(draw: MemoryDraw, max_misses: int | None = None) -> int:
    """Eq. (3) + (9): number of (memory, z) with argmax_y u_y^T W e_z != f(z), W = sum_z u_{f(z)} e_z^T.

    Ties count as misses. Stops early once the count exceeds `max_misses`.
    """
    E, U, f = draw.E, draw.U, draw.f                             # (S, d, N), (S, d, M), (S, N)
    N = E.shape[2]
    targets = torch.gather(U, 2, f[:, None, :].expand(-1, U.shape[1], -1))  # (S, d, N) u_{f(z)}
    if U.shape[2] < d_of(draw):                                  # few outputs: never form W
        UW = (U.transpose(1, 2) @ targets) @ E.transpose(1, 2)   # (S, M, d)
    else:
        W = targets @ E.transpose(1, 2)                          # (S, d, d)
        UW = U.transpose(1, 2) @ W                               # (S, M, d)
    misses = 0
    for start in range(0, N, CHUNK):
        gamma = UW @ E[:, :, start:start + CHUNK]                # (S, M, c)
        best = gamma.max(dim=1).values                           # (S, c)
        right = torch.gather(gamma, 1, f[:, None, start:start + CHUNK]).squeeze(1)  # (S, c)
        ties = (gamma == best[:, None, :]).sum(dim=1) > 1
        misses += int(((right < best) | ties).sum())
        if max_misses is not None and misses > max_misses:
            break
    return misses


def d_of(draw: MemoryDraw) -> int:
    return draw.E.shape[1]


def recall(draw: MemoryDraw) -> float:
    """Mean recall (eq. (9)) over the drawn memories."""
    return 1.0 - recall_misses(draw) / draw.f.numel()


def capacity_at(kind: str, d: int, threshold: float = 0.99, seed: int = 0, dtype="float32", device="cpu",
                **options) -> dict:
    """Capacity of one nested draw at dimension d (`capacity_search.search_capacity`):
    {'capacity', 'lower', 'upper', 'saturated', ...}; capacity 0 means one association is not recalled."""
    choice("map", kind, MAPS)
    return search_capacity(kind, positive_int("d", d), validate_threshold(threshold), seed, dtype=dtype,
                           device=device, **options).as_dict()


def capacity_cell(kind: str, d: int, threshold: float, queries: int, resolution: float, dtype: str, device: str,
                  threads: int, seed: int) -> dict:
    """One sweep cell: the capacity of one nested draw (memory seed `seed`) of `kind` at d, with its
    interval, wall time, the bytes the search held and the process's peak RSS."""
    if threads:
        torch.set_num_threads(threads)
    return search_capacity(kind, d, threshold, seed, queries=queries, resolution=resolution, dtype=dtype,
                           device=device, progress=LOG.info).as_dict()


def capacity_cells(maps, dims, memory_seeds=3, threshold: float = 0.99, seed: int = 0,
                   queries: int = QUERIES, resolution: float = RESOLUTION, dtype="float32", device="auto",
                   threads: int = 0) -> list:
    """One sweep cell per (d, map, memory seed), d-major (d increasing, duplicates dropped);
    memory seed k is the independent nested draw with seed `seed + k`. `memory_seeds`: a count, or
    a function (map, d) -> count."""
    check_search_args(validate_threshold(threshold), queries, resolution, ALPHA)
    dev = str(resolve_device(device))
    count = memory_seeds if callable(memory_seeds) else (lambda kind, d: memory_seeds)
    for kind in maps:
        for d in dims:
            positive_int("memory_seeds", count(kind, d))
    return [Cell(capacity_cell, {"kind": choice("map", kind, MAPS), "d": positive_int("d", d),
                                 "threshold": float(threshold), "queries": int(queries),
                                 "resolution": float(resolution), "dtype": str(dtype), "device": dev,
                                 "threads": int(threads)},
                 positive_int("seed", seed, minimum=0) + k, label=f"{kind} d={d} seed={seed + k}")
            for d in sorted(set(dims)) for kind in maps for k in range(count(kind, d))]


def capacity_grid(maps, dims, memory_seeds=3, threshold: float = 0.99, seed: int = 0,
                  queries: int = QUERIES, resolution: float = RESOLUTION, dtype="float32", device="auto",
                  threads: int = 0, run: Runner | None = None) -> list[dict]:
    """Per (d, map): the capacities of each memory seed with their intervals, mean ± se over the
    memory seeds (se None with one), the interval's ends averaged, seconds and peak memory."""
    cells = capacity_cells(maps, dims, memory_seeds, threshold, seed, queries, resolution, dtype, device, threads)
    values = run_with(run, cells, "capacity cells")
    groups: dict[tuple, list] = {}
    for cell, value in zip(cells, values):
        groups.setdefault((cell.params["d"], cell.params["kind"]), []).append(value)
    return [summarize(kind, d, vals) for (d, kind), vals in groups.items()]


def summarize(kind: str, d: int, values: list[dict]) -> dict:
    """Mean ± se over memory seeds of the capacity; the mean interval; total seconds; max peak bytes."""
    c = np.array([v["capacity"] for v in values], dtype=np.float64)
    n = len(c)
    exact = [v.get("exhaustive_recall") for v in values]
    return {"kind": kind, "d": d, "n": n, "capacities": c.astype(int).tolist(),
            "sampled_capacities": [v.get("sampled_capacity") for v in values],
            "sampled_recalls": [v.get("sampled_recall") for v in values], "exhaustive_recalls": exact,
            "exhaustive_recall_min": min(exact) if exact and None not in exact else None,
            "lowers": [v["lower"] for v in values], "uppers": [v["upper"] for v in values],
            "mean": float(c.mean()), "se": float(c.std(ddof=1) / math.sqrt(n)) if n > 1 else None,
            "lower": float(np.mean([v["lower"] for v in values])), "upper": float(np.mean([v["upper"] for v in values])),
            "saturated": any(v["saturated"] for v in values), "memories": values[0]["memories"],
            "seconds": float(sum(v["seconds"] for v in values)),
            "peak_bytes": max(v["peak_bytes"] for v in values), "maxrss_bytes": max(v["maxrss_bytes"] for v in values)}


