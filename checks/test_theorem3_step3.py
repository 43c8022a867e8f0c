"""Checks: Theorem 3, step 3 (App. B.3.3, eq. (26)-(29)): learning W_K^1, and recall after the steps."""

from popgrad.registry import assert_claim


def test_theorem3_step3_lemma5_engine_matches_enumeration():
    # Lemma 5 / B.3.3: one step on W_K^1 from zero (positional first layer, linearized second layer).
    assert_claim("theorem3.step3.lemma5")


def test_theorem3_step3_eq26_29_abcd_identity():
    # Eq. (26)-(29): W_K^1 p_t = (eta alpha alpha'/(NTt)) sum_k (A - B - C + D) + the dropped key s = T.
    assert_claim("theorem3.step3.abcd_identity")


def test_theorem3_step3_eq26_29_abcd_values_erratum():
    # After (29): A, B, D as stated up to O(1/N); C is O(1/N) for t <= T-2, not P(t_q=t-1)/T (p_{t-1} - pbar).
    assert_claim("theorem3.step3.abcd_values")


def test_theorem3_step3_final_form_erratum():
    # B.3.3 final form: p_s^T W_K^1 p_t ~ eta a a'/(T t) P(t_q=t-1)(1{s=t-1} - 1{s<=t}/t) + O(1/N).
    assert_claim("theorem3.step3.final_form")


def test_theorem3_step3_idealized_inputs_gap():
    # B.3.3: the actual readouts approach the idealized alpha 1{z_t=k}, alpha' 1{z_s=z_T} as d grows.
    assert_claim("theorem3.step3.idealized_gap")


def test_theorem3_recall_after_each_step():
    # Eq. (7), (9): recall of W_O^2 after step 1 (and of W_K^2, W_K^1, reported) on an (N, T, d) grid.
    assert_claim("theorem3.recall")
