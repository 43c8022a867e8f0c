"""Noisy in-context recall (model E, SPEC §7) from sampled sequences: one-step memories and their sample complexity.

From n sequences of model E, the pairs (xbar_i, y_i) at the in-context trigger positions i
(z_i = q seen before, i <= T-2; xbar_i = normalized token counts of z_0..z_i, y_i = z_{i+1})
give the empirical one-step memories of `popgrad.theory.noisy_recall` (step from zero):

    feed-forward  W_F   : column q of G_F is n_k / n - 1/V (label counts n_k at the pairs); the
                          memory maps q to argmax_k' (U U^T g)[k'] (U = W_U; identity in token
                          coordinates): "q -> noise" when that argmax is the noise token, uniquely;
    attention     W_O^2 : App. E's one-step recall R_1 on model E's pairs,
                          R_1 = mean over the outputs k of 1{k = argmax_{k' in [V]} (c_k - c)^T A^T A e_k'},
                          c_k the mean xbar of label k, c the mean over all pairs, A = W_V^2 W_E
                          (identity in token coordinates); an unseen label and ties are misses.

`sample_complexity_cell` streams sequences along a grid of n and returns the first n at which
each memory is right (inf if never within max_n). d = 0 means token coordinates (orthonormal
embeddings, the d -> infinity limit); d > 0 uses popgrad's random embeddings of the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from popgrad.cells import Cell
from popgrad.data import NoisyRecallModel, noisy_recall_model
from popgrad.embeddings import make_embeddings
from popgrad.errors import PopgradError, positive_int
from popgrad.numerics.samplers import cpu_threads, make_generator, sample_model_e
from popgrad.rates import power_law_bootstrap


@dataclass
class PairStats:
    """Running sums over in-context trigger pairs: counts n (V,), S (V, V) [label k, token j] sums of xbar."""

    n: np.ndarray
    S: np.ndarray
    sequences: int = 0

    @staticmethod
    def empty(V: int) -> "PairStats":
        return PairStats(np.zeros(V), np.zeros((V, V)))

    @property
    def pairs(self) -> int:
        return int(self.n.sum())


def in_context_pairs(z: torch.Tensor, q: int):
    """(rows (P,), positions (P,)) of the in-context trigger positions of z (B, T): z_i = q, q at an earlier position, i <= T-2."""
    is_q = z == q                                                     # (B, T)
    seen = (is_q.cumsum(1) >= 2) & is_q
    seen[:, -1] = False
    return torch.nonzero(seen, as_tuple=True)


def add_pairs(stats: PairStats, z: torch.Tensor, q: int) -> PairStats:
    """Add the pairs of a batch z (B, T) (float64 sums)."""
    V = stats.n.size
    b, i = in_context_pairs(z, q)
    if b.numel():
        T = z.shape[1]
        upto = (torch.arange(T, device=z.device)[None, :] <= i[:, None]).to(torch.float64)    # (P, T)
        counts = torch.zeros((b.numel(), V), dtype=torch.float64, device=z.device)
        counts.scatter_add_(1, z[b], upto)                                                     # (P, V)
        xbar = counts / (i[:, None] + 1).to(torch.float64)
        y = z[b, i + 1]
        S = torch.zeros((V, V), dtype=torch.float64, device=z.device).index_add_(0, y, xbar)
        stats.S += S.cpu().numpy()
        stats.n += np.bincount(y.cpu().numpy(), minlength=V)
    stats.sequences += z.shape[0]
    return stats


def ff_maps_q_to_noise(stats: PairStats, gram_U: np.ndarray | None = None) -> bool:
    """The empirical one-step W_F reads q as the noise token (unique argmax; no pair: False)."""
    n = stats.pairs
    if n == 0:
        return False
    V = stats.n.size
    g = stats.n / n - 1.0 / V
    s = g if gram_U is None else gram_U @ g
    return bool(s[V - 1] > np.delete(s, V - 1).max())


def r1_noisy(stats: PairStats, gram_A: np.ndarray | None = None, labels=None) -> float:
    """App. E's R_1 of the empirical one-step W_O^2 over the output labels (default all of [N]; argmax over all V tokens)."""
    V = stats.n.size
    lab = np.arange(V - 1) if labels is None else np.asarray(labels)
    if stats.pairs == 0:
        return 0.0
    c = stats.S.sum(0) / stats.pairs
    seen = stats.n[lab] > 0
    D = np.where(seen[:, None], stats.S[lab] / np.maximum(stats.n[lab], 1)[:, None] - c, 0.0)   # (L, V)
    sc = D if gram_A is None else D @ gram_A
    top = sc.max(1, keepdims=True)
    unique = (sc == top).sum(1) == 1
    return float(np.mean(seen & unique & (sc.argmax(1) == lab)))


