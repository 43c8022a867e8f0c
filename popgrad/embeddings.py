"""Fixed random embeddings of SPEC §1 (paper Section 4.1 and 4.2).

Glossary (paper symbol -> attribute), all entries i.i.d. N(0, 1/d):
    W_E  (d, N)  input embeddings, column k is w_E(k)
    W_U  (N, d)  output embeddings, row k is w_U(k)
    P    (d, T)  positional embeddings, column i is p_t with t = i + 1 (see conventions)
    W_V1, W_O1, W_V2  (d, d)  frozen remappings; Phi_1 = W_O1 @ W_V1.
Phi_2 = W_O^2 W_V^2 involves the trained W_O^2 and is built where W_O^2 is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from popgrad.device import resolve_device, resolve_dtype
from popgrad.errors import PopgradError, memory_budget, positive_int

_DRAW_ORDER = ("W_E", "W_U", "P", "W_V1", "W_O1", "W_V2")


@dataclass(frozen=True)
class Embeddings:
    """The frozen embeddings and remappings of the simplified transformer (Sec. 4.2)."""

    W_E: torch.Tensor   # (d, N)
    W_U: torch.Tensor   # (N, d)
    P: torch.Tensor     # (d, T)
    W_V1: torch.Tensor  # (d, d)
    W_O1: torch.Tensor  # (d, d)
    W_V2: torch.Tensor  # (d, d)
    seed: int = 0

    @property
    def d(self) -> int:
        return self.W_E.shape[0]

    @property
    def N(self) -> int:
        return self.W_E.shape[1]

    @property
    def T(self) -> int:
        return self.P.shape[1]

    @property
    def Phi1(self) -> torch.Tensor:
        """Phi_1 = W_O^1 W_V^1 (d, d), the first layer's value-output remapping."""
        return self.W_O1 @ self.W_V1

    def to(self, dtype=None, device=None) -> "Embeddings":
        """The same embeddings cast to `dtype` and/or moved to `device`."""
        kw = {}
        if dtype is not None:
            kw["dtype"] = resolve_dtype(dtype)
        if device is not None:
            kw["device"] = resolve_device(device)
        return Embeddings(*(getattr(self, n).to(**kw) for n in _DRAW_ORDER), seed=self.seed)


def make_embeddings(d: int, N: int, T: int, seed: int = 0, dtype="float64",
                    device="cpu") -> Embeddings:
    """Draw W_E, W_U, P, W_V^1, W_O^1, W_V^2 with i.i.d. N(0, 1/d) entries (SPEC §1).

    The draw is done in float64 on the CPU from `torch.Generator().manual_seed(seed)` in a
    fixed order, then cast and moved, so a seed gives the same embeddings on every device
    and dtype (up to rounding).
    """
    d = positive_int("d", d)
    N = positive_int("N", N)
    T = positive_int("T", T)
    seed = positive_int("seed", seed, minimum=0)
    memory_budget(f"embeddings with d={d}, N={N}, T={T}", d * (2 * N + T + 3 * d))
    gen = torch.Generator().manual_seed(seed)
    shapes = {"W_E": (d, N), "W_U": (N, d), "P": (d, T), "W_V1": (d, d), "W_O1": (d, d), "W_V2": (d, d)}
    scale = 1.0 / math.sqrt(d)
    drawn = {n: torch.randn(shapes[n], generator=gen, dtype=torch.float64) * scale for n in _DRAW_ORDER}
    emb = Embeddings(**drawn, seed=seed)
    return emb.to(dtype=dtype, device=device)


def gaussian_vectors(n: int, d: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """n i.i.d. N(0, I/d) vectors as the columns of a (d, n) matrix (Appendix A's u_i)."""
    n = positive_int("n", n)
    d = positive_int("d", d)
    memory_budget(f"gaussian_vectors with n={n}, d={d}", n * d)
    gen = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
    return (torch.randn((d, n), generator=gen, dtype=torch.float64) / math.sqrt(d)).to(dtype)


def require_same_sizes(emb: Embeddings, N: int | None = None, T: int | None = None) -> None:
    """Raise PopgradError if the embeddings do not match a data model's N or T."""
    if N is not None and emb.N != N:
        raise PopgradError(f"embeddings have N={emb.N} tokens but the data model has N={N}")
    if T is not None and emb.T < T:
        raise PopgradError(f"embeddings have T={emb.T} positions but the data model needs T={T}")
