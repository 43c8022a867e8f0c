"""Training presets of App. E (Figures 3, 4, 5, 6, 8): settings only, no torch.

`popgrad train --preset NAME` builds its TrainConfig from these (`training.preset_config`);
the command reads them to build its parser without importing torch, so a bad argument is
refused before torch loads.
"""

MAX_STEPS = 10_000_000             # the most SGD steps (and steps between checkpoints) a run accepts
FIG3_UNFREEZE = 300
CODE = dict(embed="code", scale="sqrt")   # the public code's parameterization, for which App. E's eta hold
PRESETS = {
    # Fig. 3: K = 5 random triggers (pi_q = pi_u), uniform outputs, d = 128, eta = 0.2, loss on
    # in-context tokens only, no W_F; some matrices frozen until iteration 300.
    "fig3": dict(**CODE, K=5, triggers="random", outputs="uniform", d=128, eta=0.2, loss="in-context", W_F=False),
    "fig3-wo2-first": dict(**CODE, K=5, d=128, eta=0.2, loss="in-context", freeze=(("W_K1", FIG3_UNFREEZE), ("W_K2", FIG3_UNFREEZE))),
    "fig3-wo2-frozen": dict(**CODE, K=5, d=128, eta=0.2, loss="in-context", freeze=(("W_O2", FIG3_UNFREEZE),)),
    "fig3-wk1-frozen": dict(**CODE, K=5, d=128, eta=0.2, loss="in-context", freeze=(("W_K1", FIG3_UNFREEZE),)),
    "fig3-wk2-frozen": dict(**CODE, K=5, d=128, eta=0.2, loss="in-context", freeze=(("W_K2", FIG3_UNFREEZE),)),
    # Fig. 4 (left) / Fig. 5: eta = 1, loss on all tokens, W_F trained; triggers random (default),
    # or --K 1 --triggers frequent, or --K 5 --triggers rare.
    "fig4-left": dict(**CODE, K=5, triggers="random", outputs="uniform", d=128, eta=1.0, loss="all", W_F=True),
    # Fig. 4 (center) / Fig. 6: K = 3 random triggers, outputs uniform (or --outputs bigram).
    "fig4-center": dict(**CODE, K=3, triggers="random", outputs="uniform", d=128, eta=1.0, loss="all", W_F=True),
    # Fig. 4 (right): K = 3 random triggers, uniform outputs, probes of W_O^2 and W_F over training.
    "fig4-right": dict(**CODE, K=3, triggers="random", outputs="uniform", d=128, eta=1.0, loss="all", W_F=True),
    # Fig. 8: W_O^2 trained alone on in-context tokens (key-query matrices frozen throughout),
    # fixed step size; vary --d.
    "fig8": dict(**CODE, K=5, d=128, eta=0.2, loss="in-context", freeze=(("W_K1", 2 ** 62), ("W_K2", 2 ** 62))),
}
PRESETS["fig4-left-k1-frequent"] = dict(PRESETS["fig4-left"], K=1, triggers="frequent")
PRESETS["fig4-left-k5-rare"] = dict(PRESETS["fig4-left"], K=5, triggers="rare")
PRESETS["fig4-center-bigram"] = dict(PRESETS["fig4-center"], outputs="bigram")
PRESETS["fig4-left-k5-frequent"] = dict(PRESETS["fig4-left"], K=5, triggers="frequent")   # the fixed-trigger reference
PRESETS["fig4-left-k1-random"] = dict(PRESETS["fig4-left"], K=1)                            # fewer triggers, random
# Fig. 4 (center) as a table: train on one output distribution, probe in-context accuracy on the other (acc_eval)
PRESETS["fig4-center-eval-bigram"] = dict(PRESETS["fig4-center"], eval_outputs="bigram")
PRESETS["fig4-center-bigram-eval-uniform"] = dict(PRESETS["fig4-center-bigram"], eval_outputs="uniform")
FIG8_ETAS = (0.05, 0.2, 1.0, 5.0)
for _eta in FIG8_ETAS:                 # Fig. 8 'tuned': sweep eta per d and keep the best (fig8-sweep)
    PRESETS[f"fig8-eta{_eta:g}"] = dict(PRESETS["fig8"], eta=_eta)
PRESET_GROUPS = {"fig3-variants": ("fig3", "fig3-wo2-first", "fig3-wo2-frozen", "fig3-wk1-frozen", "fig3-wk2-frozen"),
                 "fig4-left-variants": ("fig4-left", "fig4-left-k1-frequent", "fig4-left-k5-rare"),
                 "fig4-center-variants": ("fig4-center", "fig4-center-bigram"),
                 "fig8-sweep": tuple(f"fig8-eta{e:g}" for e in FIG8_ETAS)}
PRESET_GROUPS["fig4-left-all"] = ("fig4-left-k5-frequent", "fig4-left-k1-frequent", "fig4-left-k5-rare", "fig4-left",
                                  "fig4-left-k1-random")
PRESET_GROUPS["fig4-center-cross"] = ("fig4-center-eval-bigram", "fig4-center-bigram-eval-uniform")
FULL_SIZE = dict(batch=512, steps=1000)
# On the CPU: App. E's d, T, K and eta with batch 64 (App. E: 512) and 500 steps, where the head forms
# (in-context accuracy >= 0.9); freezing steps scale in proportion (300 -> 150). Every preset uses it.
CPU_SIZE = {"fig3": dict(batch=64, steps=500)}
# Fig. 10 (App. E): the full model (numerics/full_model.py) with a ReLU MLP in the second block,
# pre-layer-norm and every parameter trained, embeddings included, at Figure 3's data and step size
# (K = 5 random triggers, uniform outputs, d = 128, T = 256, eta = 0.2, loss on in-context tokens; at
# Fig. 4's eta = 1 SGD on the full model diverges within 25 steps); fig10-simplified is the
# simplified model at the same settings (= fig3), drawn beside it. Fig. 11: the same full model
# with 4 heads per layer. CPU size: batch 32, 250 steps (the full model's autograd step costs
# ~2.5x the simplified lean step; docs/full_model.md).
FULL_MODEL = dict(model="full", heads=1, mlp="second", norm="pre", train_embed=True)
PRESETS["fig10"] = dict(PRESETS["fig3"], **FULL_MODEL)
PRESETS["fig10-simplified"] = dict(PRESETS["fig3"])
PRESETS["fig11"] = dict(PRESETS["fig10"], heads=4)
PRESET_GROUPS["fig10-compare"] = ("fig10", "fig10-simplified")
for _name in ("fig10", "fig10-simplified", "fig11"):
    CPU_SIZE[_name] = dict(batch=32, steps=250)
