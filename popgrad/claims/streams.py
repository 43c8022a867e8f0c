"""Random streams of the Monte-Carlo samplers (Section 3's model C, App. B.3's model D).

streams.block_sampler    the block sampler hands out, whatever the batch sizes, exactly the sequences of
                         successive whole-block draws from one generator, and no sequence repeats across
                         batches, blocks or seeds
streams.compiled_kernel  the compiled positions loop and distinct-trigger kernel give the torch loop's
                         sequences (on 1 and 2 threads), and the sampler follows the law of the
                         per-token reference sampler of Section 3 (chi-square homogeneity)
"""

from __future__ import annotations

import os

import numpy as np
import torch
from scipy import stats

from popgrad.data import SecondOccurrenceModel, bigram_trigger_model
from popgrad.numerics import samplers as S
from popgrad.numerics.ckernel import positions_kernel
from popgrad.numerics.reference_sampler import reference_batch
from popgrad.registry import Claim, Measurement, register

SIZES = (1, 37, 64, 200, 5, 129, 76)          # batch sizes smaller than, equal to and larger than the block
BLOCK = 64
P_MIN = 1e-3                                  # chi-square p-values below this fail (fixed seeds: deterministic)


def _take(draw, sizes):
    """The batches of `sizes` from a BlockSampler, cloned (they are views) and concatenated per field."""
    parts = [tuple(t.clone() for t in draw.next(b)) for b in sizes]
    return tuple(torch.cat(col) for col in zip(*parts))


