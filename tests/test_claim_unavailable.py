"""A claim that cannot run where it is (an installed wheel without the docs) is reported, never passed."""

from pathlib import Path

import pytest

from popgrad import registry
from popgrad.claims import defaults


def test_claim_without_its_docs_is_unavailable_not_passed(monkeypatch):
    """Test that defaults.documented without docs/ gives an 'unavailable' row in `claim_rows` (what
    `popgrad claims` prints from a wheel) and fails `assert_claim` (what checks/ runs in a checkout)."""
    monkeypatch.setattr(defaults, "DOC", Path("/nonexistent/defaults.md"))
    registry._CACHE.pop("defaults.documented", None)
    row, = registry.claim_rows([registry.get_claim("defaults.documented")], show_progress=False)
    assert row["verdict"] == registry.UNAVAILABLE and "checkout" in row["note"]
    registry._CACHE.pop("defaults.documented", None)
    with pytest.raises(registry.ClaimUnavailable):
        registry.assert_claim("defaults.documented")
    registry._CACHE.pop("defaults.documented", None)
