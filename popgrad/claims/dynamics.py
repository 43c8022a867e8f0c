"""Claims: population dynamics beyond one step (Theorem 3 extended to k steps per layer).

dynamics.first_steps_are_theorem3   exact: the first step of each layer of the B.3 dynamics (autograd on the
                                    enumerated model D) equals the exact engine's one-step matrix
dynamics.token_coordinates          exact: k steps of the full-model dynamics in token coordinates equal plain
                                    d x d gradient descent on induction_head_logits (autograd, enumerated model D)
dynamics.b3_exact_first_path        exact: the B.3 dynamics' engine path for a layer's first step equals autograd
                                    of the B.3 losses on the enumerated model D
dynamics.streams                    exact: each step's sequences are the sampler's stream of (seed, step), successive
                                    batches differ, and a step is the unchunked gradient on exactly those sequences
dynamics.training_loss_step0        exact: the model-D training loss at step 0 equals the dynamics' full loss on the
                                    same sequences and matrices
dynamics.deterministic_threads      exact: the same run with 1 and 2 torch threads gives identical numbers
dynamics.mc_approaches_exact        measured: Monte-Carlo trajectories approach the exact one like n^-1/2
dynamics.small_counts               measured: steps to accuracy 0.5 / 0.9 at N=8, T=8, d=64 agree at n and 4n
dynamics.median_interval            exact: the median (unreached = +inf) and bootstrap interval vs a loop
dynamics.medians_reproduce          measured: a fresh 5-seed run reproduces the documented 40-seed medians within
                                    their error (docs/results/dynamics_medians.json), both ways
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys

import numpy as np
import torch

from popgrad.data import SecondOccurrenceModel
from popgrad.embeddings import make_embeddings
from popgrad.numerics import theorem3_mc as mc
from popgrad.numerics import training
from popgrad.numerics.dynamics import (LAYERS, coordinates, data_source, dynamics, full_loss,
                                       median_interval, schedule, scores, step_seed, steps_to_reach)
from popgrad.numerics.dynamics_reference import approach_to_exact, counts_vs_exact
from popgrad.numerics.induction_head import induction_head_logits
from popgrad.numerics.samplers import make_generator, sample_model_d
from popgrad.registry import Claim, Measurement, register
from popgrad.theory.theorem3 import three_steps
from popgrad.tolerances import FLOAT64, nanmax, rel_error



SIZES = ((4, 5, 16), (3, 6, 12))          # (N, T, d) small enough to enumerate model D
ETA = 0.7


def _setting(N, T, d, seed=0):
    return SecondOccurrenceModel(N, T), make_embeddings(d, N, T, seed=seed)


# ----------------------------------------------------------------------------- (i) first steps
def measure_first_steps() -> Measurement:
    """B.3 dynamics, 1 step per layer, p_hat = 1/N, every step by autograd on the enumerated model D,
    against popgrad.theory.theorem3.three_steps (token statistics, no enumeration)."""
    worst, per = 0.0, {}
    for N, T, d in SIZES:
        model, emb = _setting(N, T, d)
        ref = three_steps(model, emb, ETA, phat="uniform")
        rows = list(dynamics(model, emb, ETA, k=1, rounds=1, kind="consecutive", loss="b3", phat="uniform",
                             population="enumerated", n_eval=64, exact_first=False))
        W = rows[-1]["_W"]
        errs = {k: rel_error(W[k], ref[k]) for k in ref}
        per[(N, T, d)] = errs
        worst = nanmax([worst, *errs.values()])
    return Measurement(worst, FLOAT64.rtol, "exact",
                       note="worst rel error over layers and sizes " + ", ".join(
                           f"N{N}T{T}d{d}: " + "/".join(f"{v:.1e}" for v in e.values()) for (N, T, d), e in per.items()),
                       details={str(k): v for k, v in per.items()})


register(Claim(
    id="dynamics.first_steps_are_theorem3",
    statement="The population dynamics on the App. B.3 losses (p_hat = 1/N), one step per layer top-down from zero, "
              "give Theorem 3's three one-step matrices (15), (17), Lemma 5",
    where="Theorem 3, App. B.3.1-B.3.3 (first step of the multi-step dynamics)",
    compared="numerics.dynamics (autograd of the B.3 losses on the enumerated model D, step by step) vs "
             "theory.theorem3.three_steps (exact token statistics), eta = 0.7; shared: model D and the embeddings",
    kind="exact", tolerance="rel <= 1e-10 (float64), every layer, (N,T,d) in {(4,5,16), (3,6,12)}",
    measure=measure_first_steps,
    code=("popgrad.numerics.dynamics.dynamics", "popgrad.numerics.dynamics.b3_gradients"),
    sides=(("popgrad.numerics.dynamics.b3_gradients",), ("popgrad.theory.theorem3.three_steps",))))


# ----------------------------------------------------------------------------- (ii) token coordinates
def _plain_step(emb, W, names, z, y, w, etas):
    """One gradient step of the layers `names` on d x d matrices: autograd of the weighted CE of
    induction_head_logits at position T (the reference, no token coordinates)."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in W.items()}
    logits = induction_head_logits(emb, z, leaves["W_K1"], leaves["W_K2"], leaves["W_O2"])[:, -1]   # (M, N)
    loss = (w * torch.nn.functional.cross_entropy(logits, y, reduction="none")).sum()
    grads = torch.autograd.grad(loss, [leaves[k] for k in names])
    return {**W, **{k: W[k] - etas[k] * g for k, g in zip(names, grads)}}


