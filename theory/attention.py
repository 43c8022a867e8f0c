"""Lemmas 4 and 5 (App. B.2, proofs C.3, C.4) and the softmax derivative (32), exactly.

Every function takes a FINITE WEIGHTED SET of M sequences, already embedded, and is vectorized
over sequences and positions (no Python loop over either):

    X        (M, T, d)  values x_t (row t of X[m] is the paper's column x_t)
    Z        (M, T, d)  keys z_t fed to W (Lemma 4; default Z = X, as proof C.3 allows Z != X)
    query    (M, d)     the query x_T (default: the last position X[:, -1])
    y        (M,)       labels in [N]
    weights  (M,)       probabilities of the M sequences (non-negative, sum to one):
                        E[f] = sum_m weights[m] f(X[m], y[m]), p(y=k) = sum_{m: y_m = k} weights[m]
    W_U      (N, d)     output embeddings, Phi_2, Phi_1, W_2 (d, d)
    P        (d, T)     positional embeddings (Lemma 5), column t is p_t

Convention. The lemmas score a key against a query as key^T W query (`sigma(Z^T W x_T)`,
`sigma(p_{1:t}^T W p_t)`), so every gradient here is returned in the LEMMA convention: a sum of
(key) (query)^T outer products. popgrad stores key-query matrices in the eq. (7) convention
(query^T W key); the `*_eq7` functions (or `popgrad.conventions.lemma_to_eq7`) convert.
Code positions are 0..T-1, paper t = i + 1 (so the paper's 1/t is 1/(i+1)).

`phat="model"` uses the model's prediction p_hat_W(k|X) at W = 0 (the lemmas as stated);
`phat="uniform"` replaces it by 1/N (as Theorem 3, steps 2 and 3, assume). The matching loss
for autograd with `phat="uniform"` is the first-order expansion of the cross-entropy in the
logits, l(y, xi) ~ log N + (1/N) sum_k xi_k - xi_y, whose derivative in xi_k is 1/N - 1{y=k}.
"""

from __future__ import annotations

import math

import torch

from popgrad.conventions import lemma_to_eq7
from popgrad.errors import PopgradError, choice, positive_float, positive_int

PHAT = ("model", "uniform")


# ----------------------------------------------------------------------------- validation

def _tensor(name: str, value, ndim: int, like: torch.Tensor | None = None) -> torch.Tensor:
    """`value` as a floating tensor with `ndim` dimensions (on `like`'s device and dtype)."""
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise PopgradError(f"{name} must be an array, got {type(value).__name__}") from None
    if t.ndim != ndim:
        raise PopgradError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if like is not None:
        t = t.to(dtype=like.dtype, device=like.device)
    elif not t.is_floating_point():
        t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise PopgradError(f"{name} must be finite")
    return t


def _shape(name: str, t: torch.Tensor, shape: tuple) -> None:
    if tuple(t.shape) != tuple(shape):
        raise PopgradError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")


def _weighted_set(X, y, weights, W_U):
    """Validate (X, y, weights, W_U); return X (M,T,d), y (M,) long, w (M,), W_U (N,d)."""
    X = _tensor("X", X, 3)
    M, T, d = X.shape
    if M == 0 or T == 0 or d == 0:
        raise PopgradError(f"X must be non-empty (M, T, d), got shape {tuple(X.shape)}")
    W_U = _tensor("W_U", W_U, 2, like=X)
    if W_U.shape[1] != d:
        raise PopgradError(f"W_U must have shape (N, {d}), got {tuple(W_U.shape)}")
    N = W_U.shape[0]
    y = torch.as_tensor(y, device=X.device)
    if y.ndim != 1 or y.shape[0] != M or y.is_floating_point() or y.dtype == torch.bool:
        raise PopgradError(f"y must be an integer array of shape ({M},), got {tuple(y.shape)} {y.dtype}")
    y = y.long()
    if bool(((y < 0) | (y >= N)).any()):
        raise PopgradError(f"y must hold labels in 0..{N - 1}")
    w = _tensor("weights", weights, 1, like=X)
    _shape("weights", w, (M,))
    if bool((w < 0).any()) or abs(float(w.sum()) - 1.0) > 1e-9:
        raise PopgradError(f"weights must be non-negative and sum to 1, sum to {float(w.sum()):.6g}")
    return X, y, w, W_U


