"""Lemma 2 (Sec. 6; App. C.2): gradient associative memory with noisy inputs.

Model B (SPEC §2 B): a finite mixture of points x_m (M, d) with labels y_m and weights w_m.
L(W) = E_{(x,y)}[l(y, W_U W x)] with fixed output embeddings W_U (N, d).

The lemma's gradient is grad L(W) = sum_k p(y=k) w_U(k) (mu_hat_k - mu_k)^T with
    mu_k     = E[x | y = k]                                   (statement and proof agree)
    mu_hat_k = p(y=k)^{-1} E_x[p_hat_W(k|x) x]                (proof, App. C.2: the correct reading)
The statement in Sec. 6 defines mu_hat_k := E_x[(d l(y=k|x) / d(y=k)) x] without the factor
p(y=k)^{-1}; `mu_hat_statement` implements that literal reading (d l / d xi_k of the log-partition
part, p_hat(k|x)), and `lemma2_gradient_statement` plugs it into the displayed formula. The claim
`lemma2.mu_hat_erratum` shows that reading is rejected by autograd.

Classes with p(y=k) = 0 contribute p(y=k) mu_hat_k = E_x[p_hat(k|x) x] (finite) and no mu_k term.
"""

from __future__ import annotations

import torch

from popgrad.data import FiniteMixture
from popgrad.errors import PopgradError, positive_int


