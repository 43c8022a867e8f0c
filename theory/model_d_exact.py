"""Exact expectations on model D (App. B.3) from its structure, without enumerating sequences.

Model D given the trigger q = j, the output o = k and the first trigger position r (code
positions, see `popgrad.conventions`): z_r = j, z_{r+1} = k, z_{T-1} = j, every other position
i.i.d. uniform on [N] minus {j}; r = T-2 when k = j, else r ~ Unif{0..T-3}. So, given (j, k),
the token at position t is one of three TYPES,

    J: the trigger j        K: the output k        U: uniform on [N] \\ {j}  (vector nu_U)

with a probability Pi1[t, type] that does not depend on (j, k) (only on whether k = j), and the
types of two distinct positions have a joint law Pi2[t, s, a, b]; given the types, distinct
positions are independent. Every expectation that steps 1-3 of Theorem 3 need is then a
position sum (T x T, scalars independent of the tokens) times a token sum over (j, k)
(N x N matrix operations, after contracting with the token-space matrices such as
G = W_U Phi_2 W_E). Cost O(T^3 + N^3) per statistic; one statistic serves every d.

Token-space conventions: `w[j, k]` is the weight of the pair (q = j, o = k); `Gt[k, z]` is the
value read out for label k from a token z (already centred over k, see `centred_rows`).
"""

from __future__ import annotations

from fractions import Fraction

import torch

from popgrad.errors import positive_int

J, K, U = 0, 1, 2           # token types
CASES = (0, 1)              # 0: o != q, 1: o = q


