"""The public Python API of popgrad: what a notebook needs, re-exported as `popgrad.<name>`.

    embeddings        Embeddings, make_embeddings                          (Sec. 4.1-4.2, SPEC §1)
    data models       FinitePairs, random_finite_pairs (A), FiniteMixture,
                      positional_noise_mixture (B), BigramTriggerModel,
                      bigram_trigger_model (C), SecondOccurrenceModel (D)  (SPEC §2)
    Lemmas 1, 2       lemma1_gradient, lemma2_population_loss, lemma2_gradient
    exact engine      step1_W_O2, step2_W_K2, step3_W_K1, three_steps     (Theorem 3, App. B.3)
    recall (9)        eq7_targets, memory_recall, recall_per_step
    recall table      recall_table (App. E, Figure 9), recall_grid
    claims            all_claims, get_claim, run_claim, run_claims, Claim, Measurement
    training          TrainConfig, train_preset, train                    (Sec. 5, App. E, Figs. 3-8)
    dynamics          population_dynamics (k steps per layer, in rounds; beyond Theorem 3)
    head ablation     head_ablation (the assembled Theorem 3 head, Sec. 4.2, B.3.2, B.3.3)
    capacity          capacity_table (Sec. 4.1 eq. (3): largest N recalled vs d)
    scaling           scaling_study (App. E: batches needed for R_1 >= threshold vs d, N, T, K)

`popgrad/__init__.py` lists the names (`popgrad.__all__`) and imports this module on first use,
so `import popgrad` stays light (no torch). Every name carries a runnable example: the examples
are kept here, in `EXAMPLES`, and appended to each object's docstring when this module is
imported (so `help(popgrad.make_embeddings)` shows it); `tests/test_api.py` runs every one with
doctest, and so does `python -m doctest -v popgrad/api.py` (through `__test__`).
"""

from __future__ import annotations

import dataclasses

import popgrad
from popgrad.cells import progress as progress_bar
from popgrad.data import (BigramTriggerModel, FiniteMixture, FinitePairs, SecondOccurrenceModel, bigram_trigger_model,
                          positional_noise_mixture, random_finite_pairs)
from popgrad.embeddings import Embeddings, make_embeddings
from popgrad.errors import PopgradError, positive_int, positive_int_list
from popgrad.memory import eq7_targets, memory_recall
from popgrad.numerics import dynamics as _dynamics, head_ablation as _head_ablation, training as _training
from popgrad.numerics.capacity import MAPS as CAPACITY_MAPS, capacity_grid
from popgrad.sweep import SweepOptions, runner as sweep_runner
from popgrad.numerics.recall import recall_grid
from popgrad.numerics.scaling import scaling_study as _scaling_study
from popgrad.numerics.training import TrainConfig
from popgrad.registry import Claim, Measurement, all_claims, claim_rows, get_claim
from popgrad.theory.lemma1 import lemma1_gradient
from popgrad.theory.lemma2 import lemma2_gradient, lemma2_population_loss
from popgrad.theory.theorem3 import recall_per_step, step1_W_O2, step2_W_K2, step3_W_K1, three_steps

__all__ = list(popgrad.__all__)


