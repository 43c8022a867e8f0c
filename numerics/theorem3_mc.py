"""Theorem 3 (App. B.3) by autograd: the three simplified architectures as torch forward passes.

Independent of the exact engine in `popgrad.theory.theorem3`: here every step matrix is
`W = -eta * grad` of a *weighted empirical* loss, obtained by torch autograd of the forward pass
written directly on token sequences of model D. With Monte-Carlo samples
(`popgrad.numerics.samplers.sample_model_d`) the weights are 1/n; with the enumerated model D
(`SecondOccurrenceModel.enumerate()`) the weights are the exact probabilities, which gives the
exact population gradient at small N, T.

Conventions: code positions 0..T-1 (paper t = i + 1, so the paper's 1/t is 1/(i+1)); key-query
matrices in the eq. (7) convention, score = query^T W key (see popgrad.conventions).

p_hat. `phat="true"` differentiates the cross-entropy, whose gradient carries
(p_hat(k|X) - 1{y=k}). `phat="uniform"` differentiates the linear surrogate
    S(W) = E[ (1/N) sum_k xi_k(W) - xi_y(W) ],
whose gradient is exactly E[sum_k (1/N - 1{y=k}) grad xi_k], i.e. the paper's replacement of
p_hat by 1/N in B.3.2 and B.3.3 (SPEC §3). At step 1 (W_O^2 = 0) both coincide.
"""

from __future__ import annotations

import torch

from popgrad.errors import PopgradError, choice, positive_float
from popgrad.numerics.samplers import model_d_batches

PHAT = ("true", "uniform")


# ----------------------------------------------------------------------------- features
def _residual_features(emb, z):
    """x_{t,0} = w_E(z_t) + p_t and x_{t,1} = (1/t) sum_{s<=t} Phi_1 x_{s,0}  (eq. (19)-(20))."""
    x0 = emb.W_E.T[z] + emb.P.T[None]                                       # (B, T, d)
    t = torch.arange(1, z.shape[1] + 1, dtype=x0.dtype, device=x0.device)   # paper positions
    x1 = torch.cumsum(x0, dim=1) / t[None, :, None] @ emb.Phi1.T            # (B, T, d)
    return x0, x1


def step1_inputs(emb, z):
    """B.3.1: x = (1/T) sum_t W_V^2 (w_E(z_t) + eps_t), eps_t = p_t + x_{t,1}.  Returns (B, d)."""
    x0, x1 = _residual_features(emb, z)
    return (x0 + x1).mean(dim=1) @ emb.W_V2.T                               # (B, d)


def _objective(logits, y, weights, phat):
    """Weighted cross-entropy (phat='true') or the 1/N linear surrogate (phat='uniform')."""
    if phat == "true":
        per = torch.nn.functional.cross_entropy(logits, y, reduction="none")  # (B,)
    else:
        per = logits.mean(dim=1) - logits.gather(1, y[:, None])[:, 0]          # (B,)
    return (weights * per).sum()


def _check(emb, z, y, weights, eta):
    if z.ndim != 2 or y.shape != z.shape[:1] or weights.shape != z.shape[:1]:
        raise PopgradError(f"z must be (B, T) with y, weights (B,); got {tuple(z.shape)}, "
                           f"{tuple(y.shape)}, {tuple(weights.shape)}")
    if z.shape[1] != emb.T:
        raise PopgradError(f"sequences have T={z.shape[1]} but embeddings have T={emb.T}")
    positive_float("eta", eta)


# ----------------------------------------------------------------------------- step 1
def step1_loss(W_O2, emb, z, y, weights):
    """B.3.1 loss: E[l(y, W_U W_O^2 x)] with x of `step1_inputs` (Lemma 2 setting)."""
    logits = step1_inputs(emb, z) @ W_O2.T @ emb.W_U.T                     # (B, N)
    return _objective(logits, y, weights, "true")


