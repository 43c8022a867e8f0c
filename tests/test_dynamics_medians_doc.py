"""The reference of the claim dynamics.medians_reproduce is the documented one (docs/results/dynamics_medians.json)."""

import json
from pathlib import Path

from popgrad.claims.dynamics import MEDIANS_CI


def test_dynamics_medians_reference_is_the_documented_json():
    # The claim's reference numbers are those the documented script wrote (docs/results/dynamics_medians.json).
    doc = json.loads((Path(__file__).resolve().parents[1] / "docs" / "results" / "dynamics_medians.json").read_text())
    assert doc["setting"]["etas"] == MEDIANS_CI["etas"] and doc["setting"]["N"] == MEDIANS_CI["N"]
    ref = {(kind, float(th)): (m["median"], m["lo"], m["hi"], m["fresh_lo"], m["fresh_hi"])
           for kind, ths in doc["schedules"].items() for th, m in ths.items()}
    assert ref == MEDIANS_CI["reference"]


