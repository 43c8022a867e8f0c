"""How many population steps the induction head needs, as a law in N, T and d (`popgrad dynamics` cells).

The design, run through the sweep layer (`popgrad.sweep.run_cells`: --workers, resumable --cache):

* settings: a star through the centre (N, T, d) = (32, 16, 256), each axis varied alone over
  N in {8, 16, 32, 64}, T in {8, 16, 32}, d in {64, 128, 256, 512} (9 settings);
* a 2^3 factorial N in {8, 32}, T in {8, 16}, d in {64, 256} (4 more settings; 4 are on the star) to
  measure the interactions the star cannot see;
* step sizes: eta = m * (30 : 300 : 300). Phase `pilot` runs joint, m in MULTIPLIERS, on pilot seeds
  100-102 (never reported in the law); per setting the best m is the one with the most pilot seeds
  reaching 0.9, then the smallest median step to 0.9, then the smaller m; a pick at the smallest
  (largest) m tried adds m / 2 (2 m), within 1/16..8, until the pick is inside the multipliers tried;
* phase `law`: joint (seeds 0-9) and alternating (seeds 0-4) at each setting's best m, stopped at 0.9;
* phase `etas`: at the centre, joint over m x ratio eta_K / eta_O and alternating over m, seeds 0-2,
  budget 200 steps (per layer): the stability boundary and the best triple with an interval.

Everything else is `popgrad dynamics`' default (full loss, fresh n = 2048 sequences per step, float32,
2048 evaluation sequences). Run, then report (reads only cached cells):

    OMP_NUM_THREADS=1 python docs/results/dynamics_law.py run pilot --cache DIR --workers 2
    OMP_NUM_THREADS=1 python docs/results/dynamics_law.py run law --cache DIR --workers 2
    OMP_NUM_THREADS=1 python docs/results/dynamics_law.py run etas --cache DIR --workers 2
    python docs/results/dynamics_law.py report DIR docs/results/dynamics_law --plot docs/dynamics_law.png

A cache keeps cells from any popgrad sources it was written by; `report` reads a cell written by
any of them (`popgrad.sweep.Cache.find`; the sources in the cache are listed in the output), and `run
--reuse-other-sources` computes only the cells no source has cached, after recomputing one per source.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from popgrad.cells import Cell
from popgrad.commands.dynamics import dynamics_cell
from popgrad.numerics.dynamics import median_interval as dynamics_median_interval
from popgrad.plotting import save_figure
from popgrad.rates import power_law_bootstrap
from popgrad.sweep import Cache, SweepOptions, cache_sources, run_cells

CENTRE = (32, 16, 256)
STAR = [CENTRE] + [(N, 16, 256) for N in (8, 16, 64)] + [(32, T, 256) for T in (8, 32)] + \
       [(32, 16, d) for d in (64, 128, 512)]
CORNERS = [(N, T, d) for N in (8, 32) for T in (8, 16) for d in (64, 256)]      # 2^3 factorial: interactions
SETTINGS = STAR + [s for s in CORNERS if s not in STAR]
BASE_ETAS = (30.0, 300.0, 300.0)
MULTIPLIERS = (0.25, 0.5, 1.0, 2.0)
EXTEND_WITHIN = (1 / 16, 8.0)   # a pick at the edge of the multipliers tried adds the next power of 2 within these
PILOT_SEEDS = (100, 101, 102)
LAW_SEEDS = {"joint": tuple(range(10)), "alternating": tuple(range(5))}
ETA_SEEDS = tuple(range(3))
ETA_MULTIPLIERS = {"joint": (0.25, 0.5, 1.0, 2.0, 4.0), "alternating": (0.5, 1.0, 2.0)}
ETA_RATIOS = (10 / 3, 10.0, 30.0)
BUDGET = {"joint": 400, "alternating": 400}   # steps (joint) / steps per layer (alternating)
ETA_BUDGET = {"joint": 200, "alternating": 200}
THRESHOLD = 0.9


def etas(m: float, ratio: float = 10.0) -> dict:
    eo = BASE_ETAS[0] * m
    return {"W_O2": eo, "W_K2": eo * ratio, "W_K1": eo * ratio}


def params(setting, e: dict, kind: str, budget: dict | None = None) -> dict:
    N, T, d = setting
    return {"N": N, "T": T, "d": d, "dtype": "float32", "device": "cpu", "k": (budget or BUDGET)[kind], "rounds": 1,
            "loss": "full", "phat": "uniform", "population": "mc", "n": 2048, "n_eval": 2048,
            "stop_at": THRESHOLD, "etas": e, "kind": kind}


def pilot_cells(reader):
    """The pilot cells of every setting at the multipliers `pilot_multipliers` asks for (given what is cached)."""
    return [Cell(dynamics_cell, params(s, etas(m), "joint"), seed, label=f"pilot {s} m={m} seed {seed}")
            for s in SETTINGS for m in pilot_multipliers(reader, s) for seed in PILOT_SEEDS]


def eta_cells():
    cells = [Cell(dynamics_cell, params(CENTRE, etas(m, r), "joint", ETA_BUDGET), seed,
                  label=f"etas m={m} r={r:.3g} {seed}")
             for m in ETA_MULTIPLIERS["joint"] for r in ETA_RATIOS for seed in ETA_SEEDS]
    cells += [Cell(dynamics_cell, params(CENTRE, etas(m), "alternating", ETA_BUDGET), seed, label=f"etas alt m={m} {seed}")
              for m in ETA_MULTIPLIERS["alternating"] for seed in ETA_SEEDS]
    return cells


# ----------------------------------------------------------------------------- reading the cache
def first_step(rows, th=None):
    th = THRESHOLD if th is None else th
    return next((r["step"] for r in rows if r["accuracy"] >= th), None)


def unstable(rows) -> bool:
    """The loss ended above where it started, or is not finite."""
    losses = [r["loss"] for r in rows if r.get("loss") is not None]
    return bool(losses) and (not math.isfinite(losses[-1]) or losses[-1] > losses[0])


def run_steps(reader, setting, e, kind, seeds, budget=None):
    """{seed: (first step to 0.9 or None, unstable, wall seconds)} of the cached cells."""
    out = {}
    for seed in seeds:
        rec = reader.find(Cell(dynamics_cell, params(setting, e, kind, budget), seed))
        if rec is not None:
            out[seed] = (first_step(rec.value), unstable(rec.value), rec.seconds)
    return out


def median_interval(steps: list, resamples: int = 2000, seed: int = 0):
    """Median (None = inf) of the steps (None = never reached) and its 95% percentile-bootstrap interval:
    `popgrad dynamics`' own summary (numerics.dynamics.median_interval)."""
    reached = [s for s in steps if s is not None]
    return dynamics_median_interval(reached, len(steps), resamples=resamples, seed=seed)


