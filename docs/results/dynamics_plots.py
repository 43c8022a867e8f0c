"""Figures of docs/dynamics.md (computes only the small Monte-Carlo-vs-exact sweep; ~30 CPU-s):
    OMP_NUM_THREADS=1 python docs/results/dynamics_plots.py docs/results/dynamics_convergence.json docs
writes docs/dynamics_mc_exact.png (RMS distance to the exact trajectory vs n) and docs/dynamics_convergence.png
(median steps to 0.5 / 0.9 vs n at N=32, T=16, d=256, at step sizes 30:300:300 and at a half and a quarter
of them, with 95% bootstrap intervals over seeds)."""

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


def convergence_series(data) -> dict:
    """{(schedule, samples, step multiplier, step sizes): [(n, first steps per seed by threshold)]} from the
    report's JSON (keys KIND/POP/N at 30:300:300, KIND/POP/N/xM at M times them; other keys are other tables)."""
    out = {}
    for key, v in data.items():
        parts = key.split("/")
        if len(parts) not in (3, 4) or not parts[2].isdigit():
            continue
        m = float(parts[3][1:]) if len(parts) == 4 else 1.0
        out.setdefault((parts[0], parts[1], m, v["etas"]), []).append((int(parts[2]), v["first"]))
    return {k: sorted(v) for k, v in out.items()}


def convergence(data, path):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=False)
    styles = {("mc", 1.0): "-o", ("fixed", 1.0): "--s", ("mc", 0.5): ":^", ("mc", 0.25): "-.D"}
    shift = {("mc", 1.0): 1.0, ("fixed", 1.0): 0.92, ("mc", 0.5): 1.08, ("mc", 0.25): 1.16}   # x offsets: bars apart
    for ax, th in zip(axes, ("0.5", "0.9")):
        for (kind, pop, m, etas), rows in sorted(convergence_series(data).items(), key=lambda kv: (-kv[0][2], kv[0])):
            pts = []
            for n, firsts in rows:
                steps = [s for s in firsts[th].values() if s is not None]
                med, lo, hi = median_interval(steps, len(firsts[th]))
                if med is not None:
                    pts.append((n, med, lo, hi if hi is not None else np.nan))
            if pts:
                n, med, lo, hi = map(np.array, zip(*pts))
                ax.errorbar(n * shift[(pop, m)], med, yerr=[med - lo, np.nan_to_num(hi - med, nan=0.0)], fmt=styles[(pop, m)],
                            color="C0" if kind == "joint" else "C1", capsize=3,
                            label=f"{kind}, {'fresh' if pop == 'mc' else 'fixed'}, {etas}")
        ax.set(xscale="log", xlabel="sequences per step $n$", ylabel=f"median steps to accuracy {th}",
               title=f"N=32, T=16, d=256: accuracy {th}")
        ax.set_xticks([2048, 8192, 32768, 131072], ["2048", "8192", "32768", "131072"])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    data = json.load(open(sys.argv[1]))
    convergence(data, f"{sys.argv[2]}/dynamics_convergence.png")
    mc_exact(f"{sys.argv[2]}/dynamics_mc_exact.png")
