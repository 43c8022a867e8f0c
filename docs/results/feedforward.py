"""Regenerates docs/results/feedforward.json: eq. (8) assembled with the head (7), and KL (10) against d.

    OMP_NUM_THREADS=1 python docs/results/feedforward.py [CLAIM_ID ...]

Runs the claims eq8.assembled_head and eq8.kl_vs_d (or the ones named) and writes their measurements
into the JSON file (entries of claims not run are kept).
"""

import json
import os
import sys
import time

from popgrad.registry import run_claim

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "feedforward.json")
out = json.load(open(path)) if os.path.exists(path) else {}
for cid in sys.argv[1:] or ("eq8.assembled_head", "eq8.kl_vs_d"):
    start = os.times()
    m, secs = run_claim(cid)
    cpu = sum(os.times()[:2]) - sum(start[:2])
    out[cid] = {"passed": m.passed, "error": m.error, "value": m.value, "seconds": secs, "cpu_seconds": cpu,
                "details": m.details, "load": os.getloadavg()}
    print(cid, m.passed, f"{secs:.0f} s ({cpu:.0f} CPU-s)", m.value, flush=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1, default=float)
print("wrote", path, time.ctime())
