"""Probe curves of `popgrad train` (like Figures 3, 5 and 8): plots read the rows, never recompute."""

from __future__ import annotations

import numpy as np

PANELS = (("in-context accuracy", ("acc_in_context",)),
          ("loss", ("loss_in_context", "loss_other")),
          ("recall (9)", ("recall_W_O2", "recall_W_K2", "recall_W_K1", "recall_W_K1_early", "recall_W_K1_late")),
          ("cosine with one-step matrix / KL (10)", ("cos_W_O2", "cos_W_K2", "cos_W_K1", "kl_W_F")))


def plot_curves(rows, path: str, title: str = "") -> None:
    """One column per run label, one row per panel; mean ± SE bands over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from popgrad.plotting import save_figure

    labels = list(dict.fromkeys(r["run"] for r in rows))
    panels = [(t, [k for k in keys if any(k in r for r in rows)]) for t, keys in PANELS]
    panels = [(t, keys) for t, keys in panels if keys]
    fig, axes = plt.subplots(len(panels), len(labels), figsize=(3.6 * len(labels), 2.6 * len(panels)),
                             squeeze=False, sharex="col")
    for j, label in enumerate(labels):
        mine = [r for r in rows if r["run"] == label]
        steps = np.array([r["step"] for r in mine])
        for i, (ptitle, keys) in enumerate(panels):
            ax = axes[i][j]
            for k in keys:
                y = np.array([r.get(k, np.nan) for r in mine], dtype=float)
                se = np.array([r.get(k + "_se", np.nan) for r in mine], dtype=float)
                ax.plot(steps, y, label=k.replace("recall_", "").replace("_", " "))
                if np.isfinite(se).any():
                    ax.fill_between(steps, y - se, y + se, alpha=0.25)
            if i == 0:
                ax.set_title(label, fontsize=9)
            if j == 0:
                ax.set_ylabel(ptitle, fontsize=8)
            ax.tick_params(labelsize=7)
            if j == len(labels) - 1:
                ax.legend(fontsize=6, loc="best")
        axes[-1][j].set_xlabel("SGD step", fontsize=8)
    if title:
        import textwrap

        fig.suptitle(textwrap.fill(title, 70 * len(labels)), fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
