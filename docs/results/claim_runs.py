"""Run claims in one process and keep their measurements in a JSON file beside this script.

Used by the regeneration scripts of docs/results (attention_stats.py, feedforward.py): entries of
claims not run are kept; each measurement records its wall and CPU seconds and the load average.
"""

import json
import os
import sys
import time

from popgrad.registry import run_claim


def run_and_save(json_name: str, default_ids: tuple) -> None:
    """Run the claims named on the command line (else `default_ids`) and write them into `json_name`."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), json_name)
    out = json.load(open(path)) if os.path.exists(path) else {}
    for cid in sys.argv[1:] or default_ids:
        start = os.times()
        m, secs = run_claim(cid)
        cpu = sum(os.times()[:2]) - sum(start[:2])
        out[cid] = {"passed": m.passed, "error": m.error, "value": m.value, "seconds": secs, "cpu_seconds": cpu,
                    "details": m.details, "load": os.getloadavg()}
        print(cid, m.passed, f"{secs:.0f} s ({cpu:.0f} CPU-s)", m.value, flush=True)
        with open(path, "w") as f:
            json.dump(out, f, indent=1, default=float)
    print("wrote", path, time.ctime())
