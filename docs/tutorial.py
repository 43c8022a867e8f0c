# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # popgrad tutorial: from Lemma 2 to Figure 9 and Theorem 3
#
# Bietti et al., *Birth of a Transformer: A Memory Viewpoint* (NeurIPS 2023) explain how a
# two-layer transformer learns an induction head: each weight matrix is an **associative
# memory** $W = \sum_k v_k u_k^\top$, and one population gradient step writes such a memory.
# This tutorial follows that argument with popgrad's public API only (`import popgrad`):
#
# 1. **Lemma 2**: the gradient at $W = 0$ of a memory with noisy inputs, checked against
#    autograd, and the recall (9) of the memory written by one step, as $d$ grows;
# 2. **Figure 9** (App. E): the one-step recall $R_1$ of $W_O^2$ estimated from batches of
#    the bigram-with-triggers data (model C), against $d$ and the number of batches;
# 3. **Theorem 3** (App. B.3): the exact three-step construction $W_O^2 \to W_K^2 \to W_K^1$
#    on model D, the recall of each matrix, and what the learned head does;
# 4. **Beyond one step**: the population dynamics of the same head, many gradient steps per
#    layer, and the accuracy of the head along the way;
# 5. **Training** (Sec. 5, App. E): SGD on fresh model-C batches, probed by recall (9) as in Figure 3.
#
# It is a [jupytext](https://jupytext.readthedocs.io) percent script: open it as a notebook
# (`jupytext --to notebook docs/tutorial.py`), or run it as a script (`python docs/tutorial.py`);
# the test suite runs it (tests/test_tutorial.py). CPU defaults, about a minute of CPU time. Plots
# are written to `$POPGRAD_TUTORIAL_OUT` (a temporary folder by default) and shown inline in a
# notebook.
# Every recall is printed with its standard error and its sample size.

# %%
import math
import os
import tempfile
from pathlib import Path

import matplotlib
import numpy as np
import torch

if "inline" not in matplotlib.get_backend() and "ipykernel" not in matplotlib.get_backend():
    matplotlib.use("Agg")                       # a script or a test: write PNGs, open no window
import matplotlib.pyplot as plt

import popgrad

