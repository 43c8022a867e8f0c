"""Claims: Theorem 3's three exact steps (App. B.3) and the paper's approximations of them.

Exact steps are held against enumeration + autograd (`popgrad.claims.engine` references);
approximate statements are measured over a grid of N, T (token space, i.e. the d -> infinity
limit of orthonormal embeddings, unless a finite d is named) with fitted log-log slopes.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import sympy
import torch

from popgrad.claims.engine import (
    ENUM_SIZES,
    _setup,
    reference_step1,
    reference_step2,
    reference_step3,
)
from popgrad.conventions import eq7_to_lemma
from popgrad.data import SecondOccurrenceModel
from popgrad.embeddings import Embeddings, make_embeddings
from popgrad.memory import memory_recall
from popgrad.rates import loglog_slope
from popgrad.registry import Claim, Measurement, register
from popgrad.theory import model_d_exact as mx
from popgrad.theory import theorem3 as t3
from popgrad.theory.example_b1 import orthonormal_embeddings
from popgrad.theory.model_d_exact import mean_weights
from popgrad.tolerances import FLOAT64, nanmax, rel_error

STEP_CODE = "popgrad.theory.theorem3"


def _steps(N, T, d=12, seed=0):
    model, emb, z, p, y = _setup(N, T, d, seed)
    W1 = t3.step1_W_O2(model, emb)
    W2 = t3.step2_W_K2(model, emb, W1)
    return t3, model, emb, z, p, y, W1, W2


# ----------------------------------------------------------------------------- step 1
def measure_step1_eq15() -> Measurement:
    worst = 0.0
    for N, T in ENUM_SIZES:
        t3, model, emb, z, p, y, W1, _ = _steps(N, T)
        worst = max(worst, rel_error(W1, reference_step1(emb, z, p, y)))
    return Measurement(worst, FLOAT64.rtol, "exact", note=f"{len(ENUM_SIZES)} sizes (N, T), d = 12",
                       details={"sizes": ENUM_SIZES})


def measure_step1_eq16() -> Measurement:
    """(16) is exact only up to O(1/N): the exact coefficients are c1 = (N-2)/((N-1)T) and c2 != tau/T."""
    worst_corr, min_gap, gaps = 0.0, math.inf, {}
    for N, T in ((3, 5), (8, 8), (16, 12), (32, 16)):
        model, emb = SecondOccurrenceModel(N, T), make_embeddings(16, N, T, seed=1)
        W15 = t3.step1_W_O2(model, emb)
        worst_corr = max(worst_corr, rel_error(t3.step1_W_O2_corrected(model, emb), W15))
        gap = rel_error(t3.step1_W_O2_closed_form(model, emb), W15)
        min_gap, gaps[(N, T)] = min(min_gap, gap), gap
        c1, _ = t3.step1_coefficients(N, T)
        if c1 != Fraction(N - 2, (N - 1) * T):
            worst_corr = math.inf
    Ns = (16, 32, 64, 128, 256)
    rel2 = [1 - float(t3.step1_coefficients(N, 16)[1] * 16 / Fraction(str(t3.tau(N, 16)))) for N in Ns]
    rate = loglog_slope(Ns, rel2)
    rejected = min_gap > 1e3 * FLOAT64.rtol
    return Measurement(worst_corr if rejected else math.inf, FLOAT64.rtol, "erratum", rate=f"N^{rate:.2f}",
                       note=("(16) vs exact (15): rel gap " + ", ".join(f"{g:.2e}@N{k[0]}T{k[1]}" for k, g in gaps.items())
                             + "; exact c1 = (N-2)/((N-1)T) (paper 1/T), c2/(tau/T) = 1 - O(1/N)"),
                       details={"gaps": {str(k): v for k, v in gaps.items()}, "c2_rel_gap_T16": dict(zip(Ns, rel2))})


def measure_step1_tau() -> Measurement:
    worst = 0.0
    for N, T in ENUM_SIZES:
        _, _, z, p, y = _setup(N, T)
        q = z[:, -1:]
        first = (z == q).double().argmax(1)                                       # code i_q
        to = first + 2                                                             # paper t_o
        inv = 1.0 / torch.arange(1, T + 1, dtype=torch.float64)
        tail = torch.flip(torch.cumsum(torch.flip(inv, (0,)), 0), (0,))           # sum_{t>=u} 1/t at code u-1
        emp = float((p * tail[to - 1]).sum())
        exact = t3.tau(N, T)
        worst = max(worst, abs(emp - float(exact)) / float(exact))
        if not isinstance(exact, sympy.Rational):
            worst = math.inf
    return Measurement(worst, FLOAT64.rtol, "exact", note="tau(N, T) sympy Rational vs float64 enumeration",
                       details={"tau(4,6)": str(t3.tau(4, 6))})


def readout_errors(N, T, d, seed=0):
    """Max |readout * NT/eta - 1{k=j}| of the two readouts after (16) (tau-scaled for the second)."""
    model, emb = SecondOccurrenceModel(N, T), make_embeddings(d, N, T, seed=seed)
    W = t3.step1_W_O2(model, emb)
    eye = torch.eye(N, dtype=torch.float64)
    r1 = emb.W_U @ W @ emb.W_V2 @ emb.W_E * N * T
    r2 = emb.W_U @ W @ emb.W_V2 @ emb.Phi1 @ emb.W_E * N * T / float(t3.tau(N, T))
    return float((r1 - eye).abs().max()), float((r2 - eye).abs().max())


def separated_embeddings(N: int, T: int, seed: int = 0):
    """Orthonormal w_E(k), w_U(k), p_t and Phi_1 w_E(k) (3N + T mutually orthonormal vectors; W_V^2 = I)."""
    d = 3 * N + T
    gen = torch.Generator().manual_seed(4000 + seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    W_E, F = Q[:, :N], Q[:, 2 * N + T:]
    eye = torch.eye(d, dtype=torch.float64)
    return Embeddings(W_E=W_E, W_U=Q[:, N:2 * N].T.contiguous(), P=Q[:, 2 * N:2 * N + T],
                      W_V1=F @ W_E.T, W_O1=eye, W_V2=eye, seed=seed)


def step1_readout_value_error(N: int = 4, T: int = 5) -> float:
    """Value check of the readouts: autograd on the enumerated model D (separated embeddings) gives
    N/eta w_U(k)^T W_O^2 w_E(j) = c1 (1{k=j} - 1/N) and N/eta w_U(k)^T W_O^2 Phi_1 w_E(j) = c2 (1{k=j} - 1/N)."""
    emb = separated_embeddings(N, T)
    _, _, z, p, y = _setup(N, T)
    W = reference_step1(emb, z, p, y)                                          # eta = 1
    c1, c2 = t3.step1_coefficients(N, T)
    C = torch.eye(N, dtype=torch.float64) - 1.0 / N
    r1 = emb.W_U @ W @ emb.W_V2 @ emb.W_E * N
    r2 = emb.W_U @ W @ emb.W_V2 @ emb.Phi1 @ emb.W_E * N
    return max(rel_error(r1, float(c1) * C), rel_error(r2, float(c2) * C))


def measure_step1_readouts() -> Measurement:
    """Readouts after (16): error vs N in the orthonormal limit (exact coefficients) and vs d at fixed N."""
    Ns, T = (8, 16, 32, 64, 128), 16
    inf_d = []
    for N in Ns:                       # d -> infinity: readout NT/eta = T c1 (delta - 1/N)
        c1, c2 = t3.step1_coefficients(N, T)
        tau = Fraction(str(t3.tau(N, T)))
        inf_d.append(max(abs(float(c1 * T) * (1 - 1 / N) - 1), abs(float(c2 * T / tau) * (1 - 1 / N) - 1)))
    rate_N = loglog_slope(Ns, inf_d)
    ds = (32, 128, 512)
    fin = [max(readout_errors(16, 8, d)) for d in ds]
    rate_d = loglog_slope(ds, fin)
    value = step1_readout_value_error()
    err = max(rate_N + 1.0, 0.0)        # the O(1/N) claim: slope in N must be <= -1 (+0.1 allowed)
    err = err if value <= FLOAT64.rtol else math.inf
    return Measurement(err, 0.1, "approx", rate=f"N^{rate_N:.2f} (d=inf); d^{rate_d:.2f} (N=16,T=8)",
                       note="max |w_U(k)^T W_O^2 W_V^2 (Phi_1) w_E(j) NT/(eta tau^0|1) - 1{k=j}|; finite-d error "
                            + ", ".join(f"{e:.2f}@d{d}" for d, e in zip(ds, fin))
                            + f"; value at N=4, T=5 (autograd, orthonormal) vs c1, c2: rel {value:.1e}",
                       details={"N": Ns, "err_inf_d": inf_d, "d": ds, "err_finite_d": fin, "value_rel_error": value})


# ----------------------------------------------------------------------------- step 2
def measure_step2_eq17() -> Measurement:
    worst, gaps = 0.0, {}
    for N, T in ENUM_SIZES:
        _, model, emb, z, p, y, W1, W2 = _steps(N, T)
        worst = max(worst, rel_error(W2, reference_step2(emb, W1, z, p, y, "uniform")))
        W2t = t3.step2_W_K2(model, emb, W1, phat="true")
        worst = max(worst, rel_error(W2t, reference_step2(emb, W1, z, p, y, "true")))
        gaps[(N, T)] = rel_error(W2, W2t)
    return Measurement(worst, FLOAT64.rtol, "exact",
                       note="p_hat gap ||W(1/N) - W(true)||/||W(true)||: "
                            + ", ".join(f"{g:.1e}@N{k[0]}T{k[1]}" for k, g in gaps.items()),
                       details={"phat_gap": {str(k): v for k, v in gaps.items()}})


def measure_a_cases() -> Measurement:
    """Cases 1-3 of a_{k,j,i}: exact rationals == the paper's expressions, and == enumeration (float)."""
    worst = 0.0
    for N, T in ((3, 5), (4, 6), (7, 9), (16, 32)):
        ex, pa = t3.a_kji_exact(N, T), t3.a_kji_paper(N, T)
        if any(sympy.simplify(ex[c] - pa[c]) != 0 for c in pa):
            worst = math.inf
    for N, T in ENUM_SIZES[2:]:
        _, _, z, p, y = _setup(N, T)
        q = z[:, -1]
        to = (z == q[:, None]).double().argmax(1) + 1                            # code position of o
        pos = torch.arange(T)
        wgt = (pos[None] <= to[:, None]).double() / (to[:, None] + 1) - mean_weights(T)[None]
        ex = t3.a_kji_exact(N, T)
        sel = {"j!=k, i=j": (q != y, q), "j=k=i": (q == y, q), "i!=j=k": (q == y, (q + 1) % N),
               "j!=k, i=k": (q != y, y)}
        for case, (mask, i) in sel.items():
            val = ((z == i[:, None]).double() * wgt).sum(1)
            emp = float((p * val * mask).sum() / (p * mask).sum())
            worst = max(worst, abs(emp - float(ex[case])) / abs(float(ex[case])))
    return Measurement(worst, FLOAT64.rtol, "exact",
                       note="gamma_T, 2/T-1/(T(T-1))-2/T^2 and case 3 are EXACT (sympy ==), not only '≈'",
                       details={"exact(16,32)": {k: str(v) for k, v in t3.a_kji_exact(16, 32).items()}})


