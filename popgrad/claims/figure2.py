"""Claims of Figure 2 and Sec. 3: attention statistics of the induction head, one attention layer against two.

figure2.stats_vs_loop          the attention statistics equal a plain loop over an independently written forward (exact)
figure2.hand_built_pattern     the eq. (7) head gives Figure 2's pattern: fixed Q -> trigger queries only; Q = [N] -> every repeated query
figure2.trained_pattern        (slow) trained models: layer 1 -> t-1; fixed triggers: layer 2 on trigger queries only; random: all
sec3.one_layer_exact           the one-layer model's logits equal a plain forward (any weights, float64) (exact)
sec3.one_vs_two_layers         (slow) in-context accuracy of one attention layer vs two, fixed and random triggers
sec3.one_vs_two_layers_ci      the same at a CI size (fixed triggers)

Trained sizes: the fig3 preset (public-code parameterization, eta 0.2, loss on in-context tokens, no W_F)
with K = 3 (Figure 2's K), fixed frequent or random triggers, T = 128, batch 64, 300 steps, 3 seeds.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from popgrad.data import bigram_trigger_model
from popgrad.embeddings import make_embeddings
from popgrad.numerics import attention_stats as ast
from popgrad.numerics import induction_head as ih
from popgrad.numerics import samplers
from popgrad.numerics import training as trn
from popgrad.numerics import transformer as tr
from popgrad.numerics.samplers import cpu_threads
from popgrad.registry import Claim, Measurement, register
from popgrad.tolerances import FLOAT64, nanmax, rel_error

SEEDS3 = (0, 1, 2)
Z = 3.0                                           # effects must exceed 3 standard errors


# ----------------------------------------------------------------------------- the independent side: a plain loop
def loop_attention_statistics(emb, mats, z, q, early: int = 32) -> dict:
    """Figure 2's counts by a Python loop over sequences and positions, on the attention maps of
    `induction_head._causal_attention` (the separately written forward of the assembled head)."""
    x = emb.W_E.T[z] + emb.P.T[None, : z.shape[1]]
    A1 = ih._causal_attention(x, mats["W_K1"], x)
    h = x + A1 @ x @ emb.Phi1.T
    A2 = ih._causal_attention(h, mats["W_K2"], h)
    out = dict.fromkeys(("hits_prev", "n_prev", "hits_early", "n_early", "hits_trigger", "n_trigger", "hits_other", "n_other"), 0)
    zl, ql = z.tolist(), q.tolist()
    for b, row in enumerate(zl):
        T = len(row)
        for t in range(1, T):
            a1 = A1[b, t, : t + 1].tolist()
            out["hits_prev"] += int(a1.index(max(a1)) == t - 1)
            out["n_prev"] += 1
            if t < early:
                out["hits_early"] += int(a1.index(max(a1)) == t - 1)
                out["n_early"] += 1
        for t in range(T - 1):
            if row[t] not in row[:t]:
                continue
            a2 = A2[b, t, : t + 1].tolist()
            s = a2.index(max(a2))
            kind = "trigger" if row[t] in ql[b] else "other"
            out[f"hits_{kind}"] += int(s >= 1 and row[s - 1] == row[t])
            out[f"n_{kind}"] += 1
    return out


def _hand_built_case(tokens, seed: int, d: int = 128, T: int = 64, B: int = 6, K: int = 3, beta: float = 10.0):
    """Embeddings, the eq. (7) head with trigger set `tokens` (None = [N]) and a batch of model C with K frequent
    triggers (float64)."""
    model = bigram_trigger_model(T=T, K=K, triggers="frequent")
    emb = make_embeddings(d, model.N, T, seed=seed)
    mats = ih.hand_built(emb, beta, beta, tokens=tokens if tokens != "Q" else model.triggers)
    gen = samplers.make_generator(seed + 7, "cpu")
    z, q, _ = samplers.sample_model_c(samplers.model_c_sampler(model, "cpu"), B, gen)
    return emb, mats, z.long(), q.long(), model


def measure_stats_vs_loop() -> Measurement:
    # The vectorized statistics (training model's attention maps, argmax, masks) equal a plain loop on the
    # head's independently written forward, count for count, for the eq. (7) head and for random weights.
    diffs, shown = {}, {}
    for case, seed in (("eq7 fixed Q", 0), ("eq7 Q=[N]", 1), ("random weights", 2)):
        emb, mats, z, q, _ = _hand_built_case("Q" if case == "eq7 fixed Q" else None, seed)
        if case == "random weights":
            gen = torch.Generator().manual_seed(seed)
            mats = {k: torch.randn(emb.d, emb.d, generator=gen, dtype=torch.float64) * 3 / math.sqrt(emb.d) for k in mats}
        fast = ast.attention_statistics(tr.frozen_tables(emb), mats, iter([(z, q)]).__next__, 1)
        slow = loop_attention_statistics(emb, mats, z, q)
        diffs[case] = sum(abs(fast[k] - slow[k]) for k in slow)
        shown[case] = slow
    return Measurement(float(sum(diffs.values())), 0.0, "exact",
                       note="; ".join(f"{c}: prev {s['hits_prev']}/{s['n_prev']}, trigger {s['hits_trigger']}/{s['n_trigger']}, "
                                      f"other {s['hits_other']}/{s['n_other']}" for c, s in shown.items()),
                       details={"count_differences": diffs})


def measure_hand_built_pattern() -> Measurement:
    # Eq. (7) at d = 128, beta = 10 on model C (K = 3 fixed frequent triggers, T = 64, 16 sequences):
    # with W_K^2 over the triggers Q, layer 2 finds the token after the earlier occurrence for trigger queries
    # (fraction >= 0.85) but not for other repeated queries (>= 3 se lower); with W_K^2 over all of [N]
    # (the support of pi_q for random triggers) it does for other repeated queries too (>= 3 se above fixed Q;
    # below 1 at d = 128: 65 stored pairs add noise to the scores). Layer 1 attends to t-1 (>= 0.95).
    res = {}
    for name, tokens in (("fixed", "Q"), ("random", None)):
        emb, mats, _, _, model = _hand_built_case(tokens, 3)
        sampler = samplers.model_c_sampler(model, "cpu")
        gen = samplers.make_generator(11, "cpu")

        def sample():
            z, q, _ = samplers.sample_model_c(sampler, 8, gen)
            return z.long(), q.long()
        res[name] = ast.attention_statistics(tr.frozen_tables(emb), mats, sample, 2)
    f, r = res["fixed"], res["random"]
    gap_fixed = f["induction_trigger"][0] - f["induction_other"][0]
    se_fixed = math.hypot(f["induction_trigger"][1], f["induction_other"][1])
    gap_other = r["induction_other"][0] - f["induction_other"][0]
    se_other = math.hypot(r["induction_other"][1], f["induction_other"][1])
    gaps = {"fixed: trigger - other (in se)": gap_fixed / se_fixed, "other: Q=[N] - fixed Q (in se)": gap_other / se_other,
            "trigger >= 0.85": min(f["induction_trigger"][0], r["induction_trigger"][0]),
            "prev >= 0.95": min(f["prev_token"][0], r["prev_token"][0])}
    error = max(Z - gaps["fixed: trigger - other (in se)"], Z - gaps["other: Q=[N] - fixed Q (in se)"],
                0.85 - gaps["trigger >= 0.85"], 0.95 - gaps["prev >= 0.95"], 0.0)
    value = (f"fixed Q: trigger {_pm(f['induction_trigger'])}, other {_pm(f['induction_other'])}; Q = [N]: trigger "
             f"{_pm(r['induction_trigger'])}, other {_pm(r['induction_other'])}; layer 1 -> t-1 {_pm(f['prev_token'])}")
    return Measurement(error, 0.0, "approx", note=value, value=value, details=gaps)


def _pm(pair) -> str:
    return f"{pair[0]:.3f} ± {pair[1]:.3f}"


register(Claim(
    id="figure2.stats_vs_loop",
    statement="The Figure 2 statistics (layer-1 argmax at t-1; layer-2 argmax after an earlier occurrence of the query, "
              "trigger and non-trigger repeated queries) are counted correctly",
    where="Figure 2; Sec. 3",
    compared="numerics.attention_stats on the training model's attention maps vs a Python loop over positions on the "
             "maps of numerics.induction_head's separately written forward; eq. (7) heads and random weights, float64; "
             "shared: embeddings, weights, tokens",
    kind="exact", tolerance="every count equal (0)", measure=measure_stats_vs_loop,
    code=("popgrad.numerics.attention_stats.attention_statistics",),
    sides=(("popgrad.numerics.attention_stats.attention_statistics",),
           ("popgrad.claims.figure2.loop_attention_statistics",))))
register(Claim(
    id="figure2.hand_built_pattern",
    statement="The eq. (7) head shows Figure 2's pattern: layer 1 attends to t-1; with W_K^2 over fixed triggers Q, layer 2 "
              "attends after earlier occurrences only for trigger queries; with W_K^2 over all tokens, for every repeated query",
    where="Figure 2; Sec. 4.2, eq. (7)",
    compared="attention statistics of eq. (7) (d=128, beta=10) on model C with K=3 fixed frequent triggers, T=64, 16 "
             "sequences: W_K^2 over Q vs over [N]; shared: embeddings and sequences",
    kind="approx", tolerance="fixed Q: trigger - other >= 3 se; other: Q=[N] - fixed Q >= 3 se; trigger >= 0.85; layer 1 >= 0.95",
    measure=measure_hand_built_pattern, code=("popgrad.numerics.attention_stats.attention_statistics",),
    finding="layer 2 attends after earlier occurrences of trigger queries only (fixed triggers), of every repeated query "
            "(random triggers)"))


# ----------------------------------------------------------------------------- trained models
FIG2 = dict(T=128, batch=64, steps=300, K=3, probe_every=50, device="cpu")
FIG2_EVAL = 8                                     # fresh batches of 64 for the final statistics
_RUNS: dict = {}


def fig2_config(triggers: str, layers: int, seed: int, size: dict = FIG2) -> trn.TrainConfig:
    """The fig3 preset with Figure 2's K = 3, fixed frequent or random triggers, one or two layers."""
    return trn.preset_config("fig3", **size, triggers=triggers, layers=layers, seed=seed)


