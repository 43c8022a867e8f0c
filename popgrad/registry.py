"""The claim registry: one place declares every claim; checks, CLI and report read it.

A claim module in `popgrad/claims/` calls `register(Claim(...))` at import time; modules are
discovered automatically. `checks/` runs `assert_claim(id)` (one test per claim), `popgrad
claims` and `popgrad report` print `run_claim(id)` for every id, and `paper_refs/index.json`
must name every id, so the three can never disagree.

Verdicts: `exact` (an identity held to float64 precision or symbolically), `approx` (an
approximate claim, measured, with its fitted rate), `erratum` (the paper's expression is wrong;
the check asserts the corrected value), `fail` (the comparison did not hold).

Every function a claim names runs: `assert_claim` measures the claim under a call tracer
(`sys.settrace`, call events only, removed as soon as every named function has run) and fails
when a name in `code=` or `sides=` never ran while the claim was measured (`unexecuted`).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import pkgutil
import sys
import time
import types
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

from popgrad.cells import progress
from popgrad.independence import resolve

import popgrad.claims as claim_modules
from popgrad.errors import PopgradError

VERDICTS = ("exact", "approx", "erratum")
UNAVAILABLE = "unavailable"   # the row of a claim that cannot run here (`ClaimUnavailable`), never a pass


class ClaimUnavailable(PopgradError):
    """Raised by a claim's measure when what it compares is not there (e.g. the source checkout's docs
    in an installed wheel): `claim_rows` reports it as unavailable; `assert_claim` (checks/) fails."""


@dataclass(frozen=True)
class Measurement:
    """The outcome of one claim's comparison of two independent computations."""

    error: float                 # the measured discrepancy that is held against `tolerance`
    tolerance: float             # the allowed discrepancy
    verdict: str                 # 'exact' | 'approx' | 'erratum' (what the claim is, if it passes)
    rate: str = ""               # fitted rate for approx claims, e.g. "d^-0.50"
    note: str = ""               # one line: what was found (the erratum, the gap, ...)
    details: Mapping = field(default_factory=dict)
    value: str = ""              # the measured value in words, beside its target, e.g. "0.91 ± 0.02 vs 0.55 (3 seeds)"

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def passed(self) -> bool:
        return math.isfinite(self.error) and self.error <= self.tolerance

    @property
    def shown_verdict(self) -> str:
        return self.verdict if self.passed else "fail"


@dataclass(frozen=True)
class Claim:
    """One statement of the paper and how popgrad tests it."""

    id: str                      # e.g. 'lemma1.gradient'
    statement: str               # the claim in one sentence (paper notation)
    where: str                   # paper location, e.g. 'Lemma 1, eq. (5); App. C.1'
    compared: str                # what is compared with what, e.g. 'eq. (5) vs autograd'
    kind: str                    # 'exact' or 'approx'
    tolerance: str               # the tolerance in words, e.g. 'rel <= 1e-10 (float64)'
    measure: Callable[[], Measurement]
    code: tuple[str, ...] = ()   # dotted names of the implementing functions
    slow: bool = False           # takes more than ~10 s
    sides: tuple = ()            # (side A, side B): dotted names of the code of each compared side;
                                 # tests/test_claim_independence.py shows their call graphs share only data
    finding: str = ""            # set on claims that test a finding of the paper or a talk: the finding in
                                 # a few words; these claims make the README's findings table
    outcome: str = ""            # where the claim asserts that the finding does not hold as stated (its measure
                                 # passes only then): how it fared, e.g. 'differs at d <= 2048', 'partly: ...'


_REGISTRY: dict[str, Claim] = {}
_LOADED = False


def register(claim: Claim) -> Claim:
    """Add a claim to the registry (ids are unique)."""
    if claim.id in _REGISTRY and _REGISTRY[claim.id] is not claim:
        raise ValueError(f"claim id {claim.id!r} registered twice")
    if claim.kind not in ("exact", "approx"):
        raise ValueError(f"claim {claim.id}: kind must be 'exact' or 'approx'")
    _REGISTRY[claim.id] = claim
    return claim


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    for mod in sorted(pkgutil.iter_modules(claim_modules.__path__), key=lambda m: m.name):
        importlib.import_module(f"popgrad.claims.{mod.name}")
    _LOADED = True


def all_claims() -> list[Claim]:
    """Every registered claim, sorted by id."""
    _load()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_claim(claim_id: str) -> Claim:
    _load()
    if claim_id not in _REGISTRY:
        raise PopgradError(f"unknown claim id {claim_id!r}; `popgrad claims --list` lists them")
    return _REGISTRY[claim_id]


_CACHE: dict[str, tuple[Measurement, float]] = {}
_EXECUTED: dict[str, frozenset] = {}     # claim id -> the named functions that ran while it was measured


def named_functions(claim: Claim) -> tuple[str, ...]:
    """The dotted names of `code=` and of both `sides=`, each once, in order."""
    names = list(claim.code) + [n for side in claim.sides for n in side]
    return tuple(dict.fromkeys(names))