def a_orders_value_error(N: int = 4, T: int = 6) -> float:
    """Value check: the case-4 average and the i = j summary from a_kji_exact vs sums over the enumeration."""
    _, _, z, p, y = _setup(N, T)
    q = z[:, -1]
    to = (z == q[:, None]).double().argmax(1) + 1                                # code position of o
    pos = torch.arange(T)
    inv = 1.0 / torch.arange(1, T + 1, dtype=torch.float64)
    c = torch.flip(torch.cumsum(torch.flip(inv, (0,)), 0), (0,)) / T               # c_s = (1/T) sum_{t>=s} 1/t
    wgt = (pos[None] <= to[:, None]).double() / (to[:, None] + 1) - c[None]         # (M, T) key weights
    other = q != y
    # (1/(N-1)) sum_{k != j} a_{k,j,i}, i != j: given o != q, average over the N-1 tokens i != q
    val4 = ((z != q[:, None]).double() * wgt).sum(1) / (N - 1)
    emp4 = float((p * val4 * other).sum() / (p * other).sum())
    # (1/N) sum_k a_{k,j,j}: all sequences (o = q with probability 1/N), token i = q
    emp_diag = float((p * ((z == q[:, None]).double() * wgt).sum(1)).sum())
    a = t3.a_kji_exact(N, T)
    diag = float(((N - 1) * a["j!=k, i=j"] + a["j=k=i"]) / N)
    return max(abs(emp4 - float(a["avg_{k!=j}, i!=j"])) / abs(emp4), abs(emp_diag - diag) / abs(emp_diag))


