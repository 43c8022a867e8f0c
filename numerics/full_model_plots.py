"""Figures 10 and 11 of App. E for the full model: curves beside the simplified model on the same
axes, attention maps per head and layer, and the per-head table over seeds.

Curves read the probe rows of `popgrad train` (mean ± SE bands over seeds); recall probes are
the public code's reading (for each query, argmax over keys) computed against the embeddings of
the same step (SPEC §6), as the figure says.
"""

from __future__ import annotations

import numpy as np

from popgrad.plotting import save_figure

SPREAD = 0.2          # a head 'takes part' when it holds >= 20 % of the heads' fractions above chance
PANELS = (("in-context accuracy", ("acc_in_context",)),
          ("loss", ("loss_in_context", "loss_other")),
          (r"recall $W_O^2$ (9)", ("recall_W_O2",)),
          (r"recall $W_K^2$ (code)", ("code_W_K2",)),
          (r"recall $W_K^1$ (code)", ("code_W_K1", "code_W_K1_early")))
NAMES = {"acc_in_context": "acc", "loss_in_context": "in-context", "loss_other": "other", "recall_W_O2": "",
         "code_W_K2": "", "code_W_K1": "all t", "code_W_K1_early": "t < cutoff"}
STYLES = ("-", "--", ":", "-.")


def plot_full_curves(rows, path: str, title: str = "") -> None:
    """Figure 10's quantities, every run on the same axes (solid: first run, dashed: second, ...),
    plus per-head previous-token and induction fractions when the runs have several heads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(r["run"] for r in rows))
    heads = max([int(k[len("prev_h"):]) + 1 for r in rows for k in r if k.startswith("prev_h") and not k.endswith("_se")],
                default=0)
    panels = [p for p in PANELS if any(k in r for r in rows for k in p[1])]
    if heads > 1:
        panels += [("layer-1 previous-token argmax, per head", tuple(f"prev_h{j}" for j in range(heads))),
                   ("layer-2 induction argmax, per head", tuple(f"induction_h{j}" for j in range(heads)))]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0), squeeze=False)
    for i, (ptitle, keys) in enumerate(panels):
        ax = axes[0][i]
        for j, label in enumerate(labels):
            mine = [r for r in rows if r["run"] == label]
            steps = np.array([r["step"] for r in mine])
            for c, k in enumerate(keys):
                y = np.array([r.get(k, np.nan) for r in mine], dtype=float)
                if not np.isfinite(y).any():
                    continue
                se = np.array([r.get(k + "_se", np.nan) for r in mine], dtype=float)
                name = " ".join(x for x in (label, NAMES.get(k, k.split("_")[-1])) if x)
                (line,) = ax.plot(steps, y, STYLES[j % len(STYLES)], color=f"C{c}", label=name)
                if np.isfinite(se).any():
                    ax.fill_between(steps, y - se, y + se, alpha=0.2, color=line.get_color(), linewidth=0)
        ax.set_title(ptitle, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=6)
    fig.suptitle((title + "\n" if title else "") + "recall against the embeddings of the same step; mean ± SE over seeds",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def attention_maps(cfg, params: dict, window: int = 64):
    """Both layers' attention maps (2, H, w, w) and the tokens (w,) of one fresh sequence of the config."""
    import torch

    from popgrad.numerics import training as trn  # lazy: training imports torch and the samplers; plots load only when asked
    from popgrad.numerics.full_model import full_logits  # lazy: as above

    run = trn.setup(cfg)
    p = {k: torch.as_tensor(v, dtype=run.tab.E.dtype) for k, v in params.items()}
    z, mask, _ = next(trn.BatchStream(run.model, run.cfg, "cpu", seed=10_000 + cfg.seed))
    w = min(window, z.shape[1])
    with torch.no_grad():
        _, (A1, A2) = full_logits(p, z[:1, :w], cfg.heads, cfg.mlp, cfg.norm, cfg.scale, weights=True)
    return np.stack([A1[0].numpy(), A2[0].numpy()]), z[0, :w].numpy(), mask[0, :w].numpy()


def plot_full_maps(cfg, params: dict, path: str, title: str = "", window: int = 64) -> None:
    """Figure 11: attention maps of each head (columns) in layer 1 (top) and layer 2 (bottom) on the first
    `window` positions of a fresh sequence; in-context positions marked on the left edge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps, z, mask = attention_maps(cfg, params, window)
    H = maps.shape[1]
    fig, axes = plt.subplots(2, H, figsize=(2.6 * H + 0.4, 6.2), squeeze=False)
    for layer in range(2):
        for j in range(H):
            ax = axes[layer][j]
            ax.imshow(maps[layer, j], cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            rows = np.flatnonzero(mask)
            ax.scatter(np.full(rows.shape, -1.5), rows, s=4, c="red", marker=">", clip_on=False)
            ax.set_title(f"layer {layer + 1}, head {j}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle((title + "\n" if title else "") + "query t (rows) attends key s (columns); red: in-context positions",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _shares(values: np.ndarray, chance: float) -> np.ndarray:
    """Each head's share of the heads' fractions above chance (excess max(v - chance, 0)); nan if none is above."""
    ex = np.clip(values - chance, 0, None)
    return ex / ex.sum() if ex.sum() > 0 else np.full(values.shape, np.nan)


def head_summary(row: dict, heads: int) -> dict:
    """One seed's per-head facts, on fractions above chance (uniform argmax): the previous-token head, its
    fraction and share; the largest induction share and the number of heads holding >= SPREAD of it."""
    prev = np.array([row[f"prev_h{j}"] for j in range(heads)])
    ind = np.array([row[f"induction_h{j}"] for j in range(heads)])
    s1, s2 = _shares(prev, row.get("prev_chance", 0.0)), _shares(ind, row.get("induction_chance", 0.0))
    ok2 = bool(np.isfinite(s2).any())
    return {"prev_head": int(prev.argmax()), "prev_top": float(prev.max()),
            "prev_share": float(np.nanmax(s1)) if np.isfinite(s1).any() else float("nan"),
            "prev_heads": int((s1 >= SPREAD).sum()) if np.isfinite(s1).any() else 0,
            "induction_share": float(np.nanmax(s2)) if ok2 else float("nan"),
            "induction_heads": int((s2 >= SPREAD).sum()) if ok2 else 0}


def head_table(label: str, heads: int, last_rows: list) -> str:
    """Markdown: per seed, per-head previous-token and induction argmax fractions (binomial SE) at the last probe."""
    cols = ([f"prev h{j}" for j in range(heads)] + ["prev head (share)"]
            + [f"induction h{j}" for j in range(heads)] + ["chance (prev / induction)",
                                                            f"induction: top share, heads >= {SPREAD:g}"])
    lines = [f"{label}: per-head attention at the last probe (argmax fractions ± binomial SE; shares of the "
             "fractions above chance)",
             "", "| seed | step | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for r in last_rows:
        s = head_summary(r, heads)
        cells = [f"{r[f'prev_h{j}']:.3f} ± {r[f'prev_h{j}_bse']:.3f}" for j in range(heads)]
        cells.append(f"h{s['prev_head']} ({s['prev_share']:.2f})")
        cells += [f"{r[f'induction_h{j}']:.3f} ± {r[f'induction_h{j}_bse']:.3f}" for j in range(heads)]
        cells.append(f"{r.get('prev_chance', float('nan')):.3f} / {r.get('induction_chance', float('nan')):.3f}")
        cells.append(f"{s['induction_share']:.2f}, {s['induction_heads']}")
        lines.append(f"| {r['seed']} | {r['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
