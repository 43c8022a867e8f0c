"""App. E in-context pairs of model C (token space) against a per-token loop.

training.model_c_pairs   numerics.token_stats.model_c_pairs + add_pairs (the pairs (x, y) behind the Monte-Carlo
                         mu_k, mu of Lemma 2 / eq. (15)): rows = counts of z_{1:t} / t at every in-context position t
                         (a trigger of the sequence seen earlier, t <= T-1 in the paper's 1-based indexing), labels
                         z_{t+1}, sequence ids, and the class sums and counts, vs a Python loop over tokens
"""

from __future__ import annotations

import torch

from popgrad.numerics.recall import build_model_c
from popgrad.numerics.samplers import make_generator, model_c_sampler, sample_model_c
from popgrad.numerics.token_stats import add_pairs, empty_stats, model_c_pairs
from popgrad.registry import Claim, Measurement, register

T, BATCH, K = 32, 48, 3


def loop_pairs(z: torch.Tensor, q: torch.Tensor, N: int):
    """The reference: per sequence, per position i <= T-2 (0-based), the pair when z_i is a trigger seen before."""
    rows, labels, seqs = [], [], []
    for b in range(z.shape[0]):
        triggers, counts = {int(x) for x in q[b]}, [0] * N
        for i in range(z.shape[1] - 1):
            tok = int(z[b, i])
            counts[tok] += 1
            if tok in triggers and counts[tok] >= 2:
                rows.append([c / (i + 1) for c in counts])
                labels.append(int(z[b, i + 1]))
                seqs.append(b)
    return rows, labels, seqs


def measure_model_c_pairs() -> Measurement:
    model = build_model_c(T=T, K=K)
    z, q, _ = sample_model_c(model_c_sampler(model, "cpu"), BATCH, make_generator(5, "cpu"))
    rows, labels, seqs = model_c_pairs(z, q, model.N)
    want_rows, want_labels, want_seqs = loop_pairs(z, q, model.N)
    bad = []
    if labels.tolist() != want_labels or seqs.tolist() != want_seqs:
        bad.append(f"labels/sequences differ ({len(labels)} pairs vs {len(want_labels)} by the loop)")
    ref = torch.tensor(want_rows, dtype=torch.float64)
    row_err = float((rows.double() - ref).abs().max()) if rows.shape == ref.shape else float("inf")
    stats = add_pairs(empty_stats(model.N), rows, labels)
    S = torch.zeros(model.N, model.N, dtype=torch.float64)
    n = torch.zeros(model.N, dtype=torch.int64)
    for r, y in zip(want_rows, want_labels):
        S[y] += torch.tensor(r, dtype=torch.float64)
        n[y] += 1
    stat_err = float((stats.S - S).abs().max()) if not bad else float("inf")
    if not torch.equal(stats.n, n):
        bad.append("class counts differ")
    last = sum(1 for b in range(BATCH) for i in (T - 2,) if int(z[b, i]) in {int(x) for x in q[b]}
               and int((z[b, :i] == z[b, i]).sum()) > 0)
    err = max(row_err, stat_err) if not bad and last > 0 else float("inf")
    return Measurement(err, 1e-6, "exact", details={"failures": bad},
                       note=f"{len(want_labels)} pairs from {BATCH} sequences (T={T}, {last} at the last labelled "
                            f"position); rows max diff {row_err:.1e} (float32 counts), class sums {stat_err:.1e}"
                       if not bad else "; ".join(bad))


register(Claim(
    id="training.model_c_pairs",
    statement="the App. E pairs of model C are the normalized prefix counts at every in-context position (a trigger "
              "seen earlier in its sequence, last labelled position included), labelled by the next token",
    where="App. E (Monte-Carlo mu_k, mu from in-context tokens); Lemma 2 / eq. (15)",
    compared="numerics.token_stats.model_c_pairs + add_pairs (vectorized prefix counts) vs a per-token Python loop; "
             "shared: the sampled sequences",
    kind="exact", tolerance="labels, sequence ids and counts equal; rows and class sums abs <= 1e-6 (float32 rows)",
    measure=measure_model_c_pairs,
    code=("popgrad.numerics.token_stats.model_c_pairs", "popgrad.numerics.token_stats.in_context_positions",
          "popgrad.numerics.token_stats.add_pairs"),
    sides=(("popgrad.numerics.token_stats.model_c_pairs", "popgrad.numerics.token_stats.add_pairs"),
           ("popgrad.claims.token_pairs.loop_pairs",))))