def _plain_gd(emb, z, y, w, etas, plan):
    """Reference: gradient descent on d x d matrices, autograd of the CE of induction_head_logits at position T."""
    W = {k: torch.zeros(emb.d, emb.d, dtype=torch.float64) for k in ("W_O2", "W_K2", "W_K1")}
    out = []
    for _, names in plan:
        W = _plain_step(emb, W, names, z, y, w, etas)
        out.append(W)
    return out


def measure_token_coordinates() -> Measurement:
    etas = {"W_O2": 3.0, "W_K2": 5.0, "W_K1": 7.0}       # large enough that the attention moves off uniform
    worst, per = 0.0, {}
    for (N, T, d), kind in zip(SIZES, ("alternating", "consecutive")):
        model, emb = _setting(N, T, d, seed=2)
        z, y, w = mc.enumerated(model)
        plan = schedule(kind, 2, 2)
        ref = _plain_gd(emb, z, y, w, etas, plan)
        rows = list(dynamics(model, emb, etas, k=2, rounds=2, kind=kind, loss="full", population="enumerated", n_eval=64,
                             chunk=100))                     # 3-5 chunks of the enumerated model D
        errs = [max(rel_error(r["_W"][k], R[k]) for k in R if float(R[k].norm()) > 0) for r, R in zip(rows[1:], ref)]
        per[(N, T, d, kind)] = max(errs)
        worst = max(worst, max(errs))
        moved = float(ref[-1]["W_K1"].norm())
        if not moved > 0:
            worst = math.inf
    return Measurement(worst, FLOAT64.rtol, "exact",
                       note=f"{len(plan)} steps per run; worst rel error per run: "
                            + ", ".join(f"{k}: {v:.1e}" for k, v in per.items()),
                       details={str(k): v for k, v in per.items()})


register(Claim(
    id="dynamics.token_coordinates",
    statement="Gradient descent on the full Sec. 4.2 model's cross-entropy at position T, computed in token/position "
              "coordinates (S1 = B1^T W_K1 B1, S2 = B2^T W_K2 B2, SO = W_U W_O2 W_V2 B2), is plain d x d gradient descent",
    where="Section 4.2, eq. (2); App. B.3 (population loss of the two-layer model on model D)",
    compared="numerics.dynamics (token coordinates, float64 sums over chunks of 100 sequences, 12 steps, alternating "
             "and consecutive, k = 2, 2 rounds) vs autograd "
             "of the CE of induction_head_logits on d x d matrices, enumerated model D, etas 3:5:7; "
             "shared: the enumerated model D and the embeddings",
    kind="exact", tolerance="rel <= 1e-10 (float64) at every step, every matrix",
    measure=measure_token_coordinates,
    code=("popgrad.numerics.dynamics.last_position_logits", "popgrad.numerics.dynamics.chunked_full_gradients",
          "popgrad.numerics.induction_head.induction_head_logits"),
    sides=(("popgrad.numerics.dynamics.last_position_logits", "popgrad.numerics.dynamics.chunked_full_gradients"),
           ("popgrad.claims.dynamics._plain_gd", "popgrad.numerics.induction_head.induction_head_logits"))))


# ----------------------------------------------------------------------------- (iii) the B.3 engine path
def measure_exact_first_path() -> Measurement:
    """B.3 dynamics, one step per layer from zero: the engine path (exact_first, Monte-Carlo population: the
    engine ignores the sample) vs every step by autograd of the B.3 losses on the enumerated model D."""
    worst, per = 0.0, {}
    for N, T, d in SIZES:
        model, emb = _setting(N, T, d, seed=1)
        kw = {"k": 1, "rounds": 1, "kind": "consecutive", "loss": "b3", "phat": "uniform", "n_eval": 64}
        engine = list(dynamics(model, emb, ETA, population="mc", n=64, exact_first=True, engine_cosine=True, **kw))
        auto = list(dynamics(model, emb, ETA, population="enumerated", exact_first=False, **kw))
        errs = {k: rel_error(engine[-1]["_W"][k], auto[-1]["_W"][k]) for k in LAYERS}
        cos = [r["cos_engine"] for r in engine[1:]]
        per[(N, T, d)] = errs
        worst = max(worst, *errs.values(), *(abs(c - 1) for c in cos))
    return Measurement(worst, FLOAT64.rtol, "exact",
                       note="worst rel error per size " + ", ".join(f"N{N}T{T}d{d}: {max(e.values()):.1e}"
                                                                   for (N, T, d), e in per.items()),
                       details={str(k): v for k, v in per.items()})


