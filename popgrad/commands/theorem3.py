"""`popgrad theorem3`: the three one-step matrices of Theorem 3 (App. B.3) and the assembled head.

Per step: the paper's value of the associative-memory scores, the exact value (the exact engine
`popgrad.theory.theorem3` when implemented, else autograd on the enumerated model D when it is small
enough, else blank), the Monte-Carlo value (autograd on --mc-samples sampled sequences, split in
8 groups for the standard error) and memory recall (9) against eq. (7). Then the accuracy of the
two-layer head with (7) hand-built, with the learned matrices rescaled, and chance.

Then the diagnosis of the assembled head (`popgrad.numerics.head_ablation`):
- recall (9) with its margin: the smallest gap between the correct and the best wrong score,
  exact and Monte-Carlo (with the gap's standard error from the 8 groups);
- W_K^2 split exactly into (query, key) token/position blocks, and the query-position bias over
  key positions against the token-memory signal;
- W_O^2's two lines of (16): the correct one and the tau-line W_V^2 Phi_1 w_E(k) -> w_U(k);
- the ablation table in the three architectures (Sec. 4.2, B.3.2, B.3.3): accuracy +- se on
  --head-samples fresh model-D sequences (se = sqrt(p(1-p)/n), sequences independent), chance,
  and the fraction of sequences whose layer-2 attention peak is the output token's position.
"""

from __future__ import annotations

import os
import sys
import time

from popgrad.cliutil import add_output_options, emit, positive_float, positive_int, nonnegative_int
from popgrad.errors import PopgradError, memory_budget

NAME = "theorem3"
HELP = "Theorem 3: the three one-step matrices (paper, exact, Monte-Carlo), recall, and the assembled head"
COLUMNS = ("step", "quantity", "paper", "exact", "mc", "mc_stderr", "verdict")
GROUPS = 8
BETAS = (3.0, 10.0, 30.0)
MAX_HEAD_SAMPLES = 2 ** 22     # ~17 min of CPU for the head tables at N=32, T=16


def add_arguments(p):
    p.add_argument("--N", type=positive_int, default=32, help="vocabulary size (>= 2)")
    p.add_argument("--T", type=positive_int, default=16, help="sequence length (>= 3)")
    p.add_argument("--d", type=positive_int, default=256, help="embedding dimension")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="embedding and sampling seed")
    p.add_argument("--eta", type=positive_float, default=1.0, help="step size of each one-step update")
    p.add_argument("--mc-samples", type=positive_int, default=4096, help="Monte-Carlo sequences (>= 8)")
    p.add_argument("--beta", type=positive_float, default=10.0, help="softmax scale of the hand-built head (7) (default 10)")
    p.add_argument("--head-samples", type=positive_int, default=16384,
                   help="fresh model-D sequences for every head accuracy (standard error sqrt(p(1-p)/n))")
    add_output_options(p, plot=False)
    p.add_argument("--plot", metavar="DIR", help="write theorem3_heatmaps.png and theorem3_recall.png into DIR")


# ----------------------------------------------------------------------------- exact and MC
def exact_steps(model, emb, eta):
    """(matrices, source): the three exact one-step matrices of popgrad.theory.theorem3 (p_hat = 1/N)."""
    from popgrad.theory.theorem3 import three_steps  # lazy: torch loads only after the arguments are validated

    return three_steps(model, emb, eta), "popgrad.theory.theorem3"


def mc_steps(model, emb, eta, n, seed):
    """Group estimates {step: (G, d, d)} on G disjoint groups of the n sequences; each step at the
    mean (all-sample) previous matrices. Groups differ in size by at most one, so the mean of the
    group estimates is the all-sample estimate up to that rounding."""
    import torch  # here, not at the top: bad arguments are refused before torch loads
    from popgrad.numerics import theorem3_mc as mc  # lazy: torch loads only after the arguments are validated

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
    import torch  # here, not at the top: bad arguments are refused before torch loads
    from popgrad.memory import eq7_targets, memory_scores  # lazy: torch loads only after the arguments are validated

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
    from popgrad.numerics import theorem3_mc as mc  # lazy: torch loads only after the arguments are validated

    p1 = mc.paper_step1_scores(N, T, eta)
    return {("W_O2", "target score"): p1["diag"], ("W_O2", "off-target score"): p1["off"],
            ("W_O2", "target score via Phi_1 (tau line)"): p1["tau_diag"],
            ("W_K2", "target score"): mc.paper_step2_diag(N, T, eta), ("W_K2", "off-target score"): "O(1/N) ~ 0",
            ("W_K1", "target score"): mc.paper_step3_diag(N, T, eta, alpha_prime), ("W_K1", "off-target score"): "<= 0"}


