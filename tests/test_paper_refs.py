"""The paper_refs index is consistent with the code, the checks and the claim registry.

The first group checks the real index (`paper_refs/entries/*.json`): every cited code name
imports, every cited check exists (found by parsing the test files with `ast`), every cited
claim is registered, every test in `checks/` and every registered claim is cited, and every
erratum states the paper's expression, the correct one and how it was established. The second
group shows on small synthetic indexes that each of these checks can fail.
"""

import json

import pytest

from popgrad import refs, registry


@pytest.fixture(scope="module")
def entries():
    return refs.load_entries()


@pytest.fixture(scope="module")
def problems(entries):
    return refs.consistency_problems(entries, [c.id for c in registry.all_claims()])


def _listing(items) -> str:
    return "\n  " + "\n  ".join(items)


# ----------------------------------------------------------------------------- the real index
def test_index_entries_load_and_follow_the_schema(entries):
    """Test that every entries file parses, every entry follows the schema and ids are unique."""
    assert entries, "paper_refs/entries/ holds no entries"
    assert len({e.id for e in entries}) == len(entries)


def test_index_code_names_import(problems):
    """Test that every dotted name in an entry's `code` imports."""
    assert not problems["code"], f"{len(problems['code'])} code name(s) do not import:" + _listing(problems["code"])


def test_index_checks_exist(problems):
    """Test that every node id in an entry's `checks` names an existing test function."""
    assert not problems["checks"], f"{len(problems['checks'])} cited check(s) do not exist:" + _listing(problems["checks"])


def test_index_claims_are_registered(problems):
    """Test that every claim id in an entry's `claims` is in the registry."""
    assert not problems["claims"], f"{len(problems['claims'])} cited claim(s) are not registered:" + _listing(problems["claims"])


def test_every_check_is_referenced_by_an_entry(problems):
    """Test that every test function in checks/ is cited by some entry's `checks`."""
    missing = problems["unreferenced_checks"]
    assert not missing, f"{len(missing)} test(s) in checks/ are cited by no paper_refs entry:" + _listing(missing)


def test_every_claim_is_referenced_by_an_entry(problems):
    """Test that every registered claim is cited by some entry's `claims`."""
    missing = problems["unreferenced_claims"]
    assert not missing, f"{len(missing)} registered claim(s) are cited by no paper_refs entry:" + _listing(missing)


def test_erratum_entries_state_paper_correct_and_how(entries):
    """Test that every entry with verdict 'erratum' has an erratum object with paper / correct / how."""
    bad = [f"{e.source}: {e.id}" for e in entries if e.verdict == "erratum"
           and not (e.erratum and all(str(e.erratum.get(k, "")).strip() for k in refs.ERRATUM_REQUIRED))]
    assert not bad, "erratum entries without paper/correct/how:" + _listing(bad)


# ----------------------------------------------------------------------------- the checker can fail
def _write(tmp_path, name, data):
    folder = tmp_path / "entries"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps(data) if not isinstance(data, str) else data)
    return folder


GOOD = {"id": "eq1", "where": "eq. (1)", "statement": "x = w_E + p", "verdict": "definition"}


def test_loader_accepts_a_valid_entry(tmp_path):
    """Test that a minimal valid entry loads with its defaults."""
    (entry,) = refs.load_entries(_write(tmp_path, "a.json", [GOOD]))
    assert entry.code == () and entry.erratum is None and entry.source == "a.json"


@pytest.mark.parametrize("bad, message", [
    ({k: v for k, v in GOOD.items() if k != "where"}, "missing required key 'where'"),
    ({**GOOD, "verdict": "true"}, "verdict 'true' is not one of"),
    ({**GOOD, "code": "popgrad.data"}, "'code' must be a JSON list"),
    ({**GOOD, "checks": [""]}, "'checks' must be a list of non-empty strings"),
    ({**GOOD, "colde": []}, "unknown keys ['colde']"),
    ({**GOOD, "verdict": "not-checked"}, "needs the reason in 'notes'"),
    ({**GOOD, "verdict": "erratum"}, "needs an 'erratum' object"),
    ({**GOOD, "verdict": "erratum", "erratum": {"paper": "a", "correct": "b"}}, "erratum.how is missing"),
])
def test_loader_rejects_schema_violations(tmp_path, bad, message):
    """Test that each schema violation is reported with the file, the index and the reason."""
    with pytest.raises(refs.RefsError, match=r"a\.json\[0\]") as info:
        refs.load_entries(_write(tmp_path, "a.json", [bad]))
    assert message in str(info.value)


