"""Probes of a training run (Sec. 5, App. E): recall (9), accuracy, losses, KL (10), one-step cosines.

    recall_W_O2, recall_W_K2, recall_W_K1   eq. (9) against eq. (7)'s targets (popgrad.memory)
    recall_W_K1_early / _late               W_K^1 restricted to keys whose target t < cutoff / >= cutoff
                                            (argmax over all T queries in both: the full recall
                                            is their weighted average)
    code_W_K2, code_W_K1, code_W_K1_early   the paper's public code's reading (its figures): for each
                                            QUERY the argmax over keys; W_K^2: query w_E(q), keys
                                            Phi_1 w_E(k), hit when k = q; W_K^1: query p_t, keys p_s
                                            (s <= T-2), hit when s = t-1; _early: queries AND keys
                                            restricted to the first `cutoff` positions
    acc_in_context (+ binomial SE)          argmax at in-context tokens of the batch, before its update
    loss_in_context, loss_other             cross-entropy on in-context tokens / every other token
    kl_W_F                                  eq. (10): (1/N) sum_k KL(pi_b(.|k) || softmax(W_U W_F w_E(k)))
                                            (the direction of the paper's public code)
    code_W_K2_Q                             fixed triggers Q only: code_W_K2 restricted to the queries in Q
                                            (argmax over all N keys; the paper's Figure 5 W_K^2 probe)
    cos_W_O2, cos_W_K2, cos_W_K1            cosine between W - W(0) and its one-step population
                                            counterpart (Lemma 2 / eq. (15), Lemma 4, Lemma 5)
"""

from __future__ import annotations

import math

import torch

from popgrad.memory import eq7_targets, memory_recall, memory_scores, unique_argmax_hits
from popgrad.numerics import transformer as tr
from popgrad.numerics.masks import in_context_mask, other_mask
from popgrad.numerics.recall import gather_model_c_stats, one_step_wo2, value_inputs
from popgrad.numerics.samplers import make_generator, model_c_sampler, sample_model_c
from popgrad.theory.theorem3 import three_steps


def binomial_se(p: float, n: int) -> float:
    """Standard error sqrt(p (1 - p) / n) of an accuracy over n tokens (nan when n = 0)."""
    return math.sqrt(p * (1 - p) / n) if n > 0 else float("nan")


def recall_probes(emb64, params: dict, cutoff: int) -> dict:
    """Eq. (9) of W_O^2, W_K^2, W_K^1 (eq. (7) targets) and W_K^1 split at target t = cutoff."""
    tg = eq7_targets(emb64)
    out = {f"recall_{k}": memory_recall(params[k].double(), *tg[k]) for k in ("W_O2", "W_K2", "W_K1")}
    out.update({f"n_recall_{k}": int(tg[k][2].numel()) for k in ("W_O2", "W_K2", "W_K1")})
    U, V, target = tg["W_K1"]
    early = target < cutoff
    for name, sel in (("early", early), ("late", ~early)):
        out[f"recall_W_K1_{name}"] = (memory_recall(params["W_K1"].double(), U[:, sel], V, target[sel])
                                      if bool(sel.any()) else float("nan"))
        out[f"n_recall_W_K1_{name}"] = int(sel.sum())
    return out


def code_recall(W: torch.Tensor, keys: torch.Tensor, queries: torch.Tensor, targets: torch.Tensor) -> float:
    """The public code's probe: (1/m) sum_j 1{argmax_i queries_j^T W keys_i = targets[j]} (unique maximum)."""
    return float(unique_argmax_hits(memory_scores(W, keys, queries).T, targets).double().mean())


def code_probes(emb64, params: dict, cutoff: int) -> dict:
    """The paper's code reading of the W_K^2 and W_K^1 probes (argmax over keys for each query)."""
    E, P = emb64.W_E, emb64.P
    W2, W1 = params["W_K2"].double(), params["W_K1"].double()
    ar = torch.arange(E.shape[1], device=E.device)
    out = {"code_W_K2": code_recall(W2, emb64.Phi1 @ E, E, ar)}
    for name, n in (("code_W_K1", P.shape[1]), ("code_W_K1_early", min(cutoff, P.shape[1]))):
        out[name] = code_recall(W1, P[:, :n - 1], P[:, 1:n], torch.arange(n - 1, device=E.device))
    return out


def kl_probe(tab, W_F, pi_b) -> float:
    """Eq. (10): (1/N) sum_k KL(pi_b(.|k) || softmax(W_U W_F w_E(k))) (w_E as the model sees it)."""
    logp = torch.log_softmax(tab.E.double() @ W_F.double().T @ tab.U.double().T, dim=1)   # (N, N) row k
    pb = torch.as_tensor(pi_b, dtype=torch.float64, device=logp.device)
    return float((pb * (torch.log(pb.clamp(min=1e-300)) - logp)).sum(1).mean())


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """<a, b> / (|a| |b|) in float64 (nan if either is zero)."""
    a, b = a.double().flatten(), b.double().flatten()
    den = float(a.norm() * b.norm())
    return float(a @ b) / den if den > 0 else float("nan")


