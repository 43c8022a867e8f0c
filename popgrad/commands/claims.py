"""`popgrad claims`: run every registered claim and print its verdict."""

from __future__ import annotations

from popgrad import registry
from popgrad.cliutil import add_output_options, emit
from popgrad.errors import PopgradError
from popgrad.registry import claim_rows  # noqa: F401 (re-export: `popgrad report` imports it from here)

NAME = "claims"
HELP = "run the paper's claims and print verdicts (exact / approx with rate / erratum / fail)"
COLUMNS = ("claim", "where", "compared", "error", "tolerance", "verdict", "rate", "value", "note", "seconds")


def add_arguments(p):
    p.add_argument("-k", "--select", metavar="TEXT", help="only claims whose id contains TEXT")
    p.add_argument("--list", action="store_true", help="list claim ids and statements without running them")
    p.add_argument("--fast", action="store_true", help="skip claims marked slow")
    add_output_options(p, plot=False)


def run(args) -> int:
    claims = registry.all_claims()
    if args.select:
        claims = [c for c in claims if args.select in c.id]
        if not claims:
            raise PopgradError(f"--select {args.select!r} matches no claim id")
    if args.fast:
        claims = [c for c in claims if not c.slow]
    if args.list:
        rows = [{"claim": c.id, "where": c.where, "kind": c.kind, "statement": c.statement} for c in claims]
        emit(rows, ("claim", "where", "kind", "statement"), args)
        return 0
    rows = claim_rows(claims)
    emit(rows, COLUMNS, args, title="popgrad claims")
    return 0 if all(r["verdict"] != "fail" for r in rows) else 1
