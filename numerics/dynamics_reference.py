"""The exact reference of the population dynamics, and how Monte-Carlo trajectories approach it.

At tiny sizes (N <= 4, T <= 6) model D can be enumerated (`SecondOccurrenceModel.enumerate`,
through `theorem3_mc.enumerated`), so `dynamics(..., population="enumerated")` follows the exact
population gradient. A Monte-Carlo trajectory (n fresh sequences per step, or the same n every
step) estimates each step's gradient with error ~ n^-1/2; over a fixed number of steps of a
smooth map, the distance between the two trajectories then falls like n^-1/2 too. This module
measures that distance, per n and Monte-Carlo stream, as sweep cells.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from popgrad.cells import Cell, run_with
from popgrad.data import SecondOccurrenceModel
from popgrad.embeddings import make_embeddings
from popgrad.numerics.dynamics import LAYERS, dynamics

N_EVAL = 64          # the accuracy is not used here; the smallest evaluation set keeps the steps cheap


def trajectory(model, emb, etas, kind: str, k: int, population: str, n: int = 1, seed: int = 0,
               n_eval: int = N_EVAL) -> list[dict]:
    """The matrices {layer: W} after each step 0..len(schedule) of `dynamics` (one round)."""
    return [r["_W"] for r in dynamics(model, emb, etas, k=k, kind=kind, population=population, n=n,
                                      n_eval=n_eval, seed=seed)]


def distance(W: dict, R: dict) -> float:
    """Relative distance of two sets of matrices: sqrt(sum_l |W_l - R_l|^2 / sum_l |R_l|^2) (Frobenius)."""
    num = sum(float(((W[k] - R[k]).to(torch.float64) ** 2).sum()) for k in LAYERS)
    den = sum(float((R[k].to(torch.float64) ** 2).sum()) for k in LAYERS)
    return math.sqrt(num / den)


def distance_cell(N, T, d, etas, kind, k, population, n, emb_seed, seed) -> list[float]:
    """Distance of the Monte-Carlo trajectory (stream `seed`) from the exact one after each step 1..len(schedule)."""
    model = SecondOccurrenceModel(N, T)
    emb = make_embeddings(d, N, T, seed=emb_seed, dtype="float64")
    exact = trajectory(model, emb, etas, kind, k, "enumerated")
    mc = trajectory(model, emb, etas, kind, k, population, n=n, seed=seed)
    return [distance(W, R) for W, R in zip(mc[1:], exact[1:])]


def fit_slope(ns, values) -> tuple[float, float]:
    """Least-squares slope of log(values) on log(n), and its standard error from the residuals."""
    x, y = np.log(np.asarray(ns, float)), np.log(np.asarray(values, float))
    A = np.stack([x, np.ones_like(x)], axis=1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    dof = max(len(x) - 2, 1)
    se = math.sqrt(float(resid @ resid) / dof / float(((x - x.mean()) ** 2).sum()))
    return float(coef[0]), se


def approach_to_exact(N, T, d, etas, kind, k, ns, replicates, population="mc", emb_seed=0, run=None) -> dict:
    """RMS over `replicates` Monte-Carlo streams of the distance to the exact trajectory after the last step,
    per n, and the fitted slope of log RMS on log n (expected -1/2).

    Returns {"n", "rms", "distances" (per n, per replicate, per step), "slope", "slope_se"}."""
    cells = [Cell(distance_cell, {"N": N, "T": T, "d": d, "etas": etas, "kind": kind, "k": k,
                                  "population": population, "n": n, "emb_seed": emb_seed}, seed,
                  label=f"n={n} stream {seed}")
             for n in ns for seed in range(replicates)]
    values = run_with(run, cells, desc="Monte-Carlo vs exact trajectories")
    per_n = [values[i * replicates:(i + 1) * replicates] for i in range(len(ns))]
    rms = [math.sqrt(sum(v[-1] ** 2 for v in block) / replicates) for block in per_n]
    slope, se = fit_slope(ns, rms)
    return {"n": list(ns), "rms": rms, "distances": per_n, "slope": slope, "slope_se": se}
