"""Every function a claim names runs while the claim is measured.

`assert_claim` (the call of every test in checks/) measures each claim under a call tracer and
fails when a name in `code=` or `sides=` never ran (`popgrad.registry.recording_calls`). These
tests show on synthetic claims that the rule can fail, and that it sees classes, cached
functions and functions called from other modules; the real claims are held to it by checks/.
"""

import functools
import sys
import types

import pytest

from popgrad import registry
from popgrad.independence import resolve
from popgrad.registry import Claim, Measurement


def _named(x):
    return 2 * x


def _never(x):
    return 3 * x


@functools.lru_cache(maxsize=None)
def _cached(x):
    return x + 1


class _Holder:
    def value(self):
        return 7


def _calls_through_a_reference(f, x):
    return f(x)                                       # called by a local name, not through the module


_TABLE = {"t.named": _named, "t.never": _never, "t.cached": _cached, "t.Holder": _Holder}


@pytest.fixture
def fresh(monkeypatch):
    """An empty registry whose dotted names resolve through _TABLE."""
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_LOADED", True)
    monkeypatch.setattr(registry, "_CACHE", {})
    monkeypatch.setattr(registry, "_EXECUTED", {})
    monkeypatch.setattr(registry, "resolve", _TABLE.__getitem__)
    return registry


def _claim(cid, measure, code=(), sides=()):
    def _measure():
        measure()
        return Measurement(error=0.0, tolerance=1.0, verdict="exact")
    return registry.register(Claim(id=cid, statement="s", where="w", compared="c", kind="exact",
                                   tolerance="t", measure=_measure, code=code, sides=sides))


def test_a_named_function_that_never_runs_fails_the_check(fresh):
    """Test that a claim naming a function it does not run fails assert_claim, naming the function."""
    _claim("x.lying", lambda: _named(1), code=("t.named", "t.never"))
    with pytest.raises(AssertionError, match=r"t\.never never ran"):
        fresh.assert_claim("x.lying")
    assert fresh.unexecuted("x.lying") == ["t.never"]


def test_a_side_that_never_runs_fails_the_check(fresh):
    """Test that the names in sides= are held to the rule as well as those in code=."""
    _claim("x.side", lambda: _named(1), code=("t.named",), sides=(("t.named",), ("t.never",)))
    with pytest.raises(AssertionError, match="t.never"):
        fresh.assert_claim("x.side")


def test_functions_run_through_references_classes_and_caches_count(fresh):
    """Test that a function called through a local reference, a class (by one of its methods) and an
    lru-cached function whose value was cached before the claim ran all count as executed."""
    _cached(5)                                        # cached before: the tracer clears the cache
    _claim("x.honest", lambda: (_calls_through_a_reference(_named, 1), _Holder().value(), _cached(5)),
           code=("t.named", "t.Holder", "t.cached"))
    assert fresh.assert_claim("x.honest").passed
    assert fresh.unexecuted("x.honest") == []


def test_a_failing_comparison_is_reported_before_coverage(fresh):
    """Test that a claim whose comparison fails reports the measured error (coverage comes second)."""
    fresh.register(Claim(id="x.bad", statement="s", where="w", compared="c", kind="exact", tolerance="t",
                         measure=lambda: Measurement(error=2.0, tolerance=1.0, verdict="exact"),
                         code=("t.never",)))
    with pytest.raises(AssertionError, match="measured error"):
        fresh.assert_claim("x.bad")


def test_an_untraced_cached_result_is_measured_again_with_the_tracer(fresh):
    """Test that a claim first run without tracing (popgrad claims) is traced when a check asserts it."""
    calls = []
    _claim("x.twice", lambda: calls.append(_named(1)), code=("t.named",))
    fresh.run_claim("x.twice")
    fresh.assert_claim("x.twice")
    assert len(calls) == 2 and fresh.unexecuted("x.twice") == []


def test_the_tracer_keeps_a_previous_trace_function_and_removes_itself():
    """Test that a trace function installed before (a coverage tool) still sees every call and is restored."""
    seen_before = []

    def previous(frame, event, arg):
        if frame.f_code is _never.__code__:
            seen_before.append(event)
        return None

    old = sys.gettrace()
    sys.settrace(previous)
    try:
        with registry.recording_calls([]) as seen:
            _never(1)
        assert sys.gettrace() is previous
    finally:
        sys.settrace(old)
    assert seen_before == ["call"] and seen == set()


def test_every_named_function_of_every_claim_can_be_traced():
    """Test that every dotted name in a registered claim's code= and sides= resolves to something the
    tracer can see run (a function, a cached function or a class with methods)."""
    bad = []
    for claim in registry.all_claims():
        for name in registry.named_functions(claim):
            obj = resolve(name)
            if not registry._code_objects(obj):
                bad.append(f"{claim.id}: {name} ({type(obj).__name__})")
    assert not bad, "names the tracer cannot see run:\n  " + "\n  ".join(bad)
    assert isinstance(registry._code_objects(_cached)[0], types.CodeType)
