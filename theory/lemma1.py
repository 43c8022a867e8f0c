"""Lemma 1 (Sec. 4.1, eq. (4)-(6); App. C.1): gradients of a linear associative memory.

Model A (SPEC §2 A): input token z, label y, joint p(z, y) an (N, N) table; fixed embeddings
W_E (d, N) (column z is w_E(z)) and W_U (N, d) (row k is w_U(k)). The logits of input z are
W_U W w_E(z), so all N inputs at once are the (N, N) matrix W_U W W_E (column z = input z).

Token space first: the gradient is W_U^T D W_E^T with D[k, z] = p(z) p_hat(k|z) - p(z, y=k), an
(N, N) token statistic; the embeddings are applied last. `gd_coefficients` tracks the same
statistic along gradient descent, which gives the coefficients alpha_0, alpha_ij of eq. (6).
"""

from __future__ import annotations

import torch

from popgrad.data import FinitePairs
from popgrad.embeddings import Embeddings
from popgrad.errors import PopgradError, memory_budget, positive_float, positive_int


# ----------------------------------------------------------------------------- validation
def _check_inputs(emb, pairs) -> None:
    if not isinstance(emb, Embeddings):
        raise PopgradError(f"emb must be popgrad.embeddings.Embeddings, got {type(emb).__name__}")
    if not isinstance(pairs, FinitePairs):
        raise PopgradError(f"pairs must be popgrad.data.FinitePairs, got {type(pairs).__name__}")
    if pairs.N != emb.N:
        raise PopgradError(f"pairs has N={pairs.N} tokens but the embeddings have N={emb.N}")


def _check_W(name: str, W, emb: Embeddings) -> torch.Tensor:
    if not isinstance(W, torch.Tensor):
        raise PopgradError(f"{name} must be a torch.Tensor, got {type(W).__name__}")
    if W.shape != (emb.d, emb.d):
        raise PopgradError(f"{name} must have shape ({emb.d}, {emb.d}) (d x d), got {tuple(W.shape)}")
    return W


def _joint(pairs: FinitePairs, like: torch.Tensor) -> torch.Tensor:
    """p(z, y) as a tensor (N, N) on the dtype/device of `like` (rows z, columns y)."""
    return torch.as_tensor(pairs.p, dtype=like.dtype, device=like.device)


# ----------------------------------------------------------------------------- eq. (4), (5)
def predicted_probs(W: torch.Tensor, emb: Embeddings) -> torch.Tensor:
    """p_hat_W(k|z) = softmax(W_U W w_E(z))_k as an (N, N) matrix, rows k, columns z."""
    logits = emb.W_U @ W @ emb.W_E  # (N_k, N_z)
    return torch.softmax(logits, dim=0)


def lemma1_population_loss(W: torch.Tensor, emb: Embeddings, pairs: FinitePairs) -> torch.Tensor:
    """Lemma 1, eq. (4): L(W) = E_{(z,y)~p}[l(y, W_U W w_E(z))], exact sum over the N x N table."""
    _check_inputs(emb, pairs)
    _check_W("W", W, emb)
    logp = torch.log_softmax(emb.W_U @ W @ emb.W_E, dim=0)  # (N_y, N_z)
    p = _joint(pairs, W)                                   # (N_z, N_y)
    return -(p * logp.T).sum()


def lemma1_gradient(W: torch.Tensor, emb: Embeddings, pairs: FinitePairs) -> torch.Tensor:
    """Lemma 1, eq. (5): grad L(W) = sum_k E_z[(p_hat_W(k|z) - p(k|z)) w_U(k) w_E(z)^T]."""
    _check_inputs(emb, pairs)
    _check_W("W", W, emb)
    return emb.W_U.T @ _token_residual(W, emb, pairs) @ emb.W_E.T  # (d, d)


def _token_residual(W: torch.Tensor, emb: Embeddings, pairs: FinitePairs) -> torch.Tensor:
    """D[k, z] = p(z) (p_hat(k|z) - p(k|z)) = p(z) p_hat(k|z) - p(z, k), the token statistic of (5)."""
    p = _joint(pairs, W)                        # (N_z, N_y)
    pz = p.sum(dim=1)                           # (N_z,)
    return predicted_probs(W, emb) * pz[None, :] - p.T  # (N_k, N_z)


def one_step_memory(emb: Embeddings, pairs: FinitePairs, eta: float) -> torch.Tensor:
    """Lemma 1 at W = 0: one population gradient step W_1 = -eta grad L(0) = eta sum_k E_z[(p(k|z) - 1/N) w_U(k) w_E(z)^T]."""
    _check_inputs(emb, pairs)
    eta = positive_float("eta", eta)
    W0 = torch.zeros(emb.d, emb.d, dtype=emb.W_E.dtype, device=emb.W_E.device)
    return -eta * lemma1_gradient(W0, emb, pairs)


# ----------------------------------------------------------------------------- eq. (6)
def gradient_descent(emb: Embeddings, pairs: FinitePairs, W0: torch.Tensor, eta: float, steps: int,
                     weight_decay: float = 0.0, return_all: bool = True) -> torch.Tensor:
    """Lemma 1, eq. (6): gradient descent W_{t+1} = W_t - eta (grad L(W_t) + lambda W_t) on the population loss (4).

    Returns the iterates W_0..W_steps stacked as (steps + 1, d, d), or only W_steps (d, d)
    when `return_all=False`.
    """
    _check_inputs(emb, pairs)
    W = _check_W("W0", W0, emb).to(emb.W_E.dtype)
    eta = positive_float("eta", eta)
    steps = positive_int("steps", steps, minimum=0)
    lam = positive_float("weight_decay", weight_decay, allow_zero=True)
    if return_all:
        memory_budget("gradient_descent iterates", (steps + 1) * emb.d ** 2)
    iterates = [W]
    for _ in range(steps):
        W = (1.0 - eta * lam) * W - eta * lemma1_gradient(W, emb, pairs)
        if return_all:
            iterates.append(W)
    return torch.stack(iterates) if return_all else W


