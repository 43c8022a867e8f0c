"""Token-space statistics of (x, y) pairs, gathered once and mapped through embeddings last.

The inputs x of App. E (Figure 9) and App. B.3.1 are averages of value-remapped embeddings,
x = (1/t) sum_{s<=t} W_V^2 w_E(z_s) = W_V^2 W_E c with c the normalized count vector of
z_{1:t}. Hence mu_k - mu = W_V^2 W_E (c_k - c) (SPEC §4 note): the sufficient statistic is,
per label k, the number of pairs n_k and the sum S_k of their count vectors (an (N, N)
table). One data pass serves every d, and a running sum serves every prefix of the batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from popgrad.errors import PopgradError, positive_int


@dataclass(frozen=True)
class ClassStats:
    """Sums of normalized count vectors per label: S (N, N) row k = sum_{pairs, y=k} c(x);
    n (N,) = number of pairs with label k. float64 / int64 on the CPU."""

    S: torch.Tensor
    n: torch.Tensor

    @property
    def N(self) -> int:
        return self.n.shape[0]

    @property
    def total(self) -> int:
        return int(self.n.sum())

    @property
    def seen(self) -> torch.Tensor:
        """(N,) bool: labels observed at least once."""
        return self.n > 0

    def __add__(self, other: "ClassStats") -> "ClassStats":
        return ClassStats(self.S + other.S, self.n + other.n)

    def class_means(self) -> torch.Tensor:
        """(N, N) row k = c_k = E[c | y = k] (zero for unseen labels)."""
        return self.S / self.n.clamp(min=1)[:, None].to(self.S.dtype)

    def mean(self) -> torch.Tensor:
        """(N,) c = E[c] over all pairs."""
        if self.total == 0:
            raise PopgradError("no in-context (x, y) pairs were observed (K = 0, T too small, or too few batches)")
        return self.S.sum(0) / self.total

    def centered_means(self) -> torch.Tensor:
        """(N, N) row k = c_k - c, token-space preimage of mu_k - mu (rows of unseen labels
        are meaningless; use `seen`)."""
        return self.class_means() - self.mean()[None, :]


def empty_stats(N: int) -> ClassStats:
    N = positive_int("N", N)
    return ClassStats(torch.zeros((N, N), dtype=torch.float64), torch.zeros(N, dtype=torch.int64))


def prefix_counts(z: torch.Tensor, N: int) -> torch.Tensor:
    """(B, T, N) float32: entry [b, i, k] = #{s <= i : z[b, s] = k} (exact integers < 2^24)."""
    B, T = z.shape
    counts = torch.zeros((B, T, N), dtype=torch.float32, device=z.device)
    counts.scatter_(2, z.long().unsqueeze(-1), 1.0)
    return counts.cumsum_(1)


def in_context_positions(z: torch.Tensor, q: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: code positions i <= T-2 where z_i is a trigger of its sequence already seen
    at an earlier position (App. E: "z_t is a trigger token after its first occurrence")."""
    B, T = z.shape
    zl = z.long()
    is_trigger = (zl.unsqueeze(-1) == q.unsqueeze(1)).any(-1)                  # (B, T)
    occurrences = counts.gather(2, zl.unsqueeze(-1)).squeeze(-1)             # (B, T)
    mask = is_trigger & (occurrences >= 2)
    mask[:, T - 1] = False                                                   # no label z_{T+1}
    return mask


def model_c_pairs(z: torch.Tensor, q: torch.Tensor, N: int):
    """App. E pairs of a batch of model C: rows (M, N) float32 = normalized counts of z_{1:t}
    at in-context positions t (x = W_V^2 W_E row), labels y = z_{t+1} (M,), sequence ids (M,)."""
    counts = prefix_counts(z, N)                                             # (B, T, N)
    mask = in_context_positions(z, q, counts)
    b, i = mask.nonzero(as_tuple=True)                                       # (M,), (M,)
    rows = counts[b, i] / (i + 1).to(torch.float32).unsqueeze(1)             # paper t = i + 1
    return rows, z[b, i + 1].long(), b


def add_pairs(stats: ClassStats, rows: torch.Tensor, labels: torch.Tensor) -> ClassStats:
    """Add pairs (rows (M, N), labels (M,)) to `stats` (returns a new ClassStats)."""
    S = stats.S.clone()
    S.index_add_(0, labels.cpu(), rows.to(torch.float64).cpu())
    n = stats.n + torch.bincount(labels.cpu(), minlength=stats.N)
    return ClassStats(S, n)


def model_d_pairs(z: torch.Tensor, N: int) -> torch.Tensor:
    """App. B.3.1 inputs of model D in token space: (B, N) float64 normalized counts of the
    whole sequence, x = (1/T) sum_t W_V^2 w_E(z_t) at the last position."""
    B, T = z.shape
    counts = torch.zeros((B, N), dtype=torch.float64, device=z.device)
    counts.scatter_add_(1, z.long(), torch.ones(z.shape, dtype=torch.float64, device=z.device))
    return counts / T


def model_c_stats(z: torch.Tensor, q: torch.Tensor, o: torch.Tensor, N: int) -> ClassStats:
    """ClassStats of the App. E pairs of a batch of model C, without forming count vectors.

    At an in-context position t of trigger slot k the label is o_k, so with weights
    w_t = 1/t (paper t = i + 1), S[o_k, j] = sum_s 1{z_s = j} F[s, k] where
    F[s, k] = sum_{t >= s, in-context for slot k} w_t: a reverse cumulative sum over (B, T, K)
    instead of (B, T, N) prefix counts. Same result as `model_c_pairs` + `add_pairs`.
    """
    B, T = z.shape
    K = q.shape[1]
    if K == 0 or B == 0:
        return empty_stats(N)
    zl = z.long()
    slot = (zl.unsqueeze(-1) == q.unsqueeze(1)).to(torch.float64)            # (B, T, K)
    in_ctx = slot * (slot.cumsum(1) >= 2)                                    # seen before
    in_ctx[:, T - 1] = 0                                                     # no label z_{T+1}
    w = 1.0 / torch.arange(1, T + 1, dtype=torch.float64, device=z.device)   # (T,) 1/t
    F = (in_ctx * w[None, :, None]).flip(1).cumsum(1).flip(1)                # (B, T, K)
    flat = (o.unsqueeze(1) * N + zl.unsqueeze(-1)).reshape(-1)               # (B*T*K,) o_k N + z_s
    S = torch.zeros(N * N, dtype=torch.float64, device=z.device).index_add_(0, flat, F.reshape(-1))
    n = torch.zeros(N, dtype=torch.float64, device=z.device).index_add_(0, o.reshape(-1), in_ctx.sum(1).reshape(-1))
    return ClassStats(S.view(N, N).cpu(), n.round().long().cpu())
