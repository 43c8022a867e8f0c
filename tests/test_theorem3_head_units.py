"""Unit tests: the Theorem 3 head diagnosis (popgrad.numerics.head_ablation), its CLI output and report paragraph."""

import json
import math
import subprocess
import sys

import pytest
import torch

from popgrad.cli import main
from popgrad.data import SecondOccurrenceModel
from popgrad.embeddings import make_embeddings
from popgrad.numerics import head_ablation as ha
from popgrad.numerics import induction_head as ih
from popgrad.report import theorem3_section
from popgrad.theory.theorem3 import three_steps


@pytest.fixture(scope="module")
def small():
    emb, model = make_embeddings(64, 8, 6, seed=3), SecondOccurrenceModel(8, 6)
    return emb, model, three_steps(model, emb)


def test_project_positions_annihilates_positions(small):
    """Test that the projected W_K^2 has no query-side p_t and no key-side p_t, Phi_1 p_t component."""
    emb, _, L = small
    W = ha.project_positions(emb, L["W_K2"])
    assert float((emb.P.T @ W).abs().max()) < 1e-12 * float(W.abs().max()) + 1e-18
    assert float((W @ emb.Phi1 @ emb.P).abs().max()) < 1e-10 * float(W.abs().max())
    assert torch.allclose(ha.project_positions(emb, L["W_K2"], False, False), L["W_K2"])


def test_without_tau_line_keeps_only_the_correct_line(small):
    """Test that removing the tau-line leaves M_2 = 0 and M_1 unchanged."""
    emb, _, L = small
    M1, M2, _ = ha.w_o2_lines(emb, L["W_O2"])
    N1, N2, rel = ha.w_o2_lines(emb, ha.without_tau_line(emb, L["W_O2"]))
    assert float(N2.abs().max()) < 1e-10 * float(M2.abs().max()) and torch.allclose(N1, M1) and rel < 1e-10


def test_block_decomposition_sums_to_the_matrix(small):
    """Test that the four (query, key) blocks of W_K^2 add up to W_K^2 and their shares to 1."""
    emb, _, L = small
    blocks, rel = ha.wk2_blocks(emb, L["W_K2"])
    total = sum(v[1] for v in blocks.values())
    assert rel < 1e-10 and torch.allclose(total, L["W_K2"], rtol=1e-9, atol=1e-20)
    table, _ = ha.block_table(emb, L["W_K2"])
    assert math.isclose(sum(r["share"] for r in table), 1.0)


def test_decompositions_refuse_small_d():
    """Test that the exact decompositions name the d they need."""
    emb = make_embeddings(8, 8, 6, seed=0)
    with pytest.raises(Exception, match="d >= 16"):
        ha.w_o2_lines(emb, torch.zeros(8, 8, dtype=torch.float64))


def test_evaluate_heads_standard_errors(small):
    """Test that each row carries se = sqrt(p(1-p)/n), n and chance, in every architecture."""
    emb, model, _ = small
    rows = ha.evaluate_heads(emb, model, {"hand": ih.hand_built(emb, 10.0, 10.0)}, n=300, seed=2, batch=128)
    assert [r["architecture"] for r in rows] == list(ha.ARCHITECTURES)
    for r in rows:
        assert r["n"] == 300 and r["chance"] == pytest.approx(1 / 8)
        assert r["acc_se"] == pytest.approx(math.sqrt(r["accuracy"] * (1 - r["accuracy"]) / 300))


def test_recall_gaps_match_memory_recall(small):
    """Test that recall from the gaps (gap > 0) equals memory_recall (9)."""
    from popgrad.memory import eq7_targets, memory_recall

    emb, _, L = small
    for k, (U, V, t) in eq7_targets(emb).items():
        gaps, _, _ = ha.recall_gaps(L[k], U, V, t)
        assert float((gaps > 0).double().mean()) == memory_recall(L[k], U, V, t)


def test_theorem3_json_has_ablation_with_se(capsys):
    """Test that --json carries the ablation rows (three architectures, se, n) and the decomposition."""
    assert main(["theorem3", "--N", "6", "--T", "5", "--d", "32", "--mc-samples", "64", "--head-samples", "200",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {r["architecture"] for r in out["ablation"]} == set(ha.ARCHITECTURES)
    assert all(r["n"] == 200 and r["acc_se"] >= 0 for r in out["ablation"])
    assert {b["block (query-key)"] for b in out["decomposition"]["blocks"]} == set(ha.BLOCKS)
    assert out["head_accuracy_se"]["chance 1/N"] == 0


def test_head_samples_must_be_positive():
    """Test that --head-samples 0 exits 2 with one line."""
    proc = subprocess.run([sys.executable, "-m", "popgrad", "theorem3", "--head-samples", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_report_paragraph_without_and_with_rows():
    """Test that the report's Theorem 3 paragraph says when the head claims were not run, and prints ± se otherwise."""
    assert "not run" in theorem3_section([])
    row = {"accuracy": 0.5, "acc_se": 0.01, "n": 100}
    details = {f"{a} | {h}": row for a in ha.ARCHITECTURES for h in
               ("all three learned", "hand-built (7)", "all learned, W_K2 positions removed: both sides")}
    text = theorem3_section([{"claim": "theorem3.head_architecture", "verdict": "approx", "details": details}])
    assert "0.500 ± 0.010 (n = 100)" in text and "projection" in text
