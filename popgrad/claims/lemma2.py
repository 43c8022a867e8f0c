"""Claims of Lemma 2 (Sec. 6; App. C.2): gradients with noisy inputs, and the mu_hat_k erratum."""

from __future__ import annotations

import numpy as np
import torch

from popgrad.data import FiniteMixture, positional_noise_mixture
from popgrad.embeddings import make_embeddings
from popgrad.registry import Claim, Measurement, register
from popgrad.tolerances import FLOAT64, nanmax, rel_error
from popgrad.theory import lemma2 as L2

REJECT = 1e-3  # a reading is rejected when its relative error to autograd exceeds this


def _cases():
    """(name, W, W_U, mixture): a random mixture with unequal class weights, and Example B.1 with non-uniform (y, t)."""
    gen = torch.Generator().manual_seed(7)
    d, N, M = 6, 4, 12
    x = torch.randn(M, d, generator=gen, dtype=torch.float64)                 # (M, d)
    y = torch.arange(M) % N                                                    # every class present
    w = torch.as_tensor(np.random.default_rng(7).dirichlet(np.ones(M)))       # (M,)
    W_U = torch.randn(N, d, generator=gen, dtype=torch.float64) / d ** 0.5
    W = torch.randn(d, d, generator=gen, dtype=torch.float64)
    yield "random mixture (d=6, N=4, M=12)", W, W_U, FiniteMixture(x, y, w, N)
    emb = make_embeddings(8, 5, 3, seed=4)
    probs = np.random.default_rng(4).dirichlet(np.ones(15)).reshape(5, 3)
    W = torch.randn(8, 8, generator=gen, dtype=torch.float64)
    yield "Example B.1 mixture, non-uniform (y, t) (d=8, N=5, T=3)", W, emb.W_U, positional_noise_mixture(emb, probs)


def _autograd(W, W_U, mixture) -> torch.Tensor:
    W = W.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(L2.lemma2_population_loss(W, W_U, mixture), W)
    return g


def _from_mu_hat(W, W_U, mix) -> torch.Tensor:
    """Lemma 2 assembled term by term: sum_k p(y=k) w_U(k) (mu_hat_k - mu_k)^T with C.2's mu_hat_k (L2.mu_hat)."""
    py = L2.label_marginal(mix, W)
    return W_U.T @ (py[:, None] * (L2.mu_hat(W, W_U, mix) - L2.class_means(mix, W)))


def measure_gradient() -> Measurement:
    # Lemma 2 with mu_hat_k = p(y=k)^{-1} E_x[p_hat(k|x) x] (C.2) equals autograd of the exact population loss.
    errors = {}
    for name, W, W_U, mix in _cases():
        auto = _autograd(W, W_U, mix)
        errors[name] = rel_error(L2.lemma2_gradient(W, W_U, mix), auto)
        errors[name + ", assembled from mu_hat"] = rel_error(_from_mu_hat(W, W_U, mix), auto)
    return Measurement(nanmax(errors.values()), FLOAT64.rtol, "exact", note="random non-zero W, float64",
                       details=errors)


def measure_gradient_symbolic() -> Measurement:
    # Lemma 2 (C.2 reading of mu_hat_k) minus the sympy derivative of the loss simplifies to exactly zero.
    gap = L2.symbolic_gradient_gap(N=2, d=2, M=3)
    nonzero = sum(1 for e in gap if e != 0)
    return Measurement(float(nonzero), 0.0, "exact", note="N=2, d=2, M=3 symbolic points, rational weights",
                       details={"gap": str(gap.tolist())})


