"""Regenerates docs/results/attention_stats.json: Figure 2's attention statistics and one layer vs two.

    OMP_NUM_THREADS=1 python docs/results/attention_stats.py

Runs the claims figure2.trained_pattern and sec3.one_vs_two_layers in one process (their 12 training runs are
shared through the claims' per-process cache) and writes their measurements.
"""

import json
import os
import time

from popgrad.registry import run_claim

out = {}
for cid in ("figure2.trained_pattern", "sec3.one_vs_two_layers"):
    m, secs = run_claim(cid)
    out[cid] = {"passed": m.passed, "error": m.error, "value": m.value, "seconds": secs, "details": m.details,
                "load": os.getloadavg()}
    print(cid, m.passed, f"{secs:.0f} s", m.value, flush=True)
path = os.path.join(os.path.dirname(__file__), "attention_stats.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1, default=float)
print("wrote", path, time.ctime())