# ----------------------------------------------------------------------------- recall table
def recall_table(model: BigramTriggerModel | None = None, dims=(16, 64, 256), batches=(1, 4, 16), seeds: int = 3,
                 batch_size: int = 32, seed: int = 0, device="auto", sweep=None) -> list[dict]:
    """App. E, Figure 9: one-step recall R_1 of W_O^2 for every (d, batches), mean ± se over seeds.

    `model` is model C (default: tiny Shakespeare, T = 256, K = 5 random triggers, uniform
    outputs). One row per (d, batches), ordered by d then batches: d, batches, sequences
    (batches x batch_size), pairs (mean number of in-context (x, y) pairs), r1_mean, r1_se,
    probe_mean, probe_se (the probe (9) of the one-step W_O^2 against eq. (7)), seeds (the
    sample size of the mean; a seed changes both data and embeddings), r1_seeds, probe_seeds.
    The same table as `popgrad recall-table`. `sweep`: a popgrad.sweep.SweepOptions (workers,
    scheduler, cache), in-process by default.
    """
    model = bigram_trigger_model() if model is None else model
    if not isinstance(model, BigramTriggerModel):
        raise PopgradError(f"model must be a BigramTriggerModel (model C), got {type(model).__name__}")
    batch_size = positive_int("batch_size", batch_size)
    dims, batches = positive_int_list("dims", dims), positive_int_list("batches", batches)
    seeds, seed = positive_int("seeds", seeds), positive_int("seed", seed, minimum=0)
    if not isinstance(device, str) and type(device).__module__ != "torch":
        raise PopgradError(f"device must be 'auto', 'cpu', 'cuda' or a torch.device, got {device!r}")
    if sweep is not None and not isinstance(sweep, SweepOptions):
        raise PopgradError(f"sweep must be a popgrad.sweep.SweepOptions or None, got {type(sweep).__name__}")
    cells = recall_grid(model, dims, batches, seeds, batch_size, seed, device,
                        run=None if sweep is None else sweep_runner(sweep))
    rows = []
    for c in cells:
        (r1m, r1s), (pm, ps) = c.r1_mean_se, c.probe_mean_se
        rows.append({"d": c.d, "batches": c.batches, "sequences": c.batches * batch_size, "pairs": c.pairs,
                     "r1_mean": r1m, "r1_se": r1s, "probe_mean": pm, "probe_se": ps, "seeds": len(c.r1),
                     "r1_seeds": list(c.r1), "probe_seeds": list(c.probe)})
    return rows


# ----------------------------------------------------------------------------- claims
def run_claim(claim_id: str) -> dict:
    """Run one registered claim and return its row (as `popgrad claims --json` prints it).

    Keys: claim, where, statement, compared, kind, error, tolerance, tolerance_text, verdict
    ('exact' | 'approx' | 'erratum' | 'fail'), rate, note, seconds, code, details. Results are
    cached per process. `all_claims()` lists the ids.
    """
    return claim_rows([get_claim(claim_id)], show_progress=False)[0]


def run_claims(select: str | None = None, fast: bool = False, progress: bool = False) -> list[dict]:
    """Run every registered claim (ids containing `select`; without the slow ones when `fast`), one row each.

    The rows of `run_claim`, sorted by claim id: the Python form of `popgrad claims [--fast] [-k TEXT]`.
    """
    claims = [c for c in all_claims() if (select is None or select in c.id) and not (fast and c.slow)]
    if not claims:
        raise PopgradError(f"no claim id contains {select!r}; all_claims() lists them")
    return claim_rows(claims, show_progress=progress)


# ----------------------------------------------------------------------------- training (Sec. 5, App. E)
def train_preset(name: str, **fields) -> TrainConfig:
    """The TrainConfig of a paper preset (App. E sizes: batch 512, 1000 steps), `fields` overriding it.

    Presets: fig3 (Fig. 3, K = 5 random triggers, loss on in-context tokens), fig3-wo2-first,
    fig3-wo2-frozen, fig3-wk1-frozen, fig3-wk2-frozen (Fig. 3's freezing variants), fig4-left,
    fig4-center, fig4-right (Fig. 4, loss on all tokens, W_F trained) and their variants, fig8
    (W_O^2 alone) and fig8-eta<eta>. The same presets as `popgrad train --preset`.
    """
    return _training.preset_config(name, **fields)