register(Claim(
    id="dynamics.b3_exact_first_path",
    statement="In the B.3 dynamics with p_hat = 1/N, a layer's first step from zero taken by the exact engine "
              "equals the population gradient step of its B.3 loss",
    where="Theorem 3, App. B.3.1-B.3.3 (the exact-first path of `popgrad dynamics --loss b3`)",
    compared="numerics.dynamics with exact_first (engine_step: theory.theorem3 step1/2/3, fed the current layers) vs "
             "numerics.dynamics with every step by autograd of the B.3 losses on the enumerated model D; "
             "shared: model D and the embeddings",
    kind="exact", tolerance="rel <= 1e-10 (float64), every layer, (N,T,d) in {(4,5,16), (3,6,12)}; cos_engine = 1",
    measure=measure_exact_first_path,
    code=("popgrad.numerics.dynamics.dynamics", "popgrad.numerics.dynamics.engine_step",
          "popgrad.numerics.dynamics.b3_gradients"),
    sides=(("popgrad.numerics.dynamics.engine_step",), ("popgrad.numerics.dynamics.b3_gradients",))))


# ----------------------------------------------------------------------------- (iv) random streams
STREAM = {"N": 8, "T": 8, "d": 32, "n": 700, "seed": 3, "etas": {"W_O2": 2.0, "W_K2": 20.0, "W_K1": 20.0}}


def measure_streams() -> Measurement:
    """Steps 1-3 of a joint Monte-Carlo run (n = 700 > one chunk): the batch of each step equals
    sample_model_d on the generator of step_seed(seed, step); successive batches differ; the fixed population
    repeats step 1's batch; and W after each step is one plain d x d autograd step (induction_head_logits, whole
    batch, no token coordinates, no chunks) on it."""
    s = STREAM
    model = SecondOccurrenceModel(s["N"], s["T"])
    emb = make_embeddings(s["d"], s["N"], s["T"], seed=s["seed"], dtype="float64")
    fresh = data_source(model, "mc", s["n"], s["seed"], "cpu")
    fixed = data_source(model, "fixed", s["n"], s["seed"], "cpu")
    sampler = [sample_model_d(model, s["n"], make_generator(step_seed(s["seed"], t), "cpu")) for t in (1, 2, 3)]
    mismatched = 0
    for t, (z, y, _, _) in zip((1, 2, 3), sampler):
        fz, fy, _ = fresh(t)
        xz, xy, _ = fixed(t)
        mismatched += int(not (torch.equal(fz, z) and torch.equal(fy, y)))
        mismatched += int(not (torch.equal(xz, sampler[0][0]) and torch.equal(xy, sampler[0][1])))
    same_rows = max(float((sampler[a][0] == sampler[b][0]).all(1).double().mean()) for a, b in ((0, 1), (1, 2), (0, 2)))
    rows = list(dynamics(model, emb, s["etas"], k=3, kind="joint", population="mc", n=s["n"], n_eval=64, seed=s["seed"]))
    W = {k: torch.zeros(s["d"], s["d"], dtype=torch.float64) for k in LAYERS}
    worst = 0.0
    for r, (z, y, _, _) in zip(rows[1:], sampler):
        w = torch.full((s["n"],), 1.0 / s["n"], dtype=torch.float64)
        W = _plain_step(emb, W, LAYERS, z, y, w, s["etas"])
        worst = max(worst, *(rel_error(r["_W"][k], W[k]) for k in LAYERS))
    error = worst + mismatched + (1.0 if same_rows > 0.05 else 0.0)
    return Measurement(error, FLOAT64.rtol, "exact",
                       note=f"steps 1-3: batches equal to the sampler's stream ({6 - mismatched}/6), identical rows between "
                            f"steps <= {same_rows:.3f}, W vs plain d x d autograd on the sampler's batches rel {worst:.1e}",
                       details={"mismatched": mismatched, "same_rows": same_rows, "rel": worst})


