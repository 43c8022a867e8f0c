"""The `popgrad` command: one subcommand per module in `popgrad/commands/`.

A command module defines NAME, HELP, `add_arguments(parser)` and `run(args) -> int`.
Bad input exits with status 2 and one line `popgrad: error: ...`, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import popgrad
from popgrad.cliutil import strict_list_options
from popgrad.errors import PopgradError

# Fixed order in --help; commands not listed here come after, alphabetically.
ORDER = ("claims", "findings", "recall-table", "theorem3", "scaling", "capacity", "report", "bench", "cache")


def _command_modules(only: str | None = None):
    """Every command module, or only the one named `only` (so `popgrad report ...` does not import
    the other commands, some of which import torch at module level: a bad --out fails in well
    under a second). Falls back to all modules when `only` names no module."""
    import popgrad.commands as pkg  # lazy: the command modules load when the parser is built

    names = [m.name for m in pkgutil.iter_modules(pkg.__path__)]
    if only is not None and only.replace("-", "_") in names:
        mod = importlib.import_module(f"popgrad.commands.{only.replace('-', '_')}")
        if getattr(mod, "NAME", None) == only:
            return [mod]
    mods = [importlib.import_module(f"popgrad.commands.{name}") for name in names]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(mods, key=lambda m: (rank.get(m.NAME, len(ORDER)), m.NAME))


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="popgrad", description=(
        "Executable checks of the population gradients in 'Birth of a Transformer: A Memory "
        "Viewpoint' (Bietti et al., NeurIPS 2023)."))
    parser.add_argument("--version", action="version", version=f"popgrad {popgrad.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _command_modules(only):
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        strict_list_options(p)
        p.set_defaults(command_module=mod)
    return parser


def option_defaults() -> dict:
    """{command: [{"option", "default", "help"}]}: every option of every command with its argparse default
    (JSON-able; None where the command resolves it later), in --help order. docs/defaults.md is built from it."""
    out = {}
    for mod in _command_modules():
        p = _Parser(prog=f"popgrad {mod.NAME}")
        mod.add_arguments(p)
        out[mod.NAME] = [{"option": a.option_strings[0], "default": _jsonable(a.default), "help": a.help or ""}
                         for a in p._actions if a.option_strings and a.dest != "help"]
    return out


def _jsonable(v):
    if isinstance(v, dict):                          # step sizes per layer: as written on the command line, a:b:c
        return ":".join(f"{x:g}" for x in v.values())
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    first = argv[0] if argv and not argv[0].startswith("-") else None
    parser = build_parser(only=first)
    args = parser.parse_args(argv)
    if getattr(args, "command_module", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.command_module.run(args) or 0)
    except PopgradError as exc:
        print(f"popgrad {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("popgrad: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
