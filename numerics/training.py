"""Training the Sec. 4.2 model by mini-batch SGD on fresh model-C (or model-D) batches (Sec. 5, App. E).

SGD with momentum 0.9 and weight decay 1e-4 (torch.optim.SGD, App. E); each step draws a fresh
batch from `popgrad.numerics.samplers`. Per-matrix freezing schedules: a frozen matrix has
requires_grad = False until its step, so SGD neither moves it nor decays it (as in the paper's
public code). Accuracies and losses are measured on each fresh batch BEFORE it is used for the
update (App. E). Probes every `probe_every` steps (`popgrad.numerics.probes`).

In-context tokens (SPEC §5): model C, code positions t <= T-2 where z_t is a trigger of the
sequence already seen earlier, target z_{t+1}; model D, the last position, target o.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch

from popgrad.data import SecondOccurrenceModel, noisy_recall_model
from popgrad.device import resolve_device, resolve_dtype
from popgrad.embeddings import make_embeddings
from popgrad.errors import PopgradError, choice, memory_budget, positive_float, positive_int
from popgrad.numerics import checkpoint as ckpt
from popgrad.numerics import full_model as fm
from popgrad.numerics.masks import in_context_mask, other_mask  # noqa: F401 (re-exported: claims and tests name them here)
from popgrad.numerics.presets import CPU_SIZE, FULL_SIZE, MAX_STEPS, PRESET_GROUPS, PRESETS  # noqa: F401 (re-exported)
from popgrad.numerics import lean_step as lean
from popgrad.numerics.precision import Precision, autocast, check_precision, resolve_precision, run_precision
from popgrad.numerics import probes, samplers
from popgrad.numerics import transformer as tr
from popgrad.numerics.recall import build_model_c

LOSSES = ("in-context", "all")
DATA = ("C", "D", "E")
KQ = ("W_K1", "W_K2", "W_O2")
MODELS = ("simplified", "full")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Sizes default to App. E (d = 128, batch 512, T = 256, eta = 0.2)."""

    data: str = "C"                 # 'C' (bigram + triggers) or 'D' (second occurrence)
    T: int = 256
    K: int = 5
    triggers: str = "random"        # model C: random (pi_q = pi_u), frequent, rare
    outputs: str = "uniform"        # model C: uniform or bigram (pi_o = pi_b)
    N: int | None = None            # model C: None = tiny Shakespeare (65); else uniform bigrams
    d: int = 128
    batch: int = 512
    steps: int = 1000
    eta: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 1e-4
    loss: str = "in-context"        # 'in-context' (Fig. 3) or 'all' (Fig. 4)
    W_F: bool = False               # train a linear W_F (then the KL probe (10) is reported)
    freeze: tuple = ()              # ((name, until_step), ...); frozen for steps < until_step
    probe_every: int = 10
    seed: int = 0
    dtype: str = "float32"
    precision: str = "float32"      # matmuls: float32, bfloat16 (float32 master weights) or auto (measured); float64 runs: float64
    device: str = "auto"
    scale: str = "none"             # attention logit factor: 'none' (1) or 'sqrt' (1/sqrt(d))
    embed: str = "unit"             # 'unit' (N(0, 1/d), App. B) or 'code' (N(0, 1), public code)
    init: str = "linear"            # trained matrices: nn.Linear-like uniform, or zero
    cutoff: int = 64                # W_K^1 recall split: targets t < cutoff vs later
    onestep_batches: int = 0        # > 0: cosine probes against one-step matrices from this many 32-batches
    eps: float = 0.5                # model E: probability that the trigger's output is the noise token
    layers: int = 2                 # 1: layer 2 removed, W_K^1 and W_O^1 (and W_F) trained (autograd step)
    model: str = "simplified"       # 'simplified' (SPEC §5) or 'full' (App. E, Figs. 10-11: numerics/full_model.py)
    heads: int = 1                  # full model: attention heads per layer (head dimension d / heads)
    mlp: str = "second"             # full model: ReLU MLP (width 4d) in 'none', 'second' or 'both' layers
    norm: str = "pre"               # full model: 'pre' (pre-layer-norm), 'none', or 'post'
    train_embed: bool = True        # full model: train E, P, U (False: frozen at their random init)
    eval_outputs: str | None = None  # model C: also probe in-context accuracy on fresh batches with these outputs

    def validated(self) -> "TrainConfig":
        choice("data", self.data, DATA)
        choice("loss", self.loss, LOSSES)
        choice("scale", self.scale, tr.SCALES)
        choice("embed", self.embed, tr.EMBEDS)
        choice("init", self.init, tr.INITS)
        check_precision(self.precision, self.dtype)
        for n in ("T", "d", "batch", "steps", "probe_every", "cutoff"):
            positive_int(n, getattr(self, n))
        positive_int("K", self.K, minimum=0)
        positive_int("seed", self.seed, minimum=0)
        positive_int("onestep_batches", self.onestep_batches, minimum=0)
        positive_float("eta", self.eta)
        if self.eval_outputs is not None:
            choice("eval_outputs", self.eval_outputs, ("uniform", "bigram"))
            if self.data != "C":
                raise PopgradError("--eval-outputs needs model C (its output distribution pi_o)")
            if self.model != "simplified":
                raise PopgradError("--eval-outputs is available with the simplified model only (--model simplified)")
        positive_float("momentum", self.momentum, allow_zero=True)
        positive_float("weight_decay", self.weight_decay, allow_zero=True)
        for name, cap in (("steps", MAX_STEPS), ("onestep_batches", 10_000)):
            if getattr(self, name) > cap:
                raise PopgradError(f"{name} must be <= {cap}, got {getattr(self, name)}")
        if self.probe_every > self.steps:
            raise PopgradError(f"probe_every must be <= steps ({self.steps}), got {self.probe_every}")
        if self.cutoff > self.T:
            raise PopgradError(f"cutoff must be <= T ({self.T}), got {self.cutoff}")
        if self.momentum >= 1:
            raise PopgradError(f"momentum must be < 1, got {self.momentum}")
        choice("layers", self.layers, (1, 2))
        if self.layers == 1 and (self.data == "D" or self.onestep_batches):
            raise PopgradError("the one-layer model (layers=1) trains on model C without one-step probes (onestep_batches=0)")
        names = trained_names(self)
        for name, until in self.freeze:
            if name not in names:
                raise PopgradError(f"cannot freeze {name!r}: trained matrices are {', '.join(names)}")
            positive_int(f"freeze step of {name}", until, minimum=0)
        if self.model != "simplified":
            self._validated_full()
        elif self.heads != 1:
            raise PopgradError(f"--heads {self.heads}: heads apply to --model full only (the simplified model has one)")
        if self.data == "D":
            if self.N is None or self.N < 2 or self.T < 3:
                raise PopgradError(f"model D needs N >= 2 and T >= 3, got N={self.N}, T={self.T}")
            if self.loss != "in-context" or self.W_F:
                raise PopgradError("model D trains on its in-context token only (--loss in-context, no W_F)")
        if self.data == "E":
            if self.N is None or self.N < 2 or self.T < 3:
                raise PopgradError(f"model E needs N >= 2 and T >= 3, got N={self.N}, T={self.T}")
            if not 0 <= self.eps < 1:
                raise PopgradError(f"eps must be in [0, 1), got {self.eps}")
        return self

    def _validated_full(self) -> None:
        """The full model's options (App. E); W_F and the one-step cosines belong to the simplified model."""
        choice("model", self.model, MODELS)
        fm.check_spec(self.d, self.heads, self.mlp, self.norm)
        if self.W_F or self.onestep_batches:
            raise PopgradError("the full model has its own feed-forward (--mlp): no --W-F or --onestep-batches")
        if self.precision != "float32":
            raise PopgradError("the full model trains in float32 or float64 matmuls only (--precision float32)")


