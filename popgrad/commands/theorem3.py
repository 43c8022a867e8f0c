"""`popgrad theorem3`: the three one-step matrices of Theorem 3 (App. B.3) and the assembled head.

Per step: the paper's value of the associative-memory scores, the exact value (the exact engine
`popgrad.theory.theorem3` when implemented, else autograd on the enumerated model D when it is small
enough, else blank), the Monte-Carlo value (autograd on --mc-samples sampled sequences, split in
8 groups for the standard error) and memory recall (9) against eq. (7). Then the accuracy of the
two-layer head with (7) hand-built, with the learned matrices rescaled, and chance.
"""

from __future__ import annotations

import os

import torch

from popgrad.cliutil import add_output_options, emit, positive_float, positive_int, nonnegative_int
from popgrad.errors import PopgradError, memory_budget
from popgrad.tolerances import MC_Z

NAME = "theorem3"
HELP = "Theorem 3: the three one-step matrices (paper, exact, Monte-Carlo), recall, and the assembled head"
COLUMNS = ("step", "quantity", "paper", "exact", "mc", "mc_stderr", "verdict")
GROUPS = 8
BETAS = (3.0, 10.0, 30.0)


def add_arguments(p):
    p.add_argument("--N", type=positive_int, default=32, help="vocabulary size (>= 2)")
    p.add_argument("--T", type=positive_int, default=16, help="sequence length (>= 3)")
    p.add_argument("--d", type=positive_int, default=256, help="embedding dimension")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="embedding and sampling seed")
    p.add_argument("--eta", type=positive_float, default=1.0, help="step size of each one-step update")
    p.add_argument("--mc-samples", type=positive_int, default=4096, help="Monte-Carlo sequences (>= 8)")
    p.add_argument("--beta", type=positive_float, default=10.0, help="softmax scale of the hand-built head (7)")
    add_output_options(p, plot=False)
    p.add_argument("--plot", metavar="DIR", help="write theorem3_heatmaps.png and theorem3_recall.png into DIR")


# ----------------------------------------------------------------------------- exact and MC
def exact_steps(model, emb, eta):
    """(matrices, source): the three exact one-step matrices of popgrad.theory.theorem3 (p_hat = 1/N)."""
    from popgrad.theory.theorem3 import three_steps

    return three_steps(model, emb, eta), "popgrad.theory.theorem3"


def mc_steps(model, emb, eta, n, seed):
    """Group estimates {step: (G, d, d)} on G disjoint groups of the n sequences; each step at the
    mean (all-sample) previous matrices. Groups differ in size by at most one, so the mean of the
    group estimates is the all-sample estimate up to that rounding."""
    from popgrad.numerics import theorem3_mc as mc

    z, y, _ = mc.sampled(model, n, seed, emb.W_E.device)
    parts = [(z[g::GROUPS], y[g::GROUPS]) for g in range(GROUPS)]                  # (n/G, T) each
    parts = [(zg, yg, torch.full((zg.shape[0],), 1.0 / zg.shape[0], dtype=torch.float64, device=zg.device))
             for zg, yg in parts]
    W_O2 = torch.stack([mc.step1_W_O2(emb, *p, eta) for p in parts])               # (G, d, d)
    W_K2 = torch.stack([mc.step2_W_K2(emb, W_O2.mean(0), *p, eta, "uniform") for p in parts])
    W_K1 = torch.stack([mc.step3_W_K1(emb, W_O2.mean(0), W_K2.mean(0), *p, eta, "uniform") for p in parts])
    return {"W_O2": W_O2, "W_K2": W_K2, "W_K1": W_K1}


