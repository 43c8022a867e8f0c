"""Checks: Theorem 3, step 1 (App. B.3.1, eq. (15)-(16)): learning W_O^2."""

from popgrad.registry import assert_claim


def test_theorem3_step1_eq15_engine_matches_enumeration():
    # Eq. (15): one step on W_O^2 from zero is (eta/N) sum_k w_U(k)(E[x|y=k] - E[x])^T (engine vs autograd).
    assert_claim("theorem3.step1.eq15")


def test_theorem3_step1_eq16_closed_form_erratum():
    # Eq. (16): exact only up to O(1/N); the corrected coefficients c1 = (N-2)/((N-1)T), c2 reproduce (15).
    assert_claim("theorem3.step1.eq16")


def test_theorem3_step1_tau_exact_matches_enumeration():
    # B.3.1: tau = E[sum_{t=t_o}^T 1/t] as an exact rational equals the enumeration average.
    assert_claim("theorem3.step1.tau")


def test_theorem3_step1_readouts_error_rates():
    # After (16): w_U(k)^T W_O^2 W_V^2 (Phi_1) w_E(j) ~ eta (tau)/(NT) 1{k=j} + O(1/N) relative.
    assert_claim("theorem3.step1.readouts")
