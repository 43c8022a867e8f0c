"""benchmarks/bench_training.py --paper-code: a missing checkout is refused in one line; with a checkout of
albietz/transformer-birth (path in $POPGRAD_PAPER_CODE; never vendored) its public module runs beside popgrad's."""

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("bench_training", ROOT / "benchmarks" / "bench_training.py")
bench_training = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_training)
TINY = ["--batches", "2", "--T", "16", "--d", "8", "--rounds", "1"]


def test_missing_paper_code_exits_2_with_one_line(tmp_path, capsys):
    """Test that a --paper-code folder without ihead_basic_model.py exits 2 naming the option."""
    assert bench_training.main(TINY + ["--paper-code", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench_training: error: --paper-code: no ihead_basic_model.py")


@pytest.mark.skipif(not os.environ.get("POPGRAD_PAPER_CODE"), reason="set POPGRAD_PAPER_CODE to a transformer-birth checkout")
def test_public_module_runs_with_popgrads_weights(capsys):
    """Test that the public module, carrying popgrad's weights, gives the paper structure's first loss."""
    assert bench_training.main(TINY + ["--paper-code", os.environ["POPGRAD_PAPER_CODE"]]) == 0
    rows = [ln.split("|") for ln in capsys.readouterr().out.splitlines() if ln.startswith("| 2 |")]
    public = next(r for r in rows if r[2].strip() == "public module")
    assert float(public[-2]) < 1e-6 and float(public[7]) == 1.0        # first_loss_gap, vs_public of itself
