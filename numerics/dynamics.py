"""Population dynamics beyond one step: k gradient steps per layer, top-down, in rounds.

Theorem 3 (App. B.3) takes ONE population gradient step per layer from zero: W_O^2, then W_K^2,
then W_K^1. Here each layer takes k steps, top-down, and the three-layer pass is repeated for
`rounds` rounds ("consecutive"); or the layers alternate one step at a time ("alternating");
or all three move together ("joint"). After every step the assembled Sec. 4.2 head is evaluated
on fresh model-D sequences (accuracy at the last position, target o) and the three matrices are
probed by memory recall (9) against eq. (7) (popgrad.memory).

Two losses (`loss=`):

* "full" (default): the cross-entropy at the last position T of the full Sec. 4.2 model
  (`popgrad.numerics.induction_head.induction_head_logits`, residual stream included, causal
  softmax in both layers, true p_hat). This is the loss a user trains; Theorem 3's matrices are
  one step of simplified versions of it.
* "b3": the simplified losses of App. B.3, one per layer (`popgrad.numerics.theorem3_mc`:
  step1_loss for W_O^2, step2_loss for W_K^2, step3_loss for W_K^1, with p_hat = 1/N or the
  true p_hat). This is the literal extension of the theorem. Where a layer is still zero and
  p_hat = 1/N, its step is the exact population step of the engine `popgrad.theory.theorem3`
  (float64, no sampling); every other step is Monte-Carlo autograd.

Token coordinates (how "full" is fast and still exact). Every residual vector of the Sec. 4.2
model lies in the span of B1 = [W_E, P] (d, N+T) after the embedding and of B2 = [B1, Phi_1 B1]
(d, 2(N+T)) after layer 1, so the model's output depends on the trained matrices only through
    S1 = B1^T W_K^1 B1,   S2 = B2^T W_K^2 B2,   SO = W_U W_O^2 W_V^2 B2.
The gradient is dL/dW_K^1 = B1 (dL/dS1) B1^T (etc.), so one gradient step on W in R^{d x d} is
computed in these coordinates at cost independent of d^2 per token, exactly (float64), and the
d x d matrices are kept for the probes. A check holds this against autograd of
`induction_head_logits` on the enumerated model D.

Populations: "mc" draws n fresh model-D sequences per step from a generator seeded by
(seed, step) (`step_seed`); "fixed" reuses step 1's n sequences at every step (full-batch
descent on an empirical population); "enumerated" is model D itself (exact population
gradient, small N and T). Every step runs with one torch CPU thread and sums its gradient over
fixed chunks in float64, so on one machine a run's numbers do not depend on the thread count or the
worker (float32 kernels of other CPUs round differently: per-seed counts differ between machines,
medians over seeds agree within their intervals).

Conventions: code positions 0..T-1, key-query matrices in the eq. (7) convention (query^T W key).
A "step" with step size eta on layer l is W_l <- W_l - eta_l * grad_{W_l} L (the population
gradient estimated on `n` fresh sequences, or exact on the enumerated model D).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from popgrad.data import SecondOccurrenceModel
from popgrad.embeddings import make_embeddings
from popgrad.errors import PopgradError, choice, positive_float, positive_int
from popgrad.memory import eq7_targets, memory_recall
from popgrad.numerics import theorem3_mc as mc
from popgrad.numerics.options import LOSSES, PHAT, POPULATIONS, SCHEDULES
from popgrad.numerics.samplers import cpu_threads, make_generator, sample_model_d
from popgrad.theory import theorem3 as t3

LAYERS = ("W_O2", "W_K2", "W_K1")                # top-down order of Theorem 3


# ----------------------------------------------------------------------------- token coordinates
@dataclass(frozen=True)
class Coordinates:
    """The fixed bases of the Sec. 4.2 model in token/position coordinates (see module docstring)."""

    B1: torch.Tensor   # (d, N+T)        [W_E, P]
    B2: torch.Tensor   # (d, 2(N+T))     [B1, Phi_1 B1]
    VB2: torch.Tensor  # (d, 2(N+T))     W_V^2 B2
    W_U: torch.Tensor  # (N, d)
    R: torch.Tensor    # (N, 2(N+T))     W_U B2, the residual readout
    N: int
    T: int


def coordinates(emb) -> Coordinates:
    """Bases B1, B2 of the residual stream of the Sec. 4.2 model (eq. (2)) for embeddings `emb`."""
    B1 = torch.cat([emb.W_E, emb.P], dim=1)                                # (d, N+T)
    B2 = torch.cat([B1, emb.Phi1 @ B1], dim=1)                             # (d, 2(N+T))
    return Coordinates(B1, B2, emb.W_V2 @ B2, emb.W_U, emb.W_U @ B2, emb.N, emb.T)


def scores(co: Coordinates, W: dict) -> dict:
    """The three projections S1 = B1^T W_K1 B1, S2 = B2^T W_K2 B2, SO = W_U W_O2 W_V2 B2 of eq. (2)."""
    return {"W_K1": co.B1.T @ W["W_K1"] @ co.B1, "W_K2": co.B2.T @ W["W_K2"] @ co.B2,
            "W_O2": co.W_U @ W["W_O2"] @ co.VB2}


def lift(co: Coordinates, name: str, g: torch.Tensor) -> torch.Tensor:
    """dL/dW (d, d) from dL/dS of `scores` (chain rule through the fixed bases)."""
    if name == "W_K1":
        return co.B1 @ g @ co.B1.T
    if name == "W_K2":
        return co.B2 @ g @ co.B2.T
    return co.W_U.T @ g @ co.VB2.T


def one_hot_coordinates(co: Coordinates, z: torch.Tensor, dtype) -> torch.Tensor:
    """c_t = [e_{z_t}; e_t] with x_t = B1 c_t: (B, T, N+T)."""
    B, T = z.shape
    tok = torch.nn.functional.one_hot(z, co.N).to(dtype)                   # (B, T, N)
    pos = torch.eye(T, dtype=dtype, device=z.device).expand(B, T, T)       # (B, T, T)
    return torch.cat([tok, pos], dim=2)


def last_position_logits(co: Coordinates, S: dict, z: torch.Tensor) -> torch.Tensor:
    """Eq. (2) (Sec. 4.2, no W_F) at the last position, in token coordinates: logits (B, N).

    x_t = B1 c_t with c_t = [e_{z_t}; e_t]; layer-1 scores x_t^T W_K1 x_s = c_t^T S1 c_s (gathers);
    h_t = x_t + Phi_1 sum_s A1[t,s] x_s = B2 u_t; out_T = h_T + W_O2 W_V2 sum_s A2[s] h_s;
    logits = W_U out_T = R u_T + SO v with v = sum_s A2[s] u_s.
    """
    N, T = co.N, z.shape[1]
    S1 = S["W_K1"]
    tt, tp, pt, pp = S1[:N, :N], S1[:N, N:N + T], S1[N:N + T, :N], S1[N:N + T, N:N + T]
    s1 = (tt[z[:, :, None], z[:, None, :]] + tp[z] + pt[:, z].permute(1, 0, 2) + pp[None])  # (B, T, T) [b, t, s]
    causal = torch.ones(T, T, dtype=torch.bool, device=z.device).tril()
    A1 = torch.softmax(s1.masked_fill(~causal, float("-inf")), dim=-1)     # (B, T, T)
    E1 = torch.nn.functional.one_hot(z, N).to(A1.dtype)                    # (B, T, N)
    AE = A1 @ E1                                                           # (B, T, N)
    # u_s = [e_{z_s}; e_s; (A1 E1)_s; A1_s] (blocks N, T, N, T); only u_T is a query
    uT = torch.cat([E1[:, -1], A1.new_zeros(z.shape[0], T).index_fill_(1, torch.tensor([T - 1], device=z.device), 1.0),
                    AE[:, -1], A1[:, -1]], dim=1)                          # (B, 2(N+T))
    q = uT @ S["W_K2"]                                                     # (B, 2(N+T))
    qa, qb, qc, qd = q[:, :N], q[:, N:N + T], q[:, N + T:2 * N + T], q[:, 2 * N + T:]
    s2 = qa.gather(1, z) + qb + (AE @ qc[:, :, None])[:, :, 0] + (A1 @ qd[:, :, None])[:, :, 0]   # (B, T)
    A2 = torch.softmax(s2, dim=-1)[:, None, :]                             # (B, 1, T) all s <= T
    v = torch.cat([A2 @ E1, A2, A2 @ AE, A2 @ A1], dim=2)[:, 0]            # (B, 2(N+T)) sum_s A2[s] u_s
    return uT @ co.R.T + v @ S["W_O2"].T                                   # (B, N)


def full_loss(co: Coordinates, S: dict, z, y, weights) -> torch.Tensor:
    """The population cross-entropy at position T of the Sec. 4.2 model: sum_b w_b l(y_b, logits_b)."""
    ce = torch.nn.functional.cross_entropy(last_position_logits(co, S, z), y, reduction="none")  # (B,)
    return (weights.to(ce.dtype) * ce).sum()


def full_gradients(co: Coordinates, W: dict, names, z, y, weights) -> tuple[dict, float]:
    """{name: dL/dW (d, d)} for the full loss at W, and the loss value."""
    S = {k: v.detach().clone().requires_grad_(k in names) for k, v in scores(co, W).items()}
    loss = full_loss(co, S, z, y, weights)
    grads = torch.autograd.grad(loss, [S[k] for k in names])
    return {k: lift(co, k, g) for k, g in zip(names, grads)}, float(loss.detach())


# ----------------------------------------------------------------------------- the B.3 losses
def b3_layer_loss(name, emb, W: dict, Wl, z, y, weights, phat):
    """The App. B.3 loss of layer `name` at its value Wl, the other layers at W (B.3.1, (17), Lemma 5)."""
    if name == "W_O2":
        return mc.step1_loss(Wl, emb, z, y, weights)                       # cross-entropy (p_hat = 1/N at 0)
    if name == "W_K2":
        return mc.step2_loss(Wl, emb, W["W_O2"], z, y, weights, phat)
    return mc.step3_loss(Wl, emb, W["W_O2"], W["W_K2"], z, y, weights, phat)


def b3_gradients(emb, W: dict, names, z, y, weights, phat) -> tuple[dict, float]:
    """{name: dL_name/dW_name} for the B.3 losses (each layer its own loss) and the summed loss."""
    out, total = {}, 0.0
    for k in names:
        Wl = W[k].detach().clone().requires_grad_(True)
        loss = b3_layer_loss(k, emb, W, Wl, z, y, weights, phat)
        (out[k],) = torch.autograd.grad(loss, Wl)
        total += float(loss.detach())
    return out, total


def engine_step(model, emb, W: dict, name: str, eta: float) -> torch.Tensor:
    """The exact population step from zero of layer `name` at the other layers' current values (p_hat = 1/N)."""
    dt = emb.W_E.dtype
    emb = emb.to(dtype="float64")                                          # the engine is float64 only
    W = {k: v.to(torch.float64) for k, v in W.items()}
    return _engine_step(t3, model, emb, W, name, eta).to(dt)


