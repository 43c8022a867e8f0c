"""Claims: the exact model-D engine (popgrad.theory.model_d_exact, popgrad.theory.theorem3) against independent paths.

The references here are written plainly and share nothing with the engine: each step's
simplified architecture (App. B.3) is evaluated on every sequence of `SecondOccurrenceModel.enumerate()`,
its exact population loss is formed, and torch autograd gives the gradient at zero
(W = -eta * grad). p_hat = 1/N is the gradient of the loss linearized in the logits,
E[mean_k xi_k - xi_y]; the true p_hat is the cross-entropy. A Monte-Carlo path
(popgrad.numerics.samplers.sample_model_d) checks the engine at sizes too large to enumerate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from popgrad.data import SecondOccurrenceModel, conditioned_bigram_chain
from popgrad.embeddings import make_embeddings
from popgrad.numerics.samplers import make_generator, sample_model_d
from popgrad.registry import Claim, Measurement, register
from popgrad.theory import model_d_exact as mx, theorem3 as t3
from popgrad.theory.model_d_exact import token_law_given_output
from popgrad.tolerances import FLOAT64, MC_Z, rel_error

ENUM_SIZES = ((2, 3), (2, 6), (3, 4), (3, 7), (4, 5), (5, 4), (4, 6))   # (N, T), N^T <= 10^6
D_ENUM = 12


def _setup(N, T, d=D_ENUM, seed=0):
    model = SecondOccurrenceModel(N, T)
    z, p, y = model.enumerate()
    return model, make_embeddings(d, N, T, seed=seed), torch.as_tensor(z), torch.as_tensor(p), torch.as_tensor(y)


def _loss(xi, y, p, phat):
    """Population loss over enumerated sequences; 'uniform' is its linearization at p_hat = 1/N."""
    if phat == "uniform":
        return (p * (xi.mean(1) - xi.gather(1, y[:, None])[:, 0])).sum()
    return (p * F.cross_entropy(xi, y, reduction="none")).sum()


def _grad_step(loss_of_W, d, eta=1.0):
    W = torch.zeros(d, d, dtype=torch.float64, requires_grad=True)
    loss_of_W(W).backward()
    return -eta * W.grad


def reference_step1(emb, z, p, y, phat="true"):
    """B.3.1 by enumeration + autograd: x = (1/T) sum_t W_V^2 (w_E(z_t) + eps_t), logits W_U W x."""
    T = z.shape[1]
    t = torch.arange(1, T + 1, dtype=torch.float64)
    avg = torch.tril(torch.ones(T, T, dtype=torch.float64)) / t[:, None]      # (T, T)
    X = emb.W_E.T[z]                                                           # (M, T, d)
    eps = emb.P.T[None] + (avg @ (X + emb.P.T[None])) @ emb.Phi1.T
    x = ((X + eps) @ emb.W_V2.T).mean(1)                                       # (M, d)
    return _grad_step(lambda W: _loss(x @ W.T @ emb.W_U.T, y, p, phat), emb.d)


def reference_step2(emb, W_O2, z, p, y, phat="uniform"):
    """B.3.2 by enumeration + autograd: softmax(keys^T W query) over x_{t,1} keys; returns eq7 (W^T)."""
    T = z.shape[1]
    t = torch.arange(1, T + 1, dtype=torch.float64)
    avg = torch.tril(torch.ones(T, T, dtype=torch.float64)) / t[:, None]
    X0 = emb.W_E.T[z] + emb.P.T[None]                                          # (M, T, d)
    keys = (avg @ X0) @ emb.Phi1.T
    Phi2 = W_O2 @ emb.W_V2

    def loss(W):
        att = torch.softmax(torch.einsum("mtd,de,me->mt", keys, W, X0[:, -1]), -1)
        return _loss(torch.einsum("mt,mtd->md", att, X0) @ Phi2.T @ emb.W_U.T, y, p, phat)

    return _grad_step(loss, emb.d).T


def reference_step3(emb, W_O2, W_K2, z, p, y, phat="uniform", idealized=False):
    """B.3.3 / Lemma 5 by enumeration + autograd: positional causal first layer, linearized second; eq7.

    Built from W_O^2 and W_K^2 (eq7) themselves, not from the engine's readouts: the actual
    model runs in d-space on x_t = w_E(z_t); idealized=True replaces w_U(k)^T Phi_2 w_E(z) by
    alpha 1{z=k} and (Phi_1 w_E(z))^T W_2 w_E(q) by alpha' 1{z=q}, alpha, alpha' = mean diagonal
    readouts computed here.
    """
    T, N = z.shape[1], emb.N
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    X = emb.W_E.T[z]                                                           # (M, T, d) w_E(z_t)
    V = emb.W_U @ W_O2 @ emb.W_V2                                              # (N, d) w_U(k)^T Phi_2
    K = emb.Phi1.T @ W_K2.T                                                    # (d, d): key Phi_1 x, query x_T
    if idealized:
        alpha = torch.stack([V[k] @ emb.W_E[:, k] for k in range(N)]).mean()
        alpha2 = torch.stack([emb.W_E[:, k] @ K @ emb.W_E[:, k] for k in range(N)]).mean()
        onehot = torch.nn.functional.one_hot(z, N).to(torch.float64)          # (M, T, N)
        vals = alpha * onehot                                                  # (M, T, N) value readouts
        kq = alpha2 * (z == z[:, -1:]).to(torch.float64)                       # (M, T) key-query readouts
    else:
        vals = X @ V.T                                                         # (M, T, N)
        kq = torch.einsum("msd,de,me->ms", X, K, X[:, -1])                    # (M, T)

    def loss(W):
        sc = (emb.P.T @ W @ emb.P).T                                           # [t, s] = p_s^T W p_t
        att = torch.softmax(sc.masked_fill(~causal, float("-inf")), -1)
        u = kq @ att.T                                                         # (M, T)
        sig = (1.0 + u - u.mean(1, keepdim=True)) / T
        return _loss(torch.einsum("mtn,mt->mn", vals, sig), y, p, phat)

    return _grad_step(loss, emb.d).T


# ----------------------------------------------------------------------------- Monte-Carlo
def _mc_projection(model, emb, W_O2, W_K2, R1, R2, batch, seed, L):
    """Per-sequence <R1, step-1 term>, <R2, step-2 term> and sum_{t,s} L[t,s] Gt[o,z_t] Km[z_s,q] (B,) each.

    Written from the sequences, the embeddings and the matrices W_O^2, W_K^2 (lemma convention) only:
    Km[z_s, q] = (Phi_1 w_E(z_s))^T W_K^2 w_E(q) is formed here, not taken from the engine."""
    z, y, q, _ = sample_model_d(model, batch, make_generator(seed))
    T = model.T
    t = torch.arange(1, T + 1, dtype=torch.float64)
    avg = torch.tril(torch.ones(T, T, dtype=torch.float64)) / t[:, None]
    X = emb.W_E.T[z]
    x = ((X + emb.P.T[None] + (avg @ (X + emb.P.T[None])) @ emb.Phi1.T) @ emb.W_V2.T).mean(1)
    wU = emb.W_U[y] - emb.W_U.mean(0)                                          # (B, d)
    f1 = torch.einsum("bd,de,be->b", wU, R1, x)
    X0 = X + emb.P.T[None]
    keys = (avg @ X0) @ emb.Phi1.T
    keys = keys - keys.mean(1, keepdim=True)
    G = emb.W_U @ W_O2 @ emb.W_V2                                              # (N, d)
    a = (X0 @ (G[y] - G.mean(0))[:, :, None])[..., 0] / T                     # (B, T)
    f2 = torch.einsum("bt,btd,de,be->b", a, keys, R2, X0[:, -1])               # <R2, lemma W>
    Gtok = G @ emb.W_E                                                         # (N, N) [k, z]
    g3 = (Gtok[y[:, None], z] - Gtok.mean(0)[z])                               # (B, T) Gt[o, z_t]
    kq = torch.einsum("bsd,ed,ef,bf->bs", X, emb.Phi1, W_K2, X[:, -1])          # (B, T) Km[z_s, q]
    f3 = torch.einsum("bt,ts,bs->b", g3, L, kq)                                # step-3 statistic
    return f1, f2, f3


def measure_monte_carlo() -> Measurement:
    """Engine vs Monte-Carlo at (N, T, d) = (12, 10, 24): projections of (15), (17) and step 3's Q within MC_Z s.e."""
    model, emb = SecondOccurrenceModel(12, 10), make_embeddings(24, 12, 10, seed=3)
    W1 = t3.step1_W_O2(model, emb)
    W2 = t3.step2_W_K2(model, emb, W1).T                                       # lemma convention
    G, Km = t3.step3_readouts(emb, W1, W2.T)
    gen = torch.Generator().manual_seed(7)
    R1, R2, L = (torch.randn(*sh, generator=gen, dtype=torch.float64) for sh in ((24, 24), (24, 24), (10, 10)))
    Q = mx.value_key_pair_statistic(mx.centred_rows(G), Km, 10)
    fs = [[], [], []]
    for chunk in range(8):
        for acc, f in zip(fs, _mc_projection(model, emb, W1, W2, R1, R2, 25_000, 11 + chunk, L)):
            acc.append(f)
    zs = []
    for f, exact in zip(fs, ((R1 * W1).sum(), (R2 * W2).sum(), (L * Q).sum())):
        f = torch.cat(f)
        zs.append(float((f.mean() - exact).abs() / (f.std() / f.numel() ** 0.5)))
    return Measurement(max(zs), MC_Z, "exact", note=f"z-scores (15): {zs[0]:.2f}, (17): {zs[1]:.2f}, "
                       f"step-3 Q: {zs[2]:.2f}; 200k sequences",
                       details={"z_step1": zs[0], "z_step2": zs[1], "z_step3": zs[2], "batch": 200_000})