def n_grid(max_n: int) -> list[int]:
    """1, 2, 3, 4, 6, 8, 12, ... up to max_n (powers of two and their 1.5 multiples, and max_n)."""
    m = positive_int("max_n", max_n)
    grid, b = {m}, 1
    while b <= m:
        grid.update(x for x in (b, b + b // 2) if x <= m)
        b *= 2
    return sorted(grid)


def grams(model: NoisyRecallModel, d: int, seed: int):
    """(U U^T, A^T A) over the V tokens at dimension d (None, None for token coordinates, d = 0)."""
    if d == 0:
        return None, None
    emb = make_embeddings(d, model.vocab_size, model.T, seed=seed, dtype="float64")
    U, A = emb.W_U.numpy(), (emb.W_V2 @ emb.W_E).numpy()
    return U @ U.T, A.T @ A


def sample_complexity_cell(N: int, T: int, eps: float, max_n: int, threshold: float, d: int, seed: int) -> dict:
    """One (N, eps, seed) of the sample-complexity sweep (a pure sweep cell).

    Streams sequences of model E (uniform pi_u, pi_b, q = 0) along `n_grid(max_n)`; returns the
    first n at which the one-step W_F maps q to the noise token ('n_ff') and at which R_1 of the
    one-step W_O^2 reaches `threshold` ('n_wo2'), the in-context pairs seen by then ('pairs_ff',
    'pairs_wo2'), inf when not reached, and R_1 at the last n streamed.
    """
    model = noisy_recall_model(N, T, eps)
    gram_U, gram_A = grams(model, d, seed)
    gen = make_generator(seed)
    stats = PairStats.empty(model.vocab_size)
    out = {"n_ff": math.inf, "n_wo2": math.inf, "pairs_ff": math.inf, "pairs_wo2": math.inf, "r1_last": 0.0}
    done = 0
    with cpu_threads("cpu"):
        for n in n_grid(max_n):
            while done < n:
                b = min(n - done, 2048)
                z, _ = sample_model_e(model, b, gen)
                add_pairs(stats, z, model.q)
                done += b
            if math.isinf(out["n_ff"]) and ff_maps_q_to_noise(stats, gram_U):
                out["n_ff"], out["pairs_ff"] = float(n), float(stats.pairs)
            r1 = r1_noisy(stats, gram_A, model.outputs)
            out["r1_last"], out["n_last"] = r1, n
            if math.isinf(out["n_wo2"]) and r1 >= threshold:
                out["n_wo2"], out["pairs_wo2"] = float(n), float(stats.pairs)
            if not (math.isinf(out["n_ff"]) or math.isinf(out["n_wo2"])):
                break
    return out


def validate_sweep(Ns, T: int, eps_values, max_n: int, threshold: float) -> None:
    """Refuse bad sweep arguments up front (PopgradError names the argument)."""
    for N in Ns:
        if N < 2:
            raise PopgradError(f"--Ns: N must be >= 2, got {N}")
    if T < 3:
        raise PopgradError(f"--T must be >= 3, got {T}")
    for e in eps_values:
        if not 0 <= e < 1:
            raise PopgradError(f"--eps: each eps must be in [0, 1), got {e}")
    if not 0 < threshold <= 1:
        raise PopgradError(f"--threshold must be in (0, 1], got {threshold}")
    positive_int("max_n", max_n)


QUANTITIES = (("W_F q->noise (sequences)", "n_ff"), ("W_F q->noise (in-context pairs)", "pairs_ff"),
              ("W_O^2 R_1 (sequences)", "n_wo2"), ("W_O^2 R_1 (in-context pairs)", "pairs_wo2"))


def sample_complexity_cells(Ns, T: int, eps_values, seeds: int, max_n: int, threshold: float, d: int, seed: int = 0):
    """The sweep cells, eps-major then N then seed."""
    return [Cell(sample_complexity_cell, {"N": N, "T": T, "eps": e, "max_n": max_n, "threshold": threshold, "d": d},
                 seed + s, label=f"eps={e} N={N} seed={seed + s}")
            for e in eps_values for N in Ns for s in range(seeds)]


def rate_table(values, Ns, eps_values, seeds: int, resamples: int = 2000, seed: int = 0):
    """Rows per (eps, N) (medians over seeds) and exponents in N of each quantity of QUANTITIES with
    percentile-bootstrap intervals (`popgrad.rates.power_law_bootstrap`, points never reached left out)."""
    rows, fits, i = [], [], 0
    for e in eps_values:
        per = {}
        for N in Ns:
            vs = values[i:i + seeds]
            i += seeds
            per[N] = vs
            med = {k: float(np.median([v[k] for v in vs])) for k in ("n_ff", "n_wo2", "pairs_ff", "pairs_wo2")}
            rows.append({"eps": e, "N": N, "n_ff_median": med["n_ff"], "n_wo2_median": med["n_wo2"],
                         "n_ff_per_seed": " ".join(_fmt(v["n_ff"]) for v in vs),
                         "n_wo2_per_seed": " ".join(_fmt(v["n_wo2"]) for v in vs),
                         "pairs_ff_median": med["pairs_ff"], "pairs_wo2_median": med["pairs_wo2"],
                         "pairs_per_sequence": med["pairs_wo2"] / med["n_wo2"] if math.isfinite(med["n_wo2"]) else math.nan})
        for quantity, key in QUANTITIES:
            fits.append(fit_exponent(e, quantity, {(N,): [v[key] for v in per[N]] for N in Ns}, resamples, seed))
    return rows, fits


def fit_exponent(e, quantity: str, samples: dict, resamples: int, seed: int) -> dict:
    """Exponent in N of the median with its 95% bootstrap interval (nan when < 2 points reached)."""
    finite = {k: v for k, v in samples.items() if math.isfinite(float(np.median(v)))}
    out = {"eps": e, "quantity": quantity, "points": len(finite)}
    if len(finite) < 2:
        return {**out, "exponent": math.nan, "lo": math.nan, "hi": math.nan, "dropped_resamples": resamples}
    point, lo, hi, dropped = power_law_bootstrap(finite, resamples=resamples, seed=seed)
    return {**out, "exponent": float(point[1]), "lo": float(lo[1]), "hi": float(hi[1]), "dropped_resamples": dropped}


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:g}"