def _engine_step(t3, model, emb, W, name, eta):
    if name == "W_O2":
        return t3.step1_W_O2(model, emb, eta)
    if name == "W_K2":
        return t3.step2_W_K2(model, emb, W["W_O2"], eta, phat="uniform")
    return t3.step3_W_K1(model, emb, W["W_O2"], W["W_K2"], eta, phat="uniform")


# ----------------------------------------------------------------------------- schedules
def schedule(kind: str, k: int, rounds: int = 1) -> list[tuple[int, tuple[str, ...]]]:
    """The list of (round, layers updated) of a run, top-down.

    consecutive: per round, k steps on W_O2, then k on W_K2, then k on W_K1.
    alternating: per round, k times (one step on W_O2, W_K2, W_K1).
    joint: per round, k steps updating the three layers together.
    Each layer takes k * rounds steps in all three schedules.
    """
    choice("schedule", kind, SCHEDULES)
    k, rounds = positive_int("k", k), positive_int("rounds", rounds)
    out = []
    for r in range(1, rounds + 1):
        if kind == "consecutive":
            out += [(r, (name,)) for name in LAYERS for _ in range(k)]
        elif kind == "alternating":
            out += [(r, (name,)) for _ in range(k) for name in LAYERS]
        else:
            out += [(r, LAYERS)] * k
    return out