def measure_token_law() -> Measurement:
    """Exact rationals P(z_t = i | y = k) (model_d_exact) vs float sums over the enumeration."""
    worst = 0.0
    for N, T in ENUM_SIZES:
        _, _, z, p, y = _setup(N, T)
        same, other = token_law_given_output(N, T)
        hit = (z == y[:, None]).double()                                       # z_t = k = y
        other_hit = (z == ((y + 1) % N)[:, None]).double()                     # z_t = k + 1 != y
        for ref, val in ((hit, same), (other_hit, other)):
            emp = (p[:, None] * ref).sum(0) / p.sum()                          # P(z_t = . | y), averaged over y (symmetric)
            worst = max(worst, rel_error(emp, torch.tensor([float(v) for v in val[1:]], dtype=torch.float64)))
    return Measurement(worst, FLOAT64.rtol, "exact", note=f"{len(ENUM_SIZES)} sizes (N, T) enumerated",
                       details={"sizes": ENUM_SIZES})


register(Claim(
    id="engine.token_law",
    statement="P(z_t = k | y = k) and P(z_t = i | y = k), i != k, of model D as exact rationals",
    where="App. B.3 (model D, SPEC §2 D)",
    compared="exact Fractions from the model's structure vs float64 sums over all enumerated sequences"
    "; shared: model D's definition",
    kind="exact", tolerance="rel <= 1e-10 (float64)", measure=measure_token_law,
    code=("popgrad.theory.model_d_exact.token_law_given_output",),
    sides=(('popgrad.theory.model_d_exact.token_law_given_output',),
           ('popgrad.data.SecondOccurrenceModel.enumerate',))))

