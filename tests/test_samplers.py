"""Test the Monte-Carlo samplers: alias tables, model C rules, determinism, and agreement in
distribution with the per-token reference sampler of Section 3 (fixed seeds, no flakiness)."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from popgrad.numerics.reference_sampler import reference_batch
from popgrad.numerics.samplers import (BlockSampler, alias_tables, default_block, make_generator, model_c_batches,
                                       model_c_sampler, model_d_batches, sample_model_c, sample_model_d,
                                       stream_model_c)
from popgrad.data import BigramTriggerModel, SecondOccurrenceModel, bigram_trigger_model, uniform_bigram_trigger_model
from popgrad.errors import PopgradError

P_MIN = 1e-3     # chi-square p-values below this fail (fixed seeds: deterministic)


def implied_probs(tab):
    """The exact distribution each alias row samples, read back from the tables."""
    W, R = tab.width, tab.rows + tab.N
    thr = tab.thr.view(R, W, 2)[..., 0].long()
    tok = tab.token.view(R, W, 2).long()
    keep = (thr - (torch.arange(W) << tab.bits)).double() / 2.0 ** tab.bits     # P(keep column j)
    P = torch.zeros(R, tab.N, dtype=torch.float64)
    P.scatter_add_(1, tok[..., 0].clamp(max=tab.N - 1), keep * (tok[..., 0] < tab.N) / W)
    P.scatter_add_(1, tok[..., 1], (1 - keep) / W)
    return P


@given(st.lists(st.floats(0, 1), min_size=2, max_size=40).filter(lambda v: sum(v) > 0.1))
def test_alias_table_reproduces_any_distribution(weights):
    """Test that the alias rows sample exactly the given probabilities (up to 2^-bits)."""
    p = np.asarray(weights) / np.sum(weights)
    tab = alias_tables(p[None, :])
    P = implied_probs(tab)
    assert np.abs(P[0].numpy() - p).max() <= 2 * len(p) * 2.0 ** -tab.bits
    assert torch.allclose(P[1:], torch.eye(len(p), dtype=torch.float64))      # deterministic rows


def pooled_two_sample(a: np.ndarray, b: np.ndarray, min_count: int = 10) -> float:
    """p-value of a chi-square homogeneity test of two count vectors, rare bins pooled."""
    order = np.argsort(a + b)
    a, b = a[order], b[order]
    small = np.cumsum(a + b) < min_count * 2
    table = np.array([[a[small].sum(), *a[~small]], [b[small].sum(), *b[~small]]])
    table = table[:, table.sum(0) > 0]
    return stats.chi2_contingency(table)[1]


def pooled_goodness(counts: np.ndarray, probs: np.ndarray, min_expected: float = 5.0) -> float:
    """p-value of a chi-square goodness-of-fit test, bins with small expected counts pooled."""
    expected = probs * counts.sum()
    order = np.argsort(expected)
    small = np.cumsum(expected[order]) < min_expected * 2
    obs = np.array([counts[order][small].sum(), *counts[order][~small]])
    exp = np.array([expected[order][small].sum(), *expected[order][~small]])
    keep = exp > 0
    return stats.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum())[1]


@pytest.fixture(scope="module")
def shakespeare_c():
    model = bigram_trigger_model(T=24, K=5)
    z, q, o = sample_model_c(model_c_sampler(model, "cpu"), 6000, make_generator(1))
    return model, z.long().numpy(), q.numpy(), o.numpy()


def test_model_c_trigger_is_always_followed_by_its_output(shakespeare_c):
    """Test that every occurrence of a trigger q_k (not at the last position) is followed by o_k."""
    model, z, q, o = shakespeare_c
    for k in range(model.K):
        hit = z[:, :-1] == q[:, k:k + 1]
        nxt = z[:, 1:]
        assert np.all(nxt[hit] == np.broadcast_to(o[:, k:k + 1], hit.shape)[hit])


def test_model_c_triggers_are_distinct_tokens(shakespeare_c):
    """Test that each sequence's K triggers are distinct valid tokens and z stays in [N]."""
    model, z, q, _ = shakespeare_c
    assert q.shape == (z.shape[0], model.K)
    assert all(len(set(row)) == model.K for row in q)
    assert z.min() >= 0 and z.max() < model.N


def test_model_c_first_token_follows_pi_u(shakespeare_c):
    """Test that z_1 ~ pi_u (chi-square goodness of fit)."""
    model, z, _, _ = shakespeare_c
    assert pooled_goodness(np.bincount(z[:, 0], minlength=model.N), model.pi_u) > P_MIN


