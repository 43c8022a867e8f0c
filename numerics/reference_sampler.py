"""Reference sampler of model C: Section 3's description, one token at a time.

A plain transcription of the paper's sampling procedure with a numpy Generator and Python
loops, kept deliberately literal. It is the speed baseline of `popgrad bench` and the ground
truth of the distribution tests of the fast sampler (`tests/test_samplers.py`); nothing else
uses it.
"""

from __future__ import annotations

import numpy as np

from popgrad.data import BigramTriggerModel
from popgrad.errors import PopgradError, positive_int


def reference_sequence(model: BigramTriggerModel, rng: np.random.Generator):
    """Section 3: one sequence of model C. Returns (z (T,) int64, triggers (K,), outputs (K,))."""
    N, T, K = model.N, model.T, model.K
    # 1. triggers: K draws from pi_q without replacement (random), or the fixed set Q
    if model.random_triggers:
        triggers = rng.choice(N, size=K, replace=False, p=model.pi_q)
    else:
        triggers = np.array(model.triggers, dtype=np.int64)
    # 2. outputs: o_k ~ pi_o(.|q_k), with replacement
    outputs = np.array([rng.choice(N, p=model.pi_o[q]) for q in triggers], dtype=np.int64)
    output_of = {int(q): int(o) for q, o in zip(triggers, outputs)}
    # 3. z_1 ~ pi_u; z_t = o_k if z_{t-1} = q_k, else z_t ~ pi_b(.|z_{t-1})
    z = np.empty(T, dtype=np.int64)
    z[0] = rng.choice(N, p=model.pi_u)
    for t in range(1, T):
        prev = int(z[t - 1])
        if prev in output_of:
            z[t] = output_of[prev]
        else:
            z[t] = rng.choice(N, p=model.pi_b[prev])
    return z, np.asarray(triggers, dtype=np.int64), outputs


def reference_batch(model: BigramTriggerModel, batch: int, seed: int = 0):
    """`batch` sequences of model C, one after another. Returns (z (B, T), q (B, K), o (B, K))."""
    if not isinstance(model, BigramTriggerModel):
        raise PopgradError(f"model must be a BigramTriggerModel, got {type(model).__name__}")
    B = positive_int("batch", batch)
    rng = np.random.default_rng(positive_int("seed", seed, minimum=0))
    zs, qs, os_ = zip(*(reference_sequence(model, rng) for _ in range(B)))
    return np.stack(zs), np.stack(qs).reshape(B, model.K), np.stack(os_).reshape(B, model.K)
