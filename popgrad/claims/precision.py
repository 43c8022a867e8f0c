"""Claims on bfloat16 training: one step is a bfloat16 rounding of float32's, and the training curves agree.

App. E trains in float32. `--precision bfloat16` runs the attention matmuls of the lean step on
bfloat16 inputs with float32 master weights, SGD state and loss (`popgrad.numerics.precision`).
These claims measure what that changes: the gradients of one step (against the float32 autograd
step, an independently written backward), and every probe of the training curves over seeds.
"""

from __future__ import annotations

import numpy as np
import torch

from popgrad.numerics import training as trn
from popgrad.numerics.samplers import cpu_threads
from popgrad.registry import Claim, Measurement, register

STEP = dict(T=64, d=64, batch=16, K=5, steps=1, probe_every=1, cutoff=16, embed="code", scale="sqrt", device="cpu")
STEP_SEEDS = (0, 1, 2)
ROUNDING = (1e-4, 5e-2)          # a real bfloat16 rounding (unit roundoff 2^-8 = 3.9e-3), and no more


def measure_bfloat16_step() -> Measurement:
    # --precision bfloat16: the gradients of W_K^1, W_K^2, W_O^2 in one bfloat16 lean step differ from the float32
    # autograd step's by a bfloat16 rounding: relative error in [1e-4, 5e-2] for every matrix and seed (below 1e-4
    # the matmuls did not run in bfloat16; above 5e-2 more than rounding changed); the loss by at most 5e-2.
    errs, loss_errs = [], []
    with cpu_threads("cpu", 1):
        for seed in STEP_SEEDS:
            f32 = trn.setup(trn.TrainConfig(**STEP, seed=seed))
            b16 = trn.setup(trn.TrainConfig(**STEP, seed=seed, precision="bfloat16"))
            z, mask, tgt = next(trn.BatchStream(f32.model, f32.cfg, "cpu", seed=100 + seed))
            ref, out = trn.autocast_step(f32, z, mask, tgt), trn.sgd_step(b16, z, mask, tgt, False)
            errs += [float((g - out["grads"][k]).norm() / g.norm()) for k, g in ref["grads"].items()]
            loss_errs.append(abs(float(out["loss"]) - float(ref["loss"])) / abs(float(ref["loss"])))
    lo, hi = min(errs), max(errs + loss_errs)
    error = max(hi / ROUNDING[1], ROUNDING[0] / max(lo, 1e-300))        # <= 1 iff every error lies in ROUNDING
    return Measurement(error, 1.0, "approx",
                       note=f"relative error vs float32 of the bfloat16 step's gradients {lo:.1e} .. {max(errs):.1e} "
                            f"({len(STEP_SEEDS)} seeds x 3 matrices), of its loss {min(loss_errs):.1e} .. "
                            f"{max(loss_errs):.1e} (rounding errors average out over the positions)",
                       details={"grad_errors": errs, "loss_errors": loss_errs, **STEP})


register(Claim(
    id="training.bfloat16_step",
    statement="One SGD step with bfloat16 matmuls (float32 master weights and loss) is a bfloat16 rounding of the float32 step",
    where="App. E (training precision); popgrad's --precision bfloat16",
    compared="loss and gradients of the bfloat16 lean step (lean_step, hand-written backward, bfloat16 matmul inputs) vs "
             "the float32 autograd step (training.autocast_step without autocast), same weights and batch, 3 seeds, T=64, "
             "d=64, batch 16; shared: the frozen tables, the initial weights and the batch",
    kind="approx", tolerance=f"gradients: every relative error in [{ROUNDING[0]:g}, {ROUNDING[1]:g}]; loss <= {ROUNDING[1]:g}", measure=measure_bfloat16_step,
    code=("popgrad.numerics.training.autocast_step", "popgrad.numerics.precision.autocast",
          "popgrad.numerics.lean_step.lean_step", "popgrad.numerics.lean_step._bmm"),
    sides=(("popgrad.numerics.lean_step.lean_step",), ("popgrad.numerics.training.autocast_step",))))


# ----------------------------------------------------------------------------- the curves
CURVES = dict(T=64, d=64, batch=32, K=5, eta=0.2, embed="code", scale="sqrt", cutoff=16, device="cpu")
CURVE_STEPS, CURVE_PROBE, CURVE_SEEDS = 300, 50, (0, 1, 2)
CURVE_PROBES = ("acc_in_context", "recall_W_O2", "recall_W_K2", "recall_W_K1")      # all in [0, 1]
MAX_BEYOND_2SE, MAX_DIFF = 0.15, 0.1


