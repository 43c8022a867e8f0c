"""Theorem 3 (App. B.3): three population gradient steps from zero on model D.

INTERFACE STUB (filled in by the exact-engine work). Conventions: code positions 0..T-1;
key-query matrices returned in the eq. (7) convention (query^T W key), see popgrad.conventions.

    step1_W_O2(model, emb, eta)                  eq. (15) by exact expectation -> (d, d)
    step1_W_O2_closed_form(model, emb, eta)      eq. (16) with tau exact       -> (d, d)
    tau(N, T)                                    tau = E[sum_{t=t_o}^T 1/t] as a sympy Rational
    step2_W_K2(model, emb, W_O2, eta, phat)      eq. (17), simplified arch. of B.3.2 -> (d, d), eq7 convention
    step3_W_K1(model, emb, W_O2, W_K2, eta, idealized)  Lemma 5 / B.3.3 -> (d, d), eq7 convention
"""