OUT = Path(os.environ.get("POPGRAD_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="popgrad_tutorial_"))
OUT.mkdir(parents=True, exist_ok=True)
SEEDS = int(os.environ.get("POPGRAD_TUTORIAL_SEEDS", "3"))


def mean_se(values):
    """Mean and standard error (ddof = 1) of a list of per-seed values."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")


def show(fig, name):
    """Save a figure under OUT (and keep it for inline display in a notebook)."""
    fig.tight_layout()
    fig.savefig(OUT / name, dpi=110)
    print(f"figure: {OUT / name}")
    if "inline" not in matplotlib.get_backend():
        plt.close(fig)


print(f"popgrad {popgrad.__version__}, torch {torch.__version__}; figures in {OUT}")

# %% [markdown]
# ## 1. Lemma 2: one gradient step writes an associative memory
#
# Fixed random embeddings have i.i.d. $\mathcal N(0, 1/d)$ entries, so in high dimension they
# are nearly orthonormal: $w_E(k)$ (input), $w_U(k)$ (output), $p_t$ (positions).
# Model B (`positional_noise_mixture`) is the illustrative example of App. B.1: the input is a
# token embedding plus a positional "noise" vector, $x = w_E(y) + p_t$ with $(y, t)$ uniform.
#
# Lemma 2 gives the gradient of the population cross-entropy $L(W) = \mathbb E[\ell(y, W_U W x)]$:
# $\nabla L(W) = \sum_k p(y{=}k)\, w_U(k) (\hat\mu_k - \mu_k)^\top$ with $\mu_k = \mathbb E[x \mid y = k]$
# and $\hat\mu_k = p(y{=}k)^{-1} \mathbb E_x[\hat p_W(k \mid x)\, x]$. First, the formula against autograd:

# %%
d, N, T = 128, 16, 32
emb = popgrad.make_embeddings(d=d, N=N, T=T, seed=0)
mixture = popgrad.positional_noise_mixture(emb)                 # x = w_E(y) + p_t, (y, t) uniform

W = torch.zeros(d, d, dtype=torch.float64, requires_grad=True)
popgrad.lemma2_population_loss(W, emb.W_U, mixture).backward()  # autograd of the exact loss
G = popgrad.lemma2_gradient(W.detach(), emb.W_U, mixture)       # Lemma 2's formula
rel = float((G - W.grad).norm() / W.grad.norm())
print(f"Lemma 2 vs autograd at W = 0 (d={d}, N={N}, T={T}, float64): relative error {rel:.1e}")
assert rel < 1e-10

# %% [markdown]
# The lemma as *stated* in Sec. 6 defines $\hat\mu_k$ without the factor $p(y{=}k)^{-1}$; the
# proof (App. C.2) has it. popgrad's claim `lemma2.mu_hat_erratum` measures both readings against
# autograd. The claims are the same objects that `popgrad claims` prints:

# %%
row = popgrad.run_claim("lemma2.mu_hat_erratum")
print(f"{row['claim']} [{row['where']}]: verdict {row['verdict']}, error {row['error']:.1e} "
      f"(tolerance {row['tolerance']:.0e})\n  {row['note']}")

# %% [markdown]
# At $W = 0$ the model predicts uniformly, so one step of size $\eta$ writes
# $W_1 = -\eta \nabla L(0) = \eta \sum_k w_U(k) (p(y{=}k)\, \mu_k - \bar\mu/N)^\top$. With $(y, t)$
# uniform this is $\frac{\eta}{N} \sum_k w_U(k) (\mu_k - \bar\mu)^\top$, and since
# $\mu_k = w_E(k) + \bar p$ the positional noise cancels: $\mu_k - \bar\mu = w_E(k) - \bar w_E$.
# $W_1$ is a memory that maps $w_E(k) \mapsto w_U(k)$. Recall (9) asks, for each $k$, whether
# $\arg\max_{k'} w_U(k')^\top W_1 w_E(k) = k$ (indices as intended: the paper prints $j'$ where
# the target is meant, see `help(popgrad.memory_recall)`). What remains is the crosstalk between
# $N$ random, only nearly orthogonal embeddings, which shrinks as $d$ grows:

# %%
N, T = 32, 32
dims = [8, 16, 32, 64, 128, 256]
lemma2_recall = {}
for d in dims:
    per_seed = []
    for seed in range(SEEDS):
        emb = popgrad.make_embeddings(d=d, N=N, T=T, seed=seed)
        mixture = popgrad.positional_noise_mixture(emb)
        W1 = -1.0 * popgrad.lemma2_gradient(torch.zeros(d, d, dtype=torch.float64), emb.W_U, mixture)
        per_seed.append(popgrad.memory_recall(W1, emb.W_E, emb.W_U.T, torch.arange(N)))
    lemma2_recall[d] = mean_se(per_seed)
    m, se = lemma2_recall[d]
    print(f"d={d:4d}: recall (9) of W_1 = {m:.3f} ± {se:.3f}  (N={N} associations x {SEEDS} seeds)")

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.errorbar(dims, [lemma2_recall[d][0] for d in dims], yerr=[lemma2_recall[d][1] for d in dims], marker="o", capsize=3)
ax.set_xscale("log", base=2)
ax.set(xlabel="dimension d", ylabel="recall (9)", ylim=(0, 1.05),
       title=f"Lemma 2: one step from W=0 (N={N}, T={T}; ± se, {SEEDS} seeds)")
show(fig, "lemma2_recall.png")

# %% [markdown]
# ## 2. Figure 9: the one-step recall of $W_O^2$ from finite data
#
# In the paper's data (model C, Section 3) sequences follow the bigram statistics of tiny
# Shakespeare (the counts ship with popgrad: $N = 65$ characters), except that each of $K = 5$
# trigger tokens is always followed by the same output token within a sequence. The first step
# of Theorem 3 writes $W_O^2 = \frac{\eta}{N} \sum_k w_U(k) (\mu_k - \mu)^\top$ with
# $\mu_k$ the mean input given that the label is $k$. App. E estimates $\mu_k, \mu$ from a few
# batches and measures the one-step recall
# $R_1 = \frac1N \sum_k 1\{k = \arg\max_{k'} (W_V^2 w_E(k'))^\top (\mu_k - \mu)\}$.
# `popgrad.recall_table` computes it for every $(d, \text{batches})$; a seed changes both data
# and embeddings.

# %%
model_c = popgrad.bigram_trigger_model(T=256, K=5)               # triggers drawn from pi_u per sequence
fig9_dims, fig9_batches = [16, 32, 64, 128, 256], [1, 2, 4, 8, 16]
rows = popgrad.recall_table(model_c, dims=fig9_dims, batches=fig9_batches, seeds=SEEDS, batch_size=32, device="cpu")
print(f"R_1 (mean ± se over {SEEDS} seeds; N={model_c.N}, T={model_c.T}, K={model_c.K}, 32 sequences per batch)")
print("d \\ batches | " + " | ".join(str(b) for b in fig9_batches))
for d in fig9_dims:
    print(f"{d:11d} | " + " | ".join(f"{r['r1_mean']:.2f} ± {r['r1_se']:.2f}" for r in rows if r["d"] == d))
print("mean number of (x, y) pairs per cell: " +
      ", ".join(f"{b} batches: {next(r['pairs'] for r in rows if r['batches'] == b):.0f}" for b in fig9_batches))

fig, ax = plt.subplots(figsize=(5.5, 3.5))
for d in fig9_dims:
    rs = [r for r in rows if r["d"] == d]
    ax.errorbar([r["batches"] for r in rs], [r["r1_mean"] for r in rs], yerr=[r["r1_se"] for r in rs],
                marker="o", ms=3, capsize=2, label=f"d={d}")
ax.set_xscale("log", base=2)
ax.set(xlabel="number of batches", ylabel="one-step recall $R_1$", ylim=(0, 1.02),
       title=f"Figure 9 (App. E), ± se over {SEEDS} seeds")
ax.legend(fontsize=7)
show(fig, "figure9_recall.png")

# %% [markdown]
# As in Figure 9, $R_1$ grows with the amount of data and with $d$: more batches give better
# estimates of the class means, a larger $d$ less crosstalk between the stored associations.
# (`popgrad recall-table` prints the full grid; `montecarlo.recall_trend` is the claim that
# tests this trend.)
#
# ## 3. Theorem 3: three exact gradient steps build the induction head
#
# Theorem 3 uses model D (App. B.3): one trigger $q$, uniform tokens, and the last token $z_T$ is
# the second occurrence of $q$; the label is the token $o$ that followed the first one.
# popgrad's exact engine computes each population gradient step by exact expectation (no
# sampling): $W_O^2$ (eq. (15)), then $W_K^2$ (eq. (17)) given $W_O^2$, then $W_K^1$ (Lemma 5)
# given both. Each should be an associative memory with the target of eq. (7):
# $W_O^2$: $W_V^2 w_E(k) \mapsto w_U(k)$; $W_K^2$: $\Phi_1 w_E(k) \mapsto w_E(k)$;
# $W_K^1$: $p_{t-1} \mapsto p_t$.

# %%
model_d = popgrad.SecondOccurrenceModel(N=16, T=16)
emb = popgrad.make_embeddings(d=128, N=16, T=16, seed=0)
steps = popgrad.three_steps(model_d, emb)                        # {'W_O2', 'W_K2', 'W_K1'}, each (d, d)
print({name: tuple(W.shape) for name, W in steps.items()})
print("recall (9) of each step against eq. (7):", popgrad.recall_per_step(emb, **steps))

# %% [markdown]
# The recall of each step against $d$ (same $N = T = 16$; a seed draws new embeddings):

# %%
th3_dims = [16, 32, 64, 128, 256]
th3 = {name: [] for name in ("W_O2", "W_K2", "W_K1")}
for d in th3_dims:
    per_seed = {name: [] for name in th3}
    for seed in range(SEEDS):
        emb = popgrad.make_embeddings(d=d, N=16, T=16, seed=seed)
        for name, value in popgrad.recall_per_step(emb, **popgrad.three_steps(model_d, emb)).items():
            per_seed[name].append(value)
    for name in th3:
        th3[name].append(mean_se(per_seed[name]))
    print(f"d={d:4d}: " + ", ".join(f"{name} {th3[name][-1][0]:.3f} ± {th3[name][-1][1]:.3f}" for name in th3)
          + f"  (N=16 tokens or T-1=15 positions x {SEEDS} seeds)")

fig, ax = plt.subplots(figsize=(5, 3.2))
for name, values in th3.items():
    ax.errorbar(th3_dims, [m for m, _ in values], yerr=[s for _, s in values], marker="o", capsize=3, label=name)
ax.set_xscale("log", base=2)
ax.set(xlabel="dimension d", ylabel="recall (9)", ylim=(0, 1.05),
       title=f"Theorem 3, exact steps on model D (N=T=16; ± se, {SEEDS} seeds)")
ax.legend(fontsize=8)
show(fig, "theorem3_recall.png")

# %% [markdown]
# The engine is itself a claim, checked against autograd on every enumerated sequence of small
# model-D instances; and the paper's closed form (16) for the first step is an erratum (its
# coefficient $1/T$ should be $(N-2)/((N-1)T)$). Both are in the registry:

# %%
for claim_id in ("theorem3.engine_vs_autograd", "theorem3.step1.eq16"):
    row = popgrad.run_claim(claim_id)
    print(f"{claim_id}: {row['verdict']}, error {row['error']:.1e} (tolerance {row['tolerance']:.0e})\n  {row['note']}\n")

# %% [markdown]
# **Does the learned head predict?** Each matrix recalls its target, yet Theorem 3's informal
# conclusion, that the three steps give a working induction head, is *measured*, not assumed:
# the claim `theorem3.head_learned` runs the two-layer model with the learned matrices on model D
# and compares its accuracy with chance $1/N$ and with the hand-built head of eq. (7).

# %%
row = popgrad.run_claim("theorem3.head_learned")
print(f"{row['claim']}: {row['verdict']} (a measured result)\n  {row['note']}")

# %% [markdown]
# ## 4. Beyond one step: population dynamics of the head
#
# Theorem 3 takes *one* gradient step per layer from zero. `popgrad.population_dynamics` keeps
# going: on model D, it takes gradient steps of the full two-layer model's loss at position $T$
# (`loss="full"`), here with all three matrices moving together (`schedule="joint"`) and step
# sizes $\eta_O : \eta_{K^2} : \eta_{K^1} = 30 : 300 : 300$. After every step it measures the head's
# accuracy on fresh sequences (chance is $1/N$) and the recall (9) of each matrix. Each seed
# draws new embeddings and new sequences.

# %%
dyn_model = popgrad.SecondOccurrenceModel(N=16, T=16)
dyn_eta = {"W_O2": 30.0, "W_K2": 300.0, "W_K1": 300.0}
dyn_runs = []
for seed in range(SEEDS):
    emb = popgrad.make_embeddings(d=128, N=16, T=16, seed=seed)
    dyn_runs.append(popgrad.population_dynamics(dyn_model, emb, eta=dyn_eta, k=60, schedule="joint",
                                                n=1024, n_eval=1024, seed=seed))
dyn_steps = [r["step"] for r in dyn_runs[0]]
dyn_acc = [mean_se([run[i]["accuracy"] for run in dyn_runs]) for i in range(len(dyn_steps))]
for i in (0, 20, 40, 60):
    print(f"step {dyn_steps[i]:3d}: head accuracy {dyn_acc[i][0]:.3f} ± {dyn_acc[i][1]:.3f}, recall (9) "
          + ", ".join(f"{name} {mean_se([run[i]['recall_' + name] for run in dyn_runs])[0]:.2f}"
                      for name in ("W_O2", "W_K2", "W_K1"))
          + f"  (mean ± se over {SEEDS} seeds, 1024 sequences each)")
reached = [next((r["step"] for r in run if r["accuracy"] >= 0.9), None) for run in dyn_runs]
print(f"first step with accuracy >= 0.9, per seed: {reached}")

fig, ax = plt.subplots(figsize=(5, 3.2))
m, se = np.array([a for a, _ in dyn_acc]), np.array([b for _, b in dyn_acc])
ax.plot(dyn_steps, m, label="joint, full loss (mean ± se)")
ax.fill_between(dyn_steps, m - se, m + se, alpha=0.3)
ax.axhline(1 / dyn_model.N, color="gray", ls="--", lw=1, label="chance $1/N$")
ax.set(xlabel="gradient step", ylabel="head accuracy", ylim=(0, 1.02),
       title=f"Dynamics on model D (N=T=16, d=128; {SEEDS} seeds)")
ax.legend(fontsize=8)
show(fig, "dynamics_accuracy.png")

# %% [markdown]
# With the simplified per-layer losses of App. B.3 (`loss="b3"`) and one step per layer, the
# first step of each layer from zero *is* the exact engine's step, so the recalls match
# Section 3's:

# %%
emb = popgrad.make_embeddings(d=128, N=16, T=16, seed=0)
b3 = popgrad.population_dynamics(dyn_model, emb, eta=100.0, k=1, loss="b3", n=1024, n_eval=1024)
print("b3, one step per layer:", {k: v for k, v in b3[-1].items() if k.startswith("recall_")})
print("engine (Section 3):    ", popgrad.recall_per_step(emb, **popgrad.three_steps(dyn_model, emb)))

# %% [markdown]
# ## 5. Training: SGD on model C, probed by the memories
#
# `popgrad.train` trains the same two-layer model by SGD (momentum 0.9, weight decay $10^{-4}$)
# on fresh model-C batches, and every `probe_every` steps records the in-context accuracy and
# the recall (9) of $W_O^2$, $W_K^2$, $W_K^1$ against eq. (7), as Figure 3 does. `train_preset`
# gives the paper's settings (App. E: $d = 128$, $T = 256$, batch 512); here the Figure 3
# preset is shrunk to run in seconds on a CPU ($T = 64$, $d = 64$, batch 32, 300 steps, $\eta = 1$),
# so expect the first stage of Figure 3 ($W_O^2$ is written first), not the full head.

# %%
train_runs = []
for seed in range(SEEDS):
    config = popgrad.train_preset("fig3", T=64, cutoff=32, d=64, batch=32, steps=300, eta=1.0, probe_every=30,
                                  seed=seed, device="cpu")
    train_runs.append(popgrad.train(config)["rows"])
probe_steps = [r["step"] for r in train_runs[0]]
curves = {key: [mean_se([run[i][key] for run in train_runs]) for i in range(len(probe_steps))]
          for key in ("acc_in_context", "recall_W_O2", "recall_W_K2", "recall_W_K1")}
for i in (0, len(probe_steps) // 2, len(probe_steps) - 1):
    print(f"step {probe_steps[i]:3d}: " + ", ".join(f"{key} {curves[key][i][0]:.2f} ± {curves[key][i][1]:.2f}"
                                                   for key in curves) + f"  ({SEEDS} seeds)")

fig, ax = plt.subplots(figsize=(5.5, 3.5))
labels = {"acc_in_context": "in-context accuracy", "recall_W_O2": "recall $W_O^2$", "recall_W_K2": "recall $W_K^2$",
          "recall_W_K1": "recall $W_K^1$"}
for key, values in curves.items():
    m, se = np.array([a for a, _ in values]), np.array([b for _, b in values])
    ax.plot(probe_steps, m, marker="o", ms=3, label=labels[key])
    ax.fill_between(probe_steps, m - se, m + se, alpha=0.2)
ax.set(xlabel="SGD step", ylabel="accuracy / recall (9)", ylim=(0, 1.02),
       title=f"Training on model C (fig3 preset, shrunk; ± se, {SEEDS} seeds)")
ax.legend(fontsize=7)
show(fig, "training_probes.png")

# %% [markdown]
# ## Where next
#
# * `popgrad.all_claims()` lists every claim; `popgrad.run_claims(fast=True)` runs them all
#   (as `popgrad claims --fast`), each row with its measured error, tolerance and verdict.
# * `help(popgrad.<name>)` shows each API object's docstring and a runnable example.
# * `popgrad.head_ablation` (the Theorem 3 head with its defects removed), `popgrad.capacity_table`
#   (storage capacity of eq. (3) vs $d$) and `popgrad.scaling_study` (batches needed for $R_1$ vs
#   $d, N, T, K$) cover the rest; each docstring has a runnable example.
# * The CLI (`popgrad recall-table --plot`, `popgrad theorem3`, `popgrad dynamics`, `popgrad train`,
#   `popgrad report`) writes the same results as markdown tables, JSON, CSV and PNGs.

# %%
print("claims registered:", len(popgrad.all_claims()))
print("figures:", ", ".join(sorted(p.name for p in OUT.glob("*.png"))))
