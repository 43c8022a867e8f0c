"""Vectorized batch samplers for data models C and D (SPEC §2; paper Section 3, App. B.3).

No Python loop over tokens or sequences: a handful of tensor ops per position, vectorized over
the batch. Positions are code positions 0..T-1. Model D returns int64 tokens; model C returns
int32 tokens drawn from alias tables with integer uniforms (`sample_model_c`, streamed in
fixed-size chunks by `stream_model_c`). Deterministic per seed on a given device.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from popgrad.data import BigramTriggerModel, SecondOccurrenceModel
from popgrad.device import resolve_device
from popgrad.errors import PopgradError, memory_budget, positive_int


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
CHUNK = 512   # sequences drawn per generator call by `stream_model_c` (fixed, so prefixes agree)


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
    """

    thr: torch.Tensor    # (2 (R+N) N',) int32
    token: torch.Tensor  # (2 (R+N) N',) int32
    rows: int
    N: int
    width: int           # N'
    bits: int


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
    return AliasTables(torch.as_tensor(thr2.ravel(), dtype=torch.int32, device=dev),
                       torch.as_tensor(token.ravel(), dtype=torch.int32, device=dev), R, N, width, bits)


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


def sample_triggers(sampler: ModelCSampler, batch: int, gen: torch.Generator, bits: UniformBits | None = None):
    """Triggers (B, K) and outputs (B, K) of model C, int64.

    Random triggers: K successive draws from pi_q without replacement (each draw from pi_q
    restricted to the tokens not drawn yet), done by rejection: alias draws from pi_q, redrawn
    where they repeat an earlier trigger; rows still unfinished after a few rounds fall back
    to the exponential race (the K largest log(U_i) / pi_q(i)). Fixed triggers: the set Q.
    Outputs o_k ~ pi_o(.|q_k) with replacement (alias draws).
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
    """(B, K) int64: K successive draws from pi_q without replacement (see sample_triggers)."""
    K, tab, dev = sampler.model.K, sampler.trigger, sampler.device
    q = torch.full((batch, K), -1, dtype=torch.int64, device=dev)
    todo = torch.arange(batch, device=dev)
    for k in range(K):
        rows = todo
        for _ in range(rounds):
            u = bits(rows.numel())
            draw = _draw(tab, torch.bitwise_right_shift(u, tab.bits).mul_(2), u, torch.empty_like(u)).long()
            repeat = (q[rows, :k] == draw[:, None]).any(1)
            q[rows[~repeat], k] = draw[~repeat]
            rows = rows[repeat]
            if rows.numel() == 0:
                break
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
    six tensor ops over the batch each: a per-sequence row map sends a trigger to the
    deterministic alias row of its output and every other token to its bigram row. `out` is an
    optional (T, B) int32 buffer; z is returned as its transpose (a view).
    """
    B = positive_int("batch", batch)
    m, dev, tab = sampler.model, sampler.device, sampler.bigram
    if gen.device.type != dev.type:
        raise PopgradError(f"generator on {gen.device} but sampler on {dev}")
    N, T, itype = m.N, m.T, torch.int32
    memory_budget("model C batch", (3 * T + 2 * N) * B / 2)                 # int32 buffers
    bits = UniformBits(gen)
    q, o = sample_triggers(sampler, B, gen, bits)
    rowmap = torch.arange(N, dtype=itype, device=dev).repeat(B, 1)           # (B, N) table rows
    rowmap.scatter_(1, q, (N + o).to(itype))
    rowmap = (rowmap * (2 * tab.width)).view(-1)                             # (B*N,) offsets 2 r N'
    base = torch.arange(B, dtype=itype, device=dev) * N                      # (B,)
    u = bits(T, B)                                                           # (T, B)
    col2 = torch.bitwise_right_shift(u, tab.bits).mul_(2)                    # (T, B) 2 j
    z = out if out is not None else torch.empty((T, B), dtype=itype, device=dev)
    _draw(sampler.start, col2[0].clone(), u[0], z[0])
    for t in range(1, T):
        idx = rowmap.index_select(0, base + z[t - 1]).add_(col2[t])
        _draw(tab, idx, u[t], z[t])
    return z.t(), q, o


def stream_model_c(sampler: ModelCSampler, sequences: int, seed: int, chunk: int = CHUNK):
    """Yield (z (b, T), q, o) chunks totalling `sequences` sequences, deterministic per (seed,
    device): chunks are always drawn whole, so the first n sequences do not depend on how many
    are asked for. z is a view of a reused buffer: use it before asking for the next chunk."""
    n = positive_int("sequences", sequences)
    chunk = positive_int("chunk", chunk)
    gen = make_generator(seed, sampler.device)
    buf = torch.empty((sampler.model.T, chunk), dtype=torch.int32, device=sampler.device)
    done = 0
    while done < n:
        z, q, o = sample_model_c(sampler, chunk, gen, out=buf)
        take = min(chunk, n - done)
        yield z[:take], q[:take], o[:take]
        done += take


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