def step_sizes(eta) -> dict:
    """{layer: eta} from one number or a dict per layer (all > 0)."""
    if isinstance(eta, dict):
        missing = set(LAYERS) - set(eta)
        if missing:
            raise PopgradError(f"eta needs a value for every layer, missing {sorted(missing)}")
        return {k: positive_float(f"eta[{k}]", eta[k]) for k in LAYERS}
    e = positive_float("eta", eta)
    return {k: e for k in LAYERS}


# ----------------------------------------------------------------------------- probes
def accuracy(co: Coordinates, W: dict, z, y, batch: int = 4096) -> tuple[float, float]:
    """In-context accuracy at position T (argmax vs o) on the given sequences, and its standard error."""
    S = scores(co, W)
    hits = 0
    with torch.no_grad():
        for s in range(0, z.shape[0], batch):
            pred = last_position_logits(co, S, z[s:s + batch]).argmax(-1)
            hits += int((pred == y[s:s + batch]).sum())
    n = z.shape[0]
    p = hits / n
    return p, math.sqrt(p * (1 - p) / n)


def recalls(emb, W: dict) -> dict:
    """Memory recall (9) of each matrix against its eq. (7) target (popgrad.memory)."""
    tg = eq7_targets(emb)
    return {k: memory_recall(W[k], *tg[k]) for k in LAYERS}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """<a, b> / (|a| |b|) (Frobenius); nan if either is zero."""
    na, nb = float(torch.linalg.vector_norm(a)), float(torch.linalg.vector_norm(b))
    return float((a * b).sum()) / (na * nb) if na > 0 and nb > 0 else float("nan")