def train(config: TrainConfig | None = None, progress: bool = False, **fields) -> dict:
    """Train the two-layer model of Sec. 4.2 by SGD on fresh model-C (or model-D) batches (Sec. 5, App. E).

    `config`: a TrainConfig (default: App. E, d = 128, batch 512, 1000 steps; see `train_preset`);
    `fields` replace fields of it (e.g. steps=100, d=64, device="cpu"). Returns a dict: config
    (the validated TrainConfig), rows (the probe results, one dict per probe step: every
    `probe_every` steps and the last), seconds, interrupted (Ctrl-C stops early, rows kept) and
    params (the trained matrices by name). Each row holds step, seed, the in-context accuracy
    acc_in_context ± acc_in_context_se over n_in_context tokens, loss_in_context, loss_other,
    and recall (9) of each trained matrix against its eq. (7) target (recall_W_O2, recall_W_K2,
    recall_W_K1 with early/late splits at `cutoff`, each with its count n_recall_*). The same
    run as `popgrad train`. `progress`: a progress bar on stderr.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise PopgradError(f"config must be a TrainConfig, got {type(config).__name__}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise PopgradError(f"{unknown[0]}: not a TrainConfig field (fields: {', '.join(sorted(known))})")
    config = dataclasses.replace(config, **fields).validated()
    if not progress:
        return _training.train(config)
    bar = progress_bar(total=config.steps, desc="train")

    def advance(step, row):
        bar.update(step - bar.n)
    try:
        return _training.train(config, callback=advance)
    finally:
        bar.close()


# ----------------------------------------------------------------------------- population dynamics
def population_dynamics(model: SecondOccurrenceModel, emb: Embeddings, eta=1.0, k: int = 1, rounds: int = 1,
                        schedule: str = "consecutive", loss: str = "full", **options) -> list[dict]:
    """Population gradient dynamics beyond Theorem 3's single step: k steps per layer, top-down, in rounds.

    On model D from W = 0: `schedule` "consecutive" (k steps on W_O2, then W_K2, then W_K1, per
    round), "alternating" (one step per layer in turn, k times) or "joint" (all three together).
    `loss` "full" (cross-entropy of the Sec. 4.2 head at position T) or "b3" (App. B.3's
    simplified per-layer losses). `eta`: one step size or {layer: eta}. One row per step (step 0:
    all zero): step, round, layer, loss, accuracy ± accuracy_se on n_eval fresh sequences,
    steps_<layer>, recall_<layer> (recall (9) against eq. (7)); row["_W"] holds the matrices.
    `options`: phat, population ("mc" or "enumerated"), n, n_eval, seed, exact_first,
    engine_cosine (as `popgrad.numerics.dynamics.dynamics`). The same run as `popgrad dynamics`.
    """
    if not isinstance(model, SecondOccurrenceModel):
        raise PopgradError(f"model must be a SecondOccurrenceModel (model D), got {type(model).__name__}")
    return list(_dynamics.dynamics(model, emb, eta, k=k, rounds=rounds, kind=schedule, loss=loss, **options))


# ----------------------------------------------------------------------------- head ablation
def head_ablation(model: SecondOccurrenceModel, emb: Embeddings, n: int = 16384, seed: int = 0, beta: float = 10.0,
                  architectures=_head_ablation.ARCHITECTURES) -> list[dict]:
    """Accuracy of the Theorem 3 head and its ablations on fresh model-D sequences (Sec. 4.2, B.3.2, B.3.3).

    The learned matrices are the exact engine's three steps (`three_steps`), rescaled to the
    hand-built head's norm (`beta`); the rows swap them into the hand-built head (7) one at a
    time and remove their defects (W_K^2's positional part, W_O^2's tau-line). One row per
    (architecture, head): architecture ("sec4.2", "B.3.2", "B.3.3"), head, accuracy ± acc_se on
    n sequences, chance (1/N), peak_on_output ± peak_se. The table of `popgrad theorem3 --ablation`.
    """
    if not isinstance(model, SecondOccurrenceModel):
        raise PopgradError(f"model must be a SecondOccurrenceModel (model D), got {type(model).__name__}")
    n = positive_int("n", n)
    return _head_ablation.ablation_table(emb, model, three_steps(model, emb), n=n, seed=seed, beta=beta,
                                         archs=tuple(architectures))


# ----------------------------------------------------------------------------- capacity and scaling
def capacity_table(maps=CAPACITY_MAPS, dims=(32, 64, 128), seeds: int = 3, threshold: float = 0.99, seed: int = 0,
                   dtype="float32", device="auto", sweep=None) -> list[dict]:
    """Storage capacity of the memory W = sum_z u_{f(z)} e_z^T (Sec. 4.1, eq. (3)): largest N recalled at each d.

    Random Gaussian embeddings (entries N(0, 1/d)); `maps`: "injective" (a random permutation of
    [N]) and/or "mod2" (f(z) = z mod 2). The capacity of one memory seed: the crossing of recall (9)
    = `threshold` (a search over nested draws, recall sampled with a Wilson interval at large N),
    stepped down to the first N whose recall over every stored input is >= `threshold`
    (docs/capacity.md). One row per d (increasing): d, then per map <map> (the mean
    capacity over `seeds` memory seeds), <map>_se (None with one seed), <map>_lower and
    <map>_upper (the mean capacity interval) and <map>_saturated. The data of `popgrad capacity`.
    `sweep`: a popgrad.sweep.SweepOptions (workers, scheduler, cache), in-process by default.
    """
    grid = capacity_grid(maps, dims, seeds, threshold, seed, dtype=dtype, device=device,
                         run=None if sweep is None else sweep_runner(sweep))
    rows: dict[int, dict] = {}
    for g in grid:
        row = rows.setdefault(g["d"], {"d": g["d"]})
        kind = g["kind"]
        row.update({kind: g["mean"], f"{kind}_se": g["se"], f"{kind}_lower": g["lower"], f"{kind}_upper": g["upper"],
                    f"{kind}_saturated": g["saturated"]})
    return [rows[d] for d in sorted(rows)]


def scaling_study(sweeps=("d", "N", "T", "K"), sweep=None, **options) -> dict:
    """App. E: how many batches one-step recall R_1 needs to reach a threshold as d, N, T or K vary.

    One data pass per (swept value, seed) scores R_1 along a grid of batch counts. Returns
    {sweep: [ScalingPoint]}: each point has sweep, value, d, needed (batches per seed, inf if
    never reached), needed_mean, r1_curve (mean over seeds along grid) and r1_final. `options`:
    dims, Ns, Ts, Ks, d, max_batches, threshold, seeds, batch_size, seed, device, base (as
    `popgrad.numerics.scaling.scaling_study`). The data of `popgrad scaling`. `sweep`: a
    popgrad.sweep.SweepOptions, in-process by default.
    """
    return _scaling_study(sweeps=tuple(sweeps), run=None if sweep is None else sweep_runner(sweep), **options)


# ----------------------------------------------------------------------------- examples
EXAMPLES = {
    "PopgradError": """
