"""One-step recall R_1 (App. E, Figure 9) and the memory-recall probe (9), from token statistics.

Pipeline: stream model-C batches once per seed (`gather_model_c_stats`), keep the running
token-space sums at the requested batch counts, then for every d map them through that seed's
embeddings (`value_inputs`) and score. A seed changes both the data and the embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from popgrad.cells import Cell, run_with
from popgrad.corpus import count_file
from popgrad.data import BigramTriggerModel, bigram_trigger_model
from popgrad.device import resolve_device
from popgrad.embeddings import make_embeddings
from popgrad.errors import PopgradError, choice, positive_int
from popgrad.memory import memory_recall, unique_argmax_hits
from popgrad.numerics.samplers import cpu_threads, model_c_batches, model_c_sampler
from popgrad.numerics.token_stats import ClassStats, empty_stats, model_c_stats


def value_inputs(emb) -> torch.Tensor:
    """(d, N) columns W_V^2 w_E(k): the value-remapped input embeddings, so mu_k - mu = A (c_k - c)."""
    return emb.W_V2 @ emb.W_E


def r1_recall(stats: ClassStats, A: torch.Tensor) -> float:
    """App. E: R_1 = (1/N) sum_k 1{k = argmax_k' (W_V^2 w_E(k'))^T (mu_k - mu)}.

    mu_k - mu = A (c_k - c), so the scores are (c_k - c)^T A^T A e_k'. A label never seen is a
    miss; ties are misses.
    """
    D = stats.centered_means().to(A)                                         # (N, N) rows c_k - c
    scores = D @ (A.T @ A)                                                   # (N_k, N_k')
    N = stats.N
    hits = unique_argmax_hits(scores, torch.arange(N, device=A.device), stats.seen.to(A.device))
    return float(hits.sum()) / N


def one_step_wo2(stats: ClassStats, W_U: torch.Tensor, A: torch.Tensor, eta: float = 1.0,
                 weights: str = "uniform") -> torch.Tensor:
    """Eq. (15) (App. B.3.1): one gradient step on W_O^2 from zero, (d, d).

    weights='uniform' (eq. (15), p(y=k) = 1/N as the paper assumes):
        W_O^2 = (eta/N) sum_k w_U(k) (mu_k - mu)^T, over labels seen at least once;
    weights='empirical' (Lemma 2 at W = 0 with the pairs' own label frequencies):
        W_O^2 = eta sum_k w_U(k) (p(y=k) mu_k - mu/N)^T, p(y=k) mu_k = A S_k / n.
    """
    choice("weights", weights, ("uniform", "empirical"))
    n, N = stats.total, stats.N
    if n == 0:
        raise PopgradError("no in-context (x, y) pairs were observed (K = 0, T too small, or too few batches)")
    if weights == "uniform":
        D = stats.centered_means().to(A) * stats.seen.to(A)[:, None]        # (N, N) rows c_k - c
        M = A @ D.T / N                                                      # (d, N) columns
    else:
        S = stats.S.to(A)
        M = A @ (S - S.sum(0, keepdim=True) / N).T / n
    return eta * W_U.T @ M.T                                                 # (d, d)


def probe_one_step_wo2(stats: ClassStats, emb, weights: str = "uniform") -> float:
    """Probe (9) of the one-step W_O^2 against eq. (7)'s target sum_k w_U(k) (W_V^2 w_E(k))^T."""
    A = value_inputs(emb)
    W = one_step_wo2(stats, emb.W_U, A, weights=weights)
    return memory_recall(W, A, emb.W_U.T, torch.arange(stats.N, device=A.device), valid=stats.seen)


def gather_model_c_stats(model: BigramTriggerModel, batches, batch_size: int = 32, seed: int = 0,
                         device="auto") -> dict[int, ClassStats]:
    """Stream max(batches) batches of model C once and return {b: stats of the first b batches}."""
    batches = sorted({positive_int("batches", b) for b in batches})
    bs = positive_int("batch_size", batch_size)
    sampler = model_c_sampler(model, device)
    bounds = [b * bs for b in batches]                                       # in sequences
    with cpu_threads(sampler.device):
        return _gather(model, sampler, batches, bounds, seed)


def _gather(model, sampler, batches, bounds, seed) -> dict[int, ClassStats]:
    stats, out, start = empty_stats(model.N), {}, 0
    for z, q, o in model_c_batches(sampler, seed).stream(bounds[-1]):
        lo, end = start, start + z.shape[0]
        for b, hi in zip(batches, bounds):
            if lo <= hi <= end and b not in out:
                stats = stats + model_c_stats(z[lo - start:hi - start], q[lo - start:hi - start],
                                              o[lo - start:hi - start], model.N)
                out[b], lo = stats, hi
        stats = stats + model_c_stats(z[lo - start:], q[lo - start:], o[lo - start:], model.N)
        start = end
    return out


@dataclass(frozen=True)
class RecallCell:
    """R_1 and probe (9) at one (d, batches) over seeds."""

    d: int
    batches: int
    r1: tuple[float, ...]
    probe: tuple[float, ...]
    pairs: float            # mean number of (x, y) pairs used

    @staticmethod
    def _mean_se(v):
        v = np.asarray(v, dtype=np.float64)
        se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")
        return float(v.mean()), se

    @property
    def r1_mean_se(self):
        return self._mean_se(self.r1)

    @property
    def probe_mean_se(self):
        return self._mean_se(self.probe)


def recall_grid(model: BigramTriggerModel, dims, batches, seeds: int = 3, batch_size: int = 32,
                seed: int = 0, device="auto", run=None) -> list[RecallCell]:
    """Figure 9: R_1 and probe (9) for every (d, batches), over `seeds` seeds (seed + s changes
    data and embeddings). Rows ordered by d, then batches. One sweep cell per seed
    (`recall_seed_cell`), run by `run` (a popgrad.cells.Runner; None: in process)."""

    cells = recall_cells(model, dims, batches, seeds, batch_size, seed, device)
    return recall_grid_from(cells, run_with(run, cells, "recall cells"))


def recall_cells(model: BigramTriggerModel, dims, batches, seeds: int = 3, batch_size: int = 32,
                 seed: int = 0, device="auto") -> list:
    """The sweep cells of `recall_grid`: one per seed seed, seed + 1, ..., seed + seeds - 1."""
    dims = list(dict.fromkeys(positive_int("d", d) for d in dims))
    batches = sorted({positive_int("batches", b) for b in batches})
    seeds = positive_int("seeds", seeds)
    seed = positive_int("seed", seed, minimum=0)
    params = {"model": model, "dims": dims, "batches": batches, "batch_size": positive_int("batch_size", batch_size),
              "device": str(resolve_device(device))}
    return [Cell(recall_seed_cell, params, seed + s, label=f"recall seed {seed + s}") for s in range(seeds)]


def recall_grid_from(cells, values) -> list[RecallCell]:
    """Assemble `recall_grid`'s RecallCells from the per-seed results of `recall_cells` (in seed order)."""
    dims, batches = cells[0].params["dims"], cells[0].params["batches"]
    return [RecallCell(d, b, tuple(v["r1"][i][j] for v in values), tuple(v["probe"][i][j] for v in values),
                       float(np.mean([v["pairs"][j] for v in values])))
            for i, d in enumerate(dims) for j, b in enumerate(batches)]


def recall_seed_cell(model, dims, batches, batch_size, device, seed) -> dict:
    """One seed of `recall_grid` (a pure sweep cell): one data pass, then every d.

    Returns {'pairs': [per batches], 'r1': [[per batches] per d], 'probe': same}."""
    with cpu_threads(device):
        stats = gather_model_c_stats(model, batches, batch_size, seed, device)
        r1, probe = [], []
        for d in dims:
            emb = make_embeddings(d, model.N, model.T, seed=seed)
            A = value_inputs(emb)
            r1.append([r1_recall(stats[b], A) for b in batches])
            probe.append([probe_one_step_wo2(stats[b], emb) for b in batches])
    return {"pairs": [float(stats[b].total) for b in batches], "r1": r1, "probe": probe}


def build_model_c(N: int | None = None, T: int = 256, K: int = 5, triggers: str = "random",
                  outputs: str = "uniform", text: str | None = None, uniform: bool = False) -> BigramTriggerModel:
    """Model C for the recall table: tiny Shakespeare counts (N = 65) by default, counts of a
    custom `text` file, or the all-uniform bigram model when `uniform` or N != 65.

    In the uniform model 'frequent' triggers are tokens 0..K-1 and 'rare' tokens 5..4+K (all
    tokens are equally frequent); 'bigram' outputs are uniform.
    """
    choice("triggers", triggers, ("random", "frequent", "rare"))
    choice("outputs", outputs, ("uniform", "bigram"))
    T = positive_int("T", T, minimum=2)
    K = positive_int("K", K, minimum=0)
    if text is not None:
        if uniform:
            raise PopgradError("--uniform and --text exclude each other")
        counts = count_file(text)
        if N is not None and N != counts.N:
            raise PopgradError(f"N={N} but the text {text!r} has {counts.N} distinct characters")
        return bigram_trigger_model(T, K, triggers, outputs, counts=counts)
    if not uniform and (N is None or N == 65):
        return bigram_trigger_model(T, K, triggers, outputs)
    N = positive_int("N", 65 if N is None else N, minimum=2)
    if K > N:
        raise PopgradError(f"K={K} triggers exceed the vocabulary size N={N}")
    u, U = np.full(N, 1.0 / N), np.full((N, N), 1.0 / N)
    if triggers == "random":
        return BigramTriggerModel(N, T, K, u, U, U, pi_q=u)
    start = 0 if triggers == "frequent" else 5
    if start + K > N:
        raise PopgradError(f"K={K} rare triggers need N >= {start + K}")
    return BigramTriggerModel(N, T, K, u, U, U, triggers=tuple(range(start, start + K)))