def summary_text(steps: list) -> tuple[str, str]:
    """('median [lo, hi]', 'reached/seeds') of first steps (None = never reached); inf where unbounded."""
    text = lambda x: "inf" if x is None else f"{x:.0f}"   # noqa: E731
    med, lo, hi = median_interval(steps)
    return f"{text(med)} [{text(lo)}, {text(hi)}]", f"{sum(x is not None for x in steps)}/{len(steps)}"


def pilot_multipliers(reader, setting) -> list:
    """The multipliers of a setting's pilot, smallest first (`best_multiplier`)."""
    return sorted(best_multiplier(reader, setting)[1])


def best_multiplier(reader, setting):
    """(m, {m: pilot runs}) with the rule of the module docstring over MULTIPLIERS, extended while the pick is
    the smallest (largest) multiplier tried by halving (doubling) it, within EXTEND_WITHIN; m is None when a
    pilot cell is missing (the table then ends at the first multiplier whose pilot cells are not all cached)."""
    ms = list(MULTIPLIERS)
    while True:
        m, table = pick(reader, setting, ms)
        if m is not None and m == ms[0] and ms[0] / 2 >= EXTEND_WITHIN[0]:
            ms.insert(0, ms[0] / 2)
        elif m is not None and m == ms[-1] and ms[-1] * 2 <= EXTEND_WITHIN[1]:
            ms.append(ms[-1] * 2)
        else:
            return m, table


