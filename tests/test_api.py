"""The public API (popgrad.__all__, popgrad/api.py): every name imports, every docstring example runs."""

from __future__ import annotations

import doctest
import io
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import popgrad
from popgrad.errors import PopgradError

ROOT = Path(__file__).resolve().parent.parent


def test_import_popgrad_does_not_import_torch():
    """Test that `import popgrad` stays light: the API (and torch) load on first use of a name."""
    code = "import sys, popgrad; assert 'torch' not in sys.modules, 'import popgrad imported torch'"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_public_name_imports():
    """Test that each name of popgrad.__all__ resolves, and `from popgrad import *` binds them all."""
    from popgrad import api

    assert popgrad.__all__ == api.__all__ and len(set(popgrad.__all__)) == len(popgrad.__all__)
    for name in popgrad.__all__:
        assert getattr(popgrad, name) is getattr(api, name), name
    space = {}
    exec("from popgrad import *", space)                    # noqa: S102 (the star-import a notebook does)
    assert set(popgrad.__all__) <= set(space)
    assert set(popgrad.__all__) <= set(dir(popgrad))


def test_public_names_do_not_shadow_submodules():
    """Test that no API name is also a popgrad submodule (popgrad.<name> must mean one thing)."""
    submodules = {m.name for m in pkgutil.iter_modules(popgrad.__path__)}
    assert not submodules & set(popgrad.__all__)


def test_unknown_attribute_raises_attribute_error():
    """Test that a name outside the API is an AttributeError (so hasattr and submodule imports work)."""
    with pytest.raises(AttributeError, match="no_such_name"):
        popgrad.no_such_name                                # noqa: B018
    assert not hasattr(popgrad, "no_such_name")


@pytest.mark.parametrize("name", popgrad.__all__)
def test_docstring_example_runs(name):
    """Test that the object's docstring carries its example and that the example passes under doctest."""
    from popgrad import api

    obj = getattr(popgrad, name)
    assert api.EXAMPLES[name].strip() in (obj.__doc__ or ""), f"{name}: example missing from the docstring"
    test = doctest.DocTestParser().get_doctest(obj.__doc__, {}, f"popgrad.{name}", __file__, 0)
    assert test.examples, f"{name}: no doctest example"
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()


def test_recall_table_rejects_other_models():
    """Test that recall_table refuses a data model other than model C with a PopgradError."""
    with pytest.raises(PopgradError, match="BigramTriggerModel"):
        popgrad.recall_table(popgrad.SecondOccurrenceModel(N=4, T=5))


def test_run_claims_unknown_selection():
    """Test that run_claims with a selection matching no claim id says so."""
    with pytest.raises(PopgradError, match="no claim id contains"):
        popgrad.run_claims(select="no.such.claim")
    with pytest.raises(PopgradError, match="unknown claim id"):
        popgrad.run_claim("no.such.claim")


@pytest.mark.parametrize("name", ["theory", "numerics"])
def test_checkout_folders_are_not_top_level_packages(name):
    """Test that even from the checkout root, `import theory` / `import numerics` fail and name popgrad.<name>."""
    done = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and f"popgrad.{name}" in done.stderr, done.stderr


TINY_TRAIN = dict(T=32, d=32, batch=8, steps=10, probe_every=5, cutoff=16, device="cpu")


def test_train_is_the_numerics_run():
    """Test that popgrad.train returns the probe rows of numerics.training.train on the same config (with a bar too)."""
    from popgrad.numerics import training

    cfg = popgrad.TrainConfig(**TINY_TRAIN)
    direct = training.train(cfg.validated())["rows"]
    assert popgrad.train(cfg)["rows"] == direct
    assert popgrad.train(popgrad.TrainConfig(), progress=True, **TINY_TRAIN)["rows"] == direct


@pytest.mark.parametrize("call, match", [
    (lambda: popgrad.train(popgrad.TrainConfig(**TINY_TRAIN), stepz=3), "stepz: not a TrainConfig field"),
    (lambda: popgrad.train({"steps": 3}), "config must be a TrainConfig"),
    (lambda: popgrad.train(popgrad.TrainConfig(**TINY_TRAIN), steps=0), "steps"),
    (lambda: popgrad.train_preset("fig99"), "preset"),
    (lambda: popgrad.population_dynamics(popgrad.bigram_trigger_model(T=16), popgrad.make_embeddings(16, 65, 16)),
     "SecondOccurrenceModel"),
    (lambda: popgrad.head_ablation(popgrad.SecondOccurrenceModel(4, 5), popgrad.make_embeddings(32, 4, 5), n=0), "n "),
    (lambda: popgrad.capacity_table(maps=["injective"], dims=[16], threshold=2), "threshold"),
])
def test_new_entry_points_reject_bad_arguments(call, match):
    """Test that the training, dynamics, ablation and capacity entry points name the bad argument."""
    with pytest.raises(PopgradError, match=match):
        call()