# ----------------------------------------------------------------------------- validation
def _check_inputs(W, W_U, mixture) -> None:
    if not isinstance(mixture, FiniteMixture):
        raise PopgradError(f"mixture must be popgrad.data.FiniteMixture, got {type(mixture).__name__}")
    for name, t in (("W", W), ("W_U", W_U)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2:
            raise PopgradError(f"{name} must be a 2-d torch.Tensor")
    d = mixture.x.shape[1]
    if W_U.shape != (mixture.N, d):
        raise PopgradError(f"W_U must have shape (N, d) = ({mixture.N}, {d}), got {tuple(W_U.shape)}")
    if W.shape != (d, d):
        raise PopgradError(f"W must have shape (d, d) = ({d}, {d}), got {tuple(W.shape)}")


def _weights(mixture: FiniteMixture, like: torch.Tensor) -> torch.Tensor:
    return mixture.weights.to(dtype=like.dtype, device=like.device)  # (M,)


def _one_hot(mixture: FiniteMixture, like: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(mixture.y.long(), mixture.N).to(dtype=like.dtype, device=like.device)  # (M, N)


# ----------------------------------------------------------------------------- loss and moments
def lemma2_population_loss(W: torch.Tensor, W_U: torch.Tensor, mixture: FiniteMixture) -> torch.Tensor:
    """Lemma 2 (Sec. 6): L(W) = E_{(x,y)~p}[l(y, W_U W x)], exact weighted sum over the mixture."""
    _check_inputs(W, W_U, mixture)
    x = mixture.x.to(W.dtype)
    logp = torch.log_softmax(x @ W.T @ W_U.T, dim=1)  # (M, N)
    return -(_weights(mixture, W) * logp.gather(1, mixture.y.long()[:, None])[:, 0]).sum()


def label_marginal(mixture: FiniteMixture, like: torch.Tensor) -> torch.Tensor:
    """p(y = k) for k in [N], (N,)."""
    return _weights(mixture, like) @ _one_hot(mixture, like)


def class_means(mixture: FiniteMixture, like: torch.Tensor) -> torch.Tensor:
    """Lemma 2: mu_k = E[x | y = k] as rows of an (N, d) matrix (zero row where p(y=k) = 0)."""
    w, Y = _weights(mixture, like), _one_hot(mixture, like)
    sums = (Y * w[:, None]).T @ mixture.x.to(like.dtype)  # (N, d): E[1{y=k} x]
    py = label_marginal(mixture, like)
    return torch.where(py[:, None] > 0, sums / py.clamp_min(1e-300)[:, None], torch.zeros_like(sums))


def predicted_moments(W: torch.Tensor, W_U: torch.Tensor, mixture: FiniteMixture) -> torch.Tensor:
    """E_x[p_hat_W(k|x) x] as rows of an (N, d) matrix (= p(y=k) mu_hat_k of App. C.2)."""
    _check_inputs(W, W_U, mixture)
    x = mixture.x.to(W.dtype)                            # (M, d)
    phat = torch.softmax(x @ W.T @ W_U.T, dim=1)         # (M, N)
    return (phat * _weights(mixture, W)[:, None]).T @ x  # (N, d)


def mu_hat(W: torch.Tensor, W_U: torch.Tensor, mixture: FiniteMixture) -> torch.Tensor:
    """Lemma 2 (App. C.2): mu_hat_k = p(y=k)^{-1} E_x[p_hat_W(k|x) x], (N, d); inf where p(y=k) = 0."""
    return predicted_moments(W, W_U, mixture) / label_marginal(mixture, W)[:, None]


def mu_hat_statement(W: torch.Tensor, W_U: torch.Tensor, mixture: FiniteMixture) -> torch.Tensor:
    """Lemma 2 (Sec. 6, literal statement): mu_hat_k := E_x[(d l(y=k|x)/d(y=k)) x] = E_x[p_hat_W(k|x) x], (N, d)."""
    return predicted_moments(W, W_U, mixture)


# ----------------------------------------------------------------------------- gradient
def lemma2_gradient(W: torch.Tensor, W_U: torch.Tensor, mixture: FiniteMixture) -> torch.Tensor:
    """Lemma 2 (Sec. 6; C.2): grad L(W) = sum_k p(y=k) w_U(k) (mu_hat_k - mu_k)^T, mu_hat_k as in C.2."""
    _check_inputs(W, W_U, mixture)
    py = label_marginal(mixture, W)                      # (N,)
    p_mu_hat = predicted_moments(W, W_U, mixture)        # (N, d) = p(y=k) mu_hat_k
    p_mu = py[:, None] * class_means(mixture, W)         # (N, d) = p(y=k) mu_k
    return W_U.T @ (p_mu_hat - p_mu)                     # (d, d)


def lemma2_gradient_statement(W: torch.Tensor, W_U: torch.Tensor, mixture: FiniteMixture) -> torch.Tensor:
    """Lemma 2 (Sec. 6, literal): sum_k p(y=k) w_U(k) (mu_hat_k - mu_k)^T with the statement's mu_hat_k (no 1/p(y=k))."""
    _check_inputs(W, W_U, mixture)
    py = label_marginal(mixture, W)
    return W_U.T @ (py[:, None] * (mu_hat_statement(W, W_U, mixture) - class_means(mixture, W)))


# ----------------------------------------------------------------------------- symbolic path
def symbolic_gradient_gap(N: int = 2, d: int = 2, M: int = 3, statement: bool = False):
    """Lemma 2 (C.2) minus the derivative of the loss, in sympy: symbolic W, W_U, points x_m, rational weights.

    Labels y_m = m mod N; weights proportional to m + 1. With `statement=True` mu_hat_k is the Sec. 6
    literal reading E_x[p_hat(k|x) x] (no 1/p(y=k)). Returns the (d, d) Matrix of simplified differences.
    """
    import sympy as sp  # heavy: only the symbolic check needs sympy (the float64 path stays light)

    N, d, M = positive_int("N", N), positive_int("d", d), positive_int("M", M)
    W = sp.Matrix(d, d, sp.symbols(f"W0:{d * d}"))
    W_U = sp.Matrix(N, d, sp.symbols(f"U0:{N * d}"))
    X = sp.Matrix(d, M, sp.symbols(f"x0:{d * M}"))                  # column m is x_m
    y = [m % N for m in range(M)]
    w = [sp.Rational(m + 1, M * (M + 1) // 2) for m in range(M)]
    logits = W_U * W * X                                           # (N, M)
    Z = [sum(sp.exp(logits[j, m]) for j in range(N)) for m in range(M)]
    loss = -sum(w[m] * (logits[y[m], m] - sp.log(Z[m])) for m in range(M))
    autodiff = sp.Matrix(d, d, lambda a, b: sp.diff(loss, W[a, b]))
    formula = sp.zeros(d, d)
    for k in range(N):
        pk = sum(w[m] for m in range(M) if y[m] == k)
        mu_k = sum((w[m] * X[:, m] for m in range(M) if y[m] == k), sp.zeros(d, 1)) / pk
        e_phat_x = sum((w[m] * sp.exp(logits[k, m]) / Z[m] * X[:, m] for m in range(M)), sp.zeros(d, 1))
        mu_hat_k = e_phat_x if statement else e_phat_x / pk
        formula += pk * W_U[k, :].T * (mu_hat_k - mu_k).T
    return (formula - autodiff).applyfunc(lambda e: sp.expand(sp.numer(sp.together(e))))