def test_model_c_non_trigger_transitions_follow_pi_b(shakespeare_c):
    """Test that z_t | z_{t-1} = i, i not a trigger, follows pi_b(.|i) for the commonest i."""
    model, z, q, _ = shakespeare_c
    prev, nxt = z[:, :-1], z[:, 1:]
    free = ~(prev[:, :, None] == q[:, None, :]).any(-1)
    for i in np.argsort(-model.pi_u)[:4]:
        sel = (prev == i) & free
        assert pooled_goodness(np.bincount(nxt[sel], minlength=model.N), model.pi_b[i]) > P_MIN


def test_model_c_random_triggers_follow_pi_q_without_replacement():
    """Test that the first trigger ~ pi_q and the second ~ pi_q restricted to the other tokens
    (successive sampling without replacement), on a small non-uniform pi_q."""
    N = 5
    pi_q = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    U = np.full((N, N), 1.0 / N)
    model = BigramTriggerModel(N, 4, 2, np.full(N, 0.2), U, U, pi_q=pi_q)
    _, q, _ = sample_model_c(model_c_sampler(model, "cpu"), 20000, make_generator(3))
    q = q.numpy()
    # exponential race: the K keys are sorted by topk, so the set, not the order, is the sample
    pairs = np.zeros((N, N))
    np.add.at(pairs, (np.minimum(q[:, 0], q[:, 1]), np.maximum(q[:, 0], q[:, 1])), 1)
    exact = np.zeros((N, N))
    for a in range(N):
        for b in range(N):
            if a != b:
                exact[min(a, b), max(a, b)] += pi_q[a] * pi_q[b] / (1 - pi_q[a])
    iu = np.triu_indices(N, 1)
    assert pooled_goodness(pairs[iu], exact[iu]) > P_MIN


def test_fixed_triggers_are_the_given_set():
    """Test that fixed ('frequent') triggers are the same K tokens in every sequence."""
    model = bigram_trigger_model(T=16, K=3, triggers="frequent")
    _, q, _ = sample_model_c(model_c_sampler(model, "cpu"), 64, make_generator(0))
    assert (q == torch.tensor(model.triggers)).all()


def test_fast_sampler_matches_reference_in_distribution():
    """Test that the fast sampler and the per-token reference agree in distribution: tokens at
    positions 1, 8 and T, triggers, outputs and the number of in-context positions per sequence
    (one value per sequence, so the chi-square tests see independent draws)."""
    model = bigram_trigger_model(T=20, K=5)
    B = 3000
    zr, qr, orf = reference_batch(model, B, seed=11)
    zf, qf, of = (t.long().numpy() for t in sample_model_c(model_c_sampler(model, "cpu"), B, make_generator(11)))

    def n_in_context(z, q):
        is_trig = (z[:, :, None] == q[:, None, :]).any(-1)
        seen = np.array([[np.sum(row[:i] == row[i]) > 0 for i in range(len(row))] for row in z])
        return np.minimum((is_trig & seen)[:, :-1].sum(1), 12)

    N = model.N
    for name, a, b, n in [("z_1", zr[:, 0], zf[:, 0], N), ("z_8", zr[:, 7], zf[:, 7], N),
                          ("z_T", zr[:, -1], zf[:, -1], N), ("triggers", qr.ravel(), qf.ravel(), N),
                          ("outputs", orf.ravel(), of.ravel(), N),
                          ("in-context count", n_in_context(zr, qr), n_in_context(zf, qf), 13)]:
        p = pooled_two_sample(np.bincount(a, minlength=n), np.bincount(b, minlength=n))
        assert p > P_MIN, f"{name}: fast and reference samplers differ (chi-square p = {p:.2e})"


def test_reference_sampler_obeys_the_model():
    """Test that the reference sampler also follows every trigger by its output."""
    model = bigram_trigger_model(T=32, K=5)
    z, q, o = reference_batch(model, 50, seed=0)
    for k in range(model.K):
        hit = z[:, :-1] == q[:, k:k + 1]
        assert np.all(z[:, 1:][hit] == np.broadcast_to(o[:, k:k + 1], hit.shape)[hit])


