"""Checks of bfloat16 training (--precision bfloat16) against float32 (App. E trains in float32)."""

from popgrad.registry import assert_claim


def test_training_bfloat16_step():
    # One SGD step with bfloat16 matmuls is a bfloat16 rounding of the float32 lean step (loss and gradients).
    assert_claim("training.bfloat16_step")


def test_training_bfloat16_curves():
    # Training in bfloat16 gives the float32 probe curves within their seed-to-seed error (3 seeds, CI size).
    assert_claim("training.bfloat16_curves")
