"""Plots of `popgrad theorem3`: they read computed results and never recompute them.

plot_heatmaps:      v_j^T W u_i for each learned matrix (like the paper's Figure 7)
plot_recall_curves: memory recall (9) of each one-step matrix vs N, T and d
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from popgrad.errors import PopgradError  # noqa: E402

TITLES = {"W_O2": r"$w_U(j)^\top W_O^2 W_V^2 w_E(i)$",
          "W_K2": r"$w_E(j)^\top W_K^2 \Phi_1 w_E(i)$",
          "W_K1": r"$p_t^\top W_K^1 p_s$ (target: key $s = t-1$)"}
AXES = {"W_O2": ("input token i", "output token j"), "W_K2": ("key token i", "query token j"),
        "W_K1": ("key position (code index; paper s = index + 1)", "query position (code index)")}


def _save(fig, path):
    try:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    except OSError as exc:
        raise PopgradError(f"--plot: cannot write {path!r}: {exc.strerror}") from None
    finally:
        plt.close(fig)


def plot_heatmaps(heatmaps, path):
    """One panel per learned matrix: the score matrix v_j^T W u_i (rows j, columns i)."""
    fig, axes = plt.subplots(1, len(heatmaps), figsize=(5.4 * len(heatmaps), 4.2))
    fig.subplots_adjust(wspace=0.45)
    for ax, (name, S) in zip(axes, heatmaps.items()):
        im = ax.imshow(S, cmap="RdBu_r", vmin=-abs(S).max(), vmax=abs(S).max(), aspect="auto")
        ax.set_title(TITLES.get(name, name), fontsize=10)
        ax.set_xlabel(AXES[name][0])
        ax.set_ylabel(AXES[name][1])
        fig.colorbar(im, ax=ax, fraction=0.046)
    _save(fig, path)


def plot_recall_curves(sweep, path):
    """Recall (9) of W_O^2, W_K^2, W_K^1 against N, T and d (rows of `recall_sweep`)."""
    axes_names = ("N", "T", "d")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    for ax, axis in zip(axes, axes_names):
        rows = [r for r in sweep if r["axis"] == axis]
        xs = [r["value"] for r in rows]
        for name in ("W_O2", "W_K2", "W_K1"):
            ax.plot(xs, [r[name] for r in rows], marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(axis)
        ax.set_ylim(-0.02, 1.05)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("memory recall (9)")
    axes[0].legend()
    _save(fig, path)


def plot_ablation(rows, path):
    """Ablation of the assembled head: accuracy +- 2 se per head, one panel per architecture, chance dashed."""
    archs = list(dict.fromkeys(r["architecture"] for r in rows))
    heads = list(dict.fromkeys(r["head"] for r in rows))
    fig, axes = plt.subplots(1, len(archs), figsize=(4.2 * len(archs) + 3.5, 0.32 * len(heads) + 1.6), sharey=True)
    axes = [axes] if len(archs) == 1 else axes
    for ax, arch in zip(axes, archs):
        sel = {r["head"]: r for r in rows if r["architecture"] == arch}
        acc = [sel[h]["accuracy"] for h in heads]
        err = [2 * sel[h]["acc_se"] for h in heads]
        ax.barh(range(len(heads)), acc, xerr=err, color="tab:blue", alpha=0.8, capsize=2)
        ax.axvline(sel[heads[0]]["chance"], color="black", ls="--", lw=1, label="chance 1/N")
        ax.set_xlim(0, 1)
        ax.set_title(arch)
        ax.set_xlabel(f"accuracy ± 2 se (n = {sel[heads[0]]['n']})")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(heads)), heads, fontsize=7)
    axes[0].invert_yaxis()
    axes[0].legend(fontsize=7, loc="lower right")
    _save(fig, path)