def gd_coefficients(emb: Embeddings, pairs: FinitePairs, W0: torch.Tensor, eta: float, steps: int,
                    weight_decay: float = 0.0) -> tuple[float, torch.Tensor]:
    """Lemma 1, eq. (6): the coefficients (alpha_0, A) of W_steps = alpha_0 W_0 + sum_{i,j} A[j, i] w_U(j) w_E(i)^T.

    alpha_0 = (1 - eta lambda)^steps (SPEC §3); A (N_j, N_i) obeys A_{t+1} = (1 - eta lambda) A_t - eta D_t
    with D_t the token statistic of eq. (5) at W_t. So alpha_ij of (6) is A[j, i].
    """
    _check_inputs(emb, pairs)
    W0 = _check_W("W0", W0, emb).to(emb.W_E.dtype)
    eta = positive_float("eta", eta)
    steps = positive_int("steps", steps, minimum=0)
    lam = positive_float("weight_decay", weight_decay, allow_zero=True)
    alpha0 = 1.0
    A = torch.zeros(emb.N, emb.N, dtype=W0.dtype, device=W0.device)
    for _ in range(steps):
        W = alpha0 * W0 + emb.W_U.T @ A @ emb.W_E.T
        A = (1.0 - eta * lam) * A - eta * _token_residual(W, emb, pairs)
        alpha0 *= 1.0 - eta * lam
    return alpha0, A


def outer_product_residual(M: torch.Tensor, emb: Embeddings) -> torch.Tensor:
    """Part of M outside span{w_U(j) w_E(i)^T}: M - P_U M P_E with P_U, P_E the projectors onto span(W_U rows), span(W_E columns)."""
    _check_W("M", M, emb)
    P_U = emb.W_U.T @ torch.linalg.pinv(emb.W_U.T)   # (d, d)
    P_E = emb.W_E @ torch.linalg.pinv(emb.W_E)       # (d, d)
    return M - P_U @ M @ P_E


# ----------------------------------------------------------------------------- optimum
def minimize_population_loss(emb: Embeddings, pairs: FinitePairs, max_iter: int = 500,
                             tol: float = 1e-13) -> torch.Tensor:
    """Lemma 1 optimum: argmin_W L(W) of the convex loss (4), by L-BFGS from W = 0 (float64)."""
    _check_inputs(emb, pairs)
    max_iter = positive_int("max_iter", max_iter)
    W = torch.zeros(emb.d, emb.d, dtype=emb.W_E.dtype, device=emb.W_E.device, requires_grad=True)
    opt = torch.optim.LBFGS([W], lr=1.0, max_iter=max_iter, tolerance_grad=tol, tolerance_change=0.0,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = lemma1_population_loss(W, emb, pairs)
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach()


def conditional_probs(pairs: FinitePairs) -> torch.Tensor:
    """p(k|z) as an (N, N) matrix, rows k, columns z (the target of p_hat at the optimum)."""
    p = torch.as_tensor(pairs.p, dtype=torch.float64)  # (N_z, N_y)
    return (p / p.sum(dim=1, keepdim=True)).T


# ----------------------------------------------------------------------------- symbolic path
def symbolic_gradient_gap(N: int = 2, d: int = 2):
    """Lemma 1, eq. (5) minus the derivative of eq. (4), in sympy: symbolic W, W_E, W_U, rational p(z, y).

    Returns the (d, d) sympy Matrix of simplified differences (all zero if (5) is exact).
    """
    import sympy as sp  # heavy: only the symbolic check needs sympy (the float64 path stays light)

    N, d = positive_int("N", N), positive_int("d", d)
    W = sp.Matrix(d, d, sp.symbols(f"W0:{d * d}"))
    W_E = sp.Matrix(d, N, sp.symbols(f"E0:{d * N}"))
    W_U = sp.Matrix(N, d, sp.symbols(f"U0:{N * d}"))
    raw = sp.Matrix(N, N, lambda z, y: sp.Integer(1 + z + 2 * y))   # p(z, y) proportional to 1 + z + 2y
    p = raw / sum(raw)
    logits = W_U * W * W_E                                          # (N_k, N_z)
    Z = [sum(sp.exp(logits[j, z]) for j in range(N)) for z in range(N)]
    loss = -sum(p[z, y] * (logits[y, z] - sp.log(Z[z])) for z in range(N) for y in range(N))   # eq. (4)
    autodiff = sp.Matrix(d, d, lambda a, b: sp.diff(loss, W[a, b]))
    pz = [sum(p[z, y] for y in range(N)) for z in range(N)]
    formula = sp.zeros(d, d)                                        # eq. (5)
    for k in range(N):
        for z in range(N):
            phat = sp.exp(logits[k, z]) / Z[z]
            formula += pz[z] * (phat - p[z, k] / pz[z]) * W_U[k, :].T * W_E[:, z].T
    return (formula - autodiff).applyfunc(lambda e: sp.expand(sp.numer(sp.together(e))))
