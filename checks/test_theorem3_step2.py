"""Checks: Theorem 3, step 2 (App. B.3.2, eq. (17)-(25)): learning W_K^2."""

from popgrad.registry import assert_claim


def test_theorem3_step2_eq17_engine_matches_enumeration():
    # Eq. (17): one step on W_K^2 from zero (Lemma 4, simplified architecture), p_hat = 1/N and true p_hat.
    assert_claim("theorem3.step2.eq17")


def test_theorem3_step2_a_kji_cases_exact():
    # B.3.2: the case values gamma_T, 2/T - 1/(T(T-1)) - 2/T^2 and case 3 of a_{k,j,i} hold exactly.
    assert_claim("theorem3.step2.a_cases")


def test_theorem3_step2_a_kji_orders():
    # B.3.2: (1/N) sum_k a_{k,j,i} is O(1/N) for i != j and Omega(1/T) for i = j.
    assert_claim("theorem3.step2.a_orders")


def test_theorem3_step2_eq25_readout_orders():
    # Eq. (25): (Phi_1 w_E(i))^T W_K^2 w_E(j) ~ (alpha eta/(TN)){Omega(1/T) 1{i=j} + O(T/N)}.
    assert_claim("theorem3.step2.eq25")


def test_theorem3_step2_eq24_delta_decomposition_exact():
    # Eq. (24): with idealized Phi_2, W_K^2 = (alpha eta/(TN^2)) sum_{j,k} (Delta^o + Delta^q + Delta^r)(w_E(j) + p_T)^T.
    assert_claim("theorem3.step2.eq24")


def test_theorem3_step2_delta_q_r_orders():
    # B.3.2: (1/N) sum_k Delta^q_{k,j} = O(1/N) and Delta^r = O(T/N) are negligible next to Delta^o.
    assert_claim("theorem3.step2.delta_orders")
