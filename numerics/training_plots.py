"""Plots of `popgrad train`: probe curves in Figure 3's layout, Figure 7's memory view, Figure 2's attention maps.

Curves read the probe rows (never recompute); bands are mean ± SE over seeds. The presets that
mirror the paper's figures plot its public code's reading of the key-query probes; custom runs
plot eq. (9)'s (SPEC §5 "Two readings"); the panel labels say which.
"""

from __future__ import annotations

import numpy as np
import torch

from popgrad.plotting import save_figure
from popgrad.memory import eq7_targets, memory_scores
from popgrad.numerics import transformer as tr

LABELS = {"acc_in_context": "in-context accuracy", "loss_in_context": "in-context loss", "loss_other": "other tokens",
          "recall_W_O2": r"$W_O^2$", "recall_W_K2": r"$W_K^2$", "recall_W_K1": r"$W_K^1$",
          "recall_W_K1_early": r"$W_K^1$ ($t<64$)", "recall_W_K1_late": r"$W_K^1$ ($t\geq 64$)",
          "code_W_K2": r"$W_K^2$", "code_W_K1": r"$W_K^1$", "code_W_K1_early": r"$W_K^1$ ($t<64$)",
          "cos_W_O2": r"$W_O^2$", "cos_W_K2": r"$W_K^2$", "cos_W_K1": r"$W_K^1$", "kl_W_F": r"KL (10) of $W_F$"}
READINGS = {"paper": ("recall_W_O2", "code_W_K2", "code_W_K1", "code_W_K1_early"),
            "eq9": ("recall_W_O2", "recall_W_K2", "recall_W_K1", "recall_W_K1_early", "recall_W_K1_late")}
READING_NAMES = {"paper": "memory recall (paper's code)", "eq9": "memory recall (eq. (9))"}


def panels(rows, reading: str):
    """[(y label, keys)]: accuracy on top, then the probes of `reading`, then losses, cosines/KL if present."""
    out = [("accuracy", ("acc_in_context",)), (READING_NAMES[reading], READINGS[reading]),
           ("loss", ("loss_in_context", "loss_other")), ("cosine / KL", ("cos_W_O2", "cos_W_K2", "cos_W_K1", "kl_W_F"))]
    out = [(t, [k for k in keys if any(k in r and np.isfinite(r[k]) for r in rows)]) for t, keys in out]
    return [(t, keys) for t, keys in out if keys]