register(Claim(
    id="dynamics.streams",
    statement="Each Monte-Carlo step of the population dynamics draws fresh sequences (the sampler's stream of "
              "(seed, step)) and descends the gradient on exactly those; the fixed-sample mode reuses step 1's",
    where="App. B.3 (the population gradient estimated by Monte Carlo), Sec. 4.2 model",
    compared="numerics.dynamics (data_source, chunked float64 gradient sums in token coordinates) vs sample_model_d "
             "on make_generator(step_seed(seed, step)) and one plain d x d autograd step of the CE of "
             "induction_head_logits on the whole batch; successive batches must differ (<= 5% identical rows); "
             "shared: the embeddings",
    kind="exact", tolerance="batches equal exactly; W rel <= 1e-10 (float64) after each of 3 joint steps",
    measure=measure_streams,
    code=("popgrad.numerics.dynamics.data_source", "popgrad.numerics.dynamics.step_seed",
          "popgrad.numerics.dynamics.chunked_full_gradients", "popgrad.numerics.samplers.sample_model_d",
          "popgrad.numerics.induction_head.induction_head_logits"),
    sides=(("popgrad.numerics.dynamics.data_source", "popgrad.numerics.dynamics.chunked_full_gradients"),
           ("popgrad.numerics.samplers.sample_model_d", "popgrad.claims.dynamics._plain_step",
            "popgrad.numerics.induction_head.induction_head_logits"))))


# ----------------------------------------------------------------------------- (v) training stream, step 0
def measure_training_loss_step0() -> Measurement:
    """numerics/training.py on model D (float64, nn.Linear-like init), step 0: its reported in-context loss, and
    step_loss on the first batch of its stream, vs dynamics.full_loss (token coordinates) at the same matrices."""
    cfg = training.TrainConfig(data="D", N=6, T=7, d=24, batch=300, steps=1, probe_every=1, seed=4, dtype="float64",
                               device="cpu", momentum=0.0, weight_decay=0.0, cutoff=4)
    run = training.setup(cfg)
    stream = training.BatchStream(run.model, run.cfg, "cpu", seed=cfg.seed + 2)       # train()'s model-D stream
    z, mask, tgt = next(stream)
    loss, *_ = training.step_loss(run, z, mask, tgt)
    reported = training.train(cfg)["rows"][0]["loss_in_context"]
    W = {k: v.detach() for k, v in run.params.items()}
    co = coordinates(run.emb)
    w = torch.full((z.shape[0],), 1.0 / z.shape[0], dtype=torch.float64)
    ours = float(full_loss(co, scores(co, W), z, tgt[:, -1], w))
    errs = {"step_loss": abs(float(loss.detach()) - ours) / ours, "train_row": abs(reported - ours) / ours}
    return Measurement(nanmax(errs.values()), FLOAT64.rtol, "exact",
                       note=f"loss {ours:.6f}; rel error step_loss {errs['step_loss']:.1e}, train() row "
                            f"{errs['train_row']:.1e}", details=errs)


register(Claim(
    id="dynamics.training_loss_step0",
    statement="The model-D training loss at step 0 is the dynamics' full cross-entropy at position T on the "
              "same sequences and matrices",
    where="Sec. 4.2 model, eq. (2); App. B.3 model D (training vs population dynamics)",
    compared="numerics.training (its model-D stream, step_loss and train()'s step-0 row; numerics.transformer in d "
             "dimensions) vs numerics.dynamics.full_loss (token coordinates), nonzero nn.Linear-like matrices; "
             "shared: the embeddings and the sequences",
    kind="exact", tolerance="rel <= 1e-10 (float64)",
    measure=measure_training_loss_step0,
    code=("popgrad.numerics.training.train", "popgrad.numerics.training.step_loss",
          "popgrad.numerics.dynamics.full_loss", "popgrad.numerics.dynamics.last_position_logits"),
    sides=(("popgrad.numerics.training.step_loss",), ("popgrad.numerics.dynamics.full_loss",))))


# ----------------------------------------------------------------------------- (vi) determinism
DETERMINISM = {"N": 6, "T": 6, "d": 32, "etas": "5:50:50", "schedule": "joint", "k": 12, "n": 1100, "n_eval": 300,
               "seed": 0}
NUMBERS = ("loss", "accuracy", "accuracy_se", "recall_W_O2", "recall_W_K2", "recall_W_K1")


def _run_here(s, threads: int) -> list:
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = SecondOccurrenceModel(s["N"], s["T"])
        emb = make_embeddings(s["d"], s["N"], s["T"], seed=s["seed"], dtype="float32")
        etas = dict(zip(LAYERS, map(float, s["etas"].split(":"))))
        return [[r[c] for c in NUMBERS] for r in dynamics(model, emb, etas, k=s["k"], kind=s["schedule"], n=s["n"],
                                                        n_eval=s["n_eval"], seed=s["seed"])]
    finally:
        torch.set_num_threads(old)


def _run_cli(s, threads: int) -> list:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = [sys.executable, "-m", "popgrad", "dynamics", "--json", "--seeds", "1", "--dtype", "float32",
            "--seed", str(s["seed"]), "--etas", s["etas"], "--schedule", s["schedule"],
            *(x for key in ("N", "T", "d", "k", "n") for x in (f"--{key}", str(s[key]))), "--n-eval", str(s["n_eval"])]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=root, check=True).stdout
    return [[r[c] for c in NUMBERS] for r in json.loads(out)["rows"]]


