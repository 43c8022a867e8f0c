"""Claims: noisy in-context recall (model E, SPEC §7; Chen, Bruna, Bietti 2024, talk section 3).

Exact: the population gradients at initialization of the feed-forward W_F and of W_O^2 (uniform
attention, as in App. B.3.1) by the forward-backward engine `popgrad.theory.noisy_recall`,
against autograd of the exact population loss on every sequence of `NoisyRecallModel.enumerate`
(the references below, written plainly); the closed form of the q -> noise entry; the sampler
against the engine (Monte-Carlo). Approximate: the signals' rates in N and T, the sample
complexities in N with bootstrap intervals (`popgrad noisy`), the trained model's truncation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from popgrad.cells import run_in_process
from popgrad.data import NoisyRecallModel, noisy_recall_model
from popgrad.embeddings import make_embeddings
from popgrad.numerics import noisy_recall as nr_num
from popgrad.numerics.noisy_recall import in_context_pairs, rate_table, sample_complexity_cells
from popgrad.numerics.noisy_training import train_noisy_cell
from popgrad.numerics.samplers import make_generator, sample_model_e
from popgrad.rates import loglog_slope, power_law_exponents
from popgrad.registry import Claim, Measurement, register
from popgrad.theory import noisy_recall as nr
from popgrad.tolerances import FLOAT64, MC_ATOL, MC_Z, rel_error

# (N, T, eps, q, pi_b): tiny enough for brute force (N * N^T * 2^T rows); non-uniform bigrams on two
ENUM_CASES = ((2, 6, 0.3, 0, "uniform"), (3, 5, 0.5, 1, "random"), (3, 6, 0.2, 2, "random"),
              (4, 5, 0.4, 0, "uniform"), (3, 6, 0.3, 0, "talk"))   # 'talk': ybar uniform on all of [N]
D_ENUM = 10


def _model(N, T, eps, q, kind, seed=0):
    if kind in ("uniform", "talk"):
        return noisy_recall_model(N, T, eps, q, ybar_avoids_q=kind == "uniform")
    rng = np.random.default_rng(seed + 17 * N + T)
    return NoisyRecallModel(N, T, eps, rng.dirichlet(np.ones(N)), rng.dirichlet(np.ones(N), size=N), q)


def reference_pairs(model: NoisyRecallModel):
    """Every in-context trigger position of every enumerated sequence, as tensors.

    Returns (w (P,) probability of the sequence, zi (P,) token at i, xbar (P, V) token frequencies
    of z_0..z_i, y (P,) z_{i+1}, norm = sum over sequences of prob * number of positions)."""
    z, p, _ = model.enumerate()
    V = model.N + 1
    rows, ws, zi, xs, ys = [], [], [], [], []
    for i in range(1, model.T - 1):                       # a loop over positions, plain on purpose
        keep = (z[:, i] == model.q) & (z[:, :i] == model.q).any(1)
        m = np.nonzero(keep)[0]
        onehot = np.zeros((m.size, V))
        for s in range(i + 1):
            onehot[np.arange(m.size), z[m, s]] += 1.0
        ws.append(p[m])
        zi.append(z[m, i])
        xs.append(onehot / (i + 1))
        ys.append(z[m, i + 1])
        rows.append(m.size)
    w = torch.as_tensor(np.concatenate(ws))
    return (w, torch.as_tensor(np.concatenate(zi)), torch.as_tensor(np.concatenate(xs)),
            torch.as_tensor(np.concatenate(ys)), float(w.sum()))


def reference_gradients(model: NoisyRecallModel, emb):
    """-grad of the exact population loss at W_F = W_O^2 = 0 by autograd, over the enumerated pairs.

    Logits W_U (W_F w_E(z_i) + W_O^2 W_V^2 W_E xbar_i), cross-entropy, loss = sum_pairs prob * l / sum prob."""
    w, zi, xbar, y, norm = reference_pairs(model)
    d = emb.d
    W_F = torch.zeros(d, d, dtype=torch.float64, requires_grad=True)
    W_O = torch.zeros(d, d, dtype=torch.float64, requires_grad=True)
    ff_in = emb.W_E.T[zi]                                               # (P, d)
    att_in = xbar @ emb.W_E.T @ emb.W_V2.T                              # (P, d)
    logits = (ff_in @ W_F.T + att_in @ W_O.T) @ emb.W_U.T               # (P, V)
    loss = (w * F.cross_entropy(logits, y, reduction="none")).sum() / norm
    gF, gO = torch.autograd.grad(loss, (W_F, W_O))
    return -gF, -gO


def reference_token_stats(model: NoisyRecallModel):
    """G_F[:, q] and G_O (V, V) by direct sums over the enumerated pairs (token coordinates)."""
    w, _, xbar, y, norm = reference_pairs(model)
    V = model.N + 1
    onehot = torch.zeros(y.numel(), V, dtype=torch.float64)
    onehot[torch.arange(y.numel()), y] = 1.0
    resid = onehot - 1.0 / V                                            # (P, V)
    return (w[:, None] * resid).sum(0) / norm, (resid * w[:, None]).T @ xbar / norm


def _cases():
    for N, T, eps, q, kind in ENUM_CASES:
        yield (N, T, eps, q, kind), _model(N, T, eps, q, kind), make_embeddings(D_ENUM, N + 1, T, seed=N + T)


# ----------------------------------------------------------------------------- exact gradients
def _gradient_measure(engine_gradient, which: int) -> Measurement:
    """The engine's gradient `engine_gradient(model, emb)` against autograd's (`which`: 0 W_F, 1 W_O^2)."""
    worst = 0.0
    for _, model, emb in _cases():
        worst = max(worst, rel_error(engine_gradient(model, emb), reference_gradients(model, emb)[which]))
    return Measurement(worst, FLOAT64.rtol, "exact", note=f"{len(ENUM_CASES)} models E (N, T, eps, q, pi_b), d = {D_ENUM}",
                       value=f"worst rel error {worst:.1e} vs 1e-10 over {len(ENUM_CASES)} models E",
                       details={"cases": [c[:4] for c in ENUM_CASES]})


def measure_ff_gradient() -> Measurement:
    return _gradient_measure(nr.ff_gradient, 0)


def measure_wo2_gradient() -> Measurement:
    return _gradient_measure(nr.wo2_gradient, 1)


def measure_noise_entry() -> Measurement:
    """eps - 1/V against enumeration (tiny sizes) and its column form against the engine's pi_I."""
    worst = 0.0
    for (N, T, eps, q, kind), model, _ in _cases():
        col, _ = reference_token_stats(model)
        worst = max(worst, abs(nr.ff_noise_entry(eps, N) - float(col[N])) / abs(float(col[N])))
        g = nr.token_gradients(model)
        worst = max(worst, rel_error(nr.ff_column_closed_form(model, g.pi_I), col))
    return Measurement(worst, FLOAT64.rtol, "exact", value="G_F[noise, q] = eps - 1/(N+1) for every T, pi_b",
                       note="the q -> noise entry of the feed-forward gradient does not depend on T or the bigrams")