def test_model_c_sampler_is_deterministic_per_seed():
    """Test that a seed fixes the draw, another seed changes it, and stream prefixes agree."""
    sampler = model_c_sampler(uniform_bigram_trigger_model(7, 12, 2), "cpu")
    a = sample_model_c(sampler, 40, make_generator(5))[0].clone()
    b = sample_model_c(sampler, 40, make_generator(5))[0].clone()
    c = sample_model_c(sampler, 40, make_generator(6))[0].clone()
    assert torch.equal(a, b) and not torch.equal(a, c)
    short = torch.cat([z.clone() for z, _, _ in stream_model_c(sampler, 30, seed=2, chunk=16)])
    long = torch.cat([z.clone() for z, _, _ in stream_model_c(sampler, 80, seed=2, chunk=16)])
    assert short.shape == (30, 12) and torch.equal(short, long[:30])


def test_model_c_sampler_rejects_bad_input():
    """Test that bad arguments raise PopgradError naming them."""
    sampler = model_c_sampler(uniform_bigram_trigger_model(4, 6, 1), "cpu")
    with pytest.raises(PopgradError, match="batch"):
        sample_model_c(sampler, 0, make_generator(0))
    with pytest.raises(PopgradError, match="model"):
        model_c_sampler("not a model", "cpu")
    with pytest.raises(PopgradError, match="sequences"):
        next(stream_model_c(sampler, 0, seed=0))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_model_c_sampler_on_cuda_obeys_the_model():
    """Test that the CUDA sampler runs and follows every trigger by its output."""
    model = bigram_trigger_model(T=64, K=5)
    z, q, o = sample_model_c(model_c_sampler(model, "cuda"), 256, make_generator(0, "cuda"))
    z, q, o = z.long().cpu().numpy(), q.cpu().numpy(), o.cpu().numpy()
    for k in range(model.K):
        hit = z[:, :-1] == q[:, k:k + 1]
        assert np.all(z[:, 1:][hit] == np.broadcast_to(o[:, k:k + 1], hit.shape)[hit])


def exact_ordered_draws(pi, K):
    """P(q_1..q_K) of successive sampling without replacement, by enumeration."""
    import itertools

    out = {}
    for seq in itertools.permutations(range(len(pi)), K):
        p, left = 1.0, 1.0
        for t in seq:
            p *= pi[t] / left
            left -= pi[t]
        out[seq] = p
    return out


@pytest.mark.parametrize("pi_q", [[0.4, 0.3, 0.15, 0.1, 0.05], [0.94, 0.03, 0.02, 0.01, 0.0]])
def test_trigger_draws_match_successive_sampling_exactly(pi_q):
    """Test that the ordered K = 3 triggers follow successive sampling without replacement,
    both when rejection finishes and when a concentrated pi_q sends rows to the fallback."""
    N, K = len(pi_q), 3
    U = np.full((N, N), 1.0 / N)
    model = BigramTriggerModel(N, 4, K, np.full(N, 1.0 / N), U, U, pi_q=np.array(pi_q))
    _, q, _ = sample_model_c(model_c_sampler(model, "cpu"), 20000, make_generator(8))
    exact = exact_ordered_draws(pi_q, K)
    keys = list(exact)
    index = {s: i for i, s in enumerate(keys)}
    counts = np.bincount([index[tuple(r)] for r in q.tolist()], minlength=len(keys))
    assert pooled_goodness(counts, np.array([exact[s] for s in keys])) > P_MIN


def test_alias_tables_power_of_two_width_have_no_int32_overflow():
    """Test that rows whose last column is kept with probability 1 (N a power of two) sample
    exactly, with every threshold inside int32."""
    p = np.array([[0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.0, 1.0]])
    tab = alias_tables(p)
    assert int(tab.thr.min()) >= 0
    assert np.abs(implied_probs(tab)[:3].numpy() - p).max() <= 8 * 2.0 ** -tab.bits


# ----------------------------------------------------------------------------- block sampler
def _drawn(draw: BlockSampler, sizes):
    """Concatenate clones of the batches of the given sizes (batches are views: clone at once)."""
    parts = [tuple(t.clone() for t in draw.next(b)) for b in sizes]
    return tuple(torch.cat(col) for col in zip(*parts))


