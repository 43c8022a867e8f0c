"""Test that docs/defaults.md's generated option tables and docs/library_defaults.md are in sync with the code."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_doc_is_generated_from_the_parsers():
    """Test that `python docs/defaults.py --check` finds both pages up to date (rerun it after changing a default)."""
    rc = subprocess.run([sys.executable, str(ROOT / "docs" / "defaults.py"), "--check"], cwd=ROOT).returncode
    assert rc == 0, "docs/defaults.md or docs/library_defaults.md is out of date: run `python docs/defaults.py`"