def fig2_run(triggers: str, layers: int, seed: int, size: dict = FIG2) -> dict:
    """One run (cached per process): its Run (initial weights, tables), probe rows and final weights."""
    key = (triggers, layers, seed, tuple(sorted(size.items())))
    if key not in _RUNS:
        cfg = fig2_config(triggers, layers, seed, size)
        with torch.random.fork_rng(devices=[]), cpu_threads("cpu", 1):
            run = trn.setup(cfg)
            res = trn.train(cfg, run=run)
        _RUNS[key] = {"run": run, "rows": res["rows"], "params": res["params"]}
    return _RUNS[key]


def evaluate(run, params: dict, seed: int, batches: int = FIG2_EVAL) -> dict:
    """Attention statistics and in-context accuracy of `params` on fresh batches (seed 30_000 + seed)."""
    cfg = run.cfg
    sampler = samplers.model_c_sampler(run.model, "cpu")
    gen = samplers.make_generator(30_000 + seed, "cpu")
    drawn = []

    def sample():
        z, q, _ = samplers.sample_model_c(sampler, cfg.batch, gen)
        drawn.append((z.long(), q.long()))
        return drawn[-1]
    with cpu_threads("cpu", 1):
        stats = ast.attention_statistics(run.tab, params, sample, batches, cfg.scale)
        hits = total = 0
        with torch.no_grad():
            for z, q in drawn:
                mask = trn.in_context_mask(z, q)
                pred = tr.logits(run.tab, z, params, cfg.scale).argmax(-1)
                tgt = torch.cat([z[:, 1:], z[:, -1:]], 1)
                hits += int(((pred == tgt) & mask).sum())
                total += int(mask.sum())
    stats["acc"] = ast.fraction(hits, total)
    return stats


