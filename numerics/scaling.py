"""Scaling of one-step recall (App. E): how many batches R_1 needs as d, N, T, K vary.

For each sweep value and seed, one data pass gathers token statistics at a grid of batch
counts; R_1 is scored at every grid point and the first count with R_1 >= threshold is the
"batches needed" (infinite if never reached). Exponents are log-log slopes over the values
where the threshold was reached for every seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from popgrad.cells import Cell, run_with
from popgrad.device import resolve_device
from popgrad.embeddings import make_embeddings
from popgrad.errors import PopgradError, positive_float, positive_int
from popgrad.numerics.recall import build_model_c, gather_model_c_stats, r1_recall, value_inputs
from popgrad.numerics.samplers import cpu_threads
from popgrad.rates import loglog_slope


def batch_grid(max_batches: int) -> list[int]:
    """1, 2, 3, 4, 6, 8, 12, 16, ... up to max_batches (powers of two and their 1.5 multiples)."""
    m = positive_int("max_batches", max_batches)
    grid, b = {m}, 1
    while b <= m:
        grid.update(x for x in (b, b + b // 2) if x <= m)
        b *= 2
    return sorted(grid)


@dataclass(frozen=True)
class ScalingPoint:
    """One sweep value: batches needed per seed and R_1 along the batch grid (mean over seeds)."""

    sweep: str
    value: int
    d: int
    needed: tuple[float, ...]          # per seed; inf = threshold never reached
    r1_curve: tuple[float, ...]        # mean over seeds at each grid point
    grid: tuple[int, ...]

    @property
    def needed_mean(self) -> float:
        return float(np.mean(self.needed))

    @property
    def r1_final(self) -> float:
        return self.r1_curve[-1]


def first_crossing(values, grid, threshold: float) -> float:
    """The first grid count whose value is >= threshold (inf if none)."""
    for v, b in zip(values, grid):
        if v >= threshold:
            return float(b)
    return math.inf


def fitted_exponent(points: list[ScalingPoint]) -> float:
    """log-log slope of batches needed vs the swept value (nan with < 2 finite points)."""
    pts = [(p.value, p.needed_mean) for p in points if math.isfinite(p.needed_mean)]
    if len({v for v, _ in pts}) < 2:
        return math.nan
    return loglog_slope([v for v, _ in pts], [b for _, b in pts])


def scaling_study(sweeps=("d", "N", "T", "K"), dims=(32, 64, 128, 256, 512), Ns=(16, 32, 64, 128),
                  Ts=(64, 128, 256, 512), Ks=(1, 2, 5, 10), d: int = 128, max_batches: int = 128,
                  threshold: float = 0.9, seeds: int = 3, batch_size: int = 32, seed: int = 0,
                  device="auto", base=None, run=None) -> dict[str, list[ScalingPoint]]:
    """Run the sweeps. 'd' uses `base` (default: Figure 9's model C); 'N' the all-uniform
    model with N tokens; 'T' and 'K' vary it. One sweep cell per (swept value, seed), run by
    `run` (a popgrad.cells.Runner; None: in process). Returns {sweep: points}."""

    threshold = validate_scaling_threshold(threshold)
    jobs = scaling_jobs(sweeps, dims, Ns, Ts, Ks, d, base)
    cells = scaling_cells(jobs, max_batches, seeds, batch_size, seed, device)
    values = run_with(run, cells, "scaling cells")
    return scaling_points(jobs, cells, values, threshold)


def validate_scaling_threshold(threshold) -> float:
    """An R_1 target in (0, 1]."""
    threshold = positive_float("threshold", threshold)
    if threshold > 1:
        raise PopgradError(f"threshold must be in (0, 1], got {threshold}")
    return threshold


def scaling_jobs(sweeps=("d", "N", "T", "K"), dims=(32, 64, 128, 256, 512), Ns=(16, 32, 64, 128),
                 Ts=(64, 128, 256, 512), Ks=(1, 2, 5, 10), d: int = 128, base=None) -> list[tuple]:
    """(sweep, model, dims, value) for every swept value, in output order."""
    base = build_model_c() if base is None else base
    jobs = []
    for sw in sweeps:
        if sw == "d":
            jobs.append((sw, base, list(dims), None))
        elif sw == "N":
            jobs += [(sw, build_model_c(N=n, T=base.T, K=min(base.K, n), uniform=True), [d], n) for n in Ns]
        elif sw == "T":
            jobs += [(sw, replace(base, T=positive_int("T", t, minimum=2)), [d], t) for t in Ts]
        elif sw == "K":
            for k in Ks:
                if k > base.N:
                    raise PopgradError(f"K={k} exceeds the vocabulary size N={base.N}")
                jobs.append((sw, replace(base, K=k, triggers=None if base.random_triggers else base.triggers[:k])
                             if base.random_triggers or k <= base.K else _fixed_k(base, k), [d], k))
        else:
            raise PopgradError(f"unknown sweep {sw!r}; use d, N, T or K")
    return jobs


def scaling_cells(jobs, max_batches: int = 128, seeds: int = 3, batch_size: int = 32, seed: int = 0,
                  device="auto") -> list:
    """One sweep cell (`scaling_seed_cell`) per (job, seed), job-major."""
    grid = batch_grid(max_batches)
    seeds, seed = positive_int("seeds", seeds), positive_int("seed", seed, minimum=0)
    dev = str(resolve_device(device))
    return [Cell(scaling_seed_cell, {"model": model, "dims": list(ds), "grid": grid, "batch_size": batch_size,
                                     "device": dev}, seed + s, label=f"{sw}={value if value is not None else ds}")
            for sw, model, ds, value in jobs for s in range(seeds)]


def scaling_seed_cell(model, dims, grid, batch_size, device, seed) -> dict:
    """One seed of one swept value (a pure sweep cell): one data pass, R_1 at every grid count
    for every d. Returns {'curves': [[R_1 per grid count] per d]}."""
    with cpu_threads(device):
        stats = gather_model_c_stats(model, grid, batch_size, seed, device)
        curves = []
        for d in dims:
            A = value_inputs(make_embeddings(d, model.N, model.T, seed=seed))
            curves.append([r1_recall(stats[b], A) for b in grid])
    return {"curves": curves}


def scaling_points(jobs, cells, values, threshold: float) -> dict[str, list[ScalingPoint]]:
    """Assemble {sweep: ScalingPoints} from the results of `scaling_cells` (same order)."""
    seeds = len(cells) // max(len(jobs), 1)
    out: dict[str, list[ScalingPoint]] = {}
    for j, (sw, _model, ds, value) in enumerate(jobs):
        per_seed = values[j * seeds:(j + 1) * seeds]
        grid = cells[j * seeds].params["grid"]
        for i, d in enumerate(ds):
            curves = [v["curves"][i] for v in per_seed]
            out.setdefault(sw, []).append(ScalingPoint(
                sw, d if value is None else value, d, tuple(first_crossing(c, grid, threshold) for c in curves),
                tuple(np.mean(curves, axis=0).tolist()), tuple(grid)))
    return out


def _fixed_k(base, k):
    raise PopgradError(f"K={k} fixed triggers exceed the {base.K} of the base model; use random triggers")


def error_exponent(points: list[ScalingPoint]) -> float:
    """log-log slope of the one-step error 1 - R_1 (at the largest batch count) vs the swept
    value, over values with a non-zero error (nan with < 2 such points)."""
    pts = [(p.value, 1.0 - p.r1_final) for p in points if p.r1_final < 1.0]
    if len({v for v, _ in pts}) < 2:
        return math.nan
    return loglog_slope([v for v, _ in pts], [e for _, e in pts])


@dataclass(frozen=True)
class BatchPoint:
    """One batch count of the batches sweep: R_1 at d and the error of the one-step direction."""

    batches: int
    r1: float                  # mean over seeds at dimension d
    direction_error: float     # mean over seeds of ||(c_k - c)_b - (c_k - c)_ref||_F / ||(c_k - c)_ref||_F


def batch_sweep(model=None, d: int = 128, max_batches: int = 128, seeds: int = 3, batch_size: int = 32,
                seed: int = 0, device="auto", ref_factor: int = 4, fit_min: int = 8):
    """The one-step error vs the number of batches: relative Frobenius error of the token-space
    direction c_k - c (the preimage of mu_k - mu, every d at once) against an independent
    reference with ref_factor x max_batches batches (seed + 10^6), and R_1 at d.
    Returns (points, log-log slope fitted over fit_min <= batches <= max_batches / ref_factor:
    below fit_min the estimate is mostly noise and its relative error saturates near 1, above
    the upper end the reference's own error is no longer negligible)."""
    model = build_model_c() if model is None else model
    grid = batch_grid(max_batches)
    ref_b = positive_int("ref_factor", ref_factor) * grid[-1]
    with cpu_threads(device):
        ref = gather_model_c_stats(model, [ref_b], batch_size, seed + 10 ** 6, device)[ref_b]
        r1s, errs = [], []
        for s in range(positive_int("seeds", seeds)):
            stats = gather_model_c_stats(model, grid, batch_size, seed + s, device)
            A = value_inputs(make_embeddings(d, model.N, model.T, seed=seed + s))
            r1s.append([r1_recall(stats[b], A) for b in grid])
            errs.append([_direction_error(stats[b], ref) for b in grid])
    points = [BatchPoint(b, float(r), float(e)) for b, r, e in zip(grid, np.mean(r1s, 0), np.mean(errs, 0))]
    fit = [(p.batches, p.direction_error) for p in points if fit_min <= p.batches <= grid[-1] // ref_factor]
    slope = loglog_slope([b for b, _ in fit], [e for _, e in fit]) if len(fit) >= 2 else math.nan
    return points, slope


def batch_sweep_cell(model, d, max_batches, seeds, batch_size, device, seed) -> dict:
    """`batch_sweep` as one pure sweep cell: {'points': [[batches, r1, direction_error], ...], 'slope'}."""
    points, slope = batch_sweep(model, d, max_batches, seeds, batch_size, seed, device)
    return {"points": [[p.batches, p.r1, p.direction_error] for p in points], "slope": slope}


def batch_points(value) -> tuple[list[BatchPoint], float]:
    """(points, slope) of `batch_sweep` back from a `batch_sweep_cell` result."""
    return [BatchPoint(int(b), float(r), float(e)) for b, r, e in value["points"]], float(value["slope"])


def _direction_error(stats, ref) -> float:
    """Relative Frobenius error of c_k - c over the labels seen in both (unseen rows excluded)."""
    both = stats.seen & ref.seen
    D, R = stats.centered_means()[both], ref.centered_means()[both]
    return float(torch.linalg.norm(D - R) / torch.linalg.norm(R))