_GRAD_SIDES = (("popgrad.theory.noisy_recall.token_gradients", "popgrad.theory.noisy_recall.ff_gradient",
                "popgrad.theory.noisy_recall.wo2_gradient"),
               ("popgrad.claims.noisy_recall.reference_gradients",))

register(Claim(
    id="noisy.ff_gradient_vs_autograd",
    statement="-grad_{W_F} L(0) = W_U^T G_F W_E^T with G_F[k, j] = E_I[(1{y=k} - 1/V) 1{z_i=j}] (model E, at the "
              "in-context trigger positions)",
    where="talk 'Mechanisms of emergence' §3 (Chen, Bruna, Bietti 2024): 'studying gradients at initialization'; SPEC §7",
    compared="forward-backward engine (token coordinates, embeddings last) vs autograd of the exact population "
             "loss over every enumerated sequence; shared: the data model and the embeddings",
    kind="exact", tolerance="rel <= 1e-10 (float64)", measure=measure_ff_gradient,
    code=("popgrad.theory.noisy_recall.ff_gradient", "popgrad.data.NoisyRecallModel"),
    sides=(_GRAD_SIDES[0][:2], _GRAD_SIDES[1])))

register(Claim(
    id="noisy.wo2_gradient_vs_autograd",
    statement="-grad_{W_O^2} L(0) = W_U^T G_O W_E^T W_V2^T with G_O[k, j] = E_I[(1{y=k} - 1/V) xbar_i[j]] (uniform "
              "attention at initialization, eq. (15)'s form on model E)",
    where="talk §3 gradients at initialization; App. B.3.1 eq. (15) (uniform attention); SPEC §7",
    compared="forward-backward engine (token coordinates, embeddings last) vs autograd of the exact population "
             "loss over every enumerated sequence; shared: the data model and the embeddings",
    kind="exact", tolerance="rel <= 1e-10 (float64)", measure=measure_wo2_gradient,
    code=("popgrad.theory.noisy_recall.wo2_gradient", "popgrad.theory.noisy_recall.token_gradients"),
    sides=((_GRAD_SIDES[0][0], _GRAD_SIDES[0][2]), _GRAD_SIDES[1])))