def measure_a_case4_order() -> Measurement:
    """Case 4 (1/(N-1)) sum_{k!=j} a_{k,j,i} = O(1/N); the i = j summary is Omega(1/T)."""
    Ns, T = (8, 16, 32, 64, 128), 16
    c4 = [float(t3.a_kji_exact(N, T)["avg_{k!=j}, i!=j"]) for N in Ns]
    rate_N = loglog_slope(Ns, c4)
    Ts, N = (8, 16, 32, 64), 64
    diag = []
    for T in Ts:
        a = t3.a_kji_exact(N, T)
        diag.append(float(((N - 1) * a["j!=k, i=j"] + a["j=k=i"]) / N))
    rate_T = loglog_slope(Ts, diag)
    grows = all(b > a for a, b in zip(np.multiply(diag, Ts), np.multiply(diag, Ts)[1:]))
    err = max(rate_N + 0.9, 0.0) + max(-1.1 - rate_T, 0.0) + (0.0 if min(diag) > 0 and grows else math.inf)
    value = a_orders_value_error()
    err = err if value <= FLOAT64.rtol else math.inf
    return Measurement(err, 1e-12, "approx", rate=f"case4 N^{rate_N:.2f}; i=j summary T^{rate_T:.2f}; "
                       f"value at N=4, T=6 vs enumeration rel {value:.1e}",
                       note="case 4 average = O(1/N) (T=16); (1/N) sum_k a_{k,j,j} = Omega(1/T) (N=64): "
                            "T * value grows like log T (" + ", ".join(f"{v * t:.2f}@T{t}" for v, t in zip(diag, Ts)) + ")",
                       details={"N": Ns, "case4": c4, "T": Ts, "diag_summary": diag})


def eq25_readout(N, T, eta=1.0):
    """(25) in token space: (Phi_1 w_E(i))^T W_K^2 w_E(j) * TN/(alpha eta) with w_U(k)^T Phi_2 w_E(z) = alpha 1{z=k}."""
    alpha = eta / (T * N)
    R = t3.step2_token_readout(N, T, alpha * torch.eye(N, dtype=torch.float64), eta=eta) * T * N / (alpha * eta)
    off = R[~torch.eye(N, dtype=torch.bool)]
    return float(torch.diagonal(R).mean()), float(off.abs().max())


def eq25_value_error(N: int = 4, T: int = 5) -> float:
    """Value check of (25)'s token readout: autograd on the enumerated model D with orthonormal embeddings and
    W_O^2 = alpha W_U^T W_E^T (so w_U(k)^T Phi_2 x_t = alpha 1{z_t=k}) vs step2_token_readout."""
    emb = orthonormal_embeddings(2 * N + T, N, T, seed=0)                     # Phi_1 = W_V^2 = I
    _, _, z, p, y = _setup(N, T)
    alpha = 1.0 / (T * N)
    W2 = reference_step2(emb, alpha * emb.W_U.T @ emb.W_E.T, z, p, y, "uniform")   # eq7, eta = 1
    R = emb.W_E.T @ W2 @ emb.Phi1 @ emb.W_E                                    # [j, i] query w_E(j), key Phi_1 w_E(i)
    return rel_error(R.T, t3.step2_token_readout(N, T, alpha * torch.eye(N, dtype=torch.float64), eta=1.0))


def measure_eq25() -> Measurement:
    Ts, N = (8, 16, 32, 64), 128
    by_T = [eq25_readout(N, T) for T in Ts]
    diag_T, off_T = [v[0] for v in by_T], [v[1] for v in by_T]
    Ns, T = (16, 32, 64, 128), 16
    off_N = [eq25_readout(N, T)[1] for N in Ns]
    rT, rN, rTo = loglog_slope(Ts, diag_T), loglog_slope(Ns, off_N), loglog_slope(Ts, off_T)
    err = max(-1.1 - rT, 0.0) + max(rN + 0.9, 0.0) + max(rTo - 1.1, 0.0) + (0.0 if min(diag_T) > 0 else math.inf)
    value = eq25_value_error()
    err = err if value <= FLOAT64.rtol else math.inf
    return Measurement(err, 1e-12, "approx",
                       rate=f"diag T^{rT:.2f} (N=128); off-diag N^{rN:.2f} (T=16), T^{rTo:.2f} (N=128)",
                       note="normalized readout TN/(alpha eta) R: diagonal Omega(1/T), off-diagonal O(T/N); "
                            f"value at N=4, T=5 vs autograd on the enumeration rel {value:.1e}",
                       details={"value_rel_error": value, "T": Ts, "diag": diag_T, "N": Ns, "offdiag": off_N, "offdiag_T": off_T})


