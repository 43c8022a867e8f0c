"""Factorized memories W = W_1^T W_2 (talk `paper/talk_associative_memories.md`, "Capacity ~ number of
parameters", low-rank; Nichani, Lee, Bietti 2024): W_1 (m x d) random with N(0, 1/m) entries (so that
E[W_1^T W_1] = I_d), W_2 (m x d) one population gradient step of Lemma 1 through W_1 at W_2 = 0.

With F(z)_k = u_k^T W_1^T W_2 e_z the loss's gradient in W_2 is W_1 grad_W L(W) (W = W_1^T W_2), and at
W_2 = 0 (uniform p_hat = 1/M over the M outputs), Lemma 1 gives -grad_W L(0) = sum_z p(z) (u_{f(z)} - u_bar) e_z^T
with u_bar = (1/M) sum_k u_k. So, for uniform p(z) = 1/N and step eta = N (the scale does not change argmax):

    W = W_1^T W_2 = P (sum_z u_{f(z)} e_z^T - u_bar s^T),   P = W_1^T W_1 (d x d, rank m),  s = sum_z e_z.

The injective map (f = id, M = N) is stored in a nested draw of `capacity_search.NestedMemory`: the
same chunked recall with a running max, the same sampled-recall interval; only the state changes.
The capacity search is galloping then bisection on the point estimate of the recall (as
`capacity_search.search_capacity`, without the interval's ends).
"""

from __future__ import annotations

import math
import time

import torch

from popgrad.errors import positive_int
from popgrad.numerics.capacity_search import NestedMemory, _mix

W1_STREAM = 9001


class FactorizedMemory(NestedMemory):
    """S nested injective memories W_N = P_s (sum_{z<N} u_z e_z^T - u_bar_N s_N^T), P_s = W_1^T W_1 per memory."""

    def __init__(self, d: int, m: int, memories: int = 1, seed: int = 0, dtype="float32", device="cpu",
                 block: int | None = None, chunk: int = 1024):
        super().__init__("injective", d, memories, seed, dtype, device, block, chunk)
        self.m = positive_int("m", m)
        gen = torch.Generator().manual_seed(_mix(W1_STREAM, d, self.m, self.S, self.seed))
        W1 = torch.randn((self.S, self.m, d), generator=gen, dtype=torch.float64) / math.sqrt(self.m)
        self.W1 = W1.to(dtype=self.dtype, device=self.device)                 # (S, m, d)
        self.P = self.W1.transpose(1, 2) @ self.W1                            # (S, d, d)

    def state(self, N: int) -> torch.Tensor:
        """The factorized one-step memory at size N (S, d, d) (module docstring)."""
        W = super().state(N)                                                  # sum_{z<N} u_z e_z^T
        E, U = self._cols(self.E, 0, N), self._cols(self.U, 0, N)             # (S, d, N)
        u_bar = U.mean(dim=2, keepdim=True)                                   # (S, d, 1)
        s = E.sum(dim=2, keepdim=True)                                        # (S, d, 1)
        return self.P @ (W - u_bar @ s.transpose(1, 2))


def pooled_memories(d: int, m: int, pairs: int = 4000) -> int:
    """Memories pooled per draw so that about `pairs` (memory, z) pairs decide each N near the capacity
    (guessed as 0.01 m d), as the unfactorized search pools them at small d."""
    return max(1, math.ceil(pairs / max(8.0, 0.01 * m * d)))


def factorized_capacity(d: int, m: int, seed: int = 0, memories: int | None = None, threshold: float = 0.99,
                        queries: int = 4000, resolution: float = 0.02, start: int = 8) -> dict:
    """Capacity (largest N with recall >= threshold, point estimate) of a factorized draw: galloping from
    `start` then bisection to a relative `resolution`; also the evaluations made."""
    t0 = time.perf_counter()
    mem = FactorizedMemory(d, m, pooled_memories(d, m) if memories is None else memories, seed)
    memo = {}

    def ok(N: int) -> bool:
        if N not in memo:
            memo[N] = mem.evaluate(N, threshold, queries)
        e = memo[N]
        return e.recall >= threshold and e.decided >= 0

    lo, hi = 0, start
    while ok(hi):
        lo, hi = hi, 2 * hi
    if lo == 0:
        lo, hi = 1, start
        if not ok(1):
            return {"capacity": 0, "seconds": time.perf_counter() - t0, "evaluations": len(memo)}
    while hi - lo > max(1, int(resolution * lo)):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return {"capacity": lo, "seconds": time.perf_counter() - t0, "evaluations": len(memo), "memories": mem.S}
