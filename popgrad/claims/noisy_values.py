"""Claims: every number `popgrad noisy` computes and prints (model E, SPEC §7), against plain loops.

noisy.values_exact      the exact signals (theory.noisy_recall.signals: margins, means over the other outputs,
                        E|I|) against direct sums over every enumerated sequence; the empirical readouts
                        (q -> noise with its tie rule, R_1 with a Gram matrix, the pair statistics of a hand-made
                        batch, the n grid, the first n of a sweep cell, the medians / per-seed strings / pairs per
                        sequence / exponents of the rate table, the argument bounds) against plain loops
noisy.truncation_exact  the truncation metrics (noise probability, accuracy and probability on ybar with and without
                        W_F, layer-2 attention on ybar / noise, head recall, the W_F readout and margin, every se)
                        and the seed aggregation against a numpy forward and plain loops over positions; one
                        training cell against the cell written out (paper_model's forward, SGD by hand)
noisy.command_values    `popgrad noisy --json` (a subprocess): the signals table with its ratio column, the truncation
                        table's mean / se / per-seed values, the argument bounds model E needs
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

from popgrad.data import NoisyRecallModel, noisy_recall_model
from popgrad.embeddings import make_embeddings
from popgrad.errors import PopgradError
from popgrad.numerics import noisy_recall as nr_num
from popgrad.numerics import noisy_training as ntr
from popgrad.numerics import paper_model as pm
from popgrad.numerics import training as trn
from popgrad.numerics.samplers import make_generator, sample_model_e
from popgrad.registry import Claim, Measurement, register
from popgrad.tolerances import worst_key
from popgrad.theory import noisy_recall as nr

from . import noisy_recall as cl


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or np.any(np.isnan(a) != np.isnan(b)) or np.any(np.isinf(a) != np.isinf(b)):
        return math.inf
    fin = np.isfinite(a) & np.isfinite(b)
    if np.any(~fin & (a != b) & ~(np.isnan(a) & np.isnan(b))):
        return math.inf
    a, b = a[fin], b[fin]
    return float(np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0), 1e-300))


def _measurement(parts: dict, what: str) -> Measurement:
    parts = {k: (d if d == d else math.inf, a) for k, (d, a) in parts.items()}       # nan: a failure
    worst = worst_key({k: d / a for k, (d, a) in parts.items()})
    err = parts[worst][0] / parts[worst][1]
    return Measurement(err, 1.0, "exact", note=f"{what}: {len(parts)} parts; worst {worst}",
                       value=f"worst discrepancy / allowed {err:.1e} over {len(parts)} parts",
                       details={k: {"discrepancy": d, "allowed": a} for k, (d, a) in parts.items()})


# ----------------------------------------------------------------------------- signals
def loop_signals(model: NoisyRecallModel) -> dict:
    """signals() by direct sums over every enumerated sequence (claims.noisy_recall.reference_token_stats) and a
    plain loop over outputs k: ff margin G_F[noise, q] - max_{k < N} G_F[k, q]; wo2 margin mean_k G_O[k, k] -
    max_{j != k} G_O[k, j] (j over all V tokens); wo2_diag mean_k G_O[k, k] - mean over the OTHER outputs j of G_O[k, j]."""
    col, G = cl.reference_token_stats(model)
    col, G = col.numpy(), G.numpy()
    N, outs = model.N, [int(k) for k in model.outputs]
    margin, diag = [], []
    for k in outs:
        others = [G[k, j] for j in range(N + 1) if j != k]
        margin.append(G[k, k] - max(others))
        rest = [G[k, j] for j in outs if j != k]
        diag.append(G[k, k] - (sum(rest) / len(rest) if rest else 0.0))
    *_, norm = cl.reference_pairs(model)
    return {"ff_margin": col[N] - max(col[:N]), "ff_noise_entry": col[N], "wo2_margin": sum(margin) / len(margin),
            "wo2_diag": sum(diag) / len(diag), "pairs": norm}


# (N, T, eps, q, pi_b): |outputs| = 2, 3, 4 and 1; (4, 5, 0.3, 0, random) has its largest in-vocabulary G_F entry at
# the last token N - 1
SIGNAL_CASES = ((3, 6, 0.3, 0, "uniform"), (4, 5, 0.3, 0, "random"), (3, 5, 0.2, 0, "talk"), (2, 6, 0.6, 1, "uniform"))


def values_signals(parts: dict) -> None:
    for case in SIGNAL_CASES:
        model = cl._model(*case)
        got, ref = nr.signals(model), loop_signals(model)
        for k, v in ref.items():
            parts[f"signals {case}: {k}"] = (_rel(got[k], v), 1e-10)


# ----------------------------------------------------------------------------- empirical readouts
def loop_ff_noise(n, gram=None) -> bool:
    """q -> noise: the noise coordinate of (gram) (n_k / n - 1/V) is larger than every other one (ties: no)."""
    V, tot = len(n), sum(n)
    if tot == 0:
        return False
    g = [n[k] / tot - 1.0 / V for k in range(V)]
    s = g if gram is None else [sum(gram[a][b] * g[b] for b in range(V)) for a in range(V)]
    return all(s[V - 1] > s[k] for k in range(V - 1))


def loop_r1_gram(n, S, labels, gram) -> float:
    """R_1 with scores D_k A^T A (D_k = S_k / n_k - c): unique argmax at k; unseen labels and ties miss."""
    V = len(n)
    if sum(n) == 0:
        return 0.0
    c = [sum(S[k][j] for k in range(V)) / sum(n) for j in range(V)]
    hits = 0
    for k in labels:
        if n[k] == 0:
            continue
        D = [S[k][j] / n[k] - c[j] for j in range(V)]
        row = [sum(D[a] * gram[a][b] for a in range(V)) for b in range(V)]
        best = max(row)
        hits += int(row[k] == best and row.count(best) == 1)
    return hits / len(labels)


def loop_pairs(z, q: int, V: int):
    """Per sequence and position: in-context trigger pairs (z_i = q, q earlier, i <= T-2), their label
    counts n (V,) and sums S (V, V) of the token frequencies of z_0..z_i."""
    n, S = np.zeros(V), np.zeros((V, V))
    z = np.asarray(z)
    for row in z:
        for i in range(len(row) - 1):
            if row[i] == q and q in row[:i].tolist():
                x = np.zeros(V)
                for s in range(i + 1):
                    x[row[s]] += 1.0 / (i + 1)
                n[row[i + 1]] += 1
                S[row[i + 1]] += x
    return n, S


def values_readouts(parts: dict) -> None:
    # q -> noise: a tie with an in-vocabulary token (not a hit), a strict win, a loss, no pair, a Gram matrix
    # that turns the win into a loss
    V = 4
    gram = [[1.0, 0.0, 0.0, 1.5], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.5, 0.0, 0.0, 1.0]]
    for label, n, g in (("tie", [2, 0, 1, 2], None), ("win", [1, 0, 1, 2], None), ("loss", [3, 0, 1, 2], None),
                        ("no pair", [0, 0, 0, 0], None), ("gram", [1, 0, 1, 2], gram), ("gram tie", [2, 0, 1, 2], gram)):
        st = nr_num.PairStats(np.array(n, dtype=float), np.zeros((V, V)))
        got = nr_num.ff_maps_q_to_noise(st, None if g is None else np.array(g))
        parts[f"ff_maps_q_to_noise {label}"] = (float(got != loop_ff_noise(n, g)), 1e-12)
    # R_1 with a Gram matrix on the tie statistics, default labels (all but the noise token), no pairs
    stats, labels = cl.tie_stats()
    Vt = stats.n.size
    rng = np.random.default_rng(0)                                       # R_1 0.8 here, 0.4 without
    A = rng.normal(size=(Vt, Vt)) + 2 * np.eye(Vt)
    G = A.T @ A
    parts["r1_noisy gram"] = (abs(nr_num.r1_noisy(stats, G, labels) - loop_r1_gram(stats.n, stats.S, labels, G)), 1e-12)
    eye = np.eye(Vt).tolist()
    parts["r1_noisy default labels"] = (abs(nr_num.r1_noisy(stats) - loop_r1_gram(stats.n, stats.S, range(Vt - 1), eye)),
                                        1e-12)
    empty = nr_num.PairStats.empty(Vt)
    parts["r1_noisy no pair"] = (abs(nr_num.r1_noisy(empty)), 1e-12)
    # pair statistics of a hand-made batch: q at the last position (no target), a first occurrence (not in context),
    # a second occurrence at T-2 (in context), repeated triggers, a row without q
    z = torch.tensor([[0, 1, 0, 3, 0, 2, 0], [1, 2, 3, 1, 2, 3, 0], [0, 0, 0, 1, 2, 0, 3], [2, 0, 1, 3, 3, 0, 1]])
    stats = nr_num.add_pairs(nr_num.PairStats.empty(5), z, 0)
    stats = nr_num.add_pairs(stats, z[:2], 0)
    n, S = loop_pairs(torch.cat([z, z[:2]]), 0, 5)
    parts["add_pairs n"] = (_rel(stats.n, n), 1e-12)
    parts["add_pairs S"] = (_rel(stats.S, S), 1e-12)
    parts["add_pairs sequences"] = (float(stats.sequences != 6), 1e-12)
    parts["add_pairs pairs"] = (float(stats.pairs != int(n.sum())), 1e-12)
    # the n grid: 1, 2, 3, 4, 6, 8, 12, ... <= max_n, and max_n
    for m in (1, 2, 5, 12, 100, 4096):
        ref, b = {m}, 1
        while b <= m:
            ref |= {x for x in (b, b + b // 2) if x <= m}
            b *= 2
        parts[f"n_grid {m}"] = (float(nr_num.n_grid(m) != sorted(ref)), 1e-12)


def loop_cell(N, T, eps, max_n, threshold, seed, d: int = 0) -> dict:
    """sample_complexity_cell by plain loops on the same draws: along the grid, the first n at which q -> noise
    holds and at which R_1 over the outputs reaches the threshold, the pairs seen by then. d > 0: the readouts
    through popgrad's embeddings of the seed (U U^T and A^T A, A = W_V^2 W_E over the V = N + 1 tokens)."""
    model = noisy_recall_model(N, T, eps)
    gen = make_generator(seed)
    V = N + 1
    eye = np.eye(V).tolist()
    gram_U = None
    if d > 0:
        emb = make_embeddings(d, V, T, seed=seed, dtype="float64")
        U, A = emb.W_U.numpy(), emb.W_V2.numpy() @ emb.W_E.numpy()
        gram_U, eye = (U @ U.T).tolist(), (A.T @ A).tolist()
    n, S, done = np.zeros(V), np.zeros((V, V)), 0
    out = {"n_ff": math.inf, "n_wo2": math.inf, "pairs_ff": math.inf, "pairs_wo2": math.inf}
    grid, b = {max_n}, 1
    while b <= max_n:
        grid |= {x for x in (b, b + b // 2) if x <= max_n}
        b *= 2
    for m in sorted(grid):
        while done < m:
            k = min(m - done, 2048)
            z, _ = sample_model_e(model, k, gen)
            dn, dS = loop_pairs(z, model.q, V)
            n, S, done = n + dn, S + dS, done + k
        if math.isinf(out["n_ff"]) and loop_ff_noise(n.tolist(), gram_U):
            out["n_ff"], out["pairs_ff"] = float(m), float(n.sum())
        r1 = loop_r1_gram(n.tolist(), S.tolist(), [int(k) for k in model.outputs], eye)
        out["r1_last"], out["n_last"] = r1, m
        if math.isinf(out["n_wo2"]) and r1 >= threshold:
            out["n_wo2"], out["pairs_wo2"] = float(m), float(n.sum())
        if math.isfinite(out["n_ff"]) and math.isfinite(out["n_wo2"]):
            break
    return out


def loop_rate_rows(values, Ns, eps_values, seeds) -> list:
    """rate_table's rows by a plain loop: medians over seeds, per-seed strings, pairs per sequence."""
    rows, i = [], 0
    for e in eps_values:
        for N in Ns:
            vs = values[i:i + seeds]
            i += seeds
            med = {k: statistics.median([v[k] for v in vs]) for k in ("n_ff", "n_wo2", "pairs_ff", "pairs_wo2")}
            rows.append({"eps": e, "N": N, "n_ff_median": med["n_ff"], "n_wo2_median": med["n_wo2"],
                         "pairs_ff_median": med["pairs_ff"], "pairs_wo2_median": med["pairs_wo2"],
                         "pairs_per_sequence": (med["pairs_wo2"] / med["n_wo2"] if med["n_wo2"] != math.inf else math.nan),
                         "n_ff_per_seed": " ".join("inf" if v["n_ff"] == math.inf else f"{v['n_ff']:g}" for v in vs),
                         "n_wo2_per_seed": " ".join("inf" if v["n_wo2"] == math.inf else f"{v['n_wo2']:g}" for v in vs)})
    return rows


def values_sweep(parts: dict) -> None:
    # sweep cells against the same draws in plain loops: R_1 equal to the threshold (2/3 at n = 3, 1/3 at n = 2),
    # q -> noise true then false then true again, a threshold never reached (inf), readouts through embeddings (d = 16)
    for args in ((4, 6, 0.5, 32, 2.0 / 3.0, 1, 0), (4, 8, 0.5, 32, 1.0 / 3.0, 0, 0), (3, 6, 0.3, 12, 1.0, 2, 0),
                 (4, 6, 0.5, 48, 1.0, 1, 16)):
        got = nr_num.sample_complexity_cell(*args[:5], d=args[6], seed=args[5])
        ref = loop_cell(*args)
        for k, v in ref.items():
            parts[f"sample_complexity_cell {args}: {k}"] = (_rel(got.get(k, math.nan), v), 1e-12)
    # the rate table on hand-made cell values: odd and even seed counts (median of 3 and of 4), inf entries
    # (a median that is inf, pairs per sequence nan), exponents: exact power laws, < 2 finite points -> nan
    Ns, eps_values = (8, 16, 32), (0.2, 0.5)
    for seeds in (3, 4):
        values = []
        for e in eps_values:
            for N in Ns:
                for s in range(seeds):
                    values.append({"n_ff": float(3 + s * s), "pairs_ff": float(5 + 2 * s * s * s),
                                   "n_wo2": math.inf if (e == 0.5 and N == 32 and s != 0) else float(N * N * (1 + s)),
                                   "pairs_wo2": (math.inf if (e == 0.5 and N == 32 and s != 0) else float(N * (2 + s))),
                                   "r1_last": 0.5})
        rows, fits = nr_num.rate_table(values, Ns, eps_values, seeds, resamples=20, seed=0)
        for j, (r, ref) in enumerate(zip(rows, loop_rate_rows(values, Ns, eps_values, seeds))):
            for k, v in ref.items():
                d = float(r[k] != v) if isinstance(v, str) else _rel(r[k], v)
                parts[f"rate_table seeds={seeds} row {j}: {k}"] = (d, 1e-12)
        by = {(f["eps"], f["quantity"]): f for f in fits}
        expected = {(0.2, "W_F q->noise (sequences)"): 0.0, (0.2, "W_O^2 R_1 (sequences)"): 2.0,
                    (0.2, "W_O^2 R_1 (in-context pairs)"): 1.0, (0.5, "W_O^2 R_1 (sequences)"): 2.0,
                    (0.5, "W_O^2 R_1 (in-context pairs)"): 1.0}
        for key, v in expected.items():
            parts[f"rate_table seeds={seeds} exponent {key}"] = (abs(by[key]["exponent"] - v), 1e-9)
            parts[f"rate_table seeds={seeds} points {key}"] = (float(by[key]["points"] != (2 if key[0] == 0.5 and "W_O" in key[1] else 3)), 1e-12)
    # the readout Gram matrices: U U^T and A^T A (A = W_V^2 W_E) of popgrad's embeddings of the seed; None at d = 0
    model = noisy_recall_model(4, 6, 0.5)
    gU, gA = nr_num.grams(model, 16, 3)
    emb = make_embeddings(16, 5, 6, seed=3, dtype="float64")
    U, A = emb.W_U.numpy(), emb.W_V2.numpy() @ emb.W_E.numpy()
    parts["grams U U^T"] = (_rel(gU, U @ U.T), 1e-12)
    parts["grams A^T A"] = (_rel(gA, A.T @ A), 1e-12)
    parts["grams d=0"] = (float(nr_num.grams(model, 0, 3) != (None, None)), 1e-12)
    # the sweep's cells: eps-major, then N, then seed (seeds seed + s), with the sweep's parameters
    cells = nr_num.sample_complexity_cells((8, 16), 64, (0.2, 0.5), 2, 100, 0.8, 4, seed=7)
    ref = [({"N": N, "T": 64, "eps": e, "max_n": 100, "threshold": 0.8, "d": 4}, 7 + s)
           for e in (0.2, 0.5) for N in (8, 16) for s in range(2)]
    parts["sample_complexity_cells"] = (float([(c.params, c.seed) for c in cells] != ref), 1e-12)
    # the bootstrap interval around each exponent: lo <= exponent <= hi; a quantity equal in every seed at every N
    # (an exact power law N^2 / 16 in every seed) has the point interval [2, 2]
    exact = nr_num.fit_exponent(0.5, "x", {(8,): [4.0, 4.0, 4.0], (16,): [16.0] * 3, (32,): [64.0] * 3}, 30, 0)
    parts["fit_exponent exact power law"] = (max(abs(exact[k] - 2.0) for k in ("exponent", "lo", "hi")), 1e-9)
    spread = nr_num.fit_exponent(0.5, "x", {(8,): [3.0, 9.0, 4.0], (16,): [20.0, 11.0, 15.0], (32,): [70.0, 40.0, 33.0]},
                                 200, 0)
    parts["fit_exponent lo <= exponent <= hi < lo + 3"] = (
        float(not (spread["lo"] < spread["exponent"] < spread["hi"] < spread["lo"] + 3)), 1e-12)
    one = nr_num.fit_exponent(0.5, "x", {(8,): [1.0, 2.0, 3.0], (16,): [math.inf] * 3}, 10, 0)
    parts["fit_exponent < 2 points: nan"] = (float(not (math.isnan(one["exponent"]) and one["points"] == 1
                                                       and one["dropped_resamples"] == 10)), 1e-12)
    # argument bounds of the sweep: N >= 2, T >= 3, 0 <= eps < 1, 0 < threshold <= 1, max_n >= 1
    for label, args, ok in (("N=2", ([2], 3, [0.0], 1, 1.0), True), ("N=1", ([1], 3, [0.5], 1, 0.5), False),
                            ("T=2", ([4], 2, [0.5], 1, 0.5), False), ("eps=1", ([4], 8, [1.0], 1, 0.5), False),
                            ("threshold=0", ([4], 8, [0.5], 1, 0.0), False), ("threshold=1.01", ([4], 8, [0.5], 1, 1.01), False),
                            ("max_n=0", ([4], 8, [0.5], 0, 0.5), False)):
        try:
            nr_num.validate_sweep(*args)
            accepted = True
        except PopgradError:
            accepted = False
        parts[f"validate_sweep {label}"] = (float(accepted != ok), 1e-12)


def values_refusals(parts: dict) -> None:
    """A model E without an in-context trigger position (T = 3: the outputs avoid q, so q never repeats) has no
    signal: token_gradients and signals refuse it in one line; T = 4 has one and is accepted."""
    for T, ok in ((3, False), (4, True)):
        for name, fn in (("token_gradients", nr.token_gradients), ("signals", nr.signals)):
            try:
                fn(noisy_recall_model(4, T, 0.5))
                accepted = True
            except PopgradError:
                accepted = False
            parts[f"{name} N=4 T={T} accepted"] = (float(accepted != ok), 1e-12)


def measure_values_exact() -> Measurement:
    # Every number of `popgrad noisy --part signals / rates` on tiny fixed inputs: the exact signals against
    # enumeration (the mean over the OTHER outputs: |outputs| - 1), the q -> noise tie rule, R_1 with a Gram
    # matrix, the pair statistics, the n grid, one sweep cell's first n (same draws), the rate table's medians,
    # strings, pairs per sequence and exponents, the argument bounds: against plain loops.
    parts: dict = {}
    values_signals(parts)
    values_readouts(parts)
    values_sweep(parts)
    values_refusals(parts)
    return _measurement(parts, "signals and empirical readouts of model E")


register(Claim(
    id="noisy.values_exact",
    statement="Every number `popgrad noisy --part signals / rates` computes equals its plain-loop value: the exact "
              "signals (feed-forward margin and noise entry, W_O^2 margin, W_O^2 diagonal minus the mean over the other "
              "outputs, E|I|), q -> noise with ties as misses, R_1 with a Gram matrix, the pair statistics, the n grid, "
              "the first n of a sweep cell, the rate table's medians, per-seed strings, pairs per sequence and exponents",
    where="talk 'Mechanisms of emergence' §3 (Chen, Bruna, Bietti 2024); SPEC §7 (theory.noisy_recall.signals, "
          "numerics.noisy_recall)",
    compared="theory.noisy_recall.signals vs direct sums over every enumerated sequence; numerics.noisy_recall "
             "(ff_maps_q_to_noise, r1_noisy, add_pairs, n_grid, sample_complexity_cell, rate_table, fit_exponent, "
             "validate_sweep) vs plain loops on hand-made statistics, batches and cell values; shared: the data model, "
             "the sampler's draws",
    kind="exact", tolerance="rel <= 1e-10 per part (1e-12 for counts and readouts)", measure=measure_values_exact,
    code=("popgrad.theory.noisy_recall.signals", "popgrad.numerics.noisy_recall.ff_maps_q_to_noise",
          "popgrad.numerics.noisy_recall.r1_noisy", "popgrad.numerics.noisy_recall.add_pairs",
          "popgrad.numerics.noisy_recall.n_grid", "popgrad.numerics.noisy_recall.sample_complexity_cell",
          "popgrad.numerics.noisy_recall.rate_table", "popgrad.numerics.noisy_recall.fit_exponent",
          "popgrad.numerics.noisy_recall.validate_sweep", "popgrad.numerics.noisy_recall.sample_complexity_cells",
          "popgrad.numerics.noisy_recall.grams"),
    sides=(("popgrad.theory.noisy_recall.signals", "popgrad.numerics.noisy_recall.ff_maps_q_to_noise",
            "popgrad.numerics.noisy_recall.r1_noisy", "popgrad.numerics.noisy_recall.add_pairs",
            "popgrad.numerics.noisy_recall.sample_complexity_cell", "popgrad.numerics.noisy_recall.rate_table"),
           ("popgrad.claims.noisy_values.loop_signals", "popgrad.claims.noisy_values.loop_ff_noise",
            "popgrad.claims.noisy_values.loop_r1_gram", "popgrad.claims.noisy_values.loop_pairs",
            "popgrad.claims.noisy_values.loop_cell", "popgrad.claims.noisy_values.loop_rate_rows"))))


# ----------------------------------------------------------------------------- truncation metrics
def loop_truncation(run, z, ybar) -> dict:
    """truncation_metrics by a numpy forward of SPEC §5's model (with and without W_F) and plain loops over the
    in-context trigger positions i (z_i = q, q earlier, i <= T-2): means and standard errors (ddof 1) of the noise
    probability, of the accuracy and probability on ybar where ybar already followed an earlier q, of the layer-2
    attention mass on the positions right after a q holding ybar / the noise token; head recall and W_F's readout."""
    tab, model, cfg = run.tab, run.model, run.cfg
    t64 = {k: getattr(tab, k).detach().double().numpy() for k in ("E", "P", "E1", "P1", "U", "V2")}
    W = {k: v.detach().double().numpy() for k, v in run.params.items()}
    c = 1.0 / math.sqrt(tab.d) if cfg.scale == "sqrt" else 1.0
    q, noise = model.q, model.noise
    z, ybar = np.asarray(z), np.asarray(ybar)
    B, T = z.shape

    def softmax(s):
        w = np.exp(s - s.max())
        return w / w.sum()

    vals = {k: [] for k in ("p_noise_full", "p_noise_no_ff", "acc_y_full", "acc_y_no_ff", "p_y_full", "p_y_no_ff",
                            "attn_y", "attn_noise")}
    for b in range(B):
        x = t64["E"][z[b]] + t64["P"][:T]
        v1 = t64["E1"][z[b]] + t64["P1"][:T]
        h = np.array([x[t] + softmax(c * np.array([x[t] @ W["W_K1"] @ x[s] for s in range(t + 1)])) @ v1[:t + 1]
                      for t in range(T)])
        for i in range(T - 1):
            if not (z[b, i] == q and q in z[b, :i].tolist()):
                continue
            a = softmax(c * np.array([h[i] @ W["W_K2"] @ h[s] for s in range(i + 1)]))
            out = h[i] + W["W_O2"] @ t64["V2"] @ (a @ h[:i + 1])
            after_q = [s for s in range(1, i + 1) if z[b, s - 1] == q]
            recallable = any(z[b, s] == ybar[b] for s in after_q)
            for name, o in (("full", out + W["W_F"] @ out), ("no_ff", out)):
                p = softmax(t64["U"] @ o)
                vals[f"p_noise_{name}"].append(p[noise])
                if recallable:
                    vals[f"acc_y_{name}"].append(float(int(np.argmax(p)) == ybar[b]))
                    vals[f"p_y_{name}"].append(p[ybar[b]])
            vals["attn_y"].append(sum(a[s] for s in after_q if z[b, s] == ybar[b]))
            vals["attn_noise"].append(sum(a[s] for s in after_q if z[b, s] == noise))
    res = {k: (statistics.fmean(v), statistics.stdev(v) / math.sqrt(len(v))) for k, v in vals.items()}
    res["n_positions"] = len(vals["attn_y"])
    outs = [int(k) for k in model.outputs]
    for name, M in (("no_ff", W["W_O2"] @ t64["V2"]), ("full", (np.eye(tab.d) + W["W_F"]) @ W["W_O2"] @ t64["V2"])):
        res[f"head_recall_{name}"] = sum(int(np.argmax(t64["U"] @ M @ t64["E"][k]) == k) for k in outs) / len(outs)
    score = t64["U"] @ W["W_F"] @ t64["E"][q]
    best_other = max(score[k] for k in range(len(score)) if k != noise)
    res["ff_noise"], res["ff_margin"] = float(score[noise] > best_other), score[noise] - best_other
    return res


def small_noisy_run(seed: int = 0, plant: bool = False):
    """A float64 model-E run (N = 4, T = 10, d = 8, linear W_F) at random non-zero weights; `plant` adds
    q -> noise to W_F (so that its readout is the noise token)."""
    cfg = trn.TrainConfig(data="E", N=4, T=10, eps=0.5, d=8, batch=4, steps=1, probe_every=1, loss="all", W_F=True, seed=seed,
                          device="cpu", dtype="float64", scale="sqrt", embed="code", cutoff=10)
    run = trn.setup(cfg)
    gen = torch.Generator().manual_seed(40 + seed)
    with torch.no_grad():
        for k, v in run.params.items():
            v.copy_(torch.randn(v.shape, generator=gen, dtype=v.dtype) * (3.0 if k == "W_K2" else 1.0))
        if plant:
            u, e = run.tab.U[run.model.noise], run.tab.E[run.model.q]
            run.params["W_F"] += 30.0 * torch.outer(u, e) / (u.norm() ** 2 * e.norm() ** 2)
    return run


def values_helpers(parts: dict) -> None:
    # _mean_se: ddof 1; one value or none: nan se; _flat splits (mean, se) into key, key_se
    for v in ([0.25, 1.0, 4.0], [3.0], []):
        m, se = ntr._mean_se(torch.tensor(v, dtype=torch.float64))
        rm = statistics.fmean(v) if v else math.nan
        rse = statistics.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else math.nan
        parts[f"_mean_se {v}"] = (max(_rel(m, rm), _rel(se, rse)), 1e-12)
    flat = ntr._flat({"a": (1.0, 0.5), "b": 2.0})
    parts["_flat"] = (float(flat != {"a": 1.0, "a_se": 0.5, "b": 2.0}), 1e-12)
    # seed_summary: mean and se (ddof 1) over seeds; one seed: nan se
    for finals in ([0.1, 0.4, 0.25], [0.3]):
        m, se = ntr.seed_summary([{"final": {"x": f}} for f in finals], "x")
        rse = statistics.stdev(finals) / math.sqrt(len(finals)) if len(finals) > 1 else math.nan
        parts[f"seed_summary {finals}"] = (max(_rel(m, statistics.fmean(finals)), _rel(se, rse)), 1e-12)


def values_truncation_runs(parts: dict) -> None:
    # seed 3: head recall 1/3 with W_F, 0 without; seed 5 with W_F planted: W_F reads q as the noise token; seed 5
    # with W_F = 0: every readout ties (not q -> noise)
    for seed, plant in ((3, False), (5, True), (5, "zero")):
        run = small_noisy_run(seed, plant is True)
        if plant == "zero":
            with torch.no_grad():
                run.params["W_F"].zero_()
        z, ybar = sample_model_e(run.model, 12, make_generator(9))
        got, ref = ntr.truncation_metrics(run, z, ybar), loop_truncation(run, z, ybar)
        parts[f"truncation {seed} {plant}: key set"] = (float(set(got) != set(ref)), 1e-12)
        for k, v in ref.items():
            g = got.get(k, (math.inf, math.inf))
            if isinstance(v, tuple):
                parts[f"truncation {seed} {plant}: {k} mean"] = (_rel(g[0], v[0]), 1e-10)
                parts[f"truncation {seed} {plant}: {k} se"] = (_rel(g[1], v[1]), 1e-10)
            else:
                parts[f"truncation {seed} {plant}: {k}"] = (_rel(g, v), 1e-10)


DRIVER = """
import argparse, contextlib, io, json, sys
from popgrad.commands import noisy as cmd
from popgrad.errors import PopgradError
runs, checks = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {"runs": {}, "accepted": {}}
for name, argv in runs.items():
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cmd.run(parser.parse_args(argv + ["--json"]))
    out["runs"][name] = json.loads(buf.getvalue()) if rc == 0 else rc
for name, argv in checks.items():
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            cmd.validate_args(parser.parse_args(argv))
        out["accepted"][name] = True
    except (PopgradError, SystemExit):
        out["accepted"][name] = False
print(json.dumps(out))
"""
TRUNC_CLI = dict(N=3, T=8, eps=0.5, d=4, batch=4, steps=1, eta=1.0, probe_every=1, test_batch=16, scale="sqrt",
                 embed="code")
CLI_RUNS = {"signals": ["--part", "signals", "--Ns", "2,3", "--Ts", "5", "--eps", "0.3"],
            "truncation": ["--part", "truncation", "--train-N", "3", "--train-T", "8", "--train-d", "4",
                           "--batch", "4", "--steps", "1", "--probe-every", "1", "--train-seeds", "2", "--test-batch",
                           "16", "--seed", "5"],
            "rates": ["--part", "rates", "--Ns", "3,5", "--T", "8", "--eps", "0.3,0.6", "--seeds", "3", "--max-n", "64",
                      "--threshold", "0.66", "--d", "32", "--resamples", "40", "--seed", "4"]}
# (argv, accepted): model E needs N >= 2, T >= 3, 0 < eps < 1, 0 < threshold <= 1, probe_every <= steps
CLI_BOUNDS = {"Ns=2": (["--Ns", "2"], True), "Ns=1": (["--Ns", "1"], False), "T=3": (["--T", "3"], True),
              "T=2": (["--T", "2"], False), "Ts=3": (["--Ts", "3"], True), "Ts=2": (["--Ts", "2"], False),
              "eps=0.999": (["--eps", "0.999"], True), "eps=1": (["--eps", "1"], False), "eps=0": (["--eps", "0"], False),
              "threshold=1": (["--threshold", "1"], True), "threshold=1.01": (["--threshold", "1.01"], False),
              "threshold=0": (["--threshold", "0"], False), "train-eps=1": (["--train-eps", "1"], False),
              "train-N=2": (["--train-N", "2"], True), "train-N=1": (["--train-N", "1"], False),
              "train-T=3": (["--train-T", "3"], True), "train-T=2": (["--train-T", "2"], False),
              "probe-every=steps": (["--steps", "10", "--probe-every", "10"], True),
              "probe-every>steps": (["--steps", "10", "--probe-every", "11"], False),
              "d=0": (["--d", "0"], True), "seeds=1": (["--seeds", "1"], True), "train-seeds=1": (["--train-seeds", "1"], True)}


def run_noisy_command() -> dict:
    """`popgrad noisy --json` for CLI_RUNS and its argument check on CLI_BOUNDS, in one subprocess (claims may not
    import the CLI layer)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(CLI_RUNS),
                           json.dumps({k: v[0] for k, v in CLI_BOUNDS.items()})],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_command_values() -> Measurement:
    # `popgrad noisy`'s own numbers: the signals table (each signal and the ratio column) against enumeration loops;
    # the truncation table (mean, se with ddof 1 and the per-seed strings of every metric) against the training cells
    # rerun here and statistics.stdev; which arguments it accepts at the bounds model E needs.
    res = run_noisy_command()
    parts: dict = {}
    for r in res["runs"]["signals"]["rows"]:
        ref = loop_signals(noisy_recall_model(r["N"], r["T"], r["eps"]))
        ref["ratio_ff_wo2"] = ref["ff_margin"] / ref["wo2_diag"]
        for k, v in ref.items():
            parts[f"signals N={r['N']}: {k}"] = (_rel(r[k], v), 1e-10)
    finals = [ntr.train_noisy_cell(**TRUNC_CLI, seed=5 + s)["final"] for s in range(2)]
    rows = {r["metric"]: r for r in res["runs"]["truncation"]["rows"]}
    metrics = ("p_noise_full", "p_noise_no_ff", "acc_y_full", "acc_y_no_ff", "p_y_full", "p_y_no_ff", "attn_y",
               "attn_noise", "ff_noise", "head_recall_full", "head_recall_no_ff")
    parts["truncation metrics"] = (float(set(rows) != set(metrics)), 1e-12)
    for k in metrics:
        v = [f[k] for f in finals]
        r = rows.get(k, {"mean": math.inf, "se": math.inf, "per_seed": ""})
        parts[f"truncation {k} mean"] = (_rel(r["mean"], statistics.fmean(v)), 1e-10)
        parts[f"truncation {k} se"] = (_rel(r["se"], statistics.stdev(v) / math.sqrt(len(v))), 1e-10)
        parts[f"truncation {k} per seed"] = (float(r["per_seed"] != " ".join(f"{x:.3f}" for x in v)), 1e-12)
    # --part rates: the table and the exponents are those of the sweep's cells at the given sizes, threshold, d,
    # seeds, resamples and first seed (cells run in process here)
    cells = nr_num.sample_complexity_cells((3, 5), 8, (0.3, 0.6), 3, 64, 0.66, 32, seed=4)
    rows, fits = nr_num.rate_table([c.fn(**c.params, seed=c.seed) for c in cells], (3, 5), (0.3, 0.6), 3, 40, 4)
    out = res["runs"]["rates"]
    parts["rates rows"] = (max((_rel(a[k], b[k]) if not isinstance(b[k], str) else float(a[k] != b[k]))
                               for a, b in zip(out["rows"], rows) for k in b) if len(out["rows"]) == len(rows) else math.inf,
                           1e-12)
    parts["rates fits"] = (max(_rel([a[k] for k in ("exponent", "lo", "hi", "points")], [b[k] for k in ("exponent", "lo", "hi",
                                                                                                       "points")])
                               for a, b in zip(out["fits"], fits)) if len(out["fits"]) == len(fits) else math.inf, 1e-12)
    for k, (_, ok) in CLI_BOUNDS.items():
        parts[f"accepts {k}"] = (float(res["accepted"][k] != ok), 1e-12)
    return _measurement(parts, "popgrad noisy's tables and argument bounds")


register(Claim(
    id="noisy.command_values",
    statement="`popgrad noisy` prints the exact signals with their ratio, the rate table and exponents of its sweep "
              "cells at the given sizes, threshold, d, seeds and resamples, and over training seeds the mean, the "
              "standard error (ddof 1) and the per-seed values of every truncation metric; it accepts exactly the "
              "arguments model E allows (N >= 2, T >= 3, 0 < eps < 1, 0 < threshold <= 1, probe spacing <= steps)",
    where="talk 'Mechanisms of emergence' §3; SPEC §7 (popgrad noisy)",
    compared="`popgrad noisy --json` (a subprocess) vs direct sums over every enumerated sequence, the training cells "
             "rerun in process and statistics.stdev; shared: the data model, the seeds",
    kind="exact", tolerance="rel <= 1e-10 per part", measure=measure_command_values,
    code=("popgrad.claims.noisy_values.run_noisy_command",),
    sides=(("popgrad.claims.noisy_values.run_noisy_command",), ("popgrad.claims.noisy_values.loop_signals",))))


def measure_truncation_exact() -> Measurement:
    # The truncation metrics of `popgrad noisy --part truncation` (every mean and se, head recall, W_F's readout and
    # margin) on float64 runs at random weights against a numpy forward and plain loops; _mean_se, _flat,
    # seed_summary (ddof 1, nan for one value); one training cell (its probe schedule, data streams, SGD update and
    # metrics; float32 against float64, rel <= 1e-4, discrete metrics exact) against the cell written out.
    parts: dict = {}
    values_helpers(parts)
    values_train_cell(parts)
    values_truncation_runs(parts)
    return _measurement(parts, "truncation metrics and one training cell")


register(Claim(
    id="noisy.truncation_exact",
    statement="Every truncation metric of `popgrad noisy --part truncation` equals its plain-loop value (noise "
              "probability, accuracy and probability on ybar with and without W_F, layer-2 attention on ybar / noise, "
              "head recall, W_F's q -> noise readout and margin, every standard error with ddof 1), and so do the "
              "seed aggregation's mean and se and one training cell's curves (probe schedule, data streams, SGD update)",
    where="talk 'Mechanisms of emergence' §3 (truncation of the feed-forward layer); SPEC §7 (numerics.noisy_training)",
    compared="numerics.noisy_training.truncation_metrics / _mean_se / _flat / seed_summary vs a numpy forward of SPEC "
             "§5's model and plain loops over the in-context trigger positions, statistics.stdev; shared: the weights, "
             "the batch",
    kind="exact", tolerance="rel <= 1e-10 per part", measure=measure_truncation_exact,
    code=("popgrad.numerics.noisy_training.truncation_metrics", "popgrad.numerics.noisy_training._mean_se",
          "popgrad.numerics.noisy_training.seed_summary", "popgrad.numerics.noisy_training.train_noisy_cell"),
    sides=(("popgrad.numerics.noisy_training.truncation_metrics", "popgrad.numerics.noisy_training._mean_se",
            "popgrad.numerics.noisy_training.seed_summary", "popgrad.numerics.noisy_training.train_noisy_cell"),
           ("popgrad.claims.noisy_values.loop_truncation", "popgrad.claims.noisy_values.loop_train_cell"))))


# ----------------------------------------------------------------------------- one training cell, step by step
TRAIN_CELL = dict(N=4, T=8, eps=0.5, d=8, batch=4, steps=3, eta=0.5, probe_every=2, test_batch=8, scale="sqrt",
                  embed="code")


def loop_train_cell(seed: int) -> dict:
    """train_noisy_cell written out: popgrad's embeddings of the seed in the code scaling (w_E, p_t times sqrt(d);
    W_V^1, W_O^1, W_V^2, W_U times 1/sqrt(3)), W_K^1, W_K^2, W_O^2, W_F drawn U(-1/sqrt(d), 1/sqrt(d)) from generator
    seed + 1 (order W_K1, W_K2, W_O2, W_F, W_O1), SPEC §5's model with a linear W_F (numerics.paper_model's module
    structure), loss = mean cross-entropy over every position t <= T-2 of batches drawn from generator seed + 2,
    torch.optim.SGD's update by hand (momentum 0.9, weight decay 1e-4: buf = m buf + (g + wd W), W -= eta buf); the
    metrics (loop_truncation) on the probe batch (generator seed + 1000, first draw) at steps 0, probe_every,
    2 probe_every, ... and the last, and on the next draw of that generator at the end."""
    c = TRAIN_CELL
    d, V, T = c["d"], c["N"] + 1, c["T"]
    model = noisy_recall_model(c["N"], T, c["eps"])
    emb = make_embeddings(d, V, T, seed=seed, dtype="float64")
    f, g = math.sqrt(d), 1.0 / math.sqrt(3.0)
    Phi1 = emb.W_O1 @ emb.W_V1
    tab = type("Tables", (), {"E": f * emb.W_E.T, "P": f * emb.P.T, "E1": f * g * g * (Phi1 @ emb.W_E).T,
                              "P1": f * g * g * (Phi1 @ emb.P).T, "U": g * emb.W_U, "V2": g * emb.W_V2, "d": d})
    gen0 = torch.Generator().manual_seed(seed + 1)
    draws = {k: (torch.rand((d, d), generator=gen0, dtype=torch.float64) * 2 - 1) / math.sqrt(d)
             for k in ("W_K1", "W_K2", "W_O2", "W_F", "W_O1")}
    W = {k: draws[k] for k in ("W_K1", "W_K2", "W_O2", "W_F")}
    cfg = type("Config", (), {"scale": c["scale"]})
    data = make_generator(seed + 2)
    gen = make_generator(seed + 1000)
    z_probe, y_probe = sample_model_e(model, c["test_batch"], gen)
    buf: dict = {}
    curves = []

    def metrics(z, y):
        return loop_truncation(type("RunView", (), {"tab": tab, "model": model, "cfg": cfg, "params": W}), z, y)

    for step in range(c["steps"] + 1):
        if step % c["probe_every"] == 0 or step == c["steps"]:
            curves.append((step, metrics(z_probe, y_probe)))
        if step == c["steps"]:
            break
        z, _ = sample_model_e(model, c["batch"], data)
        leaves = {k: v.clone().requires_grad_(True) for k, v in W.items()}
        net = pm.from_embeddings(emb, leaves, c["embed"], c["scale"])
        logits = net(z)[:, :T - 1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), z[:, 1:].reshape(-1))
        grads = torch.autograd.grad(loss, [net.trained()[k] for k in W])
        with torch.no_grad():
            for (k, w), gk in zip(list(W.items()), grads):
                dp = gk + 1e-4 * w
                buf[k] = dp.clone() if k not in buf else 0.9 * buf[k] + dp
                W[k] = w - c["eta"] * buf[k]
    z_test, y_test = sample_model_e(model, c["test_batch"], gen)
    return {"curves": curves, "final": metrics(z_test, y_test)}


def values_train_cell(parts: dict) -> None:
    got = ntr.train_noisy_cell(**TRAIN_CELL, seed=2)
    ref = loop_train_cell(2)
    parts["train cell: probe steps"] = (float([r["step"] for r in got["curves"]] != [s for s, _ in ref["curves"]]), 1e-12)
    for label, g, r in ([(f"step {s}", gc, rc) for (s, rc), gc in zip(ref["curves"], got["curves"])]
                        + [("final", got["final"], ref["final"])]):
        for k, v in r.items():
            pairs = [(k, v)] if not isinstance(v, tuple) else [(k, v[0]), (k + "_se", v[1])]
            for key, val in pairs:
                exact = key in ("n_positions", "ff_noise") or key.startswith(("acc_y", "head_recall"))
                parts[f"train cell {label}: {key}"] = (_rel(g.get(key, math.inf), val), 1e-12 if exact else 1e-4)
