"""Claims of App. E's full model (Figures 10 and 11; SPEC §6).

full_model.paper_structure          the full model's loss and every gradient = autograd of the model written in
                                    the public code's module structure (exact, float64)
full_model.degenerate_is_simplified H = 1, W_Q = I, no MLP, no norm, frozen embeddings: the simplified model's
                                    logits, loss and gradients (exact, float64)
full_model.fig10 / fig10_ci         Figure 10: the full model's probes reach the simplified model's (measured)
full_model.fig11 / fig11_ci         Figure 11: one layer-1 head holds the previous-token map; layer-2 induction
                                    spread over heads (measured)
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import torch

from popgrad.embeddings import make_embeddings
from popgrad.numerics import full_model as fm
from popgrad.numerics import full_model_paper as fp
from popgrad.numerics import masks as fm_masks
from popgrad.numerics import paper_model as pm
from popgrad.numerics import training as trn
from popgrad.numerics import transformer as tr
from popgrad.numerics.full_model_plots import SPREAD, attention_maps, head_summary, head_table
from popgrad.numerics.presets import PRESETS
from popgrad.numerics.samplers import cpu_threads
from popgrad.registry import Claim, Measurement, register
from popgrad.tolerances import nanmax, rel_error, worst_key

EXACT = 1e-12
# (heads, mlp, norm, loss): the Figure 10 layout, Figure 11's heads with both MLPs, the post-norm and no-norm layouts
LAYOUTS = ((1, "second", "pre", "all"), (4, "both", "pre", "in-context"), (2, "second", "post", "in-context"),
           (2, "both", "none", "all"))


def _small_run(seed: int, **over):
    cfg = trn.TrainConfig(T=24, d=16, batch=6, K=3, steps=1, probe_every=1, cutoff=8, device="cpu", dtype="float64",
                          embed="code", scale="sqrt", seed=seed, **over)
    run = trn.setup(cfg)
    trn.apply_schedule(run, 0)
    return run


def _randomize(params: dict, gen, names=None) -> None:
    """Random non-zero weights (layer norms too, so their weight and bias matter)."""
    with torch.no_grad():
        for k, v in params.items():
            if names is None or k in names:
                s = 0.3 if k.startswith("L") else 1.0 / math.sqrt(v.shape[-1]) * 1.5
                v.copy_((torch.ones_like(v) if k.endswith("_w") else 0) + torch.randn(v.shape, generator=gen, dtype=v.dtype) * s)


def measure_paper_structure() -> Measurement:
    # SPEC §6: for four layouts (heads 1/4/2/2; MLP second/both; pre/post/no norm; loss on all or in-context
    # tokens), at random float64 weights, popgrad's full-model step (autograd of full_logits) and autograd of
    # the public code's module structure give the same loss and every gradient.
    errs = {}
    for i, (heads, mlp, norm, loss) in enumerate(LAYOUTS):
        run = _small_run(i, model="full", heads=heads, mlp=mlp, norm=norm, loss=loss)
        _randomize(run.params, torch.Generator().manual_seed(50 + i))
        z, mask, tgt = next(trn.BatchStream(run.model, run.cfg, "cpu", seed=7 + i))
        out = trn.sgd_step(run, z, mask, tgt, False)
        model = fp.from_params({k: v.detach() for k, v in run.params.items()}, heads, mlp, norm)
        sel = mask if loss == "in-context" else mask | trn.other_mask(mask, "C")
        ref = fp.paper_loss(model, z, sel, tgt)
        weights = model.named_weights()
        grads = torch.autograd.grad(ref, list(weights.values()))
        tag = f"H{heads} {mlp} {norm} {loss}"
        errs[f"{tag} loss"] = abs(out["loss"] / out["n_loss"] - float(ref.detach())) / abs(float(ref.detach()))
        errs[f"{tag} parameter set"] = float(set(out["grads"]) != set(weights))
        for k, g in zip(weights, grads):
            errs[f"{tag} d{k}"] = rel_error(out["grads"][k], g)
    worst = worst_key(errs)
    return Measurement(errs[worst], EXACT, "exact", note=f"float64, random weights, d=16, T=24, 4 layouts; worst {worst}",
                       details=errs, value=f"max rel error {errs[worst]:.1e} over {len(errs)} comparisons")


def measure_degenerate() -> Measurement:
    # SPEC §6: H = 1, W_Q = I, no MLP, no layer norm, frozen embeddings: logits equal the simplified model's
    # (numerics.transformer.logits, embed='code', scale='sqrt'), and the training step's loss and gradients in
    # W_K^1, W_K^2, W_O^2 equal the simplified model's lean step (in-context and all-token losses).
    errs = {}
    for i, loss in enumerate(("in-context", "all")):
        simple = _small_run(i, loss=loss)
        _randomize(simple.params, torch.Generator().manual_seed(80 + i))
        full = _small_run(i, loss=loss, model="full", heads=1, mlp="none", norm="none", train_embed=False)
        trn.apply_schedule(full, 0)
        with torch.no_grad():
            for k in ("W_Q1", "W_Q2"):
                full.params[k].copy_(torch.eye(full.cfg.d, dtype=torch.float64))
            for k in ("W_K1", "W_K2", "W_O2"):
                full.params[k].copy_(simple.params[k])
        z, mask, tgt = next(trn.BatchStream(simple.model, simple.cfg, "cpu", seed=30 + i))
        with torch.no_grad():
            errs[f"{loss} logits"] = rel_error(fm.full_logits(full.params, z, 1, "none", "none", "sqrt"),
                                               tr.logits(simple.tab, z, simple.params, "sqrt"))
        a, b = trn.sgd_step(full, z, mask, tgt, False), trn.sgd_step(simple, z, mask, tgt, False)
        errs[f"{loss} loss"] = abs(a["loss"] - b["loss"]) / abs(b["loss"])
        errs[f"{loss} counts"] = float((a["n_loss"], a["hits"], a["n"]) != (b["n_loss"], b["hits"], b["n"]))
        errs[f"{loss} embeddings frozen"] = float(any(k in a["grads"] for k in fm.EMBED_NAMES))
        for k in ("W_K1", "W_K2", "W_O2"):
            errs[f"{loss} d{k}"] = rel_error(a["grads"][k], b["grads"][k])
    worst = worst_key(errs)
    return Measurement(errs[worst], EXACT, "exact", note=f"float64, random weights, d=16, T=24; worst {worst}", details=errs,
                       value=f"max rel error {errs[worst]:.1e} over {len(errs)} comparisons")


register(Claim(
    id="full_model.paper_structure",
    statement="The full model's training step (loss and the gradient of every parameter, embeddings and layer norms "
              "included) equals autograd of the model written in the paper's public code's module structure",
    where="App. E, Figures 10-11; the paper's public code (ihead_full_model: Attention, FeedForward, TransformerBlock)",
    compared="numerics.full_model.full_step / full_logits (via training.sgd_step) vs numerics.full_model_paper "
             "(nn.Module per block, nn.Linear heads, additive -inf mask) and torch autograd, 4 layouts; shared: weights, "
             "batch",
    kind="exact", tolerance="rel <= 1e-12 (float64)", measure=measure_paper_structure,
    code=("popgrad.numerics.full_model.full_step", "popgrad.numerics.full_model.full_logits",
          "popgrad.numerics.full_model_paper.paper_loss"),
    sides=(("popgrad.numerics.full_model.full_step", "popgrad.numerics.full_model.full_logits"),
           ("popgrad.numerics.full_model_paper.paper_loss", "popgrad.numerics.full_model_paper.PaperFullModel"))))
register(Claim(
    id="full_model.degenerate_is_simplified",
    statement="With one head, W_Q = I, no MLP, no layer norm and frozen embeddings, the full model is the simplified "
              "model: same logits, loss and gradients in W_K^1, W_K^2, W_O^2",
    where="SPEC §6; App. E; Sec. 4.2",
    compared="numerics.full_model.full_logits / full_step vs numerics.transformer.logits and numerics.lean_step.lean_step "
             "(hand-written gradients), float64; shared: the embeddings (code scaling), weights, batch",
    kind="exact", tolerance="rel <= 1e-12 (float64)", measure=measure_degenerate,
    code=("popgrad.numerics.full_model.full_logits", "popgrad.numerics.full_model.full_step",
          "popgrad.numerics.transformer.logits", "popgrad.numerics.lean_step.lean_step"),
    sides=(("popgrad.numerics.full_model.full_logits", "popgrad.numerics.full_model.full_step"),
           ("popgrad.numerics.transformer.logits", "popgrad.numerics.lean_step.lean_step"))))



# ----------------------------------------------------------------------------- chance levels of the head probes
def loop_previous_token_chance(T: int) -> float:
    """Plain loop: at each query t = 1..T-1 a uniform argmax over the causal keys s = 0..t lands on s = t-1
    with probability (#keys equal to t-1) / (#keys); the mean over the T-1 queries."""
    total = 0.0
    for t in range(1, T):
        keys = list(range(t + 1))
        total += sum(1 for s in keys if s == t - 1) / len(keys)
    return total / (T - 1)


def loop_top_share(A, chance: float) -> float:
    """Plain loop on attention maps A[h][t][s]: per head the fraction of queries t >= 1 whose argmax key is t-1,
    its excess max(f - chance, 0), and the largest head's share of the summed excess."""
    excess = []
    for head in A:
        hits = sum(1 for t in range(1, len(head)) if max(range(t + 1), key=lambda s: head[t][s]) == t - 1)
        excess.append(max(hits / (len(head) - 1) - chance, 0.0))
    return max(excess) / sum(excess)


def measure_probe_chance() -> Measurement:
    errs = {}
    for T in (2, 3, 5, 17, 256):
        errs[f"previous_token_chance T={T}"] = rel_error(fm.previous_token_chance(T), loop_previous_token_chance(T))
    # hand-built causal attention, 3 heads, T = 6: head 0 previous-token at 4 of 5 queries, head 1 at 1 of 5 (below
    # chance: must not subtract), head 2 at 2 of 5
    T, gen = 6, np.random.default_rng(2)
    prev = {0: (1, 2, 3, 5), 1: (3,), 2: (2, 4)}
    A = []
    for h in range(3):
        rows = []
        for t in range(T):
            w = gen.uniform(0.0, 0.5, size=t + 1)
            w[t - 1 if t in prev[h] else t] = 1.0
            rows.append(list(w / w.sum()))
        A.append(rows)
    chance = fm.previous_token_chance(T)
    counts = [sum(1 for t in range(1, T) if int(np.argmax(A[h][t])) == t - 1) / (T - 1) for h in range(3)]
    errs["top_share (one head below chance)"] = rel_error(fm.top_share(counts, chance), loop_top_share(A, chance))
    worst = worst_key(errs)
    return Measurement(errs[worst], EXACT, "exact", details=errs,
                       note=f"T in 2..256; hand-built 3-head attention at T={T}, chance {chance:.4f}; worst {worst}",
                       value=f"max rel error {errs[worst]:.1e}")


register(Claim(
    id="full_model.probe_chance",
    statement="The previous-token probe's chance level is the mean over queries t = 1..T-1 of 1/(t+1) (a uniform "
              "argmax over the t+1 causal keys), and a head's top share counts only the excess above chance",
    where="App. E, Figures 10-11 (per-head previous-token fractions against chance)",
    compared="numerics.full_model.previous_token_chance / top_share vs plain loops over positions and keys of a "
             "hand-built 3-head attention; shared: the attention maps",
    kind="exact", tolerance="rel <= 1e-12", measure=measure_probe_chance,
    code=("popgrad.numerics.full_model.previous_token_chance", "popgrad.numerics.full_model.top_share"),
    sides=(("popgrad.numerics.full_model.previous_token_chance", "popgrad.numerics.full_model.top_share"),
           ("popgrad.claims.full_model.loop_previous_token_chance", "popgrad.claims.full_model.loop_top_share"))))

# ----------------------------------------------------------------------------- measured: Figures 10 and 11
# Slow claims: the presets' CPU size (batch 32, 250 steps, App. E's d = 128, T = 256, K = 5, eta = 0.2),
# 3 seeds, exactly the configurations of `popgrad train --preset fig10-compare --seeds 3` and
# `--preset fig11 --seeds 3`. CI claims: T = 32, d = 32, batch 16, 120 steps, 3 seeds.
SEEDS3 = (0, 1, 2)
CPU = dict(batch=32, steps=250, probe_every=10, device="cpu")
CI = dict(T=64, d=32, batch=16, steps=150, probe_every=10, cutoff=16, device="cpu")
FIG10_PROBES = ("acc_in_context", "recall_W_O2", "code_W_K2", "code_W_K1")
FIG10_MARGIN = 0.15          # the full model's probe >= the simplified model's - 0.15 (mean over 3 seeds, last 3 probes)
FIG11_SHARE = 0.8            # the paper: one layer-1 head holds the previous-token map (share >= 0.8 above chance)
FIG11_PREV_MIN = 0.05        # the top layer-1 head's previous-token argmax fraction >= 0.05 (chance 0.020 at T = 256)
_RUNS: dict = {}


def preset_rows(name: str, seed: int, size: dict) -> list:
    """Probe rows of one seed of a preset at `size` (cached per process and size)."""
    key = (name, seed, tuple(sorted(size.items())))
    if key not in _RUNS:
        cfg = trn.preset_config(name, **size, seed=seed)
        with torch.random.fork_rng(devices=[]), cpu_threads("cpu", 1):
            _RUNS[key] = trn.train(cfg)["rows"]
    return _RUNS[key]


def last3(rows: list, key: str) -> float:
    """Mean of a probe over the last three probe rows."""
    return float(np.mean([r[key] for r in rows[-3:]]))


def mean_se(values) -> tuple:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")


def fig10_statistic(full: list, simple: list) -> dict:
    """Per probe: the full and simplified models' last-3 means (mean ± SE over seeds) and the paired difference."""
    out = {}
    for k in FIG10_PROBES:
        a, b = [last3(r, k) for r in full], [last3(r, k) for r in simple]
        out[k] = {"full": mean_se(a), "simplified": mean_se(b), "diff": mean_se(np.subtract(a, b)),
                  "full_seeds": a, "simplified_seeds": b, "start": mean_se([r[0][k] for r in full])}
    return out


def _fig10(size: dict, probes: tuple, margin: float, need: dict) -> Measurement:
    full = [preset_rows("fig10", s, size) for s in SEEDS3]
    simple = [preset_rows("fig10-simplified", s, size) for s in SEEDS3]
    st = fig10_statistic(full, simple)
    # error: how far the worst probe's full-model mean falls below simplified - margin; and each model must
    # have reached `need` (so that the comparison is not between two untrained models)
    gaps = {k: st[k]["simplified"][0] - margin - st[k]["full"][0] for k in probes}
    reach = {f"{m} {k}": v - st[k][m][0] for k, v in need.items() for m in ("full", "simplified")}
    value = "; ".join(f"{k} {st[k]['full'][0]:.2f} ± {st[k]['full'][1]:.2f} vs {st[k]['simplified'][0]:.2f} ± "
                      f"{st[k]['simplified'][1]:.2f}" for k in probes) + " (full vs simplified, last 3 probes, 3 seeds)"
    return Measurement(max(nanmax(gaps.values()), nanmax(reach.values()), 0.0), 0.0, "approx", value=value,
                       note=f"full >= simplified - {margin:g} on {', '.join(probes)}; both reach {need}",
                       details={"stat": st, "gaps": gaps, "reach": reach, **size})


def fig11_statistic(rows_per_seed: list, heads: int = 4) -> list:
    """Per seed, the head summary of the last probe (`full_model_plots.head_summary`)."""
    return [{"seed": s, **head_summary(rows[-1], heads)} for s, rows in zip(SEEDS3, rows_per_seed)]


def _fig11(size: dict) -> Measurement:
    st = fig11_statistic([preset_rows("fig11", s, size) for s in SEEDS3])
    # measured at the CPU size (3 seeds): layer-2 induction is spread over >= 2 heads (the paper's statement),
    # and so is the layer-1 previous-token map (>= 2 heads with >= 20 % of the fractions above chance; the
    # paper's "one head" is NOT reproduced here); the top layer-1 head is a real previous-token head
    # (argmax fraction >= FIG11_PREV_MIN, 2.5x chance)
    err = max(max(2 - r["induction_heads"], 2 - r["prev_heads"], FIG11_PREV_MIN - r["prev_top"]) for r in st)
    value = ("layer-1 top head's share of the previous-token fractions above chance "
             + ", ".join(f"{r['prev_share']:.2f}" for r in st) + f" (paper: one head >= {FIG11_SHARE:g}; not reproduced), "
             + "heads >= 0.2: " + ", ".join(str(r["prev_heads"]) for r in st)
             + "; layer-2 induction top share " + ", ".join(f"{r['induction_share']:.2f}" for r in st)
             + ", heads >= 0.2: " + ", ".join(str(r["induction_heads"]) for r in st) + " (3 seeds)")
    return Measurement(max(err, 0.0), 0.0, "approx", value=value,
                       note=f"every seed: >= 2 layer-2 induction heads and >= 2 layer-1 previous-token heads (shares >= {SPREAD:g} "
                            f"above chance); top layer-1 argmax fraction >= {FIG11_PREV_MIN:g}",
                       details={"seeds": st, **size})


def measure_fig10() -> Measurement:
    # App. E, Figure 10: at the CPU size (3 seeds), the full model's probes (in-context accuracy, W_O^2 recall
    # (9), W_K^2 and W_K^1 recall in the public code's reading, all against the current embeddings) reach within
    # FIG10_MARGIN of the simplified model's at the same step; the simplified model's head must have formed.
    return _fig10(CPU, FIG10_PROBES, FIG10_MARGIN, {"acc_in_context": 0.5})


def measure_fig10_ci() -> Measurement:
    # CI size (T = 64, d = 32, batch 16, 150 steps, 3 seeds; the head does not form yet): the full model's
    # in-context accuracy and W_O^2 recall come within the margin of the simplified model's, and W_O^2 recall
    # rises from chance (~0.03) to >= 0.1 in both.
    return _fig10(CI, ("acc_in_context", "recall_W_O2"), FIG10_MARGIN, {"recall_W_O2": 0.1})


def measure_fig11() -> Measurement:
    # App. E, Figure 11 at the CPU size (batch 32, 250 steps, 3 seeds): layer-2 induction is spread over >= 2
    # of the 4 heads in every seed, as the paper says; the layer-1 previous-token map is spread too (>= 2 heads),
    # where the paper sees one head: measured, not reproduced at this size.
    return _fig11(CPU)


def planted_previous_token(head: int, heads: int = 4, T: int = 8, d: int = 32, seed: int = 0) -> dict:
    """Full-model weights (no norm, no MLP) whose layer-1 head `head` is a previous-token head by construction:
    positions one-hot (p_t = 10 e_t), that head's query reads e_t and its key maps e_s to e_{s+1}, so its score
    is 100 c at s = t - 1 and 0 elsewhere; every other weight random and small."""
    gen = torch.Generator().manual_seed(seed)
    dh = d // heads
    p = {k: 0.05 * torch.randn(shape, generator=gen, dtype=torch.float64)
         for k, shape in (("E", (5, d)), ("U", (5, d)), ("W_V1", (d, d)), ("W_O1", (d, d)), ("W_Q1", (d, d)),
                          ("W_K1", (d, d)), ("W_Q2", (d, d)), ("W_K2", (d, d)), ("W_V2", (d, d)), ("W_O2", (d, d)))}
    p["P"] = torch.zeros(T, d, dtype=torch.float64)
    p["P"][:, :T] = 10 * torch.eye(T, dtype=torch.float64)
    rows = slice(head * dh, head * dh + T)
    p["W_Q1"][rows] = 0
    p["W_K1"][rows] = 0
    p["W_Q1"][rows, :T] = torch.eye(T, dtype=torch.float64)
    p["W_K1"][rows, :T] = torch.diag(torch.ones(T - 1, dtype=torch.float64), -1)   # row s+1 reads e_s
    return p


def measure_fig11_ci() -> Measurement:
    # The Figure 11 statistic on the full model's own forward (4 heads, no norm, no MLP), with a previous-token
    # head planted in each of the 4 layer-1 slots in turn: the probe names the planted head, with argmax
    # fraction 1 and a share >= 0.8 above chance; the statistic that the slow claim reports is the one tested.
    gen = torch.Generator().manual_seed(3)
    z = torch.randint(5, (16, 8), generator=gen)
    mask = torch.rand(z.shape, generator=gen) < 0.3
    errs, found = {}, []
    for head in range(4):
        p = planted_previous_token(head)
        row = fm.attention_probes(p, z, mask, 4, "none", "none", "sqrt")
        s = head_summary(row, 4)
        found.append((s["prev_head"], row[f"prev_h{head}"], s["prev_share"]))
        errs[f"head {head}"] = max(float(s["prev_head"] != head), 1.0 - row[f"prev_h{head}"], FIG11_SHARE - s["prev_share"])
    return Measurement(max(nanmax(errs.values()), 0.0), 0.0, "approx", details=errs,
                       value="planted head -> found (fraction, share): " + ", ".join(
                           f"{j} -> h{h} ({f:.2f}, {sh:.2f})" for j, (h, f, sh) in enumerate(found)))


_FIG_CODE = ("popgrad.numerics.training.train", "popgrad.numerics.full_model.full_step",
             "popgrad.numerics.full_model.full_probe_row")
register(Claim(
    id="full_model.fig10",
    statement=f"Figure 10: the full model (ReLU MLP in block 2, pre-layer-norm, every parameter trained) reaches probes "
              f"within {FIG10_MARGIN:g} of the simplified model's at the same step",
    where="App. E, Figure 10",
    compared="full model (numerics.full_model) vs simplified model (numerics.lean_step), same data, seeds, step; "
             "presets fig10 / fig10-simplified at batch 32, 250 steps, 3 seeds; recall against the embeddings of the "
             "same step; shared: the data sampler",
    kind="approx", tolerance=f"mean over 3 seeds: full >= simplified - {FIG10_MARGIN:g} on each probe; simplified "
                             "accuracy >= 0.5", measure=measure_fig10, code=_FIG_CODE, slow=True,
    finding="full transformer learns the same memories as the simplified one"))
register(Claim(
    id="full_model.fig10_ci",
    statement=f"Figure 10 at CI size: the full model's W_O^2 recall rises with the simplified model's (within {FIG10_MARGIN:g})",
    where="App. E, Figure 10",
    compared="full vs simplified model at T=32, d=32, batch 16, 120 steps, 3 seeds; shared: the data sampler",
    kind="approx", tolerance=f"full >= simplified - {FIG10_MARGIN:g}; both >= 0.3", measure=measure_fig10_ci, code=_FIG_CODE))
register(Claim(
    id="full_model.fig11",
    statement="Figure 11 at the CPU size: with 4 heads per layer the layer-2 induction attention is spread over heads "
              "(as the paper), and so is the layer-1 previous-token map (the paper: one head; not reproduced after "
              "250 steps of batch 32)",
    where="App. E, Figure 11",
    compared="per-head argmax fractions of the trained model's attention on 16 sequences (previous token: t-1; "
             "induction: a token after an earlier occurrence of z_t) above their uniform-argmax chance levels, "
             "preset fig11 at batch 32, 250 steps, 3 seeds; shared: the data sampler",
    kind="approx", tolerance=f"every seed: >= 2 heads with share >= {SPREAD:g} in each layer; top layer-1 fraction >= "
                             f"{FIG11_PREV_MIN:g}",
    measure=measure_fig11, outcome="partly: the previous-token map is spread over 3-4 layer-1 heads", code=_FIG_CODE + ("popgrad.numerics.full_model.attention_probes",), slow=True,
    finding="four heads: one layer-1 head learns the previous-token map; induction is spread over the layer-2 heads"))
register(Claim(
    id="full_model.fig11_ci",
    statement="Figure 11's per-head statistic names a previous-token head planted in any of 4 layer-1 slots "
              f"(argmax fraction 1, share >= {FIG11_SHARE:g} above chance)",
    where="App. E, Figure 11",
    compared="numerics.full_model.attention_probes (full forward, 4 heads) vs the planted head of a hand-built "
             "weight set; shared: the batch",
    kind="approx", tolerance="planted head found in 4/4 slots, fraction 1, share >= 0.8", measure=measure_fig11_ci,
    code=("popgrad.numerics.full_model.attention_probes", "popgrad.numerics.full_model.previous_token_hits")))


# ----------------------------------------------------------------------------- every printed number, exactly
def reference_forward(p: dict, z, heads: int, mlp: str, norm: str, c: float):
    """App. E's full model written plainly in numpy (module docstring of numerics.full_model): logits (B, T, N)
    and both layers' attention maps (B, H, T, T), a loop over heads, sequences and query positions."""
    P = {k: v.detach().double().numpy() for k, v in p.items()}
    z = np.asarray(z)
    B, T = z.shape
    d = P["E"].shape[1]
    dh = d // heads

    def ln(x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * P[name + "_w"] + P[name + "_b"]

    def attn(x, layer):
        out, A = np.zeros((B, T, d)), np.zeros((B, heads, T, T))
        for h in range(heads):
            r = slice(h * dh, (h + 1) * dh)
            q, k, v = (x @ P[f"W_{m}{layer}"][r].T for m in ("Q", "K", "V"))
            for b in range(B):
                for t in range(T):
                    s = c * (k[b, :t + 1] @ q[b, t])
                    w = np.exp(s - s.max())
                    w /= w.sum()
                    A[b, h, t, :t + 1] = w
                    out[b, t, r] = w @ v[b, :t + 1]
        return out @ P[f"W_O{layer}"].T, A

    def ff(x, layer):
        return np.maximum(x @ P[f"M{layer}_in"].T, 0.0) @ P[f"M{layer}_out"].T

    x = P["E"][z] + P["P"][:T]
    maps = []
    for layer in (1, 2):
        has = mlp == "both" or (mlp == "second" and layer == 2)
        if norm == "post":
            a, A = attn(x, layer)
            h = ln(x + a, f"LA{layer}")
            if has:
                h = ln(h + ff(h, layer), f"LF{layer}")
        else:
            a, A = attn(ln(x, f"LA{layer}") if norm == "pre" else x, layer)
            h = x + a
            if has:
                h = h + ff(ln(x, f"LF{layer}") if norm == "pre" else x, layer)
        maps.append(A)
        x = h
    if norm == "pre":
        x = ln(x, "LN")
    return x @ P["U"].T, maps


def expected_names(mlp: str, norm: str) -> set:
    """The parameter names of a layout, as the module docstring lists them."""
    names = {"E", "P", "U"} | {f"W_{m}{l}" for m in "QKVO" for l in (1, 2)}
    for l in (1, 2):
        has = mlp == "both" or (mlp == "second" and l == 2)
        if has:
            names |= {f"M{l}_in", f"M{l}_out"}
        if norm != "none":
            names |= {f"LA{l}_w", f"LA{l}_b"} | ({f"LF{l}_w", f"LF{l}_b"} if has else set())
    return names | ({"LN_w", "LN_b"} if norm == "pre" else set())


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return math.inf
    both_nan = np.isnan(a) & np.isnan(b)
    if np.any(np.isnan(a) != np.isnan(b)):
        return math.inf
    a, b = np.where(both_nan, 0, a), np.where(both_nan, 0, b)
    return float(np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0), 1e-300))


