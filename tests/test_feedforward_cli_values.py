"""`popgrad feedforward --json`: every printed number equals the library's value on the same draws, computed here
(the rows, the exact limit and uniform KL by loops over the shipped counts, the number of zero bigrams)."""

import contextlib
import io
import json
import math

import numpy as np

from popgrad.cli import main
from popgrad.data import bigram_trigger_model
from popgrad.numerics import feedforward as nf


def _run(argv):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    return json.loads(buf.getvalue())


def test_feedforward_json_values_equal_their_definitions():
    """Test that the CLI's rows, limit, uniform KL, zero count and exponent are those of the same draws."""
    out = _run(["feedforward", "--dims", "65,100,160", "--draws", "3", "--fit-from", "100", "--floor", "-7",
                "--seed", "4", "--json"])
    pb = bigram_trigger_model(T=8, K=1).pi_b
    rows = pb.tolist()
    zeros = [sum(1 for p in r if p <= 0) for r in rows]
    limit = sum(math.log(1 + z * math.exp(-7.0)) for z in zeros) / len(rows)
    uniform = sum(sum(p * math.log(p * len(r)) for p in r if p > 0) for r in rows) / len(rows)
    assert out["zero_bigrams"] == sum(zeros) == 2822
    assert abs(out["limit"] - limit) < 1e-12 and abs(out["uniform"] - uniform) < 1e-12 and out["floor"] == -7.0
    samples = nf.kl_versus_d(pb, [65, 100, 160], 3, -7.0, 4)
    got = {r["d"]: r for r in out["rows"]}
    assert sorted(got) == [65, 100, 160]
    for d, v in samples.items():
        m, se = float(np.mean(v)), float(np.std(v, ddof=1) / math.sqrt(v.size))
        r = got[d]
        assert abs(r["kl"] - m) < 1e-12 and abs(r["kl_se"] - se) < 1e-12
        assert abs(r["excess"] - (m - limit)) < 1e-12 and abs(r["d_times_excess"] - d * (m - limit)) < 1e-9
    fit = [d for d in (65, 100, 160) if d >= 100]
    x = np.log(fit)
    y = np.log([np.mean(samples[d]) - limit for d in fit])
    assert abs(out["exponent"][0] - (y[1] - y[0]) / (x[1] - x[0])) < 1e-10
