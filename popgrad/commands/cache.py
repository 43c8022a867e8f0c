"""`popgrad cache list|verify|sources|clear DIR`: inspect and empty the result cache of the grid commands (--cache DIR)."""

from __future__ import annotations

import argparse
import os

from popgrad.cliutil import add_output_options, emit
from popgrad.errors import PopgradError
import popgrad
from popgrad.sweep import cache_files, cache_sources, inspect_file, source_hash

NAME = "cache"
HELP = "list, verify or clear a result cache (the --cache DIR of the grid commands)"
DESCRIPTION = ("list: one row per cell file with its status: ok (read by this popgrad), stale (written by other "
               "popgrad sources: never read, its cell is recomputed) or bad (unreadable, edited: checksum "
               "mismatch, or misnamed). verify: the same, exit 1 if any file is bad. sources: one row per popgrad "
               "version and source hash that wrote cells (what --reuse-other-sources can read). clear: remove "
               "the cell files (only the stale and bad ones with --stale).")
COLUMNS = ("file", "status", "fn", "label", "seed", "written", "seconds", "why")
SOURCE_COLUMNS = ("popgrad", "source", "cells", "this_code")


def existing_dir(text: str) -> str:
    if not text or not text.strip():
        raise argparse.ArgumentTypeError("expected a cache directory, got an empty string")
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return text


def add_arguments(p):
    p.add_argument("action", choices=("list", "verify", "sources", "clear"), help="what to do with the cache")
    p.add_argument("directory", metavar="DIR", type=existing_dir, help="the cache directory (--cache DIR of a sweep)")
    p.add_argument("--stale", action="store_true", help="clear: remove only stale and bad files")
    add_output_options(p, plot=False)


def cache_rows(directory: str) -> list[dict]:
    """One row per cell file of `directory`: its status and what it holds."""
    rows = []
    for path in cache_files(directory):
        status, record, why = inspect_file(path)
        record = record or {}
        rows.append({"file": os.path.basename(path), "status": status, "fn": record.get("fn"),
                     "label": record.get("label"), "seed": record.get("seed"), "written": record.get("written"),
                     "seconds": record.get("seconds"), "why": why})
    return rows


def source_rows(directory: str) -> list[dict]:
    """One row per (popgrad version, source hash) with cells in `directory`, most cells first."""
    counts = cache_sources(directory)
    here = (popgrad.__version__, source_hash())
    return [{"popgrad": code[0], "source": code[1], "cells": n, "this_code": code == here}
            for code, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


def _summary(directory: str, rows: list[dict]) -> str:
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "stale", "bad")}
    return f"{directory}: {len(rows)} cell files ({counts['ok']} ok, {counts['stale']} stale, {counts['bad']} bad)"


def run(args) -> int:
    directory = args.directory
    if args.action == "clear" and not os.access(directory, os.W_OK | os.X_OK):
        raise PopgradError(f"DIR: cannot remove files from {directory!r}: not writable")
    if args.stale and args.action != "clear":
        raise PopgradError("--stale: only with `popgrad cache clear`")
    if args.action == "sources":
        rows = source_rows(directory)
        title = f"{directory}: cells by the popgrad sources that wrote them (this code: {source_hash()[:12]})"
        emit(rows, SOURCE_COLUMNS, args, title=title)
        return 0
    rows = cache_rows(directory)
    if args.action in ("list", "verify"):
        emit(rows, COLUMNS, args, title=_summary(directory, rows), extra={"summary": _summary(directory, rows)})
        return 1 if args.action == "verify" and any(r["status"] == "bad" for r in rows) else 0
    removed = [r for r in rows if not args.stale or r["status"] != "ok"]
    leftovers = [n for n in os.listdir(directory) if n.startswith(".tmp-") and n.endswith(".json")]
    for name in [r["file"] for r in removed] + leftovers:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise PopgradError(f"DIR: cannot remove {name!r} from {directory!r}: {exc.strerror}") from None
    print(f"removed {len(removed)} cell files from {directory} (kept {len(rows) - len(removed)})")
    return 0
