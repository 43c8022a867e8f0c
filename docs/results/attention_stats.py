"""Regenerates docs/results/attention_stats.json: Figure 2's attention statistics and one layer vs two.

    OMP_NUM_THREADS=1 python docs/results/attention_stats.py [CLAIM_ID ...]

Runs the claims figure2.trained_pattern and sec3.one_vs_two_layers (or the ones named) in one process (their
training runs are shared through the claims' per-process cache) and writes their measurements into the JSON file
(entries of claims not run are kept).
"""

from claim_runs import run_and_save   # docs/results/claim_runs.py (this script's folder is on sys.path)

run_and_save("attention_stats.json", ("figure2.trained_pattern", "sec3.one_vs_two_layers"))
