"""Test the recall estimators (App. E R_1, probe (9), one-step W_O^2), the token-space
statistics they read, and the `recall-table` command."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from popgrad.numerics.recall import build_model_c, gather_model_c_stats, one_step_wo2, r1_recall, recall_grid, value_inputs
from popgrad.numerics.samplers import make_generator, model_c_batches, model_c_sampler, sample_model_c
from popgrad.numerics.token_stats import ClassStats, add_pairs, empty_stats, model_c_pairs
from popgrad.embeddings import make_embeddings
from popgrad.errors import PopgradError
from popgrad.memory import memory_recall


def stats_from(rows, labels, N):
    return add_pairs(empty_stats(N), torch.as_tensor(rows, dtype=torch.float32), torch.as_tensor(labels))


def test_r1_is_one_for_orthonormal_embeddings_and_separated_means():
    """Test that R_1 = 1 when A = I and each class mean puts extra mass on its own token."""
    N = 4
    rows = np.full((N, N), 0.2) + 0.2 * np.eye(N)
    assert r1_recall(stats_from(rows, range(N), N), torch.eye(N, dtype=torch.float64)) == 1.0


def test_r1_counts_unseen_classes_and_ties_as_misses():
    """Test that a class never seen as a label, and a tied argmax, are misses."""
    N = 3
    A = torch.eye(N, dtype=torch.float64)
    rows = np.array([[0.6, 0.2, 0.2], [0.2, 0.6, 0.2]])
    assert r1_recall(stats_from(rows, [0, 1], N), A) == pytest.approx(2 / 3)   # class 2 unseen
    tied = np.array([[0.4, 0.4, 0.2], [0.2, 0.2, 0.6], [0.2, 0.2, 0.6]])
    # class 0: c_0 - c has equal entries 0 and 1 -> tie -> miss; classes 1 and 2 share the mean of
    # rows 2 and 3 -> argmax at token 2: class 2 is a hit, class 1 a miss
    assert r1_recall(stats_from(tied, [0, 2, 1], N), A) == pytest.approx(1 / 3)


def test_memory_recall_reads_argmax_over_outputs():
    """Test eq. (9) with the indices as intended: the exact target recalls everything, a
    permuted target nothing, and W = 0 (all ties) nothing."""
    d, n = 6, 4
    U, V = torch.eye(d, dtype=torch.float64)[:, :n], torch.eye(d, dtype=torch.float64)[:, :n]
    targets = torch.arange(n)
    W = V @ U.T
    assert memory_recall(W, U, V, targets) == 1.0
    perm = torch.tensor([1, 2, 3, 0])
    assert memory_recall(V[:, perm] @ U.T, U, V, targets) == 0.0
    assert memory_recall(torch.zeros(d, d, dtype=torch.float64), U, V, targets) == 0.0
    assert memory_recall(W, U, V, targets, valid=[True, False, True, True]) == 0.75


def test_one_step_wo2_empirical_is_minus_autograd_gradient_at_zero():
    """Test that Lemma 2 at W = 0 (empirical label weights) equals -grad of the empirical
    cross-entropy at W = 0 computed by autograd, on pairs x = A c (float64)."""
    N, d, M = 5, 7, 40
    gen = torch.Generator().manual_seed(0)
    c = torch.rand(M, N, generator=gen, dtype=torch.float64)
    c = c / c.sum(1, keepdim=True)
    y = torch.randint(N, (M,), generator=gen)
    emb = make_embeddings(d, N, 3, seed=1)
    A = value_inputs(emb)
    W = torch.zeros(d, d, dtype=torch.float64, requires_grad=True)
    logits = (emb.W_U @ W @ (A @ c.T)).T                                      # (M, N)
    torch.nn.functional.cross_entropy(logits, y).backward()
    stats = ClassStats(torch.zeros(N, N, dtype=torch.float64).index_add_(0, y, c), torch.bincount(y, minlength=N))
    W1 = one_step_wo2(stats, emb.W_U, A, weights="empirical")
    assert torch.allclose(W1, -W.grad, rtol=1e-10, atol=1e-13)


def test_token_space_means_equal_embedded_means():
    """Test the SPEC §4 identity mu_k - mu = W_V^2 W_E (c_k - c) on sampled pairs."""
    model = build_model_c(T=40)
    z, q, _ = sample_model_c(model_c_sampler(model, "cpu"), 64, make_generator(0))
    rows, y, _ = model_c_pairs(z, q, model.N)
    emb = make_embeddings(12, model.N, model.T, seed=0)
    x = (emb.W_V2 @ emb.W_E @ rows.double().T).T                               # (M, d)
    stats = add_pairs(empty_stats(model.N), rows, y)
    seen = stats.seen
    mu_k = torch.stack([x[y == k].mean(0) for k in range(model.N) if seen[k]])
    direct = mu_k - x.mean(0)
    via_tokens = (value_inputs(emb) @ stats.centered_means()[seen].T).T
    assert torch.allclose(direct, via_tokens, rtol=1e-10, atol=1e-12)


def test_in_context_pairs_match_a_per_token_loop():
    """Test model_c_pairs against a literal loop: positions t where z_t is a trigger seen
    before, x = counts(z_{1:t}) / t, y = z_{t+1}."""
    model = build_model_c(T=30, K=5)
    z, q, _ = sample_model_c(model_c_sampler(model, "cpu"), 20, make_generator(4))
    rows, y, seq = model_c_pairs(z, q, model.N)
    z, q = z.long().numpy(), q.numpy()
    exp_rows, exp_y = [], []
    for b in range(z.shape[0]):
        for i in range(model.T - 1):
            if z[b, i] in q[b] and z[b, i] in z[b, :i]:
                exp_rows.append(np.bincount(z[b, :i + 1], minlength=model.N) / (i + 1))
                exp_y.append(z[b, i + 1])
    assert len(exp_y) == len(y) > 0
    assert np.allclose(rows.numpy(), np.array(exp_rows), atol=1e-7)
    assert np.array_equal(y.numpy(), np.array(exp_y))


def test_batch_prefix_statistics_are_consistent():
    """Test that the stats of b batches are those of the first b * batch_size sequences."""
    model = build_model_c(N=6, T=20, K=2)
    st = gather_model_c_stats(model, [1, 3], batch_size=8, seed=7, device="cpu")
    sampler = model_c_sampler(model, "cpu")
    z, q, _ = model_c_batches(sampler, seed=7).next(512)                    # the seed's stream
    for b in (1, 3):
        rows, y, _ = model_c_pairs(z[: 8 * b], q[: 8 * b], model.N)
        ref = add_pairs(empty_stats(model.N), rows, y)
        assert torch.equal(ref.n, st[b].n) and torch.allclose(ref.S, st[b].S)


def test_recall_grid_cells_equal_direct_scores():
    """Test that recall_grid returns one cell per (d, batches) in order, each value equal to r1_recall and
    the probe recomputed from that seed's statistics and embeddings."""
    from popgrad.numerics.recall import probe_one_step_wo2

    model = build_model_c(T=64)
    cells = recall_grid(model, [8, 32], [1, 2], seeds=2, device="cpu")
    assert [(c.d, c.batches) for c in cells] == [(8, 1), (8, 2), (32, 1), (32, 2)]
    for s in range(2):
        stats = gather_model_c_stats(model, [1, 2], 32, s, device="cpu")
        for c in cells:
            emb = make_embeddings(c.d, model.N, model.T, seed=s)
            assert c.r1[s] == r1_recall(stats[c.batches], value_inputs(emb))
            assert c.probe[s] == probe_one_step_wo2(stats[c.batches], emb)
    assert len({v for c in cells for v in c.r1}) > 1