def _square(name: str, value, X: torch.Tensor) -> torch.Tensor:
    t = _tensor(name, value, 2, like=X)
    _shape(name, t, (X.shape[2], X.shape[2]))
    return t


def _keys_query(X: torch.Tensor, Z, query):
    """Default keys Z = X and query x_T = X[:, -1]; validate shapes."""
    Z = X if Z is None else _tensor("Z", Z, 3, like=X)
    _shape("Z", Z, X.shape)
    q = X[:, -1] if query is None else _tensor("query", query, 2, like=X)
    _shape("query", q, (X.shape[0], X.shape[2]))
    return Z, q


def _class_probs(y: torch.Tensor, w: torch.Tensor, N: int) -> torch.Tensor:
    """p(y = k) = sum_{m: y_m = k} w_m (N,)."""
    return torch.zeros(N, dtype=w.dtype, device=w.device).index_add_(0, y, w)


def _conditional_weights(y: torch.Tensor, w: torch.Tensor, N: int):
    """(p(y=k) (N,), R (M, N)) with R[m, k] = w_m 1{y_m = k} / p(y=k), so E[f | y=k] = sum_m R[m, k] f_m.

    Classes with p(y=k) = 0 get a zero column (their term p(y=k) E[. | y=k] is zero).
    """
    p = _class_probs(y, w, N)
    onehot = torch.nn.functional.one_hot(y, N).to(w.dtype)                  # (M, N)
    safe = torch.where(p > 0, p, torch.ones_like(p))
    return p, onehot * w[:, None] / safe[None, :]


# ----------------------------------------------------------------------------- eq. (32)

