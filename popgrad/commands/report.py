"""`popgrad report`: run every claim once and write the verification report (markdown + figures)."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import popgrad
from popgrad import refs, registry, report
from popgrad.cliutil import check_output_dir, check_output_file, progress, write_text_file
from popgrad.commands.claims import claim_rows
from popgrad.errors import PopgradError

NAME = "report"
HELP = "run the claims and write a verification report (summary, errata, equation map, figures)"
DESCRIPTION = ("Run every registered claim once and write a markdown report: counts per verdict, each claim's "
               "measured error or fitted rate against its tolerance with links to the code and its check, the "
               "errata recorded in paper_refs/, the equation map, and figures (written to --figures).")


def _out_path(text: str) -> Path:
    if not text.strip() or not text.endswith(".md"):
        raise PopgradError(f"--out must be a markdown file name ending in .md, got {text!r}")
    return check_output_file(text, "--out")


def _figures_dir(text: str | None, out: Path) -> Path:
    if text is None:
        return check_output_dir(out.with_name(out.stem + "_figures"), "--out (its figures folder)")
    if not text.strip() or not Path(text).is_dir():
        raise PopgradError(f"--figures must be an existing folder, got {text!r}")
    return check_output_dir(text, "--figures")


def add_arguments(p):
    p.add_argument("--out", metavar="FILE.md", default="popgrad_report.md",
                   help="where to write the report (default: popgrad_report.md)")
    p.add_argument("--figures", metavar="DIR",
                   help="existing folder for the figures (default: FILE_figures/ beside --out, created)")
    p.add_argument("--fast", action="store_true", help="skip claims marked slow (listed as 'not run')")
    p.add_argument("-k", "--select", metavar="TEXT", help="only claims whose id contains TEXT")


def _selected_claims(args):
    try:
        claims = registry.all_claims()
    except PopgradError:
        raise
    except Exception as exc:  # a claim module that does not import: one line, not a traceback
        raise PopgradError(f"loading the claim registry failed: {type(exc).__name__}: {exc}") from None
    if args.select is not None:
        if not args.select.strip():
            raise PopgradError("--select must be a non-empty part of a claim id")
        claims = [c for c in claims if args.select in c.id]
        if not claims:
            raise PopgradError(f"--select {args.select!r} matches no claim id")
    return claims


def run_rows(claims, fast: bool) -> list[dict]:
    """One row per claim; slow claims under --fast are 'not run', a claim that raises is 'error'."""
    rows = []
    for claim in claims:
        base = {"claim": claim.id, "where": claim.where, "code": list(claim.code), "tolerance_text": claim.tolerance,
                "error": None, "tolerance": None, "rate": "", "seconds": 0.0}
        if fast and claim.slow:
            rows.append({**base, "verdict": "not run", "note": "slow claim skipped by --fast"})
            continue
        try:
            rows += claim_rows([claim], show_progress=False)
        except Exception as exc:
            rows.append({**base, "verdict": "error", "note": f"{type(exc).__name__}: {exc}"})
    return rows


def _index():
    try:
        return refs.load_entries(), ""
    except PopgradError as exc:
        return [], str(exc)


def _header(args, rows, seconds: float) -> str:
    """One line: versions, date, what was run and how long it took."""
    import torch

    return (f"popgrad {popgrad.__version__}, torch {torch.__version__}, python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}; {len(rows)} claims"
            + (" (--fast: slow claims not run)" if args.fast else "")
            + (f" matching {args.select!r}" if args.select else "") + f"; {seconds:.0f} s.")


def run(args) -> int:
    out = _out_path(args.out)
    fig_dir = _figures_dir(args.figures, out)
    claims = _selected_claims(args)
    start = time.perf_counter()
    rows = run_rows(progress(claims, total=len(claims), desc="report"), args.fast)
    entries, index_error = _index()
    problems = None if index_error else refs.consistency_problems(entries, [c.id for c in registry.all_claims()])
    try:
        figures = report.make_figures(rows, fig_dir, fast=args.fast)
    except OSError as exc:               # the folder went away or filled up after validation
        raise PopgradError(f"figures: cannot write in {str(fig_dir)!r}: {exc.strerror or exc}") from None
    header = _header(args, rows, time.perf_counter() - start)
    text = report.build_report(rows, entries, figures, out.parent.resolve(), problems=problems,
                               checks_of=report.checks_by_claim(entries), header=header, index_error=index_error)
    write_text_file(out, text, "--out")
    bad = [r for r in rows if r["verdict"] in ("fail", "error")]
    print(f"wrote {out} ({len(rows)} claims: " + ", ".join(
        f"{v} {sum(r['verdict'] == v for r in rows)}" for v in report.ROW_VERDICTS if any(r['verdict'] == v for r in rows))
        + f"; figures in {fig_dir}; {time.perf_counter() - start:.0f} s)")
    for f in figures:
        if f.missing:
            print(f"figure {f.name} not generated: {f.missing}", file=sys.stderr)
    return 1 if bad else 0
