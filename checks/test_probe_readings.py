"""Training probes on weights that separate every reading (claims in popgrad/claims/probe_readings.py)."""

from popgrad.registry import assert_claim


def test_training_probes_separate():
    # Sec. 5 eq. (9), App. E probes: on weights where the layer, the reading (eq. (9) vs the paper's code) and the
    # positions (t < cutoff vs later) each change the value, every recall probe equals a loop over scalar scores.
    assert_claim("training.probes_separate")


def test_training_loss_split():
    # Sec. 5 / App. E: in-context accuracy and loss, the other tokens' loss and the global loss are taken over the
    # right positions (trigger seen earlier; t <= T-2), as a per-sequence loop on the public code's model gives.
    assert_claim("training.loss_split")


def test_training_onestep_counterparts():
    # Sec. 5 / App. E cosine probes: the one-step W_K^2, W_K^1 counterparts are minus autograd of the public code's
    # in-context loss at zero over the same batches, and a run with onestep_batches > 0 reports their cosines.
    assert_claim("training.onestep_counterparts")