def test_loader_rejects_duplicate_ids_across_files(tmp_path):
    """Test that an id used in two files is reported with both file names."""
    _write(tmp_path, "a.json", [GOOD])
    with pytest.raises(refs.RefsError, match=r"b\.json\[0\]: id 'eq1' already used in a\.json"):
        refs.load_entries(_write(tmp_path, "b.json", [GOOD]))


def test_loader_rejects_bad_json_and_non_lists(tmp_path):
    """Test that unreadable JSON and a file that is not a list are both reported."""
    _write(tmp_path, "a.json", "[{")
    with pytest.raises(refs.RefsError, match=r"a\.json: cannot read JSON[\s\S]*b\.json: must hold a JSON list"):
        refs.load_entries(_write(tmp_path, "b.json", {"id": "x"}))


def test_resolve_code_finds_names_and_names_what_is_missing():
    """Test that dotted names resolve (modules, classes, methods) and failures name the missing part."""
    from popgrad.data import SecondOccurrenceModel

    assert refs.resolve_code("popgrad.data.SecondOccurrenceModel.enumerate") is SecondOccurrenceModel.enumerate
    with pytest.raises(refs.PopgradError, match="has no attribute 'no_such_fn'"):
        refs.resolve_code("popgrad.data.no_such_fn")
    with pytest.raises(refs.PopgradError, match="no importable module"):
        refs.resolve_code("no_such_pkg.f")
    with pytest.raises(refs.PopgradError, match="dotted Python name"):
        refs.resolve_code("popgrad..data")
    assert refs.code_location("popgrad.conventions.lemma_to_eq7")[0] == "popgrad/conventions.py"


def test_consistency_reports_each_kind_of_problem(tmp_path):
    """Test that missing code, checks and claims, and uncited checks and claims, are all listed."""
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "test_x.py").write_text(
        "from popgrad.registry import assert_claim\n"
        "def test_cited():\n    assert_claim('x.cited')\n"
        "def test_orphan():\n    pass\n"
        "class TestGroup:\n    def test_method(self):\n        pass\n")
    entry = refs.Entry(id="e", where="w", statement="s", verdict="exact", source="a.json",
                       code=("popgrad.data.nope",), checks=("checks/test_x.py::test_cited", "checks/test_x.py::test_gone"),
                       claims=("x.cited", "x.unknown"))
    found = refs.consistency_problems([entry], ["x.cited", "x.uncited"], root=tmp_path)
    assert len(found["code"]) == 1 and "nope" in found["code"][0]
    assert found["checks"] == ["a.json: e: no test function 'checks/test_x.py::test_gone'"]
    assert found["claims"] == ["a.json: e: claim 'x.unknown' is not registered"]
    assert found["unreferenced_checks"] == ["checks/test_x.py::TestGroup::test_method", "checks/test_x.py::test_orphan"]
    assert found["unreferenced_claims"] == ["x.uncited"]
    assert refs.claims_asserted_by_checks(tmp_path) == {"x.cited": ["checks/test_x.py::test_cited"]}