def plot_curves(rows, path: str, title: str = "", reading: str = "eq9", cutoff: int = 64) -> None:
    """One column per run label, one row per panel (Figure 3's layout); mean ± SE bands over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    labels = list(dict.fromkeys(r["run"] for r in rows))
    rowsets = panels(rows, reading)
    fig, axes = plt.subplots(len(rowsets), len(labels), figsize=(3.0 * len(labels) + 0.6, 2.3 * len(rowsets)),
                             squeeze=False, sharex="col")
    names = {**LABELS, **{k: v.replace("64", str(cutoff)) for k, v in LABELS.items() if "64" in v}}
    for j, label in enumerate(labels):
        mine = [r for r in rows if r["run"] == label]
        steps = np.array([r["step"] for r in mine])
        for i, (ptitle, keys) in enumerate(rowsets):
            ax = axes[i][j]
            for k in keys:
                y = np.array([r.get(k, np.nan) for r in mine], dtype=float)
                se = np.array([r.get(k + "_se", np.nan) for r in mine], dtype=float)
                (line,) = ax.plot(steps, y, label=names.get(k, k))
                if np.isfinite(se).any():
                    ax.fill_between(steps, y - se, y + se, alpha=0.25, color=line.get_color(), linewidth=0)
            if i == 0:
                ax.set_title(label, fontsize=9)
            if j == 0:
                ax.set_ylabel(ptitle, fontsize=8)
            if ptitle != "loss" and ptitle != "cosine / KL":
                ax.set_ylim(-0.03, 1.03)
            ax.tick_params(labelsize=7)
            if j == len(labels) - 1:
                ax.legend(fontsize=6, loc="best")
        axes[-1][j].set_xlabel("SGD step", fontsize=8)
    if title:
        import textwrap

        fig.suptitle(textwrap.fill(title, 40 * len(labels) + 10), fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def memory_views(emb64, params: dict) -> dict:
    """Figure 7: the scores v_j^T W u_i of each trained matrix on its eq. (7) inputs and outputs.

    W_O^2: (N, N) w_U(j)^T W_O^2 W_V^2 w_E(k); W_K^2: (N, N) w_E(j)^T W_K^2 Phi_1 w_E(k);
    W_K^1: (T-1, T) p_j^T W_K^1 p_s. Rows are inputs, columns outputs; the targets of (7) lie on
    the diagonal (W_K^1: column = row + 1).
    """
    tg = eq7_targets(emb64)
    return {k: memory_scores(params[k].double().cpu(), *tg[k][:2]).numpy() for k in ("W_O2", "W_K2", "W_K1")}


def attention_maps(tab, z: torch.Tensor, params: dict, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """Figure 2: the (T, T) attention weights of layer 1 and layer 2 on one sequence z (T,)."""
    c = tr.logit_scale(tab.d, scale)
    with torch.no_grad():
        zz = z[None].long()
        T = zz.shape[1]
        x = tab.E[zz] + tab.P[:T]
        visible = tr.causal_scores_mask(torch.arange(T, device=zz.device), T)
        a1 = tr.causal_softmax((x @ (params["W_K1"] * c)) @ x.transpose(1, 2), visible)
        h = tr.layer1(tab, zz, params["W_K1"], c)
        a2 = tr.causal_softmax((h @ (params["W_K2"] * c)) @ h.transpose(1, 2), visible)
    return a1[0].cpu().numpy(), a2[0].cpu().numpy()


def plot_maps(emb64, tab, z: torch.Tensor, params: dict, scale: str, path: str, title: str = "", window: int = 64) -> None:
    """Figure 7 heatmaps (scores of W_O^2, W_K^2, W_K^1 on their (7) targets) beside Figure 2's attention maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    views = memory_views(emb64, params)
    a1, a2 = attention_maps(tab, z, params, scale)
    n = min(window, a1.shape[0])
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
    items = [(views["W_O2"], r"$W_U^\top W_O^2 W_V^2 W_E$", "input token k", "output token"),
             (views["W_K2"], r"$W_E^\top W_K^2 \Phi_1 W_E$", "key token k", "query token"),
             (views["W_K1"][:n, :n + 1], r"$p^\top W_K^1 p$" + f" (first {n})", "key position s", "query position t"),
             (a1[:n, :n], f"layer 1 attention (first {n})", "query t", "key s"),
             (a2[:n, :n], f"layer 2 attention (first {n})", "query t", "key s")]
    for ax, (M, t, yl, xl) in zip(axes, items):
        im = ax.imshow(M, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_title(t, fontsize=9)
        ax.set_ylabel(yl, fontsize=8)
        ax.set_xlabel(xl, fontsize=8)
        ax.tick_params(labelsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


# ----------------------------------------------------------------------------- Figures 4, 5, 6, 8 in the paper's layout
FIG4_LEFT_NAMES = {"fig4-left-k5-frequent": "fixed, K=5 frequent", "fig4-left-k1-frequent": "fixed, K=1 most frequent",
                   "fig4-left-k5-rare": "fixed, K=5 rare", "fig4-left": "random, K=5", "fig4-left-k1-random": "random, K=1"}
FIG4_CENTER = {"fig4-center-eval-bigram": ("uniform", "acc_in_context", "acc_eval"),
               "fig4-center-bigram-eval-uniform": (r"$\pi_b$", "acc_in_context", "acc_eval")}


def _band(ax, rows, key, **kw):
    """One curve of probe `key` with its ± SE band (rows of one run label, mean over seeds); returns the line."""
    steps = np.array([r["step"] for r in rows])
    y = np.array([r.get(key, np.nan) for r in rows], dtype=float)
    se = np.array([r.get(key + "_se", np.nan) for r in rows], dtype=float)
    (line,) = ax.plot(steps, y, **kw)
    if np.isfinite(se).any():
        ax.fill_between(steps, y - se, y + se, alpha=0.2, color=line.get_color(), linewidth=0)
    return line


def _by_run(rows) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(r["run"], []).append(r)
    return out


def wk2_key(rows) -> str:
    """Figure 5's W_K^2 probe: on the trigger set Q for fixed triggers, on all tokens for random ones."""
    return "code_W_K2_Q" if any("code_W_K2_Q" in r and np.isfinite(r["code_W_K2_Q"]) for r in rows) else "code_W_K2"


def plot_fig4(left_rows, center_rows, path: str, title: str = "") -> None:
    """Figure 4: (left) in-context (solid) and global (dashed) loss per data variant; (center) in-context accuracy
    for each (train, test) output distribution; (right) probes of the K = 3 random-trigger, uniform-output run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    for label, rows in _by_run(left_rows).items():
        line = _band(ax, rows, "loss_in_context", label=FIG4_LEFT_NAMES.get(label, label))
        _band(ax, rows, "loss_other", linestyle="--", color=line.get_color())
    ax.set(xlabel="SGD step", ylabel="loss (solid: in-context, dashed: global)", title="Figure 4 (left)")
    ax.legend(fontsize=7)
    ax = axes[1]
    runs = _by_run(center_rows)
    for label, (train, own, other) in FIG4_CENTER.items():
        if label in runs:
            test_other = r"$\pi_b$" if train == "uniform" else "uniform"
            line = _band(ax, runs[label], own, label=f"train {train}, test {train}")
            _band(ax, runs[label], other, linestyle="--", color=line.get_color(), label=f"train {train}, test {test_other}")
    ax.set(xlabel="SGD step", ylabel="in-context accuracy", title="Figure 4 (center)", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7)
    ax = axes[2]
    right = runs.get("fig4-center-eval-bigram", [])
    for key, name in (("recall_W_O2", r"$W_O^2$ recall"), ("code_W_K2", r"$W_K^2$ recall"), ("code_W_K1", r"$W_K^1$ recall"),
                      ("acc_in_context", "in-context accuracy")):
        _band(ax, right, key, label=name)
    ax.set(xlabel="SGD step", ylabel="recall / accuracy", title="Figure 4 (right): K=3 random, uniform outputs",
           ylim=(-0.02, 1.02))
    twin = ax.twinx()
    _band(twin, right, "kl_W_F", color="k", linestyle=":", label=r"KL (10) of $W_F$")
    twin.set_ylabel("KL (10), nats")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="center right")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_probe_grid(rows, path: str, names: dict, title: str = "") -> None:
    """Figures 5 and 6: one panel per memory (W_O^2, W_K^2, W_K^1) and the in-context accuracy, one curve per run
    (W_K^2 on the trigger set Q for fixed triggers, as the paper's Figure 5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("recall_W_O2", r"$W_O^2$ recall (9)"), ("W_K2", r"$W_K^2$ recall (Q for fixed triggers)"),
              ("code_W_K1", r"$W_K^1$ recall"), ("acc_in_context", "in-context accuracy"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4))
    for ax, (key, ylabel) in zip(axes, panels):
        for label, rr in _by_run(rows).items():
            _band(ax, rr, wk2_key(rr) if key == "W_K2" else key, label=names.get(label, label))
        ax.set(xlabel="SGD step", ylabel=ylabel, ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_fig8(rows_by_d: dict, tuned: dict, path: str, fixed: float = 0.2, title: str = "") -> None:
    """Figure 8: W_O^2 recall (9) when W_O^2 is trained alone, per d: (left) fixed step size `fixed`, (right) the
    tuned step size tuned[d] (chosen by the caller from the runs); rows_by_d[d] are `popgrad train` rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for d, rows in sorted(rows_by_d.items()):
        runs = _by_run(rows)
        (line,) = [_band(axes[0], runs[f"fig8-eta{fixed:g}"], "recall_W_O2", label=f"d={d}")]
        _band(axes[1], runs[f"fig8-eta{tuned[d]:g}"], "recall_W_O2", color=line.get_color(),
              label=f"d={d} (eta {tuned[d]:g})")
    axes[0].set(xlabel="SGD step", ylabel=r"$W_O^2$ recall (9)", title=f"fixed step size eta = {fixed:g}", ylim=(-0.02, 1.02))
    axes[1].set(xlabel="SGD step", title="tuned step size")
    for ax in axes:
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
