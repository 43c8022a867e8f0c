"""Shared pieces of the `popgrad` subcommands: argument types, output formats, progress.

Every command prints a markdown table (fixed row order) by default, or JSON with `--json`,
and can also write `--csv FILE`; commands with curves take `--plot FILE.png`. Plots read the
computed rows, never recompute them.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import io
import json
import math
import platform
import sys
import time
from typing import Sequence

import numpy as np

import popgrad
from popgrad.cells import jsonable, progress  # noqa: F401 (re-export: the commands import them from here)
from popgrad.errors import PopgradError
from popgrad.plotting import save_figure  # noqa: F401 (re-export: the commands import it from here)


# ----------------------------------------------------------------------------- argument types
def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    parse.__name__ = f"int>={minimum}"
    return parse


positive_int = _int_at_least(1)
int_at_least_2 = _int_at_least(2)
nonnegative_int = _int_at_least(0)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text!r}")
    return value


def split_list(text: str, what: str = "values") -> list[str]:
    """'a,b,c' -> ['a', 'b', 'c']; an empty list or an empty item ('16,,32', '16,') is refused."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what} with no empty item, got {text!r}")
    return parts


def int_list(text: str) -> list[int]:
    """'16,32,64' -> [16, 32, 64] (positive integers, at least one, no empty item)."""
    return [positive_int(p) for p in split_list(text, "positive integers")]


def float_list(text: str) -> list[float]:
    """'0.1,1,10' -> [0.1, 1.0, 10.0] (finite positive numbers, at least one, no empty item)."""
    return [positive_float(p) for p in split_list(text, "positive numbers")]


def output_file(text: str) -> str:
    """A path to write: non-empty, in an existing writable directory, not itself a directory (checked up front)."""
    import os

    if not text or not text.strip():
        raise argparse.ArgumentTypeError("expected a file path, got an empty string")
    parent = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text) or not os.path.isdir(parent):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: "
                                         f"{'it is a directory' if os.path.isdir(text) else 'no such directory'}")
    why = _cannot_write_in(parent)
    if why:
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {why}")
    return text


def strict_list_options(parser: argparse.ArgumentParser) -> None:
    """Refuse empty items ('16,,32', '16,') in every option whose default is a list, whatever parser
    its command gave it: the command's own parser then sees only well-formed lists."""
    for action in parser._actions:
        parse = action.type
        if parse is None or not isinstance(action.default, (list, tuple)) or getattr(parse, "strict_list", False):
            continue

        def strict(text, parse=parse):
            split_list(text)
            return parse(text)

        strict.__name__ = getattr(parse, "__name__", "list")
        strict.strict_list = True
        action.type = strict


def scheduler_address(text: str) -> str:
    """--scheduler: a Dask scheduler address, [tcp|tls|ws|wss|ucx]://host:port or host:port."""
    scheme, sep, rest = text.strip().rpartition("://")
    host, colon, port = rest.rpartition(":")
    if (sep and scheme not in ("tcp", "tls", "ws", "wss", "ucx")) or not colon or not host or not port.isdigit() \
            or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected a scheduler address like tcp://host:8786, got {text!r}")
    return text.strip()


# Formats matplotlib's Agg backend writes, by file extension (checked before any work; no matplotlib import).
PLOT_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp", "pgf")


def plot_file(text: str) -> str:
    """--plot FILE: a writable path whose extension names an image format matplotlib writes."""
    import os

    path = output_file(text)
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in PLOT_FORMATS:
        raise argparse.ArgumentTypeError(f"cannot tell an image format from {text!r}: end it in .png, .pdf or .svg "
                                         f"(or one of {', '.join('.' + f for f in PLOT_FORMATS[3:])})")
    return path


# ----------------------------------------------------------------------------- output locations
def _cannot_write_in(folder) -> str:
    """'' if a file can be created in `folder` (tried with a probe file, removed at once), else why not."""
    import os
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".popgrad-probe-")
    except OSError as exc:
        return f"folder {str(folder)!r} is not writable ({exc.strerror or exc})"
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass
    return ""


