"""Sizes and plans of the capacity search, without torch (numerics/capacity_search.py runs it).

The command sizes a search and refuses one that would not fit (`planned_bytes`) before torch
loads; the search itself uses the same constants.
"""

from __future__ import annotations

import math

from popgrad.errors import PopgradError, choice, positive_int
from popgrad.numerics.options import QUERIES, RESOLUTION

BYTES = {"float32": 4, "float64": 8}
BLOCK = 4096        # associations per embedding block = outputs per block of scores
CHUNK = 1024        # queries per chunk
FIRST_LOOK = 1000   # pairs read at the first look of a sampled evaluation (then doubling)
ALPHA = 0.05        # 1 - coverage of the recall interval (over all looks together)
MIN_PAIRS = 4000    # memories per draw: enough that about MIN_PAIRS pairs are read near the capacity
CHECKPOINTS = 4     # W_N kept for incremental building
ENDS = 0.02         # relative resolution of the interval's ends (resolution 0: exact; the interval is widened by it)
STREAMS = {"E": 1, "U": 2, "out": 3, "queries": 4}   # random streams of a draw


def guess_capacity(kind: str, d: int) -> float:
    """A rough capacity used only to size things: 0.14 d^2 / ln d (injective), 0.18 d (mod2)."""
    return 0.14 * d * d / math.log(max(d, 3)) if kind == "injective" else 0.18 * d


def n_cap(kind: str, d: int) -> int:
    """Largest N searched, well past the capacity: 2 d^2 / ln(d + 1) + 64 (injective; the talk's
    heuristic gives N ln N ~ d^2), 4 d + 64 (mod2; the talk: N ~ d)."""
    if kind == "injective":
        return int(2 * d * d / math.log(d + 1)) + 64
    return 4 * d + 64


def memories_per_draw(kind: str, d: int, min_pairs: int = MIN_PAIRS) -> int:
    """S parallel memories in one draw, so that S x (expected capacity) >= min_pairs (1 at large d):
    small memories are not decided by a handful of queries."""
    return max(1, math.ceil(min_pairs / max(guess_capacity(kind, d), 1.0)))


def block_size(kind: str, d: int) -> int:
    """Associations per embedding block for a draw: a power of two near half the guessed
    capacity, between 64 and BLOCK (small draws do not draw thousands of unused columns)."""
    want = max(64.0, min(float(BLOCK), guess_capacity(kind, d) / 2))
    return 2 ** round(math.log2(want))


def planned_bytes(kind: str, d: int, memories: int | None = None, dtype="float32", chunk: int = CHUNK) -> int:
    """Bytes the search is expected to hold: E, U up to twice the guessed capacity (galloping
    overshoot), checkpoints and one chunk's work (`NestedMemory.held_bytes`)."""
    S = memories_per_draw(kind, d) if memories is None else memories
    block = block_size(kind, d)
    reach = min(n_cap(kind, d), 2 * max(64, int(guess_capacity(kind, d))) + block)
    floats = S * (d * reach * (2 if kind == "injective" else 1)
                  + (CHECKPOINTS + 1) * (d * d if kind == "injective" else 2 * d)
                  + min(chunk, reach) * (2 * d + block + 8) + block * d)
    return floats * BYTES[choice("dtype", str(dtype).replace("torch.", ""), tuple(BYTES))]


def planned_flops(kind: str, d: int, queries: int = QUERIES, resolution: float = RESOLUTION) -> float:
    """Rough multiply-adds x 2 of one search: W built up to 2C, and about log2 steps of
    bisection (three searches) at about `queries` pairs each near C, gallop steps at FIRST_LOOK."""
    C = max(2.0, guess_capacity(kind, d))
    if kind == "mod2":
        return 2.0 * 2 * d * C * 40
    per_query = d * d + C * d
    near = 3 * max(1.0, math.log2(1 / max(resolution, 1e-3))) * 0.6
    gallop = math.log2(C) * FIRST_LOOK
    return 2.0 * (2 * C * d * d + per_query * (near * queries + gallop + 2 * FIRST_LOOK * 2))


def check_search_args(threshold, queries, resolution, alpha) -> None:
    """One-line PopgradErrors for the search's numeric options."""
    positive_int("queries", queries)
    for name, v, ok in (("threshold", threshold, lambda x: 0 < x <= 1), ("resolution", resolution, lambda x: 0 <= x < 1),
                        ("alpha", alpha, lambda x: 0 < x < 1)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(v):
            raise PopgradError(f"{name} out of range, got {v!r}")


def validate_threshold(threshold) -> float:
    """A recall threshold in (0, 1]."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (0 < threshold <= 1):
        raise PopgradError(f"threshold must be a number in (0, 1], got {threshold!r}")
    return float(threshold)
