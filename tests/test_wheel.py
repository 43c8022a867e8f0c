"""Built distributions: `python -m build` makes an sdist and a wheel that work outside the source tree.

One module-scoped fixture copies the checkout to a temporary folder, builds both (the wheel from
the sdist, so the sdist is proven complete), creates a bare venv (`--without-pip`) and installs the
wheel into it with `pip --python VENV --no-deps`. Dependencies (torch, numpy, ...) come from the
*calling* interpreter: a `.pth` file in the venv lists its site-packages folders, so this works
whether pytest runs from a venv (as the README installs) or from a system interpreter, and nothing
is downloaded. The listed folders are plain path entries, so their own `.pth` files (an editable
popgrad's import hook among them) are not processed. Everything then runs from a temporary working
directory with PYTHONPATH unset, and asserts that each loaded popgrad module comes from the venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENTRIES = sorted(p.name for p in (ROOT / "paper_refs" / "entries").glob("*.json"))
SKIP = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
                              ".venv", "venv", "out", "*.pyc")


HANG_GUARD_S = 3600      # wall clock: only a guard against a hung child, not a speed bound


def _cpu_limit(seconds):
    """A preexec_fn capping the child's CPU time (SIGXCPU past it): a bound that holds at any machine load."""
    if os.name == "nt":
        return None
    import resource                                      # POSIX only

    def limit():
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))
    return limit


# The calling interpreter's site-packages folders (a venv's own, plus the base's when it was made
# with --system-site-packages; the user site when enabled), and the venv's own site-packages.
SITE_DIRS = ("import json, os, site; dirs = site.getsitepackages() + "
             "([site.getusersitepackages()] if site.ENABLE_USER_SITE else []); "
             "print(json.dumps([d for d in dirs if os.path.isdir(d)]))")
PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


def _run(cmd, cwd, cpu_seconds=300):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["MPLBACKEND"] = "Agg"
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=HANG_GUARD_S, preexec_fn=_cpu_limit(cpu_seconds))
    return done


def _ok(done, what):
    assert done.returncode == 0, f"{what} failed (rc {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(sdist, wheel, venv python, a working dir outside the source tree)."""
    pytest.importorskip("build", reason="the `build` package (pip install -e '.[test]') is needed to build the wheel")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    _ok(_run([sys.executable, "-m", "build", "--no-isolation", "--outdir", tmp / "dist", src], cwd=src), "python -m build")
    (sdist,) = (tmp / "dist").glob("popgrad-*.tar.gz")
    (wheel,) = (tmp / "dist").glob("popgrad-*.whl")
    venv = tmp / "venv"
    _ok(_run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp), "venv")
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site_dirs = json.loads(_ok(_run([sys.executable, "-c", SITE_DIRS], cwd=tmp), "site folders").stdout)
    purelib = Path(_ok(_run([py, "-c", PURELIB], cwd=tmp), "venv site-packages").stdout.strip())
    (purelib / "popgrad_test_calling_env.pth").write_text("".join(f"{d}\n" for d in site_dirs))
    # --ignore-installed: install even though an (editable) popgrad of the same version is visible
    # through the calling interpreter's site-packages.
    _ok(_run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--ignore-installed", "--no-index",
              "--quiet", wheel], cwd=tmp), "pip --python VENV install wheel")
    work = tmp / "elsewhere"
    work.mkdir()
    return sdist, wheel, py, work


def test_wheel_contents(built):
    """Test that the wheel holds popgrad, popgrad.theory, popgrad.numerics, the corpus counts and the index, and nothing top-level but popgrad."""
    _, wheel, _, _ = built
    names = set(zipfile.ZipFile(wheel).namelist())
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"popgrad"}, top
    for need in ("popgrad/theory/__init__.py", "popgrad/theory/theorem3.py", "popgrad/numerics/__init__.py",
                 "popgrad/numerics/recall.py", "popgrad/api.py", "popgrad/resources/tinyshakespeare_counts.json",
                 "popgrad/paper_refs/README.md"):
        assert need in names, need
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("popgrad/paper_refs/entries/")) == ENTRIES
    (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["popgrad"]


def test_sdist_contents(built):
    """Test that the sdist holds the sources, the shipped data and the checks that verify them."""
    sdist, _, _, _ = built
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for need in ("pyproject.toml", "MANIFEST.in", "README.md", "popgrad/__init__.py", "theory/theorem3.py",
                 "numerics/recall.py", "popgrad/resources/tinyshakespeare_counts.json", "paper_refs/README.md",
                 "checks/conftest.py" if (ROOT / "checks" / "conftest.py").exists() else "checks",
                 "tests/test_wheel.py", "docs/tutorial.py"):
        assert need in names, need
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("paper_refs/entries/")) == ENTRIES


