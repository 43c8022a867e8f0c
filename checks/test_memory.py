"""Checks: the memory-recall probe (9) (Sec. 4) against a per-pair loop."""

from popgrad.registry import assert_claim


def test_memory_recall_eq9_matches_per_pair_loop():
    # Eq. (9): R = (1/n) sum_i 1{argmax_j' v_j'^T W u_i = target(i)}, on non-symmetric memories, square and not.
    assert_claim("memory.recall_eq9")