def step1_W_O2(emb, z, y, weights, eta=1.0):
    """Eq. (15) by autograd: W_O^2 = -eta * grad L(0) on the weighted sequences."""
    _check(emb, z, y, weights, eta)
    W = torch.zeros(emb.d, emb.d, dtype=emb.W_E.dtype, device=emb.W_E.device, requires_grad=True)
    (g,) = torch.autograd.grad(step1_loss(W, emb, z, y, weights), W)
    return -eta * g


# ----------------------------------------------------------------------------- step 2
def step2_loss(W_K2, emb, W_O2, z, y, weights, phat="true"):
    """B.3.2 loss: logits W_U Phi_2 X_0 softmax_t(x_{T,0}^T W_K^2 x_{t,1}), Phi_2 = W_O^2 W_V^2."""
    x0, x1 = _residual_features(emb, z)                                    # (B, T, d) each
    scores = torch.einsum("bd,de,bte->bt", x0[:, -1], W_K2, x1)            # (B, T) query x_{T,0}
    att = torch.softmax(scores, dim=1)                                     # (B, T)
    out = torch.einsum("bt,btd->bd", att, x0)                              # (B, d)
    logits = out @ (W_O2 @ emb.W_V2).T @ emb.W_U.T                         # (B, N)
    return _objective(logits, y, weights, phat)


def step2_W_K2(emb, W_O2, z, y, weights, eta=1.0, phat="true"):
    """Eq. (17) by autograd: W_K^2 = -eta * grad L(0) (eq. (7) convention)."""
    _check(emb, z, y, weights, eta)
    choice("phat", phat, PHAT)
    W = torch.zeros(emb.d, emb.d, dtype=emb.W_E.dtype, device=emb.W_E.device, requires_grad=True)
    (g,) = torch.autograd.grad(step2_loss(W, emb, W_O2, z, y, weights, phat), W)
    return -eta * g


# ----------------------------------------------------------------------------- step 3
def linearized_softmax(u):
    """Lemma 5: sigma_bar(u)_t = (1/T)(1 + u_t - mean_s u_s), the softmax linearized at 0."""
    return (1.0 + u - u.mean(dim=-1, keepdim=True)) / u.shape[-1]


def step3_loss(W_K1, emb, W_O2, W_K2, z, y, weights, phat="true"):
    """Eq. (14) loss of B.3.3: positional first layer, values w_E(z_t), sigma_bar second layer."""
    T = z.shape[1]
    x = emb.W_E.T[z]                                                       # (B, T, d) x_t = w_E(z_t)
    P = emb.P.T                                                            # (T, d)
    s1 = P @ W_K1 @ P.T                                                    # (T, T) query p_t, key p_s
    causal = torch.ones(T, T, dtype=torch.bool, device=z.device).tril()
    a1 = torch.softmax(s1.masked_fill(~causal, float("-inf")), dim=1)      # (T, T) row t over s <= t
    keys = torch.einsum("ts,bsd->btd", a1, x @ emb.Phi1.T)                 # (B, T, d) z_t(W)
    u = torch.einsum("bd,de,bte->bt", x[:, -1], W_K2, keys)                # (B, T) query x_T
    out = torch.einsum("bt,btd->bd", linearized_softmax(u), x)             # (B, d)
    logits = out @ (W_O2 @ emb.W_V2).T @ emb.W_U.T                         # (B, N)
    return _objective(logits, y, weights, phat)


def step3_W_K1(emb, W_O2, W_K2, z, y, weights, eta=1.0, phat="true"):
    """Lemma 5 / B.3.3 by autograd: W_K^1 = -eta * grad L(0) (eq. (7) convention)."""
    _check(emb, z, y, weights, eta)
    choice("phat", phat, PHAT)
    W = torch.zeros(emb.d, emb.d, dtype=emb.W_E.dtype, device=emb.W_E.device, requires_grad=True)
    (g,) = torch.autograd.grad(step3_loss(W, emb, W_O2, W_K2, z, y, weights, phat), W)
    return -eta * g