def step_scores(emb, name, W):
    """Scalar summaries of one matrix: mean target score, mean off-target score (+ tau line)."""
    from popgrad.memory import eq7_targets, memory_scores

    U, V, target = eq7_targets(emb)[name]
    S = memory_scores(W, U, V)                                             # (n, m)
    diag = S[torch.arange(U.shape[1]), target]
    off = (S.sum() - diag.sum()) / (S.numel() - diag.numel())
    out = {"target score": float(diag.mean()), "off-target score": float(off)}
    if name == "W_O2":
        S2 = emb.W_U @ W @ emb.W_V2 @ emb.Phi1 @ emb.W_E                      # (N, N) spurious tau line
        out["target score via Phi_1 (tau line)"] = float(S2.diagonal().mean())
    return out


def paper_values(N, T, eta, alpha_prime):
    from popgrad.numerics import theorem3_mc as mc

    p1 = mc.paper_step1_scores(N, T, eta)
    return {("W_O2", "target score"): p1["diag"], ("W_O2", "off-target score"): p1["off"],
            ("W_O2", "target score via Phi_1 (tau line)"): p1["tau_diag"],
            ("W_K2", "target score"): mc.paper_step2_diag(N, T, eta), ("W_K2", "off-target score"): "O(1/N) ~ 0",
            ("W_K1", "target score"): mc.paper_step3_diag(N, T, eta, alpha_prime), ("W_K1", "off-target score"): "<= 0"}


STEP_LABEL = {"W_O2": "1: W_O^2 (16)", "W_K2": "2: W_K^2 (24)-(25)", "W_K1": "3: W_K^1 (B.3.3)"}


def step_rows(emb, exact, groups, eta):
    """The per-step table rows (fixed order) and recall per step."""
    from popgrad.memory import eq7_targets, memory_recall

    tg = eq7_targets(emb)
    mc_full = {k: g.mean(0) for k, g in groups.items()}
    alpha_prime = step_scores(emb, "W_K2", (exact or mc_full)["W_K2"])["target score"]
    paper = paper_values(emb.N, emb.T, eta, alpha_prime)
    rows, recall = [], {}
    for name in ("W_O2", "W_K2", "W_K1"):
        per_group = [step_scores(emb, name, g) for g in groups[name]]
        full = step_scores(emb, name, mc_full[name])
        ex = step_scores(emb, name, exact[name]) if exact else {}
        for q in full:
            vals = torch.tensor([pg[q] for pg in per_group], dtype=torch.float64)
            se = float(vals.std() / GROUPS ** 0.5)
            verdict = ""
            if q in ex:
                ok = abs(full[q] - ex[q]) <= MC_Z * se + 1e-10 * abs(ex[q])
                verdict = f"mc ~ exact ({MC_Z:g} se)" if ok else "mc != exact"
            rows.append({"step": STEP_LABEL[name], "quantity": q, "paper": paper.get((name, q)),
                         "exact": ex.get(q), "mc": full[q], "mc_stderr": se, "verdict": verdict})
        recall[name] = {"exact": memory_recall(exact[name], *tg[name]) if exact else None,
                        "mc": memory_recall(mc_full[name], *tg[name])}
        rows.append({"step": STEP_LABEL[name], "quantity": "recall (9) vs (7)", "exact": recall[name]["exact"],
                     "mc": recall[name]["mc"], "verdict": ""})
    return rows, recall


def head_rows(emb, model, learned, beta, seed):
    """Accuracy of the assembled head on model D: hand-built (7), learned rescaled, chance."""
    from popgrad.numerics import induction_head as ih

    acc = {"hand-built (7), beta=%g" % beta: ih.accuracy_model_d(emb, model, ih.hand_built(emb, beta, beta), n=2048, seed=seed)}
    for b in BETAS:
        try:
            mats = ih.rescaled_learned(emb, learned, b)
            acc["learned, rescaled to beta=%g" % b] = ih.accuracy_model_d(emb, model, mats, n=2048, seed=seed)
        except PopgradError:
            acc["learned, rescaled to beta=%g" % b] = None
    acc["chance 1/N"] = 1.0 / emb.N
    return acc