PROBE = textwrap.dedent("""
    import importlib, json, sys
    from pathlib import Path
    venv = Path(sys.prefix).resolve()
    import popgrad, popgrad.theory, popgrad.numerics
    from popgrad import corpus, refs, registry
    claims = registry.all_claims()                       # imports every claims module (theory, numerics)
    for name in popgrad.__all__:
        getattr(popgrad, name)
    entries = refs.load_entries()
    problems = refs.consistency_problems(entries, [c.id for c in claims])
    outside = sorted(n for n, m in list(sys.modules.items()) if n.split(".")[0] == "popgrad"
                     and getattr(m, "__file__", None) and venv not in Path(m.__file__).resolve().parents)
    print(json.dumps({"popgrad": popgrad.__file__, "outside": outside, "entries_dir": str(refs.ENTRIES_DIR),
                      "entries": len(entries), "files": sorted(p.name for p in refs.ENTRIES_DIR.glob("*.json")),
                      "problems": problems, "vocab": corpus.default_counts().N, "fast": sum(not c.slow for c in claims)}))
""")


@pytest.fixture(scope="module")
def probe(built):
    _, _, py, work = built
    return json.loads(_ok(_run([py, "-c", PROBE], cwd=work), "probe").stdout)


def test_installed_package_is_the_wheel(built, probe):
    """Test that, outside the source tree, every loaded popgrad module comes from the venv."""
    _, _, py, _ = built
    venv = py.parent.parent.resolve()
    assert venv in Path(probe["popgrad"]).resolve().parents, probe["popgrad"]
    assert probe["outside"] == [], f"modules loaded from outside the venv: {probe['outside']}"


@pytest.mark.parametrize("name", ["theory", "numerics"])
def test_no_top_level_generic_names(built, name):
    """Test that `import theory` / `import numerics` fail after installing the wheel, and popgrad.<name> works."""
    _, _, py, work = built
    done = _run([py, "-c", f"import {name}"], cwd=work)
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, done.stderr
    _ok(_run([py, "-c", f"import popgrad.{name}"], cwd=work), f"import popgrad.{name}")


def test_installed_index_and_counts(built, probe):
    """Test that the installed package reads the shipped paper_refs index and corpus counts (what `popgrad report` uses)."""
    _, _, py, _ = built
    assert py.parent.parent.resolve() in Path(probe["entries_dir"]).resolve().parents
    assert probe["files"] == ENTRIES and probe["entries"] > 0
    assert probe["vocab"] == 65
    p = probe["problems"]
    assert p["code"] == [] and p["claims"] == [] and p["unreferenced_claims"] == [], p
    # no checks/ or tests/ in an installed package: one line says the node ids were not verified
    assert len(p["checks"]) == 1 and "not verified" in p["checks"][0], p["checks"]


RUN_CLAIMS = ("import json, sys; from popgrad import registry; ids = json.loads(sys.argv[1]); "
              "rows = registry.claim_rows([registry.get_claim(i) for i in ids], show_progress=False); "
              "print(json.dumps([[r['claim'], r['verdict'], r['note'][:300]] for r in rows]))")


def _one_claim_per_module() -> list[str]:
    """The quickest fast claim of each claims module, by the seconds of the saved run docs/results/claims.json
    (every fast claim when that file is absent). `pytest checks` runs every claim from the source tree; here the
    point is that each claims module's data and imports resolve from the installed wheel."""
    saved = ROOT / "docs" / "results" / "claims.json"
    if not saved.exists():
        return []
    rows = json.loads(saved.read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    quickest = {}
    for r in rows:
        module = r["claim"].split(".")[0]
        if not r["slow"] and (module not in quickest or r["seconds"] < quickest[module][0]):
            quickest[module] = (r["seconds"], r["claim"])
    return sorted(c for _, c in quickest.values())


def test_claims_from_the_wheel(built, probe):
    """Test that the installed console script lists every claim outside the source tree, and that one claim of each
    claims module (every fast claim without a saved run) passes from the wheel."""
    _, _, py, work = built
    script = py.parent / ("popgrad.exe" if os.name == "nt" else "popgrad")
    assert script.exists(), "the wheel did not install the popgrad console script"
    listed = _ok(_run([script, "claims", "--list", "--fast"], cwd=work), "popgrad claims --list").stdout
    ids = _one_claim_per_module()
    if not ids:
        done = _ok(_run([script, "claims", "--fast", "--json"], cwd=work, cpu_seconds=1200), "popgrad claims --fast")
        rows = json.loads(done.stdout)
        rows = rows["rows"] if isinstance(rows, dict) else rows
        assert len(rows) == probe["fast"] > 0
        assert [r["claim"] for r in rows if r["verdict"] == "fail"] == []
        return
    assert all(i in listed for i in ids), [i for i in ids if i not in listed]
    done = _ok(_run([py, "-c", RUN_CLAIMS, json.dumps(ids)], cwd=work, cpu_seconds=600), "claims from the wheel")
    rows = json.loads(done.stdout)
    assert [r[0] for r in rows] == ids
    assert [r for r in rows if r[1] == "fail"] == []


def test_readme_test_command_is_what_ci_runs():
    """Test that the last two lines of .ci/run (make and enter a venv; install and run the suite) stand
    verbatim in README.md, and that .ci/run stops on the first failing command (pytest's exit 5 included)."""
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert "set -euo pipefail" in ci
    venv_line, test_line = ci[-2:]
    assert "-m venv .venv" in venv_line and test_line.endswith("python -m pytest tests checks -q"), ci[-2:]
    assert "||" not in test_line and "; " not in test_line
    readme = (ROOT / "README.md").read_text().splitlines()
    for line in (venv_line, test_line):
        assert line in readme, f"README.md does not show the CI command {line!r}"
