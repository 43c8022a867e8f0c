"""Test the verified capacity: the sampled crossing stepped down until the recall over every stored input passes."""

import json

from popgrad.cli import main
from popgrad.numerics.capacity_search import NestedMemory, exhaustive_estimate, search_capacity, verify_down


def test_reported_capacity_passes_exhaustively_and_sits_at_or_below_the_sampled_crossing():
    """Test C <= C_s, every verification but the last fails, steps of the search's resolution, and recall(C)
    recounted exhaustively on a fresh copy of the draw is the reported one and >= the threshold."""
    for seed in range(4):
        res = search_capacity("injective", 96, 0.99, seed=seed, queries=300, resolution=0.01)
        assert 0 < res.capacity <= res.sampled_capacity and res.lower <= res.capacity <= res.upper
        assert res.verifications[0].N == res.sampled_capacity and res.verifications[-1].N == res.capacity
        assert all(e.decided == -1 for e in res.verifications[:-1]) and res.verifications[-1].decided == 1
        for a, b in zip(res.verifications, res.verifications[1:]):
            assert a.N - b.N == max(1, int(0.01 * a.N))
        fresh = exhaustive_estimate(NestedMemory("injective", 96, res.memories, seed), res.capacity, 0.99)
        assert fresh.exhaustive and fresh.recall == res.exhaustive_recall >= 0.99


def test_verification_is_free_where_the_search_was_exhaustive_and_can_be_turned_off():
    """Test that an exhaustive search is its own verification (one entry, C = C_s) and verify=False keeps C_s."""
    res = search_capacity("injective", 32, 0.99, seed=0)
    assert res.capacity == res.sampled_capacity and len(res.verifications) == 1
    raw = search_capacity("injective", 96, 0.99, seed=1, queries=300, resolution=0.01, verify=False)
    assert raw.capacity == raw.sampled_capacity and raw.exhaustive_recall is None and not raw.verifications


def test_verify_down_steps_by_one_at_resolution_zero_until_a_pass():
    """Test that at threshold 1 and resolution 0 the step-down visits N, N - 1, ... and ends at the first pass
    (N = 1 always passes: one association has no competitor)."""
    mem = NestedMemory("injective", 2, 1, seed=0)
    out = verify_down(mem, 6, 1.0, 0.0)
    assert [e.N for e in out] == list(range(6, out[-1].N - 1, -1)) and out[-1].decided == 1
    assert all(e.decided == -1 for e in out[:-1])


def test_cli_json_reports_the_exhaustive_recall_at_C_for_each_d(capsys):
    """Test that `popgrad capacity --json` gives, per d, the exhaustive recall at C (>= threshold) beside the
    sampled crossing and its estimate, per seed in the grid and as the smallest over seeds in the row."""
    assert main(["capacity", "--maps", "injective", "--dims", "64,96", "--queries", "300", "--memory-seeds", "2",
                 "--threads", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for row in out["rows"]:
        assert row["injective_exhaustive_recall"] >= 0.99 and row["injective_sampled_C"]
        assert row["injective_sampled_recall"] is not None
    for g in out["grid"]:
        assert len(g["exhaustive_recalls"]) == 2 and min(g["exhaustive_recalls"]) >= 0.99
        assert all(c <= s for c, s in zip(g["capacities"], g["sampled_capacities"]))
