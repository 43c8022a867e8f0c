"""Checks of associative memories as the talk states them (claims in popgrad/claims/memories.py)."""

import os

import pytest

from popgrad.registry import assert_claim

SLOW = pytest.mark.skipif(os.environ.get("POPGRAD_SLOW") != "1", reason="slow (minutes on CPU): run with POPGRAD_SLOW=1")


def test_memories_readout_moments_exact():
    # Talk, "Capacity: Intuition": the readout gamma_{z,y} = u_y^T W e_z has mean 1{y = f(z)} and the exact
    # variances (Isserlis) for y = f(z) and y != f(z), and zero covariance across outputs, equal as rationals
    # to a brute-force expectation over coordinate monomials.
    assert_claim("memories.readout_moments_exact")


def test_memories_readout_moments_mc():
    # Talk, "Capacity: Intuition": the exact readout mean and variance match Monte-Carlo readouts within 4 se.
    assert_claim("memories.readout_moments_mc")


def test_memories_predicted_capacity():
    # Talk, "Capacity: Intuition": the capacity predicted from the exact moments (independent Gaussian readouts)
    # is within a factor 1.3 of the measured capacity at d = 256 (injective, mod 2).
    assert_claim("memories.predicted_capacity")


def test_memories_factorized_step_exact():
    # Talk, "Capacity ~ number of parameters": the one-step factorized memory W_1^T W_2 equals its closed form
    # W_1^T W_1 (sum u_z e_z^T - u_bar s^T) (autograd through W_1).
    assert_claim("memories.factorized_step_exact")


def test_memories_factorized_capacity_ci():
    # Talk, "Capacity ~ number of parameters": the factorized capacity grows like m^1 at d = 64.
    assert_claim("memories.factorized_capacity_ci")


@pytest.mark.slow
@SLOW
def test_memories_factorized_capacity():
    # Talk, "Capacity ~ number of parameters": the factorized capacity grows like m^1 at d = 256 (slow).
    assert_claim("memories.factorized_capacity")


def test_memories_infinite_memory_mc():
    # Hutter 2021 (talk, heavy-tailed data): sum_z p(z) (1 - p(z))^n is the expected mass of the unseen tokens.
    assert_claim("memories.infinite_memory_mc")


def test_memories_hutter_exponent():
    # Hutter 2021 (talk): the infinite-memory error decays like n^-(alpha-1)/alpha.
    assert_claim("memories.hutter_exponent")


def test_memories_zipf_error_shortcut():
    # SPEC §8: the chunked one-step memory error (exact law of the max over unstored outputs, sampled tail
    # queries) matches brute-force scoring of every (z, y) within 4 se.
    assert_claim("memories.zipf_error_shortcut")


def test_memories_opt_token_space_exact():
    # Lemma 1, eq. (6): population gradient descent on the token coefficients equals gradient descent on W.
    assert_claim("memories.opt_token_space_exact")


def test_memories_opt_margin_recursion():
    # Talk, "Optimization with imbalance": with orthonormal embeddings each margin follows a scalar recursion.
    assert_claim("memories.opt_margin_recursion")


def test_memories_opt_log_margins():
    # Talk, "Optimization with imbalance": with orthonormal embeddings margins grow like ln t for every step.
    assert_claim("memories.opt_log_margins")


def test_memories_opt_large_batch():
    # Talk, "Scaling laws with optimization algorithms": one large-batch step stores q ~ p.
    assert_claim("memories.opt_large_batch")


def test_memories_opt_sgd_flat():
    # Talk, "Scaling laws with optimization algorithms": batch-1 SGD with a large step stores q ~ 1.
    assert_claim("memories.opt_sgd_flat")


def test_memories_opt_large_steps_oscillate():
    # Talk, "Optimization with imbalance": large steps oscillate with correlated embeddings yet reach accuracy 1
    # sooner.
    assert_claim("memories.opt_large_steps_oscillate")


def test_memories_opt_overoptimization():
    # Talk, "Optimization with imbalance": under-parameterized, training on with a large step loses weighted
    # accuracy from its peak; a small step does not.
    assert_claim("memories.opt_overoptimization")


def test_memories_zipf_counts_d():
    # Cabannes, Dohmatob, Bietti 2024 (talk, finite capacity, 1): with q = counts the z mod 2 error decays like
    # d^-(alpha-1)/(2 alpha).
    assert_claim("memories.zipf_counts_d")


def test_memories_zipf_threshold_d():
    # Cabannes, Dohmatob, Bietti 2024 (talk, finite capacity, 3): with q = 1{among the k most frequent}, k tuned,
    # the z mod 2 error decays like d^-(alpha-1) and k stays a fraction of d ("at most d memories").
    assert_claim("memories.zipf_threshold_d")


def test_memories_zipf_seen_n():
    # Cabannes, Dohmatob, Bietti 2024 (talk, finite capacity, 2): with q = 1{seen} and enough capacity the error
    # decays like n^-(alpha-1)/alpha and equals the infinite-memory error.
    assert_claim("memories.zipf_seen_n")


def test_memories_zipf_counts_n():
    # Cabannes, Dohmatob, Bietti 2024 (talk, finite capacity, 1): with q = counts at d = 256 the n-term is
    # invisible; the error stays at the q = p error set by d.
    assert_claim("memories.zipf_counts_n")


@pytest.mark.slow
@SLOW
def test_memories_zipf_laws_full():
    # Cabannes, Dohmatob, Bietti 2024 (talk, finite capacity): every exponent of the docs' sweeps against the
    # informal theorem, both maps, alpha = 1.5, 2 (slow).
    assert_claim("memories.zipf_laws_full")


def test_memories_zipf_values_exact():
    # Every Zipf-memory number and `popgrad memories zipf/hutter` column (p, f, infinite-memory error, the schemes'
    # q with exactly k tokens at threshold k, k grid, theorem exponents, mean ± se and z, fitted exponents and
    # their intervals, chance floors) equals a plain-loop value on small fixed inputs.
    assert_claim("memories.zipf_values_exact")


def test_memories_zipf_error_competitors():
    # memory_error where only token 0 is stored: unstored-query miss rate 3/4 (M = 3: K - 1 other unstored outputs
    # compete) and 1/2 (M = 2: K unstored outputs against a stored target); se = binomial se of the query draws;
    # ties are misses; tail = 0 counts the unstored mass.
    assert_claim("memories.zipf_error_competitors")


def test_memories_readout_values_exact():
    # Readout moments, predicted recall (independent; union over N - 1 competitors; mod 2), predicted capacity and
    # the `popgrad memories moments` columns equal closed forms, scipy integration and a scan over N.
    assert_claim("memories.readout_values_exact")


def test_memories_optim_values_exact():
    # Every optimizer-regime number (population GD loss/accuracy/weighted accuracy/margins with ties as misses,
    # memory scheme, large-batch and batch-1 SGD iterates, margin recursion, sign changes, first reach) = a loop.
    assert_claim("memories.optim_values_exact")


def test_cli_memories_capacity_columns():
    # `popgrad memories hutter/zipf/moments` and `popgrad capacity --combine/--plan` (one subprocess): every printed
    # column (z, mc_se, error ± se, medians, chance floors, exponents, predicted capacities and variances; C ± se,
    # intervals, sampled C, exhaustive/sampled recall, local slopes, law fits with intervals, memory seeds) = loops.
    assert_claim("cli.memories_capacity_columns")
