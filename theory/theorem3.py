"""Theorem 3 (App. B.3): three population gradient steps from zero on model D, by exact expectation.

Conventions: code positions 0..T-1 (paper t = i + 1); key-query matrices are returned in the
eq. (7) convention (query^T W key), see popgrad.conventions. The paper's B.3.2/B.3.3 matrices are
in the lemma convention (key^T W query) and are converted with `lemma_to_eq7`.

    step1_W_O2(model, emb, eta)                  eq. (15) by exact expectation -> (d, d)
    step1_W_O2_closed_form(model, emb, eta)      eq. (16) with tau exact       -> (d, d)
    tau(N, T)                                    tau = E[sum_{t=t_o}^T 1/t] as a sympy Rational
    step2_W_K2(model, emb, W_O2, eta, phat)      eq. (17), simplified arch. of B.3.2 -> (d, d), eq7 convention
    step3_W_K1(model, emb, W_O2, W_K2, eta, idealized)  Lemma 5 / B.3.3 -> (d, d), eq7 convention

Paper comparisons: step1_coefficients / step1_W_O2_corrected (the exact (16)), a_kji_exact /
a_kji_paper, delta_decomposition (24), step2_token_readout (25), abcd_terms / abcd_paper /
abcd_corrected_C (26)-(29), step3_final_form_paper, recall_per_step (9).

Token statistics come from `popgrad.theory.model_d_exact` (no enumeration); embeddings are applied last.
`phat="true"` (the softmax at zero instead of the paper's 1/N) has no closed form and is computed
by enumerating model D (small N, T only).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import sympy
import torch

from popgrad.conventions import eq7_to_lemma, lemma_to_eq7
from popgrad.data import SecondOccurrenceModel
from popgrad.embeddings import require_same_sizes
from popgrad.errors import PopgradError, choice, positive_float
from popgrad.memory import eq7_targets, memory_recall
from popgrad.theory import model_d_exact as mx


def _check(model, emb, eta):
    if not isinstance(model, SecondOccurrenceModel):
        raise PopgradError(f"model must be a SecondOccurrenceModel, got {type(model).__name__}")
    require_same_sizes(emb, N=model.N, T=model.T)
    if emb.T != model.T:
        raise PopgradError(f"embeddings have T={emb.T} positions, model D has T={model.T}")
    if emb.W_E.dtype != torch.float64:
        raise PopgradError("exact paths need float64 embeddings (make_embeddings(dtype='float64'))")
    return positive_float("eta", eta)


# ----------------------------------------------------------------------------- step 1
def step1_W_O2(model, emb, eta=1.0) -> torch.Tensor:
    """Eq. (15) (B.3.1): W_O^2 = (eta/N) sum_k w_U(k) (E[x|y=k] - E[x])^T by exact expectation (d, d)."""
    eta = _check(model, emb, eta)
    N, T = model.N, model.T
    kw = dict(dtype=emb.W_E.dtype, device=emb.W_E.device)
    M1 = mx.label_token_means(N, T, torch.full((T,), 1.0 / T, **kw))     # token part of x
    M2 = mx.label_token_means(N, T, mx.mean_weights(T, **kw))            # first-layer part
    dM1, dM2 = M1 - M1.mean(0), M2 - M2.mean(0)                          # (N, N) [k, i]
    inner = dM1 @ emb.W_E.T + dM2 @ emb.W_E.T @ emb.Phi1.T              # (N, d)
    return (eta / N) * emb.W_U.T @ inner @ emb.W_V2.T


def tau(N: int, T: int) -> sympy.Rational:
    """tau := E[sum_{t=t_o}^T 1/t] (B.3.1), t_o = t_q + 1, exact."""
    law = mx.first_trigger_law(N, T)
    tot = sum((law[tq] * sum(Fraction(1, t) for t in range(tq + 1, T + 1)) for tq in range(1, T)), Fraction(0))
    return sympy.Rational(tot.numerator, tot.denominator)


def step1_W_O2_closed_form(model, emb, eta=1.0) -> torch.Tensor:
    """Eq. (16) (B.3.1): (eta/NT) sum_k w_U(k) (W_V^2 (w_E(k) - wbar_E))^T + tau * (same with Phi_1) (d, d)."""
    eta = _check(model, emb, eta)
    N, T = model.N, model.T
    return _step1_from_coefficients(emb, eta, Fraction(1, T), Fraction(str(tau(N, T))) / T)


def _step1_from_coefficients(emb, eta, c1, c2) -> torch.Tensor:
    """(eta/N) W_U^T (I - 11^T/N) (c1 W_E^T + c2 W_E^T Phi_1^T) W_V2^T (d, d)."""
    N = emb.N
    C = torch.eye(N, dtype=emb.W_E.dtype, device=emb.W_E.device) - 1.0 / N
    inner = C @ (float(c1) * emb.W_E.T + float(c2) * emb.W_E.T @ emb.Phi1.T)
    return (eta / N) * emb.W_U.T @ inner @ emb.W_V2.T


def step1_coefficients(N: int, T: int) -> tuple[Fraction, Fraction]:
    """Exact (c1, c2) with (15) = (eta/N) W_U^T (I - 11^T/N)(c1 W_E^T + c2 W_E^T Phi_1^T) W_V2^T.

    The paper's (16) has c1 = 1/T, c2 = tau/T. c_m = sum_t omega_t (P(z_t=k|y=k) - P(z_t=i|y=k)).
    """
    same, other = mx.token_law_given_output(N, T)
    cw = [None] + [sum((Fraction(1, u) for u in range(t, T + 1)), Fraction(0)) / T for t in range(1, T + 1)]
    c1 = sum(((same[t] - other[t]) / T for t in range(1, T + 1)), Fraction(0))
    c2 = sum((cw[t] * (same[t] - other[t]) for t in range(1, T + 1)), Fraction(0))
    return c1, c2


def step1_W_O2_corrected(model, emb, eta=1.0) -> torch.Tensor:
    """Eq. (16) corrected: the form of (16) with the exact coefficients of `step1_coefficients` (d, d)."""
    eta = _check(model, emb, eta)
    return _step1_from_coefficients(emb, eta, *step1_coefficients(model.N, model.T))


# ----------------------------------------------------------------------------- step 2
def step2_W_K2(model, emb, W_O2, eta=1.0, phat="uniform") -> torch.Tensor:
    """Eq. (17) (B.3.2): one step on W_K^2 from zero (Lemma 4; keys x_{t,1}, queries/values x_{t,0}) (d, d), eq7."""
    eta = _check(model, emb, eta)
    choice("phat", phat, ("uniform", "true"))
    if phat == "true":
        return lemma_to_eq7(_step2_true_phat(model, emb, W_O2, eta))
    T = model.T
    Phi2 = W_O2 @ emb.W_V2
    G, H = emb.W_U @ Phi2 @ emb.W_E, emb.W_U @ Phi2 @ emb.P             # (N, N), (N, T)
    S_zq, S_sq = mx.key_query_statistic(mx.centred_rows(G), mx.centred_rows(H),
                                        mx.centred_keys(T, dtype=G.dtype, device=G.device))
    W = emb.W_E @ S_zq @ emb.W_E.T + emb.P @ S_sq @ emb.W_E.T            # (d, d) key x query
    W = W + torch.outer(emb.W_E @ S_zq.sum(1) + emb.P @ S_sq.sum(1), emb.P[:, T - 1])
    return lemma_to_eq7((eta / T) * emb.Phi1 @ W)


def step2_token_readout(N: int, T: int, G: torch.Tensor, H: torch.Tensor | None = None, eta=1.0) -> torch.Tensor:
    """(25) in token space: R[i, j] = (eta/T) S_zq[i, j], the readout (Phi_1 w_E(i))^T W_K^2 w_E(j) for orthonormal embeddings."""
    H = torch.zeros(N, T, dtype=G.dtype, device=G.device) if H is None else H
    S_zq, _ = mx.key_query_statistic(mx.centred_rows(G), mx.centred_rows(H), mx.centred_keys(T, dtype=G.dtype, device=G.device))
    return (eta / T) * S_zq


# ----------------------------------------------------------------------------- step 3
def step3_W_K1(model, emb, W_O2, W_K2, eta=1.0, idealized=False, phat="uniform") -> torch.Tensor:
    """Lemma 5 (B.3.3): one step on W_K^1 from zero, positional keys/queries, values w_E(z_t) (d, d), eq7.

    W_K2 is given in the eq7 convention and converted to the lemma's W_2. idealized=True replaces
    w_U(k)^T Phi_2 w_E(z) by alpha 1{z = k} and (Phi_1 w_E(z))^T W_2 w_E(q) by alpha' 1{z = q}, with
    alpha, alpha' the mean diagonal readouts of the actual matrices.
    """
    eta = _check(model, emb, eta)
    choice("phat", phat, ("uniform", "true"))
    G, Km = step3_readouts(emb, W_O2, W_K2, idealized)
    if phat == "true":
        return lemma_to_eq7(_step3_true_phat(model, emb, G, Km, eta))
    Q = mx.value_key_pair_statistic(mx.centred_rows(G), Km, model.T)
    return lemma_to_eq7(eta * emb.P @ step3_position_matrix(Q) @ emb.P.T)



def three_steps(model, emb, eta=1.0, phat="uniform") -> dict:
    """Theorem 3 (B.3): W_O^2, then W_K^2, then W_K^1, each one step from zero (eq7 convention)."""
    W_O2 = step1_W_O2(model, emb, eta)
    W_K2 = step2_W_K2(model, emb, W_O2, eta, phat=phat)
    W_K1 = step3_W_K1(model, emb, W_O2, W_K2, eta, idealized=False, phat=phat)
    return {"W_O2": W_O2, "W_K2": W_K2, "W_K1": W_K1}

def step3_readouts(emb, W_O2, W_K2, idealized=False):
    """G[k, z] = w_U(k)^T Phi_2 w_E(z) and Km[z, q] = (Phi_1 w_E(z))^T W_2 w_E(q) (or their idealizations)."""
    G = emb.W_U @ W_O2 @ emb.W_V2 @ emb.W_E
    Km = emb.W_E.T @ emb.Phi1.T @ eq7_to_lemma(W_K2) @ emb.W_E
    if idealized:
        eye = torch.eye(emb.N, dtype=G.dtype, device=G.device)
        G, Km = torch.diagonal(G).mean() * eye, torch.diagonal(Km).mean() * eye
    return G, Km


def step3_position_matrix(Q: torch.Tensor) -> torch.Tensor:
    """M (T, T) with W_K^1 (lemma) = eta P M P^T, from Q[t, s] = E[Gt[o, z_t] Km[z_s, q]] (eq. (35)-(36))."""
    T = Q.shape[0]
    avg = mx.causal_average(T, dtype=Q.dtype, device=Q.device)          # 1{s<=t}/t
    A = avg * (Q - Q.mean(0, keepdim=True)) / T                          # (T, T) [t, s]
    return A.T - avg.T * A.sum(1)[None, :]                               # [s', t]


# ----------------------------------------------------------------------------- enumeration (true p_hat)
def _enumerated(model, like):
    z, prob, y = model.enumerate()
    kw = dict(device=like.device)
    return (torch.as_tensor(z, **kw), torch.as_tensor(prob, dtype=like.dtype, **kw),
            torch.as_tensor(y, **kw))


def _step2_true_phat(model, emb, W_O2, eta):
    """Lemma 4 at W = 0 with p_hat = softmax(W_U Phi_2 xbar_0), by enumeration (lemma convention)."""
    z, prob, y = _enumerated(model, emb.W_E)
    T = model.T
    Phi2 = W_O2 @ emb.W_V2
    X0 = emb.W_E.T[z] + emb.P.T[None]                                    # (M, T, d)
    keys = torch.einsum("ts,msd->mtd", mx.centred_keys(T, dtype=X0.dtype, device=X0.device), X0) @ emb.Phi1.T
    g = X0 @ (emb.W_U @ Phi2).T                                          # (M, T, N)
    phat = torch.softmax(g.mean(1), -1)                                  # (M, N)
    wgt = torch.nn.functional.one_hot(y, model.N).to(X0.dtype) - phat
    a = torch.einsum("mn,mtn->mt", wgt, g) / T                           # (M, T)
    return eta * torch.einsum("m,mt,mtd,me->de", prob, a, keys, X0[:, -1])


def _step3_true_phat(model, emb, G, Km, eta):
    """Lemma 5 at W = 0 with p_hat the softmax of the linearized logits, by enumeration (lemma convention)."""
    z, prob, y = _enumerated(model, emb.W_E)
    T = model.T
    avg = mx.causal_average(T, dtype=G.dtype, device=G.device)
    kq = Km[z, z[:, -1:]]                                                # (M, T) Km[z_s, q]
    u = kq @ avg.T                                                       # (M, T) u_t at W = 0
    sig = (1.0 + u - u.mean(1, keepdim=True)) / T
    g = G[:, z].permute(1, 2, 0)                                         # (M, T, N) G[k, z_t]
    phat = torch.softmax(torch.einsum("mtn,mt->mn", g, sig), -1)
    wgt = torch.nn.functional.one_hot(y, model.N).to(G.dtype) - phat
    a = torch.einsum("mn,mtn->mt", wgt, g)                               # (M, T)
    Qm = torch.einsum("m,mt,ms->ts", prob, a, kq)                        # E[a_t Km[z_s, q]]
    return eta * emb.P @ step3_position_matrix(Qm) @ emb.P.T


# ----------------------------------------------------------------------------- step 2: a_{k,j,i}
A_CASES = ("j!=k, i=j", "j=k=i", "i!=j=k", "j!=k, i=k", "i not in {j,k}", "avg_{k!=j}, i!=j")


def _key_weight(T: int):
    """w(s | t_o) = 1{s <= t_o}/t_o - c_s, the coefficient of token s in x_{t_o,1} - xbar_1 (paper s)."""
    c = [None] + [sum((Fraction(1, u) for u in range(s, T + 1)), Fraction(0)) / T for s in range(1, T + 1)]
    return lambda s, to: (Fraction(1, to) if s <= to else Fraction(0)) - c[s]


def a_kji_exact(N: int, T: int) -> dict:
    """a_{k,j,i} (B.3.2) exactly: the coefficient of Phi_1 w_E(i) in E[x_{t_o,1} - xbar_1 | y=k, q=j] (Fractions).

    Cases of A_CASES; the last is the average over k != j of the fourth and fifth (i != j).
    """
    w = _key_weight(T)

    def value(special: dict, to: int, i_free: bool) -> Fraction:
        tot = sum((w(s, to) for s, tok in special.items() if tok), Fraction(0))
        if i_free:
            tot += sum((w(s, to) for s in range(1, T + 1) if s not in special), Fraction(0)) / (N - 1)
        return tot

    out = {}
    tos = range(2, T)                                       # j != k: t_o ~ U{2..T-1}
    avg = lambda f: sum((f(to) for to in tos), Fraction(0)) / (T - 2)
    out[A_CASES[0]] = avg(lambda to: value({to - 1: 1, to: 0, T: 1}, to, False))
    out[A_CASES[1]] = value({T - 1: 1, T: 1}, T, False)
    out[A_CASES[2]] = value({T - 1: 0, T: 0}, T, True)
    out[A_CASES[3]] = avg(lambda to: value({to - 1: 0, to: 1, T: 0}, to, True))
    out[A_CASES[4]] = avg(lambda to: value({to - 1: 0, to: 0, T: 0}, to, True))
    out[A_CASES[5]] = (out[A_CASES[3]] + (N - 2) * out[A_CASES[4]]) / (N - 1)
    return {k: sympy.Rational(v.numerator, v.denominator) for k, v in out.items()}


def a_kji_paper(N: int, T: int) -> dict:
    """The paper's case values of a_{k,j,i} (B.3.2): gamma_T, 2/T - 1/(T(T-1)) - 2/T^2, and case 3 (sympy)."""
    R = sympy.Rational
    H = lambda a: sum((R(1, t) for t in range(a, T + 1)), R(0))
    gamma = sum((R(1, to) - H(to - 1) / T - R(1, T**2) for to in range(2, T)), R(0)) / (T - 2)
    case3 = R(T - 2, T * (N - 1)) - R(1, T) * (R(T - 2, N - 1) + R(T - 2, (T - 1) * (N - 1)) + R(T - 2, T * (N - 1)))
    return {A_CASES[0]: gamma, A_CASES[1]: R(2, T) - R(1, T * (T - 1)) - R(2, T**2), A_CASES[2]: case3}