# ----------------------------------------------------------------------------- positions
def position_types(T: int, case: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """One-hot types (R, T, 3) for each equally likely first-trigger position r (model D)."""
    T = positive_int("T", T, minimum=3)
    if case == 1:
        oh = torch.zeros(1, T, 3, dtype=dtype, device=device)
        oh[0, :, U] = 1.0
        oh[0, T - 2:, :] = torch.tensor([1.0, 0.0, 0.0], dtype=dtype, device=device)
        return oh
    R = T - 2
    oh = torch.zeros(R, T, 3, dtype=dtype, device=device)
    oh[:, :, U] = 1.0
    r = torch.arange(R, device=device)
    for pos, typ in ((r, J), (r + 1, K), (torch.full_like(r, T - 1), J)):
        oh[r, pos, :] = 0.0
        oh[r, pos, typ] = 1.0
    return oh


def type_marginals(T: int, dtype=torch.float64, device=None):
    """Pi1 (2, T, 3) and Pi2 (2, T, T, 3, 3): laws of one / two positions' types, per case.

    Pi2[c, t, s] for t != s is the joint law of the types at t and s; its diagonal t = s is
    set to zero (same-position products are handled by the `diag` terms of each statistic).
    """
    Pi1, Pi2 = [], []
    eye = torch.eye(T, dtype=dtype, device=device)
    for c in CASES:
        oh = position_types(T, c, dtype, device)                    # (R, T, 3)
        Pi1.append(oh.mean(0))
        P2 = torch.einsum("rta,rsb->tsab", oh, oh) / oh.shape[0]    # (T, T, 3, 3)
        Pi2.append(P2 * (1.0 - eye)[:, :, None, None])
    return torch.stack(Pi1), torch.stack(Pi2)


def pair_weights(N: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """P(q = j, o = k) split by case: (2, N, N), [0] off the diagonal j != k, [1] on it."""
    eye = torch.eye(N, dtype=dtype, device=device)
    return torch.stack([(1.0 - eye) / N**2, eye / N**2])


def mean_weights(T: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """c_s = (1/T) sum_{t >= s} 1/t (paper positions): weight of token s in the mean key (T,)."""
    inv = 1.0 / torch.arange(1, T + 1, dtype=dtype, device=device)
    return torch.flip(torch.cumsum(torch.flip(inv, (0,)), 0), (0,)) / T


def causal_average(T: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """A[t, s] = 1{s <= t} / t (paper t = code t + 1): the uniform causal attention (T, T)."""
    tri = torch.tril(torch.ones(T, T, dtype=dtype, device=device))
    return tri / torch.arange(1, T + 1, dtype=dtype, device=device)[:, None]


def centred_keys(T: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """beta[t, s]: x_{t,1} - xbar_1 = Phi_1 sum_s beta[t, s] (w_E(z_s) + p_s) (eq. (20)) (T, T)."""
    return causal_average(T, dtype, device) - mean_weights(T, dtype, device)[None, :]


# ----------------------------------------------------------------------------- token sums
def centred_rows(G: torch.Tensor) -> torch.Tensor:
    """Gt[k] = G[k] - (1/N) sum_k' G[k']: sum_k (1{o = k} - 1/N) G[k, z] = Gt[o, z]."""
    return G - G.mean(0, keepdim=True)


def row_dots(Gt: torch.Tensor) -> torch.Tensor:
    """gv[a, j, k] = Gt[k, :] . nu_a(j, k): the readout of a type-a token (3, N, N)."""
    N = Gt.shape[0]
    dg = torch.diagonal(Gt)
    gJ = Gt.T                                                      # [j, k] = Gt[k, j]
    gK = dg[None, :].expand(N, N)
    gU = (Gt.sum(1)[None, :] - Gt.T) / (N - 1)
    return torch.stack([gJ, gK, gU])


def col_dots(Km: torch.Tensor) -> torch.Tensor:
    """kv[b, j, k] = nu_b(j, k) . Km[:, j]: a type-b key scored against the query j (3, N, N)."""
    N = Km.shape[0]
    dk = torch.diagonal(Km)
    kJ = dk[:, None].expand(N, N)
    kK = Km.T                                                      # [j, k] = Km[k, j]
    kU = ((Km.sum(0) - dk)[:, None] / (N - 1)).expand(N, N)
    return torch.stack([kJ, kK, kU])


def diag_dots(Gt: torch.Tensor, Km: torch.Tensor) -> torch.Tensor:
    """dv[a, j, k] = sum_z nu_a(j, k)[z] Gt[k, z] Km[z, j] (one position read twice) (3, N, N)."""
    N = Gt.shape[0]
    dk = torch.diagonal(Km)
    dJ = Gt.T * dk[:, None]
    dK = torch.diagonal(Gt)[None, :] * Km.T
    dU = ((Gt @ Km).T - Gt.T * dk[:, None]) / (N - 1)
    return torch.stack([dJ, dK, dU])


def tokens_by_query(w: torch.Tensor, a: int) -> torch.Tensor:
    """M[z, j] = sum_k w[j, k] nu_a(j, k)[z] (N, N): a type-a token in outer product with e_q."""
    N = w.shape[0]
    if a == J:
        return torch.diag(w.sum(1))
    if a == K:
        return w.T.clone()
    off = 1.0 - torch.eye(N, dtype=w.dtype, device=w.device)
    return off * w.sum(1)[None, :] / (N - 1)


def tokens_by_output(w: torch.Tensor, a: int) -> torch.Tensor:
    """M[k, z] = sum_j w[j, k] nu_a(j, k)[z] (N, N): a type-a token given the label o = k."""
    N = w.shape[0]
    if a == J:
        return w.T.clone()
    if a == K:
        return torch.diag(w.sum(0))
    return (w.sum(0)[:, None] - w.T) / (N - 1)


# ----------------------------------------------------------------------------- statistics
def label_token_means(N: int, T: int, omega: torch.Tensor) -> torch.Tensor:
    """M[k, i] = E[sum_s omega_s 1{z_s = i} | y = k] (N, N), for position weights omega (T,)."""
    Pi1, _ = type_marginals(T, omega.dtype, omega.device)
    W = pair_weights(N, omega.dtype, omega.device) * N           # P(q = j | o = k) on [j, k]
    M = torch.zeros(N, N, dtype=omega.dtype, device=omega.device)
    for c in CASES:
        coef = omega @ Pi1[c]                                       # (3,)
        for a in (J, K, U):
            M += coef[a] * tokens_by_output(W[c], a)
    return M


def key_query_statistic(Gt: torch.Tensor, Ht: torch.Tensor, beta: torch.Tensor):
    """Step 2 token statistic: S = E[sum_{t,s} beta[t,s] (Gt[o, z_t] + Ht[o, t]) u_s e_q^T].

    u_s = (e_{z_s}; e_s). Returns (S_zq (N, N) [z_s, q], S_sq (T, N) [s, q]); the query's
    positional part p_T is the row sum of both (see `popgrad.theory.theorem3.step2_W_K2`).
    """
    N, T = Gt.shape[0], beta.shape[0]
    Pi1, Pi2 = type_marginals(T, Gt.dtype, Gt.device)
    Wc = pair_weights(N, Gt.dtype, Gt.device)
    gv = row_dots(Gt)                                               # (3, N, N) [a, j, k]
    bdiag = torch.diagonal(beta)                                    # (T,)
    hb = Ht @ beta                                                  # (N, T) [k, s]
    S_zq = torch.zeros(N, N, dtype=Gt.dtype, device=Gt.device)
    S_sq = torch.zeros(T, N, dtype=Gt.dtype, device=Gt.device)
    off = 1.0 - torch.eye(N, dtype=Gt.dtype, device=Gt.device)
    for c in CASES:
        w = Wc[c]
        C2 = torch.einsum("ts,tsab->ab", beta, Pi2[c])             # (3, 3), t != s
        D1 = bdiag @ Pi1[c]                                         # (3,)   t == s
        hP = hb @ Pi1[c]                                            # (N, 3) [k, b]
        for a in (J, K, U):
            for b in (J, K, U):
                S_zq += C2[a, b] * tokens_by_query(w * gv[a], b)
            S_zq += tokens_by_query(w * hP[None, :, a], a)
        # same position read as value and key: Gt[k, z] nu_a[z]
        S_zq += D1[J] * torch.diag((w * Gt.T).sum(1))
        S_zq += D1[K] * (w * torch.diagonal(Gt)[None, :]).T
        S_zq += D1[U] * off * (Gt.T @ w.T) / (N - 1)
        Pb = beta.T @ Pi1[c]                                        # (T, 3) [s, a]
        S_sq += Pb @ torch.einsum("ajk,jk->aj", gv, w)
        S_sq += (w @ hb).T
    return S_zq, S_sq


def value_key_pair_statistic(Gt: torch.Tensor, Km: torch.Tensor, T: int) -> torch.Tensor:
    """Step 3 token statistic: Q[t, s] = E[Gt[o, z_t] Km[z_s, q]] for all position pairs (T, T)."""
    N = Gt.shape[0]
    Pi1, Pi2 = type_marginals(T, Gt.dtype, Gt.device)
    Wc = pair_weights(N, Gt.dtype, Gt.device)
    gv, kv, dv = row_dots(Gt), col_dots(Km), diag_dots(Gt, Km)
    Q = torch.zeros(T, T, dtype=Gt.dtype, device=Gt.device)
    for c in CASES:
        E = torch.einsum("ajk,bjk,jk->ab", gv, kv, Wc[c])          # (3, 3)
        Q += torch.einsum("tsab,ab->ts", Pi2[c], E)
        Q += torch.diag(Pi1[c] @ torch.einsum("ajk,jk->a", dv, Wc[c]))
    return Q


# ----------------------------------------------------------------------------- exact rationals
def first_trigger_law(N: int, T: int):
    """P(t_q = t) as Fractions over paper positions t = 1..T (index 0 unused): list of length T+1."""
    p = [Fraction(0)] * (T + 1)
    for t in range(1, T - 1):
        p[t] += Fraction(N - 1, N * (T - 2))
    p[T - 1] += Fraction(1, N)
    return p


def token_law_given_output(N: int, T: int):
    """(P(z_t = k | y = k), P(z_t = i | y = k), i != k) as Fractions for paper t = 1..T."""
    same, other = [None], [None]
    for t in range(1, T + 1):
        # q = k (prob 1/N): t_q = T-1, positions T-1, T carry k, free tokens avoid k
        s_eq = Fraction(1 if t >= T - 1 else 0)
        o_eq = Fraction(1, N - 1) if t <= T - 2 else Fraction(0)     # i != k = q: free
        # q != k: t_o ~ U{2..T-1}; t_q = t_o - 1; z_T = q
        p_o = Fraction(1, T - 2) if 2 <= t <= T - 1 else Fraction(0)
        p_q = Fraction(1, T - 2) if 1 <= t <= T - 2 else Fraction(0)
        p_free = (1 - p_o - p_q) if t < T else Fraction(0)
        s_ne = p_o + p_free / (N - 1)
        # i != k: i = q with prob 1/(N-1) among q != k; else i is free-eligible
        o_ne = (p_q + (1 if t == T else 0)) / (N - 1) + p_free * Fraction(N - 2, (N - 1) ** 2)
        same.append(Fraction(1, N) * s_eq + Fraction(N - 1, N) * s_ne)
        other.append(Fraction(1, N) * o_eq + Fraction(N - 1, N) * o_ne)
    return same, other