register(Claim(
    id="engine.monte_carlo",
    statement="the exact engine's (15), (17) and step-3 statistic agree with Monte-Carlo averages over model D",
    where="App. B.3.1-B.3.2, eq. (15), (17)",
    compared="engine vs 200k sequences of popgrad.numerics.samplers.sample_model_d (random projections)"
    "; shared: model D (its law vs its samples), the embeddings, and W_O^2, W_K^2 as inputs; the Monte-Carlo side forms its own readouts",
    kind="exact", tolerance=f"|mc - exact| <= {MC_Z:g} standard errors", measure=measure_monte_carlo,
    code=("popgrad.theory.theorem3.step1_W_O2", "popgrad.theory.theorem3.step2_W_K2", "popgrad.theory.model_d_exact.value_key_pair_statistic"),
    sides=(('popgrad.theory.theorem3.step1_W_O2', 'popgrad.theory.theorem3.step2_W_K2', 'popgrad.theory.theorem3.step3_readouts', 'popgrad.theory.model_d_exact.value_key_pair_statistic', 'popgrad.theory.model_d_exact.centred_rows'),
           ('popgrad.claims.engine._mc_projection',))))


# ----------------------------------------------------------------------------- model D = conditioned chain
CHAIN_SIZES = ((2, 3), (2, 5), (3, 4), (3, 5), (4, 4))


def enumeration_law(N, T) -> dict:
    """Model D as enumerated by SecondOccurrenceModel: {(z, y): probability} (repeated keys summed)."""
    z, p, y = SecondOccurrenceModel(N, T).enumerate()
    law: dict = {}
    for zz, pp, yy in zip(z.tolist(), p.tolist(), y.tolist()):
        law[(tuple(zz), yy)] = law.get((tuple(zz), yy), 0.0) + pp
    return law


def measure_chain_equivalence() -> Measurement:
    """SPEC §2 D: model D == the uniform bigram chain with q -> o conditioned on 'q twice, second at T'."""
    worst, details = 0.0, {}
    for N, T in CHAIN_SIZES:
        mine, ref = enumeration_law(N, T), conditioned_bigram_chain(N, T)
        support = set(mine) ^ set(ref)
        gap = max(abs(mine.get(k, 0.0) - ref.get(k, 0.0)) for k in set(mine) | set(ref))
        details[f"N={N},T={T}"] = {"sequences": len(ref), "support_mismatch": len(support), "max_abs_gap": float(gap)}
        worst = max(worst, gap if not support else float("inf"))
    return Measurement(worst, 1e-15, "exact",
                       note=f"{len(CHAIN_SIZES)} sizes; same support and probabilities", details=details)


register(Claim(
    id="engine.model_d_chain",
    statement="model D (q, o uniform; t_q rule; other tokens uniform on [N] minus q) is the uniform bigram chain "
              "with q -> o conditioned on q occurring exactly twice, the second time at T",
    where="App. B.3 (model D); SPEC §2 D",
    compared="SecondOccurrenceModel.enumerate() vs brute-force conditioning of the chain over all N^T sequences "
             "(popgrad.data.conditioned_bigram_chain); the two share nothing",
    kind="exact", tolerance="same support; |probability gap| <= 1e-15", measure=measure_chain_equivalence,
    code=("popgrad.data.SecondOccurrenceModel.enumerate", "popgrad.data.conditioned_bigram_chain"),
    sides=(("popgrad.claims.engine.enumeration_law",), ("popgrad.data.conditioned_bigram_chain",))))
