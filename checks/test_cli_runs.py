"""Every user-facing command at its defaults through the CLI (claims in popgrad/claims/cli_runs.py)."""

from popgrad.registry import assert_claim


def test_cli_commands_at_defaults():
    # recall-table, scaling, capacity, train, dynamics, theorem3 at their defaults (sizes shrunk), through
    # `popgrad.cli.main --json`: means ± se, verdicts and exponents = numpy / scipy on their own per-seed output.
    assert_claim("cli.commands_at_defaults")