register(Claim(
    id="noisy.ff_noise_entry_closed_form",
    statement="G_F[noise, q] = eps - 1/(N+1) and G_F[:, q] = (1 - eps) pi_I + eps e_noise - 1/(N+1) exactly",
    where="talk §3 Result 1 ('feed-forward layers store the generic noise'): the q -> noise signal ~ eps",
    compared="closed form vs direct sums over every enumerated sequence; shared: the data model",
    kind="exact", tolerance="rel <= 1e-10 (float64)", measure=measure_noise_entry,
    code=("popgrad.theory.noisy_recall.ff_noise_entry", "popgrad.theory.noisy_recall.ff_column_closed_form"),
    sides=(("popgrad.theory.noisy_recall.ff_noise_entry", "popgrad.theory.noisy_recall.ff_column_closed_form"),
           ("popgrad.claims.noisy_recall.reference_token_stats",)),
    finding="feed-forward gradient carries q -> noise with signal eps"))


# ----------------------------------------------------------------------------- Monte-Carlo vs engine
MC_CASE = (4, 10, 0.3, 1)          # N, T, eps, q (non-uniform bigrams)
MC_SEQUENCES = 40_000


def mc_token_gradients(model: NoisyRecallModel, sequences: int, seed: int = 0):
    """G_F[:, q] and G_O by the ratio estimator over sampled sequences, with delta-method standard errors."""

    V = model.N + 1
    z, _ = sample_model_e(model, sequences, make_generator(seed))
    b, i = in_context_pairs(z, model.q)
    T = model.T
    upto = (torch.arange(T)[None, :] <= i[:, None]).double()
    counts = torch.zeros(b.numel(), V, dtype=torch.float64).scatter_add_(1, z[b], upto)
    xbar = counts / (i[:, None] + 1).double()
    resid = F.one_hot(z[b, i + 1], V).double() - 1.0 / V                 # (P, V)
    per_a = torch.zeros(sequences, V, V + 1, dtype=torch.float64)        # per sequence: [G_O | G_F column]
    per_a.index_add_(0, b, torch.cat([resid[:, :, None] * xbar[:, None, :], resid[:, :, None]], 2))
    per_b = torch.bincount(b, minlength=sequences).double()
    est = per_a.sum(0) / per_b.sum()
    lin = (per_a - est[None] * per_b[:, None, None]) / per_b.mean()
    se = lin.std(0) / math.sqrt(sequences)
    return est, se