def eq24_gap(N: int, T: int) -> float:
    """(24) at one (N, T): the enumerated Delta^o + Delta^q + Delta^r, (1/N^2) sum_{j,k} Delta_{k,j} (e_j + e_T)^T, vs
    W_K^2 by autograd on the enumerated model D with orthonormal embeddings (Phi_1 = I) and W_O^2 = W_U^T W_E^T
    (so w_U(k)^T Phi_2 x_{t,0} = 1{z_t=k}, alpha = 1), read in the basis [W_E, P] (rel, max-norm)."""
    D = t3.delta_decomposition(N, T)
    tot = D["o"] + D["q"] + D["r"]                                              # (N_k, N_j, N+T)
    ref = np.zeros((N + T, N + T))                                              # [key, query] in [W_E, P]
    ref[:, :N] = tot.sum(0).T / N**2
    ref[:, N + T - 1] = tot.sum((0, 1)) / N**2
    emb = orthonormal_embeddings(2 * N + T, N, T, seed=1)
    _, _, z, p, y = _setup(N, T)
    W2 = reference_step2(emb, emb.W_U.T @ emb.W_E.T, z, p, y, "uniform")       # eq7 (query^T W key), eta = 1
    engine = t3.step2_W_K2(SecondOccurrenceModel(N, T), emb, emb.W_U.T @ emb.W_E.T)    # the engine's (17), eq7
    B = torch.cat([emb.W_E, emb.P], dim=1)                                      # (d, N+T)
    gaps = []
    for W in (W2, engine):
        S = (T * B.T @ W.T @ B).numpy()                                         # [key, query], times T/eta
        gaps.append(float(np.abs(S - ref).max() / np.abs(ref).max()))
    return max(gaps)


def measure_eq24() -> Measurement:
    """(24) with idealized Phi_2 (alpha = 1): engine token statistic == (1/N^2) sum_{j,k} Delta_{k,j} (e_j + e_T)^T."""
    worst = max(eq24_gap(N, T) for N, T in ((3, 4), (4, 5), (3, 6), (5, 4)))
    return Measurement(worst, FLOAT64.rtol, "exact", note="(24) is exact once w_U(k)^T Phi_2 x_{t,0} = alpha 1{z_t=k}; "
                       "Delta^o + Delta^q + Delta^r by enumeration (o = q: t_o = T counted in T_o only)")


def measure_delta_orders() -> Measurement:
    """(1/N) sum_k Delta^q = O(1/N), Delta^r small (paper: <= 2CT/N), Delta^o off-diagonal O(1/N) (T = 5)."""
    Ns, T = (4, 6, 8, 10), 5
    qn, rn, on, sig = [], [], [], []
    for N in Ns:
        D = t3.delta_decomposition(N, T)
        qn.append(np.linalg.norm(D["q"].mean(0), axis=-1).max())
        rn.append(np.linalg.norm(D["r"].mean(0), axis=-1).max())
        o = D["o"].mean(0)[:, :N]                                               # token coefficients [j, i]
        on.append(np.abs(o - np.diag(np.diag(o))).max())
        sig.append(float(np.diag(o).mean()))
    rq, rr, ro = loglog_slope(Ns, qn), loglog_slope(Ns, rn), loglog_slope(Ns, on)
    err = max(rq + 0.75, 0.0) + max(rr + 0.9, 0.0) + max(ro + 0.9, 0.0) + (0.0 if min(sig) > 0 else math.inf)
    value = eq24_gap(Ns[0], T)           # the measured Delta parts sum to W_K^2 by autograd (exact value)
    err = err if value <= FLOAT64.rtol else math.inf
    return Measurement(err, 1e-12, "approx", rate=f"q N^{rq:.2f}; r N^{rr:.2f}; o off-diag N^{ro:.2f}; "
                       f"Delta^o+q+r vs autograd at N={Ns[0]}, T={T} rel {value:.1e}",
                       note=f"max_j ||(1/N) sum_k Delta^x_{{k,j}}||; Delta^r decays like N^{rr:.1f}, far below the "
                            f"paper's 2CT/N bound; signal (1/N) sum_k a^o_{{k,j,j}} = {sig[-1]:.3f} at N={Ns[-1]}",
                       details={"N": Ns, "q": qn, "r": rn, "o_offdiag": on, "o_diag": sig})


# ----------------------------------------------------------------------------- step 3
def measure_step3_engine() -> Measurement:
    worst, gaps = 0.0, {}
    for N, T in ENUM_SIZES:
        _, model, emb, z, p, y, W1, W2 = _steps(N, T)
        for ideal in (False, True):
            for phat in ("uniform", "true"):
                W3 = t3.step3_W_K1(model, emb, W1, W2, idealized=ideal, phat=phat)
                worst = max(worst, rel_error(W3, reference_step3(emb, W1, W2, z, p, y, phat, ideal)))
        gaps[(N, T)] = rel_error(t3.step3_W_K1(model, emb, W1, W2), t3.step3_W_K1(model, emb, W1, W2, phat="true"))
    return Measurement(worst, FLOAT64.rtol, "exact", note="actual and idealized inputs, p_hat = 1/N and true; "
                       "p_hat gap " + ", ".join(f"{g:.1e}@N{k[0]}T{k[1]}" for k, g in gaps.items()),
                       details={"phat_gap": {str(k): v for k, v in gaps.items()}})