def check_output_file(path, option: str):
    """Validate a file a command will write, before it computes anything (PopgradError, one line)."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise PopgradError(f"{option}: {str(path)!r} is a folder, expected a file")
    parent = path.parent.resolve() if str(path.parent) else Path.cwd()
    if not parent.is_dir():
        raise PopgradError(f"{option}: folder {str(path.parent)!r} does not exist")
    why = _cannot_write_in(parent)
    if why:
        raise PopgradError(f"{option}: cannot write {str(path)!r}: {why}")
    return path


def check_output_dir(path, option: str):
    """Validate a folder a command will write into (existing, or to be created in a writable parent),
    before it computes anything; nothing is created here (PopgradError, one line)."""
    from pathlib import Path

    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise PopgradError(f"{option}: {str(path)!r} exists and is not a folder")
        folder = path
    else:
        folder = path.parent.resolve() if str(path.parent) else Path.cwd()
        if not folder.is_dir():
            raise PopgradError(f"{option}: cannot create {str(path)!r}: folder {str(path.parent)!r} does not exist")
    why = _cannot_write_in(folder)
    if why:
        raise PopgradError(f"{option}: cannot write in {str(path)!r}: {why}")
    return path


def write_text_file(path, text: str, option: str) -> None:
    """Write `text` to `path` whole or not at all (temporary file + rename); a failure is one PopgradError line."""
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".popgrad-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise PopgradError(f"{option}: cannot write {str(path)!r}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


# ----------------------------------------------------------------------------- output
def add_output_options(parser: argparse.ArgumentParser, plot: bool = True, plot_help: str | None = None) -> None:
    """--json, --csv FILE and (optionally) --plot FILE.png."""
    parser.add_argument("--json", action="store_true", help="print JSON (rows and run metadata) instead of markdown")
    parser.add_argument("--csv", metavar="FILE", type=output_file, help="also write the table as CSV to FILE")
    if plot:
        parser.add_argument("--plot", metavar="FILE.png", type=plot_file,
                            help=(plot_help or "also write a PNG plot to FILE.png") + " (the extension picks the format)")


def fmt_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        if 1e-3 <= abs(v) < 1e5:
            return f"{v:.4g}"
        return f"{v:.2e}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def is_se_column(column: str) -> bool:
    """Whether a column holds standard errors ('se', 'r1_se', 'acc se', 'mc_stderr')."""
    c = str(column).lower()
    return c == "se" or c.endswith(("_se", " se", "stderr"))


def fmt_cell(value, column: str) -> str:
    """`fmt_value`, except that an undefined standard error (one sample: NaN) reads 'n/a'."""
    if is_se_column(column) and isinstance(value, (float, np.floating)) and math.isnan(value):
        return "n/a"
    return fmt_value(value)


def pm(mean, se, digits: int = 3) -> str:
    """'0.512 ± 0.013'; 'mean ± n/a' when the standard error is undefined (one seed or sample)."""
    if se is None or not math.isfinite(float(se)):
        return f"{float(mean):.{digits}f} ± n/a"
    return f"{float(mean):.{digits}f} ± {float(se):.{digits}f}"


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt(n)) of `values`; the se is NaN for one value."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else math.nan
    return float(arr.mean()), se


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A GitHub markdown table of `rows` (dicts) in the given column order (an undefined se reads 'n/a')."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt_cell(row.get(c), c) for c in columns) + " |")
    return "\n".join(lines)


def run_metadata(args: argparse.Namespace | None = None, **extra) -> dict:
    """Parameters, versions and time of a run, recorded with every JSON output (torch's version from
    its metadata: a command that never needs torch does not load it for this)."""
    params = {}
    if args is not None:
        params = {k: v for k, v in vars(args).items() if k not in ("func", "command_module")}
    return jsonable({"popgrad": popgrad.__version__, "torch": _torch_version(),
                      "python": platform.python_version(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                      "params": params, **extra})


def _torch_version() -> str | None:
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.__version__
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def emit(rows: Sequence[dict], columns: Sequence[str], args: argparse.Namespace, title: str | None = None,
         extra: dict | None = None, out=None) -> None:
    """Print rows as markdown (or JSON with --json) and write --csv if asked (a run that was
    interrupted, `extra={"interrupted": True}`, marks every CSV row)."""
    out = out or sys.stdout
    if getattr(args, "json", False):
        payload = {"meta": run_metadata(args), "columns": list(columns), "rows": jsonable(list(rows))}
        if extra:
            payload.update(jsonable(extra))
        json.dump(payload, out, indent=2)
        out.write("\n")
    else:
        if title:
            out.write(f"## {title}\n\n")
        out.write(markdown_table(rows, columns) + "\n")
    if getattr(args, "csv", None):
        write_csv(args.csv, rows, columns, interrupted=bool((extra or {}).get("interrupted")))


def write_csv(path: str, rows: Sequence[dict], columns: Sequence[str], interrupted: bool = False) -> None:
    """Write rows as CSV; when the run was interrupted, a last column `interrupted` says 'yes' on every
    row (the file holds the rows collected before Ctrl-C, not the full run)."""
    columns = list(columns) + (["interrupted"] if interrupted else [])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**{c: row.get(c) for c in columns}, **({"interrupted": "yes"} if interrupted else {})})
    try:
        with open(path, "w", newline="") as fh:
            fh.write(buf.getvalue())
    except OSError as exc:
        raise PopgradError(f"--csv: cannot write {path!r}: {exc.strerror}") from None


# ----------------------------------------------------------------------------- sweeps
def worker_count(text: str) -> int:
    """--workers: a positive integer, at most 4 processes per core of this machine."""
    import os

    value = positive_int(text)
    most = 4 * (os.cpu_count() or 1)
    if value > most:
        raise argparse.ArgumentTypeError(f"{value} local worker processes is more than 4 per core ({most}); "
                                         "use --scheduler with a cluster for more")
    return value


def add_sweep_options(parser: argparse.ArgumentParser) -> None:
    """--workers N, --scheduler ADDRESS and --cache DIR of every grid command (popgrad.sweep)."""
    g = parser.add_argument_group("sweep execution (popgrad.sweep)")
    g.add_argument("--workers", type=worker_count, default=None, metavar="N",
                   help='run the cells on a local Dask cluster of N processes (pip install -e ".[distributed]")')
    g.add_argument("--scheduler", metavar="ADDRESS", type=scheduler_address, default=None,
                   help="run the cells on an existing Dask cluster, e.g. tcp://host:8786 (dask-jobqueue for SLURM)")
    g.add_argument("--scheduler-timeout", type=positive_float, default=60.0, metavar="SECONDS",
                   help="with --scheduler: how long to wait for a first worker (and for a new one after all "
                        "left) before giving up with exit 2 (default 60)")
    g.add_argument("--cache", metavar="DIR", default=None,
                   help="store each finished cell as JSON in DIR; a re-run computes only the missing cells")
    g.add_argument("--reuse-other-sources", action="store_true",
                   help="with --cache: read cells that other popgrad sources cached (same parameters and seed) "
                        "instead of recomputing them after a code change; the fastest such cell of each source is "
                        "recomputed first and must come out identical, or the run stops")