def measure_mu_hat_erratum() -> Measurement:
    # The statement's mu_hat_k := E_x[(dl(y=k|x)/d(y=k)) x] (no 1/p(y=k)) is rejected by autograd; C.2's is exact.
    details, ok, rejected = {}, [], []
    for name, W, W_U, mix in _cases():
        auto = _autograd(W, W_U, mix)
        # the other literal reading: mu_hat_k = E_{x,y}[(p_hat(k|x) - 1{y=k}) x] (the full dl/dxi_k) in the same display
        dl_dxi = L2.predicted_moments(W, W_U, mix) - L2.label_marginal(mix, W)[:, None] * L2.class_means(mix, W)
        reading_b = W_U.T @ (L2.label_marginal(mix, W)[:, None] * (dl_dxi - L2.class_means(mix, W)))
        details[name] = {"C.2 reading": max(rel_error(L2.lemma2_gradient(W, W_U, mix), auto),
                                            rel_error(_from_mu_hat(W, W_U, mix), auto)),
                         "statement reading E[p_hat x]": rel_error(L2.lemma2_gradient_statement(W, W_U, mix), auto),
                         "statement reading E[dl/dxi_k x]": rel_error(reading_b, auto)}
        ok.append(details[name]["C.2 reading"])
        rejected.append(min(details[name]["statement reading E[p_hat x]"], details[name]["statement reading E[dl/dxi_k x]"]))
    error = max(ok) if min(rejected) > REJECT else float("inf")
    note = (f"statement's mu_hat_k lacks 1/p(y=k): rel error to autograd >= {min(rejected):.2f} (rejected), "
            f"C.2's mu_hat_k = p(y=k)^-1 E_x[p_hat(k|x) x] matches to {max(ok):.1e}")
    return Measurement(error, FLOAT64.rtol, "erratum", note=note, details=details)


register(Claim(
    id="lemma2.gradient", statement="grad L(W) = sum_k p(y=k) w_U(k) (mu_hat_k - mu_k)^T, mu_k = E[x|y=k], mu_hat_k = p(y=k)^-1 E_x[p_hat(k|x) x]",
    where="Lemma 2, Sec. 6; App. C.2", compared="Lemma 2 formula (C.2 mu_hat_k) vs autograd of the exact mixture loss"
    "; shared: the mixture and W_U (input validation only)",
    kind="exact", tolerance="rel <= 1e-10 (float64)", measure=measure_gradient,
    code=("popgrad.theory.lemma2.lemma2_gradient", "popgrad.theory.lemma2.lemma2_population_loss", "popgrad.theory.lemma2.mu_hat",
          "popgrad.theory.lemma2.class_means"),
    sides=(('popgrad.theory.lemma2.lemma2_gradient',),
           ('popgrad.theory.lemma2.lemma2_population_loss',))))
register(Claim(
    id="lemma2.gradient_symbolic", statement="Lemma 2's gradient formula (C.2 reading) is the exact derivative of L(W)",
    where="Lemma 2, Sec. 6; App. C.2", compared="sympy: formula minus dL/dW, simplified"
    "; one sympy function forms both sides (checked by review); shared: the symbols",
    kind="exact", tolerance="== 0 (symbolic)", measure=measure_gradient_symbolic,
    code=("popgrad.theory.lemma2.symbolic_gradient_gap",)))
register(Claim(
    id="lemma2.mu_hat_erratum",
    finding="Lemma 2's gradient with mu_hat_k as defined in Sec. 6",
    statement="the statement's mu_hat_k := E_x[(dl(y=k|x)/d(y=k)) x] must be p(y=k)^-1 E_x[p_hat(k|x) x] (as in C.2)",
    where="Lemma 2, Sec. 6 vs App. C.2", compared="statement's readings and C.2's mu_hat_k, each plugged into the lemma, vs autograd"
    "; shared: the mixture and W_U (input validation only)",
    kind="exact", tolerance="C.2 rel <= 1e-10 and each literal reading rel > 1e-3", measure=measure_mu_hat_erratum,
    code=("popgrad.theory.lemma2.mu_hat_statement", "popgrad.theory.lemma2.lemma2_gradient_statement", "popgrad.theory.lemma2.mu_hat"),
    sides=(('popgrad.theory.lemma2.lemma2_gradient', 'popgrad.theory.lemma2.lemma2_gradient_statement', 'popgrad.theory.lemma2.predicted_moments', 'popgrad.theory.lemma2.label_marginal', 'popgrad.theory.lemma2.class_means'),
           ('popgrad.theory.lemma2.lemma2_population_loss',))))