def measure_deterministic_threads() -> Measurement:
    """N=6, T=6, d=32, joint, 12 steps, n=1100 (3 chunks), float32: in-process with 2 torch threads vs
    `python -m popgrad dynamics --json` in a subprocess with OMP_NUM_THREADS=1; every printed number compared."""
    here = _run_here(DETERMINISM, 2)
    cli = _run_cli(DETERMINISM, 1)
    pairs = [(a, b) for ra, rb in zip(here, cli) for a, b in zip(ra, rb)]
    differ = sum(a != b for a, b in pairs) + abs(len(here) - len(cli))
    return Measurement(float(differ), 0.0, "exact",
                       note=f"{differ} of {len(pairs)} numbers differ (loss, accuracy and its se, recalls, "
                            f"{len(here)} rows); final accuracy {here[-1][1]:.4f}",
                       details={"differ": differ, "numbers": len(pairs)})


register(Claim(
    id="dynamics.deterministic_threads",
    statement="The population dynamics give the same numbers with any number of CPU threads: same seed and "
              "arguments, 1 or 2 threads, identical output",
    where="App. B.3 dynamics as computed by popgrad (a property of the implementation, not of the paper)",
    compared="numerics.dynamics in this process with 2 torch threads vs `python -m popgrad dynamics --json` with "
             "OMP_NUM_THREADS=1 (a subprocess), float32, n = 1100 (three gradient chunks); shared: nothing but the "
             "arguments",
    kind="exact", tolerance="0 differing numbers (exact equality, no tolerance)",
    measure=measure_deterministic_threads,
    code=("popgrad.numerics.dynamics.dynamics", "popgrad.numerics.dynamics.chunked_full_gradients"),
    sides=(("popgrad.claims.dynamics._run_here",), ("popgrad.claims.dynamics._run_cli",))))


# ----------------------------------------------------------------------------- (vii) Monte-Carlo -> exact
APPROACH = {"N": 4, "T": 5, "d": 16, "etas": {"W_O2": 3.0, "W_K2": 10.0, "W_K1": 10.0}, "kind": "joint", "k": 6,
            "ns": (256, 1024, 4096, 16384), "replicates": 5}
SLOPE_TOL = 0.15


def measure_mc_approaches_exact() -> Measurement:
    """RMS (over 5 streams) distance after 6 joint steps between Monte-Carlo and exact trajectories, fresh and
    fixed samples, n = 256..16384; slope of log RMS on log n vs -1/2; the RMS at the largest n below 0.1."""
    a = APPROACH
    res = {pop: approach_to_exact(a["N"], a["T"], a["d"], a["etas"], a["kind"], a["k"], a["ns"], a["replicates"],
                                  population=pop)
           for pop in ("mc", "fixed")}
    err = max(abs(r["slope"] + 0.5) for r in res.values())
    if max(r["rms"][-1] for r in res.values()) > 0.1:
        err = math.inf
    return Measurement(err, SLOPE_TOL, "approx",
                       rate="; ".join(f"{p}: n^{r['slope']:.2f} +- {r['slope_se']:.2f}" for p, r in res.items()),
                       note="RMS relative distance to the exact trajectory after 6 joint steps, n = "
                            + "/".join(map(str, a["ns"])) + ": "
                            + "; ".join(f"{p} " + "/".join(f"{v:.3f}" for v in r["rms"]) for p, r in res.items()),
                       details={p: {"rms": r["rms"], "slope": r["slope"], "slope_se": r["slope_se"]}
                                for p, r in res.items()})


register(Claim(
    id="dynamics.mc_approaches_exact",
    statement="The Monte-Carlo population dynamics (fresh or fixed samples of n sequences) approach the exact "
              "population trajectory (model D enumerated) like n^-1/2",
    where="App. B.3 (population gradient steps), estimated by Monte Carlo",
    compared="numerics.dynamics_reference: distance after 6 joint steps between numerics.dynamics on n sampled "
             "sequences (5 streams per n) and on the enumerated model D (N=4, T=5, d=16, etas 3:10:10, float64); "
             "shared: the embeddings",
    kind="approx", tolerance=f"fitted slope within -1/2 +- {SLOPE_TOL} for both fresh and fixed samples, and RMS "
                             "distance < 0.1 at n = 16384",
    measure=measure_mc_approaches_exact,
    code=("popgrad.numerics.dynamics_reference.approach_to_exact", "popgrad.numerics.dynamics_reference.distance_cell",
          "popgrad.numerics.dynamics_reference.fit_slope", "popgrad.numerics.dynamics.dynamics")))


# ----------------------------------------------------------------------------- (vii b) counts vs the population count
COUNTS_EXACT = {"N": 4, "T": 5, "d": 32, "etas": {"W_O2": 3.0, "W_K2": 10.0, "W_K1": 10.0}, "kind": "joint", "k": 60,
                "ns": (64, 4096), "emb_seeds": (0, 1, 2, 3, 4), "streams": 4, "thresholds": (0.5,)}