STEP_LABEL = {"W_O2": "1: W_O^2 (16)", "W_K2": "2: W_K^2 (24)-(25)", "W_K1": "3: W_K^1 (B.3.3)"}


def step_rows(emb, exact, groups, eta):
    """The per-step table rows (fixed order) and recall per step."""
    import torch  # here, not at the top: bad arguments are refused before torch loads
    from popgrad.tolerances import MC_Z  # lazy: torch loads only after the arguments are validated; imports torch
    from popgrad.memory import eq7_targets, memory_recall  # lazy: torch loads only after the arguments are validated

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


def head_rows(emb, model, learned, beta, seed, n):
    """Accuracy of the assembled head on model D (Sec. 4.2): hand-built (7), learned rescaled, chance; with se."""
    from popgrad.numerics import head_ablation as ha  # lazy: torch loads only after the arguments are validated
    from popgrad.numerics import induction_head as ih  # lazy: torch loads only after the arguments are validated

    heads = {"hand-built (7), beta=%g" % beta: ih.hand_built(emb, beta, beta)}
    for b in BETAS:
        try:
            heads["learned, rescaled to beta=%g" % b] = ih.rescaled_learned(emb, learned, b)
        except PopgradError:
            pass
    rows = ha.evaluate_heads(emb, model, heads, n=n, seed=seed, archs=("sec4.2",))
    acc = {r["head"]: r for r in rows}
    acc["chance 1/N"] = {"accuracy": 1.0 / emb.N, "acc_se": 0.0, "n": None}
    return acc


def recall_margin_rows(emb, exact, groups):
    """Recall (9) with margins: exact and Monte-Carlo, each step scored as in (9), W_K^2 also per query."""
    import torch  # here, not at the top: bad arguments are refused before torch loads
    from popgrad.memory import eq7_targets  # lazy: torch loads only after the arguments are validated
    from popgrad.numerics import head_ablation as ha  # lazy: torch loads only after the arguments are validated

    tg = eq7_targets(emb)
    specs = [(k, "per input (9)", lambda W: W, tg[k]) for k in ("W_O2", "W_K2", "W_K1")]
    U, V, t = tg["W_K2"]
    specs.insert(2, ("W_K2", "per query (W^T, inputs w_E(j))", lambda W: W.transpose(-1, -2), (V, U, t)))
    rows = []
    for name, scored, view, (U, V, t) in specs:
        eg, _, escale = ha.recall_gaps(view(exact[name]), U, V, t)
        mc_full = view(groups[name].mean(0))
        mg, best, mscale = ha.recall_gaps(mc_full, U, V, t)
        se = ha.group_gap_se(view(groups[name]), U, V, t, best)
        i = int(torch.argmin(mg))
        rows.append({"matrix": name, "scored": scored, "pairs": int(t.numel()),
                     "exact_recall": float((eg > 0).double().mean()), "exact_min_gap": float(eg.min() / escale),
                     "mc_recall": float((mg > 0).double().mean()), "mc_min_gap": float(mg[i] / mscale),
                     "mc_min_gap_se": float(se[i] / mscale),
                     "mc_within_2se": int(((mg.abs() <= 2 * se)).sum())})
    return rows