def measure_mc_vs_engine() -> Measurement:
    N, T, eps, q = MC_CASE
    model = _model(N, T, eps, q, "random")
    est, se = mc_token_gradients(model, MC_SEQUENCES, seed=3)
    g = nr.token_gradients(model)
    exact = torch.as_tensor(np.concatenate([g.G_O, g.G_F[:, q:q + 1]], 1))
    z = (((est - exact).abs() - MC_ATOL).clamp(min=0) / se.clamp(min=1e-300)).max()   # exact entries: se = 0
    return Measurement(float(z), MC_Z, "approx", value=f"max |MC - exact| / se = {float(z):.2f} over {exact.numel()} entries",
                       note=f"model E N={N}, T={T}, eps={eps}, non-uniform bigrams, {MC_SEQUENCES} sequences")


register(Claim(
    id="noisy.sampler_vs_engine",
    statement="the vectorized sampler of model E and the exact engine give the same gradient statistics G_F, G_O",
    where="SPEC §7 (one definition of model E for the exact engine, the samplers and training)",
    compared="ratio estimator over sampled sequences (numerics.samplers.sample_model_e) vs the forward-backward "
             "engine, within MC_Z standard errors entrywise; shared: the data model",
    kind="approx", tolerance=f"max |z| <= {MC_Z}", measure=measure_mc_vs_engine,
    code=("popgrad.numerics.samplers.sample_model_e", "popgrad.theory.noisy_recall.token_gradients")))



# ----------------------------------------------------------------------------- R_1's ties
def loop_r1(n, S, labels) -> float:
    """Plain loop, SPEC §4: label k is recalled when its row S_k / n_k - c (c = sum_k S_k / sum_k n_k) has its
    largest score at column k alone; unseen labels and ties count as misses."""
    V = len(n)
    c = [sum(S[k][j] for k in range(V)) / sum(n) for j in range(V)]
    hits = 0
    for k in labels:
        if n[k] == 0:
            continue
        row = [S[k][j] / n[k] - c[j] for j in range(V)]
        best = max(row)
        hits += int(row[k] == best and sum(1 for x in row if x == best) == 1)
    return hits / len(labels)