>>> import popgrad
>>> try:
...     popgrad.recall_table(dims=16)
... except popgrad.PopgradError as exc:       # a bad argument: the message names it
...     print(exc)
dims must be a non-empty list of positive integers, got 16
""",
    "Embeddings": """
>>> import popgrad
>>> emb = popgrad.make_embeddings(d=64, N=8, T=16, seed=0)
>>> isinstance(emb, popgrad.Embeddings), (emb.d, emb.N, emb.T)
(True, (64, 8, 16))
>>> tuple(emb.Phi1.shape)          # Phi_1 = W_O^1 W_V^1
(64, 64)
""",
    "make_embeddings": """
>>> import popgrad
>>> emb = popgrad.make_embeddings(d=64, N=8, T=16, seed=0)
>>> tuple(emb.W_E.shape), tuple(emb.W_U.shape), tuple(emb.P.shape)
((64, 8), (8, 64), (64, 16))
>>> bool((emb.W_E == popgrad.make_embeddings(64, 8, 16, seed=0).W_E).all())   # a seed fixes the draw
True
""",
    "FinitePairs": """
>>> import numpy as np, popgrad
>>> pairs = popgrad.FinitePairs(np.full((3, 3), 1 / 9))    # model A: p(z, y) on [N] x [N]
>>> pairs.N
3
""",
    "random_finite_pairs": """
>>> import popgrad
>>> pairs = popgrad.random_finite_pairs(N=5, seed=0)
>>> pairs.p.shape, round(float(pairs.p.sum()), 12)
((5, 5), 1.0)
""",
    "FiniteMixture": """
>>> import torch, popgrad
>>> x = torch.eye(3, dtype=torch.float64)                  # model B: points x_m with labels y_m
>>> mix = popgrad.FiniteMixture(x, torch.tensor([0, 1, 1]), torch.full((3,), 1 / 3, dtype=torch.float64), N=2)
>>> tuple(mix.x.shape), mix.N
((3, 3), 2)
""",
    "positional_noise_mixture": """