@given(st.lists(st.integers(1, 150), min_size=1, max_size=12))
def test_block_sampler_gives_the_same_sequences_whatever_the_batch_sizes(sizes):
    """Test the invariant of the block sampler: for one (seed, block) the n-th sequence (z, q, o)
    is the same whatever mix of batch sizes (smaller, equal to or larger than the block)
    delivered it, and equals the sequences of whole `sample_model_c` blocks from one generator."""
    model = bigram_trigger_model(T=10, K=3)
    sampler = model_c_sampler(model, "cpu")
    n, block = sum(sizes), 64
    got = _drawn(model_c_batches(sampler, seed=9, block=block), sizes)
    gen = make_generator(9)
    blocks = [tuple(t.clone() for t in sample_model_c(sampler, block, gen)) for _ in range(-(-n // block))]
    want = tuple(torch.cat(col)[:n] for col in zip(*blocks))
    assert got[0].shape == (n, model.T) and got[1].shape == (n, model.K)
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_block_sampler_hands_out_views_and_refills_whole_blocks():
    """Test that batches inside one block are views of one buffer (no copy), that blocks are
    drawn only when needed, and that a batch larger than the block spans several blocks."""
    draw = model_c_batches(uniform_bigram_trigger_model(7, 12, 2), seed=0, block=128, device="cpu")
    z1, _, _ = draw.next(32)
    z2, _, _ = draw.next(32)
    assert z1.untyped_storage().data_ptr() == z2.untyped_storage().data_ptr()
    assert z2.data_ptr() - z1.data_ptr() == 32 * z1.element_size()              # next columns of (T, block)
    assert draw.blocks_drawn == 1
    draw.next(64)
    assert draw.blocks_drawn == 1                                                # 128 used, no refill yet
    z, q, o = draw.next(300)                                                     # 3 more blocks
    assert draw.blocks_drawn == 4 and z.shape == (300, 12) and q.shape == o.shape == (300, 2)


def test_stream_model_c_is_the_block_stream_and_ignores_the_chunk():
    """Test that stream_model_c yields the block sampler's stream, whatever its chunk size."""
    sampler = model_c_sampler(uniform_bigram_trigger_model(5, 9, 1), "cpu")
    a = torch.cat([z.clone() for z, _, _ in stream_model_c(sampler, 100, seed=3, chunk=7)])
    b = torch.cat([z.clone() for z, _, _ in stream_model_c(sampler, 100, seed=3, chunk=64)])
    c = _drawn(model_c_batches(sampler, seed=3), [100])[0]
    assert a.shape == (100, 9) and torch.equal(a, b) and torch.equal(a, c)


def test_model_d_block_sampler_is_batch_size_invariant_and_follows_the_model():
    """Test the model-D block sampler: same sequences across batch sizes, and each sequence is a
    valid model-D sequence (z_T = q = z_{i_q}, y = z_{i_q + 1}, q absent elsewhere)."""
    model = SecondOccurrenceModel(6, 10)
    a = _drawn(model_d_batches(model, seed=4, block=32, device="cpu"), [5, 50, 45])
    b = _drawn(model_d_batches(model, seed=4, block=32, device="cpu"), [100])
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    z, y, q, iq = a
    rows = torch.arange(100)
    assert torch.equal(z[:, -1], q) and torch.equal(z[rows, iq], q) and torch.equal(z[rows, iq + 1], y)
    assert ((z[:, :-1] == q[:, None]).sum(1) == 1).all()
    gen = make_generator(4)
    first = sample_model_d(model, 32, gen)[0]
    assert torch.equal(z[:32], first)                                            # block 0 = one sampler call


def test_default_block_is_a_capped_power_of_two():
    """Test that the default block is a power of two near 2^21 tokens on CPU, within its caps."""
    assert default_block(256, 65) == 8192
    assert default_block(16, 65) == 2 ** 14                                      # MAX_BLOCK
    assert default_block(256, 2000) == 2048                                      # block x N <= 2^22
    assert default_block(10 ** 7) == 1
    for T in (3, 100, 1000):
        b = default_block(T, 65)
        assert b & (b - 1) == 0


def test_block_sampler_rejects_bad_input():
    """Test that bad batch and block sizes raise PopgradError naming them."""
    model = uniform_bigram_trigger_model(4, 6, 1)
    with pytest.raises(PopgradError, match="block"):
        model_c_batches(model, block=0, device="cpu")
    with pytest.raises(PopgradError, match="batch"):
        model_c_batches(model, device="cpu").next(0)
    with pytest.raises(PopgradError, match="model"):
        model_d_batches(model)


def test_compiled_positions_kernel_gives_the_torch_loop_sequences(monkeypatch):
    """Test that the compiled kernels (numerics/ckernel.py: positions loop, distinct triggers) and
    the torch code of sample_model_c give identical z, q, o from the same seed, including in a strided
    block buffer (rows of a wider (T, cap) storage)."""
    from popgrad.numerics.ckernel import positions_kernel

    if positions_kernel() is None:
        pytest.skip("no compiled kernel here (no C compiler, or POPGRAD_SAMPLER_KERNEL=torch)")
    model = bigram_trigger_model(T=40, K=5)
    assert model.random_triggers
    sampler = model_c_sampler(model, "cpu")
    fused = [t.clone() for t in sample_model_c(sampler, 700, make_generator(2))]
    wide = torch.full((40, 1000), -7, dtype=torch.int32)
    strided = sample_model_c(sampler, 700, make_generator(2), out=wide[:, 100:800])[0]
    monkeypatch.setenv("POPGRAD_SAMPLER_KERNEL", "torch")
    assert positions_kernel() is None
    loop = sample_model_c(sampler, 700, make_generator(2))
    assert all(torch.equal(a, b) for a, b in zip(fused, loop)) and torch.equal(strided, loop[0])
    assert (wide[:, :100] == -7).all() and (wide[:, 800:] == -7).all()


def test_compiled_kernel_threads_do_not_change_the_sequences():
    """Test that the compiled positions loop gives the same sequences on 1 and on 3 threads."""
    sampler = model_c_sampler(bigram_trigger_model(T=12, K=5), "cpu")
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = sample_model_c(sampler, 3500, make_generator(4))[0].clone()
        torch.set_num_threads(3)
        three = sample_model_c(sampler, 3500, make_generator(4))[0]
    finally:
        torch.set_num_threads(old)
    assert torch.equal(one, three) and torch.get_num_threads() == old


# ----------------------------------------------------------------------------- popgrad bench (contract, not timings)
def test_bench_quick_json_reports_every_batch_and_thread_count(capsys):
    """Test the `popgrad bench --json` contract on a tiny quick run: per batch size a reference
    row then one row per thread count, each with median and min-max of tokens/s and of the
    ratio, the block, the copy-bandwidth limit; machine cores and load averages; the definition."""
    import json

    from popgrad.cli import main

    code = main(["bench", "--quick", "--T", "16", "--batch", "4,24", "--threads", "1,2", "--block", "16",
                 "--device", "cpu", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    data = json.loads(out.out)
    rows = data["rows"]
    assert [(r["what"][:5], r["batch"], r["threads"]) for r in rows] == [
        ("refer", 4, 1), ("block", 4, 1), ("block", 4, 2), ("refer", 24, 1), ("block", 24, 1), ("block", 24, 2)]
    for r in rows:
        assert r["rounds"] == 2 and r["tokens_per_s_min"] <= r["tokens_per_s"] <= r["tokens_per_s_max"]
        assert r["ratio_min"] <= r["ratio_vs_reference"] <= r["ratio_max"]
    fast = [r for r in rows if r["what"] == "block sampler"]
    assert all(r["block"] == 16 and r["limit_tokens_per_s"] > 0 and r["first_batch_ms"] > 0 for r in fast)
    assert [r["batches_per_round"] for r in fast] == [4, 4, 1, 1] and fast[2]["blocks_per_round"] == 2
    machine = data["machine"]
    assert machine["cpu_cores"] >= 1 and len(machine["load_average_start"]) == 3
    assert machine["output_bytes_per_token"] == pytest.approx(4 + 16 * 5 / 16)
    assert "refill" in data["definition"] and "median" in data["definition"]


@pytest.mark.parametrize("argv", [["bench", "--batch", "0"], ["bench", "--rounds", "101"],
                                  ["bench", "--threads", "100000"], ["bench", "--batch", "x"]])
def test_bench_refuses_bad_arguments(argv, capsys):
    """Test that bad bench arguments exit 2 with one line on stderr."""
    from popgrad.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:                  # argparse type errors
        code = exc.code
    assert code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_block_sampler_on_cuda_is_batch_size_invariant():
    """Test the block sampler on CUDA: same sequences across batch sizes, triggers followed by outputs."""
    model = bigram_trigger_model(T=32, K=5)
    a = _drawn(model_c_batches(model, seed=1, block=256, device="cuda"), [32, 200, 280])
    b = _drawn(model_c_batches(model, seed=1, block=256, device="cuda"), [512])
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and a[0].device.type == "cuda"
    z, q, o = (t.long().cpu() for t in a)
    for k in range(model.K):
        hit = z[:, :-1] == q[:, k:k + 1]
        assert torch.equal(z[:, 1:][hit], o[:, k:k + 1].expand_as(hit)[hit])
