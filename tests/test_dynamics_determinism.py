"""Test that `popgrad dynamics` prints identical numbers with 1 and 2 threads and with --workers 2."""

import json
import os
import subprocess
import sys

import pytest
import torch

from popgrad.cli import main
from popgrad.data import SecondOccurrenceModel
from popgrad.embeddings import make_embeddings
from popgrad.numerics import dynamics as dy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["dynamics", "--N", "6", "--T", "6", "--d", "32", "--k", "6", "--n", "1100", "--n-eval", "300",
        "--seeds", "2", "--etas", "5:50:50", "--schedule", "joint", "--every", "1"]


def _shell(args, threads):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, "-m", "popgrad", *args], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_one_and_two_threads_print_identical_numbers():
    """Test the printed output of the same run with OMP_NUM_THREADS=1 and 2: equal text, markdown (every step) and
    --json (every number at full precision)."""
    assert _shell(ARGS, 1) == _shell(ARGS, 2)
    one, two = (json.loads(_shell(ARGS + ["--json"], t)) for t in (1, 2))
    assert len(one["rows"]) == 2 * 7
    assert one["rows"] == two["rows"] and one["summary"] == two["summary"]      # all but the run's time stamp


def test_in_process_and_two_workers_give_identical_rows(capsys):
    """Test --json rows and summary in this process vs on a local Dask cluster of 2 workers: exactly equal."""
    pytest.importorskip("dask.distributed")
    assert main(ARGS + ["--json"]) == 0
    here = json.loads(capsys.readouterr().out)
    assert main(ARGS + ["--json", "--workers", "2"]) == 0
    workers = json.loads(capsys.readouterr().out)
    assert len(here["rows"]) == 2 * 7
    assert here["rows"] == workers["rows"] and here["summary"] == workers["summary"]


def test_chunked_gradient_is_the_whole_batch_gradient():
    """Test the fixed-chunk float64 sum against one autograd over the whole batch (float64), and that it does not
    depend on the torch thread count."""
    model = SecondOccurrenceModel(5, 6)
    emb = make_embeddings(16, 5, 6, seed=2, dtype="float64")
    co = dy.coordinates(emb)
    gen = torch.Generator().manual_seed(0)
    W = {k: 0.3 * torch.randn(16, 16, generator=gen, dtype=torch.float64) for k in dy.LAYERS}
    z, y, w = dy.data_source(model, "mc", 1300, 0, "cpu")(1)
    whole, lw = dy.full_gradients(co, W, dy.LAYERS, z, y, w)
    old = torch.get_num_threads()
    try:
        got = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            got.append(dy.chunked_full_gradients(co, W, dy.LAYERS, z, y, w))
    finally:
        torch.set_num_threads(old)
    (g1, l1), (g2, l2) = got
    for k in dy.LAYERS:
        assert torch.allclose(g1[k], whole[k], rtol=1e-11, atol=1e-14 * float(whole[k].abs().max()))
        assert torch.equal(g1[k], g2[k])
    assert abs(l1 - lw) < 1e-12 and l1 == l2


def test_step_streams_depend_on_seed_and_step_only():
    """Test the per-step seeds: distinct over steps and seeds, and the fixed population repeats step 1's batch."""
    seeds = {dy.step_seed(s, t) for s in range(5) for t in range(200)}
    assert len(seeds) == 1000 and all(0 <= x < 2 ** 63 for x in seeds)
    model = SecondOccurrenceModel(5, 6)
    fresh, fixed = dy.data_source(model, "mc", 50, 3, "cpu"), dy.data_source(model, "fixed", 50, 3, "cpu")
    assert not torch.equal(fresh(1)[0], fresh(2)[0])
    assert torch.equal(fixed(7)[0], fresh(1)[0]) and torch.equal(fixed(2)[0], fixed(9)[0])


def test_median_interval_counts_unreached_as_infinite():
    """Test the median and its bootstrap interval: unreached runs count as +inf (None when the median is)."""
    med, lo, hi = dy.median_interval([10, 20, 30], 3)
    assert med == 20 and 10 <= lo <= 20 <= hi <= 30
    assert dy.median_interval([10], 3) == (None, 10.0, None)
    med, lo, hi = dy.median_interval([5, 6, 7, 8], 5)
    assert med == 7 and hi is None
