"""Checks: the memory-recall probe (9) (Sec. 4) against a per-pair loop."""

from popgrad.registry import assert_claim


def test_memory_recall_eq9_matches_per_pair_loop():
    # Eq. (9): R = (1/n) sum_i 1{argmax_j' v_j'^T W u_i = target(i)}, on non-symmetric memories, square and not.
    assert_claim("memory.recall_eq9")


def test_memory_helpers_exact():
    # unique_argmax_hits (a tie at the max misses; valid mask), memory_scores, eq. (7) targets (Phi_1 = W_O^1 W_V^1,
    # W_K^1 targets 1..T-1), embeddings N(0, 1/d) and the size checks equal per-entry loops.
    assert_claim("memory.helpers_exact")


def test_memory_concentration_bounds():
    # App. A's bounds = the optimized Chernoff bounds (brentq on the rate functions), the Gram bounds split delta
    # over n + n (n - 1) / 2 events, and guaranteed_recall_dim is the smallest d with the recall margin.
    assert_claim("memory.concentration_bounds")