def test_build_model_c_validates():
    """Test model selection and that semantic errors raise PopgradError."""
    assert build_model_c().N == 65
    assert build_model_c(N=10).N == 10 and build_model_c(N=65, uniform=True).pi_u[0] == pytest.approx(1 / 65)
    assert build_model_c(N=12, triggers="rare", K=3).triggers == (5, 6, 7)
    with pytest.raises(PopgradError, match="K="):
        build_model_c(N=4, K=5)
    with pytest.raises(PopgradError, match="exclude"):
        build_model_c(text="x.txt", uniform=True)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "popgrad", "recall-table", *args], capture_output=True, text=True)


def test_recall_table_command_outputs(tmp_path):
    """Test that recall-table prints the markdown table, --json, --csv and --plot."""
    small = ["--T", "48", "--dims", "8,16", "--batches", "1,2", "--seeds", "2", "--device", "cpu"]
    res = run_cli(*small, "--csv", str(tmp_path / "r.csv"), "--plot", str(tmp_path / "r.png"))
    assert res.returncode == 0, res.stderr
    assert "| d | 1 | 2 |" in res.stdout and "±" in res.stdout
    assert (tmp_path / "r.csv").read_text().startswith("d,batches,tokens")
    assert (tmp_path / "r.png").stat().st_size > 1000
    payload = json.loads(run_cli(*small, "--json").stdout)
    assert len(payload["cells"]) == 4 and payload["rows"][0]["d"] == 8


@pytest.mark.parametrize("bad", [["--K", "70"], ["--dims", "0"], ["--batches", "x"], ["--T", "1"],
                                 ["--text", "/nonexistent.txt"], ["--N", "1"], ["--triggers", "all"],
                                 ["--seeds", "0"], ["--device", "tpu"], ["--batch-size", "-3"]])
