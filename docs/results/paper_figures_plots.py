"""Figures 4, 5, 6 and 8 of docs/results/paper_figures.md from the cached `popgrad train --json` results (no training):
    python docs/results/paper_figures_plots.py docs/results docs
reads paper_figures_fig4_left.json, paper_figures_fig4_center.json and paper_figures_fig8_d{32,64,128,256}.json,
writes docs/paper_fig4.png, docs/paper_fig5.png, docs/paper_fig6.png and docs/paper_fig8.png, and prints the
summary tables of paper_figures.md (the same summaries as the claims of popgrad.claims.paper_figures)."""

import json
import sys
from pathlib import Path

from popgrad.claims.paper_figures import (CENTER, EARLY, FIG8_DIMS, LEFT, center_effects, fig8_effects, global_effects,
                                          left_effects)
from popgrad.numerics.training import build_data_model, preset_config
from popgrad.numerics import paper_figures as pf
from popgrad.numerics.training_plots import FIG4_LEFT_NAMES, plot_fig4, plot_fig8, plot_probe_grid


def load(folder, name):
    return json.loads((Path(folder) / f"paper_figures_{name}.json").read_text())


def fmt(m_se):
    return f"{m_se[0]:.3f} ± {m_se[1]:.3f}"


def main(src, out):
    left, center = load(src, "fig4_left"), load(src, "fig4_center")
    fig8 = {d: load(src, f"fig8_d{d}") for d in FIG8_DIMS}
    size = "T=64, d=128, batch 64, 400 steps, mean ± SE over 3 seeds"
    plot_fig4(left["rows"], center["rows"], str(Path(out) / "paper_fig4.png"), f"popgrad, {size}")
    plot_probe_grid(left["rows"], str(Path(out) / "paper_fig5.png"), FIG4_LEFT_NAMES, f"Figure 5 (setting of Figure 4 left), {size}")
    plot_probe_grid(center["rows"], str(Path(out) / "paper_fig6.png"),
                    {CENTER["uniform"]: "train uniform outputs", CENTER["bigram"]: r"train $\pi_b$ outputs"},
                    f"Figure 6 (setting of Figure 4 center, K=3 random), {size}")
    by_d = {d: {float(c[0]["eta"]): j["per_seed"][label] for label, c in j["configs"].items()} for d, j in fig8.items()}
    eff8 = fig8_effects(by_d, 0.2, 50)
    plot_fig8({d: j["rows"] for d, j in fig8.items()}, {d: eff8[d]["eta"] for d in FIG8_DIMS},
              str(Path(out) / "paper_fig8.png"), title="Figure 8: W_O^2 trained alone, T=64, batch 64, mean ± SE over 3 seeds")

    names = {v: k for k, v in LEFT.items()}
    by_variant = {names[label]: rows for label, rows in left["per_seed"].items()}
    print("## Figure 4 (left) / Figure 5: paired differences of areas under the curves (faster - slower)\n")
    print("| effect | mean ± SE (3 seeds) |\n|---|---|")
    for k, v in left_effects(by_variant).items():
        print(f"| {k} | {fmt(v)} |")
    print("\n| variant | accuracy AUC | W_O2 AUC | W_K2 AUC (Q if fixed) | W_K1 AUC | KL (10) step 0 | accuracy end |\n|---|---|---|---|---|---|---|")
    for v, rows in by_variant.items():
        print(f"| {v} | {fmt(pf.mean_se([pf.auc(r, 'acc_in_context') for r in rows]))} | "
              f"{fmt(pf.mean_se([pf.auc(r, 'recall_W_O2') for r in rows]))} | "
              f"{fmt(pf.mean_se([pf.auc(r, pf.needed_wk2(r)) for r in rows]))} | "
              f"{fmt(pf.mean_se([pf.auc(r, 'code_W_K1') for r in rows]))} | "
              f"{fmt(pf.mean_se([r[0]['kl_W_F'] for r in rows]))} | {fmt(pf.mean_se([pf.end(r, 'acc_in_context') for r in rows]))} |")
    uni, big = center["per_seed"][CENTER["uniform"]], center["per_seed"][CENTER["bigram"]]
    print("\n## Figure 4 (left/right): global vs in-context (K=3 random, uniform outputs)\n")
    print("| quantity | mean ± SE (3 seeds) |\n|---|---|")
    model = build_data_model(preset_config("fig4-right", T=64))
    H = pf.bigram_entropy(model.pi_u, model.pi_b)
    for k, v in global_effects(uni, EARLY[""], H).items():
        print(f"| {k} | {v if k == 'early step' else fmt(v)} |")
    print("\n## Figure 4 (center) / Figure 6: mean of the last 5 probes\n")
    print("| quantity | mean ± SE (3 seeds) |\n|---|---|")
    for k, v in center_effects(uni, big).items():
        print(f"| {k} | {fmt(v)} |")
    print("\n## Figure 8: W_O2 recall, mean over steps 1..50 (speed) and at step 50\n")
    print("| d | fixed eta 0.2: mean 1..50 | at 50 | tuned: mean 1..50 | at 50 | tuned eta | step 0 |\n|---|---|---|---|---|---|---|")
    for d in FIG8_DIMS:
        e = eff8[d]
        print(f"| {d} | {fmt(e['fixed'])} | {fmt(e['fixed_at'])} | {fmt(e['tuned'])} | {fmt(e['tuned_at'])} | {e['eta']:g} | "
              f"{fmt(e['step0'])} |")
    print("\nwall seconds per seed:", {k: [round(s) for s in v] for j in (left, center) for k, v in j["seconds"].items()})


if __name__ == "__main__":
    main(*sys.argv[1:3])
