"""popgrad: executable checks of the population gradients in "Birth of a Transformer".

Source: Bietti, Cabannes, Bouchacourt, Jegou, Bottou, "Birth of a Transformer: A Memory
Viewpoint", NeurIPS 2023 (Lemmas 1, 2, 4, 5, Theorem 3, Appendices A-C, E).

Layout: `popgrad` holds what every path shares (embeddings, data models, claim registry,
CLI); `popgrad.theory` the symbolic and exact-expectation paths; `popgrad.numerics` the
Monte-Carlo path. In the repository these two live in the top-level folders `theory/` and
`numerics/` (the layout maps the paper); `pip install` places them inside `popgrad`, and from a
checkout a finder (below) serves exactly these two names. Layers: docs/library.md.

Public API (`__all__`, defined in `popgrad.api`, each name with a runnable example in its
docstring): `popgrad.make_embeddings`, the data models, `popgrad.lemma2_gradient`, the exact
engine `popgrad.three_steps`, recall (9) `popgrad.memory_recall`, the one-step recall table
`popgrad.recall_table`, the claims `popgrad.run_claim` / `popgrad.run_claims`, training
(`popgrad.TrainConfig`, `popgrad.train_preset`, `popgrad.train`), `popgrad.population_dynamics`,
`popgrad.head_ablation`, `popgrad.capacity_table` and `popgrad.scaling_study`. The names load on
first use, so `import popgrad` does not import torch. Tutorial: docs/tutorial.py.
"""

import importlib.abc as _importlib_abc
import importlib.util as _importlib_util
import os as _os
import sys as _sys

from popgrad.errors import PopgradError  # light (numpy only): usable without loading the API

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
    # training (Sec. 5, App. E), population dynamics, the head ablation, capacity, scaling
    "TrainConfig", "train_preset", "train", "population_dynamics", "head_ablation", "capacity_table",
    "scaling_study",
    # the error every public function raises for a bad argument (the message names it)
    "PopgradError",
]


def __getattr__(name):
    """Load the public API (popgrad.api, which imports torch) on first use of one of its names."""
    if name in __all__:
        from popgrad import api  # lazy: keeps `import popgrad` torch-free (the API imports torch)

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'popgrad' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _CheckoutSubpackages(_importlib_abc.MetaPathFinder):
    """From a source checkout, find exactly popgrad.theory and popgrad.numerics in theory/, numerics/.

    The repository keeps both folders beside popgrad/ (the layout maps the paper); an install
    places them inside the package. Only these two names are served (so tests/, checks/, docs/,
    benchmarks/ never become popgrad.<name>); their submodules then load from the folder as usual.
    Placed first on sys.meta_path, ahead of any editable install of another checkout.
    """

    def __init__(self, root: str):
        self.root = root

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in _CHECKOUT_SUBPACKAGES:
            return None
        folder = _os.path.join(self.root, name)
        return _importlib_util.spec_from_file_location(fullname, _os.path.join(folder, "__init__.py"),
                                                       submodule_search_locations=[folder])


def _checkout_root():
    """The checkout holding this popgrad/ (pyproject.toml, theory/, numerics/ beside it), or None."""
    root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    marks = ("pyproject.toml",) + tuple(f"{name}/__init__.py" for name in _CHECKOUT_SUBPACKAGES)
    return root if all(_os.path.isfile(_os.path.join(root, mark)) for mark in marks) else None


_CHECKOUT_SUBPACKAGES = ("theory", "numerics")
_root = _checkout_root()
if _root is not None and not any(isinstance(f, _CheckoutSubpackages) and f.root == _root for f in _sys.meta_path):
    _sys.meta_path.insert(0, _CheckoutSubpackages(_root))
