"""The README's findings table is generated from the claim registry and a saved claims run."""

import json
from pathlib import Path

import pytest

from popgrad import cli, registry
from popgrad.commands import findings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / findings.DEFAULT_RESULTS


def _main(argv, capsys):
    code = cli.main(argv)
    return code, capsys.readouterr()


def test_readme_findings_table_is_generated(capsys, monkeypatch):
    """Test that README.md's findings table equals `popgrad findings` on the saved claims run."""
    monkeypatch.chdir(ROOT)
    code, out = _main(["findings", "--check", "README.md"], capsys)
    assert code == 0, out.err


def test_saved_run_covers_every_claim_and_none_fails():
    """Test that the saved `popgrad claims --fast --json` run has one passing row per non-slow claim, and
    the saved slow run (when present) only passing rows of registered claims."""
    rows = {r["claim"]: r for r in json.loads(RESULTS.read_text())["rows"]}
    ids = {c.id for c in registry.all_claims() if not c.slow}
    assert ids - set(rows) == set(), f"claims missing from {RESULTS.name}: rerun `popgrad claims --json`"
    assert set(rows) - ids == set(), f"{RESULTS.name} has claims the registry no longer has"
    assert [i for i, r in rows.items() if r["verdict"] == "fail"] == []
    slow = ROOT / findings.SLOW_RESULTS
    if slow.is_file():
        slow_rows = {r["claim"]: r for r in json.loads(slow.read_text())["rows"]}
        assert set(slow_rows) <= {c.id for c in registry.all_claims()}
        assert [i for i, r in slow_rows.items() if r["verdict"] == "fail"] == []


def test_findings_table_marks_differs_and_erratum(tmp_path):
    """Test that an erratum, a claim's outcome and a failing claim show as such, that a slow claim
    missing from the saved runs shows as not run, and that a missing non-slow one is refused."""
    claims = [c for c in registry.all_claims() if c.finding]
    plain = [c.id for c in claims if not c.slow and not c.outcome]
    with_outcome = next(c for c in claims if c.outcome and not c.slow)
    slow = next(c.id for c in claims if c.slow and c.outcome)          # an outcome must not hide "not run"
    a, c = plain[:2]
    base = {"error": 0.0, "tolerance": 1.0, "note": "", "value": "v"}
    rows = {x.id: {**base, "claim": x.id, "verdict": "approx"} for x in claims if x.id != slow}
    rows[a]["verdict"] = "erratum"
    rows[c]["verdict"] = "fail"
    table = findings.render(findings.findings_rows(rows))
    lines = {i: next(line for line in table.splitlines() if f"`{i}`" in line) for i in (a, with_outcome.id, c, slow)}
    assert "differs" in lines[a] and with_outcome.outcome in lines[with_outcome.id] and "fail" in lines[c]
    assert "not run" in lines[slow] and registry.get_claim(slow).outcome not in lines[slow]
    del rows[a]
    with pytest.raises(findings.PopgradError, match=a):
        findings.findings_rows(rows)


def test_readme_is_a_front_page():
    """Test that the README stays short: the long results live in docs/."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 160, f"README.md has {len(lines)} lines: move detail to docs/"