def curve_runs(precision: str) -> list[list[dict]]:
    """Probe rows of the CI-size Figure 3 run (all matrices trained) for each seed, in `precision`."""
    out = []
    with torch.random.fork_rng(devices=[]), cpu_threads("cpu", 1):
        for seed in CURVE_SEEDS:
            cfg = trn.TrainConfig(**CURVES, steps=CURVE_STEPS, probe_every=CURVE_PROBE, seed=seed, precision=precision)
            out.append(trn.train(cfg)["rows"])
    return out


def curve_z_scores(a: list[list[dict]], b: list[list[dict]], probes=CURVE_PROBES) -> list[tuple]:
    """(z, |mean_a - mean_b|, probe, step) for every probe and probe step, z = |mean_a - mean_b| / sqrt(se_a^2 + se_b^2)
    over seeds (0 where the means agree)."""
    out = []
    for i, row in enumerate(a[0]):
        for k in probes:
            x = np.array([r[i][k] for r in a], dtype=float)
            y = np.array([r[i][k] for r in b], dtype=float)
            se = np.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
            diff = abs(x.mean() - y.mean())
            out.append((0.0 if diff == 0 else (diff / se if se > 0 else float("inf")), float(diff), k, row["step"]))
    return out


def measure_bfloat16_curves() -> Measurement:
    # Training in bfloat16 draws the same curves as float32: over 3 seeds, at every probe step, the mean of each probe
    # (in-context accuracy, recall (9) of W_O^2, W_K^2, W_K^1) differs by more than 2 se in at most 15 % of the
    # comparisons (5 % expected by chance) and by more than 0.1 in none; the runs really differ (paired).
    f32, b16 = curve_runs("float32"), curve_runs("bfloat16")
    zs = curve_z_scores(f32, b16)
    beyond = sum(z > 2 for z, _, _, _ in zs) / len(zs)
    worst = max(zs, key=lambda r: r[1])
    paired = max(abs(fr[i][k] - br[i][k]) for fr, br in zip(f32, b16) for i in range(len(fr)) for k in CURVE_PROBES)
    error = max(beyond / MAX_BEYOND_2SE, worst[1] / MAX_DIFF, 0.0 if paired > 0 else float("inf"))
    last = [(np.mean([r[-1]["acc_in_context"] for r in runs]), np.std([r[-1]["acc_in_context"] for r in runs], ddof=1)
             / np.sqrt(len(runs))) for runs in (f32, b16)]
    return Measurement(error, 1.0, "approx",
                       note=f"{len(zs)} comparisons: {100 * beyond:.0f}% beyond 2 se; largest difference {worst[1]:.3f} "
                            f"({worst[0]:.2f} se, {worst[2]} at step {worst[3]}); final in-context accuracy float32 {last[0][0]:.3f} ± "
                            f"{last[0][1]:.3f}, bfloat16 {last[1][0]:.3f} ± {last[1][1]:.3f}; largest paired difference "
                            f"{paired:.3f}",
                       details={"z": [list(z) for z in zs], "beyond_2se": beyond, **CURVES, "steps": CURVE_STEPS})


register(Claim(
    id="training.bfloat16_curves",
    statement="Training with bfloat16 matmuls gives the float32 training curves (every probe, every probe step) within "
              "their seed-to-seed error",
    where="App. E (training precision); Sec. 5, Figure 3 probes",
    compared=f"probe curves of {len(CURVE_SEEDS)} seeds trained with --precision bfloat16 vs float32 (same seeds: same "
             f"init and data stream), T={CURVES['T']}, d={CURVES['d']}, batch {CURVES['batch']}, {CURVE_STEPS} steps, "
             f"eta {CURVES['eta']:g}; shared: the training loop, probes and data",
    kind="approx", tolerance=f"<= {100 * MAX_BEYOND_2SE:.0f}% of comparisons beyond 2 se, none beyond {MAX_DIFF:g}",
    measure=measure_bfloat16_curves,
    code=("popgrad.numerics.training.train", "popgrad.numerics.lean_step.lean_step",
          "popgrad.numerics.precision.resolve_precision"),
    slow=True))