def parse_freeze(text: str) -> tuple:
    """'W_K1:300,W_K2:300' -> (('W_K1', 300), ('W_K2', 300)); 'W_O2' alone means frozen throughout."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, until = part.partition(":")
        try:
            step = int(until) if until else 2 ** 62
        except ValueError:
            raise PopgradError(f"--freeze: expected NAME[:STEP], got {part!r}") from None
        out.append((name.strip(), step))
    return tuple(out)


def trained_names(cfg) -> tuple:
    """The trained matrices: W_K1, W_K2, W_O2 (two layers) or W_K1, W_O1 (one layer), and W_F where the setting has it."""
    return (KQ if cfg.layers == 2 else ("W_K1", "W_O1")) + (("W_F",) if cfg.W_F else ())


# ----------------------------------------------------------------------------- data
def build_data_model(cfg: TrainConfig):
    """Model C (App. E defaults) or model D (App. B.3) of the config."""
    if cfg.data == "D":
        return SecondOccurrenceModel(cfg.N, cfg.T)
    if cfg.data == "E":
        return noisy_recall_model(cfg.N, cfg.T, cfg.eps)
    return build_model_c(N=cfg.N, T=cfg.T, K=cfg.K, triggers=cfg.triggers, outputs=cfg.outputs,
                         uniform=cfg.N is not None and cfg.N != 65)


class BatchStream:
    """Fresh batches (z (B, T) int64, in-context mask (B, T), targets (B, T)) of model C, D or E."""

    def __init__(self, model, cfg: TrainConfig, device, seed: int):
        self.model, self.cfg, self.s = model, cfg, samplers
        self.gen = samplers.make_generator(seed, device)
        self.sampler = samplers.model_c_sampler(model, device) if cfg.data == "C" else None

    def __next__(self):
        B = self.cfg.batch
        if self.cfg.data == "E":                                           # in-context: the trigger seen before
            z, _ = self.s.sample_model_e(self.model, B, self.gen)
            tgt = torch.cat([z[:, 1:], z[:, -1:]], dim=1)                  # last column unused
            return z, in_context_mask(z, torch.full((B, 1), self.model.q, device=z.device)), tgt
        if self.sampler is None:
            z, y, _, _ = self.s.sample_model_d(self.model, B, self.gen)
            tgt = torch.cat([z[:, 1:], y[:, None]], dim=1)                  # (B, T) next token, o at T
            mask = torch.zeros_like(z, dtype=torch.bool)
            mask[:, -1] = True
            return z, mask, tgt
        z, q, _ = self.s.sample_model_c(self.sampler, B, self.gen)
        z = z.long()
        tgt = torch.cat([z[:, 1:], z[:, -1:]], dim=1)                      # last column unused
        return z, in_context_mask(z, q), tgt


# ----------------------------------------------------------------------------- model state
@dataclass
class Run:
    """Everything a training run holds (frozen tables, parameters, optimizer, probes)."""

    cfg: TrainConfig
    emb: object
    tab: tr.FrozenTables
    params: dict
    init: dict
    opt: torch.optim.Optimizer
    model: object
    counterparts: dict = field(default_factory=dict)
    ws: lean.Workspace = field(default_factory=lean.Workspace)
    precision: Precision = Precision("float32", "default")


def memory_check(cfg: TrainConfig) -> float:
    """Refuse up front a run whose step would not fit in memory; returns the estimate in bytes."""
    item = 8 if cfg.dtype == "float64" else 4
    need = tr.memory_bytes(cfg.batch, cfg.T, cfg.d, 65 if cfg.N is None else cfg.N, item)
    need += 8.0 * cfg.steps / cfg.probe_every * 64                          # probe rows
    N = 65 if cfg.N is None else cfg.N
    memory_budget(f"training step with batch={cfg.batch}, T={cfg.T}, d={cfg.d}, N={N} ({cfg.dtype})",
                  need / 8 + 2.0 * N * N + 4.0 * cfg.d * cfg.d)
    return need


def setup(cfg: TrainConfig) -> Run:
    """Embeddings (seed), data model, initial parameters (seed), SGD optimizer, freezing at step 0."""
    cfg = cfg.validated()
    memory_check(cfg)
    dev, dtype = resolve_device(cfg.device), resolve_dtype(cfg.dtype)
    model = build_data_model(cfg)
    emb = make_embeddings(cfg.d, getattr(model, "vocab_size", model.N), cfg.T, seed=cfg.seed, dtype=dtype, device=dev)
    if cfg.model == "full":                                                  # App. E full model (Figs. 10-11)
        if cfg.precision == "bfloat16":
            raise PopgradError("--precision bfloat16 is not available with --model full (its autograd step runs in --dtype)")
        params, init, opt = fm.setup_full(cfg, dev, dtype, model, emb)
        return Run(replace(cfg, device=str(dev), precision=cfg.dtype), emb, tr.frozen_tables(emb, cfg.embed), params,
                   init, opt, model, precision=Precision(cfg.dtype, f"--model full: autograd in {cfg.dtype}"))
    names = trained_names(cfg)
    params = tr.init_params(cfg.d, names, cfg.init, seed=cfg.seed + 1, dtype=dtype, device=dev)
    for p in params.values():
        p.requires_grad_(True)
    init = {k: v.detach().clone() for k, v in params.items()}
    opt = torch.optim.SGD(list(params.values()), lr=cfg.eta, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    recorded = run_precision(cfg.precision, cfg.dtype)
    prec = (Precision(recorded, f"--dtype {cfg.dtype}: {recorded} throughout") if recorded
            else resolve_precision(cfg.precision, dev, cfg=cfg))
    return Run(replace(cfg, device=str(dev), precision=prec.name), emb, tr.frozen_tables(emb, cfg.embed), params, init, opt,
               model, ws=lean.Workspace(low=torch.bfloat16 if prec.autocast else None), precision=prec)


def apply_schedule(run: Run, step: int) -> None:
    """requires_grad of each trained matrix at `step` (frozen while step < its until-step)."""
    until = dict(run.cfg.freeze)
    if run.cfg.model == "full" and not run.cfg.train_embed:                  # frozen embeddings of the full model
        until.update({k: 2 ** 62 for k in ("E", "P", "U")})
    for name, p in run.params.items():
        p.requires_grad_(step >= until.get(name, 0))


def step_loss(run: Run, z, mask, tgt):
    """Loss of one batch and what the probes need: (loss, hits, n_in_context, loss_in_context_sum, logits_all or None)."""
    cfg = run.cfg
    if cfg.loss == "all":
        lg = tr.logits(run.tab, z, run.params, cfg.scale)                  # (B, T, N)
        keep = mask | other_mask(mask, cfg.data)
        per = torch.nn.functional.cross_entropy(lg.flatten(0, 1), tgt.flatten(), reduction="none").view_as(z)
        loss = (per * keep).sum() / keep.sum().clamp(min=1)
        hits = ((lg.argmax(-1) == tgt) & mask).sum()
        return loss, hits, mask.sum(), (per * mask).sum(), (lg, per)
    pos, valid = tr.query_positions(mask)                                   # (B, m)
    if pos.shape[1] <= z.shape[1] // 2:                                     # few queries: layer 2 at those only
        lg = tr.logits(run.tab, z, run.params, cfg.scale, pos=pos)         # (B, m, N)
        t = tgt.gather(1, pos)                                              # (B, m)
    else:                                                                   # many: the full forward is cheaper
        lg, t, valid = tr.logits(run.tab, z, run.params, cfg.scale), tgt, mask
    per = torch.nn.functional.cross_entropy(lg.flatten(0, 1), t.flatten(), reduction="none").view_as(t)
    n = valid.sum()
    loss = (per * valid).sum() / n.clamp(min=1)
    hits = ((lg.argmax(-1) == t) & valid).sum()
    return loss, hits, n, (per * valid).sum(), None


def sgd_step(run: Run, z, mask, tgt, probe: bool) -> dict:
    """Loss, counts and gradients of one batch by the lean step (`popgrad.numerics.lean_step`); in
    bfloat16 its matmuls take bfloat16 inputs (the run's Workspace), everything else stays float32.
    The one-layer model takes the autograd step (`autocast_step`), the full model its own autograd step."""
    if run.cfg.model == "full":                                              # autograd (numerics/full_model.py)
        return fm.full_step(run, z, mask, tgt, probe)
    if run.cfg.layers == 1:
        return autocast_step(run, z, mask, tgt)
    keep = None if run.cfg.loss == "in-context" else mask | other_mask(mask, run.cfg.data)
    return lean.lean_step(run.tab, z, mask, tgt, run.params, run.cfg.scale, run.ws, keep=keep,
                          want_per=probe and keep is not None)


def autocast_step(run: Run, z, mask, tgt) -> dict:
    """`sgd_step` by autograd (the reference of the lean step), in bfloat16 runs under torch.autocast
    with float32 master weights:
    the logits come out of bfloat16 GEMMs, the cross-entropy and its reductions run in float32
    (autocast's float32 list), and the gradients land on the float32 parameters."""
    with autocast(run.precision, run.tab.E.device):
        loss, hits, n, lsum, full = step_loss(run, z, mask, tgt)
    n_loss = (mask | other_mask(mask, run.cfg.data)).sum() if run.cfg.loss == "all" else n
    trained = [(k, p) for k, p in run.params.items() if p.requires_grad]
    grads = dict(zip([k for k, _ in trained], torch.autograd.grad(loss, [p for _, p in trained]))) if trained else {}
    per = None if full is None else full[1].detach()
    return {"loss": float(loss.detach()) * max(int(n_loss), 1), "n_loss": int(n_loss), "hits": int(hits), "n": int(n),
            "ctx_sum": lsum.detach(), "grads": grads, "per": per}


def train(cfg: TrainConfig, callback=None, run: Run | None = None, checkpoint_dir=None, checkpoint_every: int = 0) -> dict:
    """Train; returns {'config', 'rows' (one per probe step), 'interrupted', 'seconds', 'params'}.

    Ctrl-C (KeyboardInterrupt) stops the loop and returns the rows collected so far.
    `callback(step, row)` is called after every probe (progress bars). With `checkpoint_dir`,
    the run continues from the checkpoint found there (same configuration) and writes one
    atomically every `checkpoint_every` steps and at the end (`popgrad.numerics.checkpoint`).
    """
    run = setup(cfg) if run is None else run
    cfg = run.cfg
    if cfg.onestep_batches:
        run.counterparts = probes.one_step_counterparts(run)
    stream = BatchStream(run.model, cfg, run.tab.E.device, seed=cfg.seed + 2)
    rows, first, before = [], 0, 0.0
    if checkpoint_dir is not None:
        state = ckpt.load(checkpoint_dir, cfg)
        if state is not None:
            first, rows, before = ckpt.restore(run, stream.gen, state)
    start, interrupted = time.perf_counter(), False

    def elapsed():
        return before + time.perf_counter() - start
    try:
        for step in range(first, cfg.steps + 1):
            z, mask, tgt = next(stream)
            apply_schedule(run, step)
            probe = step % cfg.probe_every == 0 or step == cfg.steps
            out = sgd_step(run, z, mask, tgt, probe)
            if probe:
                row = probes.probe_row(run, step, z, mask, tgt, out["loss"] / max(out["n_loss"], 1), out["hits"],
                                       out["n"], out["ctx_sum"], None if out["per"] is None else (None, out["per"]))
                if cfg.eval_outputs is not None:
                    row.update(eval_accuracy(run, step))
                rows.append(row)
                if callback is not None:
                    callback(step, row)
            if step == cfg.steps:
                if checkpoint_dir is not None:
                    ckpt.save(checkpoint_dir, ckpt.capture(run, stream.gen, step + 1, rows, elapsed()))
                break
            if out["grads"]:
                run.opt.zero_grad(set_to_none=True)
                for name, g in out["grads"].items():
                    run.params[name].grad = g
                run.opt.step()
            if checkpoint_dir is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
                ckpt.save(checkpoint_dir, ckpt.capture(run, stream.gen, step + 1, rows, elapsed()))
    except KeyboardInterrupt:
        interrupted = True
    return {"config": cfg, "rows": rows, "interrupted": interrupted,
            "seconds": elapsed(), "params": {k: v.detach() for k, v in run.params.items()}}


# ----------------------------------------------------------------------------- presets (App. E, numerics/presets.py)
def preset_config(name: str, **overrides) -> TrainConfig:
    """The TrainConfig of a preset (App. E sizes), with `overrides` applied."""
    choice("preset", name, tuple(PRESETS))
    return TrainConfig(**{**FULL_SIZE, **PRESETS[name], **overrides}).validated()


def cpu_size(name: str) -> dict:
    """The shrunk batch and steps a preset uses on the CPU."""
    return CPU_SIZE.get(name, CPU_SIZE["fig3"])


# ----------------------------------------------------------------------------- evaluation on another pi_o (Fig. 4 center)
EVAL_SEED = 1_000_003          # eval batches: seed EVAL_SEED * (step + 1) + seed, so a resumed run sees the same ones


def eval_model(cfg: TrainConfig):
    """Model C of `cfg` with its outputs replaced by `cfg.eval_outputs` (same N, T, K, triggers)."""
    return build_data_model(replace(cfg, outputs=cfg.eval_outputs))


def eval_accuracy(run: Run, step: int) -> dict:
    """Figure 4 (center): in-context accuracy of the current weights on one fresh batch of model C
    with outputs `eval_outputs` ({'acc_eval', 'acc_eval_se' (binomial), 'n_eval'}), no update."""
    cfg = run.cfg
    model = getattr(run, "_eval_model", None)
    if model is None:
        model = run._eval_model = eval_model(cfg)
    z, mask, tgt = next(BatchStream(model, cfg, run.tab.E.device, seed=EVAL_SEED * (step + 1) + cfg.seed))
    with torch.no_grad():
        lg = tr.logits(run.tab, z, {k: v.detach() for k, v in run.params.items()}, cfg.scale)   # (B, T, N)
    n = int(mask.sum())
    acc = int(((lg.argmax(-1) == tgt) & mask).sum()) / n if n else float("nan")
    return {"acc_eval": acc, "acc_eval_se": probes.binomial_se(acc, n), "n_eval": n}
