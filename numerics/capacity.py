"""Storage capacity of the sum-of-outer-products memory (paper Sec. 4.1 eq. (3); the talk's "Capacity").

For random Gaussian input embeddings e_z (z in [N]) and output embeddings u_y (y in [M]), all
entries N(0, 1/d), and a map f: [N] -> [M], the memory is eq. (3) with alpha = 1:

    W = sum_z u_{f(z)} e_z^T                         (d, d)
    gamma_{z,y} = u_y^T W e_z,   recall R = (1/N) sum_z 1{argmax_y gamma_{z,y} = f(z)}   (eq. (9))

Ties count as misses (SPEC §4). Two maps: `injective` (a uniformly random permutation of [N],
M = N outputs) and `mod2` (f(z) = z mod 2, M = 2). The capacity at dimension d is the largest N
whose recall, averaged over seeds, is >= a threshold; found by galloping then bisection on N.

Each N is judged on fresh memories (seeded by (seed, map, d, N)), at least `seeds` of them and
at least `min_samples` (memory, z) pairs, so the recall estimate has standard error <= ~0.0016
at recall 0.99 and small N are not decided by a handful of draws. No Python loop over tokens:
one batched matmul per block of CHUNK inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from popgrad.cells import Cell
from popgrad.device import resolve_device, resolve_dtype
from popgrad.errors import PopgradError, choice, memory_budget, positive_int
from popgrad.rates import loglog_slope

MAPS = ("injective", "mod2")
CHUNK = 2048  # columns z per block of gamma: (S, M, CHUNK) floats at a time


def n_cap(kind: str, d: int) -> int:
    """Largest N searched, well past the capacity: 2 d^2 / ln(d + 1) + 64 (injective; the talk's
    heuristic gives N ln N ~ d^2), 4 d + 64 (mod2; the talk: N ~ d)."""
    if kind == "injective":
        return int(2 * d * d / math.log(d + 1)) + 64
    return 4 * d + 64


def memories_at(N: int, seeds: int, min_samples: int) -> int:
    """Independent memories averaged at size N: at least `seeds`, and >= min_samples (memory, z) pairs."""
    return max(seeds, -(-min_samples // N))


def capacity_memory_floats(kind: str, d: int, N: int, memories: int) -> int:
    """Floats held at once by one recall evaluation (embeddings, memory, one block of gamma)."""
    m_out = N if kind == "injective" else 2
    memory = d * d + m_out * d if m_out >= d else m_out * N + m_out * d   # see recall_misses
    return memories * (2 * d * N + d * m_out + N + memory + m_out * min(N, CHUNK))


def peak_memory_floats(kind: str, d: int, seeds: int, min_samples: int = 4000) -> int:
    """Largest `capacity_memory_floats` over the N a capacity search may visit (N = 1 .. N_cap)."""
    cap = n_cap(kind, d)
    return max(capacity_memory_floats(kind, d, N, memories_at(N, seeds, min_samples))
               for N in (1, min(cap, CHUNK), cap))


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


def _passes(kind, d, N, threshold, seeds, min_samples, seed, dtype, device) -> bool:
    """Mean recall at size N >= threshold (with early stopping)."""
    draw = draw_memory(kind, d, N, memories_at(N, seeds, min_samples), seed, dtype, device)
    allowed = math.floor((1.0 - threshold) * draw.f.numel() + 1e-9)
    return recall_misses(draw, max_misses=allowed) <= allowed


def capacity_at(kind: str, d: int, seeds: int = 3, threshold: float = 0.99, seed: int = 0,
                dtype="float32", device="cpu", min_samples: int = 4000) -> dict:
    """Largest N with mean recall >= threshold at dimension d (galloping from N = 1, then bisection).

    Each N is judged on fresh memories, at least `seeds` of them and at least `min_samples`
    (memory, z) pairs, so small N are not decided by a handful of draws. Returns
    {'capacity', 'saturated'}: `saturated` means even N_cap passed (capacity >= N_cap);
    capacity 0 means a single association is not recalled.
    """
    threshold = validate_threshold(threshold)
    choice("map", kind, MAPS)
    d, seeds = positive_int("d", d), positive_int("seeds", seeds)
    cap = n_cap(kind, d)
    memory_budget(f"capacity at d={d} (N up to {cap}, {seeds} seeds)", peak_memory_floats(kind, d, seeds, min_samples))
    ok = lambda N: _passes(kind, d, N, threshold, seeds, min_samples, seed, dtype, device)  # noqa: E731
    if not ok(1):
        return {"capacity": 0, "saturated": False}
    lo, hi = 1, None
    while hi is None:                        # galloping: invariant ok(lo)
        nxt = min(2 * lo, cap)
        if ok(nxt):
            if nxt == cap:
                return {"capacity": cap, "saturated": True}
            lo = nxt
        else:
            hi = nxt
    while hi - lo > 1:                       # bisection: ok(lo), not ok(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return {"capacity": lo, "saturated": False}


def capacity_cell(kind: str, d: int, seeds: int, threshold: float, dtype, device, min_samples: int,
                  seed: int) -> dict:
    """`capacity_at` as a pure sweep cell (popgrad.sweep): {'capacity', 'saturated'} for one (map, d)."""
    return capacity_at(kind, d, seeds, threshold, seed, dtype, device, min_samples)


def capacity_cells(maps, dims, seeds: int = 3, threshold: float = 0.99, seed: int = 0, dtype="float32",
                   device="auto", min_samples: int = 4000) -> list:
    """One sweep cell per (d, map), d-major (d in increasing order, duplicates dropped)."""

    dev = str(resolve_device(device))
    return [Cell(capacity_cell, {"kind": choice("map", kind, MAPS), "d": positive_int("d", d),
                                 "seeds": positive_int("seeds", seeds), "threshold": validate_threshold(threshold),
                                 "dtype": str(dtype), "device": dev, "min_samples": min_samples},
                 positive_int("seed", seed, minimum=0), label=f"{kind} d={d}")
            for d in sorted(set(dims)) for kind in maps]


def validate_threshold(threshold) -> float:
    """A recall threshold in (0, 1]."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (0 < threshold <= 1):
        raise PopgradError(f"threshold must be a number in (0, 1], got {threshold!r}")
    return float(threshold)


def fit_exponent(d, capacity, log_correct: bool = False) -> float:
    """Least-squares slope of log(capacity) vs log(d); with log_correct, of log(N ln N) vs log(d).

    The talk's heuristic Var[gamma] ~ N/d^2 with a max over N competitors gives N ln N ~ d^2 for
    the injective map, so the log-corrected slope is the one to hold against 2.
    """
    d = np.asarray(d, dtype=np.float64)
    c = np.asarray(capacity, dtype=np.float64)
    keep = c >= 2
    if keep.sum() < 2:
        return float("nan")
    y = c[keep] * np.log(c[keep]) if log_correct else c[keep]
    return loglog_slope(d[keep], y)