# ----------------------------------------------------------------------------- data
def enumerated(model, device="cpu"):
    """Model D enumerated: (z (M, T), y (M,), prob (M,) float64) as tensors (exact weights)."""
    z, prob, y = model.enumerate()
    return (torch.as_tensor(z, device=device), torch.as_tensor(y, device=device),
            torch.as_tensor(prob, dtype=torch.float64, device=device))


def sampled(model, n, seed, device="cpu"):
    """n Monte-Carlo sequences of model D with weights 1/n: (z, y, weights)."""
    z, y, _, _ = model_d_batches(model, seed, device=device).next(n)          # first n of the seed's stream
    return z, y, torch.full((n,), 1.0 / n, dtype=torch.float64, device=z.device)


def three_steps(emb, z, y, weights, eta=1.0, phat="uniform"):
    """All three steps in sequence on one weighted sample: {'W_O2', 'W_K2', 'W_K1'} (eq. (7) conv.)."""
    W_O2 = step1_W_O2(emb, z, y, weights, eta)
    W_K2 = step2_W_K2(emb, W_O2, z, y, weights, eta, phat)
    W_K1 = step3_W_K1(emb, W_O2, W_K2, z, y, weights, eta, phat)
    return {"W_O2": W_O2, "W_K2": W_K2, "W_K1": W_K1}


# ----------------------------------------------------------------------------- paper's predictions
def tau_value(N, T):
    """Eq. (16): tau = E[sum_{t=t_o}^T 1/t], t_o = T w.p. 1/N, else uniform on {2..T-1} (float)."""
    tail = [sum(1.0 / t for t in range(to, T + 1)) for to in range(1, T + 1)]   # tail[to-1]
    uniform = sum(tail[to - 1] for to in range(2, T)) / (T - 2)
    return tail[T - 1] / N + uniform * (N - 1) / N


def paper_step1_scores(N, T, eta):
    """After (16): w_U(k)^T W_O^2 W_V^2 w_E(j) ~ eta/(NT)(1{k=j} - 1/N); with Phi_1: times tau."""
    base = eta / (N * T)
    tau = tau_value(N, T)
    return {"diag": base * (1 - 1 / N), "off": -base / N,
            "tau_diag": tau * base * (1 - 1 / N), "tau_off": -tau * base / N}


def gamma_T(T):
    """B.3.2 case j != k, i = j: gamma_T = E_{t_o}[1/t_o - (1/T) sum_{t=t_o-1}^T 1/t - 1/T^2], t_o ~ U{2..T-1}."""
    vals = [1.0 / to - sum(1.0 / t for t in range(to - 1, T + 1)) / T - 1.0 / T ** 2 for to in range(2, T)]
    return sum(vals) / len(vals)


def paper_step2_diag(N, T, eta):
    """(24) with the case values of a_{k,j,j}: w_E(j)^T W_K^2 Phi_1 w_E(j) (eq. (7) convention).

    = (alpha eta / (T N^2)) (N-1)/N [(N-1) gamma_T + 2/T - 1/(T(T-1)) - 2/T^2], alpha = eta/(TN).
    """
    alpha = eta / (T * N)
    a_sum = (N - 1) * gamma_T(T) + 2.0 / T - 1.0 / (T * (T - 1)) - 2.0 / T ** 2
    return alpha * eta / (T * N ** 2) * (N - 1) / N * a_sum


def paper_step3_diag(N, T, eta, alpha_prime):
    """B.3.3 final form, mean over t = 2..T of p_t^T W_K^1 p_{t-1} (eq. (7) convention):
    eta alpha alpha' (T-1)/(T^2 t) P(t_q = t-1)(1 - 1/t), alpha = eta/(TN), alpha' = W_K^2 scale."""
    alpha = eta / (T * N)
    def p_tq(s):   # P(t_q = s), paper positions
        return 1.0 / N if s == T - 1 else (N - 1) / (N * (T - 2))
    vals = [eta * alpha * alpha_prime * (T - 1) / (T ** 2 * t) * p_tq(t - 1) * (1 - 1 / t) for t in range(2, T + 1)]
    return sum(vals) / len(vals)
