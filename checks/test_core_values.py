"""Checks of the helper numbers the dynamics, scaling, recall, bench, theorem3 and training commands print."""

from popgrad.registry import assert_claim


def test_core_dynamics_helpers_exact():
    # Theorem 3 dynamics: the k-run median range, first steps to an accuracy, schedules, step sizes, cosines,
    # distances and the count-agreement rule equal an enumeration / loops on fixed inputs.
    assert_claim("core.dynamics_helpers_exact")


def test_core_scaling_helpers_exact():
    # Figure 9 scaling: batch grid, first crossing, fitted and error exponents, sweep points, direction errors,
    # bench summaries and one-seed cells equal loops on fixed inputs.
    assert_claim("core.scaling_helpers_exact")


def test_core_theorem3_predictions():
    # Theorem 3, eq. (16), (24), B.3.3: the paper columns of `popgrad theorem3` equal exact rational sums.
    assert_claim("core.theorem3_predictions")


def test_core_training_helpers_exact():
    # App. E: freeze schedule at its boundary, trained matrices, Figure 5's trigger probe (ties are misses) and the
    # precision choices made without measuring equal loops and hand tables.
    assert_claim("core.training_helpers_exact")


def test_core_train_loop_exact():
    # Sec. 5 / App. E: five steps of the training loop (freezing, momentum, weight decay, probe rows) equal plain SGD
    # on the paper-structure model by autograd, float64.
    assert_claim("core.train_loop_exact")


def test_core_printed_formats_exact():
    # Output formats: 4 significant digits in [1e-3, 1e5), scientific outside, mean ± se at 3 decimals, an undefined se
    # (one seed) as n/a.
    assert_claim("core.printed_formats_exact")
