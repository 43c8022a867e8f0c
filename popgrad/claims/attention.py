"""Claims of App. B.2 (Lemmas 4 and 5, proofs C.3, C.4) and the softmax derivative (32).

Each claim holds a paper formula of `popgrad.theory.attention` against an independent computation:
torch autograd of the exact population loss (13) / (14) at W = 0, sympy differentiation, or the
other form of the same lemma. Grids: random weighted sequence sets (several seeds, keys Z = X and
Z != X) and model D enumerated exactly at small N, T with embeddings from `make_embeddings`.
"""

from __future__ import annotations

import math

import torch

from popgrad.data import SecondOccurrenceModel
from popgrad.embeddings import make_embeddings
from popgrad.registry import Claim, Measurement, register
from popgrad.tolerances import FLOAT64, rel_error, worst_key
from popgrad.theory import attention as att
from popgrad.theory import attention_symbolic as sym

SEEDS = (0, 1, 2)
MODEL_D = ((3, 4), (3, 5), (4, 4))      # (N, T) enumerated exactly
D_MODEL_D = 8
PHATS = ("model", "uniform")


# ----------------------------------------------------------------------------- the grids

def _randn(gen, *shape, scale=1.0):
    return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale


def random_set(seed: int, distinct_keys: bool, M: int = 7, T: int = 5, d: int = 6, N: int = 4) -> dict:
    """A random weighted set of M sequences with random non-zero parameters (all float64)."""
    gen = torch.Generator().manual_seed(1000 + seed)
    s = 1.0 / math.sqrt(d)
    w = torch.rand(M, generator=gen, dtype=torch.float64) + 0.1
    return {"X": _randn(gen, M, T, d, scale=s),
            "Z": _randn(gen, M, T, d, scale=s) if distinct_keys else None,
            "P": _randn(gen, d, T, scale=s),
            "y": torch.randint(0, N, (M,), generator=gen), "weights": w / w.sum(),
            "W_U": _randn(gen, N, d, scale=2 * s), "Phi_1": _randn(gen, d, d, scale=2 * s),
            "Phi_2": _randn(gen, d, d, scale=2 * s), "W_2": _randn(gen, d, d, scale=2 * s)}


def model_d_set(N: int, T: int, distinct_keys: bool, with_positions: bool = True,
                d: int = D_MODEL_D, seed: int = 0) -> dict:
    """Model D enumerated exactly, X = W_E[z] (+ P); keys (1/t) sum_{s<=t} Phi_1 x_s if distinct (B.3.2)."""
    z, prob, y = SecondOccurrenceModel(N, T).enumerate()
    emb = make_embeddings(d, N, T, seed=seed)
    gen = torch.Generator().manual_seed(2000 + seed)
    X = emb.W_E.T[torch.as_tensor(z)]                                  # (M, T, d)
    if with_positions:
        X = X + emb.P.T[None]
    t = torch.arange(1, T + 1, dtype=torch.float64)
    Z = (X.cumsum(dim=1) / t[None, :, None]) @ emb.Phi1.T if distinct_keys else None
    W_O2 = _randn(gen, d, d, scale=2 / math.sqrt(d))
    return {"X": X, "Z": Z, "P": emb.P, "y": torch.as_tensor(y), "weights": torch.as_tensor(prob),
            "W_U": emb.W_U, "Phi_1": emb.Phi1, "Phi_2": W_O2 @ emb.W_V2,
            "W_2": _randn(gen, d, d, scale=2 / math.sqrt(d))}


def lemma4_grid():
    """(name, data) over random sets and model D, keys Z = X and Z != X."""
    for distinct in (False, True):
        keys = "Z!=X" if distinct else "Z=X"
        for seed in SEEDS:
            yield f"random seed={seed} {keys}", random_set(seed, distinct)
        for N, T in MODEL_D:
            yield f"modelD N={N} T={T} {keys}", model_d_set(N, T, distinct)


def lemma5_grid():
    """(name, data) over random sets and model D with values W_E[z] + P and W_E[z] (B.3.3)."""
    for seed in SEEDS:
        yield f"random seed={seed}", random_set(seed, False)
    for with_pos in (True, False):
        for N, T in MODEL_D:
            yield f"modelD N={N} T={T} X={'W_E+P' if with_pos else 'W_E'}", model_d_set(N, T, False, with_pos)


