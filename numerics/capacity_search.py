"""The scalable capacity estimator: a growing memory, chunked recall with a running max, sampled
queries with a binomial interval, and a monotone search over N (paper Sec. 4.1 eq. (3), (9)).

Memory (eq. (3), alpha = 1) and recall (eq. (9), ties are misses):

    W_N = sum_{z < N} u_{f(z)} e_z^T,   z recalled  <=>  u_{f(z)}^T W_N e_z > max_{y != f(z)} u_y^T W_N e_z

The injective map is taken as f(z) = z: the outputs u_y are i.i.d., so a random permutation only
relabels them and leaves the law of the recall unchanged; with f = id the associations of size N
are the first N of size N + m, so one draw serves every N (a nested draw). The z mod 2 map has
M = 2 outputs. Embeddings are drawn in blocks of `BLOCK` associations from a generator seeded by
(seed, map, d, block), so association z has the same embeddings whatever N the search visits.

What is held (`NestedMemory.held_bytes`): E and U up to the largest N visited (S x d x N each),
a few checkpoints W_N (S x d x d, injective; S x 2 x d for mod2, which never forms W) from which
W_{N'} = W_N + U_{N:N'} E_{N:N'}^T is built, and per chunk of c queries W E_q (S x d x c) and one
block of scores (S x BLOCK x c). Never an N x N matrix: the competitors' max is a running max
over output blocks.

Sampled recall: when S N exceeds `queries`, each memory's queries are a uniform sample without
replacement, read in looks of doubling size; at each look a Wilson interval at level
1 - alpha / (number of looks) (Bonferroni over the looks, so optional stopping keeps the 1 - alpha
coverage) decides pass (lower bound >= threshold), fail (upper bound < threshold) or, after the
last look, undecided. Exhaustive recall (S N <= queries) is exact for the drawn memories.

Search: galloping then bisection on the point estimate gives the sampled crossing C_s (to a
relative resolution); the same bisection on "lower bound >= threshold" and on "upper bound >=
threshold" (reusing every evaluation) gives the capacity interval: the N range where the recall
interval straddles the threshold, widened by the search resolution.

Verification: the reported capacity C is the first N of C_s, C_s - s, C_s - 2s', ... (s = the
search's step max(1, floor(resolution N)) at that N) whose exhaustive recall (every stored
association of every memory of the draw, chunked) is >= threshold; C = C_s when C_s passes. So
recall(C) >= threshold holds exactly on the draw. The recall of one draw is not monotone in N, so
C is not "the largest N that passes": an N above C can pass and one below it can fail.
"""

from __future__ import annotations

import math
import resource
import time
from dataclasses import dataclass, field
from statistics import NormalDist

import torch

from popgrad.device import resolve_device, resolve_dtype
from popgrad.errors import choice, memory_budget, positive_int
from popgrad.numerics.capacity_plan import (  # noqa: F401 (sizes and plans, re-exported)
    ALPHA, BLOCK, CHECKPOINTS, CHUNK, ENDS, FIRST_LOOK, MIN_PAIRS, STREAMS, block_size, check_search_args, guess_capacity, memories_per_draw, n_cap, planned_bytes, planned_flops,
   )
from popgrad.numerics.options import MAPS, QUERIES, RESOLUTION

