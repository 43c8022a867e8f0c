"""Vectorized batch samplers for data models C and D (SPEC §2; paper Section 3, App. B.3).

No Python loop over tokens or sequences: a handful of tensor ops per position, vectorized over
the batch (on CPU the model-C positions loop runs compiled where a C compiler exists, see
`popgrad.numerics.ckernel`: same arithmetic, same sequences). Positions are code positions
0..T-1. Model D returns int64 tokens; model C returns int32 tokens drawn from alias tables with
integer uniforms. Deterministic per seed on a given device.

Public API
----------
Batches of any size, as views of large blocks (what every consumer should use)::

    from popgrad.numerics.samplers import model_c_batches, model_d_batches
    draw = model_c_batches(model, seed=0, device="auto")   # model: BigramTriggerModel (or a ModelCSampler)
    z, q, o = draw.next(512)     # z (512, T) int32, q, o (512, K) int64: views, valid until the next call
    z, q, o = draw.next(32)      # the next 32 sequences of the same stream
    for z, q, o in draw.stream(10_000, batch=512): ...    # 10_000 sequences in batches of <= 512
    z, y, q, i_q = model_d_batches(model_d, seed=0).next(n)

Training: build `draw` once, then `z, q, o = draw.next(batch_size)` each step (any size, it may
change between steps); `z.long()` (a copy) for embedding look-ups.

`BlockSampler` fills blocks of `block` sequences (default `default_block(T, N, device)`: about
2^21 tokens on CPU, sized for cache, 2^24 on CUDA) with one `sample_model_c` call each and hands
out consecutive slices of them. Invariant (tested): the stream of sequences is fixed by (seed,
block, device) alone, so the same seed gives the same sequences whatever the batch sizes asked
for, in any mix; a different block size gives a different (equally distributed) stream. A batch
is a view into the sampler's buffer and is overwritten by a later call that refills it: use it
(or `.clone()` it) before the next call. The first batch after a refill pays for the whole block
(`popgrad bench` reports tokens/s amortized over whole blocks, and that first-batch latency).

One-shot draws (one generator call, the batch is the block)::

    sampler = model_c_sampler(model, device)          # alias tables, build once
    z, q, o = sample_model_c(sampler, batch, make_generator(seed, device))
    z, o, q, i_q = sample_model_d(model_d, batch, make_generator(seed, device))

`stream_model_c(sampler, sequences, seed, chunk)` is `model_c_batches(sampler, seed).stream(
sequences, chunk)`, kept for older callers.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from popgrad.data import BigramTriggerModel, NoisyRecallModel, SecondOccurrenceModel
from popgrad.device import resolve_device
from popgrad.errors import PopgradError, memory_budget, positive_int
from popgrad.numerics.ckernel import first_distinct, positions_kernel, run_positions

BLOCK_TOKENS = {"cpu": 2 ** 21, "cuda": 2 ** 24}   # tokens per block (default_block)
MAX_BLOCK = {"cpu": 2 ** 14, "cuda": 2 ** 17}       # sequences per block at most
ROWMAP_ENTRIES = 2 ** 22                              # block x N, the per-sequence row maps


def make_generator(seed: int, device="cpu") -> torch.Generator:
    """A torch.Generator on `device` seeded with `seed` (results are deterministic per device)."""
    dev = resolve_device(device)
    return torch.Generator(device=dev).manual_seed(positive_int("seed", seed, minimum=0))


def sample_model_d(model: SecondOccurrenceModel, batch: int, gen: torch.Generator):
    """Draw `batch` sequences of model D. Returns (z (B, T) int64, y (B,), q (B,), i_q (B,)).

    q, o i.i.d. uniform; i_q = T-2 if o = q else uniform on {0..T-3} (code positions); free
    positions uniform on [N] minus {q} (draw r in 0..N-2 and skip q: r + (r >= q)).
    """
    B = positive_int("batch", batch)
    N, T = model.N, model.T
    memory_budget(f"model D batch of {B} sequences of length T={T}", 2.0 * B * T)
    dev = gen.device
    q = torch.randint(N, (B,), generator=gen, device=dev)
    o = torch.randint(N, (B,), generator=gen, device=dev)
    iq = torch.randint(T - 2, (B,), generator=gen, device=dev)
    iq = torch.where(o == q, torch.full_like(iq, T - 2), iq)
    r = torch.randint(N - 1, (B, T), generator=gen, device=dev)
    z = r + (r >= q[:, None]).long()
    rows = torch.arange(B, device=dev)
    z[rows, iq] = q
    z[rows, iq + 1] = o
    z[:, T - 1] = q
    return z, o, q, iq


# ----------------------------------------------------------------------------- model C
CHUNK = 512   # default batch handed out by `stream_model_c` / `BlockSampler.stream`


@dataclass(frozen=True)
class AliasTables:
    """Walker/Vose alias tables of the rows of a stochastic matrix, on integer uniforms.

    Rows are padded with zeros to N' = 2^ceil(log2 N) columns (a zero column always yields
    its alias), so that a draw takes one integer uniform u in [0, 2^31): column j = u >> bits
    (bits = 31 - log2 N'), and the token is j if u < thr[r, j] = j 2^bits + round(prob[r, j]
    2^bits), else alias[r, j] (probabilities exact up to 2^-bits, 2^-24 for N = 65). Rows R + v
    (v in [N]) have prob 0 and alias v: they always give v, which is how a trigger's fixed
    output is drawn with the same lookups.
    Stored interleaved for one index per draw: entry 2i of `thr` and `token` belongs to flat
    cell i = r * N + j, `token[2i] = j`, `token[2i + 1] = alias`; `thr[2i + 1]` is unused.
    `below` = thr - 1: the hot loop picks the alias with idx -= (below[idx] - u) >> 31 (the sign
    bit of thr - 1 - u, which lies in [-2^31, 2^31 - 2], is set exactly when u >= thr).
    """

    thr: torch.Tensor    # (2 (R+N) N',) int32
    token: torch.Tensor  # (2 (R+N) N',) int32
    rows: int
    N: int
    width: int           # N'
    bits: int
    below: torch.Tensor | None = None   # thr - 1, int32


class UniformBits:
    """A source of int32 uniforms on [0, 2^31) seeded by one draw of a torch generator.

    On CPU the bits come from numpy's SFC64 (several times faster than torch's CPU generator);
    on CUDA from the torch generator itself. Deterministic per generator state and device.
    """

    def __init__(self, gen: torch.Generator):
        self.gen = gen
        self.bitgen = None
        if gen.device.type == "cpu":
            self.bitgen = np.random.SFC64(int(torch.randint(2 ** 62, (1,), generator=gen)))

    def __call__(self, *shape: int) -> torch.Tensor:
        if self.bitgen is None:
            return torch.randint(2 ** 31 - 1, shape, generator=self.gen, dtype=torch.int32, device=self.gen.device)
        n = int(np.prod(shape))
        raw = self.bitgen.random_raw((n + 1) // 2)                          # uint64
        return torch.from_numpy(raw.view(np.int32)[:n].reshape(shape)).bitwise_and_(0x7FFFFFFF)


def uniform_bits(T: int, B: int, gen: torch.Generator) -> torch.Tensor:
    """(T, B) int32 uniforms on [0, 2^31) from `gen` (see UniformBits)."""
    return UniformBits(gen)(T, B)


def _vose_row(p: np.ndarray):
    """Vose's alias method for one probability row p (N,): returns (prob (N,), alias (N,))."""
    N = p.size
    scaled = p * N
    prob, alias = np.ones(N), np.arange(N)
    if np.allclose(scaled, 1.0, rtol=0, atol=1e-12):
        return prob, alias
    small = [i for i in range(N) if scaled[i] < 1.0]
    large = [i for i in range(N) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g
        scaled[g] = scaled[g] + scaled[s] - 1.0
        (small if scaled[g] < 1.0 else large).append(g)
    for i in small + large:      # leftovers are 1 up to rounding
        prob[i] = 1.0
    return prob, alias


def alias_tables(P: np.ndarray, device="cpu") -> AliasTables:
    """Alias tables of the rows of P (R, N), followed by N deterministic rows (see AliasTables)."""
    P = np.atleast_2d(np.asarray(P, dtype=np.float64))
    R, N = P.shape
    if N > 2 ** 20:
        raise PopgradError(f"alias tables support N <= 2^20 tokens, got N={N}")
    width = 1 << (N - 1).bit_length()                # N' = 2^ceil(log2 N)
    bits = 31 - (width.bit_length() - 1)
    Ppad = np.zeros((R, width))
    Ppad[:, :N] = P
    prob, alias = np.zeros((R + N, width)), np.empty((R + N, width), dtype=np.int64)
    for r in range(R):
        prob[r], alias[r] = _vose_row(Ppad[r])
    alias[R:] = np.arange(N)[:, None]           # deterministic rows: prob 0, alias v
    cols = np.arange(width, dtype=np.int64)[None, :]
    alias = np.where(prob >= 1.0, cols, alias)      # a kept-for-sure cell never needs its alias
    thr = (cols << bits) + np.rint(prob * 2.0 ** bits).astype(np.int64)
    thr = np.minimum(thr, 2 ** 31 - 1)              # int32; u <= 2^31 - 1 hits the (self) alias
    token = np.stack([np.broadcast_to(cols, alias.shape), alias], axis=-1)
    dev = resolve_device(device)
    thr2 = np.stack([thr, thr], axis=-1)
    thr_t = torch.as_tensor(thr2.ravel(), dtype=torch.int32, device=dev)
    return AliasTables(thr_t, torch.as_tensor(token.ravel(), dtype=torch.int32, device=dev), R, N, width, bits,
                       thr_t - 1)


@dataclass(frozen=True)
class ModelCSampler:
    """Precomputed tables of one model C on one device (build once, sample many batches)."""

    model: BigramTriggerModel
    bigram: AliasTables          # rows pi_b(.|i), then deterministic rows
    start: AliasTables           # one row pi_u, then deterministic rows
    outputs: AliasTables         # rows pi_o(.|q)
    trigger: AliasTables | None  # one row pi_q, for random triggers
    pi_q: torch.Tensor | None    # (N,) for random triggers
    device: torch.device


def model_c_sampler(model: BigramTriggerModel, device="auto") -> ModelCSampler:
    """Build the alias tables of model C (Section 3) on `device` ('auto' = CUDA when present)."""
    if not isinstance(model, BigramTriggerModel):
        raise PopgradError(f"model must be a BigramTriggerModel, got {type(model).__name__}")
    dev = resolve_device(device)
    pi_q = None if model.pi_q is None else torch.as_tensor(model.pi_q, device=dev)
    return ModelCSampler(model, alias_tables(model.pi_b, dev), alias_tables(model.pi_u[None, :], dev),
                         alias_tables(model.pi_o, dev),
                         None if pi_q is None else alias_tables(model.pi_q[None, :], dev), pi_q, dev)


TRIGGER_DRAWS = 4    # i.i.d. draws per trigger slot in the bulk pass of `_without_replacement`


def sample_triggers(sampler: ModelCSampler, batch: int, gen: torch.Generator, bits: UniformBits | None = None):
    """Triggers (B, K) and outputs (B, K) of model C, int64.

    Random triggers: K successive draws from pi_q without replacement (see
    `_without_replacement`). Fixed triggers: the set Q. Outputs o_k ~ pi_o(.|q_k) with
    replacement (alias draws).
    """
    m, dev = sampler.model, sampler.device
    bits = UniformBits(gen) if bits is None else bits
    if m.K == 0:
        empty = torch.empty((batch, 0), dtype=torch.int64, device=dev)
        return empty, empty
    if m.random_triggers:
        q = _without_replacement(sampler, batch, gen, bits)
    else:
        q = torch.as_tensor(m.triggers, device=dev).expand(batch, m.K).contiguous()
    tab = sampler.outputs
    u = bits(batch * m.K)
    idx = (q.reshape(-1).to(u.dtype) * tab.width + torch.bitwise_right_shift(u, tab.bits)) * 2
    o = _draw(tab, idx, u, torch.empty_like(u))
    return q, o.view(batch, m.K).long()


def _without_replacement(sampler: ModelCSampler, batch: int, gen: torch.Generator, bits: UniformBits,
                         rounds: int = 16):
    """(B, K) int64: K successive draws from pi_q without replacement.

    Successive sampling without replacement is the sequence of first occurrences in i.i.d.
    draws from pi_q (a repeat is redrawn, i.e. drawn from pi_q restricted to the tokens not
    drawn yet). Bulk pass: M = TRIGGER_DRAWS K i.i.d. alias draws per row at once; a draw is
    kept if no earlier draw of its row equals it, and the first K kept fill the row. Rows with
    fewer than K distinct draws continue, slot by slot, with further rejection rounds, and rows
    still unfinished after `rounds` of those fall back to the exponential race (the largest
    log(U_i) / pi_q(i) over the tokens not drawn yet). Every path draws from the same law.
    """
    K, tab, dev = sampler.model.K, sampler.trigger, sampler.device
    M = TRIGGER_DRAWS * K
    u = bits(M * batch)
    c = _draw(tab, torch.bitwise_right_shift(u, tab.bits).mul_(2), u, torch.empty_like(u)).view(M, batch).long()
    q = torch.full((batch, K), -1, dtype=torch.int64, device=dev)
    if dev.type != "cpu" or not first_distinct(c, q):                               # torch version of the same
        fresh = torch.ones(batch * sampler.model.N, dtype=torch.int32, device=dev)  # (B N,) 1 = not drawn yet
        key = c + torch.arange(batch, device=dev) * sampler.model.N                   # (M, B) row b, token c
        count = torch.zeros(batch, dtype=torch.int32, device=dev)                     # distinct so far
        slot = torch.empty((M, batch), dtype=torch.int32, device=dev)
        for i in range(M):                                # slot = count - 1 at a first occurrence, else >= K
            first = fresh.index_select(0, key[i])                                     # (B,) 1 / 0
            fresh.index_fill_(0, key[i], 0)
            torch.sub(count.add_(first), K + 1, out=slot[i]).mul_(first).add_(K)
        slot = slot.clamp_(max=K).long()                                              # K = discard row
        q = torch.full((K + 1, batch), -1, dtype=torch.int64, device=dev).scatter_(0, slot, c)[:K].t().contiguous()
    todo = torch.nonzero(q[:, K - 1] < 0).squeeze(1)                                  # rows short of K
    for k in range(K):
        if todo.numel() == 0:
            break
        rows = todo[q[todo, k] < 0]
        for _ in range(rounds):
            if rows.numel() == 0:
                break
            u = bits(rows.numel())
            draw = _draw(tab, torch.bitwise_right_shift(u, tab.bits).mul_(2), u, torch.empty_like(u)).long()
            repeat = (q[rows, :k] == draw[:, None]).any(1)
            q[rows[~repeat], k] = draw[~repeat]
            rows = rows[repeat]
        if rows.numel():                                                     # rare: exponential race
            keys = torch.rand((rows.numel(), sampler.model.N), generator=gen, dtype=torch.float64, device=dev)
            keys = keys.log_().div_(sampler.pi_q)
            if k:
                keys.scatter_(1, q[rows, :k], -torch.inf)
            q[rows, k] = keys.argmax(1)
    return q


def _draw(table: AliasTables, idx: torch.Tensor, u: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """One alias draw per entry, in place: idx (B,) = 2 (row N + column), u (B,) integer uniforms."""
    idx.add_(torch.ge(u, table.thr.index_select(0, idx)))      # 2i + 1 picks the alias
    return torch.index_select(table.token, 0, idx, out=out)


def sample_model_c(sampler: ModelCSampler, batch: int, gen: torch.Generator, out: torch.Tensor | None = None):
    """Draw `batch` sequences of model C (Section 3). Returns (z (B, T) int32, q (B, K), o (B, K)).

    z_1 ~ pi_u; z_t = o_k if z_{t-1} = q_k, else z_t ~ pi_b(.|z_{t-1}). One pass over positions,
    eight in-place tensor ops over the batch each: a per-sequence row map sends a trigger to the
    deterministic alias row of its output and every other token to its bigram row, then one
    alias draw (see AliasTables.below). `out` is an optional (T, B) int32 buffer whose rows are
    contiguous; z is returned as its transpose (a view). On CPU, where a C compiler exists, the
    positions loop runs compiled (`popgrad.numerics.ckernel`: same arithmetic, same sequences)
    on torch.get_num_threads() threads, and the remaining tensor ops on one thread.
    """
    B = positive_int("batch", batch)
    m, dev = sampler.model, sampler.device
    if gen.device.type != dev.type:
        raise PopgradError(f"generator on {gen.device} but sampler on {dev}")
    memory_budget("model C batch", (3 * m.T + 2 * m.N) * B / 2)             # int32 buffers
    kernel = positions_kernel() if dev.type == "cpu" else None
    threads = torch.get_num_threads()
    with cpu_threads(dev, 1 if kernel is not None else threads):            # small ops: no OpenMP stalls
        return _sample_model_c(sampler, B, gen, out, kernel, threads)


def _sample_model_c(sampler, B, gen, out, kernel, threads):
    """Body of `sample_model_c` (validated arguments; `kernel` None = the torch positions loop)."""
    m, dev, tab = sampler.model, sampler.device, sampler.bigram
    N, T, itype = m.N, m.T, torch.int32
    bits = UniformBits(gen)
    q, o = sample_triggers(sampler, B, gen, bits)
    rowmap = torch.arange(N, dtype=itype, device=dev).repeat(B, 1)           # (B, N) table rows
    rowmap.scatter_(1, q, (N + o).to(itype))
    rowmap = (rowmap * (2 * tab.width)).view(-1)                             # (B*N,) offsets 2 r N'
    u = bits(T, B)                                                           # (T, B)
    z = out if out is not None else torch.empty((T, B), dtype=itype, device=dev)
    _draw(sampler.start, torch.bitwise_right_shift(u[0], tab.bits).mul_(2), u[0], z[0])
    if kernel is not None:                                                   # same arithmetic, fused in C
        run_positions(kernel, z, u, rowmap, tab.below, tab.token, N, tab.bits, threads)
        return z.t(), q, o
    col2 = torch.bitwise_right_shift(u, tab.bits).mul_(2)                    # (T, B) 2 j
    below, token = tab.below, tab.token
    base = torch.arange(B, dtype=itype, device=dev) * N                      # (B,)
    ridx, idx, sign = (torch.empty(B, dtype=itype, device=dev) for _ in range(3))
    for t in range(1, T):
        torch.add(base, z[t - 1], out=ridx)                                  # (B,) b N + z_{t-1}
        torch.index_select(rowmap, 0, ridx, out=idx).add_(col2[t])           # 2 (row N' + column)
        torch.index_select(below, 0, idx, out=sign).sub_(u[t]).bitwise_right_shift_(31)
        torch.index_select(token, 0, idx.sub_(sign), out=z[t])               # -1 (alias) or 0
    return z.t(), q, o


# ----------------------------------------------------------------------------- block sampler
def default_block(T: int, N: int = 1, device="cpu") -> int:
    """Sequences per block: about BLOCK_TOKENS[device] tokens (2^21 on CPU: the int32 block, its
    uniforms and the row maps stay near the caches; 2^24 on CUDA, where per-position launch
    overhead dominates), a power of two (so batches of 32, 512, 8192 tile it), at most MAX_BLOCK
    and at most ROWMAP_ENTRIES / N, at least 1."""
    T, N = positive_int("T", T), positive_int("N", N)
    kind = "cuda" if resolve_device(device).type == "cuda" else "cpu"
    n = min(BLOCK_TOKENS[kind] // T, MAX_BLOCK[kind], ROWMAP_ENTRIES // N)
    return 1 << max(n, 1).bit_length() - 1


class BlockSampler:
    """Batches of any size, handed out as views of blocks of `block` sequences drawn whole.

    `fill(gen, dest)` draws len(dest[0]) sequences into the tuple of views `dest` (batch
    dimension first). `fields` = ((tail shape, dtype, batch_last), ...) describes the storage:
    batch_last stores a field as (*tail, capacity) so that e.g. z (B, T) is the transpose of a
    (T, B) buffer whose rows the sampler writes contiguously. Blocks are drawn in order from one
    generator, so the stream depends on (seed, block, device) only, not on the batch sizes.
    """

    def __init__(self, fill, fields, block: int, gen: torch.Generator):
        self._fill, self._fields = fill, tuple(fields)
        self.block = positive_int("block", block)
        self.gen = gen
        self._store: list[torch.Tensor] | None = None
        self._cap = self._pos = self._end = 0
        self.blocks_drawn = 0
        self.sequences_out = 0

    def _views(self, lo: int, hi: int, store=None):
        store = self._store if store is None else store
        return tuple(s[..., lo:hi].movedim(-1, 0) if last else s[lo:hi]
                     for s, (_, _, last) in zip(store, self._fields))

    def _alloc(self, cap: int):
        dev = self.gen.device
        return [torch.empty((*tail, cap) if last else (cap, *tail), dtype=dtype, device=dev)
                for tail, dtype, last in self._fields]

    def _refill(self, batch: int) -> None:
        """Keep the unread tail, then append whole blocks until `batch` sequences are unread."""
        left = self._end - self._pos
        blocks = -(-(batch - left) // self.block)
        need = left + blocks * self.block
        old = self._store
        if need > self._cap:                        # first time: exact; after a carried tail: room for one
            self._cap = need if old is None else max(need, self.block + batch - 1)
            self._store = self._alloc(self._cap)
        if left:
            src = [v.clone() for v in self._views(self._pos, self._end, old)]   # may overlap the target
            for dst, v in zip(self._views(0, left), src):
                dst.copy_(v)
        for i in range(blocks):
            lo = left + i * self.block
            self._fill(self.gen, self._views(lo, lo + self.block))
            self.blocks_drawn += 1
        self._pos, self._end = 0, need

    def next(self, batch: int):
        """The next `batch` sequences of the stream: a tuple of views (batch dimension first),
        valid until the next call that refills (use or clone them before asking again)."""
        b = positive_int("batch", batch)
        if self._end - self._pos < b:
            self._refill(b)
        lo = self._pos
        self._pos += b
        self.sequences_out += b
        return self._views(lo, lo + b)

    def stream(self, sequences: int, batch: int = CHUNK):
        """Yield batches of `batch` sequences (the last one shorter) totalling `sequences`."""
        n, b = positive_int("sequences", sequences), positive_int("batch", batch)
        done = 0
        while done < n:
            take = min(b, n - done)
            yield self.next(take)
            done += take


def model_c_batches(model, seed: int = 0, block: int | None = None, device="auto") -> BlockSampler:
    """A BlockSampler of model C: `.next(B)` -> (z (B, T) int32, q (B, K) int64, o (B, K) int64).

    `model` is a BigramTriggerModel (tables built on `device`) or a ModelCSampler (its device
    is used). Deterministic per (seed, block, device); block defaults to `default_block`.
    """
    sampler = model if isinstance(model, ModelCSampler) else model_c_sampler(model, device)
    m = sampler.model
    block = default_block(m.T, m.N, sampler.device) if block is None else positive_int("block", block)
    memory_budget(f"model C block of {block} sequences", (3 * m.T + 2 * m.N) * block / 2)

    def fill(gen, dest):
        z, q, o = dest
        _, qq, oo = sample_model_c(sampler, z.shape[0], gen, out=z.t())
        q.copy_(qq)
        o.copy_(oo)

    fields = (((m.T,), torch.int32, True), ((m.K,), torch.int64, False), ((m.K,), torch.int64, False))
    return BlockSampler(fill, fields, block, make_generator(seed, sampler.device))


def model_d_batches(model: SecondOccurrenceModel, seed: int = 0, block: int | None = None,
                    device="auto") -> BlockSampler:
    """A BlockSampler of model D: `.next(B)` -> (z (B, T) int64, y (B,), q (B,), i_q (B,)), as
    `sample_model_d` returns them. Deterministic per (seed, block, device)."""
    if not isinstance(model, SecondOccurrenceModel):
        raise PopgradError(f"model must be a SecondOccurrenceModel, got {type(model).__name__}")
    dev = resolve_device(device)
    block = default_block(model.T, 1, dev) if block is None else positive_int("block", block)
    memory_budget(f"model D block of {block} sequences of length T={model.T}", 2.0 * block * model.T)

    def fill(gen, dest):
        for d, v in zip(dest, sample_model_d(model, dest[0].shape[0], gen)):
            d.copy_(v)

    fields = (((model.T,), torch.int64, False),) + (((), torch.int64, False),) * 3
    return BlockSampler(fill, fields, block, make_generator(seed, dev))


def stream_model_c(sampler: ModelCSampler, sequences: int, seed: int, chunk: int = CHUNK):
    """Yield (z (b, T), q, o) batches of `chunk` sequences (the last one shorter) totalling
    `sequences`: `model_c_batches(sampler, seed).stream(sequences, chunk)`. The sequences depend
    on (seed, device) only, not on `chunk` or `sequences`; z is a view of a reused buffer: use it
    before asking for the next batch."""
    n = positive_int("sequences", sequences)
    chunk = positive_int("chunk", chunk)
    return model_c_batches(sampler, seed).stream(n, chunk)



@contextmanager
def cpu_threads(device, n: int = 1):
    """Run the block with `n` torch CPU threads when `device` is the CPU (restored after).

    The Monte-Carlo path is many small tensor ops, where OpenMP only adds synchronisation and
    stalls badly when the cores are shared; one thread is faster on a busy 2-core machine."""
    if resolve_device(device).type != "cpu" or torch.get_num_threads() == n:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def sample_model_e(model: NoisyRecallModel, batch: int, gen: torch.Generator):
    """Model E (SPEC §7, noisy in-context recall): (z (B, T) int64 visible tokens, ybar (B,) int64).

    One vectorized step per position: the hidden token by inverse CDF of pi_u / pi_b(.|h)
    (ybar after the trigger), then the noise token N in place of it w.p. eps when the previous
    hidden token is the trigger. Deterministic per generator state.
    """
    if not isinstance(model, NoisyRecallModel):
        raise PopgradError(f"model must be a NoisyRecallModel, got {type(model).__name__}")
    B, T, N = positive_int("batch", batch), model.T, model.N
    memory_budget(f"model E batch of {B} sequences of length T={T}", 4.0 * B * T + 1.0 * B * N)
    dev = gen.device
    cu = torch.as_tensor(np.cumsum(model.pi_u), dtype=torch.float64, device=dev)
    cb = torch.as_tensor(np.cumsum(model.pi_b, axis=1), dtype=torch.float64, device=dev)  # (N, N)
    outs = torch.as_tensor(model.outputs, device=dev)
    ybar = outs[torch.randint(outs.numel(), (B,), generator=gen, device=dev)]
    u = torch.rand((T, B), generator=gen, dtype=torch.float64, device=dev)  # position-major: rows contiguous
    v = torch.rand((T, B), generator=gen, dtype=torch.float64, device=dev)
    z = torch.empty((T, B), dtype=torch.int64, device=dev)
    h = torch.searchsorted(cu, u[0], right=True).clamp_(max=N - 1)
    z[0] = h
    for t in range(1, T):
        at_q = h == model.q
        nxt = torch.searchsorted(cb[h], u[t][:, None], right=True)[:, 0].clamp_(max=N - 1)
        h = torch.where(at_q, ybar, nxt)
        z[t] = torch.where(at_q & (v[t] < model.eps), N, h)
    return z.T.contiguous(), ybar
