"""The exact reference of the population dynamics, and how Monte-Carlo trajectories approach it.

At tiny sizes (N <= 4, T <= 6) model D can be enumerated (`SecondOccurrenceModel.enumerate`,
through `theorem3_mc.enumerated`), so `dynamics(..., population="enumerated")` follows the exact
population gradient. A Monte-Carlo trajectory (n fresh sequences per step, or the same n every
step) estimates each step's gradient with error ~ n^-1/2; over a fixed number of steps of a
smooth map, the distance between the two trajectories then falls like n^-1/2 too. This module
measures that distance, per n and Monte-Carlo stream, as sweep cells; and, since a distance that
falls like n^-1/2 need not carry over to a first-passage time, the step counts themselves: the
first step at which the head's exact population accuracy reaches a threshold on the exact
trajectory (the population count) and on Monte-Carlo trajectories at each n.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from popgrad.cells import Cell, run_with
from popgrad.data import SecondOccurrenceModel
from popgrad.embeddings import make_embeddings
from popgrad.numerics import theorem3_mc as mc
from popgrad.numerics.dynamics import LAYERS, coordinates, dynamics, last_position_logits, scores

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


# ----------------------------------------------------------------------------- counts
def population_accuracy(co, W: dict, z, y, prob) -> float:
    """The head's exact accuracy at position T on model D: sum_x p(x) [argmax logits(x) = o(x)] over the
    enumerated sequences x = (z, y) with probabilities `prob` (ties go to the lowest token, as in argmax)."""
    with torch.no_grad():
        pred = last_position_logits(co, scores(co, W), z).argmax(-1)
    return float((prob * (pred == y).to(prob.dtype)).sum())


def count_cell(N, T, d, etas, kind, k, population, n, thresholds, emb_seed, seed) -> list:
    """[first step at which the exact population accuracy reaches each threshold, or None within the schedule]
    for one run: `population` "enumerated" (the exact population trajectory; n and seed unused) or
    "mc"/"fixed" (n sequences per step, stream `seed`); float64, embeddings of seed `emb_seed`."""
    model = SecondOccurrenceModel(N, T)
    emb = make_embeddings(d, N, T, seed=emb_seed, dtype="float64")
    co = coordinates(emb)
    z, y, prob = mc.enumerated(model)
    first = {th: None for th in thresholds}
    for r in dynamics(model, emb, etas, k=k, kind=kind, population=population, n=n, n_eval=N_EVAL, seed=seed):
        acc = population_accuracy(co, r["_W"], z, y, prob)
        for th in thresholds:
            if first[th] is None and acc >= th:
                first[th] = r["step"]
        if first[max(thresholds)] is not None:
            break
    return [first[th] for th in thresholds]


def close_counts(count: int, population_count: int) -> bool:
    """|count - population count| <= max(2, 5 % of the population count): a step count that meets it."""
    return abs(count - population_count) <= max(2, 0.05 * population_count)


def counts_vs_exact(N, T, d, etas, kind, k, ns, emb_seeds, streams, thresholds, population="mc", run=None) -> dict:
    """The population count per embedding seed, and the Monte-Carlo counts at each n (every embedding seed x
    `streams` streams), paired with it.

    Returns {"exact": {emb: {th: step}}, "mc": {n: {emb: [{th: step} per stream]}},
    "summary": {n: {th: {"reached", "runs", "median_diff", "median_abs_diff", "within"}}}}, where diff = MC count -
    population count over the runs where both reach the threshold, and "within" the fraction of all runs whose
    count is within max(2, 5 %) steps of the population count (a run that never reaches it is not within)."""
    base = {"N": N, "T": T, "d": d, "etas": etas, "kind": kind, "k": k, "thresholds": tuple(thresholds)}
    exact_cells = [Cell(count_cell, {**base, "population": "enumerated", "n": 1, "emb_seed": e}, 0, label=f"exact emb {e}")
                   for e in emb_seeds]
    mc_cells = [Cell(count_cell, {**base, "population": population, "n": n, "emb_seed": e}, s,
                     label=f"n={n} emb {e} stream {s}")
                for n in ns for e in emb_seeds for s in range(streams)]
    values = run_with(run, exact_cells + mc_cells, desc="Monte-Carlo vs population counts")
    values = [dict(zip(thresholds, v)) for v in values]
    exact = dict(zip(emb_seeds, values[:len(emb_seeds)]))
    it = iter(values[len(emb_seeds):])
    per_n = {n: {e: [next(it) for _ in range(streams)] for e in emb_seeds} for n in ns}
    summary = {}
    for n in ns:
        summary[n] = {}
        for th in thresholds:
            pairs = [(run_[th], exact[e][th]) for e in emb_seeds for run_ in per_n[n][e]]
            diffs = [a - b for a, b in pairs if a is not None and b is not None]
            within = [a is not None and b is not None and close_counts(a, b) for a, b in pairs]
            summary[n][th] = {"reached": sum(a is not None for a, _ in pairs), "runs": len(pairs),
                              "median_diff": float(np.median(diffs)) if diffs else None,
                              "median_abs_diff": float(np.median(np.abs(diffs))) if diffs else None,
                              "within": sum(within) / len(within)}
    return {"exact": exact, "mc": per_n, "summary": summary}