def measure_abcd_identity() -> Measurement:
    """Idealized step 3 == (eta a a'/(NTt)) sum_k (A - B - C + D) + the dropped key s = T at t = T."""
    worst, drop = 0.0, 0.0
    for N, T in ((3, 5), (8, 8), (16, 12)):
        eye = torch.eye(N, dtype=torch.float64)
        M = t3.step3_position_matrix(mx.value_key_pair_statistic(mx.centred_rows(eye), eye, T)).numpy()
        ab = t3.abcd_terms(N, T)
        pred = ((ab["A"] - ab["B"] - ab["C"] + ab["D"]) / (T * np.arange(1, T + 1)[:, None])).T
        extra = np.zeros((T, T))
        extra[:, T - 1] = -(N - 2) / (N * T**3) * (np.eye(T)[T - 1] - 1.0 / T)   # -(C'-D') at t = T
        drop = max(drop, np.abs(extra).max() / np.abs(M).max())
        worst = max(worst, np.abs(M - pred - extra).max() / np.abs(M).max())
    return Measurement(worst, FLOAT64.rtol, "exact",
                       note=f"the paper's A-D omit the second trigger (s = T) in column t = T: "
                            f"-(N-2)/(N T^3) (p_T - pbar_{{1:T}}), up to {drop:.1e} of max|W_K^1|",
                       details={"dropped_rel": drop})


def measure_abcd_vs_paper() -> Measurement:
    """A, B, D match the paper to O(1/N); C does not: C = (1/T) E[1{t_q<=t}(p_{t_q} - pbar_{1:t})] + O(1/N)."""
    Ns, T = (8, 16, 32, 64, 128, 1024), 12
    errs, paper_C, corr_C = [], [], []
    for N in Ns:
        ex, pa = t3.abcd_terms(N, T), t3.abcd_paper(N, T)
        pa["C"] = t3.abcd_corrected_C(N, T)
        errs.append(max(np.abs(ex[k] - pa[k]).max() for k in "ABCD"))
        paper_C.append(np.abs(ex["C"] - t3.abcd_paper(N, T)["C"]).max())
        corr_C.append(np.abs(ex["C"] - pa["C"]).max())
    r, rC = loglog_slope(Ns, errs), loglog_slope(Ns, paper_C)
    rejected = rC > -0.3 and paper_C[-1] > 10 * corr_C[-1]
    return Measurement(max(r + 0.9, 0.0) if rejected else math.inf, 1e-12, "erratum", rate=f"N^{r:.2f}",
                       note=f"A, B, D and corrected C within O(1/N) (slope {r:.2f}); paper's C = A/T off by "
                            f"{paper_C[-1]:.1e} at N={Ns[-1]} (slope {rC:.2f}): C = O(1/N) for t <= T-2",
                       details={"N": Ns, "err_corrected": errs, "err_paper_C": paper_C, "err_corrected_C": corr_C})


def measure_final_form() -> Measurement:
    """Final form: the factor is 1/(T t), not (T-1)/(T^2 t) (2 <= t <= T-2); error O(1/N)."""
    Ns, T = (8, 16, 32, 64, 128, 1024), 12
    errs, paper = [], []
    for N in Ns:
        eye = torch.eye(N, dtype=torch.float64)
        M = t3.step3_position_matrix(mx.value_key_pair_statistic(mx.centred_rows(eye), eye, T)).numpy()
        for corrected, out in ((True, errs), (False, paper)):
            ref = t3.step3_final_form_paper(N, T, corrected=corrected)
            out.append(np.abs(M - ref)[:, 1:T - 2].max() / np.abs(ref).max())
    r = loglog_slope(Ns, errs)
    rejected = paper[-1] > 0.5 / (T - 1)
    engine = engine_position_gap(T)
    if engine > FLOAT64.rtol:                 # the engine's idealized step 3 is not the matrix the slope uses
        r = math.inf
    return Measurement(max(r + 0.9, 0.0) if rejected else math.inf, 1e-12, "erratum", rate=f"N^{r:.2f}",
                       note=f"corrected 1/(Tt) form: rel err {errs[-1]:.1e} at N={Ns[-1]} (slope {r:.2f}); paper's "
                            f"(T-1)/(T^2 t) stays {paper[-1]:.3f} = 1/(T-1) off; the engine's idealized step3_W_K1 "
                            f"read in P equals the matrix used (rel {engine:.1e})",
                       details={"N": Ns, "err_corrected": errs, "err_paper": paper, "engine_rel": engine})


def engine_position_gap(T: int, Ns=(8, 16)) -> float:
    """step3_W_K1 (idealized readouts, d-space) read in the position basis and divided by alpha alpha' vs the (T, T)
    matrix built from the idealized statistics (centred identity, identity) that measure_final_form fits (rel)."""
    worst = 0.0
    for N in Ns:
        model, emb = SecondOccurrenceModel(N, T), make_embeddings(2 * T, N, T, seed=N)
        W1 = t3.step1_W_O2(model, emb)
        W2 = t3.step2_W_K2(model, emb, W1)
        G, Km = t3.step3_readouts(emb, W1, W2, idealized=True)
        Pp = torch.linalg.pinv(emb.P)                                            # (T, d)
        M_engine = Pp @ eq7_to_lemma(t3.step3_W_K1(model, emb, W1, W2, idealized=True)) @ Pp.T / (G[0, 0] * Km[0, 0])
        eye = torch.eye(N, dtype=torch.float64)
        M = t3.step3_position_matrix(mx.value_key_pair_statistic(mx.centred_rows(eye), eye, T))
        worst = max(worst, rel_error(M_engine, M))
    return worst


