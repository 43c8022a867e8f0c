"""Vectorized batch samplers for data models C and D (SPEC §2; paper Section 3, App. B.3).

No Python loop over tokens or sequences: one tensor op per position at most. Tokens are
int64 tensors (B, T) on the generator's device; positions are code positions 0..T-1.
"""

from __future__ import annotations

import torch

from popgrad.data import SecondOccurrenceModel
from popgrad.device import resolve_device
from popgrad.errors import positive_int


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
