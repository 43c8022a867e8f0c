"""Summaries of training probe curves for Figures 4, 5, 6 and 8 (Sec. 5, App. E).

Every function reads probe rows (one list of rows per seed, as `numerics.training.train` and
`popgrad train --json`'s `per_seed` hold them) and returns per-seed numbers; `mean_se` and
`paired` turn them into mean ± standard error across seeds. The claims of
`popgrad.claims.paper_figures` and the figure script `docs/results/paper_figures_plots.py` use
the same summaries, so the documented numbers and the claims' numbers are the same function of
the same rows.
"""

from __future__ import annotations

import math

import numpy as np


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error (ddof 1) across seeds."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


def paired(a, b) -> tuple[float, float]:
    """Mean ± SE across seeds of a - b (same seeds: same embeddings and initial weights)."""
    return mean_se(np.subtract(a, b))


def auc(rows: list[dict], key: str, until: int | None = None) -> float:
    """Mean of a probe over the probe steps 0 < step <= until (area under its curve / duration): a speed."""
    return float(np.mean([r[key] for r in rows if 0 < r["step"] <= (until if until is not None else r["step"])]))


def at(rows: list[dict], key: str, step: int) -> float:
    """The probe at the first probe step >= step."""
    return float(next(r[key] for r in rows if r["step"] >= step))


def end(rows: list[dict], key: str, last: int = 5) -> float:
    """Mean of a probe over the last `last` probe steps (smooths the one-batch noise of accuracies)."""
    return float(np.mean([r[key] for r in rows[-last:]]))


def drop_fraction(rows: list[dict], key: str, step: int, last: int = 5) -> float:
    """Figure 4 (left): share of a loss's total drop done by `step`: (L(0) - L(step)) / (L(0) - L(end))."""
    start, final = rows[0][key], end(rows, key, last)
    return (start - at(rows, key, step)) / (start - final)


def rise_fraction(rows: list[dict], key: str, step: int, last: int = 5) -> float:
    """Share of a probe's total rise done by `step`: (p(step) - p(0)) / (p(end) - p(0))."""
    start, final = rows[0][key], end(rows, key, last)
    return (at(rows, key, step) - start) / (final - start)


def rise_after_min(rows: list[dict], key: str, last: int = 5) -> float:
    """Figure 4 (right): how far a probe that should fall (KL (10)) climbs back: end - min over steps."""
    return end(rows, key, last) - min(r[key] for r in rows)


def fall_after_max(rows: list[dict], key: str, last: int = 5) -> float:
    """Figure 4 (right): how far a recall probe falls back from its best value: max over steps - end."""
    return max(r[key] for r in rows) - end(rows, key, last)


def needed_wk2(rows: list[dict]) -> str:
    """The W_K^2 probe of Figure 5: on the trigger set Q for fixed triggers, on all tokens for random ones."""
    return "code_W_K2_Q" if "code_W_K2_Q" in rows[0] else "code_W_K2"


def tuned_eta(runs_by_eta: dict, key: str = "recall_W_O2", until: int | None = None) -> float:
    """Figure 8 (tuned): the step size with the largest mean (over seeds) area under `key`'s curve.

    runs_by_eta: {eta: [rows per seed]}. The choice is made on the same seeds that are then
    reported (a selection effect of at most the spread between step sizes)."""
    return max(runs_by_eta, key=lambda e: np.mean([auc(r, key, until) for r in runs_by_eta[e]]))


def kl_uniform(pi_b) -> float:
    """KL (10) of a uniform predictor, (1/N) sum_k KL(pi_b(.|k) || U) = (1/N) sum_k sum_j pi_b ln(N pi_b), from the counts."""
    p = np.asarray(pi_b, dtype=float)
    N = p.shape[1]
    safe = np.where(p > 0, p, 1.0)
    return float((p * np.log(N * safe)).sum(1).mean())


def bigram_entropy(pi_u, pi_b) -> float:
    """sum_k pi_u(k) H(pi_b(.|k)): the global loss of the exact bigram predictor on bigram tokens (nats)."""
    p = np.asarray(pi_b, dtype=float)
    safe = np.where(p > 0, p, 1.0)
    return float(np.asarray(pi_u, dtype=float) @ -(p * np.log(safe)).sum(1))
