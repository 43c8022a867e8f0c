"""Claims on bfloat16 training: one step is a bfloat16 rounding of float32's, and the training curves agree.

App. E trains in float32. `--precision bfloat16` runs the attention matmuls of the lean step on
bfloat16 inputs with float32 master weights, SGD state and loss (`popgrad.numerics.precision`).
These claims measure what that changes: the gradients of one step (against the float32 autograd
step, an independently written backward), and every probe of the training curves over seeds.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from popgrad.claims.probe_readings import separating_weights
from popgrad.device import CudaProbe, resolve_device
from popgrad.errors import PopgradError
from popgrad.numerics import precision as pr
from popgrad.numerics import training as trn
from popgrad.numerics import transformer as tr
from popgrad.numerics.samplers import cpu_threads
from popgrad.registry import Claim, Measurement, register
from popgrad.tolerances import nanmax



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


# ----------------------------------------------------------------------------- the choice, every branch
# The reference: decisions written from docs/precision.md and CUDA's published compute capabilities
# (bfloat16 tensor cores from 8.0, Ampere), one row per machine, never computed from numerics/precision.py.
GPUS = (("V100", (7, 0), True, False), ("T4", (7, 5), True, False), ("T4", (7, 5), False, False),
        ("A100", (8, 0), True, True), ("A100", (8, 0), False, False), ("A10", (8, 6), True, True),
        ("L4", (8, 9), True, True), ("H100", (9, 0), True, True))          # name, capability, torch bf16, claimed
CPUS = ((frozenset(), False), (frozenset({"avx2", "fma"}), False), (frozenset({"avx2", "avx512f"}), False),
        (frozenset({"avx512_bf16"}), True), (frozenset({"amx_bf16"}), True),
        (frozenset({"avx512_bf16", "amx_bf16"}), True))                    # flags, claimed
# measured bfloat16 / float32 step ratio -> auto's pick (bfloat16 only when at least 1.1x faster)
RATIOS = ((0.3, "bfloat16"), (0.5, "bfloat16"), (0.89, "bfloat16"), (0.92, "float32"), (0.95, "float32"),
          (1.05, "float32"), (2.6, "float32"))
# first-round ratio -> (timed rounds at min(batch, 32), timed rounds at the run's batch); run batch 64
ROUND_PLAN = ((5.0, (1, 0)), (0.3, (1, 0)), (2.5, (1, 0)), (1.05, (1, 3)), (0.7, (1, 3)), (1.9, (1, 3)))
# device text, CUDA available, device count -> the torch device, or None where it is refused
DEVICES = (("auto", False, 0, "cpu"), ("auto", True, 2, "cuda"), ("cpu", True, 2, "cpu"), ("cuda", False, 0, None),
           ("cuda", True, 1, "cuda"), ("cuda:0", True, 1, "cuda:0"), ("cuda:1", True, 1, None),
           ("cuda:1", True, 2, "cuda:1"), ("cuda:2", True, 2, None), ("cuda:0", False, 0, None), ("tpu", True, 1, None))
def documented_decisions() -> dict:
    """The reference table (module constants above), by name."""
    return {"gpus": GPUS, "cpus": CPUS, "ratios": RATIOS, "rounds": ROUND_PLAN, "devices": DEVICES}


CHOICE_CFG = dict(N=10, T=24, d=12, batch=64, K=3, steps=1, probe_every=1, cutoff=8, device="cpu")


class _RaisingTimer:
    def __call__(self, cfg, device):
        raise AssertionError("measured where the documentation says auto keeps float32 without measuring")


class _FixedTimer:
    """bfloat16 takes `ratio` times the float32 step; counts its calls."""

    def __init__(self, ratio):
        self.ratio, self.calls = ratio, 0

    def __call__(self, cfg, device):
        self.calls += 1
        return pr.StepTiming((1.0, 1.0, 1.0), (self.ratio,) * 3, cfg.batch)


def _fake_clock_rounds(ratio: float) -> tuple:
    """time_steps with a fake clock: each bfloat16 step costs `ratio` units, a float32 step 1 (per sequence);
    returns (timed rounds at batch 32, timed rounds at batch 64)."""
    clock, steps = [0.0], []

    class FakeTime:
        @staticmethod
        def perf_counter():
            return clock[0]

    def fake_step(run, z, mask, tgt, probe):
        steps.append((run.cfg.batch, run.precision.name))
        clock[0] += (ratio if run.precision.name == "bfloat16" else 1.0) * run.cfg.batch
        return {}
    real_time, real_step = pr.time, trn.sgd_step
    pr.time, trn.sgd_step = FakeTime, fake_step
    try:
        timing = pr.time_steps(trn.TrainConfig(**CHOICE_CFG), "cpu")
    finally:
        pr.time, trn.sgd_step = real_time, real_step
    per_batch = {b: sum(1 for bb, p in steps if bb == b and p == "float32") for b in (32, 64)}
    rounds = (max(per_batch[32] - 1, 0), max(per_batch[64] - 1, 0))        # one warm-up step per batch size
    ok_ratio = abs(timing.ratio - ratio) < 1e-12
    return rounds, ok_ratio


def measure_choice_branches() -> Measurement:
    bad, n, table = [], 0, documented_decisions()
    # the device and timing branches first: the call tracer of assert_claim stops once every named function ran
    for text, available, count, want in table["devices"]:
        n += 1
        try:
            got = str(resolve_device(text, cuda=CudaProbe(available, count)))
        except PopgradError:
            got = None
        if got != want:
            bad.append(f"device {text!r} with CUDA {available}, {count} device(s): {got}, documented {want}")
    for ratio, want in table["rounds"]:
        n += 1
        rounds, ok_ratio = _fake_clock_rounds(ratio)
        if rounds != want or not ok_ratio:
            bad.append(f"time_steps at first-round ratio {ratio}: rounds {rounds}, documented {want}")
    for name, cap, supported, want in table["gpus"]:
        hw = pr.Hardware("cpu", frozenset(), "2.13.0", 1, pr.CudaDevice(name, cap, supported))
        n += 1
        if hw.bf16_claim("cuda")[0] != want:
            bad.append(f"{name} {cap} bf16 {supported}: claim {not want}")
        if not want:
            n += 1
            try:
                kept = pr.resolve_precision("auto", "cuda", cfg=trn.TrainConfig(**CHOICE_CFG), hardware=hw,
                                            timer=_RaisingTimer(), cache=None).name == "float32"
            except AssertionError:
                kept = False
            if not kept:
                bad.append(f"{name} {cap}: auto did not keep float32 without measuring")
    for flags, want in table["cpus"]:
        n += 1
        if pr.Hardware("cpu", flags).bf16_claim("cpu")[0] != want:
            bad.append(f"CPU flags {sorted(flags)}: claim {not want}")
    for ratio, want in table["ratios"]:
        n += 1
        got = pr.resolve_precision("auto", "cpu", cfg=trn.TrainConfig(**CHOICE_CFG), hardware=pr.Hardware("cpu"),
                                   timer=_FixedTimer(ratio), cache=None).name
        if got != want:
            bad.append(f"auto at ratio {ratio}: {got}, documented {want}")
    bad += _cache_key_branches()
    n += 1
    return Measurement(float(len(bad)), 0.0, "exact", details={"failures": bad},
                       note=f"{n} documented decisions (CUDA capability, CPU flags, 1.1x margin, rounds of the "
                            f"measurement, cache key fields, device index) all held" if not bad else "; ".join(bad[:3]))


def _cache_key_branches() -> list[str]:
    """A measurement is reused for the same machine and shapes, and repeated when any field the documentation
    puts in the key differs (CPU model, torch version, threads, GPU name and capability, each shape); a field
    outside the key (seed, steps, eta, CPU flags) reuses it."""
    bad = []
    base_hw = pr.Hardware("CPU A", frozenset({"avx2"}), "2.13.0", 1, pr.CudaDevice("A100", (8, 0), True))
    base_cfg = trn.TrainConfig(**CHOICE_CFG)
    hw_changes = {"cpu_model": "CPU B", "torch_version": "2.14.0", "threads": 4}
    cuda_changes = {"name": "H100", "capability": (9, 0)}
    cfg_changes = {"data": "D", "N": 12, "T": 30, "K": 4, "d": 16, "batch": 48, "loss": "all", "W_F": True}
    same = [("cpu", base_hw, dataclasses.replace(base_cfg, **{k: v}), k) for k, v in
            (("seed", 3), ("steps", 2), ("eta", 0.1))] + [("cpu", dataclasses.replace(base_hw, cpu_flags=frozenset()),
                                                          base_cfg, "cpu_flags")]
    other = [("cpu", dataclasses.replace(base_hw, **{k: v}), base_cfg, k) for k, v in hw_changes.items()]
    other += [("cuda", dataclasses.replace(base_hw, cuda=dataclasses.replace(base_hw.cuda, **{k: v})), base_cfg, k)
              for k, v in cuda_changes.items()]
    other += [("cpu", base_hw, dataclasses.replace(base_cfg, **{k: v}), k) for k, v in cfg_changes.items()]
    with tempfile.TemporaryDirectory(prefix="popgrad-claim-cache-") as tmp:
        for device, hw, cfg, field, want in [(d, h, c, f, 0) for d, h, c, f in same] + [(d, h, c, f, 1) for d, h, c, f in other]:
            cache = pr.TimingCache(Path(tmp) / f"{field}.json")
            first = _FixedTimer(0.5)
            pr.resolve_precision("auto", device, cfg=base_cfg, hardware=base_hw, timer=first, cache=cache)
            again = _FixedTimer(0.5)
            pr.resolve_precision("auto", device, cfg=cfg, hardware=hw, timer=again, cache=cache)
            if first.calls != 1 or again.calls != want:
                bad.append(f"{device} cache with {field} changed: measured {again.calls}x, documented {want}x")
    return bad


register(Claim(
    id="precision.choice_branches",
    statement="every hardware branch of the precision and device choice decides as documented: bfloat16 claimed "
              "on CUDA from compute capability 8.0 with torch support and on CPUs with avx512_bf16 or amx_bf16; auto "
              "picks bfloat16 only when measured at least 1.1x faster and keeps float32 below 8.0 without measuring; "
              "a first round 2x apart decides, else 3 rounds at the run's batch; the timing cache key holds CPU model, "
              "torch version, threads, GPU and shapes; cuda:N needs N < the device count",
    where="App. E (training precision); popgrad's --precision auto and --device (docs/precision.md)",
    compared="numerics.precision (Hardware.bf16_claim, resolve_precision, time_steps under a fake clock, "
             "TimingCache) and device.resolve_device on injected machines vs a table of decisions written from "
             "docs/precision.md and CUDA's published compute capabilities; shared: the injected machines",
    kind="exact", tolerance="0 decisions differ from the table", measure=measure_choice_branches,
    code=("popgrad.numerics.precision.resolve_precision", "popgrad.numerics.precision.time_steps",
          "popgrad.numerics.precision.Hardware", "popgrad.device.resolve_device"),
    sides=(("popgrad.numerics.precision.resolve_precision", "popgrad.numerics.precision.time_steps",
            "popgrad.device.resolve_device"),
           ("popgrad.claims.precision.documented_decisions",))))


# ----------------------------------------------------------------------------- the autograd step, every field
FIELD_CASES = (("C", "in-context", None, 5.0), ("C", "all", None, 5.0), ("D", "in-context", 60, 1.0))   # data, loss, N, scale
FIELD_CFG = dict(T=24, d=96, batch=16, K=3, steps=1, probe_every=1, cutoff=8, device="cpu", dtype="float64")


def measure_autocast_step_fields() -> Measurement:
    # Without autocast, the autograd step (training.autocast_step, the bfloat16 reference path) returns what the lean
    # step returns in every field (loss sum, n_loss, hits, n, in-context loss sum, gradients), on weights where the
    # in-context hits differ from the hits over every position with a target (probe_readings' separating weights,
    # scaled so that some in-context tokens are predicted).
    errs, notes, separated = {}, [], True
    for data, loss, N, scale in FIELD_CASES:
        run = trn.setup(trn.TrainConfig(**FIELD_CFG, data=data, loss=loss, N=N, seed=5))
        with torch.no_grad():
            for k, v in separating_weights(run.emb.to(dtype="float64")).items():
                run.params[k].copy_(scale * v)
        z, mask, tgt = next(trn.BatchStream(run.model, run.cfg, "cpu", seed=11))
        ref, lean_out = trn.autocast_step(run, z, mask, tgt), trn.sgd_step(run, z, mask, tgt, True)
        for k in ("n_loss", "hits", "n"):
            errs[f"{data}/{loss}: {k}"] = float(int(ref[k]) != int(lean_out[k]))
        for k in ("loss", "ctx_sum"):
            errs[f"{data}/{loss}: {k}"] = abs(float(ref[k]) - float(lean_out[k])) / max(abs(float(lean_out[k])), 1.0)
        for k, g in lean_out["grads"].items():
            errs[f"{data}/{loss}: grad {k}"] = float((ref["grads"][k] - g).norm() / g.norm())
        if set(ref["grads"]) != set(lean_out["grads"]):
            errs[f"{data}/{loss}: grad names"] = 1.0
        with torch.no_grad():
            right = tr.logits(run.tab, z, run.params, run.cfg.scale).argmax(-1) == tgt       # (B, T)
        keep = mask | trn.other_mask(mask, data)
        elsewhere = int((right & keep & ~mask).sum())
        separated &= int(lean_out["hits"]) > 0 and (elsewhere > 0 or data == "D")
        notes.append(f"{data}/{loss}: hits {int(lean_out['hits'])}/{int(lean_out['n'])}, {elsewhere} more elsewhere")
    worst = nanmax(errs.values())
    return Measurement(worst if separated else math.inf, 1e-10, "exact", details=errs,
                       note="; ".join(notes) + f"; largest difference {worst:.1e}")


register(Claim(
    id="training.autocast_step_fields",
    statement="the autograd step (the bfloat16 reference path) without autocast returns the lean step's loss, counts, "
              "hits, in-context loss sum and gradients, at loss 'in-context' and 'all', on model C and model D",
    where="App. E (training on in-context tokens, Fig. 3; on all tokens, Fig. 4); popgrad's --precision bfloat16",
    compared="training.autocast_step (autograd of step_loss) vs lean_step.lean_step (hand-written backward) in float64, "
             "on weights where the in-context hits differ from the hits at every position; shared: the frozen tables, "
             "the weights and the batch",
    kind="exact", tolerance="counts equal; loss, ctx_sum and gradients rel <= 1e-10", measure=measure_autocast_step_fields,
    code=("popgrad.numerics.training.autocast_step", "popgrad.numerics.training.step_loss",
          "popgrad.numerics.lean_step.lean_step"),
    sides=(("popgrad.numerics.lean_step.lean_step",), ("popgrad.numerics.training.autocast_step",))))
