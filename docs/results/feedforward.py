"""Regenerates docs/results/feedforward.json: eq. (8) assembled with the head (7), and KL (10) against d.

    OMP_NUM_THREADS=1 python docs/results/feedforward.py [CLAIM_ID ...]

Runs the claims eq8.assembled_head and eq8.kl_vs_d (or the ones named) and writes their measurements
into the JSON file (entries of claims not run are kept).
"""

from claim_runs import run_and_save   # docs/results/claim_runs.py (this script's folder is on sys.path)

run_and_save("feedforward.json", ("eq8.assembled_head", "eq8.kl_vs_d"))