def measure_idealized_gap() -> Measurement:
    """Actual-input step 3 vs idealized inputs: relative gap shrinks with d (N=8, T=8)."""
    ds, gaps = (16, 64, 256), []
    for d in ds:
        model, emb = SecondOccurrenceModel(8, 8), make_embeddings(d, 8, 8, seed=2)
        W1 = t3.step1_W_O2(model, emb)
        W2 = t3.step2_W_K2(model, emb, W1)
        gaps.append(rel_error(t3.step3_W_K1(model, emb, W1, W2),
                              t3.step3_W_K1(model, emb, W1, W2, idealized=True)))
    r = loglog_slope(ds, gaps)
    value = idealized_gap_value_error()
    err = max(r + 0.25, 0.0) if value <= 1e-8 else math.inf
    return Measurement(err, 1e-12, "approx", rate=f"d^{r:.2f}",
                       note="||W_K1(actual) - W_K1(idealized)|| / ||W_K1(idealized)||: "
                            + ", ".join(f"{g:.2f}@d{d}" for d, g in zip(ds, gaps))
                            + f"; the gap at N=4, T=5, d=16 vs autograd on the enumeration: rel {value:.1e}",
                       details={"d": ds, "gap": gaps, "value_rel_error": value})


def idealized_gap_value_error(N: int = 4, T: int = 5, d: int = 16) -> float:
    """Value check: the engine's actual-vs-idealized gap equals the gap of the autograd references (rel)."""
    model, emb, z, p, y = _setup(N, T, d, seed=2)
    W1 = t3.step1_W_O2(model, emb)
    W2 = t3.step2_W_K2(model, emb, W1)
    eng = rel_error(t3.step3_W_K1(model, emb, W1, W2), t3.step3_W_K1(model, emb, W1, W2, idealized=True))
    ref = rel_error(reference_step3(emb, W1, W2, z, p, y), reference_step3(emb, W1, W2, z, p, y, idealized=True))
    return abs(eng - ref) / ref


def recall_grid(grid=((8, 8, 64), (16, 16, 128), (32, 16, 256), (16, 32, 256))):
    """Recall (9) after each exact step on a small (N, T, d) grid."""
    rows = []
    for N, T, d in grid:
        model, emb = SecondOccurrenceModel(N, T), make_embeddings(d, N, T, seed=0)
        W1 = t3.step1_W_O2(model, emb)
        W2 = t3.step2_W_K2(model, emb, W1)
        W3 = t3.step3_W_K1(model, emb, W1, W2)
        rows.append({"N": N, "T": T, "d": d, **t3.recall_per_step(emb, W1, W2, W3)})
    return rows


def recall_by_pairs(W, U, V, targets, valid=None) -> float:
    """Recall (9) by hand: a loop over inputs i and outputs j', scores v_j'^T W u_i, unique argmax == target."""
    hits = 0
    n, m = U.shape[1], V.shape[1]
    for i in range(n):
        h = W @ U[:, i]                                                      # (d,)
        scores = [float(V[:, j] @ h) for j in range(m)]
        best = max(scores)
        ok = scores.count(best) == 1 and scores.index(best) == int(targets[i])
        hits += int(ok and (valid is None or bool(valid[i])))
    return hits / n


RECALL_FLOOR = 0.8


def measure_recall() -> Measurement:
    # Eq. (7), (9): every learned matrix recalls its targets (>= RECALL_FLOOR on every cell), and the
    # library's recall equals the per-pair recomputation for all three matrices.

    rows = recall_grid()
    mismatch = 0.0
    for r in rows[:2]:                 # per-pair loop at the two smaller cells (the loop is O(n m d))
        N, T, d = r["N"], r["T"], r["d"]
        emb = make_embeddings(d, N, T, seed=0)
        mats = t3.three_steps(SecondOccurrenceModel(N, T), emb)
        E = emb.W_E
        ar = torch.arange(N)
        ref = {"W_O2": recall_by_pairs(mats["W_O2"], emb.W_V2 @ E, emb.W_U.T, ar),
               "W_K2": recall_by_pairs(mats["W_K2"], emb.Phi1 @ E, E, ar),
               "W_K1": recall_by_pairs(mats["W_K1"], emb.P[:, :-1], emb.P, torch.arange(1, T))}
        r["by_pairs"] = ref
        mismatch = max(mismatch, max(abs(ref[k] - r[k]) for k in ref))
    worst = min(min(r[k] for k in ("W_O2", "W_K2", "W_K1")) for r in rows)
    error = (1.0 - worst) if mismatch <= 1e-12 else math.inf
    return Measurement(error, 1.0 - RECALL_FLOOR, "approx", note="; ".join(
        f"N{r['N']}T{r['T']}d{r['d']}: O2 {r['W_O2']:.2f} K2 {r['W_K2']:.2f} K1 {r['W_K1']:.2f}" for r in rows)
        + f"; per-pair recomputation mismatch {mismatch:.0e}",
        details={"rows": rows, "per_pair_mismatch": mismatch})