>>> import popgrad
>>> emb = popgrad.make_embeddings(d=32, N=4, T=6)
>>> mix = popgrad.positional_noise_mixture(emb)            # x = w_E(y) + p_t, (y, t) uniform
>>> tuple(mix.x.shape), round(float(mix.weights.sum()), 12)
((24, 32), 1.0)
""",
    "BigramTriggerModel": """
>>> import numpy as np, popgrad
>>> u = np.full(4, 0.25); U = np.full((4, 4), 0.25)
>>> model = popgrad.BigramTriggerModel(N=4, T=8, K=1, pi_u=u, pi_b=U, pi_o=U, triggers=(2,))
>>> model.random_triggers, model.triggers
(False, (2,))
""",
    "bigram_trigger_model": """
>>> import popgrad
>>> model = popgrad.bigram_trigger_model(T=256, K=5)      # tiny Shakespeare counts ship with popgrad
>>> model.N, model.T, model.K, model.random_triggers
(65, 256, 5, True)
""",
    "SecondOccurrenceModel": """
>>> import popgrad
>>> model = popgrad.SecondOccurrenceModel(N=3, T=4)        # model D of Theorem 3
>>> z, prob, y = model.enumerate()
>>> z.shape[1], round(float(prob.sum()), 12)
(4, 1.0)
""",
    "lemma1_gradient": """
>>> import torch, popgrad
>>> emb = popgrad.make_embeddings(d=7, N=5, T=1)
>>> pairs = popgrad.random_finite_pairs(N=5, seed=1)
>>> W = torch.zeros(7, 7, dtype=torch.float64)
>>> tuple(popgrad.lemma1_gradient(W, emb, pairs).shape)
(7, 7)
""",
    "lemma2_population_loss": """
>>> import math, torch, popgrad
>>> emb = popgrad.make_embeddings(d=16, N=4, T=5)
>>> mix = popgrad.positional_noise_mixture(emb)
>>> loss = popgrad.lemma2_population_loss(torch.zeros(16, 16, dtype=torch.float64), emb.W_U, mix)
>>> abs(float(loss) - math.log(4)) < 1e-12                 # W = 0 predicts uniformly: log N
True
""",
    "lemma2_gradient": """
>>> import torch, popgrad
>>> emb = popgrad.make_embeddings(d=16, N=4, T=5)
>>> mix = popgrad.positional_noise_mixture(emb)
>>> W = torch.zeros(16, 16, dtype=torch.float64, requires_grad=True)
>>> popgrad.lemma2_population_loss(W, emb.W_U, mix).backward()    # autograd ...
>>> G = popgrad.lemma2_gradient(W.detach(), emb.W_U, mix)          # ... vs the lemma
>>> float((G - W.grad).abs().max()) < 1e-12
True
""",
    "step1_W_O2": """
>>> import popgrad
>>> model, emb = popgrad.SecondOccurrenceModel(N=16, T=16), popgrad.make_embeddings(d=128, N=16, T=16)
>>> W_O2 = popgrad.step1_W_O2(model, emb)                 # eq. (15), exact expectation
>>> U, V, target = popgrad.eq7_targets(emb)["W_O2"]
>>> popgrad.memory_recall(W_O2, U, V, target)
1.0
""",
    "step2_W_K2": """
>>> import popgrad
>>> model, emb = popgrad.SecondOccurrenceModel(N=16, T=16), popgrad.make_embeddings(d=128, N=16, T=16)
>>> W_O2 = popgrad.step1_W_O2(model, emb)
>>> W_K2 = popgrad.step2_W_K2(model, emb, W_O2)           # eq. (17), eq. (7) convention
>>> popgrad.memory_recall(W_K2, *popgrad.eq7_targets(emb)["W_K2"])
1.0
""",
    "step3_W_K1": """
>>> import popgrad
>>> model, emb = popgrad.SecondOccurrenceModel(N=16, T=16), popgrad.make_embeddings(d=128, N=16, T=16)
>>> W_O2 = popgrad.step1_W_O2(model, emb)
>>> W_K2 = popgrad.step2_W_K2(model, emb, W_O2)
>>> W_K1 = popgrad.step3_W_K1(model, emb, W_O2, W_K2)     # Lemma 5 / B.3.3
>>> tuple(W_K1.shape)
(128, 128)
""",
    "three_steps": """
