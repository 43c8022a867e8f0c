"""Claims of the Monte-Carlo path: convergence of mu_k - mu (model D) and Figure 9's trends.

`montecarlo.mu_rate` holds the Monte-Carlo estimate of mu_k - mu on model D against the exact
value from enumerating every sequence of `SecondOccurrenceModel(N, T)`; `montecarlo.recall_trend`
measures App. E's statement that one-step recall improves with d and with more batches.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from popgrad.rates import loglog_slope
from popgrad.registry import Claim, Measurement, register
from popgrad.tolerances import MC_ATOL, MC_Z

MU_N, MU_T, MU_D = 4, 5, 16
MU_SIZES = (2 ** 10, 2 ** 12, 2 ** 14, 2 ** 16, 2 ** 18)
MU_REPLICATES = 8
RATE_BOUNDS = (-0.6, -0.4)


def exact_centered_means_d(N: int, T: int) -> torch.Tensor:
    """Exact (c_k - c) (N, N) on model D by enumeration: c = (1/T) counts of z_{1:T}, y = o."""
    from popgrad.data import SecondOccurrenceModel

    z, prob, y = SecondOccurrenceModel(N, T).enumerate()
    counts = np.stack([(z == k).sum(1) for k in range(N)], axis=1) / T       # (M, N)
    p_y = np.bincount(y, weights=prob, minlength=N)                          # (N,)
    c_k = np.stack([(prob * (y == k)) @ counts for k in range(N)]) / p_y[:, None]
    return torch.as_tensor(c_k - prob @ counts, dtype=torch.float64)


def mc_centered_means_d(N: int, T: int, n: int, seed: int, with_se: bool = True):
    """Monte-Carlo (c_k - c) (N, N) from n model-D sequences, with per-entry standard errors
    from the influence function 1{y=k}(c - c_k)/p_k - (c - mean c)."""
    from popgrad.numerics.samplers import make_generator, sample_model_d
    from popgrad.numerics.token_stats import model_d_pairs
    from popgrad.data import SecondOccurrenceModel

    z, y, _, _ = sample_model_d(SecondOccurrenceModel(N, T), n, make_generator(seed))
    c = model_d_pairs(z, N)                                                  # (n, N)
    onehot = torch.nn.functional.one_hot(y, N).to(torch.float64)             # (n, N)
    p = onehot.mean(0)                                                       # (N,)
    c_k = (onehot.T @ c) / (p[:, None] * n)                                  # (N, N)
    c_bar = c.mean(0)
    if not with_se:
        return c_k - c_bar, None
    phi = onehot.T[:, :, None] * (c[None] - c_k[:, None]) / p[:, None, None] - (c - c_bar)[None]  # (N, n, N)
    se = phi.std(dim=1) / math.sqrt(n)                                       # (N, N)
    return c_k - c_bar, se


def measure_mu_rate() -> Measurement:
    from popgrad.embeddings import make_embeddings

    exact = exact_centered_means_d(MU_N, MU_T)
    emb = make_embeddings(MU_D, MU_N, MU_T, seed=0)
    A = emb.W_V2 @ emb.W_E                                                   # (d, N)
    rms, zmax = [], 0.0
    for n in MU_SIZES:
        errs = []
        for r in range(MU_REPLICATES):
            est, se = mc_centered_means_d(MU_N, MU_T, n, seed=1000 * r + n, with_se=r == 0)
            errs.append(float(torch.linalg.norm(A @ (est - exact).T)))     # ||mu_hat_k - mu_hat - (mu_k - mu)||
            if r == 0:
                excess = (est - exact).abs() - MC_ATOL
                zmax = max(zmax, float((excess / se.clamp(min=1e-300)).max()))
        rms.append(math.sqrt(np.mean(np.square(errs))))
    slope = loglog_slope(MU_SIZES, rms)
    lo, hi = RATE_BOUNDS
    rate_excess = max(lo - slope, slope - hi, 0.0) / 0.1
    error = max(zmax / MC_Z, rate_excess + (1.0 if rate_excess > 0 else 0.0))
    return Measurement(error=error, tolerance=1.0, verdict="approx", rate=f"n^{slope:.3f}",
                       note=f"fitted slope {slope:.3f} in [{lo}, {hi}]; largest |mc - exact| = {zmax:.2f} se "
                            f"(allowed {MC_Z:g})",
                       details={"slope": slope, "max_z": zmax, "sizes": list(MU_SIZES), "rms_error": rms,
                                "N": MU_N, "T": MU_T, "d": MU_D, "replicates": MU_REPLICATES})


register(Claim(
    id="montecarlo.mu_rate",
    statement="the Monte-Carlo estimate of mu_k - mu (x = (1/T) sum_s W_V^2 w_E(z_s), y = o) on model D "
              "converges to its exact value at rate n^{-1/2}",
    where="App. B.3.1, eq. (15); App. E (Monte-Carlo estimates of mu_k, mu)",
    compared="Monte-Carlo (popgrad.numerics.samplers + token statistics) vs exact enumeration of model D (N=4, T=5)",
    kind="approx",
    tolerance=f"log-log slope of the RMS error (8 replicates, n = 2^10..2^18) in [-0.6, -0.4]; "
              f"every entry of each estimate within {MC_Z:g} standard errors",
    measure=measure_mu_rate,
    code=("popgrad.numerics.samplers.sample_model_d", "popgrad.numerics.token_stats.model_d_pairs",
          "popgrad.claims.montecarlo.exact_centered_means_d"),
))


TREND_DIMS, TREND_BATCHES, TREND_SEEDS = (16, 64, 256), (1, 4, 16), 5


def measure_recall_trend() -> Measurement:
    from popgrad.numerics.recall import build_model_c, recall_grid

    cells = recall_grid(build_model_c(), TREND_DIMS, TREND_BATCHES, TREND_SEEDS, device="cpu")
    grid = {(c.d, c.batches): c.r1_mean_se for c in cells}

    def z(a, b):                       # rise from cell a to cell b in combined standard errors
        (ma, sa), (mb, sb) = grid[a], grid[b]
        return (mb - ma) / max(math.hypot(sa, sb), 1e-3)

    steps = [((d0, b), (d1, b)) for b in TREND_BATCHES for d0, d1 in zip(TREND_DIMS, TREND_DIMS[1:])]
    steps += [((d, b0), (d, b1)) for d in TREND_DIMS for b0, b1 in zip(TREND_BATCHES, TREND_BATCHES[1:])]
    worst_drop = max(-z(a, b) for a, b in steps)
    dmin, dmax, bmin, bmax = TREND_DIMS[0], TREND_DIMS[-1], TREND_BATCHES[0], TREND_BATCHES[-1]
    rise_d = min(z((dmin, b), (dmax, b)) for b in TREND_BATCHES)
    rise_b = min(z((d, bmin), (d, bmax)) for d in TREND_DIMS)
    error = max(worst_drop / 2.0, MC_Z / max(min(rise_d, rise_b), 1e-9))
    table = {f"d={d},b={b}": round(grid[(d, b)][0], 3) for d in TREND_DIMS for b in TREND_BATCHES}
    return Measurement(error=error, tolerance=1.0, verdict="approx",
                       note=f"R_1 rises with d (smallest corner rise {rise_d:.1f} se) and with batches "
                            f"({rise_b:.1f} se); largest adjacent drop {worst_drop:.1f} se",
                       details={"rise_d_z": rise_d, "rise_batches_z": rise_b, "worst_drop_z": worst_drop, **table})


register(Claim(
    id="montecarlo.recall_trend",
    statement="one-step recall R_1 improves as the dimension d grows and as more batches are used",
    where="App. E, Figure 9",
    compared="R_1 measured on model C (Shakespeare, K=5 random triggers, uniform outputs, T=256) over "
             "d in {16, 64, 256} x batches in {1, 4, 16}, 5 seeds",
    kind="approx",
    tolerance=f"smallest-to-largest rise > {MC_Z:g} se along d (every batch count) and along batches "
              "(every d); no adjacent step drops by more than 2 se",
    measure=measure_recall_trend,
    code=("popgrad.numerics.recall.r1_recall", "popgrad.numerics.recall.recall_grid", "popgrad.numerics.samplers.sample_model_c"),
))
