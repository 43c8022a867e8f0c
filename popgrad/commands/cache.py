"""`popgrad cache list|verify|clear DIR`: inspect and empty the result cache of the grid commands (--cache DIR)."""

from __future__ import annotations

import argparse
import os

from popgrad.cliutil import add_output_options, emit
from popgrad.errors import PopgradError
from popgrad.sweep import cache_files, inspect_file

NAME = "cache"
HELP = "list, verify or clear a result cache (the --cache DIR of the grid commands)"
DESCRIPTION = ("list: one row per cell file with its status: ok (read by this popgrad), stale (written by other "
               "popgrad sources: never read, its cell is recomputed) or bad (unreadable, edited: checksum "
               "mismatch, or misnamed). verify: the same, exit 1 if any file is bad. clear: remove the cell "
               "files (only the stale and bad ones with --stale).")
COLUMNS = ("file", "status", "fn", "label", "seed", "written", "seconds", "why")


def existing_dir(text: str) -> str:
    if not text or not text.strip():
        raise argparse.ArgumentTypeError("expected a cache directory, got an empty string")
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return text


def add_arguments(p):
    p.add_argument("action", choices=("list", "verify", "clear"), help="what to do with the cache")
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


def _summary(directory: str, rows: list[dict]) -> str:
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "stale", "bad")}
    return f"{directory}: {len(rows)} cell files ({counts['ok']} ok, {counts['stale']} stale, {counts['bad']} bad)"


def run(args) -> int:
    directory = args.directory
    if args.action == "clear" and not os.access(directory, os.W_OK | os.X_OK):
        raise PopgradError(f"DIR: cannot remove files from {directory!r}: not writable")
    if args.stale and args.action != "clear":
        raise PopgradError("--stale: only with `popgrad cache clear`")
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