>>> import popgrad
>>> model, emb = popgrad.SecondOccurrenceModel(N=16, T=16), popgrad.make_embeddings(d=128, N=16, T=16)
>>> W = popgrad.three_steps(model, emb)
>>> sorted(W)
['W_K1', 'W_K2', 'W_O2']
""",
    "eq7_targets": """
>>> import popgrad
>>> emb = popgrad.make_embeddings(d=32, N=8, T=16)
>>> U, V, target = popgrad.eq7_targets(emb)["W_O2"]      # inputs W_V^2 w_E(k), outputs w_U(k)
>>> tuple(U.shape), tuple(V.shape), target.tolist()
((32, 8), (32, 8), [0, 1, 2, 3, 4, 5, 6, 7])
""",
    "memory_recall": """
>>> import popgrad
>>> emb = popgrad.make_embeddings(d=256, N=16, T=4)
>>> W = emb.W_U.T @ emb.W_E.T                             # sum_k w_U(k) w_E(k)^T stores k -> k
>>> import torch; popgrad.memory_recall(W, emb.W_E, emb.W_U.T, torch.arange(16))
1.0
""",
    "recall_per_step": """
>>> import popgrad
>>> model, emb = popgrad.SecondOccurrenceModel(N=16, T=16), popgrad.make_embeddings(d=128, N=16, T=16)
>>> popgrad.recall_per_step(emb, **popgrad.three_steps(model, emb))
{'W_O2': 1.0, 'W_K2': 1.0, 'W_K1': 1.0}
""",
    "recall_table": """
>>> import popgrad
>>> model = popgrad.bigram_trigger_model(T=64, K=5)
>>> rows = popgrad.recall_table(model, dims=[16, 128], batches=[1, 8], seeds=2, device="cpu")
>>> [(r["d"], r["batches"], r["seeds"]) for r in rows]
[(16, 1, 2), (16, 8, 2), (128, 1, 2), (128, 8, 2)]
>>> rows[-1]["r1_mean"] > rows[0]["r1_mean"]             # more data and larger d recall more
True
""",
    "recall_grid": """
>>> import popgrad
>>> model = popgrad.bigram_trigger_model(T=64, K=5)
>>> cells = popgrad.recall_grid(model, dims=[32], batches=[2], seeds=2, device="cpu")
>>> (cells[0].d, cells[0].batches, len(cells[0].r1))
(32, 2, 2)
""",
    "Claim": """
>>> import popgrad
>>> claim = popgrad.get_claim("lemma1.gradient")
>>> isinstance(claim, popgrad.Claim), claim.kind
(True, 'exact')
""",
    "Measurement": """
>>> import popgrad
>>> m = popgrad.get_claim("lemma1.gradient").measure()
>>> isinstance(m, popgrad.Measurement), m.passed, m.shown_verdict
(True, True, 'exact')
""",
    "all_claims": """
>>> import popgrad
>>> ids = [c.id for c in popgrad.all_claims()]
>>> "lemma2.gradient" in ids and "theorem3.step1.eq15" in ids
True
""",
    "get_claim": """
>>> import popgrad
>>> claim = popgrad.get_claim("lemma2.mu_hat_erratum")
>>> claim.where.startswith("Lemma 2"), claim.kind
(True, 'exact')
""",
    "run_claim": """
>>> import popgrad
>>> row = popgrad.run_claim("lemma1.gradient")
>>> row["verdict"], row["error"] <= row["tolerance"]
('exact', True)
""",
    "run_claims": """
>>> import popgrad
>>> rows = popgrad.run_claims(select="lemma2.", fast=True)   # like `popgrad claims --fast -k lemma2.`
>>> {r["claim"]: r["verdict"] for r in rows if r["claim"] in ("lemma2.gradient", "lemma2.mu_hat_erratum")}
{'lemma2.gradient': 'exact', 'lemma2.mu_hat_erratum': 'erratum'}
>>> all(r["verdict"] != "fail" for r in rows)
True
""",
    "TrainConfig": """