WITHIN_MIN = 0.9


def measure_counts_match_population() -> Measurement:
    """Monte-Carlo steps to exact accuracy 0.5 against each embedding's population count (the exact trajectory):
    the fraction of the 20 runs within max(2, 5 %) steps of it at n = 4096 (>= WITHIN_MIN), above that at n = 64."""
    c = COUNTS_EXACT
    r = counts_vs_exact(**c)
    th = c["thresholds"][0]
    small, big = (r["summary"][n][th] for n in c["ns"])
    error = 1.0 - big["within"]
    if big["within"] <= small["within"] or any(s["reached"] < s["runs"] for s in (small, big)):
        error = math.inf
    return Measurement(error, 1.0 - WITHIN_MIN, "approx",
                       note="population counts to 0.5 per embedding seed "
                            + "/".join(str(r["exact"][e][th]) for e in c["emb_seeds"]) + "; within max(2, 5 %): "
                            + ", ".join(f"{r['summary'][n][th]['within']:.2f} at n={n}" for n in c["ns"])
                            + "; median |MC - population| "
                            + ", ".join(f"{r['summary'][n][th]['median_abs_diff']:.1f}" for n in c["ns"]),
                       details={"exact": {str(e): r["exact"][e][th] for e in c["emb_seeds"]},
                                "mc": {str(n): {str(e): [x[th] for x in r["mc"][n][e]] for e in c["emb_seeds"]}
                                       for n in c["ns"]}})


register(Claim(
    id="dynamics.counts_match_population",
    statement="The number of Monte-Carlo population steps from zero to accuracy 0.5 approaches the population "
              "count (the exact population trajectory's) as n grows",
    where="App. B.3 (population gradient steps), estimated by Monte Carlo; N=4, T=5, d=32",
    compared="numerics.dynamics_reference.counts_vs_exact: first step at exact accuracy >= 0.5 on the enumerated "
             "model D, for the exact trajectory (population='enumerated') vs 4 Monte-Carlo streams at n = 64 and "
             "4096, 5 embedding seeds, joint, etas 3:10:10, float64; shared: the embeddings and the scoring",
    kind="approx", tolerance=f"at n = 4096 at least {WITHIN_MIN:.0%} of the 20 runs within max(2, 5 %) steps of "
                             "their population count, more than at n = 64, and every run reaching 0.5",
    measure=measure_counts_match_population,
    code=("popgrad.numerics.dynamics_reference.counts_vs_exact", "popgrad.numerics.dynamics_reference.count_cell",
          "popgrad.numerics.dynamics_reference.population_accuracy", "popgrad.numerics.dynamics.dynamics")))


# ----------------------------------------------------------------------------- (viii) converged counts
COUNTS_SMALL = {"N": 8, "T": 8, "d": 64, "etas": "10:100:100", "kind": "joint", "k": 100, "ns": (512, 2048),
                "thresholds": (0.5,), "seeds": (0, 1, 2, 3, 4)}
COUNTS_LARGE = {"N": 8, "T": 8, "d": 64, "etas": "10:100:100", "kind": "joint", "k": 100, "ns": (2048, 8192),
                "thresholds": (0.5, 0.9), "seeds": (0, 1, 2, 3, 4)}


def _eta(text):
    return dict(zip(LAYERS, map(float, text.split(":"))))


def _measure_counts(s) -> Measurement:
    """Steps from zero to each accuracy threshold, per seed (embeddings and streams), at n and 4n sequences per
    step: the medians (unreached = +inf) must agree within the half-width of the 4n median's bootstrap interval,
    and every seed must reach every threshold at both n."""
    res = {n: steps_to_reach(s["N"], s["T"], s["d"], _eta(s["etas"]), kind=s["kind"], k=s["k"], seeds=s["seeds"],
                             thresholds=s["thresholds"], n=n, n_eval=2048) for n in s["ns"]}
    a, b = s["ns"]
    error, parts, details = 0.0, [], {}
    for th in s["thresholds"]:
        firsts = {n: [x for x in res[n]["first"][th] if x is not None] for n in s["ns"]}
        meds = {n: median_interval(firsts[n], len(s["seeds"])) for n in s["ns"]}
        if any(len(firsts[n]) < len(s["seeds"]) for n in s["ns"]):
            error = math.inf
            parts.append(f"acc >= {th}: reached in " + ", ".join(f"{len(firsts[n])}/{len(s['seeds'])} at n={n}"
                                                                 for n in s["ns"]))
            continue
        half = max((meds[b][2] - meds[b][1]) / 2, 1.0)
        error = max(error, abs(meds[b][0] - meds[a][0]) / half)
        parts.append(f"acc >= {th}: median step " + ", ".join(
            f"{meds[n][0]:.0f} [{meds[n][1]:.0f}, {meds[n][2]:.0f}] at n={n}" for n in s["ns"])
            + " (95% bootstrap, 5 seeds; per seed " + " vs ".join("/".join(map(str, res[n]["first"][th])) for n in s["ns"]) + ")")
        details[str(th)] = {str(n): res[n]["first"][th] for n in s["ns"]}
    return Measurement(error, 1.0, "approx",
                       note=f"N={s['N']}, T={s['T']}, d={s['d']}, {s['kind']}, etas {s['etas']}: " + "; ".join(parts),
                       details=details)