# ----------------------------------------------------------------------------- step 3: A, B, C, D
def _indicator_k(N: int, T: int):
    """P(z_t = k, first trigger at code r | y = y') as (cases...) arrays, for y' = k and y' != k.

    Returns (P_same (T, T) [t, r], P_other (T, T) [t, r]): joint probabilities over the code
    position r of the first trigger and the event z_t = k, given y = k resp. y = k' != k.
    """
    P_same, P_oth = np.zeros((T, T)), np.zeros((T, T))
    R = T - 2
    for r in range(R):                                       # q != y (prob (N-1)/N), t_q = r
        free = np.ones(T)
        free[[r, r + 1, T - 1]] = 0
        pr = (N - 1) / N / R
        P_same[:, r] += pr * (np.eye(T)[r + 1] + free / (N - 1))
        # y = k' != k: q = k (prob 1/(N-1) of q != k'), else k is a free token with prob 1/(N-1)
        P_oth[:, r] += pr * (np.eye(T)[r] + np.eye(T)[T - 1]) / (N - 1)
        P_oth[:, r] += pr * (N - 2) / (N - 1) * free / (N - 1)
    free = np.ones(T)
    free[[T - 2, T - 1]] = 0
    P_same[T - 2:, T - 2] += 1.0 / N                          # q = y = k: z_{T-1} = z_T = k
    P_oth[:, T - 2] += free / (N - 1) / N                     # q = y = k' != k: k free
    return P_same, P_oth


