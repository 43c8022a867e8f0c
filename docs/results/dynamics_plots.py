"""Figures of docs/dynamics.md (computes only the small Monte-Carlo-vs-exact sweep; ~30 CPU-s):
    OMP_NUM_THREADS=1 python docs/results/dynamics_plots.py docs/results/dynamics_convergence.json docs
writes docs/dynamics_mc_exact.png (RMS distance to the exact trajectory vs n) and docs/dynamics_convergence.png
(median steps to 0.5 / 0.9 vs n at N=32, T=16, d=256, with 95% bootstrap intervals over seeds)."""

import json
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from popgrad.claims.dynamics import APPROACH  # noqa: E402
from popgrad.numerics.dynamics import median_interval  # noqa: E402
from popgrad.numerics.dynamics_reference import approach_to_exact  # noqa: E402


def mc_exact(path):
    a = APPROACH
    fig, ax = plt.subplots(figsize=(5, 4))
    for pop, marker in (("mc", "o"), ("fixed", "s")):
        r = approach_to_exact(a["N"], a["T"], a["d"], a["etas"], a["kind"], a["k"], a["ns"], a["replicates"],
                              population=pop)
        d = np.array([[v[-1] for v in block] for block in r["distances"]])          # (n, replicate)
        se = d.std(axis=1, ddof=1) / np.sqrt(d.shape[1])
        ax.errorbar(r["n"], d.mean(axis=1), yerr=se, marker=marker, capsize=3,
                    label=f"{'fresh' if pop == 'mc' else 'fixed'} samples: slope {r['slope']:.2f} ± {r['slope_se']:.2f}")
    ns = np.array(a["ns"], float)
    ax.plot(ns, 0.3 * np.sqrt(ns[0] / ns), "k:", label=r"$\propto n^{-1/2}$")
    ax.set(xscale="log", yscale="log", xlabel="sequences per step $n$",
           ylabel=r"$\|W_{MC} - W_{exact}\|_F / \|W_{exact}\|_F$", title="Monte-Carlo vs exact, 6 joint steps")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def convergence(data, path):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=False)
    for ax, th in zip(axes, ("0.5", "0.9")):
        for key_kind, color in (("joint", "C0"), ("alternating", "C1")):
            for pop, style in (("mc", "-o"), ("fixed", "--s")):
                pts = []
                for key, v in data.items():
                    if key.count("/") != 2:                 # not a (schedule, samples, n) row, e.g. "stall"
                        continue
                    kind, p, n = key.split("/")
                    if kind != key_kind or p != pop:
                        continue
                    steps = [s for s in v["first"][th].values() if s is not None]
                    med, lo, hi = median_interval(steps, len(v["first"][th]))
                    if med is not None:
                        pts.append((int(n), med, lo, hi if hi is not None else np.nan))
                if pts:
                    pts.sort()
                    n, med, lo, hi = map(np.array, zip(*pts))
                    ax.errorbar(n, med, yerr=[med - lo, np.nan_to_num(hi - med, nan=0.0)], fmt=style, color=color,
                                capsize=3, label=f"{key_kind}, {'fresh' if pop == 'mc' else 'fixed'}")
        ax.set(xscale="log", xlabel="sequences per step $n$", ylabel=f"median steps to accuracy {th}",
               title=f"N=32, T=16, d=256: accuracy {th}")
        ax.set_xticks([2048, 8192, 32768, 131072], ["2048", "8192", "32768", "131072"])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    data = json.load(open(sys.argv[1]))
    convergence(data, f"{sys.argv[2]}/dynamics_convergence.png")
    mc_exact(f"{sys.argv[2]}/dynamics_mc_exact.png")
