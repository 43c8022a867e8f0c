"""Resuming a training run (claims in popgrad/claims/checkpoint.py)."""

from popgrad.registry import assert_claim


def test_training_resume_refuses_mismatch():
    # App. E runs resumed with --resume: a checkpoint written with other settings is refused in one line naming
    # every differing setting (each field of TrainConfig in turn, and three at once); another device is accepted.
    assert_claim("training.resume_refuses_mismatch")
