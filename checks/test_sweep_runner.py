"""The execution layer returns the values of the math (claims in popgrad/claims/sweeps.py)."""

from popgrad.registry import assert_claim


def test_sweep_runner_values():
    # App. E (recall grid): cells run in a loop, in process, through the sweep runner and read back from its cache
    # give equal values, and every cell (seed, parameter value) has its own cache key.
    assert_claim("sweep.runner_values")
