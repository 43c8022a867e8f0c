"""Test that `popgrad dynamics` says when seeds run out of their step budget, and its default budget."""

import json

from popgrad.cli import build_parser, main
from popgrad.commands import dynamics as cmd

SMALL = ["dynamics", "--N", "5", "--T", "5", "--d", "16", "--k", "2", "--n", "64", "--n-eval", "64",
         "--seeds", "2", "--etas", "5:20:20", "--schedule", "joint"]


def test_seeds_out_of_budget_are_counted_in_the_table_note_and_the_json(capsys):
    """Test that with 2 steps no seed reaches accuracy 0.999: a note line names the 2 seeds and the budget, and
    the JSON's summary rows carry out_of_budget = 2 with the seeds, budget_steps and budget_notes."""
    assert main(SMALL + ["--thresholds", "0.999"]) == 0
    text = capsys.readouterr().out
    assert "note: 2 of 2 seeds (joint, etas 5:20:20) ran out of the budget (--k 2 x --rounds 1: 2 steps)" in text
    assert main(SMALL + ["--thresholds", "0.999", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    row = out["summary"][0]
    assert row["out_of_budget"] == 2 and row["out_of_budget_seeds"] == [0, 1] and row["reached"] == 0
    assert out["budget_steps"] == 2 and len(out["budget_notes"]) == 1


def test_no_note_when_every_seed_reaches_and_stopped_seeds_are_not_out_of_budget(capsys):
    """Test that a threshold every seed reaches at step 0 (accuracy >= 1e-9) gives no note and out_of_budget 0."""
    assert main(SMALL + ["--thresholds", "0.000000001", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"][0]["out_of_budget"] == 0 and out["budget_notes"] == []


def test_summary_counts_only_seeds_that_ran_every_step():
    """Test that an unreached seed whose curve ends before the budget (interrupted) is not out of budget."""
    rows = [{"etas": "1:1:1", "schedule": "joint", "seed": s, "step": t, "accuracy": 0.1, "accuracy_se": 0.0,
             "n_eval": 10, "steps_W_O2": t, "steps_W_K2": t, "steps_W_K1": t}
            for s, last in ((0, 5), (1, 3)) for t in range(last + 1)]
    row = cmd.summarize(rows, [0.9], budget=5)[0]
    assert row["out_of_budget"] == 1 and row["out_of_budget_seeds"] == [0]


def test_default_budget_reaches_the_documented_counts():
    """Test the default --k: 200 steps per layer, above the slowest documented count at the default step sizes
    (113 joint steps; 492 alternating steps = 164 per layer, docs/dynamics.md)."""
    args = build_parser().parse_args(["dynamics"])
    assert args.k == cmd.DEFAULT_K == 200 >= max(113, -(-492 // 3))