>>> import popgrad
>>> cfg = popgrad.TrainConfig(T=32, d=32, batch=8, steps=20, probe_every=10, cutoff=16, device="cpu")
>>> cfg.data, cfg.loss, cfg.eta                         # model C, loss on in-context tokens, App. E's eta
('C', 'in-context', 0.2)
""",
    "train_preset": """
>>> import popgrad
>>> cfg = popgrad.train_preset("fig3", steps=20, batch=8)   # Fig. 3, shrunk
>>> cfg.K, cfg.d, cfg.eta, cfg.steps
(5, 128, 0.2, 20)
""",
    "train": """
>>> import popgrad
>>> cfg = popgrad.TrainConfig(T=32, d=32, batch=8, steps=20, probe_every=10, cutoff=16, device="cpu")
>>> run = popgrad.train(cfg)
>>> [row["step"] for row in run["rows"]]                  # probes at steps 0, 10, 20
[0, 10, 20]
>>> 0 <= run["rows"][-1]["acc_in_context"] <= 1, sorted(run["params"])
(True, ['W_K1', 'W_K2', 'W_O2'])
>>> popgrad.train(cfg, steps=10)["config"].steps          # fields override the config
10
""",
    "population_dynamics": """
>>> import popgrad
>>> model, emb = popgrad.SecondOccurrenceModel(N=8, T=8), popgrad.make_embeddings(d=64, N=8, T=8, seed=0)
>>> rows = popgrad.population_dynamics(model, emb, eta=100.0, k=2, loss="b3", n=2048, n_eval=512)
>>> [r["layer"] for r in rows]                            # 2 steps per layer, top-down
['none', 'W_O2', 'W_O2', 'W_K2', 'W_K2', 'W_K1', 'W_K1']
>>> rows[1]["recall_W_O2"]                                # the first step from zero is Theorem 3's (15)
1.0
>>> rows[-1]["accuracy"] > rows[0]["accuracy"] + 5 * rows[-1]["accuracy_se"]   # the head beats W = 0
True
""",
    "head_ablation": """
>>> import popgrad
>>> model, emb = popgrad.SecondOccurrenceModel(N=8, T=8), popgrad.make_embeddings(d=64, N=8, T=8, seed=0)
>>> rows = popgrad.head_ablation(model, emb, n=512, architectures=["sec4.2"])
>>> hand = next(r for r in rows if r["head"] == "hand-built (7)")
>>> hand["accuracy"] > hand["chance"] == 1 / 8
True
""",
    "capacity_table": """
>>> import popgrad
>>> rows = popgrad.capacity_table(maps=["injective"], dims=[16, 64], seeds=2, device="cpu")
>>> [r["d"] for r in rows], rows[0]["injective"] < rows[1]["injective"]   # larger d stores more
([16, 64], True)
""",
    "scaling_study": """
>>> import popgrad
>>> points = popgrad.scaling_study(sweeps=["d"], dims=[16, 64], max_batches=4, seeds=2, threshold=0.5, device="cpu")
>>> [(p.value, p.grid) for p in points["d"]]
[(16, (1, 2, 3, 4)), (64, (1, 2, 3, 4))]
>>> points["d"][1].r1_final > points["d"][0].r1_final    # R_1 grows with d
True
""",
}

__test__ = dict(EXAMPLES)                                   # python -m doctest popgrad/api.py


def _attach_examples() -> None:
    """Append each example to its object's docstring (once), under an 'Example' heading."""
    for name, example in EXAMPLES.items():
        obj = globals()[name]
        doc = obj.__doc__ or ""
        if example.strip() not in doc:
            obj.__doc__ = doc.rstrip() + "\n\nExample (popgrad API)::\n" + example.rstrip() + "\n"


def _check_names() -> None:
    missing = [n for n in __all__ if n not in globals()]
    no_example = [n for n in __all__ if n not in EXAMPLES]
    if missing or no_example or set(EXAMPLES) - set(__all__):
        raise ImportError(f"popgrad.api out of sync with popgrad.__all__: missing {missing}, without example "
                          f"{no_example}, examples of unlisted names {sorted(set(EXAMPLES) - set(__all__))}")


_check_names()
_attach_examples()