def abcd_terms(N: int, T: int) -> dict:
    """Eq. (26)-(29) (B.3.3) exactly: A, B, C, D as (T, T) [t, s] coefficients of p_s (code positions).

    A[t] . P = E[1{z_t=k} 1{t_q<=t} (p_{t_q} - pbar_{1:t}) | y=k], B unconditional, C, D with r_k.
    Independent of k by symmetry.
    """
    P_same, P_oth = _indicator_k(N, T)
    P_unc = P_same / N + P_oth * (N - 1) / N
    avg = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]        # [t, s]
    after = np.tril(np.ones((T, T)))                                      # [t, r]: r <= t

    def term(Pz):                                                         # Pz[t', r]
        # X[t', t, s] = sum_r Pz[t', r] 1{r <= t} (delta_{s r} - avg[t, s])
        X = np.einsum("ur,tr,rs->uts", Pz, after, np.eye(T)) - np.einsum("ur,tr,ts->uts", Pz, after, avg)
        return X[np.arange(T), np.arange(T)], X.mean(0)                   # (t' = t), (1/T) sum_t'
    A, C = term(P_same)
    B, D = term(P_unc)
    return {"A": A, "B": B, "C": C, "D": D}


def abcd_paper(N: int, T: int) -> dict:
    """The paper's leading terms: A = P(t_q=t-1)(p_{t-1} - pbar_{1:t}), C = A/T, B = D = 0 ((T, T) [t, s])."""
    law = np.array([float(v) for v in mx.first_trigger_law(N, T)[1:]])  # P(t_q = paper t), code index t-1
    avg = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]
    A = np.zeros((T, T))
    for t in range(1, T):                                               # code t, previous code t-1
        A[t] = law[t - 1] * (np.eye(T)[t - 1] - avg[t])
    return {"A": A, "B": np.zeros((T, T)), "C": A / T, "D": np.zeros((T, T))}