def tie_stats():
    """V = 6, labels 0..4: rows D_k of exact integers (columns sum to 0), label 0 tied between columns 0 and 1,
    labels 1 and 2 recalled alone, label 3 tied between 3 and 5, label 4 unseen; S_k = n_k (D_k + c)."""
    D = np.array([[1, 1, 0, 0, 0, 0], [0, 2, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [-1, -3, -1, 0, 0, 0],
                  [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=float)
    D[3, 3] = D[3, 5] = 3.0
    D[5] = -D[:5].sum(0)
    n = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    S = n[:, None] * (D + 7.0)
    return nr_num.PairStats(n, S), list(range(5))


def measure_r1_ties() -> Measurement:
    stats, labels = tie_stats()
    got = nr_num.r1_noisy(stats, labels=labels)
    ref = loop_r1(stats.n.tolist(), stats.S.tolist(), labels)
    err = abs(got - ref)
    return Measurement(err, 1e-12, "exact", value=f"R_1 {got:.3f} vs loop {ref:.3f} (2 ties, 1 unseen of 5 labels)",
                       note="hand-built pair statistics with exact ties; ties and unseen labels are misses")


register(Claim(
    id="noisy.r1_ties",
    statement="R_1 of the empirical one-step W_O^2 counts a label as recalled only when its own output is the unique "
              "argmax; ties and unseen labels are misses",
    where="SPEC §4 (ties count as misses); App. E (R_1 of the noisy recall)",
    compared="numerics.noisy_recall.r1_noisy vs a plain loop over labels and columns; shared: the pair statistics",
    kind="exact", tolerance="abs <= 1e-12", measure=measure_r1_ties,
    code=("popgrad.numerics.noisy_recall.r1_noisy",),
    sides=(("popgrad.numerics.noisy_recall.r1_noisy",), ("popgrad.claims.noisy_recall.loop_r1",))))

# ----------------------------------------------------------------------------- signals vs eps, N, T
SIGNAL_NS = (8, 16, 32, 64)
SIGNAL_TS = (32, 64, 128)


def signal_grid(eps: float = 0.5):
    """{(N, T): signals} of the exact engine (uniform model E)."""
    return {(N, T): nr.signals(noisy_recall_model(N, T, eps)) for N in SIGNAL_NS for T in SIGNAL_TS}


def measure_signal_rates() -> Measurement:
    """The attention signal y -> y decays like a power of N while the feed-forward q -> noise one stays ~ eps."""

    grid = signal_grid(0.5)
    exps = power_law_exponents({k: v["wo2_diag"] for k, v in grid.items()})
    ff = [v["ff_margin"] for v in grid.values()]
    ratio = {k: v["ff_margin"] / v["wo2_diag"] for k, v in grid.items()}
    a_N, a_T = float(exps[1]), float(exps[2])
    rN = loglog_slope(SIGNAL_NS, [ratio[(N, 128)] for N in SIGNAL_NS])
    # the claim: attention's signal is smaller by a factor growing at least like N (ratio exponent >= 1)
    # while the feed-forward margin stays within [eps - 1/8, eps] (no N or T decay)
    ok_ff = min(ff) > 0.5 - 1.0 / 8 - 0.5 / 8 and max(ff) <= 0.5
    err = 0.0 if ok_ff else math.inf
    err = max(err, 1.0 - rN)
    return Measurement(err, 0.0, "approx", rate=f"wo2 signal ~ N^{a_N:.2f} T^{a_T:.2f}; ratio ff/wo2 ~ N^{rN:.2f} (T=128)",
                       value=(f"ff margin {min(ff):.3f}..{max(ff):.3f} (eps = 0.5); wo2 y->y signal "
                              f"{grid[(8, 128)]['wo2_diag']:.2e} (N=8) .. {grid[(64, 128)]['wo2_diag']:.2e} (N=64), T=128"),
                       details={"wo2_diag": {str(k): v["wo2_diag"] for k, v in grid.items()},
                                "ff_margin": {str(k): v["ff_margin"] for k, v in grid.items()}})


register(Claim(
    id="noisy.signal_rates",
    statement="at initialization the feed-forward q -> noise signal is Theta(eps) in N and T, while the W_O^2 "
              "y -> y signal is smaller by a factor growing at least like N",
    where="talk §3 Result 1 and the 'Remark 1: with equal learning rates ff learns faster than attn by a factor'; "
          "eq. (15)-(16) 1/(NT)-type factors",
    compared="exact engine signals over N in 8..64, T in 32..128 (eps = 0.5), log-log fit of the ratio; "
             "shared: nothing (one side: the engine, held against the stated rate)",
    kind="approx", tolerance="ratio exponent in N >= 1; ff margin in [eps - 3/16, eps]", measure=measure_signal_rates,
    code=("popgrad.theory.noisy_recall.signals",),
    finding="feed-forward signal ~ eps, attention signal smaller by >= N"))


# ----------------------------------------------------------------------------- sample complexity
RATE_FULL = dict(Ns=(8, 16, 32, 64, 128), T=256, eps_values=(0.2, 0.5), seeds=5, max_n=2 ** 15)
RATE_CI = dict(Ns=(8, 16, 32), T=128, eps_values=(0.5,), seeds=3, max_n=2 ** 12)


def rate_fits(Ns, T, eps_values, seeds, max_n, threshold=0.9, resamples=1000):
    """Run the sample-complexity cells in process and fit the exponents in N (popgrad noisy --part rates)."""

    cells = sample_complexity_cells(Ns, T, eps_values, seeds, max_n, threshold, 0)
    return rate_table(run_in_process(cells), Ns, eps_values, seeds, resamples)


def _judge_rates(rows, fits, wo2_band=(0.5, 1.5), ff_max=0.5) -> Measurement:
    """Pass when, for every eps, the W_F exponent in pairs has its upper end below `ff_max` (O(1)) and the
    W_O^2 exponent in pairs has its interval inside `wo2_band` (O(N)); the error is the worst excess."""
    by = {(f["eps"], f["quantity"]): f for f in fits}
    err = 0.0
    parts = []
    for e in sorted({f["eps"] for f in fits}):
        ff, wo = by[(e, "W_F q->noise (in-context pairs)")], by[(e, "W_O^2 R_1 (in-context pairs)")]
        wseq, fseq = by[(e, "W_O^2 R_1 (sequences)")], by[(e, "W_F q->noise (sequences)")]
        vals = [ff["hi"] - ff_max, wo2_band[0] - wo["lo"], wo["hi"] - wo2_band[1]]
        err = max(err, *[v if math.isfinite(v) else math.inf for v in vals])
        parts.append(f"eps {e:g}: W_F N^{ff['exponent']:.2f} [{ff['lo']:.2f}, {ff['hi']:.2f}] pairs, "
                     f"N^{fseq['exponent']:.2f} [{fseq['lo']:.2f}, {fseq['hi']:.2f}] sequences; "
                     f"W_O^2 N^{wo['exponent']:.2f} [{wo['lo']:.2f}, {wo['hi']:.2f}] pairs, "
                     f"N^{wseq['exponent']:.2f} [{wseq['lo']:.2f}, {wseq['hi']:.2f}] sequences")
    return Measurement(max(err, 0.0), 0.0, "approx", value="; ".join(parts) + " (vs theorem: W_F O(1), attention O(N))",
                       rate="; ".join(f"eps {f['eps']:g} {f['quantity']}: N^{f['exponent']:.2f}" for f in fits),
                       details={"rows": rows, "fits": fits})


def measure_rates_full() -> Measurement:
    rows, fits = rate_fits(**RATE_FULL)
    return _judge_rates(rows, fits)


def measure_rates_ci() -> Measurement:
    rows, fits = rate_fits(**RATE_CI, resamples=300)
    return _judge_rates(rows, fits, wo2_band=(0.3, 1.7))


_RATE_STATEMENT = ("from n sampled sequences the one-step feed-forward memory maps q to the noise token after O(1) "
                   "samples while the one-step W_O^2 needs O(N) samples to reach R_1 >= 0.9 (samples counted as "
                   "in-context trigger pairs; in sequences of fixed T the attention count grows like N^2)")
_RATE_WHERE = ("talk 'Mechanisms of emergence': 'Theorem (Chen, Bruna, and B., 2024, informal): feed-forward layer "
               "learns global bigram after O(1) samples, attention after O(N) samples due to noise'")
_RATE_COMPARED = ("first n (grid 1, 2, 3, 4, 6, ...) at which the empirical one-step memories are right, medians "
                  "over seeds, exponents in N with 95% percentile-bootstrap intervals, held against the theorem's "
                  "O(1) and O(N); shared: nothing (one side: sampled data, held against the stated rate)")

register(Claim(
    id="noisy.sample_complexity", statement=_RATE_STATEMENT, where=_RATE_WHERE, compared=_RATE_COMPARED,
    kind="approx", tolerance="W_F exponent (pairs) upper end <= 0.5; W_O^2 exponent (pairs) interval in [0.5, 1.5]",
    measure=measure_rates_full, slow=True,
    code=("popgrad.numerics.noisy_recall.sample_complexity_cell", "popgrad.numerics.noisy_recall.rate_table",
          "popgrad.rates.power_law_bootstrap"),
    finding="feed-forward learns q -> noise from O(1) samples, attention needs O(N)"))

register(Claim(
    id="noisy.sample_complexity_ci", statement=_RATE_STATEMENT + " (CI size: N in 8..32, T = 128, eps = 0.5, 3 seeds)",
    where=_RATE_WHERE, compared=_RATE_COMPARED,
    kind="approx", tolerance="W_F exponent (pairs) upper end <= 0.5; W_O^2 exponent (pairs) interval in [0.3, 1.7]",
    measure=measure_rates_ci,
    code=("popgrad.numerics.noisy_recall.sample_complexity_cell", "popgrad.numerics.noisy_recall.rate_table",
          "popgrad.rates.power_law_bootstrap")))


# ----------------------------------------------------------------------------- training and truncation
TRUNC_FULL = dict(N=8, T=32, eps=0.5, d=64, batch=64, steps=1500, eta=1.0, probe_every=50, test_batch=512,
                  scale="sqrt", embed="code")
TRUNC_SEEDS = 3
EARLY_CI = dict(N=8, T=32, eps=0.5, d=32, batch=32, steps=40, eta=1.0, probe_every=40, test_batch=256,
                scale="sqrt", embed="code")


def train_seeds(config: dict, seeds: int):
    """The training cells of `popgrad noisy --part truncation`, in process."""

    return [train_noisy_cell(**config, seed=s) for s in range(seeds)]


def _ms(values, key, where="final"):
    v = np.asarray([r[where][key] if where == "final" else r["curves"][-1][key] for r in values], dtype=float)
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return float(v.mean()), se


def measure_ff_first() -> Measurement:
    """After a few SGD steps the feed-forward memory maps q to the noise token in every seed and the
    trained model puts more mass on the noise token at the triggers, while the in-context accuracy of
    the model without W_F is still at chance."""
    vals = train_seeds(EARLY_CI, 3)
    ff = [r["final"]["ff_noise"] for r in vals]
    pn, pn_se = _ms(vals, "p_noise_full")
    acc, acc_se = _ms(vals, "acc_y_no_ff")
    V = EARLY_CI["N"] + 1
    start = float(np.mean([r["curves"][0]["p_noise_full"] for r in vals]))
    err = 0.0 if all(f == 1.0 for f in ff) else math.inf
    err = max(err, (start + 3 * pn_se) - pn)                           # noise mass rose by >= 3 se
    err = max(err, (acc - 3 * max(acc_se, 1e-3)) - 2.0 / EARLY_CI["N"])  # head not formed: <= 2x chance
    return Measurement(max(err, 0.0), 0.0, "approx",
                       value=(f"after {EARLY_CI['steps']} steps: W_F maps q -> noise in {int(sum(ff))}/3 seeds; "
                              f"P(noise) at triggers {start:.3f} -> {pn:.3f} ± {pn_se:.3f}; accuracy on ybar without "
                              f"W_F {acc:.3f} ± {acc_se:.3f} (chance {1 / (V - 2):.3f})"),
                       details={"final": [r["final"] for r in vals]})


register(Claim(
    id="noisy.ff_learns_noise_first",
    statement="trained on noisy recall, the feed-forward layer learns the global association q -> noise within a "
              "few SGD steps, before the in-context head forms (fast: feed-forward, slow: attention)",
    where="talk 'Mechanisms of emergence': 'fast: feed-forward learns distributional association; slow: attention "
          "learns in-context reasoning'",
    compared=("popgrad's two-layer model with a linear W_F on model E (eps 0.5, loss on all tokens, 3 seeds, "
              f"{EARLY_CI['steps']} steps): W_F's readout of w_E(q), noise probability and accuracy on fresh test "
              "sequences; shared: nothing (one side: training, held against chance levels)"),
    kind="approx", tolerance="q -> noise in every seed; P(noise) up >= 3 se; accuracy without W_F <= 2/N + 3 se",
    measure=measure_ff_first,
    code=("popgrad.numerics.noisy_training.train_noisy_cell", "popgrad.numerics.noisy_training.truncation_metrics")))


def measure_truncation() -> Measurement:
    """The talk's truncation experiment with popgrad's linear W_F (the paper's model has ReLU MLPs).

    Held: P(noise) at the triggers ~ eps with W_F (|mean - eps| <= 0.15), down by >= 3 se and at most the
    uniform level 1/V (within 3 se) without it, and the layer-2 attention of the trigger on ybar positions above that on noise positions by >= 3 se (Result 2).
    Reported beside them, not held: the accuracy on ybar without W_F (the talk: close to 1)."""
    vals = train_seeds(TRUNC_FULL, TRUNC_SEEDS)
    eps, V = TRUNC_FULL["eps"], TRUNC_FULL["N"] + 1
    m = {k: _ms(vals, k) for k in ("p_noise_full", "p_noise_no_ff", "acc_y_full", "acc_y_no_ff", "attn_y", "attn_noise",
                                   "head_recall_full", "head_recall_no_ff")}
    gap = np.asarray([r["final"]["attn_y"] - r["final"]["attn_noise"] for r in vals])
    gap_se = float(gap.std(ddof=1) / math.sqrt(gap.size))
    drop = np.asarray([r["final"]["p_noise_full"] - r["final"]["p_noise_no_ff"] for r in vals])
    drop_se = float(drop.std(ddof=1) / math.sqrt(drop.size))
    err = max(abs(m["p_noise_full"][0] - eps) - 0.15, m["p_noise_no_ff"][0] - 3 * m["p_noise_no_ff"][1] - 1.0 / V,
              3 * drop_se - float(drop.mean()), 3 * gap_se - float(gap.mean()), 0.0)
    fmt = {k: f"{a:.3f} ± {b:.3f}" for k, (a, b) in m.items()}
    return Measurement(err, 0.0, "approx",
                       value=(f"P(noise) {fmt['p_noise_full']} with W_F (eps = {eps}), {fmt['p_noise_no_ff']} without "
                              f"(1/V = {1 / V:.3f}; talk: ~0); attention on ybar {fmt['attn_y']} vs noise "
                              f"{fmt['attn_noise']}; accuracy on ybar without W_F {fmt['acc_y_no_ff']} (talk: ~1; "
                              f"with W_F {fmt['acc_y_full']}); head recall (9) {fmt['head_recall_no_ff']} without, "
                              f"{fmt['head_recall_full']} with W_F ({TRUNC_SEEDS} seeds)"),
                       note=("linear W_F acts on the whole residual, so (I + W_F) W_O^2 is the head's output map: "
                             "dropping W_F removes the noise and part of the recall"),
                       details={"final": [r["final"] for r in vals]})


register(Claim(
    id="noisy.truncation",
    statement="trained on noisy recall (eps = 0.5, loss on all tokens), the model predicts noise w.p. ~eps at the "
              "triggers; without the feed-forward layer the noise predictions go and layer-2 attention attends to "
              "ybar, not to the noise (the in-context accuracy without W_F is reported beside it)",
    where="talk 'Mechanisms of emergence' §3: 'Dropping MLP on the second layer perfectly forgets the noise z' "
          "(P = 0.5); Result 2 'attention attends to in-context target and avoids noise'",
    compared=("popgrad's two-layer model with a linear W_F (SPEC §5; the paper uses ReLU MLPs), N = 8, T = 32, d = 64, "
              "batch 64, 1500 steps, eta 1, 3 seeds, measured on 512 fresh sequences with and without W_F; "
              "shared: nothing (one side: training, held against eps, 1/V and 3 se)"),
    kind="approx", tolerance="|P(noise) - eps| <= 0.15 with W_F; without: drop >= 3 se, P(noise) - 3 se <= 1/V; "
              "attention gap >= 3 se",
    measure=measure_truncation, outcome="partly: noise removed, in-context recall lost with a linear W_F", slow=True,
    code=("popgrad.numerics.noisy_training.train_noisy_cell", "popgrad.numerics.noisy_training.truncation_metrics",
          "popgrad.numerics.training.BatchStream"),
    finding="dropping the feed-forward layer removes the noise; attention avoids noise positions"))