def _l4(data: dict) -> dict:
    return {k: data[k] for k in ("X", "y", "weights", "W_U", "Phi_2", "Z")}


def _l5(data: dict) -> dict:
    return {k: data[k] for k in ("X", "P", "y", "weights", "W_U", "Phi_1", "Phi_2", "W_2")}


def autograd_lemma4(data: dict, phat: str = "model", W=None, scale: float = 1.0) -> torch.Tensor:
    """grad_W of the exact loss (13) by torch autograd, at W (default 0), lemma convention."""
    d = data["X"].shape[2]
    W = torch.zeros(d, d, dtype=torch.float64) if W is None else W.clone()
    W.requires_grad_(True)
    (g,) = torch.autograd.grad(att.lemma4_loss(W, **_l4(data), scale=scale, phat=phat), W)
    return g


def autograd_lemma5(data: dict, phat: str = "model") -> torch.Tensor:
    """grad_W of the exact loss (14) by torch autograd at W = 0, lemma convention."""
    d = data["X"].shape[2]
    W = torch.zeros(d, d, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(att.lemma5_loss(W, **_l5(data), phat=phat), W)
    return g


def _worst(errors: dict) -> tuple[float, str]:
    name = worst_key(errors)
    return errors[name], name


# ----------------------------------------------------------------------------- measurements

def measure_lemma4_line1() -> Measurement:
    errors, transposed = {}, []
    for name, data in lemma4_grid():
        for phat in PHATS:
            auto = autograd_lemma4(data, phat)
            line1 = att.lemma4_gradient_line1(**_l4(data), phat=phat)
            errors[f"{name} phat={phat}"] = rel_error(line1, auto)
            transposed.append(rel_error(line1.T, auto))
    err, where = _worst(errors)
    return Measurement(err, FLOAT64.rtol, "exact",
                       note=f"{len(errors)} cases; the transposed (eq. 7) matrix is rejected: "
                            f"min rel error {min(transposed):.2f}",
                       details={"cases": len(errors), "worst_case": where,
                                "min_rel_error_if_transposed": min(transposed)})


def measure_lemma4_line2() -> Measurement:
    errors, gaps = {}, []
    for name, data in lemma4_grid():
        for phat in PHATS:
            line1 = att.lemma4_gradient_line1(**_l4(data), phat=phat)
            errors[f"{name} phat={phat}"] = rel_error(att.lemma4_gradient_line2(**_l4(data), phat=phat), line1)
        gaps.append(rel_error(att.lemma4_gradient_line1(**_l4(data), phat="uniform"),
                              att.lemma4_gradient_line1(**_l4(data), phat="model")))
    err, where = _worst(errors)
    return Measurement(err, FLOAT64.rtol, "exact",
                       note=f"{len(errors)} cases, p_hat non-constant in X; the line-2 algebra holds as stated. "
                            f"gap p_hat=1/N vs model: {min(gaps):.2g}..{max(gaps):.2g} (rel)",
                       details={"cases": len(errors), "worst_case": where,
                                "uniform_vs_model_rel_gap_min": min(gaps), "uniform_vs_model_rel_gap_max": max(gaps)})


def measure_lemma5_autograd() -> Measurement:
    errors = {}
    for name, data in lemma5_grid():
        for phat in PHATS:
            errors[f"{name} phat={phat}"] = rel_error(att.lemma5_gradient(**_l5(data), phat=phat),
                                                      autograd_lemma5(data, phat))
    err, where = _worst(errors)
    return Measurement(err, FLOAT64.rtol, "exact", note=f"{len(errors)} cases; sum of the four terms",
                       details={"cases": len(errors), "worst_case": where})


def measure_lemma5_proof() -> Measurement:
    errors = {}
    for name, data in lemma5_grid():
        for phat in PHATS:
            errors[f"{name} phat={phat}"] = rel_error(att.lemma5_gradient(**_l5(data), phat=phat),
                                                      att.lemma5_gradient_proof(**_l5(data), phat=phat))
    err, where = _worst(errors)
    return Measurement(err, FLOAT64.rtol, "exact", note=f"{len(errors)} cases",
                       details={"cases": len(errors), "worst_case": where})


def measure_eq32() -> Measurement:
    errors = {}
    for T in range(1, 9):
        J = torch.autograd.functional.jacobian(lambda u: torch.softmax(u, 0), torch.zeros(T, dtype=torch.float64))
        errors[f"autograd T={T}"] = rel_error(att.softmax_jacobian_at_zero(T), J)
    for T in range(1, 7):
        derived, paper = sym.softmax_jacobian_symbolic(T)
        errors[f"sympy T={T}"] = 0.0 if derived == paper else math.inf
    err, where = _worst(errors)
    return Measurement(err, FLOAT64.rtol, "exact",
                       note="autograd T=1..8 (float64); sympy T=1..6 exact equality",
                       details={"worst_case": where})


def measure_lemma4_symbolic() -> Measurement:
    diff = sym.lemma4_symbolic_difference(T=2, d=2, N=2, M=2)
    nonzero = sum(1 for e in diff if e != 0)
    return Measurement(float(nonzero), 0.0, "exact",
                       note="T=d=N=M=2, all entries symbolic: line 1 minus sympy derivative == 0",
                       details={"nonzero_entries": nonzero})


def measure_scale_factor() -> Measurement:
    exact, gaps = {}, {}
    for name, data in list(lemma4_grid())[::3]:
        d = data["X"].shape[2]
        c = d ** -0.5
        with_factor = autograd_lemma4(data, scale=c)
        exact[f"{name} W=0 autograd"] = rel_error(with_factor, c * autograd_lemma4(data))
        exact[f"{name} W=0 lemma"] = rel_error(with_factor, c * att.lemma4_gradient_line1(**_l4(data)))
        G = torch.randn(d, d, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
        # chain rule: grad of L(c W) is c grad L(c W); exact at every W
        exact[f"{name} chain rule"] = rel_error(autograd_lemma4(data, W=G, scale=c), c * autograd_lemma4(data, W=c * G))
        for r in (0.1, 1.0, 10.0):
            gaps.setdefault(r, []).append(rel_error(autograd_lemma4(data, W=r * G, scale=c),
                                                    c * autograd_lemma4(data, W=r * G)))
    err, where = _worst(exact)
    gap_txt = ", ".join(f"|W|~{r}: {max(v):.2g}" for r, v in gaps.items())
    return Measurement(err, FLOAT64.rtol, "exact",
                       note=f"exact at W = 0 only; away from 0 grad with factor != d^-1/2 grad (max rel gap {gap_txt})",
                       details={"worst_case": where, **{f"max_rel_gap_W_entries_N(0,{r}^2)": max(v)
                                                        for r, v in gaps.items()}})


# ----------------------------------------------------------------------------- registration

_L4 = ("popgrad.theory.attention.lemma4_loss", "popgrad.theory.attention.lemma4_gradient_line1")

register(Claim(
    id="lemma4.line1_vs_autograd",
    statement="grad_W L(0) = sum_k E[(p_hat(k|X) - 1{y=k}) (1/T) sum_t w_U(k)^T Phi_2 x_t (z_t - zbar) x_T^T]",
    where="Lemma 4, eq. (13); App. B.2, C.3",
    compared="Lemma 4 line 1 vs torch autograd of the exact loss (13) at W = 0 (p_hat model and 1/N)"
    "; shared: the weighted sequence set, W_U, Phi_2 (input validation only)",
    kind="exact", tolerance="rel <= 1e-10 (float64)", measure=measure_lemma4_line1, code=_L4,
    sides=(('popgrad.theory.attention.lemma4_gradient_line1',),
           ('popgrad.claims.attention.autograd_lemma4',))))

register(Claim(
    id="lemma4.line2_vs_line1",
    statement="line 1 = (1/T) sum_{k,t} E_X[p_hat ...] - (1/T) sum_{k,t} p(y=k) E[... | y=k]",
    where="Lemma 4; App. B.2",
    compared="Lemma 4 second form (class-conditional expectations) vs line 1"
    "; written separately, own p_hat and centring; shared: the data (input validation only)",
    kind="exact", tolerance="rel <= 1e-10 (float64)", measure=measure_lemma4_line2,
    code=("popgrad.theory.attention.lemma4_gradient_line2", "popgrad.theory.attention.lemma4_gradient_line1"),
    sides=(('popgrad.theory.attention.lemma4_gradient_line2',),
           ('popgrad.theory.attention.lemma4_gradient_line1',))))

register(Claim(
    id="lemma5.gradient_vs_autograd",
    statement="grad_W L(0) for W = W_K^1 equals the sum of the four terms of Lemma 5",
    where="Lemma 5, eq. (14); App. B.2, C.4",
    compared="sum of Lemma 5's four terms vs torch autograd of the exact loss (14) at W = 0"
    "; the terms compute their own p_hat at W = 0, not via lemma5_logits; shared: the data (input validation only)",
    kind="exact", tolerance="rel <= 1e-10 (float64)", measure=measure_lemma5_autograd,
    code=("popgrad.theory.attention.lemma5_loss", "popgrad.theory.attention.lemma5_terms", "popgrad.theory.attention.lemma5_gradient"),
    sides=(('popgrad.theory.attention.lemma5_gradient',),
           ('popgrad.claims.attention.autograd_lemma5',))))

register(Claim(
    id="lemma5.terms_vs_proof",
    statement="the four terms of Lemma 5 equal the proof's form (35)-(36) with dl/dxi_k = p_hat - 1{y=k}",
    where="Lemma 5; App. C.4, eq. (35)-(36)",
    compared="sum of the four terms (class-conditional form) vs eq. (35)-(36)"
    "; written separately, own p_hat and position factor; shared: the data (input validation only)",
    kind="exact", tolerance="rel <= 1e-10 (float64)", measure=measure_lemma5_proof,
    code=("popgrad.theory.attention.lemma5_gradient", "popgrad.theory.attention.lemma5_gradient_proof"),
    sides=(('popgrad.theory.attention.lemma5_gradient',),
           ('popgrad.theory.attention.lemma5_gradient_proof',))))

register(Claim(
    id="eq32.softmax_jacobian",
    statement="d sigma(u)_t / d u_s at u = 0 equals (1/T) 1{t=s} - 1/T^2",
    where="eq. (32); App. C.3",
    compared="eq. (32) vs torch autograd of softmax at 0 (T=1..8) and sympy (T=1..6, exact)"
    "; shared: nothing",
    kind="exact", tolerance="rel <= 1e-10 (float64); sympy ==", measure=measure_eq32,
    code=("popgrad.theory.attention.softmax_jacobian_at_zero", "popgrad.theory.attention_symbolic.softmax_jacobian_symbolic"),
    sides=(('popgrad.theory.attention.softmax_jacobian_at_zero',),
           ('popgrad.theory.attention_symbolic.softmax_jacobian_symbolic',))))

register(Claim(
    id="lemma4.symbolic",
    statement="Lemma 4 line 1 is the exact derivative of (13) at W = 0 for symbolic X, W_U, Phi_2, weights",
    where="Lemma 4; App. B.2, C.3",
    compared="sympy: Lemma 4 line 1 minus sympy derivative of the loss at W = 0 (T=d=N=M=2)"
    "; one sympy function forms both sides (checked by review); shared: the symbols",
    kind="exact", tolerance="== 0 (symbolic)", measure=measure_lemma4_symbolic,
    code=("popgrad.theory.attention_symbolic.lemma4_symbolic_difference",)))

register(Claim(
    id="lemma4.scale_factor",
    statement="dropping d^-1/2 in the softmax only changes the gradient by a multiplicative factor (at W = 0)",
    where="App. B.2 (before Lemma 4)",
    compared="autograd with sigma(d^-1/2 Z^T W x_T) vs d^-1/2 x (autograd and Lemma 4) without, at W = 0"
    "; shared: the data; the chain-rule part holds one loss against itself at two scales by design",
    kind="exact", tolerance="rel <= 1e-10 (float64)", measure=measure_scale_factor,
    code=("popgrad.theory.attention.lemma4_loss", "popgrad.theory.attention.lemma4_logits"),
    sides=(('popgrad.theory.attention.lemma4_gradient_line1',),
           ('popgrad.claims.attention.autograd_lemma4',))))