def step3_final_form_paper(N: int, T: int, corrected: bool = False):
    """The final form of B.3.3: p_s^T W_K^1 p_t / (eta alpha alpha') as a (T, T) [s, t] matrix.

    Paper: (T-1)/(T^2 t) P(t_q=t-1)(1{s=t-1} - 1{s<=t}/t). corrected=True uses 1/(T t) instead of
    (T-1)/(T^2 t): C_{t,k} is O(1/N) for t <= T-2, not P(t_q=t-1)/T (p_{t-1} - pbar_{1:t}).
    """
    A = abcd_paper(N, T)["A"]                                           # [t, s]
    tt = np.arange(1, T + 1)
    factor = 1.0 / (T * tt) if corrected else (T - 1) / (T**2 * tt)
    return (A * factor[:, None]).T


def abcd_corrected_C(N: int, T: int):
    """C's leading term: (1/T) sum_{u<=t} P(t_q=u)(p_u - pbar_{1:t}) ((T, T) [t, s]); zero for t <= T-2 up to O(1/N)."""
    law = np.array([float(v) for v in mx.first_trigger_law(N, T)[1:]])  # code r = t_q - 1
    avg = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]
    after = np.tril(np.ones((T, T)))                                     # [t, r]
    return (np.diag(law)[None] * after[:, :, None]).sum(1) / T - (after @ law)[:, None] * avg / T