register(Claim(
    id="dynamics.small_counts",
    statement="Population gradient descent from zero (all three layers together) assembles a head that reaches "
              "accuracy 0.5 on model D in a number of steps that is converged in the Monte-Carlo sample size",
    where="Theorem 3 extended to many steps per layer (App. B.3, Sec. 6), N=8, T=8, d=64",
    compared="numerics.dynamics at n = 512 vs 2048 fresh sequences per step (same 5 seeds: embeddings, streams and "
             "evaluation sequences), median first step reaching 0.5 with a 95% bootstrap interval over seeds; "
             "shared: the embeddings and evaluation sets",
    kind="approx", tolerance="every seed reaches 0.5 at both n, and |median(2048) - median(512)| <= the half-width of "
                             "the n = 2048 interval",
    measure=lambda: _measure_counts(COUNTS_SMALL),
    code=("popgrad.numerics.dynamics.steps_to_reach", "popgrad.numerics.dynamics.median_interval",
          "popgrad.numerics.dynamics.dynamics")))

register(Claim(
    id="dynamics.small_counts_converged",
    statement="Population gradient descent from zero (all three layers together) reaches accuracy 0.5 and 0.9 "
              "on model D in step counts that are converged in the Monte-Carlo sample size",
    where="Theorem 3 extended to many steps per layer (App. B.3, Sec. 6), N=8, T=8, d=64",
    compared="numerics.dynamics at n = 2048 vs 8192 fresh sequences per step (same 5 seeds), median first step "
             "reaching 0.5 and 0.9 with 95% bootstrap intervals over seeds; shared: embeddings and evaluation sets",
    kind="approx", tolerance="every seed reaches both thresholds at both n, and each |median(8192) - median(2048)| "
                             "<= the half-width of the n = 8192 interval",
    measure=lambda: _measure_counts(COUNTS_LARGE),
    code=("popgrad.numerics.dynamics.steps_to_reach", "popgrad.numerics.dynamics.median_interval",
          "popgrad.numerics.dynamics.dynamics"), slow=True))


# ----------------------------------------------------------------------------- (ix) the summary statistic
def _loop_median_interval(steps, seeds, level=0.95, resamples=2000, seed=0):
    """Reference: the same statistic by a Python loop over resamples (statistics.median, +inf for unreached)."""
    v = sorted(steps) + [math.inf] * (seeds - len(steps))
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(v), size=(resamples, len(v)), replace=True)     # the resampled seeds, row by row
    meds = sorted(statistics.median([v[i] for i in row]) for row in idx)
    lo, hi = meds[int(math.floor((1 - level) / 2 * (resamples - 1)))], meds[int(math.ceil((1 + level) / 2 * (resamples - 1)))]
    return tuple(None if not math.isfinite(x) else float(x) for x in (statistics.median(v), lo, hi))


CENSORED = (([86, 74, 80, 81, 68, 75, 54, 65], 10), ([245, 225, 155], 5), ([30, 31], 5), ([12, 19, 15, 40, 22], 5))


def measure_median_interval() -> Measurement:
    """median_interval (numpy, vectorized over resamples) vs a loop with statistics.median, on per-seed counts with
    and without unreached seeds (+inf); the values must be equal (None where +inf)."""
    bad = []
    for steps, seeds in CENSORED:
        a = median_interval(steps, seeds)
        b = _loop_median_interval(steps, seeds)
        if a != b:
            bad.append((steps, seeds, a, b))
    return Measurement(float(len(bad)), 0.0, "exact",
                       note=f"{len(CENSORED) - len(bad)}/{len(CENSORED)} equal; e.g. 8 of 10 seeds reached: "
                            f"{median_interval(*CENSORED[0])}", details={"mismatches": [str(x) for x in bad]})


register(Claim(
    id="dynamics.median_interval",
    statement="The summary of `popgrad dynamics`: the median first step over seeds (a seed that never reaches counts "
              "as +inf) and its percentile-bootstrap interval",
    where="the step counts reported for the dynamics (a statistic of popgrad, not of the paper)",
    compared="numerics.dynamics.median_interval (numpy, vectorized over 2000 resamples) vs a Python loop with "
             "statistics.median over the same resample indices; shared: the resample generator's seed",
    kind="exact", tolerance="equal values on 4 sets of counts (2 with unreached seeds)",
    measure=measure_median_interval,
    code=("popgrad.numerics.dynamics.median_interval",),
    sides=(("popgrad.numerics.dynamics.median_interval",), ("popgrad.claims.dynamics._loop_median_interval",))))