def whole_blocks(sample, n, block, seed):
    """Successive whole blocks `sample(block, gen)` from one generator of `seed`, cut to n sequences."""
    gen = S.make_generator(seed)
    parts = [tuple(t.clone() for t in sample(block, gen)) for _ in range(-(-n // block))]
    return tuple(torch.cat(col)[:n] for col in zip(*parts))


def repeated_rows(*zs) -> int:
    """How many sequences (rows of the (n_i, T) arrays, together) equal an earlier one, by a set of tuples."""
    seen, repeats = set(), 0
    for z in zs:
        for row in z.tolist():
            key = tuple(row)
            repeats += key in seen
            seen.add(key)
    return repeats


def measure_block_sampler() -> Measurement:
    """Model C and model D: the stream equals whole-block draws; no repeated sequence across batches, blocks, seeds."""
    n = sum(SIZES)
    model_c = bigram_trigger_model(T=16, K=3)
    sampler = S.model_c_sampler(model_c, "cpu")
    model_d = SecondOccurrenceModel(8, 16)
    mismatch, details = 0, {}
    for name, draw, sample in (
            ("model C", lambda seed: S.model_c_batches(sampler, seed=seed, block=BLOCK),
             lambda b, g: S.sample_model_c(sampler, b, g)),
            ("model D", lambda seed: S.model_d_batches(model_d, seed=seed, block=BLOCK, device="cpu"),
             lambda b, g: S.sample_model_d(model_d, b, g))):
        got = _take(draw(11), SIZES)
        want = whole_blocks(sample, n, BLOCK, 11)
        bad = sum(int((a.long() != b.long()).any(dim=tuple(range(1, a.dim()))).sum()) for a, b in zip(got, want))
        other = _take(draw(12), (n,))[0]
        blocks = [got[0][i:i + BLOCK] for i in range(0, n, BLOCK)]
        reps = repeated_rows(*blocks, other)
        equal_tokens = max(float((blocks[i] == blocks[i + 1][:len(blocks[i])]).double().mean())
                           for i in range(len(blocks) - 2))
        details[name] = {"sequences": n, "blocks": len(blocks), "mismatched_sequences": bad,
                         "repeated_sequences": reps, "max_equal_token_fraction_next_block": equal_tokens}
        mismatch += bad + reps
    return Measurement(float(mismatch), 0.0, "exact",
                       note=(f"{n} sequences in batches {SIZES} from blocks of {BLOCK}, model C (Shakespeare, T=16, K=3) "
                             f"and model D (N=8, T=16): sequences differing from whole-block draws + sequences repeated "
                             f"across batches, blocks and a second seed = {mismatch}; equal tokens between successive "
                             "blocks: " + ", ".join(f"{k} {v['max_equal_token_fraction_next_block']:.3f}"
                                                    for k, v in details.items())),
                       details=details)


def _with_torch_loop(fn):
    """fn() with the compiled kernels switched off (POPGRAD_SAMPLER_KERNEL=torch), restored after."""
    old = os.environ.get("POPGRAD_SAMPLER_KERNEL")
    os.environ["POPGRAD_SAMPLER_KERNEL"] = "torch"
    try:
        return fn()
    finally:
        if old is None:
            del os.environ["POPGRAD_SAMPLER_KERNEL"]
        else:
            os.environ["POPGRAD_SAMPLER_KERNEL"] = old


def _on_threads(n, fn):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(old)


def homogeneity(a: np.ndarray, b: np.ndarray, min_count: int = 10) -> float:
    """p-value of a chi-square homogeneity test of two count vectors (bins rarer than min_count pooled)."""
    order = np.argsort(a + b)
    a, b = a[order], b[order]
    small = np.cumsum(a + b) < 2 * min_count
    table = np.array([[a[small].sum(), *a[~small]], [b[small].sum(), *b[~small]]])
    return float(stats.chi2_contingency(table[:, table.sum(0) > 0])[1])


def law_statistics(z, q, N):
    """Counts: first token, all tokens, first trigger, and the successor of the commonest free token (N bins each)."""
    z, q = np.asarray(z, dtype=np.int64), np.asarray(q, dtype=np.int64)
    prev, nxt = z[:, :-1], z[:, 1:]
    free = ~(prev[:, :, None] == q[:, None, :]).any(-1)
    common = int(np.bincount(z.ravel(), minlength=N).argmax())
    return {"first token": np.bincount(z[:, 0], minlength=N), "tokens": np.bincount(z.ravel(), minlength=N),
            "first trigger": np.bincount(q[:, 0], minlength=N),
            "successor of the commonest free token": np.bincount(nxt[(prev == common) & free], minlength=N)}


def trigger_rule_violations(z, q, o) -> int:
    """Section 3's rule z_{t+1} = o_k after z_t = q_k: the number of trigger occurrences not followed by their output."""
    z, q, o = (np.asarray(a, dtype=np.int64) for a in (z, q, o))
    bad = 0
    for k in range(q.shape[1]):
        hit = z[:, :-1] == q[:, k:k + 1]
        bad += int((z[:, 1:] != o[:, k:k + 1])[hit].sum())
    return bad


def measure_compiled_kernel() -> Measurement:
    """Compiled vs torch loop (identical sequences, 1 and 2 threads); the sampler vs the reference sampler (law)."""
    if positions_kernel() is None:
        return Measurement(float("inf"), 0.0, "exact",
                           note="no compiled kernel here (no C compiler, or POPGRAD_SAMPLER_KERNEL=torch): not checked")
    mismatch = 0
    for T, K, triggers, B in ((24, 5, "random", 2500), (12, 2, "frequent", 500)):   # B >= 2048: 2 kernel threads
        sampler = S.model_c_sampler(bigram_trigger_model(T=T, K=K, triggers=triggers), "cpu")
        draw = lambda: [t.clone() for t in S.sample_model_c(sampler, B, S.make_generator(T))]
        compiled = [_on_threads(n, draw) for n in (1, 2)]
        loop = _with_torch_loop(draw)
        mismatch += sum(int((a.long() != b.long()).sum()) for c in compiled for a, b in zip(c, loop))
    model = bigram_trigger_model(T=12, K=2)
    n = 3000
    z, q, o = S.sample_model_c(S.model_c_sampler(model, "cpu"), n, S.make_generator(5))
    rz, rq, ro = reference_batch(model, n, seed=5)
    fast, ref = law_statistics(z, q, model.N), law_statistics(rz, rq, model.N)
    rule = trigger_rule_violations(z, q, o) + trigger_rule_violations(rz, rq, ro)      # must be exactly 0
    mismatch += rule
    pvals = {k: homogeneity(fast[k], ref[k]) for k in fast}
    ok = min(pvals.values()) >= P_MIN
    return Measurement(float(mismatch) if ok else float("inf"), 0.0, "exact",
                       note=(f"compiled vs torch loop: {mismatch - rule} differing entries (z, q, o; random and fixed "
                             f"triggers; 1 and 2 threads); trigger rule broken {rule} times (both samplers); vs the reference sampler ({n} sequences each, T=12, K=2), chi-square "
                             "p-values " + ", ".join(f"{k} {v:.2f}" for k, v in pvals.items()) + f" (fail below {P_MIN:g})"),
                       details={"mismatched_entries": mismatch - rule, "trigger_rule_violations": rule, "p_values": pvals})


register(Claim(
    id="streams.block_sampler",
    statement="Batches of any size from the block sampler are the successive whole-block draws of one generator, "
              "and no sequence repeats across batches, blocks or seeds",
    where="Section 3 (model C), App. B.3 (model D): i.i.d. sequences for the Monte-Carlo estimates",
    compared="BlockSampler.next over mixed batch sizes vs sample_model_c / sample_model_d called block by block; a set "
             "of the sequences seen (repeats); shared: the model and the seed",
    kind="exact", tolerance="0 differing and 0 repeated sequences", measure=measure_block_sampler,
    code=("popgrad.numerics.samplers.BlockSampler", "popgrad.numerics.samplers.model_c_batches",
          "popgrad.numerics.samplers.model_d_batches"),
    sides=(("popgrad.numerics.samplers.BlockSampler",),
           ("popgrad.numerics.samplers.sample_model_c", "popgrad.numerics.samplers.sample_model_d",
            "popgrad.claims.streams.whole_blocks", "popgrad.claims.streams.repeated_rows"))))
register(Claim(
    id="streams.compiled_kernel",
    statement="The compiled sampler kernels give the torch loop's sequences, and the fast sampler draws Section 3's "
              "model C like the per-token reference sampler",
    where="Section 3 (model C); numerics/ckernel.py",
    compared="sample_model_c with the compiled kernels (1 and 2 threads) vs with the torch loop (same generator), and vs "
             "reference_batch (numpy, per token) by chi-square homogeneity; shared: the model",
    kind="exact", tolerance=f"0 differing entries; every p-value >= {P_MIN:g}", measure=measure_compiled_kernel,
    code=("popgrad.numerics.ckernel.run_positions", "popgrad.numerics.ckernel.first_distinct",
          "popgrad.numerics.samplers.sample_model_c", "popgrad.numerics.reference_sampler.reference_batch"),
    sides=(("popgrad.numerics.ckernel.run_positions", "popgrad.numerics.ckernel.first_distinct"),
           ("popgrad.numerics.reference_sampler.reference_sequence",))))
