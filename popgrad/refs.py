"""The paper_refs index: load `paper_refs/entries/*.json` and check it against code, checks and claims.

Every equation, lemma, theorem step and appendix fact popgrad uses has one entry (schema in
`paper_refs/README.md`). This module loads and validates the entries (`load_entries`), imports
the dotted names they cite (`resolve_code`, `code_location`), reads the test functions of
`checks/` and `tests/` by parsing the files with `ast` (no pytest run: `collect_tests`,
`claims_asserted_by_checks`), and lists every inconsistency between the index, the checks and
the claim registry (`consistency_problems`). `tests/test_paper_refs.py` and `popgrad report`
both use it, so the two can never disagree.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from popgrad.errors import PopgradError

ROOT = Path(__file__).resolve().parent.parent          # repository root (source checkout or editable install)


def packaged_entries_dir() -> Path | None:
    """The index shipped inside an installed popgrad (`popgrad/paper_refs/entries`), or None.

    Read through importlib.resources; a wheel or sdist install has it, a source checkout does not
    (there the index is the repository folder `paper_refs/entries`).
    """
    found = resources.files("popgrad") / "paper_refs" / "entries"
    return found if isinstance(found, Path) and found.is_dir() else None    # a real folder, not a zip


def default_entries_dir() -> Path:
    """Where `load_entries()` reads the index: the installed package's copy, else the checkout's."""
    return packaged_entries_dir() or ROOT / "paper_refs" / "entries"


ENTRIES_DIR = default_entries_dir()
CHECK_DIRS = ("checks", "tests")                       # where an entry's `checks` may point
VERDICTS = ("exact", "approx", "erratum", "definition", "not-checked")
REQUIRED = {"id": str, "where": str, "statement": str, "verdict": str}
OPTIONAL = {"code": list, "checks": list, "claims": list, "notes": str, "erratum": dict}
ERRATUM_REQUIRED = ("paper", "correct", "how")
ERRATUM_OPTIONAL = ("evidence",)


class RefsError(PopgradError):
    """The paper_refs index is malformed (the message lists every problem found)."""


@dataclass(frozen=True)
class Entry:
    """One index entry: a statement of the paper, the code that implements it, how it is verified."""

    id: str
    where: str
    statement: str
    verdict: str
    code: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    claims: tuple[str, ...] = ()
    notes: str = ""
    erratum: dict | None = None
    source: str = ""                                   # the entries file it came from
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- loading
def _entry_problems(raw, where: str) -> list[str]:
    """Schema problems of one raw entry (an empty list when it is valid)."""
    if not isinstance(raw, dict):
        return [f"{where}: an entry must be a JSON object, got {type(raw).__name__}"]
    label = f"{where} (id {raw.get('id')!r})"
    problems = []
    for key, typ in REQUIRED.items():
        if key not in raw:
            problems.append(f"{label}: missing required key {key!r}")
        elif not isinstance(raw[key], typ) or (typ is str and not raw[key].strip()):
            problems.append(f"{label}: {key!r} must be a non-empty string")
    for key, typ in OPTIONAL.items():
        if key in raw and not isinstance(raw[key], typ):
            problems.append(f"{label}: {key!r} must be a JSON {'list' if typ is list else typ.__name__}")
        elif typ is list and key in raw and not all(isinstance(x, str) and x.strip() for x in raw[key]):
            problems.append(f"{label}: {key!r} must be a list of non-empty strings")
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        problems.append(f"{label}: unknown keys {unknown} (allowed: {sorted(REQUIRED) + sorted(OPTIONAL)})")
    verdict = raw.get("verdict")
    if isinstance(verdict, str) and verdict not in VERDICTS:
        problems.append(f"{label}: verdict {verdict!r} is not one of {VERDICTS}")
    if verdict == "not-checked" and not str(raw.get("notes", "")).strip():
        problems.append(f"{label}: verdict 'not-checked' needs the reason in 'notes'")
    problems += _erratum_problems(raw, label)
    return problems


def _erratum_problems(raw: dict, label: str) -> list[str]:
    """An erratum entry needs an `erratum` object with non-empty paper / correct / how."""
    err = raw.get("erratum")
    if err is None:
        return [f"{label}: verdict 'erratum' needs an 'erratum' object with {ERRATUM_REQUIRED}"] \
            if raw.get("verdict") == "erratum" else []
    if not isinstance(err, dict):
        return []                                      # reported as a type problem already
    problems = [f"{label}: erratum.{k} is missing or empty" for k in ERRATUM_REQUIRED
                if not isinstance(err.get(k), str) or not err.get(k).strip()]
    unknown = sorted(set(err) - set(ERRATUM_REQUIRED) - set(ERRATUM_OPTIONAL))
    if unknown:
        problems.append(f"{label}: erratum has unknown keys {unknown}")
    return problems


def _to_entry(raw: dict, source: str) -> Entry:
    return Entry(id=raw["id"], where=raw["where"], statement=raw["statement"], verdict=raw["verdict"],
                 code=tuple(raw.get("code", ())), checks=tuple(raw.get("checks", ())),
                 claims=tuple(raw.get("claims", ())), notes=raw.get("notes", ""),
                 erratum=raw.get("erratum"), source=source)


def load_entries(entries_dir: str | Path | None = None) -> list[Entry]:
    """Merge every `entries/*.json` (each a JSON list) into one validated list, in file order.

    Raises RefsError listing every problem: unreadable or invalid JSON, a file that is not a
    list, schema violations (missing keys, wrong types, unknown keys, bad verdict, an erratum
    without paper/correct/how) and ids used twice (naming both files).
    """
    folder = Path(entries_dir) if entries_dir is not None else ENTRIES_DIR
    if not folder.is_dir():
        raise RefsError(f"entries_dir {str(folder)!r} is not a directory (paper_refs/entries of a source checkout, "
                        f"popgrad/paper_refs/entries of an installed popgrad)")
    problems, entries, seen = [], [], {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{path.name}: cannot read JSON: {exc}")
            continue
        if not isinstance(data, list):
            problems.append(f"{path.name}: must hold a JSON list of entries, got {type(data).__name__}")
            continue
        for i, raw in enumerate(data):
            found = _entry_problems(raw, f"{path.name}[{i}]")
            problems += found
            if found:
                continue
            if raw["id"] in seen:
                problems.append(f"{path.name}[{i}]: id {raw['id']!r} already used in {seen[raw['id']]}")
                continue
            seen[raw["id"]] = path.name
            entries.append(_to_entry(raw, path.name))
    if problems:
        raise RefsError(f"paper_refs index has {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return entries


# ----------------------------------------------------------------------------- code names
def resolve_code(name: str):
    """Import a dotted name such as 'popgrad.theory.lemma1.lemma1_gradient' or 'popgrad.data.SecondOccurrenceModel.enumerate'.

    The longest importable module prefix is imported, the rest is looked up with getattr.
    Raises PopgradError naming what could not be found.
    """
    if not isinstance(name, str) or not name.strip() or any(not p.isidentifier() for p in name.split(".")):
        raise PopgradError(f"code name must be a dotted Python name, got {name!r}")
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or module_name
            if not (module_name == missing or module_name.startswith(missing + ".")):
                raise PopgradError(f"importing {module_name!r} for {name!r} failed: {exc}") from None
            continue
        except Exception as exc:  # an existing module that fails on import
            raise PopgradError(f"importing {module_name!r} for {name!r} failed: {type(exc).__name__}: {exc}") from None
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                raise PopgradError(f"{name!r}: {obj.__name__ if hasattr(obj, '__name__') else obj!r} "
                                   f"has no attribute {attr!r}")
            obj = getattr(obj, attr)
        return obj
    raise PopgradError(f"{name!r}: no importable module prefix")


def code_location(name: str, root: str | Path | None = None) -> tuple[str, int] | None:
    """(path relative to the repository root, first line) of a dotted name, or None if unknown."""
    try:
        obj = inspect.unwrap(resolve_code(name))
        path = Path(inspect.getsourcefile(obj)).resolve()
        line = inspect.getsourcelines(obj)[1] if not inspect.ismodule(obj) else 1
    except (PopgradError, TypeError, OSError):
        return None
    base = Path(root).resolve() if root is not None else ROOT
    try:
        return str(path.relative_to(base)), max(int(line), 1)
    except ValueError:
        return str(path), max(int(line), 1)


# ----------------------------------------------------------------------------- checks by ast
def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _tests_in(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """Node-id suffixes ('test_x' or 'TestX::test_y') of the test functions pytest collects."""
    found = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            found.append((node.name, node))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            found += [(f"{node.name}::{m.name}", m) for m in node.body
                      if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and m.name.startswith("test")]
    return found


def collect_tests(root: str | Path | None = None, dirs=CHECK_DIRS) -> dict[str, ast.AST]:
    """{node id: function node} for every test function in `test_*.py` / `*_test.py` under `dirs`."""
    base = Path(root) if root is not None else ROOT
    found = {}
    for folder in dirs:
        for path in sorted((base / folder).rglob("*.py")):
            if not (path.name.startswith("test_") or path.name.endswith("_test.py")):
                continue
            tree = _parse(path)
            rel = path.relative_to(base).as_posix()
            for suffix, node in _tests_in(tree) if tree is not None else ():
                found[f"{rel}::{suffix}"] = node
    return found


def claims_asserted_by_checks(root: str | Path | None = None) -> dict[str, list[str]]:
    """{claim id: [check node ids]} from the string literals passed to `assert_claim` / `run_claim` in checks/."""
    out: dict[str, list[str]] = {}
    for nodeid, fn in collect_tests(root, dirs=("checks",)).items():
        for call in ast.walk(fn):
            if not isinstance(call, ast.Call) or not call.args:
                continue
            callee = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
            arg = call.args[0]
            if callee in ("assert_claim", "run_claim") and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.setdefault(arg.value, []).append(nodeid)
    return out


# ----------------------------------------------------------------------------- consistency
def consistency_problems(entries: list[Entry], claim_ids, root: str | Path | None = None) -> dict[str, list[str]]:
    """Every mismatch between the index, the test files and the registry, by kind (empty lists when consistent).

    Kinds: 'code' (a cited name does not import), 'checks' (a cited node id does not exist),
    'claims' (a cited claim id is not registered), 'unreferenced_checks' (a test in checks/ that
    no entry cites), 'unreferenced_claims' (a registered claim no entry cites).
    """
    base = Path(root) if root is not None else ROOT
    tests = collect_tests(root)
    claim_ids = set(claim_ids)
    problems = {k: [] for k in ("code", "checks", "claims", "unreferenced_checks", "unreferenced_claims")}
    have_checks = any((base / folder).is_dir() for folder in CHECK_DIRS)
    if not have_checks:                                # an installed popgrad ships no checks/ or tests/
        cited = sum(len(e.checks) for e in entries)
        problems["checks"].append(f"{' and '.join(f'{f}/' for f in CHECK_DIRS)} not found under {str(base)!r} "
                                  f"(an installed package, not a source checkout): the {cited} cited check "
                                  f"node ids were not verified")
    for e in entries:
        for name in e.code:
            try:
                resolve_code(name)
            except PopgradError as exc:
                problems["code"].append(f"{e.source}: {e.id}: {exc}")
        for nodeid in e.checks if have_checks else ():
            if nodeid.split("::", 1)[0].split("/", 1)[0] not in CHECK_DIRS:
                problems["checks"].append(f"{e.source}: {e.id}: {nodeid!r} is not under {CHECK_DIRS}")
            elif nodeid.split("[", 1)[0] not in tests:
                problems["checks"].append(f"{e.source}: {e.id}: no test function {nodeid!r}")
        problems["claims"] += [f"{e.source}: {e.id}: claim {c!r} is not registered" for c in e.claims if c not in claim_ids]
    cited_checks = {n.split("[", 1)[0] for e in entries for n in e.checks}
    cited_claims = {c for e in entries for c in e.claims}
    problems["unreferenced_checks"] = sorted(n for n in tests if n.startswith("checks/") and n not in cited_checks)
    problems["unreferenced_claims"] = sorted(claim_ids - cited_claims)
    return problems