# ----------------------------------------------------------------------------- (x) medians on any machine
# Reference per (schedule, threshold): median step over 40 seeds, its 95 % bootstrap interval, and the 95 % range
# of a 5-seed median (resamples of 5 of the 40): docs/results/dynamics_medians.json, written by
# `python docs/results/dynamics_medians.py report CACHE docs/results/dynamics_medians` (tests/test_dynamics_medians_doc.py
# keeps these equal to it).
MEDIANS_CI = {"N": 8, "T": 8, "d": 64, "etas": "7.5:75:75", "n": 2048, "k": 200, "fresh_seeds": (0, 1, 2, 3, 4),
              "reference_seeds": 40,
              "reference": {("joint", 0.5): (30.0, 26.0, 32.5, 21.0, 45.0), ("joint", 0.9): (45.0, 43.5, 50.0, 35.0, 61.0),
                            ("alternating", 0.5): (51.0, 47.5, 57.0, 42.0, 69.0),
                            ("alternating", 0.9): (101.0, 92.5, 104.0, 72.0, 125.0)}}



def _g(x) -> str:
    return "inf" if x is None else f"{x:g}"


def _inside(x, lo, hi) -> bool:
    """x inside [lo, hi], None meaning +inf (an unreached median or an open interval end)."""
    inf = math.inf
    x, lo, hi = (inf if v is None else v for v in (x, lo, hi))
    return lo <= x <= hi


def measure_medians_reproduce(spec: dict) -> Measurement:
    """A fresh run (numerics.dynamics.steps_to_reach, 5 seeds, float32) against the reference: per (schedule,
    threshold) the fresh median inside the reference's 95 % range of a 5-seed median, and the reference median
    inside the fresh run's 95 % bootstrap interval; error = the number of those 2 x 4 conditions that fail."""
    fails, parts, details = 0, [], {}
    for kind in ("joint", "alternating"):
        ths = sorted(th for (k, th) in spec["reference"] if k == kind)
        res = steps_to_reach(spec["N"], spec["T"], spec["d"], _eta(spec["etas"]), kind=kind, k=spec["k"],
                             seeds=spec["fresh_seeds"], thresholds=tuple(ths), n=spec["n"], n_eval=2048)
        for th in ths:
            reached = [x for x in res["first"][th] if x is not None]
            med, lo, hi = median_interval(reached, len(spec["fresh_seeds"]))
            rmed, rlo, rhi, plo, phi = spec["reference"][(kind, th)]
            ok = (_inside(med, plo, phi), _inside(rmed, lo, hi))
            fails += 2 - sum(ok)
            parts.append(f"{kind} {th}: fresh {_g(med)} [{_g(lo)}, {_g(hi)}] vs reference {rmed:g} [{rlo:g}, {rhi:g}] "
                         f"(5-seed range [{plo:g}, {phi:g}])" + ("" if all(ok) else " OUTSIDE"))
            details[f"{kind}/{th}"] = {"fresh": res["first"][th], "fresh_median": [med, lo, hi],
                                       "reference": [rmed, rlo, rhi, plo, phi]}
    return Measurement(float(fails), 0.0, "approx", value="; ".join(parts),
                       note=f"N={spec['N']}, T={spec['T']}, d={spec['d']}, etas {spec['etas']}, n={spec['n']}, "
                            f"seeds {spec['fresh_seeds'][0]}-{spec['fresh_seeds'][-1]} against "
                            f"{spec['reference_seeds']} reference seeds: " + "; ".join(parts),
                       details=details)


register(Claim(
    id="dynamics.medians_reproduce",
    statement="The documented medians of the steps from zero to accuracy 0.5 and 0.9 (joint and alternating) are "
              "reproduced by a fresh 5-seed run within their error, both ways (N=8, T=8, d=64): the fresh median "
              "inside the documented 95 % range of a 5-seed median, the documented 40-seed median inside the fresh "
              "run's 95 % bootstrap interval",
    where="docs/dynamics.md 'Which numbers hold on any machine': Theorem 3 extended to many steps per layer "
          "(App. B.3), its step counts",
    compared="numerics.dynamics.steps_to_reach on seeds 0-4 now vs the medians, bootstrap intervals and 5-seed "
             "ranges of 40 seeds of `popgrad dynamics` cells in docs/results/dynamics_medians.json (written by "
             "docs/results/dynamics_medians.py); shared: the setting",
    kind="approx", tolerance="per schedule and threshold: fresh median inside the reference's 5-seed range and "
                             "reference median inside the fresh interval (0 of 8 conditions may fail)",
    measure=lambda: measure_medians_reproduce(MEDIANS_CI),
    code=("popgrad.numerics.dynamics.steps_to_reach", "popgrad.numerics.dynamics.median_interval",
          "popgrad.numerics.dynamics.dynamics")))