def probe_row(run, step, z, mask, tgt, loss, hits, n, lsum, full) -> dict:
    """One row of probes at `step`, measured on the batch before its update."""
    cfg = run.cfg
    if cfg.model == "full":                                                  # App. E full model: moving embeddings
        from popgrad.numerics.full_model import full_probe_row  # lazy: full_model imports this module (binomial_se)

        return full_probe_row(run, step, z, mask, tgt, loss, hits, n, lsum, full)
    n = int(n)
    acc = int(hits) / n if n else float("nan")
    row = {"step": step, "seed": cfg.seed, "n_in_context": n, "acc_in_context": acc,
           "acc_in_context_se": binomial_se(acc, n),
           "loss_in_context": float(lsum.detach()) / n if n else float("nan")}
    with torch.no_grad():
        other = tr_other_loss(run, z, mask, tgt, full)
    row["loss_other"] = other
    params = {k: v.detach() for k, v in run.params.items()}
    emb64 = getattr(run, "_emb64", None)
    if emb64 is None:
        emb64 = run.emb.to(dtype="float64")
        run._emb64 = emb64
    if "W_K2" in params:                                                    # the one-layer model has no eq. (7) targets
        row.update(recall_probes(emb64, params, cfg.cutoff))
        row.update(code_probes(emb64, params, cfg.cutoff))
    if "W_F" in params:
        row["kl_W_F"] = kl_probe(run.tab, params["W_F"], run.model.pi_b)
    if "W_K2" in params and getattr(run.model, "triggers", None):
        row["code_W_K2_Q"] = trigger_probe(emb64, params, run.model.triggers)
    for k, W1 in run.counterparts.items():
        row[f"cos_{k}"] = cosine(params[k] - run.init[k], W1)
    return row


def tr_other_loss(run, z, mask, tgt, full) -> float:
    """Mean cross-entropy over the non-in-context positions with a target (full forward if needed)."""
    keep = other_mask(mask, run.cfg.data)
    if not bool(keep.any()):
        return float("nan")
    if full is not None:
        per = full[1]
    else:
        lg = tr.logits(run.tab, z, run.params, run.cfg.scale)                           # (B, T, N)
        per = torch.nn.functional.cross_entropy(lg.flatten(0, 1), tgt.flatten(), reduction="none").view_as(z)
    return float((per * keep).sum() / keep.sum())


# ----------------------------------------------------------------------------- one-step counterparts
def one_step_counterparts(run) -> dict:
    """One-step population matrices for the cosine probes, from zero with step size 1.

    Model D: the exact engine `popgrad.theory.theorem3.three_steps` (eq. (15), Lemma 4, Lemma 5).
    Model C: W_O^2 by eq. (15) on token statistics of `onestep_batches` batches of 32 sequences
    (`popgrad.numerics.recall.one_step_wo2`, Lemma 2 at W = 0); W_K^2 and W_K^1 by autograd of
    this module's model on the same number of fresh sequences: the gradient in W_K^2 at
    W_K = 0 with W_O^2 one-step (Lemma 4's setting), then in W_K^1 at W_K^1 = 0 with both
    one-step matrices (Lemma 5's setting, without its linearization).
    """
    cfg = run.cfg
    emb64 = run.emb.to(dtype="float64")
    if cfg.data == "D":
        return {k: v.to(run.tab.E) for k, v in three_steps(run.model, emb64, 1.0).items()}

    nb = cfg.onestep_batches
    stats = gather_model_c_stats(run.model, [nb], 32, seed=cfg.seed + 3, device=run.tab.E.device)[nb]
    W_O2 = one_step_wo2(stats, emb64.W_U, value_inputs(emb64)).to(run.tab.E)
    W_K2 = _autograd_step(run, W_O2, None, "W_K2")
    W_K1 = _autograd_step(run, W_O2, W_K2, "W_K1")
    return {"W_O2": W_O2, "W_K2": W_K2, "W_K1": W_K1}


def _autograd_step(run, W_O2, W_K2, which: str) -> torch.Tensor:
    """-grad of the in-context loss in `which` at zero, other matrices given (batches of 32)."""
    cfg, tab = run.cfg, run.tab
    zero = torch.zeros_like(W_O2)
    sampler = model_c_sampler(run.model, tab.E.device)
    gen = make_generator(cfg.seed + 4, tab.E.device)
    total = torch.zeros_like(W_O2)
    count = 0
    for _ in range(cfg.onestep_batches):
        z, q, _ = sample_model_c(sampler, 32, gen)
        z = z.long()
        mask = in_context_mask(z, q)
        pos, valid = tr.query_positions(mask)
        W = zero.clone().requires_grad_(True)
        params = {"W_K1": W if which == "W_K1" else zero, "W_K2": W if which == "W_K2" else (W_K2 if W_K2 is not None else zero),
                  "W_O2": W_O2}
        lg = tr.logits(tab, z, params, cfg.scale, pos=pos)
        t = torch.cat([z[:, 1:], z[:, -1:]], 1).gather(1, pos)
        per = torch.nn.functional.cross_entropy(lg.flatten(0, 1), t.flatten(), reduction="none").view_as(t)
        (g,) = torch.autograd.grad((per * valid).sum(), W)
        total += g
        count += int(valid.sum())
    return -total / max(count, 1)


def trigger_probe(emb64, params: dict, triggers) -> float:
    """Figure 5's W_K^2 probe with fixed triggers Q: the public code's reading restricted to the queries
    q in Q, (1/K) sum_q 1{argmax_k w_E(q)^T W_K^2 Phi_1 w_E(k) = q} (argmax over all N keys)."""
    E = emb64.W_E
    q = torch.as_tensor(list(triggers), dtype=torch.long, device=E.device)
    return code_recall(params["W_K2"].double(), emb64.Phi1 @ E, E[:, q], q)
