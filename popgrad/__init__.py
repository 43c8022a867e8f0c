"""popgrad: executable checks of the population gradients in "Birth of a Transformer".

Source: Bietti, Cabannes, Bouchacourt, Jegou, Bottou, "Birth of a Transformer: A Memory
Viewpoint", NeurIPS 2023 (Lemmas 1, 2, 4, 5, Theorem 3, Appendices A-C, E).

Layout: `popgrad` holds what every path shares (embeddings, data models, claim registry,
CLI); `popgrad.theory` the symbolic and exact-expectation paths; `popgrad.numerics` the
Monte-Carlo path. In the repository these two live in the top-level folders `theory/` and
`numerics/` (the layout maps the paper); `pip install` places them inside `popgrad`.

Public API (`__all__`, defined in `popgrad.api`, each name with a runnable example in its
docstring): `popgrad.make_embeddings`, the data models, `popgrad.lemma2_gradient`, the exact
engine `popgrad.three_steps`, recall (9) `popgrad.memory_recall`, the one-step recall table
`popgrad.recall_table`, and the claims `popgrad.run_claim` / `popgrad.run_claims`. The names
load on first use, so `import popgrad` does not import torch. Tutorial: docs/tutorial.py.
"""

import os as _os

__version__ = "0.1.0"

__all__ = [
    # embeddings (Sec. 4.1-4.2)
    "Embeddings", "make_embeddings",
    # data models A-D (SPEC §2)
    "FinitePairs", "random_finite_pairs", "FiniteMixture", "positional_noise_mixture",
    "BigramTriggerModel", "bigram_trigger_model", "SecondOccurrenceModel",
    # Lemmas 1 and 2
    "lemma1_gradient", "lemma2_population_loss", "lemma2_gradient",
    # the exact engine of Theorem 3 (App. B.3)
    "step1_W_O2", "step2_W_K2", "step3_W_K1", "three_steps",
    # recall (9) and the one-step recall table (App. E, Figure 9)
    "eq7_targets", "memory_recall", "recall_per_step", "recall_table", "recall_grid",
    # the claims
    "Claim", "Measurement", "all_claims", "get_claim", "run_claim", "run_claims",
    # the error every public function raises for a bad argument (the message names it)
    "PopgradError",
]


def __getattr__(name):
    """Load the public API (popgrad.api, which imports torch) on first use of one of its names."""
    if name == "PopgradError":                 # without loading the API (and torch)
        from popgrad.errors import PopgradError as value
        return value
    if name in __all__:
        from popgrad import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'popgrad' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


# A source checkout used without installing it (a worktree, `python -m popgrad` from the root):
# theory/ and numerics/ sit beside popgrad/, so let the package find its two subpackages there.
_checkout = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if all(_os.path.isfile(_os.path.join(_checkout, name)) for name in
       ("pyproject.toml", "theory/__init__.py", "numerics/__init__.py")):
    __path__.append(_checkout)
