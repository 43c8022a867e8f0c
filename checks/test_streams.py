"""Random streams of the samplers: the block sampler's stream, and the compiled kernel against the torch loop
and the per-token reference sampler."""

import pytest

from popgrad.numerics.ckernel import positions_kernel
from popgrad.registry import assert_claim


def test_streams_block_sampler():
    # Section 3 / App. B.3: batches of any size are the successive whole-block draws of one generator, and no
    # sequence repeats across batches, blocks or seeds (model C and model D).
    assert_claim("streams.block_sampler")


@pytest.mark.skipif(positions_kernel() is None, reason="no compiled sampler kernel here (no C compiler)")
def test_streams_compiled_kernel():
    # Section 3: the compiled kernels give the torch loop's sequences (1 and 2 threads), and the sampler's law
    # matches the per-token reference sampler (chi-square homogeneity, p >= 1e-3).
    assert_claim("streams.compiled_kernel")