def test_recall_table_rejects_bad_options(bad, capsys):
    """Test that bad options exit 2 with one line and no traceback."""
    from popgrad.cli import main

    try:
        code = main(["recall-table", *bad])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def run_in_process(argv, capsys):
    from popgrad.cli import main

    code = main(argv)
    return code, capsys.readouterr()


def test_scaling_command_and_helpers(tmp_path, capsys):
    """Test `popgrad scaling` on a tiny sweep (table, exponents, --json, --plot) and its helpers."""
    from popgrad.numerics.scaling import ScalingPoint, batch_grid, first_crossing, fitted_exponent

    assert batch_grid(16) == [1, 2, 3, 4, 6, 8, 12, 16]
    assert first_crossing([0.2, 0.95, 0.99], [1, 2, 4], 0.9) == 2.0
    assert first_crossing([0.2, 0.5], [1, 2], 0.9) == float("inf")
    pts = [ScalingPoint("d", v, v, (8.0 * (16 / v),), (1.0,), (1,)) for v in (16, 32, 64)]
    assert fitted_exponent(pts) == pytest.approx(-1.0)
    code, out = run_in_process(["scaling", "--sweeps", "d,K", "--dims", "16,32", "--Ks", "1,2", "--d", "16",
                                "--max-batches", "4", "--seeds", "2", "--T", "64", "--device", "cpu",
                                "--plot", str(tmp_path / "s.png")], capsys)
    assert code == 0 and "| sweep | value |" in out.out and "exponent_batches_needed" in out.out
    assert (tmp_path / "s.png").stat().st_size > 1000
    code, out = run_in_process(["scaling", "--sweeps", "T", "--Ts", "16,32", "--d", "8", "--max-batches", "2",
                                "--seeds", "1", "--json"], capsys)
    assert code == 0 and len(json.loads(out.out)["rows"]) == 2


def test_bench_command_prints_ratio(capsys):
    """Test that `popgrad bench` reports reference and fast tokens/s and their ratio."""
    code, out = run_in_process(["bench", "--T", "32", "--ref-sequences", "5", "--batch", "64", "--repeats", "1",
                                "--no-table", "--json"], capsys)
    rows = json.loads(out.out)["rows"]
    assert code == 0 and rows[0]["ratio_vs_reference"] == 1.0
    assert all(r["tokens_per_s"] > 0 for r in rows)


@pytest.mark.parametrize("argv", [["scaling", "--threshold", "1.5"], ["scaling", "--Ks", "100"],
                                  ["scaling", "--Ns", "1"], ["bench", "--ref-sequences", "1000000"],
                                  ["recall-table", "--N", "1000000"]])
def test_scaling_and_bench_refuse_semantic_errors(argv, capsys):
    """Test that semantic errors (threshold > 1, K > N, N < 2, huge runs) exit 2 with one line."""
    code, out = run_in_process(argv, capsys)
    assert code == 2 and len(out.err.strip().splitlines()) == 1


def test_batch_prefixes_across_chunk_boundaries():
    """Test prefix statistics when batch boundaries fall inside and across sampler chunks."""
    from popgrad.numerics.samplers import stream_model_c
    from popgrad.numerics.token_stats import model_c_stats

    model = build_model_c(N=8, T=16, K=2)
    st = gather_model_c_stats(model, [3, 7], batch_size=100, seed=5, device="cpu")
    sampler = model_c_sampler(model, "cpu")
    zs, qs, os_ = zip(*((z.clone(), q, o) for z, q, o in stream_model_c(sampler, 700, seed=5)))
    z, q, o = torch.cat(zs), torch.cat(qs), torch.cat(os_)
    for b in (3, 7):
        ref = model_c_stats(z[: 100 * b], q[: 100 * b], o[: 100 * b], model.N)
        assert torch.equal(ref.n, st[b].n) and torch.allclose(ref.S, st[b].S, rtol=1e-12)



@given(seed=st.integers(0, 10_000), N=st.integers(2, 7), d=st.integers(2, 9))
def test_r1_is_invariant_to_relabelling_tokens(seed, N, d):
    """Test that R_1 is unchanged when tokens are renamed consistently (S rows and columns, n,
    and the columns of A permuted together) and always lies in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    S = torch.rand(N, N, generator=gen, dtype=torch.float64)
    n = torch.randint(0, 4, (N,), generator=gen)
    S = S * n[:, None]
    if n.sum() == 0:
        n[0], S[0] = 1, 1.0 / N
    A = torch.randn(d, N, generator=gen, dtype=torch.float64)
    perm = torch.randperm(N, generator=gen)
    r = r1_recall(ClassStats(S, n), A)
    r_perm = r1_recall(ClassStats(S[perm][:, perm], n[perm]), A[:, perm])
    assert 0.0 <= r <= 1.0 and r == pytest.approx(r_perm)