# ----------------------------------------------------------------------------- the run
CHUNK = 512                 # sequences per gradient chunk: the reduction order depends on this only


def step_seed(seed: int, step: int) -> int:
    """The seed of the Monte-Carlo sequences of `step` in run `seed` (a hash of both, < 2^63).

    Each step's sequences depend on (seed, step, n) only: not on chunking, threads or workers."""
    digest = hashlib.sha256(f"popgrad.dynamics:{seed}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def data_source(model, population: str, n: int, seed: int, device):
    """A function step -> (z, y, weights).

    mc: n fresh sequences per step, drawn from the stream of (seed, step); fixed: the same n
    sequences every step (those of step 1: full-batch descent on an empirical population);
    enumerated: model D exactly (weights = probabilities)."""
    choice("population", population, POPULATIONS)
    if population == "enumerated":
        z, y, w = mc.enumerated(model, device)
        return lambda step: (z, y, w)

    def draw(step):
        z, y, _, _ = sample_model_d(model, n, make_generator(step_seed(seed, step), device))
        return z, y, torch.full((n,), 1.0 / n, dtype=torch.float64, device=z.device)

    if population == "fixed":
        batch = draw(1)
        return lambda step: batch
    return draw


def chunked_full_gradients(co: Coordinates, W: dict, names, z, y, weights, chunk: int = CHUNK) -> tuple[dict, float]:
    """`full_gradients` summed over fixed chunks of `chunk` sequences, in order, in float64.

    The sum depends on the chunk size only (not on n's split over threads or workers); the
    gradients are lifted to d x d once, from the float64 sums, then cast to W's dtype."""
    S = scores(co, W)
    acc = {k: torch.zeros_like(S[k], dtype=torch.float64) for k in names}
    total = 0.0
    for s in range(0, z.shape[0], chunk):
        leaves = {k: v.detach().clone().requires_grad_(k in names) for k, v in S.items()}
        loss = full_loss(co, leaves, z[s:s + chunk], y[s:s + chunk], weights[s:s + chunk])
        for k, g in zip(names, torch.autograd.grad(loss, [leaves[k] for k in names])):
            acc[k] += g.to(torch.float64)
        total += float(loss.detach())
    dt = W[names[0]].dtype
    return {k: lift(co, k, acc[k].to(dt)) for k in names}, total


def dynamics(model, emb, eta, k=1, rounds=1, kind="consecutive", loss="full", phat="uniform",
             population="mc", n=4096, n_eval=4096, seed=0, exact_first=True, engine_cosine=False, chunk=CHUNK):
    """Iterate the population dynamics; yields one row (dict) per step, step 0 = all matrices zero.

    Row: step, round, layer(s) updated, steps taken per layer, loss (before the step), accuracy and
    its standard error on `n_eval` fixed fresh sequences, recall (9) per layer, and for a layer's
    first step (from zero) the cosine with the exact engine's one-step matrix (`engine_cosine`).
    The current matrices are in row["_W"] (not printed).

    Deterministic by construction: every step runs with one torch CPU thread, its sequences come
    from the stream of (seed, step) (`step_seed`), and its gradient is a fixed-order float64 sum
    over chunks of `chunk` sequences (CHUNK by default); so on one machine the output is the same with any thread
    count or worker.
    """
    choice("loss", loss, LOSSES)
    choice("phat", phat, PHAT)
    etas = step_sizes(eta)
    plan = schedule(kind, k, rounds)
    dev, dt = emb.W_E.device, emb.W_E.dtype
    with cpu_threads(dev, 1):                           # even the fixed bases: a 2-thread matmul rounds differently
        co = coordinates(emb)
    draw = data_source(model, population, positive_int("n", n), seed, dev)
    ze, ye, _, _ = sample_model_d(model, positive_int("n_eval", n_eval), make_generator(10_000 + seed, dev))
    W = {name: torch.zeros(emb.d, emb.d, dtype=dt, device=dev) for name in LAYERS}
    taken = {name: 0 for name in LAYERS}

    def row(step, rnd, names, loss_value, cos):
        with cpu_threads(dev, 1):
            acc, se = accuracy(co, W, ze, ye)
            rec = recalls(emb, W)
        return {"step": step, "round": rnd, "layer": "+".join(names), "loss": loss_value,
                "accuracy": acc, "accuracy_se": se, "n_eval": ze.shape[0],
                **{f"steps_{name}": taken[name] for name in LAYERS},
                **{f"recall_{name}": r for name, r in rec.items()}, "cos_engine": cos, "_W": W}

    yield row(0, 0, ("none",), None, None)
    for step, (rnd, names) in enumerate(plan, start=1):
        with cpu_threads(dev, 1):
            W, lv, cos = _step(model, emb, co, W, names, draw(step), etas, taken, loss, phat, exact_first,
                               engine_cosine, positive_int("chunk", chunk))
        for nm in names:
            taken[nm] += 1
        yield row(step, rnd, names, lv, cos)


def _step(model, emb, co, W, names, batch, etas, taken, loss, phat, exact_first, engine_cosine, chunk):
    """One step of the layers `names`: (new W, loss before the step, cosine with the engine or None)."""
    z, y, w = batch
    use_engine = loss == "b3" and phat == "uniform" and exact_first
    from_zero = [nm for nm in names if taken[nm] == 0]
    if loss == "full":
        grads, lv = chunked_full_gradients(co, W, names, z, y, w, chunk)
    else:
        auto = [nm for nm in names if not (use_engine and nm in from_zero)]
        grads, lv = b3_gradients(emb, W, auto, z, y, w, phat) if auto else ({}, None)
    new, cos = {}, None
    for nm in names:
        if nm in grads:
            new[nm] = W[nm] - etas[nm] * grads[nm]
        else:
            new[nm] = engine_step(model, emb, W, nm, etas[nm])
        if engine_cosine and nm in from_zero and len(names) == 1:
            cos = cosine(new[nm], engine_step(model, emb, W, nm, etas[nm]))
    return {**W, **new}, lv, cos


def memory_estimate_floats(N: int, T: int, d: int, n: int, n_eval: int, loss: str) -> float:
    """Floats held at once by one step (an upper estimate, for refusing up front): the n sequences,
    and the activations of one gradient chunk (full loss) or of all n (B.3 losses, d-space)."""
    c = 2 * (N + T)
    per_seq = T * (N + T) + 3 * T * T + 3 * T * c + 2 * c + N                # full loss, token coordinates
    held = 4.0 * min(n, CHUNK) * per_seq
    if loss == "b3":
        held = 4.0 * n * max(per_seq, 8 * T * d)                              # d-space activations
    return 12.0 * d * d + 2.0 * n * T + held + 2.0 * min(n_eval, 4096) * per_seq


def steps_to_reach(N, T, d, eta, kind="alternating", k=100, rounds=1, seeds=(0, 1, 2), thresholds=(0.5, 0.9),
                   n=2048, n_eval=2048, dtype="float32", device="cpu", stop_at_last=True) -> dict:
    """Per seed: the first step (and steps per layer) at which the head's accuracy reaches each threshold.

    Returns {"first": {threshold: [step or None per seed]}, "per_layer": {...}, "best": [(acc, se) per seed]}.
    With `stop_at_last`, a seed stops once the largest threshold is reached.
    """
    model = SecondOccurrenceModel(N, T)
    out = {"first": {th: [] for th in thresholds}, "per_layer": {th: [] for th in thresholds}, "best": [],
           "steps_run": []}
    for seed in seeds:
        emb = make_embeddings(d, N, T, seed=seed, dtype=dtype, device=device)
        first = {th: None for th in thresholds}
        per_layer = {th: None for th in thresholds}
        best, last = (0.0, 0.0), 0
        for r in dynamics(model, emb, eta, k=k, rounds=rounds, kind=kind, n=n, n_eval=n_eval, seed=seed):
            last = r["step"]
            if r["accuracy"] > best[0]:
                best = (r["accuracy"], r["accuracy_se"])
            for th in thresholds:
                if first[th] is None and r["accuracy"] >= th:
                    first[th] = r["step"]
                    per_layer[th] = max(r[f"steps_{nm}"] for nm in LAYERS)
            if stop_at_last and first[max(thresholds)] is not None:
                break
        for th in thresholds:
            out["first"][th].append(first[th])
            out["per_layer"][th].append(per_layer[th])
        out["best"].append(best)
        out["steps_run"].append(last)
    return out


def median_interval(steps, seeds: int, level: float = 0.95, resamples: int = 2000, seed: int = 0):
    """Median over `seeds` runs of the first step reaching a threshold (runs that never reach it count as
    +inf), and a percentile bootstrap interval of that median (resampling runs; fixed generator).
    Returns (median, lo, hi), each None where it is +inf (more than half the runs did not reach)."""
    v = np.array(sorted(steps) + [np.inf] * (seeds - len(steps)), dtype=float)
    rng = np.random.default_rng(seed)
    meds = np.sort(np.median(rng.choice(v, size=(resamples, v.size), replace=True), axis=1))
    lo = meds[int(np.floor((1 - level) / 2 * (resamples - 1)))]
    hi = meds[int(np.ceil((1 + level) / 2 * (resamples - 1)))]
    return tuple(None if not np.isfinite(x) else float(x) for x in (np.median(v), lo, hi))


def median_prediction_range(steps, seeds: int, k: int, level: float = 0.95, resamples: int = 20000, seed: int = 0):
    """The range a median over `k` fresh runs falls in: the central `level` of the medians of `resamples`
    draws of k runs (with replacement) from these `seeds` runs (those that never reach count as +inf).
    Returns (lo, hi), each None where it is +inf. Wider than `median_interval`'s by about sqrt(seeds / k)."""
    v = np.array(sorted(steps) + [np.inf] * (seeds - len(steps)), dtype=float)
    rng = np.random.default_rng(seed)
    meds = np.sort(np.median(rng.choice(v, size=(resamples, k), replace=True), axis=1))
    lo = meds[int(np.floor((1 - level) / 2 * (resamples - 1)))]
    hi = meds[int(np.ceil((1 + level) / 2 * (resamples - 1)))]
    return tuple(None if not np.isfinite(x) else float(x) for x in (lo, hi))
