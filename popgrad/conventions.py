"""The two conventions the paper mixes, fixed once for all of popgrad.

Positions. The paper counts positions t = 1..T. Code indexes them 0..T-1: code position `i`
is paper position `t = i + 1`, so the paper's `1/t` is `1 / (i + 1)` in code. Only this module
and docstrings mention the shift; `paper_positions(T)` gives the 1-based t as a tensor.

Key-query matrices. Eq. (2) and (7) score a query `x_t` against a key `x_s` as
`x_t^T W_K x_s` (with W_Q = I): the query sits on the LEFT. Lemmas 4 and 5 (App. B.2) write
`sigma(X^T W x_T)`, i.e. `key^T W query`, so the lemmas' `W` is `W_K^T`. popgrad stores
key-query matrices in the eq. (7) convention (query on the left). Lemma functions in
`popgrad.theory.attention` return the paper's expression literally (lemma convention); every
comparison with a target of eq. (7) goes through `lemma_to_eq7`.
"""

from __future__ import annotations

import torch


def lemma_to_eq7(W_lemma: torch.Tensor) -> torch.Tensor:
    """Convert a key-query matrix from Lemma 4/5 convention (key^T W query) to eq. (7) (query^T W key)."""
    return W_lemma.transpose(-1, -2)


def eq7_to_lemma(W_eq7: torch.Tensor) -> torch.Tensor:
    """Convert a key-query matrix from eq. (7) convention to Lemma 4/5 convention."""
    return W_eq7.transpose(-1, -2)


def paper_positions(T: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """The paper's 1-based positions t = 1..T as a tensor (code position i is t = i + 1)."""
    return torch.arange(1, T + 1, dtype=dtype, device=device)
