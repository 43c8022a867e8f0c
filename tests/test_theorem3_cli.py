"""Test the `popgrad theorem3` command and the induction-head helpers (software behaviour)."""

import json
import subprocess
import sys

import pytest
import torch

from popgrad.cli import main
from popgrad.embeddings import make_embeddings
from popgrad.numerics import induction_head as ih
from popgrad.memory import eq7_targets, memory_recall

SMALL = ["theorem3", "--N", "6", "--T", "5", "--d", "24", "--mc-samples", "64"]


def test_theorem3_json_keys(capsys):
    """Test that --json carries tau, recall per step and the head accuracy."""
    assert main(SMALL + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"tau", "recall", "head_accuracy", "rows", "meta"} <= set(out)
    assert set(out["recall"]) == {"W_O2", "W_K2", "W_K1"}
    assert all(0 <= v["mc"] <= 1 for v in out["recall"].values())
    assert out["head_accuracy"]["chance 1/N"] == pytest.approx(1 / 6)
    from popgrad.theory.theorem3 import tau

    assert out["tau"] == pytest.approx(float(tau(6, 5)), rel=1e-12)


def test_theorem3_markdown_and_csv(tmp_path, capsys):
    """Test that the default output is a markdown table with every step, and --csv writes it."""
    csv = tmp_path / "t3.csv"
    assert main(SMALL + ["--csv", str(csv)]) == 0
    text = capsys.readouterr().out
    for label in ("1: W_O^2", "2: W_K^2", "3: W_K^1", "recall (9) vs (7)", "chance 1/N"):
        assert label in text
    assert csv.read_text().startswith("step,quantity,paper,exact,mc,mc_stderr,verdict")


def test_theorem3_plot_writes_pngs(tmp_path, capsys):
    """Test that --plot DIR writes the heatmaps and the recall curves."""
    assert main(["theorem3", "--N", "4", "--T", "4", "--d", "16", "--mc-samples", "32",
                 "--plot", str(tmp_path)]) == 0
    for name in ("theorem3_heatmaps.png", "theorem3_recall.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"     # a PNG, not an empty file


@pytest.mark.parametrize("bad", [["--N", "1"], ["--T", "2"], ["--d", "0"], ["--mc-samples", "4"], ["--eta", "-1"]])
def test_theorem3_bad_arguments_exit_2(bad):
    """Test that bad arguments exit with status 2 and a one-line message, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "popgrad", "theorem3", *bad], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0]


def test_in_context_mask_marks_second_occurrences():
    """Test that in-context positions are later occurrences of a trigger with a next token."""
    z = torch.tensor([[3, 1, 3, 2, 3, 3]])
    mask = ih.in_context_mask(z, torch.tensor([[3]]))
    assert mask.tolist() == [[False, False, True, False, True, False]]


def test_hand_built_recall_is_one_at_large_d():
    """Test that the targets of eq. (7) have memory recall 1 at d = 512 (near-orthonormal embeddings)."""
    emb = make_embeddings(512, 8, 6, seed=1)
    mats = ih.hand_built(emb)
    tg = eq7_targets(emb)
    assert all(memory_recall(mats[k], *tg[k]) == 1.0 for k in mats)
