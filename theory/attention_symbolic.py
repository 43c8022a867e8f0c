"""Symbolic (sympy) proofs at tiny sizes: eq. (32) and Lemma 4 (B.2, C.3) as exact identities.

Nothing here imports `popgrad.theory.attention`: the sympy path derives the same statements from the
definitions (softmax, cross-entropy, eq. (13)) by exact differentiation, so the two paths can be
held against each other. Matrices follow the paper: X is d x T with columns x_t, keys Z = X, the
query is x_T, scores are key^T W query (the lemma convention).
"""

from __future__ import annotations

import sympy as sp

from popgrad.errors import positive_int


def softmax_jacobian_symbolic(T: int) -> tuple[sp.Matrix, sp.Matrix]:
    """Eq. (32) (C.3), symbolically: (d sigma(u)_t / d u_s at u = 0, (1/T) 1{t=s} - 1/T^2), both T x T exact."""
    T = positive_int("T", T)
    u = sp.symbols(f"u0:{T}")
    denom = sum(sp.exp(v) for v in u)
    at_zero = {v: 0 for v in u}
    derived = sp.Matrix(T, T, lambda t, s: sp.diff(sp.exp(u[t]) / denom, u[s]).subs(at_zero))
    paper = sp.Matrix(T, T, lambda t, s: sp.Rational(int(t == s), T) - sp.Rational(1, T ** 2))
    return sp.simplify(derived), paper


def _symbol_matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}{j}", real=True))


def _softmax(v: sp.Matrix) -> sp.Matrix:
    e = v.applyfunc(sp.exp)
    return e / sum(e)


def lemma4_symbolic_difference(T: int = 2, d: int = 2, N: int = 2, M: int = 2) -> sp.Matrix:
    """Lemma 4 (B.2) at tiny symbolic size: (line 1) - (exact derivative at W = 0), simplified (d x d).

    Every entry of X_m (d x T, one per sequence), W_U (N x d), Phi_2 (d x d) and the weights w_m
    is a free real symbol; sequence m has label y_m = m mod N. The loss is
    L(W) = sum_m w_m l(y_m, W_U Phi_2 X_m sigma(X_m^T W x_{m,T})); its derivative in every W_ij is
    taken by sympy and evaluated at W = 0. A zero matrix proves the identity at this size.
    """
    T, d, N, M = (positive_int(n, v) for n, v in (("T", T), ("d", d), ("N", N), ("M", M)))
    W = _symbol_matrix("W", d, d)
    W_U = _symbol_matrix("U", N, d)
    Phi = _symbol_matrix("F", d, d)
    weights = sp.symbols(f"w0:{M}", positive=True)
    Xs = [_symbol_matrix(f"X{m}", d, T) for m in range(M)]
    labels = [m % N for m in range(M)]
    zero = {W[i, j]: 0 for i in range(d) for j in range(d)}

    loss = 0
    for X, w, y in zip(Xs, weights, labels):
        att = _softmax(X.T * W * X[:, T - 1])                       # (T, 1) sigma(X^T W x_T)
        xi = W_U * Phi * X * att                                    # (N, 1) eq. (13)
        loss += w * -sp.log(_softmax(xi)[y])
    derived = sp.Matrix(d, d, lambda i, j: sp.diff(loss, W[i, j]).subs(zero))

    paper = sp.zeros(d, d)
    for X, w, y in zip(Xs, weights, labels):
        xbar = X * sp.ones(T, 1) / T                                # (d, 1)
        p_hat = _softmax(W_U * Phi * xbar)                          # (N, 1) prediction at W = 0
        for k in range(N):
            coef = p_hat[k] - (1 if k == y else 0)
            for t in range(T):
                a = (W_U[k, :] * Phi * X[:, t])[0, 0]               # w_U(k)^T Phi_2 x_t
                paper += w * coef * a * (X[:, t] - xbar) * X[:, T - 1].T / T
    return (paper - derived).applyfunc(lambda e: sp.cancel(sp.together(e)))
