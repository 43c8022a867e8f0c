"""docs/tutorial.py (a jupytext percent script) runs top to bottom on the CPU with the public API only."""

from __future__ import annotations

import ast
import runpy
from pathlib import Path

import popgrad

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.py"
FIGURES = ("lemma2_recall.png", "figure9_recall.png", "theorem3_recall.png", "dynamics_accuracy.png",
           "training_probes.png")


def test_tutorial_uses_only_the_public_api():
    """Test that the tutorial imports popgrad as a whole and touches only names of popgrad.__all__."""
    tree = ast.parse(TUTORIAL.read_text(encoding="utf-8"))
    imports = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert "popgrad" in imports and not [i for i in imports if i.startswith("popgrad.")]
    assert not [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("popgrad")]
    used = {n.attr for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "popgrad"}
    assert used - {"__version__"} <= set(popgrad.__all__), used - set(popgrad.__all__)
    assert TUTORIAL.read_text(encoding="utf-8").count("# %%") >= 10        # jupytext percent cells


def test_tutorial_runs(tmp_path, monkeypatch):
    """Test that the tutorial executes as a script (CPU defaults) and writes its figures."""
    monkeypatch.setenv("POPGRAD_TUTORIAL_OUT", str(tmp_path))
    runpy.run_path(str(TUTORIAL), run_name="__main__")
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 10_000, name