def pick(reader, setting, multipliers):
    """(m, {m: pilot runs}): the most pilot seeds reaching 0.9, then the smallest median step, then the
    smaller m; m is None when a pilot cell is missing."""
    table = {m: run_steps(reader, setting, etas(m), "joint", PILOT_SEEDS) for m in multipliers}
    if any(len(v) < len(PILOT_SEEDS) for v in table.values()):
        return None, table

    def rank(m):
        steps = [s for s, _, _ in table[m].values()]
        reached = sum(s is not None for s in steps)
        med = median_interval(steps)[0]
        return (-reached, math.inf if med is None else med, m)

    return min(multipliers, key=rank), table


def law_cells(reader):
    picked = {s: best_multiplier(reader, s)[0] for s in SETTINGS}
    missing = [s for s, m in picked.items() if m is None]
    cells = [Cell(dynamics_cell, params(s, etas(m), kind), seed, label=f"law {s} {kind} m={m} seed {seed}")
             for kind in ("joint", "alternating")       # every joint cell first: the cheaper, better-resolved half
             for s, m in picked.items() if m is not None for seed in LAW_SEEDS[kind]]
    if missing:
        print(f"pilot cells missing for {missing}: run the pilot phase first", file=sys.stderr)
    return cells


# ----------------------------------------------------------------------------- the plot
def plot(law: dict, fits: dict, path: str) -> None:
    """Median steps to 0.9 (95% bootstrap interval) against N, T and d (each varied alone through the
    centre), joint and alternating, log-log, with the fitted power law's line through the centre."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
    for ax, (i, name) in zip(axes, enumerate(("N", "T", "d"))):
        line = sorted(s for s in STAR if all(s[j] == CENTRE[j] for j in range(3) if j != i))
        for kind, colour in (("joint", "C0"), ("alternating", "C1")):
            pts = [(s[i], law[s][kind]) for s in line if s in law and kind in law[s] and law[s][kind]["median"]]
            if not pts:
                continue
            x = np.array([p[0] for p in pts], dtype=float)
            med = np.array([p[1]["median"] for p in pts])
            lo = np.array([p[1]["lo"] for p in pts])
            hi = np.array([np.nan if p[1]["hi"] is None else p[1]["hi"] for p in pts])
            ax.errorbar(x, med, yerr=[med - lo, np.nan_to_num(hi - med, nan=0.0)], fmt="o", color=colour,
                        capsize=3, label=kind)
            open_hi = np.isnan(hi)
            if open_hi.any():
                ax.plot(x[open_hi], med[open_hi] * 1.25, "^", color=colour, ms=5,
                        label=f"{kind}: interval open above" if kind == "joint" else None)
            if kind == "joint":
                for xi, mi, p in zip(x, med, pts):
                    ax.annotate(f"m={p[1]['m']:g}", (xi, mi), textcoords="offset points", xytext=(4, -11), fontsize=7)
            if kind in fits:
                point = fits[kind]["point"]
                xx = np.geomspace(x.min(), x.max(), 20)
                centre = np.exp(point[0]) * np.prod([CENTRE[j] ** point[j + 1] for j in range(3)])
                ax.plot(xx, centre * (xx / CENTRE[i]) ** point[i + 1], "--", color=colour,
                        label=f"{kind} fit {name}^{point[i + 1]:+.2f}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(name + " (others at " + ", ".join(f"{n}={CENTRE[j]}" for j, n in enumerate("NTd") if j != i) + ")")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("steps to accuracy 0.9 (median over seeds)")
    fig.suptitle("popgrad dynamics: steps to 0.9 vs N, T, d (full loss, n = 2048, eta = m (30:300:300) picked per "
                 "setting; median, 95% bootstrap interval)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def fit_cells(out: dict, key: str, samples: dict, interactions: bool = False) -> str:
    """Fit `samples` (power_law_bootstrap), store it in out['fit'][key], return the table cells of every
    coefficient but the intercept ('point [lo, hi]') and the dropped resamples."""
    point, lo, hi, dropped = power_law_bootstrap(samples, interactions=interactions)
    out.setdefault("fit", {})[key] = {"point": point.tolist(), "lo": lo.tolist(), "hi": hi.tolist(), "dropped": dropped}
    return (" | ".join(f"{point[i]:+.2f} [{lo[i]:+.2f}, {hi[i]:+.2f}]" for i in range(1, len(point)))
            + f" | {dropped}/2000 |")


def report(cache: str, prefix: str, plot_path: str | None = None) -> None:
    reader = Cache(cache)
    out = {"sources": sorted({source for _, source in cache_sources(cache)}), "pilot": {}, "law": {}, "etas": {}}
    tables = {s: best_multiplier(reader, s) for s in SETTINGS}
    tried = sorted({m for _, table in tables.values() for m in table})
    lines = ["## Step sizes picked on the pilot seeds (joint, seeds 100-102, steps to 0.9; '-' never; blank: not "
             "tried)", "",
             "| N | T | d | " + " | ".join(f"m = {m:g}" for m in tried) + " | picked m |",
             "|---|---|---|" + "---|" * (len(tried) + 1)]
    picked = {}
    for s in SETTINGS:
        m, table = tables[s]
        picked[s] = m
        cells = []
        for mm in tried:
            runs = table.get(mm, {})
            txt = ",".join("-" if runs[sd][0] is None else str(runs[sd][0]) for sd in sorted(runs))
            if any(u for _, u, _ in runs.values()):
                txt += " (unstable)"
            cells.append(txt or ("?" if mm in table else ""))
        lines.append(f"| {s[0]} | {s[1]} | {s[2]} | " + " | ".join(cells) + f" | {'?' if m is None else f'{m:g}'} |")
        out["pilot"][str(s)] = {"picked": m, "runs": {str(mm): table[mm] for mm in table}}

    lines += ["", "## Steps to 0.9 at the picked step sizes (joint seeds 0-9, alternating 0-4; median [95% bootstrap CI], reached)", "",
              "| N | T | d | etas | joint | joint reached | alternating | alternating reached | "
              "alternating per layer | CPU-s per seed (joint, alt.) |", "|---|---|---|---|---|---|---|---|---|---|"]
    per = {"joint": {}, "alternating": {}}
    for s in SETTINGS:
        m = picked[s]
        if m is None:
            continue
        row, secs = [], []
        for kind in ("joint", "alternating"):
            runs = run_steps(reader, s, etas(m), kind, LAW_SEEDS[kind])
            if not runs:
                row += ["?", "?"]
                continue
            steps = [runs[sd][0] for sd in sorted(runs)]
            med, lo, hi = median_interval(steps)
            row += list(summary_text(steps))
            secs.append(sum(r[2] for r in runs.values()) / len(runs))
            per[kind][s] = np.array([np.inf if x is None else x for x in steps], dtype=float)
            out["law"].setdefault(str(s), {})[kind] = {"m": m, "steps": steps, "median": med, "lo": lo, "hi": hi}
        alt = out["law"].get(str(s), {}).get("alternating")
        per_layer = "?" if not alt or alt["median"] is None else f"{alt['median'] / 3:.0f}"
        e = etas(m)
        lines.append(f"| {s[0]} | {s[1]} | {s[2]} | {e['W_O2']:g}:{e['W_K2']:g}:{e['W_K1']:g} | " + " | ".join(row)
                     + f" | {per_layer} | " + ", ".join(f"{x:.0f}" for x in secs) + " |")

    lines += ["", "## The law: steps to 0.9 ~ N^b T^c d^e (least squares on the medians of the 9 star settings; "
              "95% intervals from resampling seeds). 'eta x steps' is m times the steps (the learning time in units "
              "of the base step sizes): eq. (16)'s first-step signal eta/(NT) predicts eta x steps ~ N^1 T^1 d^0 for "
              "W_O^2 if the signal accumulates linearly", "",
              "| schedule | quantity | b (N) | c (T) | e (d) | resamples dropped |", "|---|---|---|---|---|---|"]
    for kind in ("joint", "alternating"):
        star = {s: v for s, v in per[kind].items() if s in STAR}
        if len(star) < len(STAR) or not all(np.isfinite(np.median(v)) for v in star.values()):
            lines.append(f"| {kind} | steps | ? | ? | ? | settings missing or median inf |")
            continue
        for quantity, samples in (("steps", star), ("eta x steps", {s: v * picked[s] for s, v in star.items()})):
            key = kind if quantity == "steps" else kind + " eta x steps"
            lines.append(f"| {kind} | {quantity} | " + fit_cells(out, key, samples))

    lines += ["", "## Interactions: the 2^3 factorial N in {8, 32}, T in {8, 16}, d in {64, 256} (least squares with the "
              "pairwise products of centred logs: b, c, e are the exponents at the factorial's geometric centre, "
              "g_XY how much X's exponent changes per unit of log Y, 0 if the factors act independently; 95% "
              "intervals from resampling seeds, each setting's m held at its pick)", "",
              "| schedule | quantity | b (N) | c (T) | e (d) | g_NT | g_Nd | g_Td | resamples dropped |",
              "|---|---|---|---|---|---|---|---|---|"]
    for kind in ("joint", "alternating"):
        corners = {s: v for s, v in per[kind].items() if s in CORNERS}
        if len(corners) < len(CORNERS) or not all(np.isfinite(np.median(v)) for v in corners.values()):
            lines.append(f"| {kind} | steps | ? | ? | ? | ? | ? | ? | settings missing or median inf |")
            continue
        for quantity, samples in (("steps", corners), ("eta x steps", {s: v * picked[s] for s, v in corners.items()})):
            key = kind + (" factorial" if quantity == "steps" else " eta x steps factorial")
            lines.append(f"| {kind} | {quantity} | " + fit_cells(out, key, samples, interactions=True))

    ms = ETA_MULTIPLIERS["joint"]
    lines += ["", f"## Step sizes at N=32, T=16, d=256 (seeds 0-2, budget {ETA_BUDGET['joint']} steps (joint) / "
              f"{ETA_BUDGET['alternating']} per layer (alternating); eta = m (30 : 30 r : 30 r); median steps to 0.9 "
              "[95% CI], reached, unstable = final loss above the first step's)", "",
              "| schedule | r = eta_K / eta_O | " + " | ".join(f"m = {m:g}" for m in ms) + " |",
              "|---|---|" + "---|" * len(ms)]
    for kind, ratios in (("joint", ETA_RATIOS), ("alternating", (10.0,))):
        for r in ratios:
            cells = []
            for m in ms:
                if m not in ETA_MULTIPLIERS[kind]:
                    cells.append("")
                    continue
                runs = run_steps(reader, CENTRE, etas(m, r), kind, ETA_SEEDS, ETA_BUDGET)
                if not runs:
                    cells.append("?")
                    continue
                steps = [runs[sd][0] for sd in sorted(runs)]
                med, lo, hi = median_interval(steps)
                nu = sum(u for _, u, _ in runs.values())
                cells.append(" ".join(summary_text(steps)) + (f", {nu} unstable" if nu else ""))
                out["etas"][f"{kind}/{r:.4g}/{m:g}"] = {"steps": steps, "unstable": nu, "median": med, "lo": lo,
                                                       "hi": hi}
            lines.append(f"| {kind} | {r:.3g} | " + " | ".join(cells) + " |")
    law = {s: {kind: out["law"][str(s)][kind] for kind in out["law"].get(str(s), {})} for s in SETTINGS}
    plot(law, out.get("fit", {}), plot_path or prefix + ".png")
    md = "\n".join(lines) + "\n"
    open(prefix + ".md", "w").write(md)
    json.dump(out, open(prefix + ".json", "w"), indent=1, default=str)
    print(md)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("phase", choices=("pilot", "law", "etas"))
    r.add_argument("--cache", required=True)
    r.add_argument("--workers", type=int)
    r.add_argument("--reuse-other-sources", action="store_true",
                   help="read cells that other popgrad sources cached (popgrad.sweep checks one per source first)")
    q = sub.add_parser("report")
    q.add_argument("cache")
    q.add_argument("prefix")
    q.add_argument("--plot", help="the figure's path (default PREFIX.png)")
    args = p.parse_args(argv)
    if args.what == "report":
        return report(args.cache, args.prefix, args.plot)
    options = SweepOptions(workers=args.workers, cache=args.cache, reuse_other_sources=args.reuse_other_sources)
    if args.phase == "pilot":                   # until no pick sits at the edge of the multipliers tried
        while True:
            reader = Cache(args.cache)
            cells = pilot_cells(reader)
            if all(reader.find(c) is not None for c in cells):
                return
            run_cells(cells, options, desc="dynamics pilot")
    cells = {"etas": eta_cells, "law": lambda: law_cells(Cache(args.cache))}[args.phase]()
    run_cells(cells, options, desc=f"dynamics {args.phase}")


if __name__ == "__main__":
    main()
