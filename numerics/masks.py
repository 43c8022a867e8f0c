"""Which positions a training loss and its probes read (SPEC §5).

In-context positions: code positions t <= T-2 where z_t is a trigger of its sequence seen at an
earlier position (the target is z_{t+1}); the other positions with a target are the rest, t <= T-2.
Shared by the simplified model (`numerics/training.py`), its probes and the full model.
"""

from __future__ import annotations

import torch


def in_context_mask(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: z_t is a trigger of its row (q (B, K)) seen at an earlier position; t <= T-2."""
    slot = z[:, :, None] == q[:, None, :].long()                            # (B, T, K)
    mask = (slot & (slot.cumsum(1) >= 2)).any(-1)
    mask[:, -1] = False
    return mask


def other_mask(mask: torch.Tensor, data: str) -> torch.Tensor:
    """Positions with a target that are not in-context (model C: t <= T-2; model D: t <= T-2)."""
    out = ~mask
    out[:, -1] = False
    return out
