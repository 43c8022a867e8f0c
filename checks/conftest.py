"""`pytest checks/` is the proof sanity check: one test per claim of popgrad.registry.

Each test opens with a comment stating the claim and calls `assert_claim(id)`, which runs the
claim's comparison of two independent computations and fails with the largest discrepancy and
the allowed amount. `pytest checks/ -k lemma4` selects one claim.
"""
