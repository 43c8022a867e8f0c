"""Checks of bfloat16 training (--precision bfloat16) against float32 (App. E trains in float32)."""

from popgrad.registry import assert_claim


def test_training_bfloat16_step():
    # One SGD step with bfloat16 matmuls is a bfloat16 rounding of the float32 lean step (loss and gradients).
    assert_claim("training.bfloat16_step")


def test_training_bfloat16_curves():
    # Training in bfloat16 gives the float32 probe curves within their seed-to-seed error (3 seeds, CI size).
    assert_claim("training.bfloat16_curves")


def test_precision_choice_branches():
    # docs/precision.md: every hardware branch (CUDA capability >= 8.0, CPU bf16 flags, auto's 1.1x margin, the
    # first round that decides, the timing cache key, cuda:N bounds) decides as a table written from the docs says.
    assert_claim("precision.choice_branches")


def test_training_autocast_step_fields():
    # App. E: the autograd step (bfloat16 reference path) without autocast returns the lean step's loss, n_loss, hits,
    # n, in-context loss sum and gradients at loss "in-context" and "all", on models C and D.
    assert_claim("training.autocast_step_fields")