def _random_memory(n, m, d, seed):
    """A non-symmetric memory: planted associations i -> targets[i] plus noise, inputs U (d, n), outputs V (d, m)."""
    gen = torch.Generator().manual_seed(500 + seed)
    U = torch.randn(d, n, generator=gen, dtype=torch.float64) / math.sqrt(d)
    V = torch.randn(d, m, generator=gen, dtype=torch.float64) / math.sqrt(d)
    targets = torch.randint(0, m, (n,), generator=gen)
    W = V[:, targets] @ U.T + 0.6 * torch.randn(d, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    return W, U, V, targets


def measure_recall_eq9() -> Measurement:
    # Eq. (9): memory_recall (library, vectorized unique argmax) == a per-pair loop, on non-symmetric random
    # memories, square (n = m) and not, with planted associations and noise so that recall is strictly between 0 and 1.

    gaps, values = {}, {}
    for seed, (n, m, d) in enumerate(((12, 12, 16), (10, 15, 16), (15, 10, 24), (20, 20, 12))):
        W, U, V, tg = _random_memory(n, m, d, seed)
        valid = torch.arange(n) % 5 != 0
        for name, vmask in (("all", None), ("masked", valid)):
            lib, ref = memory_recall(W, U, V, tg, valid=vmask), recall_by_pairs(W, U, V, tg, vmask)
            gaps[f"n={n},m={m},d={d},{name}"] = abs(lib - ref)
            values[f"n={n},m={m},d={d},{name}"] = ref
    interior = all(0.0 < v < 1.0 for k, v in values.items() if k.endswith("all"))
    err = nanmax(gaps.values()) if interior else math.inf
    return Measurement(err, 1e-12, "exact",
                       note="recall by pairs: " + ", ".join(f"{k} {v:.2f}" for k, v in values.items() if k.endswith("all")),
                       details={"gaps": gaps, "values": values})


# The claims of this module that test a finding of the paper (the README's findings table).
FINDINGS = {
    'theorem3.step1.eq16': 'eq. (16): the one-step W_O^2 in closed form (its two coefficients)',
    'theorem3.step1.readouts': "after step 1, W_O^2 is an associative memory of W_O^2's target in (7)",
    'theorem3.step2.eq25': 'eq. (25): after step 2, W_K^2 matches Phi_1 w_E(k) to w_E(k) (Omega(1/T) on the diagonal, O(T/N) off it)',
    'theorem3.step3.abcd_values': 'App. B.3.3: the values of A, B, C, D after (29)',
    'theorem3.step3.final_form': 'App. B.3.3: after step 3, W_K^1 is a previous-token head (final display)',
    'theorem3.recall': 'Theorem 3: after the three steps each matrix recalls its target in (7) (recall (9))',
}


def _claim(id, statement, where, compared, kind, tolerance, measure, code=(), slow=False, sides=()):
    register(Claim(id=id, statement=statement, where=where, compared=compared, kind=kind, tolerance=tolerance,
                   measure=measure, code=tuple(f"{STEP_CODE}.{c}" for c in code), slow=slow, sides=sides,
                   finding=FINDINGS.get(id, "")))


EXACT = "rel <= 1e-10 (float64)"
_claim("theorem3.step1.eq15", "one step on W_O^2 from 0 is (eta/N) sum_k w_U(k)(E[x|y=k] - E[x])^T", "B.3.1, eq. (15)",
       "exact engine vs autograd of the enumerated population loss"
    "; shared: model D and the embeddings", "exact", EXACT, measure_step1_eq15, ("step1_W_O2",),
    sides=(('popgrad.theory.theorem3.step1_W_O2',),
           ('popgrad.claims.engine.reference_step1',)))
_claim("theorem3.step1.eq16", "(15) equals (16) with tau = E[sum_{t>=t_o} 1/t]", "B.3.1, eq. (16)",
       "corrected (16) (exact c1, c2) vs engine (15); the paper's (16) must be rejected"
    "; shared: model D and the embeddings", "exact", EXACT,
       measure_step1_eq16, ("step1_W_O2_closed_form", "step1_W_O2_corrected", "step1_coefficients"),
    sides=(('popgrad.theory.theorem3.step1_W_O2_corrected', 'popgrad.theory.theorem3.step1_W_O2_closed_form', 'popgrad.theory.theorem3.step1_coefficients'),
           ('popgrad.theory.theorem3.step1_W_O2',)))
_claim("theorem3.step1.tau", "tau = E[sum_{t=t_o}^T 1/t] as an exact rational", "B.3.1",
       "sympy Rational vs float64 enumeration"
    "; shared: model D", "exact", EXACT, measure_step1_tau, ("tau",),
    sides=(('popgrad.theory.theorem3.tau',),
           ('popgrad.data.SecondOccurrenceModel.enumerate',)))
_claim("theorem3.step1.readouts", "w_U(k)^T W_O^2 W_V^2 (Phi_1) w_E(j) ~ eta (tau)/(NT) 1{k=j} + O(eta/(N^2 T))",
       "B.3.1, after (16)", "readout error vs N (orthonormal limit) and vs d"
    "; the slope uses the exact c1, c2; their value is held against autograd on the enumerated model D with orthonormal embeddings (shared: model D)", "approx",
       "slope in N <= -1 (+0.1)", measure_step1_readouts, ("step1_W_O2",))
_claim("theorem3.step2.eq17", "one step on W_K^2 from 0 (Lemma 4, keys x_{t,1}, values/queries x_{t,0})",
       "B.3.2, eq. (17)", "exact engine (p_hat = 1/N) and enumeration (true p_hat) vs autograd"
    "; shared: model D, the embeddings and W_O^2 as input",
       "exact", EXACT, measure_step2_eq17, ("step2_W_K2",),
    sides=(('popgrad.theory.theorem3.step2_W_K2',),
           ('popgrad.claims.engine.reference_step2',)))
_claim("theorem3.step2.a_cases", "a_{k,j,i} = gamma_T, 2/T - 1/(T(T-1)) - 2/T^2, and case 3, as stated",
       "B.3.2, cases of a_{k,j,i}", "exact rationals vs the paper's expressions (sympy ==) and vs enumeration"
    "; shared: model D",
       "exact", "== (sympy); enumeration rel <= 1e-10", measure_a_cases, ("a_kji_exact", "a_kji_paper"),
    sides=(('popgrad.theory.theorem3.a_kji_exact',),
           ('popgrad.theory.theorem3.a_kji_paper', 'popgrad.data.SecondOccurrenceModel.enumerate')))
_claim("theorem3.step2.a_orders", "(1/N) sum_k a_{k,j,i} = O(1/N) if i != j, Omega(1/T) if i = j",
       "B.3.2, summary of the cases", "exact rationals over a grid of N and T, fitted slopes"
    "; the slopes use the exact rationals; their value at N=4, T=6 is held against enumeration (shared: model D)", "approx",
       "slope N <= -0.9; T slope >= -1.1, T*value increasing", measure_a_case4_order, ("a_kji_exact",))
_claim("theorem3.step2.eq25", "(Phi_1 w_E(i))^T W_K^2 w_E(j) ~ (alpha eta/(TN)){Omega(1/T) 1{i=j} + O(T/N)}",
       "B.3.2, eq. (25)", "token-space readout with idealized Phi_2 over N, T grids"
    "; the slopes use the token readout; its value at N=4, T=5 is held against autograd on the enumerated model D (shared: model D and the embeddings)", "approx",
       "diag > 0, T slope >= -1.1; off-diag slopes N <= -0.9, T <= 1.1", measure_eq25, ("step2_token_readout",))
_claim("theorem3.step3.lemma5", "one step on W_K^1 from 0 (Lemma 5, positional first layer, linearized second)",
       "B.3.3, Lemma 5", "exact engine (p_hat = 1/N; idealized or not) and enumeration (true p_hat) vs autograd"
    "; the reference builds its readouts from W_O^2, W_K^2 itself; shared: model D, the embeddings and W_O^2, W_K^2 as inputs",
       "exact", EXACT, measure_step3_engine, ("step3_W_K1",),
    sides=(('popgrad.theory.theorem3.step3_W_K1',),
           ('popgrad.claims.engine.reference_step3',)))
_claim("theorem3.step3.abcd_identity", "W_K^1 p_t = (eta alpha alpha'/(NTt)) sum_k (A - B - C + D) (idealized inputs)",
       "B.3.3, eq. (26)-(29)", "engine vs independent A-D sums (+ the term the paper drops)"
    "; shared: model D", "exact", EXACT,
       measure_abcd_identity, ("abcd_terms", "step3_position_matrix"),
    sides=(('popgrad.theory.theorem3.abcd_terms',),
           ('popgrad.theory.theorem3.step3_position_matrix', 'popgrad.theory.model_d_exact.value_key_pair_statistic', 'popgrad.theory.model_d_exact.centred_rows')))
_claim("theorem3.step3.abcd_values", "A = P(t_q=t-1)(p_{t-1} - pbar) + O(1/N), B = O(1/N), C = A/T + O(1/N), D = O(1/N)",
       "B.3.3, after (29)", "exact A-D vs the paper's leading terms (C corrected) over N"
    "; shared: model D", "approx", "slope N <= -0.9; paper's C rejected",
       measure_abcd_vs_paper, ("abcd_terms", "abcd_paper", "abcd_corrected_C"))
_claim("theorem3.step3.final_form", "p_s^T W_K^1 p_t ~ eta a a' (T-1)/(T^2 t){P(t_q=t-1)(1{s=t-1} - 1{s<=t}/t) + O(1/N)}",
       "B.3.3, final display", "exact idealized step 3 vs the paper's (and corrected) form over N, 2 <= t <= T-2"
    "; shared: model D", "approx",
       "corrected: slope N <= -0.9; paper's factor rejected",
       measure_final_form, ("step3_W_K1", "step3_final_form_paper"))
_claim("theorem3.step3.idealized_gap", "actual inputs behave like the idealized alpha 1{z_t=k}, alpha' 1{z_s=z_T}",
       "B.3.3", "step 3 with actual vs idealized readouts over d"
    "; the slope uses the engine; the gap at N=4, T=5, d=16 is held against the autograd references (shared: model D, the embeddings, W_O^2, W_K^2)", "approx", "slope d <= -0.25",
       measure_idealized_gap, ("step3_W_K1",))
_claim("theorem3.recall", "after the three steps the matrices recall their targets (7) (memory recall (9))",
       "B.3, eq. (7), (9)", "recall (9) of W_O^2, W_K^2 and W_K^1 on an (N, T, d) grid; the library's recall vs "
       "a per-pair loop (shared: the engine's matrices and the embeddings)", "approx",
       f"recall >= {RECALL_FLOOR} for all three matrices on every cell; per-pair recomputation equal",
       measure_recall, ("recall_per_step",))
register(Claim(
    id="memory.recall_eq9", statement="R = (1/n) sum_i 1{argmax_j' v_j'^T W u_i = target(i)} (indices as intended)",
    where="Sec. 4, eq. (9)", compared="popgrad.memory.memory_recall vs a per-pair loop over inputs and outputs, on "
    "non-symmetric random memories (square and not); shared: the memory and its inputs/outputs",
    kind="exact", tolerance="|difference| <= 1e-12; recall strictly between 0 and 1 on each memory",
    measure=measure_recall_eq9, code=("popgrad.memory.memory_recall", "popgrad.memory.unique_argmax_hits"),
    sides=(("popgrad.memory.memory_recall",), ("popgrad.claims.theorem3.recall_by_pairs",))))
_claim("theorem3.step2.eq24", "W_K^2 = (alpha eta/(TN^2)) sum_{j,k} Delta_{k,j}(w_E(j) + p_T)^T, Delta = Delta^o + Delta^q + Delta^r",
       "B.3.2, eq. (24)", "enumerated Delta^o, Delta^q, Delta^r vs autograd of the step-2 loss on the enumerated model D "
       "(orthonormal embeddings, w_U(k)^T Phi_2 x = 1{z=k}); shared: model D and the embeddings", "exact", EXACT,
       measure_eq24, ("delta_decomposition", "step2_W_K2"),
       sides=(("popgrad.theory.theorem3.delta_decomposition",), ("popgrad.claims.engine.reference_step2",)))
_claim("theorem3.step2.delta_orders", "(1/N) sum_k Delta^q_{k,j} = O(1/N); ||Delta^r_{k,j}|| <= 2CT/N",
       "B.3.2, controlling Delta^q and Delta^r", "enumerated Delta parts over N (T = 5), fitted slopes"
    "; the slopes use the enumerated Delta parts; their sum is held against autograd (eq24_gap; shared: model D and the embeddings)", "approx",
       "slopes q <= -0.75, r <= -0.9, o off-diagonal <= -0.9", measure_delta_orders, ("delta_decomposition",))