def wilson_interval(hits: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion hits / n at normal quantile z."""
    if n <= 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def look_sizes(per_memory: int, memories: int, first: int = FIRST_LOOK) -> list[int]:
    """Per-memory query counts at each look: first / S, doubling, ending at per_memory."""
    sizes, n = [], max(1, math.ceil(first / memories))
    while n < per_memory:
        sizes.append(n)
        n *= 2
    return sizes + [per_memory]


def _mix(*parts: int) -> int:
    h = 0
    for p in parts:
        h = (h * 1_000_003 + int(p)) % (2 ** 61 - 1)
    return h


@dataclass
class RecallEstimate:
    """Recall of a draw at size N: `hits` of `n` (memory, z) pairs read, of `population` = S N;
    interval (lo, hi); decided +1 (lo >= threshold), -1 (hi < threshold) or 0 (straddles)."""

    N: int
    hits: int
    n: int
    population: int
    lo: float
    hi: float
    decided: int
    seconds: float = 0.0

    @property
    def recall(self) -> float:
        return self.hits / self.n if self.n else float("nan")

    @property
    def exhaustive(self) -> bool:
        return self.n == self.population


class NestedMemory:
    """S independent memories of a map at dimension d whose associations grow with N (a nested draw)."""

    def __init__(self, kind: str, d: int, memories: int = 1, seed: int = 0, dtype="float32", device="cpu",
                 block: int | None = None, chunk: int = CHUNK):
        self.kind = choice("map", kind, MAPS)
        self.d = positive_int("d", d)
        self.S = positive_int("memories", memories)
        self.seed = positive_int("seed", seed, minimum=0)
        self.block = block_size(kind, self.d) if block is None else positive_int("block", block)
        self.chunk = positive_int("chunk", chunk)
        self.dtype = resolve_dtype(dtype)
        self.device = resolve_device(device)
        memory_budget(f"capacity draw at d={self.d} ({self.S} memories)", self.held_bytes(self.block) / 8.0)
        self.E: list[torch.Tensor] = []     # blocks (S, d, block) of input embeddings e_z
        self.U: list[torch.Tensor] = []     # injective: blocks (S, d, block) of u_z; mod2: [(S, d, 2)]
        if self.kind == "mod2":
            self.U = [self._randn(("out",), 2)]
        self.checkpoints: dict[int, torch.Tensor] = {0: self._zero_state()}
        self.peak_bytes = 0

    # -- the draw -----------------------------------------------------------------------------
    def _randn(self, key: tuple, cols: int) -> torch.Tensor:
        tag = [MAPS.index(self.kind), self.d, self.S, self.seed] + [STREAMS.get(k, k) for k in key]
        gen = torch.Generator().manual_seed(_mix(*tag))
        x = torch.randn((self.S, self.d, cols), generator=gen, dtype=torch.float64) / math.sqrt(self.d)
        return x.to(dtype=self.dtype, device=self.device)

    @property
    def drawn(self) -> int:
        return len(self.E) * self.block

    def ensure(self, N: int) -> None:
        """Draw the embedding blocks that hold associations 0..N-1 (refused if they would not fit)."""
        blocks = -(-N // self.block)
        if blocks > len(self.E):
            memory_budget(f"capacity draw at d={self.d}, N={N} ({self.S} memories)",
                          self.held_bytes(blocks * self.block) / 8.0)
        while len(self.E) < blocks:
            b = len(self.E)
            self.E.append(self._randn(("E", b), self.block))
            if self.kind == "injective":
                self.U.append(self._randn(("U", b), self.block))
        self.peak_bytes = max(self.peak_bytes, self.held_bytes(self.drawn))

    def held_bytes(self, n_drawn: int | None = None) -> int:
        """Bytes held at once with n_drawn associations drawn: E, U, checkpoints, one chunk's work."""
        n = self.drawn if n_drawn is None else n_drawn
        m_out = n if self.kind == "injective" else 2
        state = self.d * self.d if self.kind == "injective" else 2 * self.d
        c = min(self.chunk, max(n, 1))
        work = c * (2 * self.d + self.block + 8) + self.block * self.d      # W E_q, scores, W update
        floats = self.S * (self.d * n + self.d * m_out + (CHECKPOINTS + 1) * state + work)
        return floats * torch.finfo(self.dtype).bits // 8

    def _cols(self, lists: list[torch.Tensor], a: int, b: int) -> torch.Tensor:
        """Columns a..b-1 of the blocked (S, d, *) storage."""
        B = self.block
        parts = [lists[k][:, :, max(a - k * B, 0):min(b - k * B, B)] for k in range(a // B, -(-b // B))]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)

    def embeddings(self, N: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(E, U) of size N as dense tensors (S, d, N), (S, d, M): for references and tests."""
        self.ensure(N)
        U = self._cols(self.U, 0, N) if self.kind == "injective" else self.U[0]
        return self._cols(self.E, 0, N), U

    def targets(self, z: torch.Tensor) -> torch.Tensor:
        """f(z): z (injective, f = id) or z mod 2."""
        return z if self.kind == "injective" else z % 2

    # -- the memory ------------------------------------------------------------------------------
    def _zero_state(self) -> torch.Tensor:
        shape = (self.S, self.d, self.d) if self.kind == "injective" else (self.S, 2, self.d)
        return torch.zeros(shape, dtype=self.dtype, device=self.device)

    def _increment(self, a: int, b: int) -> torch.Tensor:
        """Eq. (3) for associations a..b-1: U_{a:b} E_{a:b}^T (injective) or U^T of it (mod2: (S, 2, d))."""
        out = torch.zeros_like(self.checkpoints[0])
        for s in range(a, b, self.block):
            t = min(b, s + self.block)
            E = self._cols(self.E, s, t)                                      # (S, d, m)
            if self.kind == "injective":
                out += self._cols(self.U, s, t) @ E.transpose(1, 2)            # W += U_m E_m^T
            else:
                f = torch.arange(s, t, device=self.device) % 2
                G = self.U[0].transpose(1, 2) @ self.U[0]                     # (S, 2, 2) u_y^T u_y'
                out += G[:, :, f] @ E.transpose(1, 2)                          # U^T W += (U^T u_f) E_m^T
        return out

    def state(self, N: int) -> torch.Tensor:
        """W_N (injective, (S, d, d)) or U^T W_N (mod2, (S, 2, d)), from the nearest checkpoint below N
        (W_N = W_base + U_{base:N} E_{base:N}^T); the CHECKPOINTS most recently used are kept."""
        self.ensure(N)
        if N in self.checkpoints:
            self.checkpoints[N] = self.checkpoints.pop(N) if N else self.checkpoints[0]
            return self.checkpoints[N]
        base = max(k for k in self.checkpoints if k <= N)
        W = self.checkpoints[base] + self._increment(base, N)
        self.checkpoints[N] = W
        recent = [k for k in self.checkpoints if k]                           # least recent first
        for k in recent[:max(0, len(recent) - CHECKPOINTS)]:
            del self.checkpoints[k]
        return W

    # -- recall (eq. (9)) --------------------------------------------------------------------------
    def hits(self, N: int, z: torch.Tensor, W: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. (9) at size N for queries z (S, c): True where u_{f(z)}^T W e_z beats every other output.

        Chunked over queries (CHUNK) and over outputs (BLOCK) with a running max of the competitors;
        ties count as misses.
        """
        W = self.state(N) if W is None else W
        out = []
        for a in range(0, z.shape[1], self.chunk):
            out.append(self._hits_chunk(N, z[:, a:a + self.chunk], W))
        return torch.cat(out, dim=1) if out else torch.zeros_like(z, dtype=torch.bool)

    def _query_embeddings(self, z: torch.Tensor) -> torch.Tensor:
        """e_z for queries z (S, c) -> (S, d, c)."""
        S, c = z.shape
        Eq = torch.empty((S, self.d, c), dtype=self.dtype, device=self.device)
        blk = z // self.block
        for b in torch.unique(blk).tolist():
            s, col = torch.nonzero(blk == b, as_tuple=True)
            Eq[s, :, col] = self.E[b][s, :, z[s, col] - b * self.block]
        return Eq

    def _hits_chunk(self, N: int, z: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        Eq = self._query_embeddings(z)                                       # (S, d, c)
        f = self.targets(z)                                                  # (S, c)
        if self.kind == "mod2":
            scores = W @ Eq                                                  # (S, 2, c)
            target = scores.gather(1, f[:, None, :]).squeeze(1)
            other = scores.gather(1, (1 - f)[:, None, :]).squeeze(1)
            return target > other
        V = W @ Eq                                                           # (S, d, c) W e_z
        target = torch.full(z.shape, -math.inf, dtype=self.dtype, device=self.device)
        best = torch.full(z.shape, -math.inf, dtype=self.dtype, device=self.device)
        for a in range(0, N, self.block):
            b = min(N, a + self.block)
            scores = self._cols(self.U, a, b).transpose(1, 2) @ V            # (S, b - a, c)
            inside = (f >= a) & (f < b)                                      # target in this block
            row = (f - a).clamp(0, b - a - 1)[:, None, :]                   # (S, 1, c)
            here = scores.gather(1, row).squeeze(1)
            target = torch.where(inside, here, target)
            scores.scatter_(1, row, torch.where(inside, -math.inf, here)[:, None, :])  # drop f(z) itself
            best = torch.maximum(best, scores.amax(dim=1))
        return target > best

    def evaluate(self, N: int, threshold: float, queries: int = QUERIES, alpha: float = ALPHA,
                 first_look: int = FIRST_LOOK) -> RecallEstimate:
        """Recall at size N: exhaustive when S N <= queries, else sampled in looks (see module doc)."""
        t0 = time.perf_counter()
        W = self.state(N)
        per_memory = min(N, max(1, math.ceil(queries / self.S)))
        exhaustive = per_memory == N
        if exhaustive:
            order = torch.arange(N, device=self.device).expand(self.S, N)
            sizes = [N]
        else:
            gen = torch.Generator().manual_seed(_mix(MAPS.index(self.kind), self.d, self.S, self.seed, STREAMS["queries"], N))
            order = torch.stack([torch.randperm(N, generator=gen)[:per_memory] for _ in range(self.S)])
            order = order.to(self.device)
            sizes = look_sizes(per_memory, self.S, first_look)
        z_q = NormalDist().inv_cdf(1 - alpha / (2 * len(sizes)))
        hits, read, pop = 0, 0, self.S * N
        allowed_misses = math.floor((1 - threshold) * pop + 1e-9)
        for k in sizes:
            for a in range(read // self.S, k, self.chunk):
                b = min(k, a + self.chunk)
                hits += int(self.hits(N, order[:, a:b], W).sum())
                if exhaustive and (self.S * b - hits) > allowed_misses:          # fail already certain
                    n = self.S * b
                    hi = 1 - (n - hits) / pop
                    return RecallEstimate(N, hits, n, pop, 0.0, hi, -1, time.perf_counter() - t0)
            read = self.S * k
            if exhaustive:
                p = hits / pop
                return RecallEstimate(N, hits, pop, pop, p, p, 1 if p >= threshold else -1,
                                      time.perf_counter() - t0)
            lo, hi = wilson_interval(hits, read, z_q)
            if lo >= threshold or hi < threshold or k == sizes[-1]:
                decided = 1 if lo >= threshold else (-1 if hi < threshold else 0)
                return RecallEstimate(N, hits, read, pop, lo, hi, decided, time.perf_counter() - t0)
        raise AssertionError("unreachable")


@dataclass
class SearchResult:
    """Capacity of one nested draw: point estimate and interval, with every evaluation."""

    kind: str
    d: int
    memories: int
    capacity: int
    lower: int
    upper: int
    saturated: bool
    evaluations: list = field(default_factory=list)
    seconds: float = 0.0
    peak_bytes: int = 0
    maxrss_bytes: int = 0
    sampled_capacity: int | None = None     # C_s, the crossing of the point estimate (before verification)
    sampled_recall: float | None = None     # the point estimate at C_s (exhaustive when S C_s <= queries)
    exhaustive_recall: float | None = None  # recall at C over every stored association (None: not verified)
    verifications: list = field(default_factory=list)   # exhaustive evaluations from C_s down to C

    def as_dict(self) -> dict:
        return {"capacity": self.capacity, "lower": self.lower, "upper": self.upper, "saturated": self.saturated,
                "memories": self.memories, "seconds": round(self.seconds, 2), "peak_bytes": self.peak_bytes,
                "maxrss_bytes": self.maxrss_bytes, "sampled_capacity": self.sampled_capacity,
                "sampled_recall": self.sampled_recall, "exhaustive_recall": self.exhaustive_recall,
                "evaluations": [[e.N, e.hits, e.n, round(e.lo, 6), round(e.hi, 6), e.decided]
                                for e in self.evaluations],
                "verifications": [[e.N, e.hits, e.n, e.population, e.decided] for e in self.verifications]}


def _bisect(pred, lo: int, hi: int, resolution: float) -> tuple[int, int]:
    """Bisection with pred(lo) true, pred(hi) false, until hi - lo <= max(1, resolution * lo)."""
    while hi - lo > max(1, int(resolution * lo)):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if pred(mid) else (lo, mid)
    return lo, hi


def _bracket(memo: dict, pred, start: int) -> tuple[int, int | None]:
    """From the evaluations so far: hi = smallest N > start with pred false, lo = largest N < hi with pred true."""
    fails = [N for N, e in memo.items() if N > start and not pred(e)]
    hi = min(fails) if fails else None
    passes = [N for N, e in memo.items() if pred(e) and (hi is None or N < hi)]
    return max(passes + [start]), hi


def search_capacity(kind: str, d: int, threshold: float = 0.99, seed: int = 0, memories: int | None = None,
                    queries: int = QUERIES, resolution: float = RESOLUTION, dtype="float32", device="cpu",
                    alpha: float = ALPHA, first_look: int = FIRST_LOOK, block: int | None = None,
                    chunk: int = CHUNK, progress=None, verify: bool = True) -> SearchResult:
    """Capacity of one nested draw and its interval (module doc: sampled crossing, then verification).

    Galloping from N = 1 (doubling, capped at n_cap) then bisection on the point estimate gives
    C_s; then the ends of the interval by bisection on the interval's lower and upper bounds,
    reusing every evaluation; then (`verify`) exhaustive recall from C_s down, one search step at
    a time, to the first N that passes: the reported capacity. `progress(text)` is called after
    each evaluation when given.
    """
    t0 = time.perf_counter()
    choice("map", kind, MAPS)
    d = positive_int("d", d)
    check_search_args(threshold, queries, resolution, alpha)
    S = memories_per_draw(kind, d) if memories is None else positive_int("memories", memories)
    mem = NestedMemory(kind, d, S, seed, dtype, device, block, chunk)
    cap = n_cap(kind, d)
    memo: dict[int, RecallEstimate] = {}

    def ev(N: int) -> RecallEstimate:
        if N not in memo:
            memo[N] = mem.evaluate(N, threshold, queries, alpha, first_look)
            if progress:
                e = memo[N]
                progress(f"{kind} d={d} N={N}: recall {e.recall:.4f} [{e.lo:.4f}, {e.hi:.4f}] n={e.n}")
        return memo[N]

    point = lambda e: e.recall >= threshold and e.decided >= 0      # noqa: E731
    surely = lambda e: e.decided == 1                                # noqa: E731
    maybe = lambda e: e.decided >= 0                                 # noqa: E731

    def search(pred, start_lo: int) -> tuple[int, int, bool]:
        """Largest N with pred true (by galloping from the memo, then bisection): (lo, hi, saturated)."""
        lo, hi = _bracket(memo, pred, start_lo)
        if lo == 0:
            if not pred(ev(1)):
                return 0, 1, False
            lo, hi = _bracket(memo, pred, 0)
        while hi is None:
            nxt = min(2 * lo, cap)
            if pred(ev(nxt)):
                if nxt == cap:
                    return cap, cap + 1, True
                lo = nxt
            else:
                hi = nxt
        lo, hi = _bisect(lambda N: pred(ev(N)), lo, hi, resolution)
        return lo, hi, False

    c, _, saturated = search(point, 0)
    step = resolution
    resolution = max(resolution, ENDS) if resolution > 0 else 0.0   # the interval's ends: coarser
    lower, _, _ = search(surely, 0)
    _, upper_hi, sat_hi = search(maybe, c)
    sampled = c
    checked = verify_down(mem, c, threshold, step, memo, progress) if verify else []
    if checked:
        c = checked[-1].N if checked[-1].decided == 1 else 0
    exact = checked[-1].recall if checked and c else None
    res = SearchResult(kind, d, S, c, min(lower, c), max(upper_hi - 1, sampled) if not sat_hi else cap, saturated,
                       [memo[N] for N in sorted(memo)], time.perf_counter() - t0, mem.peak_bytes,
                       resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, sampled,
                       memo[sampled].recall if sampled in memo else None, exact, checked)
    return res


def exhaustive_estimate(mem: NestedMemory, N: int, threshold: float) -> RecallEstimate:
    """Recall at N over every stored association of every memory (S N queries, chunked); stops early
    once failing is certain (then `n` < `population`)."""
    return mem.evaluate(N, threshold, queries=mem.S * N)


def verify_down(mem: NestedMemory, N: int, threshold: float, resolution: float, memo: dict | None = None,
                progress=None) -> list[RecallEstimate]:
    """Exhaustive recall at N, N - s, ... (s = max(1, floor(resolution N)) at each N) until one passes
    (or N = 0): the evaluations, the last one the verified capacity's (decided 1) unless none passed."""
    out = []
    while N > 0:
        e = (memo or {}).get(N)
        if e is None or not e.exhaustive:
            e = exhaustive_estimate(mem, N, threshold)
            if progress:
                progress(f"{mem.kind} d={mem.d} N={N}: exhaustive recall {e.hits}/{e.n} of {e.population} "
                         f"{'pass' if e.decided == 1 else 'fail'}")
        out.append(e)
        if e.decided == 1:
            break
        N -= max(1, int(resolution * N))
    return out


def measured_gflops(dtype="float32", device="cpu", seconds: float = 0.3) -> float:
    """GEMM rate here now (a 1024 x 1024 x 1024 product repeated for about `seconds`)."""
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    a = torch.randn(1024, 1024, dtype=dt, device=dev)
    b = torch.randn(1024, 1024, dtype=dt, device=dev)
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return 2.0 * 1024 ** 3 * n / (time.perf_counter() - t0) / 1e9