def _tiny_emb(d=8, N=5, T=6, seed=0):
    return make_embeddings(d, N, T, seed=seed, dtype="float64")


def values_variants(parts: dict) -> None:
    """Every (mlp, norm) layout and head count: parameter set, logits (fused and weights paths, selected rows),
    attention maps vs the numpy reference; init values vs the documented draws."""
    gen = torch.Generator().manual_seed(5)
    z = torch.randint(5, (3, 6), generator=gen)
    sel = torch.rand(z.shape, generator=gen) < 0.4
    sel[0, -1] = True
    for i, (mlp, norm) in enumerate((m, n) for m in fm.MLPS for n in fm.NORMS):
        heads = (1, 2, 4)[i % 3]
        scale = "none" if i == 4 else "sqrt"
        emb = _tiny_emb(seed=i)
        p = fm.init_full_params(emb, heads, mlp, norm, seed=i, dtype=torch.float64)
        tag = f"H{heads} {mlp} {norm} {scale}"
        parts[f"{tag} parameter set"] = (float(set(p) != expected_names(mlp, norm)), 1e-12)
        _randomize(p, torch.Generator().manual_seed(100 + i))
        c = 1.0 / math.sqrt(8 // heads) if scale == "sqrt" else 1.0
        ref_lg, (A1, A2) = reference_forward(p, z, heads, mlp, norm, c)
        with torch.no_grad():
            lg = fm.full_logits(p, z, heads, mlp, norm, scale)
            lgw, (B1, B2) = fm.full_logits(p, z, heads, mlp, norm, scale, weights=True)
            lgs = fm.full_logits(p, z, heads, mlp, norm, scale, sel=sel)
        parts[f"{tag} logits"] = (_rel(lg.numpy(), ref_lg), 1e-10)
        parts[f"{tag} logits (weights path)"] = (_rel(lgw.numpy(), ref_lg), 1e-10)
        parts[f"{tag} logits (selected rows)"] = (_rel(lgs.numpy(), ref_lg[sel.numpy()]), 1e-10)
        parts[f"{tag} layer-1 map"] = (_rel(B1.numpy(), A1), 1e-10)
        parts[f"{tag} layer-2 map"] = (_rel(B2.numpy(), A2), 1e-10)
    # init: the documented draws (E, P: sqrt(d) x popgrad's; U, W_V1, W_O1, W_V2: 1/sqrt(3) x; W_K1, W_K2, W_O2 from
    # generator seed + 1 in the order W_K1, W_K2, W_O2; W_Q and MLPs nn.Linear-uniform from generator 10000 + seed)
    d, seed = 8, 3
    emb = _tiny_emb(d=d, seed=7)
    p = fm.init_full_params(emb, 2, "both", "pre", seed=seed, dtype=torch.float64)
    ref = {"E": math.sqrt(d) * emb.W_E.T, "P": math.sqrt(d) * emb.P.T, "U": emb.W_U / math.sqrt(3),
           "W_V1": emb.W_V1 / math.sqrt(3), "W_O1": emb.W_O1 / math.sqrt(3), "W_V2": emb.W_V2 / math.sqrt(3)}
    g = torch.Generator().manual_seed(seed + 1)
    for name in ("W_K1", "W_K2", "W_O2"):
        ref[name] = (torch.rand((d, d), generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(d)
    g = torch.Generator().manual_seed(10_000 + seed)
    for l in (1, 2):
        ref[f"W_Q{l}"] = (torch.rand((d, d), generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(d)
        ref[f"M{l}_in"] = (torch.rand((4 * d, d), generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(d)
        ref[f"M{l}_out"] = (torch.rand((d, 4 * d), generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(4 * d)
        for k in ("LA", "LF"):
            ref[f"{k}{l}_w"], ref[f"{k}{l}_b"] = torch.ones(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    ref["LN_w"], ref["LN_b"] = torch.ones(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    parts["init names"] = (float(set(p) != set(ref)), 1e-12)
    for k in ref:
        parts[f"init {k}"] = (_rel(p[k].numpy(), ref[k].numpy()) if k in p else math.inf, 1e-12)


def planted_probe_weights(T: int = 8, d: int = 16, N: int = 5, heads: int = 2, seed: int = 0) -> dict:
    """No-norm, no-MLP full-model weights with mixed probe outcomes: one-hot positions p_t = 10 e_t; layer-1 head 0
    maps key s to query s + 1 for queries t in {2, 4, 5} only (so recall of W_K^1 differs across the cutoff); W_O^2
    stores k -> k for k in {0, 2, 3}; every weight plus small noise (no exact ties)."""
    gen = torch.Generator().manual_seed(seed)
    dh = d // heads
    p = {k: 0.05 * torch.randn(shape, generator=gen, dtype=torch.float64)
         for k, shape in (("E", (N, d)), ("U", (N, d)), ("W_V1", (d, d)), ("W_O1", (d, d)), ("W_Q1", (d, d)),
                          ("W_K1", (d, d)), ("W_Q2", (d, d)), ("W_K2", (d, d)), ("W_V2", (d, d)), ("W_O2", (d, d)))}
    p["P"] = 10 * torch.eye(T, d, dtype=torch.float64) + 0.01 * torch.randn(T, d, generator=gen, dtype=torch.float64)
    for t in (2, 4, 5):
        p["W_Q1"][t, t] += 1.0                                          # head 0 rows 0..dh-1 (t < dh)
        p["W_K1"][t, t - 1] += 1.0
    for k in (0, 2, 3):
        p["W_O2"] += 30.0 * torch.outer(p["U"][k], p["W_V2"] @ p["E"][k])
    assert T <= dh
    return p


def loop_recall(W, U, V, targets) -> float:
    """Recall (9) by a plain loop: input i (column of U) is recalled when output targets[i] alone has the largest
    score V[:, j]^T W U[:, i] over the outputs j."""
    W, U, V = (np.asarray(x, dtype=float) for x in (W, U, V))
    hits = 0
    for i in range(U.shape[1]):
        s = [float(V[:, j] @ W @ U[:, i]) for j in range(V.shape[1])]
        best = max(s)
        hits += int(s[int(targets[i])] == best and s.count(best) == 1)
    return hits / U.shape[1]


def loop_code(W, keys, queries, targets) -> float:
    """The public code's reading by a plain loop: query j is right when key targets[j] alone scores highest."""
    W, keys, queries = (np.asarray(x, dtype=float) for x in (W, keys, queries))
    hits = 0
    for j in range(queries.shape[1]):
        s = [float(queries[:, j] @ W @ keys[:, i]) for i in range(keys.shape[1])]
        best = max(s)
        hits += int(s[int(targets[j])] == best and s.count(best) == 1)
    return hits / queries.shape[1]


def loop_recall_probes(p: dict, heads: int, cutoff: int) -> dict:
    """full_recall_probes by plain loops: eq. (7)'s targets against the weights' own embeddings."""
    P = {k: v.detach().double().numpy() for k, v in p.items()}
    E, Pos = P["E"].T, P["P"].T                                         # (d, N), (d, T)
    N, T, d = E.shape[1], Pos.shape[1], E.shape[0]
    dh = d // heads
    Phi1 = P["W_O1"] @ P["W_V1"]
    out = {"recall_W_O2": loop_recall(P["W_O2"], P["W_V2"] @ E, P["U"].T, range(N)), "n_recall_W_O2": N}
    for layer, name in ((2, "W_K2"), (1, "W_K1")):
        per = []
        for j in range(heads):
            W = np.zeros((d, d))
            for r in range(j * dh, (j + 1) * dh):
                W += np.outer(P[f"W_Q{layer}"][r], P[f"W_K{layer}"][r])
            per.append(W)
        mats = [("", sum(per))] + ([(f"_h{j}", W) for j, W in enumerate(per)] if heads > 1 else [])
        for suffix, W in mats:
            if name == "W_K2":
                out[f"recall_W_K2{suffix}"] = loop_recall(W, Phi1 @ E, E, range(N))
                out[f"code_W_K2{suffix}"] = loop_code(W, Phi1 @ E, E, range(N))
            else:
                out[f"recall_W_K1{suffix}"] = loop_recall(W, Pos[:, :-1], Pos, range(1, T))
                out[f"code_W_K1{suffix}"] = loop_code(W, Pos[:, :-1], Pos[:, 1:], range(T - 1))
                m = min(cutoff, T)
                out[f"code_W_K1_early{suffix}"] = loop_code(W, Pos[:, :m - 1], Pos[:, 1:m], range(m - 1))
        out[f"n_recall_{name}"] = N if name == "W_K2" else T - 1
    W1 = sum(np.outer(P["W_Q1"][r], P["W_K1"][r]) for r in range(d))
    early = [i for i in range(T - 1) if i + 1 < cutoff]                # input p_i, target position i + 1
    late = [i for i in range(T - 1) if i + 1 >= cutoff]
    for part, idx in (("early", early), ("late", late)):
        out[f"recall_W_K1_{part}"] = (loop_recall(W1, Pos[:, idx], Pos, [i + 1 for i in idx]) if idx else float("nan"))
        out[f"n_recall_W_K1_{part}"] = len(idx)
    return out


def loop_attention_probes(A1, A2, z, mask, heads: int, rows: int = 16) -> dict:
    """attention_probes by plain loops over the first `rows` sequences of the reference maps."""
    z, mask = np.asarray(z)[:rows], np.asarray(mask)[:rows]
    A1, A2 = A1[:rows], A2[:rows]
    B, T = z.shape
    n1, n2 = B * (T - 1), int(mask.sum())
    chance1 = sum(1.0 / (t + 1) for t in range(1, T)) / (T - 1)
    targets = [[[s for s in range(1, t + 1) if z[b, s - 1] == z[b, t]] for t in range(T)] for b in range(B)]
    pos = [(b, t) for b in range(B) for t in range(T) if mask[b, t]]
    chance2 = sum(len(targets[b][t]) / (t + 1) for b, t in pos) / len(pos)
    out = {"n_prev": n1, "n_induction": n2, "prev_chance": chance1, "induction_chance": chance2}
    f1, f2 = [], []
    for j in range(heads):
        h1 = sum(int(np.argmax(A1[b, j, t]) == t - 1) for b in range(B) for t in range(1, T))
        h2 = sum(int(int(np.argmax(A2[b, j, t])) in targets[b][t]) for b, t in pos)
        f1.append(h1 / n1)
        f2.append(h2 / n2)
        out[f"prev_h{j}"], out[f"prev_h{j}_bse"] = f1[-1], math.sqrt(f1[-1] * (1 - f1[-1]) / n1)
        out[f"induction_h{j}"], out[f"induction_h{j}_bse"] = f2[-1], math.sqrt(f2[-1] * (1 - f2[-1]) / n2)
        out[f"prev_mass_h{j}"] = sum(A1[b, j, t, t - 1] for b in range(B) for t in range(1, T)) / n1
        out[f"induction_mass_h{j}"] = sum(sum(A2[b, j, t, s] for s in targets[b][t]) for b, t in pos) / n2
    for key, f, ch in (("prev_share", f1, chance1), ("induction_share", f2, chance2)):
        ex = [max(v - ch, 0.0) for v in f]
        out[key] = max(ex) / sum(ex) if sum(ex) > 0 else float("nan")
    out["prev_head"] = int(np.argmax(f1))
    return out


def loop_head_summary(row: dict, heads: int, spread: float = 0.2) -> dict:
    """head_summary by a plain loop: shares of the excess over chance, heads holding >= 20 % of it."""
    out = {}
    for name, key, ch in (("prev", "prev_h", "prev_chance"), ("induction", "induction_h", "induction_chance")):
        v = [row[f"{key}{j}"] for j in range(heads)]
        ex = [max(x - row.get(ch, 0.0), 0.0) for x in v]
        tot = sum(ex)
        shares = [e / tot for e in ex] if tot > 0 else None
        out[f"{name}_share"] = max(shares) if shares else float("nan")
        out[f"{name}_heads"] = sum(1 for s in shares if s >= spread) if shares else 0
        if name == "prev":
            out["prev_head"], out["prev_top"] = max(range(heads), key=lambda j: (v[j], -j)), max(v)
    return out


def values_probes(parts: dict) -> None:
    """full_recall_probes, attention_probes, head_summary, full_probe_row and full_step's counts vs plain loops."""
    T, heads, cutoff = 8, 2, 4
    p = planted_probe_weights(T=T, heads=heads)
    got = fm.full_recall_probes(p, heads, cutoff)
    ref = loop_recall_probes(p, heads, cutoff)
    parts["recall probes: key set"] = (float(set(got) != set(ref)), 1e-12)
    for k in ref:
        parts[f"recall probes: {k}"] = (_rel(got.get(k, math.inf), ref[k]), 1e-12)
    gen = torch.Generator().manual_seed(11)
    z = torch.randint(5, (18, T), generator=gen)                        # 18 > 16 rows: the probe reads the first 16
    mask = torch.rand(z.shape, generator=gen) < 0.5
    mask[:, -1] = False
    c = 1.0 / math.sqrt(16 // heads)
    _, (A1, A2) = reference_forward(p, z, heads, "none", "none", c)
    got = fm.attention_probes(p, z, mask, heads, "none", "none", "sqrt")
    ref = loop_attention_probes(A1, A2, z, mask, heads)
    parts["attention probes: key set"] = (float(set(got) != set(ref)), 1e-12)
    for k in ref:
        parts[f"attention probes: {k}"] = (_rel(got.get(k, math.inf), ref[k]), 1e-10)
    summ = head_summary(got, heads)
    for k, v in loop_head_summary(got, heads).items():
        parts[f"head_summary (probes): {k}"] = (_rel(summ[k], v), 1e-12)
    # head_table: every number of a seed's line (fractions ± se, the previous-token head and its share, chance levels,
    # the induction share and head count) against the probe row and the plain-loop summary, to its printed digits
    line = head_table("x", heads, [{**got, "seed": 4, "step": 9}]).splitlines()[-1]
    nums = [float(x) for x in re.findall(r"nan|-?\d+(?:\.\d+)?", line)]
    hs = loop_head_summary(got, heads)
    ref = ([4, 9] + [v for j in range(heads) for v in (ref[f"prev_h{j}"], ref[f"prev_h{j}_bse"])]
           + [hs["prev_head"], hs["prev_share"]]
           + [v for j in range(heads) for v in (ref[f"induction_h{j}"], ref[f"induction_h{j}_bse"])]
           + [ref["prev_chance"], ref["induction_chance"], hs["induction_share"], hs["induction_heads"]])
    parts["head_table numbers"] = (max(abs(a - b) for a, b in zip(nums, ref)) if len(nums) == len(ref) else math.inf,
                                   0.0051)
    # attention_maps (Figure 11's panels): both layers' maps on the first `window` positions of the first sequence of
    # the batch stream seeded 10000 + seed, against the numpy forward on that sequence
    cfg_m = trn.TrainConfig(model="full", heads=heads, mlp="none", norm="none", T=T, d=16, batch=2, steps=1,
                            probe_every=1, cutoff=cutoff, device="cpu", dtype="float64", embed="code", scale="sqrt", seed=3)
    run_m = trn.setup(cfg_m)
    pw = {k: v.detach().clone() for k, v in run_m.params.items()}
    _randomize(pw, torch.Generator().manual_seed(8))
    maps, zw, mw = attention_maps(cfg_m, pw, window=5)
    zs, ms, _ = next(trn.BatchStream(run_m.model, cfg_m, "cpu", seed=10_003))
    _, (R1, R2) = reference_forward(pw, zs[:1, :5], heads, "none", "none", c)
    parts["attention_maps tokens and mask"] = (float(zw.tolist() != zs[0, :5].tolist() or mw.tolist() != ms[0, :5].tolist()),
                                               1e-12)
    parts["attention_maps maps"] = (_rel(maps, np.stack([R1[0], R2[0]])), 1e-10)
    # head_summary where a share sits exactly at 20 % and one head is below chance
    row = {"prev_h0": 0.35, "prev_h1": 0.15, "prev_h2": 0.15, "prev_h3": 0.01, "prev_chance": 0.05,
           "induction_h0": 3.0, "induction_h1": 1.0, "induction_h2": 1.0, "induction_h3": 0.0, "induction_chance": 0.0}
    summ = head_summary(row, 4)
    for k, v in loop_head_summary(row, 4).items():
        parts[f"head_summary (share at 0.2): {k}"] = (_rel(summ[k], v), 1e-12)
    # full_probe_row: accuracy, its binomial se, in-context loss (sum / n), loss on the other positions
    tgt = torch.cat([z[:, 1:], z[:, :1]], 1)
    cfg = SimpleNamespace(heads=heads, mlp="none", norm="none", scale="sqrt", cutoff=cutoff, data="C", seed=0)
    run = SimpleNamespace(cfg=cfg, params=p)
    lg, _ = reference_forward(p, z, heads, "none", "none", c)
    ce = -(lg - np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1, keepdims=True)) - lg.max(-1, keepdims=True))
    ce = np.take_along_axis(ce, tgt.numpy()[..., None], -1)[..., 0]     # (B, T) per-position cross-entropy
    keep = [(b, t) for b in range(z.shape[0]) for t in range(T - 1) if not bool(mask[b, t])]
    loss_other = sum(ce[b, t] for b, t in keep) / len(keep)
    per = torch.rand(z.shape, generator=gen, dtype=torch.float64)
    other_given = sum(float(per[b, t]) for b, t in keep) / len(keep)
    for label, full, other in (("recomputed", None, loss_other), ("given", (None, per), other_given)):
        r = fm.full_probe_row(run, 3, z, mask, tgt, 0.0, 7, 20, torch.tensor(13.0, dtype=torch.float64), full)
        for k, v in (("acc_in_context", 7 / 20), ("acc_in_context_se", math.sqrt(0.35 * 0.65 / 20)),
                     ("loss_in_context", 13.0 / 20), ("loss_other", other), ("n_in_context", 20), ("step", 3)):
            parts[f"full_probe_row ({label}): {k}"] = (_rel(r[k], v), 1e-10)
    # setup_full: embeddings trained or frozen (train_embed), every other parameter trained, SGD with the config's
    # step size, momentum and weight decay over exactly the trained tensors, the initial copy equal to the parameters
    for train_embed in (True, False):
        cfg_s = trn.TrainConfig(model="full", heads=2, mlp="second", norm="pre", T=8, d=8, batch=2, steps=1,
                                probe_every=1, device="cpu", dtype="float64", embed="code", train_embed=train_embed,
                                eta=0.37, momentum=0.55, weight_decay=0.003)
        emb_s = _tiny_emb(d=8, N=7, T=8, seed=1)
        params, init, opt = fm.setup_full(cfg_s, "cpu", torch.float64, None, emb_s)
        want = {k: train_embed or k not in ("E", "P", "U") for k in params}
        group = opt.param_groups[0]
        ok = ({k: v.requires_grad for k, v in params.items()} == want
              and {id(v) for v in group["params"]} == {id(v) for k, v in params.items() if want[k]}
              and (group["lr"], group["momentum"], group["weight_decay"]) == (0.37, 0.55, 0.003)
              and all(torch.equal(init[k], params[k].detach()) for k in params) and set(params) == expected_names("second", "pre"))
        parts[f"setup_full train_embed={train_embed}"] = (float(not ok), 1e-12)
    # full_probe_row without in-context positions: accuracy, its se and the in-context loss are nan
    r = fm.full_probe_row(SimpleNamespace(cfg=cfg, params=p), 0, z, torch.zeros_like(mask), tgt, 0.0, 0, 0,
                          torch.tensor(0.0, dtype=torch.float64), None)
    parts["full_probe_row n=0"] = (float(not all(math.isnan(r[k]) for k in ("acc_in_context", "acc_in_context_se",
                                                                          "loss_in_context"))), 1e-12)
    # full_step: loss, counts and the in-context loss sum, both losses
    pos = [(b, t) for b in range(z.shape[0]) for t in range(T) if bool(mask[b, t])]
    for loss in ("in-context", "all"):
        q = {k: v.clone().requires_grad_(True) for k, v in p.items()}
        run = SimpleNamespace(cfg=SimpleNamespace(**vars(cfg), loss=loss), params=q)
        out = fm.full_step(run, z, mask, tgt, False)
        sel = pos if loss == "in-context" else pos + keep
        ref = {"loss": sum(ce[b, t] for b, t in sel), "n_loss": len(sel), "n": len(pos),
               "hits": sum(int(np.argmax(lg[b, t]) == int(tgt[b, t])) for b, t in pos),
               "ctx_sum": sum(ce[b, t] for b, t in pos)}
        for k, v in ref.items():
            parts[f"full_step ({loss}): {k}"] = (_rel(float(out[k]), v), 1e-10)


def measure_values_exact() -> Measurement:
    # Every number the full model's probes and forward return, on hand-made weights where each reading differs:
    # the 9 (mlp, norm) layouts with 1, 2, 4 heads and both logit scales (parameter set, logits on the fused, the
    # weights and the selected-rows paths, both attention maps) against a numpy forward written from the docstring;
    # the init draws; recall (9) and the public code's readings (total, per head, the W_K^1 split at the cutoff,
    # counts), per-head argmax fractions, binomial se, chance levels, masses and shares, head_summary's thresholds,
    # full_probe_row's accuracy / se / losses and full_step's counts against plain loops.
    parts: dict = {}
    values_variants(parts)
    values_probes(parts)
    values_simplified(parts)
    parts = {k: (d if d == d else math.inf, a) for k, (d, a) in parts.items()}       # nan: a failure
    worst = worst_key({k: d / a for k, (d, a) in parts.items()})
    err = parts[worst][0] / parts[worst][1]
    return Measurement(err, 1.0, "exact", note=f"{len(parts)} parts; worst {worst}",
                       value=f"worst discrepancy / allowed {err:.1e} over {len(parts)} parts",
                       details={k: {"discrepancy": d, "allowed": a} for k, (d, a) in parts.items()})


_VALUE_CODE = ("popgrad.numerics.full_model.init_full_params", "popgrad.numerics.full_model.full_logits",
               "popgrad.numerics.full_model.full_recall_probes", "popgrad.numerics.full_model.attention_probes",
               "popgrad.numerics.full_model.full_probe_row", "popgrad.numerics.full_model.full_step",
               "popgrad.numerics.full_model_plots.head_summary", "popgrad.numerics.full_model_plots.head_table",
               "popgrad.numerics.full_model_plots.attention_maps", "popgrad.numerics.full_model.setup_full",
               "popgrad.numerics.transformer.logits", "popgrad.numerics.transformer.query_positions",
               "popgrad.numerics.transformer.init_params", "popgrad.numerics.transformer.memory_bytes",
               "popgrad.numerics.transformer.readout_no_residual_last", "popgrad.numerics.paper_model.PaperStructureModel",
               "popgrad.numerics.masks.in_context_mask", "popgrad.numerics.masks.other_mask")
register(Claim(
    id="full_model.values_exact",
    statement="Every number the full model computes and prints (logits and attention maps of every layout, head "
              "count and logit scale; init draws; recall (9) and the public code's readings with the W_K^1 split at "
              "the cutoff; per-head argmax fractions, binomial se, chance levels, masses, shares and head counts; "
              "probe-row accuracy, se and losses; the training step's counts; the per-head table's cells) equals its "
              "plain-loop value, and so does every number of SPEC §5's simplified model (numerics.transformer for "
              "both embeddings and scales, with W_F, at query positions, without the residual, one layer; init draws; "
              "memory estimate; numerics.paper_model; the position masks)",
    where="App. E, Figures 10-11 (numerics.full_model, numerics.full_model_plots.head_summary)",
    compared="numerics.full_model (init_full_params, full_logits, full_recall_probes, attention_probes, full_probe_row, "
             "full_step), full_model_plots.head_summary / head_table, numerics.transformer, numerics.paper_model and "
             "numerics.masks vs numpy forwards written from the module docstrings and plain loops over heads, "
             "positions, keys and outputs; shared: the weights, the embeddings and the batch",
    kind="exact", tolerance="rel <= 1e-10 (float64) per part", measure=measure_values_exact,
    code=_VALUE_CODE,
    sides=(_VALUE_CODE,
           ("popgrad.claims.full_model.reference_forward", "popgrad.claims.full_model.loop_recall_probes",
            "popgrad.claims.full_model.loop_attention_probes", "popgrad.claims.full_model.loop_head_summary",
            "popgrad.claims.full_model.reference_simplified"))))


# ----------------------------------------------------------------------------- SPEC §5's simplified model, exactly
def reference_simplified(emb, W: dict, z, embed: str, c: float, residual: bool = True, one_layer: bool = False):
    """SPEC §5's model written plainly in numpy from the embeddings (module docstring of numerics.transformer):
    logits (B, T, N). `embed='code'`: w_E, p_t times sqrt(d), W_V^1, W_O^1, W_V^2, W_U times 1/sqrt(3)."""
    d = emb.d
    f, g = (1.0, 1.0) if embed == "unit" else (math.sqrt(d), 1.0 / math.sqrt(3.0))
    E, Pos, U = f * emb.W_E.T.numpy(), f * emb.P.T.numpy(), g * emb.W_U.numpy()
    V1, O1, V2 = g * emb.W_V1.numpy(), g * emb.W_O1.numpy(), g * emb.W_V2.numpy()
    W = {k: (None if v is None else v.detach().double().numpy()) for k, v in W.items()}
    z = np.asarray(z)
    B, T = z.shape

    def attend(q, keys, vals, M):
        s = np.array([c * (q @ M @ k) for k in keys])
        w = np.exp(s - s.max())
        return (w / w.sum()) @ vals

    out = np.zeros((B, T, U.shape[0]))
    for b in range(B):
        x = E[z[b]] + Pos[:T]
        for t in range(T):
            if one_layer:
                o = x[t] + W["W_O1"] @ V1 @ attend(x[t], x[:t + 1], x[:t + 1], W["W_K1"])
            else:
                h = np.array([x[s] + O1 @ V1 @ attend(x[s], x[:s + 1], x[:s + 1], W["W_K1"]) for s in range(t + 1)])
                o = (h[t] if residual else 0.0) + W["W_O2"] @ V2 @ attend(h[t], h, h, W["W_K2"])
            if W.get("W_F") is not None:
                o = o + W["W_F"] @ o
            out[b, t] = U @ o
    return out


def values_simplified(parts: dict) -> None:
    """numerics.transformer (logits for both embeddings and scales, with W_F, at query positions, without the layer-2
    residual, one layer; init_params; query_positions; memory_bytes), numerics.paper_model and numerics.masks vs
    the numpy forward and plain loops."""
    d, N, T = 6, 5, 7
    emb = _tiny_emb(d=d, N=N, T=T, seed=12)
    gen = torch.Generator().manual_seed(21)
    W = {k: torch.randn(d, d, generator=gen, dtype=torch.float64) for k in ("W_K1", "W_K2", "W_O2", "W_F", "W_O1")}
    z = torch.randint(N, (3, T), generator=gen)
    for embed in tr.EMBEDS:
        tab = tr.frozen_tables(emb, embed)
        for scale in tr.SCALES:
            c = 1.0 / math.sqrt(d) if scale == "sqrt" else 1.0
            for wf in (False, True):
                p = {k: W[k] for k in ("W_K1", "W_K2", "W_O2")} | ({"W_F": W["W_F"]} if wf else {})
                ref = reference_simplified(emb, p, z, embed, c)
                tag = f"{embed} {scale} W_F={wf}"
                parts[f"transformer.logits {tag}"] = (_rel(tr.logits(tab, z, p, scale).numpy(), ref), 1e-10)
                model = pm.from_embeddings(emb, p, embed, scale)
                with torch.no_grad():
                    parts[f"paper_model {tag}"] = (_rel(model(z).numpy(), ref), 1e-10)
            ref = reference_simplified(emb, {k: W[k] for k in ("W_K1", "W_O1")}, z, embed, c, one_layer=True)
            p1 = {"W_K1": W["W_K1"], "W_O1": W["W_O1"]}
            parts[f"transformer.logits one layer {embed} {scale}"] = (_rel(tr.logits(tab, z, p1, scale).numpy(), ref), 1e-10)
    tab = tr.frozen_tables(emb, "unit")
    p = {k: W[k] for k in ("W_K1", "W_K2", "W_O2")}
    ref = reference_simplified(emb, p, z, "unit", 1.0)
    mask = torch.tensor([[0, 1, 0, 0, 1, 0, 1], [0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    pos, valid = tr.query_positions(mask)
    rows = [[t for t in range(T) if mask[b, t]] for b in range(3)]
    parts["query_positions valid"] = (float(valid.tolist() != [[j < len(r) for j in range(3)] for r in rows]), 1e-12)
    parts["query_positions pos"] = (float(any(pos[b, j] != rows[b][j] for b in range(3) for j in range(len(rows[b])))), 1e-12)
    got = tr.logits(tab, z, p, "none", pos).numpy()
    parts["transformer.logits at query positions"] = (max(_rel(got[b, j], ref[b, rows[b][j]]) for b in range(3)
                                                          for j in range(len(rows[b]))), 1e-10)
    ref0 = reference_simplified(emb, p, z, "unit", 1.0, residual=False)
    parts["transformer.logits no residual"] = (_rel(tr.logits(tab, z, p, "none", residual=False).numpy(), ref0), 1e-10)
    last = reference_simplified(emb, {"W_K1": torch.zeros(d, d, dtype=torch.float64), "W_K2": W["W_K2"],
                                      "W_O2": W["W_O2"]}, z, "unit", 1.0, residual=False)[:, -1]
    parts["readout_no_residual_last"] = (_rel(tr.readout_no_residual_last(emb, z, W["W_K2"], W["W_O2"]).numpy(), last), 1e-10)
    parts["model_logits"] = (_rel(tr.model_logits(emb, z, *(W[k] for k in ("W_K1", "W_K2", "W_O2"))).numpy(), ref), 1e-10)
    # init_params: nn.Linear-uniform U(-1/sqrt(d), 1/sqrt(d)) drawn in the order W_K1, W_K2, W_O2, W_F, W_O1 (all five
    # drawn whichever are asked for), or zero
    g2 = torch.Generator().manual_seed(4)
    draws = {k: (torch.rand((d, d), generator=g2, dtype=torch.float64) * 2 - 1) / math.sqrt(d)
             for k in ("W_K1", "W_K2", "W_O2", "W_F", "W_O1")}
    got = tr.init_params(d, ("W_O2", "W_F"), "linear", seed=4, dtype=torch.float64)
    parts["init_params names"] = (float(set(got) != {"W_O2", "W_F"}), 1e-12)
    parts["init_params linear"] = (max(_rel(got[k].numpy(), draws[k].numpy()) for k in got), 1e-12)
    got = tr.init_params(d, ("W_K1",), "zero", seed=4, dtype=torch.float64)
    parts["init_params zero"] = (float(set(got) != {"W_K1"} or bool(got["W_K1"].abs().sum() != 0)), 1e-12)
    # memory_bytes: itemsize B (3 T^2 + 2 m T + 8 T d + 2 m N), m = T unless queries are given
    for (B_, T_, d_, N_, it, m) in ((2, 8, 4, 5, 4, None), (3, 16, 8, 7, 8, 5)):
        mm = T_ if m is None else m
        parts[f"memory_bytes {B_, T_, d_, N_, it, m}"] = (
            _rel(tr.memory_bytes(B_, T_, d_, N_, it, m), it * B_ * (3 * T_ * T_ + 2 * mm * T_ + 8 * T_ * d_ + 2 * mm * N_)),
            1e-12)
    # masks: a trigger seen before (second and later occurrences), never at the last position; other = the rest, t <= T-2
    zz = torch.tensor([[1, 2, 1, 3, 1, 2, 1], [4, 4, 0, 4, 3, 3, 3], [0, 1, 2, 3, 4, 0, 1]])
    q = torch.tensor([[1, 2], [4, 3], [2, 3]])
    got = fm_masks.in_context_mask(zz, q)
    ref = [[bool(zz[b, t] in q[b].tolist() and zz[b, t] in zz[b, :t].tolist() and t <= T - 2) for t in range(T)]
           for b in range(3)]
    parts["in_context_mask"] = (float(got.tolist() != ref), 1e-12)
    oth = fm_masks.other_mask(got, "C")
    parts["other_mask"] = (float(oth.tolist() != [[(not ref[b][t]) and t <= T - 2 for t in range(T)] for b in range(3)]),
                           1e-12)