def seed_mean(values) -> tuple[float, float]:
    """(mean, standard error across seeds)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")


def trained_statistics(size: dict = FIG2, seeds=SEEDS3, layers: int = 2) -> dict:
    """{triggers: {'init': [per-seed stats], 'final': [...]}} for fixed frequent and random triggers."""
    out = {}
    for trig in ("frequent", "random"):
        out[trig] = {"init": [], "final": [], "rows": []}
        for s in seeds:
            r = fig2_run(trig, layers, s, size)
            out[trig]["init"].append(evaluate(r["run"], r["run"].init, s))
            out[trig]["final"].append(evaluate(r["run"], r["params"], s))
            out[trig]["rows"].append(r["rows"])
    return out


def measure_trained_pattern() -> Measurement:
    # Figure 2 on trained two-layer models (3 seeds each, fixed frequent vs random triggers, K = 3), on fresh batches:
    # (a) layer 1's argmax is t-1 at more positions than at initialization (>= 3 se; reported over all t and t < 32,
    #     where W_K^1 is learned first);
    # (b) fixed triggers: layer 2's argmax lands after an earlier occurrence for trigger queries more often than
    #     for non-trigger repeated queries, by >= 3 se across seeds;
    # (c) random triggers: non-trigger repeated queries get the induction pattern more often than with fixed
    #     triggers, by >= 3 se; and the trigger-query fraction exceeds its step-0 value by >= 3 se.
    st = trained_statistics()
    keys = ("prev_token", "prev_token_early", "induction_trigger", "induction_other", "acc")
    m = {trig: {when: {k: seed_mean([r[k][0] for r in st[trig][when]]) for k in keys}
                for when in ("init", "final")} for trig in st}
    fx, rd = m["frequent"]["final"], m["random"]["final"]
    gap_fixed = seed_mean([a["induction_trigger"][0] - a["induction_other"][0] for a in st["frequent"]["final"]])
    gap_other = (rd["induction_other"][0] - fx["induction_other"][0], math.hypot(rd["induction_other"][1], fx["induction_other"][1]))
    rise = min((m[t]["final"][k][0] - m[t]["init"][k][0]) / max(math.hypot(m[t]["final"][k][1], m[t]["init"][k][1]), 1e-12)
               for t in m for k in ("prev_token", "induction_trigger"))
    z_fixed, z_other = gap_fixed[0] / max(gap_fixed[1], 1e-12), gap_other[0] / max(gap_other[1], 1e-12)
    error = max(Z - z_fixed, Z - z_other, Z - rise, 0.0)
    value = (f"layer 1 -> t-1: fixed {_pm(fx['prev_token'])} (t < 32: {_pm(fx['prev_token_early'])}), random "
             f"{_pm(rd['prev_token'])} (t < 32: {_pm(rd['prev_token_early'])}), init {m['frequent']['init']['prev_token'][0]:.3f}; "
             f"layer 2, fixed: trigger {_pm(fx['induction_trigger'])} vs other {_pm(fx['induction_other'])}; random: trigger "
             f"{_pm(rd['induction_trigger'])}, other {_pm(rd['induction_other'])} (3 seeds, se across seeds)")
    return Measurement(error, 0.0, "approx", note=value, value=value,
                       details={"means": m, "z_fixed_gap": z_fixed, "z_other_gap": z_other, "z_rise": rise,
                                "per_seed": {t: {w: st[t][w] for w in ("init", "final")} for t in st}, **FIG2})


register(Claim(
    id="figure2.trained_pattern",
    statement="Trained two-layer models show Figure 2: layer 1 attends to t-1 more than at init; with fixed triggers layer 2 attends after "
              "earlier occurrences for trigger queries much more than for other repeated queries; with random triggers "
              "it does so for non-trigger repeated queries too",
    where="Figure 2; Sec. 3",
    compared="attention statistics on 8 fresh batches after training (fig3 preset, K=3, T=128, batch 64, 300 steps) vs "
             "at initialization, fixed frequent vs random triggers, 3 seeds each; shared: the sampler",
    kind="approx", tolerance="the fixed-trigger gap, the random-minus-fixed gap on other queries and the rise from init "
                             "(layer 1 and layer 2 trigger queries) each >= 3 se across seeds",
    measure=measure_trained_pattern, outcome="partly: layer 1's previous-token map on early positions only", slow=True,
    code=("popgrad.numerics.attention_stats.attention_statistics", "popgrad.numerics.training.train"),
    finding="layer 1 attends to the previous token; layer 2 to the token after the query's earlier occurrence "
            "(fixed triggers: triggers only; random: every repeated token)"))


# ----------------------------------------------------------------------------- one attention layer against two (Sec. 3)
def plain_one_layer_logits(emb, z, W_K1, W_O1, W_F=None):
    """The one-layer model written out separately: x_t = w_E(z_t) + p_t, out_t = x_t + W_O^1 W_V^1 sum_s a_ts x_s,
    a_t = softmax over s <= t of x_t^T W_K^1 x_s, logits W_U (out_t [+ W_F out_t])  (B, T, N)."""
    x = emb.W_E.T[z] + emb.P.T[None, : z.shape[1]]                          # (B, T, d)
    out = x + ih._causal_attention(x, W_K1, x) @ x @ (W_O1 @ emb.W_V1).T
    if W_F is not None:
        out = out + out @ W_F.T
    return out @ emb.W_U.T


def measure_one_layer_exact() -> Measurement:
    # The one-layer model popgrad trains (layer 2 removed, W_O^1 trained) gives the logits of its plain definition,
    # at every position and at query positions only, with and without W_F, at random weights (float64).
    errs = {}
    for seed in range(2):
        emb = make_embeddings(12, 7, 9, seed=seed)
        gen = torch.Generator().manual_seed(50 + seed)
        z = torch.randint(7, (4, 9), generator=gen)
        W = {k: torch.randn(12, 12, generator=gen, dtype=torch.float64) * 3 / math.sqrt(12) for k in ("W_K1", "W_O1", "W_F")}
        for wf in (False, True):
            params = {k: v for k, v in W.items() if wf or k != "W_F"}
            full = tr.logits(tr.frozen_tables(emb), z, params)
            errs[f"seed {seed} W_F {wf}"] = rel_error(full, plain_one_layer_logits(emb, z, W["W_K1"], W["W_O1"], W["W_F"] if wf else None))
            pos = torch.randint(9, (4, 3), generator=gen)
            part = tr.logits(tr.frozen_tables(emb), z, params, pos=pos)
            errs[f"seed {seed} W_F {wf} pos"] = rel_error(part, full.gather(1, pos[..., None].expand(-1, -1, 7)))
    return Measurement(nanmax(errs.values()), FLOAT64.rtol, "exact", details=errs)


register(Claim(
    id="sec3.one_layer_exact",
    statement="The one-layer model (layer 2 removed; W_K^1, W_O^1 and optionally W_F trained) computes "
              "W_U (x_t + W_O^1 W_V^1 sum_s softmax_s(x_t^T W_K^1 x_s) x_s [+ W_F ...])",
    where="Sec. 3 (one attention layer)",
    compared="numerics.transformer.one_layer_logits (via transformer.logits) vs a separately written forward on "
             "induction_head._causal_attention, random weights, float64; shared: embeddings, weights, tokens",
    kind="exact", tolerance="rel <= 1e-10 (float64)", measure=measure_one_layer_exact,
    code=("popgrad.numerics.transformer.one_layer_logits",),
    sides=(("popgrad.numerics.transformer.one_layer_logits",), ("popgrad.claims.figure2.plain_one_layer_logits",))))


def one_vs_two(size: dict, triggers=("frequent", "random"), seeds=SEEDS3, batches: int = FIG2_EVAL) -> dict:
    """{triggers: {'one': [final in-context accuracy per seed], 'two': [...], 'one_last': [...]}} on fresh batches."""
    out = {}
    for trig in triggers:
        out[trig] = {"one": [], "two": [], "one_last3": [], "two_last3": []}
        for s in seeds:
            for layers, name in ((1, "one"), (2, "two")):
                r = fig2_run(trig, layers, s, size)
                out[trig][name].append(evaluate(r["run"], r["params"], s, batches)["acc"][0])
                out[trig][f"{name}_last3"].append(float(np.mean([row["acc_in_context"] for row in r["rows"][-3:]])))
    return out


def _one_vs_two_measurement(size: dict, triggers, batches: int = FIG2_EVAL) -> Measurement:
    res = one_vs_two(size, triggers, batches=batches)
    zs, parts = {}, []
    for trig in triggers:
        one, two = seed_mean(res[trig]["one"]), seed_mean(res[trig]["two"])
        zs[trig] = (two[0] - one[0]) / max(math.hypot(one[1], two[1]), 1e-12)
        parts.append(f"{'fixed' if trig == 'frequent' else 'random'} triggers: two layers {_pm(two)} vs one {_pm(one)}")
    value = "; ".join(parts) + " (in-context accuracy, 3 seeds; the paper's vanilla model: > 99 % fixed, 95 % random vs ~55 %)"
    return Measurement(max(Z - min(zs.values()), 0.0), 0.0, "approx", note=value, value=value,
                       details={"z": zs, "per_seed": res, **size})


register(Claim(
    id="sec3.one_vs_two_layers",
    statement="Two attention layers predict in-context tokens far better than one (Sec. 3: > 95-99 % vs ~55 %), "
              "with fixed and with random triggers",
    where="Sec. 3 (preliminary experiment); Figure 2",
    compared="in-context accuracy on 8 fresh batches of the simplified model with one attention layer (W_K^1, W_O^1 "
             "trained) vs two (fig3 preset, K=3, T=128, batch 64, 300 steps), fixed frequent and random triggers, "
             "3 seeds each; shared: the sampler and the preset",
    kind="approx", tolerance="two - one >= 3 se across seeds, in both trigger settings",
    measure=lambda: _one_vs_two_measurement(FIG2, ("frequent", "random")),
    outcome="partly: two layers far above one, but one layer stays near 0.3", slow=True,
    code=("popgrad.numerics.transformer.one_layer_logits", "popgrad.numerics.training.train"),
    finding="one attention layer ~55 % in-context accuracy where two reach > 95-99 %"))


# CI size where the two-layer head forms on fixed triggers in 200 steps at each of seeds 0-2 (two layers 0.75-0.90,
# one 0.28-0.33): T = 32, the preset's d = 128, batch 32; about 4.5 CPU-s per seed pair. At d = 64 seed 1 does not
# form the head within 300 steps (0.31).
FIG2_CI = dict(T=32, batch=32, steps=200, K=3, probe_every=100, cutoff=16, device="cpu")
register(Claim(
    id="sec3.one_vs_two_layers_ci",
    statement="As sec3.one_vs_two_layers at a CI size, fixed triggers only (T = 32, batch 32, 200 steps)",
    where="Sec. 3 (preliminary experiment); Figure 2",
    compared="in-context accuracy on 2 fresh batches of one attention layer vs two (fig3 preset, K=3 fixed frequent triggers, "
             "T=32, d=128, batch 32, 200 steps), 3 seeds; shared: the sampler and the preset",
    kind="approx", tolerance="two - one >= 3 se across seeds",
    measure=lambda: _one_vs_two_measurement(FIG2_CI, ("frequent",), batches=2),
    code=("popgrad.numerics.transformer.one_layer_logits", "popgrad.numerics.training.train")))
