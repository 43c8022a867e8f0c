"""benchmarks/gpu_check.py: the listing without CUDA, and every step end to end on the CPU at a tiny size."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)
NAMES = ["gpu tests", "Monte-Carlo benchmark", "training benchmark", "bfloat16 benchmark", "precision auto"]


def test_dry_run_lists_every_step(capsys, tmp_path):
    """Test that --dry-run lists the five steps with their CUDA commands and writes nothing."""
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert all(f"{i}. {n}:" in text for i, n in enumerate(NAMES, 1))
    assert "pytest -q -m gpu" in text and text.count("--device cuda") == 4
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_without_cuda_it_says_so_and_exits_0(capsys, tmp_path):
    """Test that on a CPU-only machine the default run says that nothing ran on a GPU and lists the steps."""
    assert gpu_check.main(["--out", str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert text.startswith("gpu_check: no CUDA device on this machine") and "nothing was run on a GPU" in text
    assert "5. precision auto:" in text and not (tmp_path / "r").exists()


def test_every_step_runs_end_to_end_on_the_cpu(tmp_path, monkeypatch, capsys):
    """Test that --device cpu --tiny runs the five steps (exit code 0 each) and writes the JSON and markdown."""
    monkeypatch.setenv("POPGRAD_CACHE_DIR", str(tmp_path / "cache"))
    assert gpu_check.main(["--device", "cpu", "--tiny", "--out", str(tmp_path / "r")]) == 0
    assert "5 of 5 steps passed" in capsys.readouterr().out
    report = json.loads((tmp_path / "r" / "gpu_check.json").read_text())
    assert [s["name"] for s in report["steps"]] == NAMES and all(s["rc"] == 0 for s in report["steps"])
    assert report["tiny"] and report["machine"]["device"] == "cpu"
    out = {s["name"]: s["output"] for s in report["steps"]}
    assert "skipped" in out["gpu tests"] or "deselected" in out["gpu tests"]
    assert "| popgrad lean |" in out["training benchmark"] and "| bfloat16 lean |" in out["bfloat16 benchmark"]
    assert "auto: bfloat16 step" in out["precision auto"] and "(measured, batch 2" in out["precision auto"]
    md = (tmp_path / "r" / "gpu_check.md").read_text()
    assert md.startswith("# popgrad GPU check") and all(f"## {n}:" in md for n in NAMES)