def decomposition(emb, learned):
    """W_K^2 blocks, bias ratios and W_O^2's two lines, from the exact engine's matrices (None if d too small)."""
    import torch  # here, not at the top: bad arguments are refused before torch loads
    from popgrad.numerics import head_ablation as ha  # lazy: torch loads only after the arguments are validated

    if emb.d < max(2 * emb.N, emb.N + emb.T):
        return None
    blocks, resid = ha.block_table(emb, learned["W_K2"])
    M1, M2, resid_o = ha.w_o2_lines(emb, learned["W_O2"])
    return {"blocks": blocks, "blocks_residual": resid, "bias": ha.bias_ratios(emb, learned["W_K2"]),
            "tau_line": {"correct_line_diag": float(torch.diagonal(M1).mean()), "tau_line_diag": float(torch.diagonal(M2).mean()),
                         "ratio": float(torch.diagonal(M2).mean() / torch.diagonal(M1).mean()), "residual": resid_o}}


def ablation(emb, model, learned, beta, seed, n):
    """The ablation rows in the three architectures (None if d is too small for the exact decompositions)."""
    from popgrad.cliutil import progress  # lazy: torch loads only after the arguments are validated
    from popgrad.numerics import head_ablation as ha  # lazy: torch loads only after the arguments are validated

    if emb.d < max(2 * emb.N, emb.N + emb.T):
        return None
    try:
        return ha.ablation_table(emb, model, learned, n=n, seed=seed, beta=beta,
                                 progress=lambda it: progress(it, desc="head ablation"))
    except PopgradError as exc:            # e.g. a learned matrix with no signal at tiny sizes
        print(f"popgrad theorem3: ablation skipped: {exc}", file=sys.stderr)
        return None


