"""Values the head diagnostics report (side projections, bias ratios, counts and standard errors), each
against an independent computation."""

from popgrad.registry import assert_claim


def test_theorem3_head_side_projections():
    # B.3.2, (24): W_K^2 with positions removed on the query side, the key side or both annihilates exactly the
    # removed directions and keeps u^T W v on their complements (QR bases, vector by vector; float64, 1e-10).
    assert_claim("theorem3.head_side_projections")


def test_theorem3_head_bias_ratios():
    # B.3.2, (17): every field of bias_ratios (token signal, query-position and query-token biases, their ratios)
    # equals least-squares coefficients read out by loops (rel <= 1e-9).
    assert_claim("theorem3.head_bias_ratios")


def test_theorem3_head_counts_and_se():
    # Sec. 4.2, B.3.2, B.3.3: accuracies and layer-2 peak-on-output fractions count what a per-sequence d-space loop
    # gets right; their standard errors are sqrt(p(1-p)/n) and agree with a bootstrap within 25 %.
    assert_claim("theorem3.head_counts_and_se")