# ----------------------------------------------------------------------------- popgrad report
@pytest.fixture
def fake_claims(monkeypatch):
    """A private registry of four claims (exact, approx with rate, failing, raising) and one slow claim."""
    from popgrad.registry import Claim, Measurement

    def boom():
        raise RuntimeError("kaput")

    claims = [
        Claim("fake.exact", "s", "eq. (5)", "a vs b", "exact", "rel <= 1e-10",
              lambda: Measurement(1e-14, 1e-10, "exact"), code=("popgrad.data.SecondOccurrenceModel",)),
        Claim("fake.approx", "s", "B.1", "a vs b", "approx", "slope in [-0.6, -0.4]",
              lambda: Measurement(0.01, 0.1, "approx", rate="d^-0.50")),
        Claim("fake.fail", "s", "A", "a vs b", "exact", "rel", lambda: Measurement(1.0, 1e-10, "exact")),
        Claim("fake.boom", "s", "A", "a vs b", "exact", "rel", boom),
        Claim("fake.slow", "s", "A", "a vs b", "exact", "rel", lambda: Measurement(0.0, 1e-10, "exact"), slow=True),
    ]
    monkeypatch.setattr(registry, "_CACHE", {})
    monkeypatch.setattr(registry, "_REGISTRY", {c.id: c for c in claims})
    monkeypatch.setattr(registry, "_LOADED", True)
    from popgrad import report

    def missing(rows, fig_dir, fast):
        raise report.FigureUnavailable("no such producer here")

    monkeypatch.setattr(report, "FIGURE_PRODUCERS", [report.FIGURE_PRODUCERS[0], ("absent", "Absent figure", missing)])
    return claims


def test_report_writes_summary_claims_errata_map_and_figure(fake_claims, tmp_path, capsys):
    """Test that `popgrad report` writes every section, links code by path and line, and exits 1 on a failure."""
    from popgrad.cli import main

    out = tmp_path / "r.md"
    assert main(["report", "--out", str(out), "--fast"]) == 1
    text = out.read_text()
    for section in ("## Summary", "## Figures", "## Claims", "## Errata and ambiguities", "## Equation map",
                    "## Index consistency"):
        assert section in text
    assert "| exact | 1 |" in text and "| fail | 1 |" in text and "| error | 1 |" in text and "| not run | 1 |" in text
    assert "1.00e-02; rate d^-0.50" in text and "RuntimeError: kaput" in text
    assert "popgrad/data.py#L" in text                       # the code link carries a line number
    assert "### eq9" in text                                 # an erratum object of general.json
    assert "*Absent figure*: not generated — no such producer here" in text
    assert (tmp_path / "r_figures" / "claims_overview.png").stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--out", "abc"], "--out must be a markdown file name ending in .md"),
    (["--out", "/no/such/dir/r.md"], "does not exist"),
    (["--figures", "/no/such/dir"], "--figures must be an existing folder"),
    (["--select", ""], "--select must be a non-empty"),
    (["--select", "zzz"], "matches no claim id"),
])
def test_report_rejects_bad_options_with_one_line(fake_claims, tmp_path, capsys, argv, message):
    """Test that bad report options exit 2 with one line naming the option, before any claim runs."""
    from popgrad.cli import main

    argv = argv if "--out" in argv else ["--out", str(tmp_path / "r.md")] + argv
    assert main(["report"] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not registry._CACHE


def test_error_ratio_places_passing_claims_left_of_zero():
    """Test that log10(error/tolerance) is <= 0 for passing rows (zero error, zero tolerance) and inf otherwise."""
    from popgrad.report import error_ratio

    assert error_ratio({"error": 1e-14, "tolerance": 1e-10}) == pytest.approx(-4)
    assert error_ratio({"error": 0.0, "tolerance": 0.0}) == -16.0
    assert error_ratio({"error": 1e-3, "tolerance": 0.0}) == float("inf")
    assert error_ratio({"error": float("nan"), "tolerance": 1.0}) == float("inf")
    assert error_ratio({"error": None, "tolerance": None}) == float("inf")


# ----------------------------------------------------------------------------- README
README_SETUP = (
    'python -m pip install torch==2.13.0 && python -m pip install -e . && popgrad recall-table',
    'python -m pip install torch==2.13.0 && python -m pip install -e ".[test,distributed]" && python -m pytest tests checks -q',
)


def test_readme_keeps_the_setup_commands_that_ci_runs():
    """Test that README.md holds both set-up commands verbatim and .ci/run runs the second one."""
    readme = (refs.ROOT / "README.md").read_text(encoding="utf-8")
    missing = [c for c in README_SETUP if c not in readme.splitlines()]
    assert not missing, "README.md lost the set-up command(s):" + _listing(missing)
    ci = (refs.ROOT / ".ci" / "run").read_text(encoding="utf-8").replace("pip install -q ", "pip install ")
    assert README_SETUP[1] in ci.splitlines(), ".ci/run no longer runs the README's test command"