# ----------------------------------------------------------------------------- run
def _prepare_plot_dir(path: str) -> None:
    """Create --plot DIR up front, so a bad path fails before the computation, in one line."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise PopgradError(f"--plot: cannot create directory {path!r}: {exc.strerror}") from None


def compute(N, T, d, seed, eta, n, beta, device="cpu", head_samples=16384):
    """Everything the command prints (and the plots read)."""
    from popgrad.numerics import theorem3_mc as mc  # lazy: torch loads only after the arguments are validated
    from popgrad.data import SecondOccurrenceModel  # lazy: torch loads only after the arguments are validated
    from popgrad.embeddings import make_embeddings  # lazy: torch loads only after the arguments are validated
    from popgrad.memory import eq7_targets  # lazy: torch loads only after the arguments are validated

    if n < GROUPS:
        raise PopgradError(f"--mc-samples must be >= {GROUPS}, got {n}")
    # autograd keeps a few (n, T, d) activations; the head keeps (batch, T, 4(N+T)) coefficients
    memory_budget(f"--mc-samples {n} with --T {T} and --d {d}", 8.0 * n * T * d)
    memory_budget(f"head batches with --N {N}, --T {T}", 4096.0 * T * (8 * (N + T) + 2 * T))
    model = SecondOccurrenceModel(N, T)
    emb = make_embeddings(d, N, T, seed=seed, device=device)
    exact, source = exact_steps(model, emb, eta)
    groups = mc_steps(model, emb, eta, n, seed)
    rows, recall = step_rows(emb, exact, groups, eta)
    learned = exact
    acc = head_rows(emb, model, learned, beta, seed + 1, head_samples)
    tg = eq7_targets(emb)
    heat = {k: (tg[k][1].T @ learned[k] @ tg[k][0]).cpu().numpy() for k in learned}  # (m, n) v_j^T W u_i
    margins = recall_margin_rows(emb, exact, groups)
    for r in rows:                        # point each recall row at its margin (mc recall alone is read as exact)
        m = next((x for x in margins if r["quantity"].startswith("recall") and STEP_LABEL[x["matrix"]] == r["step"]
                  and x["scored"].startswith("per input")), None)
        if m:
            r["verdict"] = (f"min gap: exact {m['exact_min_gap']:.3f}, mc {m['mc_min_gap']:.3f} ± "
                            f"{m['mc_min_gap_se']:.3f}")
    return {"rows": rows, "recall": recall, "tau": mc.tau_value(N, T), "head_accuracy": acc,
            "exact_source": source, "heatmaps": heat, "recall_margins": margins,
            "decomposition": decomposition(emb, learned),
            "ablation": ablation(emb, model, learned, beta, seed + 1, head_samples)}


def recall_sweep(N, T, d, seed, eta):
    """Recall (9) of the exact one-step matrices, varying N, T, d one at a time around (N, T, d)."""
    from popgrad.data import SecondOccurrenceModel  # lazy: torch loads only after the arguments are validated
    from popgrad.embeddings import make_embeddings  # lazy: torch loads only after the arguments are validated
    from popgrad.memory import eq7_targets, memory_recall  # lazy: torch loads only after the arguments are validated

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


def pm(v, se):
    """'v ± se' with three decimals (accuracies, recalls)."""
    return f"{v:.3f} ± {se:.3f}"


MARGIN_COLUMNS = ("matrix", "scored", "pairs", "exact_recall", "exact_min_gap", "mc_recall", "mc_min_gap",
                  "mc_min_gap_se", "mc_within_2se")
ABLATION_COLUMNS = ("head", "accuracy ± se", "n", "chance", "layer-2 peak on output ± se")


def diagnosis_markdown(res, n_mc, beta) -> str:
    """The diagnosis tables (recall margins, W_K^2 blocks, bias ratio, W_O^2 lines, ablations) as markdown."""
    from popgrad.cliutil import markdown_table  # lazy: torch loads only after the arguments are validated
    from popgrad.numerics.head_ablation import ARCH_LABEL  # lazy: torch loads only after the arguments are validated

    out = ["", "### Recall (9) with its margin", "",
           markdown_table(res["recall_margins"], MARGIN_COLUMNS), "",
           "Gaps are (correct score - best wrong score) / mean correct score, at the input with the smallest "
           f"gap; recall counts gaps > 0. mc: the Monte-Carlo matrix on {n_mc} sequences; mc_min_gap_se from its 8 "
           "groups; mc_within_2se: inputs whose Monte-Carlo gap is within 2 se of a tie (their recall is noise)."]
    dec = res["decomposition"]
    if dec is None:
        out += ["", "(W_K^2 decomposition and ablations need d >= max(2N, N + T); skipped.)"]
        return "\n".join(out) + "\n"
    out += ["", "### W_K^2 (exact engine) in (query, key) token/position blocks", "",
            markdown_table(dec["blocks"], ("block (query-key)", "coef_norm", "norm", "share")), "",
            "W_K^2 = [W_E, P] C (Phi_1 [W_E, P])^T exactly (residual %.1e); norm: Frobenius norm of the d x d "
            "component, share: its squared norm over the sum of the four." % dec["blocks_residual"]]
    b = dec["bias"]
    out += ["", "### Query-position bias vs token-memory signal (coefficients of W_K^2, exact engine)", "",
            markdown_table([
                {"quantity": "token-memory signal: mean C[w_E(j), Phi_1 w_E(j)] - mean off-diagonal", "value": b["signal"]},
                {"quantity": "query-position bias: range over s of C[p_T, Phi_1 p_s]", "value": b["pos_bias"]},
                {"quantity": "query-token bias: range over s of C[w_E(j), Phi_1 p_s], mean over j (± se over j)",
                 "value": f"{b['tok_bias_mean']:.4g} ± {b['tok_bias_se']:.1e}"},
                {"quantity": "query-position bias / token-memory signal", "value": b["pos_over_signal"]},
                {"quantity": "query-position bias / mean query-token bias (N = %d)" % res["N"], "value": b["pos_over_tok"]},
                {"quantity": "identity C[p_T, .] = sum_j C[w_E(j), .]: relative residual", "value": b["identity_rel"]},
            ], ("quantity", "value")), "",
            "The identity is exact (p_T always enters the query with w_E(q)), so the query-position bias is N "
            "times the query-token bias averaged over j; per token it is N times only as far as the rows "
            "C[w_E(j), Phi_1 p_.] agree (measured above)."]
    tl = dec["tau_line"]
    out += ["", "### W_O^2 (exact engine): the correct line and the tau-line of (16)", "",
            f"W_O^2 = W_U^T (M_1 (W_V^2 W_E)^T + M_2 (W_V^2 Phi_1 W_E)^T) (residual {tl['residual']:.1e}); "
            f"mean diagonal M_1 = {tl['correct_line_diag']:.4g}, M_2 = {tl['tau_line_diag']:.4g}: the tau-line "
            f"Phi_1 w_E(k) -> w_U(k) carries {tl['ratio']:.3f} of the correct association."]
    if res["ablation"]:
        n = res["ablation"][0]["n"]
        out += ["", f"### Ablations of the assembled head (model D, last position, {n} fresh sequences, beta = {beta:g})", "",
                "Learned = the exact one-step matrices, rescaled after any removal (W_K's to mean target score beta, "
                "W_O^2 to 1). accuracy ± se: argmax logits = o, se = sqrt(p(1-p)/n) over independent sequences; "
                "layer-2 peak: argmax_s A2_{T,s} is the output token's position."]
        for arch, label in ARCH_LABEL.items():
            rows = [r for r in res["ablation"] if r["architecture"] == arch]
            table = [{"head": r["head"], "accuracy ± se": pm(r["accuracy"], r["acc_se"]), "n": r["n"],
                      "chance": r["chance"], "layer-2 peak on output ± se": pm(r["peak_on_output"], r["peak_se"])}
                     for r in rows]
            out += ["", f"#### {label}", "", markdown_table(table, ABLATION_COLUMNS)]
    else:
        out += ["", "(Ablation skipped: see the message on stderr.)"]
    return "\n".join(out) + "\n"


def run(args) -> int:
    if args.N < 2 or args.T < 3:
        raise PopgradError(f"model D needs N >= 2 and T >= 3, got N={args.N}, T={args.T}")
    if args.head_samples > MAX_HEAD_SAMPLES:
        raise PopgradError(f"--head-samples {args.head_samples} exceeds the limit of {MAX_HEAD_SAMPLES} sequences "
                           "(the head tables cost about 4 s of CPU per 16384 sequences at N=32, T=16)")
    if args.plot:
        _prepare_plot_dir(args.plot)
    t0 = time.perf_counter()
    res = compute(args.N, args.T, args.d, args.seed, args.eta, args.mc_samples, args.beta,
                  head_samples=args.head_samples)
    res["N"] = args.N
    acc_rows = [{"step": "head", "quantity": k, "mc": v["accuracy"], "mc_stderr": v["acc_se"],
                 "verdict": f"n={v['n']}" if v["n"] else ""} for k, v in res["head_accuracy"].items()]
    extra = {"tau": res["tau"], "recall": res["recall"],
             "head_accuracy": {k: v["accuracy"] for k, v in res["head_accuracy"].items()},
             "head_accuracy_se": {k: v["acc_se"] for k, v in res["head_accuracy"].items()},
             "head_samples": args.head_samples, "exact_source": res["exact_source"],
             "recall_margins": res["recall_margins"], "decomposition": res["decomposition"],
             "ablation": res["ablation"]}
    if args.plot:
        from popgrad.numerics import theorem3_plots as plots  # lazy: torch loads only after the arguments are validated

        sweep = recall_sweep(args.N, args.T, args.d, args.seed, args.eta)
        extra["recall_sweep"] = sweep
        plots.plot_heatmaps(res["heatmaps"], os.path.join(args.plot, "theorem3_heatmaps.png"))
        plots.plot_recall_curves(sweep, os.path.join(args.plot, "theorem3_recall.png"))
        if res["ablation"]:
            plots.plot_ablation(res["ablation"], os.path.join(args.plot, "theorem3_ablation.png"))
    extra["seconds"] = time.perf_counter() - t0
    title = (f"popgrad theorem3 (N={args.N}, T={args.T}, d={args.d}, eta={args.eta:g}, "
             f"n={args.mc_samples}; tau={res['tau']:.4f}; exact: {res['exact_source']})")
    emit(res["rows"] + acc_rows, COLUMNS, args, title=title, extra=extra)
    if not args.json:
        print(f"\nHead rows: accuracy in `mc`, its standard error sqrt(p(1-p)/n) in `mc_stderr`, "
              f"n = {args.head_samples} fresh model-D sequences (last position, target o).")
        print(diagnosis_markdown(res, args.mc_samples, args.beta))
        print(f"({extra['seconds']:.1f} s)")
    return 0