def softmax_jacobian_at_zero(T: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """Eq. (32) (C.3): d sigma(u)_t / d u_s at u = 0 equals (1/T) 1{t = s} - 1/T^2; entry [t, s]."""
    T = positive_int("T", T)
    eye = torch.eye(T, dtype=dtype, device=device)
    return eye / T - torch.full((T, T), 1.0 / T ** 2, dtype=dtype, device=device)


# ----------------------------------------------------------------------------- Lemma 4

def lemma4_logits(W, X, W_U, Phi_2, Z=None, query=None, scale: float = 1.0) -> torch.Tensor:
    """Eq. (13): logits xi(X) = W_U Phi_2 X sigma(scale * Z^T W x_T) for every sequence (M, N).

    `W` is in the lemma convention (key^T W query). `scale = d**-0.5` restores the softmax
    factor the paper drops in B.2.
    """
    u = scale * torch.einsum("msd,de,me->ms", Z if Z is not None else X, W,
                             X[:, -1] if query is None else query)          # (M, T)
    h = torch.einsum("mt,mtd->md", torch.softmax(u, dim=-1), X)            # (M, d)
    return h @ (W_U @ Phi_2).T                                             # (M, N)


def population_loss(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor, phat: str) -> torch.Tensor:
    """E[l(y, xi)] with the cross-entropy (`model`) or its linearization in xi (`uniform`)."""
    if phat == "model":
        per_seq = torch.nn.functional.cross_entropy(logits, y, reduction="none")   # (M,)
    else:
        N = logits.shape[1]
        per_seq = math.log(N) + logits.mean(dim=1) - logits.gather(1, y[:, None])[:, 0]
    return (w * per_seq).sum()


def lemma4_loss(W, X, y, weights, W_U, Phi_2, Z=None, query=None, scale: float = 1.0,
                phat: str = "model") -> torch.Tensor:
    """Lemma 4, eq. (13): the exact population loss L(W) = E[l(y, xi(X))] (differentiable in W).

    `phat="uniform"` gives the linearized cross-entropy whose gradient is the lemma with p_hat = 1/N.
    """
    choice("phat", phat, PHAT)
    scale = positive_float("scale", scale)
    X, y, w, W_U = _weighted_set(X, y, weights, W_U)
    Phi_2 = _square("Phi_2", Phi_2, X)
    Z, q = _keys_query(X, Z, query)
    W = torch.as_tensor(W).to(dtype=X.dtype, device=X.device)    # differentiable cast
    _shape("W", W, (X.shape[2], X.shape[2]))
    return population_loss(lemma4_logits(W, X, W_U, Phi_2, Z, q, scale), y, w, phat)


def _phat_rows(logits0: torch.Tensor, phat: str) -> torch.Tensor:
    """p_hat(k | X) at W = 0 (M, N): softmax of the logits, or 1/N everywhere."""
    if phat == "uniform":
        return torch.full_like(logits0, 1.0 / logits0.shape[1])
    return torch.softmax(logits0, dim=1)


def _lemma4_parts(X, y, weights, W_U, Phi_2, Z, query, phat):
    """Shared pieces at W = 0: w, y, N, centred keys (M,T,d), query (M,d), a_hat, a_y (M,T)."""
    choice("phat", phat, PHAT)
    X, y, w, W_U = _weighted_set(X, y, weights, W_U)
    Phi_2 = _square("Phi_2", Phi_2, X)
    Z, q = _keys_query(X, Z, query)
    V = W_U @ Phi_2                                      # (N, d), row k = w_U(k)^T Phi_2
    p_hat = _phat_rows(X.mean(dim=1) @ V.T, phat)        # (M, N): at W = 0, sigma = 1/T
    a_hat = torch.einsum("mtd,md->mt", X, p_hat @ V)     # (M, T) sum_k p_hat(k) w_U(k)^T Phi_2 x_t
    a_y = torch.einsum("mtd,md->mt", X, V[y])            # (M, T) w_U(y)^T Phi_2 x_t
    Zc = Z - Z.mean(dim=1, keepdim=True)                 # (M, T, d) z_t - zbar_{1:T}
    return w, y, W_U.shape[0], Zc, q, a_hat, a_y


def lemma4_gradient_line1(X, y, weights, W_U, Phi_2, Z=None, query=None,
                          phat: str = "model") -> torch.Tensor:
    """Lemma 4 (B.2), first line: grad_W L at W = 0, lemma convention (key^T W query) (d, d).

    sum_k E[(p_hat(k|X) - 1{y=k}) (1/T) sum_t w_U(k)^T Phi_2 x_t (z_t - zbar_{1:T}) x_T^T],
    with keys z_t = x_t unless Z is given (proof C.3). `lemma_to_eq7` converts to eq. (7).
    """
    w, y, N, Zc, q, a_hat, a_y = _lemma4_parts(X, y, weights, W_U, Phi_2, Z, query, phat)
    T = Zc.shape[1]
    u = torch.einsum("mt,mtd->md", a_hat - a_y, Zc) / T          # (M, d)
    return torch.einsum("m,md,me->de", w, u, q)                  # (d, d)


def lemma4_gradient_line2(X, y, weights, W_U, Phi_2, Z=None, query=None,
                          phat: str = "model") -> torch.Tensor:
    """Lemma 4 (B.2), second form: the p_hat term minus sum_k p(y=k) E[. | y = k] (d, d), lemma convention.

    (1/T) sum_{k,t} E_X[p_hat(k|X) w_U(k)^T Phi_2 x_t (z_t - zbar) x_T^T]
      - (1/T) sum_{k,t} p(y=k) E[w_U(k)^T Phi_2 x_t (z_t - zbar) x_T^T | y = k].

    Written independently of line 1 (no shared helper beyond input validation): its own p_hat
    at W = 0 (uniform attention, xi = W_U Phi_2 xbar_{1:T}), its own centring, and the class
    expectations as an explicit sum over the N classes.
    """
    choice("phat", phat, PHAT)
    X, y, w, W_U = _weighted_set(X, y, weights, W_U)
    Phi_2 = _square("Phi_2", Phi_2, X)
    Z, q = _keys_query(X, Z, query)
    T, N = X.shape[1], W_U.shape[0]
    xi0 = X.sum(dim=1) @ Phi_2.T @ W_U.T / T                                  # (M, N) logits at W = 0
    ph = torch.exp(xi0 - torch.logsumexp(xi0, dim=1, keepdim=True)) if phat == "model" \
        else torch.ones_like(xi0) / N                                          # (M, N)
    keys = Z - Z.sum(dim=1, keepdim=True) / T                                  # (M, T, d)
    scores = torch.einsum("mk,kd,de,mte->mt", ph, W_U, Phi_2, X)               # (M, T)
    first = torch.einsum("m,mt,mtd,me->de", w, scores, keys, q) / T             # (d, d)
    second = torch.zeros_like(first)
    for k in range(N):                                                         # class expectations
        sel = y == k
        p_k = w[sel].sum()
        if float(p_k) == 0.0:
            continue
        a_k = torch.einsum("d,de,mte->mt", W_U[k], Phi_2, X[sel])              # (M_k, T)
        cond = torch.einsum("m,mt,mtd,me->de", w[sel] / p_k, a_k, keys[sel], q[sel]) / T
        second = second + p_k * cond
    return first - second


def lemma4_gradient_eq7(X, y, weights, W_U, Phi_2, Z=None, query=None, phat: str = "model") -> torch.Tensor:
    """Lemma 4 (B.2): the gradient of line 1 converted to the eq. (7) convention (query^T W key)."""
    return lemma_to_eq7(lemma4_gradient_line1(X, y, weights, W_U, Phi_2, Z, query, phat))


# ----------------------------------------------------------------------------- Lemma 5

def lemma5_first_layer(W, X, P, Phi_1) -> torch.Tensor:
    """Lemma 5 (B.2): z_t(W) = sum_{s<=t} Phi_1 x_s sigma(p_{1:t}^T W p_t)_s, causal (M, T, d)."""
    T = X.shape[1]
    scores = P.T @ W @ P                                              # (T, T) [s, t] = p_s^T W p_t
    causal = torch.ones(T, T, dtype=torch.bool, device=X.device).tril()  # [t, s] = 1{s <= t}
    attn = torch.softmax(scores.T.masked_fill(~causal, float("-inf")), dim=1)  # (T, T) rows t
    return torch.einsum("ts,msd->mtd", attn, X @ Phi_1.T)


def lemma5_logits(W, X, P, W_U, Phi_1, Phi_2, W_2) -> torch.Tensor:
    """Eq. (14): xi(X) = W_U Phi_2 X sigma_bar(Z(W)^T W_2 x_T), sigma_bar(u)_t = (1 + u_t - mean u)/T (M, N)."""
    T = X.shape[1]
    Z = lemma5_first_layer(W, X, P, Phi_1)                            # (M, T, d)
    u = torch.einsum("mtd,de,me->mt", Z, W_2, X[:, -1])               # (M, T)
    sig = (1.0 + u - u.mean(dim=1, keepdim=True)) / T                 # (M, T)
    return torch.einsum("mt,mtd->md", sig, X) @ (W_U @ Phi_2).T       # (M, N)


def _lemma5_inputs(X, P, y, weights, W_U, Phi_1, Phi_2, W_2):
    X, y, w, W_U = _weighted_set(X, y, weights, W_U)
    P = _tensor("P", P, 2, like=X)
    _shape("P", P, (X.shape[2], X.shape[1]))
    mats = [_square(n, v, X) for n, v in (("Phi_1", Phi_1), ("Phi_2", Phi_2), ("W_2", W_2))]
    return (X, P, y, w, W_U, *mats)


def lemma5_loss(W, X, P, y, weights, W_U, Phi_1, Phi_2, W_2, phat: str = "model") -> torch.Tensor:
    """Lemma 5, eq. (14): the exact population loss L(W) of the linearized two-layer model (W = W_K^1)."""
    choice("phat", phat, PHAT)
    X, P, y, w, W_U, Phi_1, Phi_2, W_2 = _lemma5_inputs(X, P, y, weights, W_U, Phi_1, Phi_2, W_2)
    W = torch.as_tensor(W).to(dtype=X.dtype, device=X.device)    # differentiable cast
    _shape("W", W, (X.shape[2], X.shape[2]))
    return population_loss(lemma5_logits(W, X, P, W_U, Phi_1, Phi_2, W_2), y, w, phat)


def lemma5_position_factor(X, P, Phi_1, W_2) -> torch.Tensor:
    """Lemma 5 (B.2): D_t = (1/t) sum_{s<=t} (Phi_1 x_s)^T W_2 x_T (p_s - pbar_{1:t}) for each t (M, T, d)."""
    T = X.shape[1]
    b = torch.einsum("msd,de,me->ms", X @ Phi_1.T, W_2, X[:, -1])     # (M, T) (Phi_1 x_s)^T W_2 x_T
    t = torch.arange(1, T + 1, dtype=X.dtype, device=X.device)        # paper positions
    C = torch.ones(T, T, dtype=X.dtype, device=X.device).tril() / t[:, None]  # (T, T) 1{s<=t}/t
    Pt = P.T                                                          # (T, d) row s = p_s
    pbar = C @ Pt                                                     # (T, d) pbar_{1:t}
    return torch.einsum("ts,ms,sd->mtd", C, b, Pt) - (b @ C.T)[:, :, None] * pbar[None]


def _lemma5_logits_at_zero(X, W_U, Phi_1, Phi_2, W_2) -> torch.Tensor:
    """Eq. (14) at W = 0, written out: xi = W_U Phi_2 (xbar_{1:T} + (1/T) sum_t (u_t - ubar) x_t) (M, N).

    At W = 0 the first layer averages causally, z_t = (1/t) sum_{s<=t} Phi_1 x_s, and
    u_t = z_t^T W_2 x_T. Independent of `lemma5_logits` (which autograd differentiates).
    """
    T = X.shape[1]
    t = torch.arange(1, T + 1, dtype=X.dtype, device=X.device)
    z0 = torch.cumsum(X, dim=1) / t[None, :, None] @ Phi_1.T                  # (M, T, d)
    u = torch.einsum("mtd,de,me->mt", z0, W_2, X[:, -1])                       # (M, T)
    h = X.mean(dim=1) + torch.einsum("mt,mtd->md", u - u.mean(dim=1, keepdim=True), X) / T
    return h @ Phi_2.T @ W_U.T                                                 # (M, N)


def _lemma5_parts(X, P, y, weights, W_U, Phi_1, Phi_2, W_2, phat):
    """Pieces at W = 0: w, y, N, D (M,T,d), P^T, a_hat, a_y (M,T), abar_hat, abar_y (M,)."""
    choice("phat", phat, PHAT)
    X, P, y, w, W_U, Phi_1, Phi_2, W_2 = _lemma5_inputs(X, P, y, weights, W_U, Phi_1, Phi_2, W_2)
    logits0 = _lemma5_logits_at_zero(X, W_U, Phi_1, Phi_2, W_2)       # (M, N), not via lemma5_logits
    V = W_U @ Phi_2                                                   # (N, d)
    c_hat, c_y = _phat_rows(logits0, phat) @ V, V[y]                  # (M, d) each
    a_hat = torch.einsum("mtd,md->mt", X, c_hat)                      # (M, T) sum_k p_hat w_U(k)^T Phi_2 x_t
    a_y = torch.einsum("mtd,md->mt", X, c_y)                          # (M, T) w_U(y)^T Phi_2 x_t
    xbar = X.mean(dim=1)                                              # (M, d)
    abar_hat, abar_y = (xbar * c_hat).sum(1), (xbar * c_y).sum(1)    # (M,) w_U^T Phi_2 xbar_{1:T}
    D = lemma5_position_factor(X, P, Phi_1, W_2)                      # (M, T, d)
    return w, y, W_U.shape[0], D, P.T, a_hat, a_y, abar_hat, abar_y


def lemma5_terms(X, P, y, weights, W_U, Phi_1, Phi_2, W_2, phat: str = "model"):
    """Lemma 5 (B.2): the four terms of grad_W L at W = 0 as the paper writes them (each (d, d), lemma convention).

    With D_t = (1/t) sum_{s<=t} (Phi_1 x_s)^T W_2 x_T (p_s - pbar_{1:t}) and a_k(x) = w_U(k)^T Phi_2 x:
      1. + sum_k E_X[p_hat(k|X) (1/T) sum_t a_k(x_t) D_t p_t^T]
      2. - sum_k p(y=k) E[(1/T) sum_t a_k(x_t) D_t p_t^T | y = k]
      3. - sum_k E_X[p_hat(k|X) a_k(xbar_{1:T}) (1/T) sum_t D_t p_t^T]
      4. + sum_k p(y=k) E[a_k(xbar_{1:T}) (1/T) sum_t D_t p_t^T | y = k]
    Keys and queries p_s, p_t are positional: key^T W query convention (D_t p_t^T).
    """
    w, y, N, D, Pt, a_hat, a_y, abar_hat, abar_y = _lemma5_parts(
        X, P, y, weights, W_U, Phi_1, Phi_2, W_2, phat)
    T = D.shape[1]
    p_y, R = _conditional_weights(y, w, N)                            # (N,), (M, N)
    term1 = torch.einsum("m,mt,mtd,te->de", w, a_hat, D, Pt) / T
    cond2 = torch.einsum("mk,mt,mtd,te->kde", R, a_y, D, Pt) / T      # (N, d, d) E[. | y = k]
    term2 = -torch.einsum("k,kde->de", p_y, cond2)
    term3 = -torch.einsum("m,m,mtd,te->de", w, abar_hat, D, Pt) / T
    cond4 = torch.einsum("mk,m,mtd,te->kde", R, abar_y, D, Pt) / T    # (N, d, d) E[. | y = k]
    term4 = torch.einsum("k,kde->de", p_y, cond4)
    return term1, term2, term3, term4


def lemma5_gradient(X, P, y, weights, W_U, Phi_1, Phi_2, W_2, phat: str = "model") -> torch.Tensor:
    """Lemma 5 (B.2): grad_W L at W = W_K^1 = 0, the sum of the four terms (d, d), lemma convention."""
    t1, t2, t3, t4 = lemma5_terms(X, P, y, weights, W_U, Phi_1, Phi_2, W_2, phat)
    return t1 + t2 + t3 + t4


def lemma5_gradient_proof(X, P, y, weights, W_U, Phi_1, Phi_2, W_2, phat: str = "model") -> torch.Tensor:
    """Lemma 5, proof C.4, eq. (35)-(36): E[sum_k (p_hat - 1{y=k}) (grad xi_k)] at W = 0 (d, d), lemma convention.

    Written independently of `lemma5_terms` (no shared helper beyond input validation):
    dl/dxi_k = p_hat(k|X) - 1{y=k}; grad xi_k = (1/T) sum_t w_U(k)^T Phi_2 (x_t - xbar) grad u_t,
    grad u_t = sum_{s<=t} (1/t) b_s (p_s - pbar_{1:t}) p_t^T with b_s = (Phi_1 x_s)^T W_2 x_T (eq. (32)).
    """
    choice("phat", phat, PHAT)
    X, P, y, w, W_U, Phi_1, Phi_2, W_2 = _lemma5_inputs(X, P, y, weights, W_U, Phi_1, Phi_2, W_2)
    M, T, d = X.shape
    N = W_U.shape[0]
    mask = torch.tril(torch.ones(T, T, dtype=X.dtype, device=X.device))       # [t, s] = 1{s <= t}
    counts = mask.sum(dim=1)                                                   # (T,) = t
    b = torch.einsum("mse,fe,fg,mg->ms", X, Phi_1, W_2, X[:, -1])               # (M, T) b_s
    u = b @ mask.T / counts                                                    # (M, T) u_t at W = 0
    lin = (1.0 / T) * (1.0 + u - u.sum(dim=1, keepdim=True) / T)               # (M, T) sigma_bar(u)
    xi = torch.einsum("mt,mtd,ed,ke->mk", lin, X, Phi_2, W_U)                   # (M, N)
    if phat == "model":
        ph = torch.softmax(xi, dim=1)
    else:
        ph = torch.full((M, N), 1.0 / N, dtype=X.dtype, device=X.device)
    dl = ph - torch.nn.functional.one_hot(y, N).to(X.dtype)                    # (M, N) dl/dxi_k
    centred = X - X.mean(dim=1, keepdim=True)                                  # (M, T, d) x_t - xbar
    coef = torch.einsum("mk,ke,ef,mtf->mt", dl, W_U, Phi_2, centred)           # (M, T)
    Pt = P.T                                                                   # (T, d) p_s
    pbar = mask @ Pt / counts[:, None]                                         # (T, d) pbar_{1:t}
    bp = torch.einsum("ts,ms,sd->mtd", mask, b, Pt) / counts[None, :, None]    # (1/t) sum_{s<=t} b_s p_s
    bsum = b @ mask.T / counts                                                 # (1/t) sum_{s<=t} b_s
    grad_u = bp - bsum[:, :, None] * pbar[None]                                # (M, T, d) grad u_t / p_t^T
    return torch.einsum("m,mt,mtd,te->de", w, coef, grad_u, Pt) / T


def lemma5_gradient_eq7(X, P, y, weights, W_U, Phi_1, Phi_2, W_2, phat: str = "model") -> torch.Tensor:
    """Lemma 5 (B.2): the gradient converted to the eq. (7) convention (query^T W key)."""
    return lemma_to_eq7(lemma5_gradient(X, P, y, weights, W_U, Phi_1, Phi_2, W_2, phat))