def _code_objects(obj) -> list[types.CodeType]:
    """The code objects whose execution counts as running `obj` (a function, a cached or
    decorated function, or a class: any of its methods)."""
    if isinstance(obj, type):
        out = []
        for v in vars(obj).values():
            f = v.__func__ if isinstance(v, (staticmethod, classmethod)) else v
            f = f.fget if isinstance(f, property) else f
            if isinstance(f, types.FunctionType):
                out.append(inspect.unwrap(f).__code__)
        return out
    fn = inspect.unwrap(obj)
    return [fn.__code__] if hasattr(fn, "__code__") else []


@contextlib.contextmanager
def recording_calls(names) -> Iterator[set]:
    """Record which of the dotted `names` are called inside the block (yields the set of names seen).

    A global trace function sees only call events (it returns no local tracer, or the previous
    tracer's, so that coverage tools keep working) and removes itself once every name was seen.
    Functions behind a cache (`functools.lru_cache`) have the cache cleared first, so that they run.
    """
    targets: dict[types.CodeType, str] = {}
    for name in names:
        obj = resolve(name)
        if hasattr(obj, "cache_clear"):
            obj.cache_clear()
        for code in _code_objects(obj):
            targets.setdefault(code, name)
    seen: set = set()
    wanted = set(targets.values())
    previous = sys.gettrace()

    def tracer(frame, event, arg):
        name = targets.get(frame.f_code)
        if name is not None and name not in seen:
            seen.add(name)
            if seen == wanted and previous is None:
                sys.settrace(None)           # everything seen: the rest of the claim runs untraced
        return previous(frame, event, arg) if previous is not None else None

    sys.settrace(tracer)
    try:
        yield seen
    finally:
        sys.settrace(previous)


def run_claim(claim_id: str, cache: bool = True, trace: bool = False) -> tuple[Measurement, float]:
    """Run one claim's measurement; returns (measurement, seconds). Cached per process.

    `trace=True` also records which named functions ran (`unexecuted` reads it)."""
    if cache and claim_id in _CACHE and (not trace or claim_id in _EXECUTED):
        return _CACHE[claim_id]
    claim = get_claim(claim_id)
    start = time.perf_counter()
    if trace:
        with recording_calls(named_functions(claim)) as seen:
            m = claim.measure()
        _EXECUTED[claim_id] = frozenset(seen)
    else:
        m = claim.measure()
    result = (m, time.perf_counter() - start)
    _CACHE[claim_id] = result
    return result


def unexecuted(claim_id: str) -> list[str]:
    """The names in the claim's `code=` / `sides=` that did not run while it was measured."""
    run_claim(claim_id, trace=True)
    ran = _EXECUTED[claim_id]
    return [n for n in named_functions(get_claim(claim_id)) if n not in ran]


def assert_claim(claim_id: str) -> Measurement:
    """Run a claim and fail with a self-explaining message unless it passes and runs every
    function it names (used by checks/)."""
    claim = get_claim(claim_id)
    m, _ = run_claim(claim_id, trace=True)
    if not m.passed:
        details = ", ".join(f"{k}={v}" for k, v in list(m.details.items())[:8])
        raise AssertionError(
            f"claim {claim.id} ({claim.where}) failed: {claim.compared}; measured error "
            f"{m.error:.3e} > allowed {m.tolerance:.3e} [{claim.tolerance}]"
            + (f"; {m.note}" if m.note else "") + (f"; {details}" if details else ""))
    missing = unexecuted(claim_id)
    if missing:
        raise AssertionError(
            f"claim {claim.id} names code it does not run: {', '.join(missing)} never ran while it "
            f"was measured (every name in code= and sides= must execute; docs/ADDING_A_CLAIM.md)")
    return m


def claim_rows(claims, show_progress: bool = True) -> list[dict]:
    """Run `claims` and return one row per claim (`popgrad claims`, `popgrad report`, `popgrad.run_claims`)."""
    rows = []
    for claim in progress(claims, desc="claims") if show_progress else claims:
        try:
            m, seconds = run_claim(claim.id)
        except ClaimUnavailable as exc:
            rows.append({"claim": claim.id, "where": claim.where, "statement": claim.statement,
                         "compared": claim.compared, "kind": claim.kind, "error": math.nan, "tolerance": math.nan,
                         "tolerance_text": claim.tolerance, "verdict": UNAVAILABLE, "rate": "", "note": str(exc),
                         "value": "", "outcome": claim.outcome, "finding": claim.finding, "slow": claim.slow,
                         "seconds": 0.0, "code": list(claim.code), "details": {}})
            continue
        rows.append({"claim": claim.id, "where": claim.where, "statement": claim.statement,
                     "compared": claim.compared, "kind": claim.kind, "error": m.error,
                     "tolerance": m.tolerance, "tolerance_text": claim.tolerance,
                     "verdict": m.shown_verdict, "rate": m.rate, "note": m.note, "value": m.value, "outcome": claim.outcome,
                     "finding": claim.finding, "slow": claim.slow, "seconds": round(seconds, 2), "code": list(claim.code), "details": dict(m.details)})
    return rows