# ----------------------------------------------------------------------------- run
def _prepare_plot_dir(path: str) -> None:
    """Create --plot DIR up front, so a bad path fails before the computation, in one line."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise PopgradError(f"--plot: cannot create directory {path!r}: {exc.strerror}") from None


def compute(N, T, d, seed, eta, n, beta, device="cpu"):
    """Everything the command prints (and the plots read)."""
    from popgrad.numerics import theorem3_mc as mc
    from popgrad.data import SecondOccurrenceModel
    from popgrad.embeddings import make_embeddings
    from popgrad.memory import eq7_targets

    if n < GROUPS:
        raise PopgradError(f"--mc-samples must be >= {GROUPS}, got {n}")
    # autograd keeps a few (n, T, d) activations
    memory_budget(f"--mc-samples {n} with --T {T} and --d {d}", 8.0 * n * T * d)
    model = SecondOccurrenceModel(N, T)
    emb = make_embeddings(d, N, T, seed=seed, device=device)
    exact, source = exact_steps(model, emb, eta)
    groups = mc_steps(model, emb, eta, n, seed)
    rows, recall = step_rows(emb, exact, groups, eta)
    learned = exact
    acc = head_rows(emb, model, learned, beta, seed)
    tg = eq7_targets(emb)
    heat = {k: (tg[k][1].T @ learned[k] @ tg[k][0]).cpu().numpy() for k in learned}  # (m, n) v_j^T W u_i
    return {"rows": rows, "recall": recall, "tau": mc.tau_value(N, T), "head_accuracy": acc,
            "exact_source": source, "heatmaps": heat}


def recall_sweep(N, T, d, seed, eta):
    """Recall (9) of the exact one-step matrices, varying N, T, d one at a time around (N, T, d)."""
    from popgrad.data import SecondOccurrenceModel
    from popgrad.embeddings import make_embeddings
    from popgrad.memory import eq7_targets, memory_recall

    grid = {"N": sorted({8, 16, N, 2 * N}), "T": sorted({8, T, 2 * T}), "d": sorted({32, 64, 128, d})}
    out = []
    for axis, values in grid.items():
        for v in values:
            s = {"N": N, "T": T, "d": d, axis: v}
            model = SecondOccurrenceModel(s["N"], s["T"])
            emb = make_embeddings(s["d"], s["N"], s["T"], seed=seed)
            W, source = exact_steps(model, emb, eta)
            tg = eq7_targets(emb)
            out.append({"axis": axis, "value": v, "source": source, **{k: memory_recall(W[k], *tg[k]) for k in W}})
    return out


def run(args) -> int:
    if args.N < 2 or args.T < 3:
        raise PopgradError(f"model D needs N >= 2 and T >= 3, got N={args.N}, T={args.T}")
    if args.plot:
        _prepare_plot_dir(args.plot)
    res = compute(args.N, args.T, args.d, args.seed, args.eta, args.mc_samples, args.beta)
    acc_rows = [{"step": "head", "quantity": k, "mc": v} for k, v in res["head_accuracy"].items()]
    extra = {"tau": res["tau"], "recall": res["recall"], "head_accuracy": res["head_accuracy"],
             "exact_source": res["exact_source"]}
    if args.plot:
        from popgrad.numerics import theorem3_plots as plots

        sweep = recall_sweep(args.N, args.T, args.d, args.seed, args.eta)
        extra["recall_sweep"] = sweep
        plots.plot_heatmaps(res["heatmaps"], os.path.join(args.plot, "theorem3_heatmaps.png"))
        plots.plot_recall_curves(sweep, os.path.join(args.plot, "theorem3_recall.png"))
    title = (f"popgrad theorem3 (N={args.N}, T={args.T}, d={args.d}, eta={args.eta:g}, "
             f"n={args.mc_samples}; tau={res['tau']:.4f}; exact: {res['exact_source']})")
    emit(res["rows"] + acc_rows, COLUMNS, args, title=title, extra=extra)
    return 0
