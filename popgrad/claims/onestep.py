"""The one-step counterparts behind the cosine probes (model C, `onestep_batches > 0`), against the public code's model.

`popgrad.numerics.probes.one_step_counterparts` gives, for the cos_W_K2 and cos_W_K1 probes of a training
run, minus the gradient of the in-context loss in W_K^2 at W_K = 0 (W_O^2 one-step, Lemma 4's setting) and in
W_K^1 at W_K^1 = 0 (both one-step matrices, Lemma 5's setting), over `onestep_batches` fresh batches of 32.

training.onestep_counterparts   those matrices vs minus autograd of numerics.paper_model.paper_loss (the public
                                code's structure, its own in-context mask) summed over the same batches and divided
                                by the same count; and the cos_* probes of a short run with onestep_batches > 0 vs
                                a plain numpy cosine of (final - initial weights, reference counterpart)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from popgrad.numerics import paper_model, probes
from popgrad.numerics import training as trn
from popgrad.numerics.samplers import make_generator, model_c_sampler, sample_model_c
from popgrad.registry import Claim, Measurement, register
from popgrad.tolerances import nanmax

CFG = dict(T=20, d=24, batch=8, K=3, steps=3, probe_every=3, cutoff=8, device="cpu", dtype="float64",
           onestep_batches=2, embed="code", scale="sqrt", seed=1)


def seen_before_mask(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """(B, T) bool by a loop over positions: z_t is a trigger of its row that occurred at some s < t; t <= T-2."""
    B, T = z.shape
    out = torch.zeros(B, T, dtype=torch.bool)
    seen = [set() for _ in range(B)]
    for t in range(T - 1):
        for b in range(B):
            tok = int(z[b, t])
            out[b, t] = tok in seen[b] and tok in {int(x) for x in q[b]}
            seen[b].add(tok)
    return out


def reference_step(run, W_O2: torch.Tensor, W_K2: torch.Tensor | None, which: str) -> torch.Tensor:
    """-(sum over batches of count x mean in-context cross-entropy)' / total count, by autograd of paper_loss."""
    cfg = run.cfg
    sampler = model_c_sampler(run.model, "cpu")
    gen = make_generator(cfg.seed + 4, "cpu")                              # the batches the probe draws
    zero = torch.zeros_like(W_O2)
    total, count = torch.zeros_like(W_O2), 0
    for _ in range(cfg.onestep_batches):
        z, q, _ = sample_model_c(sampler, 32, gen)
        z = z.long()
        sel = seen_before_mask(z, q)
        tgt = torch.roll(z, -1, dims=1)                                    # z_{t+1} (last column unused)
        params = {"W_K1": zero, "W_K2": zero if W_K2 is None else W_K2, "W_O2": W_O2}
        model = paper_model.from_embeddings(run.emb, params, cfg.embed, cfg.scale)
        W = model.trained()[which]
        n = int(sel.sum())
        loss = paper_model.paper_loss(model, z, sel, tgt) * n
        (g,) = torch.autograd.grad(loss, W)
        total += g
        count += n
    return -total / count


def measure_onestep_counterparts() -> Measurement:
    run = trn.setup(trn.TrainConfig(**CFG))
    out = trn.train(run.cfg, run=run)
    got = run.counterparts
    ref_K2 = reference_step(run, got["W_O2"], None, "W_K2")
    ref_K1 = reference_step(run, got["W_O2"], ref_K2, "W_K1")
    errs = {"W_K2": float((got["W_K2"] - ref_K2).norm() / ref_K2.norm()),
            "W_K1": float((got["W_K1"] - ref_K1).norm() / ref_K1.norm())}
    last = out["rows"][-1]
    for k, ref in (("W_K2", ref_K2), ("W_K1", ref_K1)):
        a = (out["params"][k] - run.init[k]).numpy().ravel()
        b = ref.detach().numpy().ravel()
        plain = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        errs[f"cos_{k}"] = abs(last[f"cos_{k}"] - plain)
    worst = nanmax(errs.values())
    moved = all(abs(last[f"cos_{k}"]) > 1e-3 for k in ("W_K2", "W_K1"))
    return Measurement(worst if moved else math.inf, 1e-10, "exact", details=errs,
                       note=f"step {last['step']}: cos_W_K2 {last['cos_W_K2']:.4f}, cos_W_K1 {last['cos_W_K1']:.4f}; "
                            f"counterparts vs paper-model autograd rel {errs['W_K2']:.1e} (W_K2), {errs['W_K1']:.1e} "
                            f"(W_K1); largest difference {worst:.1e}")


register(Claim(
    id="training.onestep_counterparts",
    statement="the one-step counterparts of the cosine probes (model C, onestep_batches > 0) are minus the gradient "
              "of the in-context loss at zero (W_K^2 with W_O^2 one-step; W_K^1 with both), and a run reports their "
              "cosines with W - W(0)",
    where="Sec. 5 / App. E probes (cosine with the one-step population matrices); Lemma 4, Lemma 5 settings",
    compared="numerics.probes.one_step_counterparts (autograd of numerics.transformer at the query positions) vs "
             "minus autograd of numerics.paper_model.paper_loss with a per-position in-context mask, same batches; "
             "the run's cos_* vs numpy; shared: the embeddings, the sampled batches and the one-step W_O^2 (an input)",
    kind="exact", tolerance="rel <= 1e-10 (float64)", measure=measure_onestep_counterparts,
    code=("popgrad.numerics.probes.one_step_counterparts", "popgrad.numerics.probes._autograd_step",
          "popgrad.numerics.paper_model.paper_loss"),
    sides=(("popgrad.numerics.probes._autograd_step",),
           ("popgrad.claims.onestep.reference_step", "popgrad.numerics.paper_model.from_embeddings"))))
