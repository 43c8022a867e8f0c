"""Regenerates docs/results/attention_stats.json: Figure 2's attention statistics and one layer vs two.

    OMP_NUM_THREADS=1 python docs/results/attention_stats.py [CLAIM_ID ...]

Runs the claims figure2.trained_pattern and sec3.one_vs_two_layers (or the ones named) in one process (their
training runs are shared through the claims' per-process cache) and writes their measurements into the JSON file
(entries of claims not run are kept).
"""

import json
import os
import sys
import time

from popgrad.registry import run_claim

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "attention_stats.json")
out = json.load(open(path)) if os.path.exists(path) else {}
for cid in sys.argv[1:] or ("figure2.trained_pattern", "sec3.one_vs_two_layers"):
    start = os.times()
    m, secs = run_claim(cid)
    cpu = sum(os.times()[:2]) - sum(start[:2])
    out[cid] = {"passed": m.passed, "error": m.error, "value": m.value, "seconds": secs, "cpu_seconds": cpu,
                "details": m.details, "load": os.getloadavg()}
    print(cid, m.passed, f"{secs:.0f} s ({cpu:.0f} CPU-s)", m.value, flush=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1, default=float)
print("wrote", path, time.ctime())