# ----------------------------------------------------------------------------- recall (9)
def recall_per_step(emb, W_O2, W_K2, W_K1) -> dict:
    """Recall (9) of each learned matrix against its target in (7), all in the eq. (7) convention."""
    targets = eq7_targets(emb)
    return {name: memory_recall(W, *targets[name]) for name, W in (("W_O2", W_O2), ("W_K2", W_K2), ("W_K1", W_K1))}


# ----------------------------------------------------------------------------- step 2: (24)
def delta_decomposition(N: int, T: int) -> dict:
    """(24) (B.3.2): Delta^o, Delta^q, Delta^r_{k,j} by enumeration, as (N_k, N_j, N + T) coefficient arrays.

    Delta^x_{k,j} = E[sum_{t in T_x} 1{z_t=k}(x_{t,1} - xbar_1) | y=k, q=j] - E[same | q=j], expressed as
    coefficients of Phi_1 (w_E(i); p_s) (token part first). T_o = {t_o}, T_q = {t_o - 1, T} minus {t_o}
    (when o = q, t_o = T is counted once, in T_o), T_r = the rest. Small N, T only (enumeration).
    """
    z, prob, y = SecondOccurrenceModel(N, T).enumerate()
    M = z.shape[0]
    q = z[:, -1]
    to = (z == q[:, None]).argmax(1) + 1                                # code position of the output
    beta = mx.centred_keys(T).numpy()                                   # (T, T) [t, s]
    tok = np.zeros((M, T, N))
    tok[np.arange(M)[:, None], np.arange(T)[None], z] = 1.0
    keys = np.concatenate([np.einsum("ts,msn->mtn", beta, tok), np.broadcast_to(beta, (M, T, T))], -1)  # (M, T, N+T)
    pos = np.arange(T)[None]
    sets = {"o": pos == to[:, None]}
    sets["q"] = ((pos == to[:, None] - 1) | (pos == T - 1)) & ~sets["o"]
    sets["r"] = ~(sets["o"] | sets["q"])
    out = {}
    Pyq = np.zeros((N, N))
    np.add.at(Pyq, (y, q), prob)                                        # P(y = k, q = j)
    Pq = Pyq.sum(0)
    for name, mask in sets.items():
        F = np.einsum("mtk,mt,mtc->mkc", tok, mask.astype(float), keys)  # (M, N_k, N+T)
        cond = np.zeros((N, N, N + T))
        np.add.at(cond, (y, q), prob[:, None] * F[np.arange(M), y])
        cond /= Pyq[:, :, None]
        marg = np.zeros((N, N, N + T))                                   # [k, j] = E[F_k | q = j]
        for j in range(N):
            sel = q == j
            marg[:, j] = np.einsum("m,mkc->kc", prob[sel], F[sel]) / Pq[j]
        out[name] = cond - marg
    return out


# names used in the assignment brief
a_kji_cases = a_kji_exact
step3_terms_ABCD = abcd_terms
