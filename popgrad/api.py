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

`popgrad/__init__.py` lists the names (`popgrad.__all__`) and imports this module on first use,
so `import popgrad` stays light (no torch). Every name carries a runnable example: the examples
are kept here, in `EXAMPLES`, and appended to each object's docstring when this module is
imported (so `help(popgrad.make_embeddings)` shows it); `tests/test_api.py` runs every one with
doctest, and so does `python -m doctest -v popgrad/api.py` (through `__test__`).
"""

from __future__ import annotations

import popgrad
from popgrad.data import (BigramTriggerModel, FiniteMixture, FinitePairs, SecondOccurrenceModel, bigram_trigger_model,
                          positional_noise_mixture, random_finite_pairs)
from popgrad.embeddings import Embeddings, make_embeddings
from popgrad.errors import PopgradError, positive_int, positive_int_list
from popgrad.memory import eq7_targets, memory_recall
from popgrad.sweep import SweepOptions, runner as sweep_runner
from popgrad.numerics.recall import recall_grid
from popgrad.registry import Claim, Measurement, all_claims, get_claim
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
    from popgrad.commands.claims import claim_rows

    return claim_rows([get_claim(claim_id)], show_progress=False)[0]


def run_claims(select: str | None = None, fast: bool = False, progress: bool = False) -> list[dict]:
    """Run every registered claim (ids containing `select`; without the slow ones when `fast`), one row each.

    The rows of `run_claim`, sorted by claim id: the Python form of `popgrad claims [--fast] [-k TEXT]`.
    """
    from popgrad.commands.claims import claim_rows

    claims = [c for c in all_claims() if (select is None or select in c.id) and not (fast and c.slow)]
    if not claims:
        raise PopgradError(f"no claim id contains {select!r}; all_claims() lists them")
    return claim_rows(claims, show_progress=progress)


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
