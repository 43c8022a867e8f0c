"""The four data distributions of SPEC §2, defined once for the exact, symbolic and MC paths.

    A  FinitePairs            p(z, y) on [N] x [N]                       (Lemma 1)
    B  FiniteMixture          weighted (x, y) pairs; positional_noise_mixture
                              is the illustrative x = w_E(y) + p_t        (Lemma 2, App. B.1)
    C  BigramTriggerModel     bigram chain with K triggers                (Section 3, App. E)
    D  SecondOccurrenceModel  K = 1, uniform, z_T is the trigger's second occurrence (App. B.3)
    E  NoisyRecallModel       one fixed trigger, its output replaced by a noise token w.p. eps
                              (noisy in-context recall, SPEC §7)

Tokens are integers 0..N-1; positions are code positions 0..T-1 (paper t = i + 1, see
`popgrad.conventions`). Samplers live in `popgrad.numerics.samplers`; exact enumerations here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import torch

from popgrad.corpus import default_counts
from popgrad.errors import PopgradError, choice, memory_budget, positive_int, probability_table, probability_vector


# ----------------------------------------------------------------------------- model A
@dataclass(frozen=True)
class FinitePairs:
    """Model A: joint distribution p(z, y) of input token z and label y, an (N, N) table."""

    p: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "p", probability_table("p", self.p))
        if self.p.shape[0] != self.p.shape[1]:
            raise PopgradError(f"p must be square (N, N), got shape {self.p.shape}")

    @property
    def N(self) -> int:
        return self.p.shape[0]


def random_finite_pairs(N: int, seed: int = 0, concentration: float = 1.0) -> FinitePairs:
    """A random full-support p(z, y) (Dirichlet), for checks at non-trivial distributions."""
    N = positive_int("N", N)
    rng = np.random.default_rng(positive_int("seed", seed, minimum=0))
    p = rng.dirichlet(np.full(N * N, concentration)).reshape(N, N)
    return FinitePairs(p)


# ----------------------------------------------------------------------------- model B
@dataclass(frozen=True)
class FiniteMixture:
    """Model B: finitely many (x_m, y_m) with weights w_m (x: (M, d), y: (M,), weights: (M,))."""

    x: torch.Tensor
    y: torch.Tensor
    weights: torch.Tensor
    N: int

    def __post_init__(self):
        positive_int("N", self.N, minimum=1)
        if self.x.ndim != 2 or self.y.ndim != 1 or self.weights.ndim != 1:
            raise PopgradError("x must be (M, d), y and weights (M,)")
        if not (self.x.shape[0] == self.y.shape[0] == self.weights.shape[0]):
            raise PopgradError("x, y and weights must have the same number of rows M")
        probability_vector("weights", self.weights.detach().cpu().numpy())
        if self.y.min() < 0 or self.y.max() >= self.N:
            raise PopgradError(f"labels y must lie in 0..{self.N - 1}")


def positional_noise_mixture(emb, probs=None) -> FiniteMixture:
    """Example B.1: x = w_E(y) + p_t with (y, t) ~ probs (N, T), uniform by default (eq. (11))."""
    N, T = emb.N, emb.T
    if probs is None:
        probs = np.full((N, T), 1.0 / (N * T))
    probs = probability_table("probs", probs, shape=(N, T))
    ys, ts = np.meshgrid(np.arange(N), np.arange(T), indexing="ij")
    x = emb.W_E[:, ys.ravel()] + emb.P[:, ts.ravel()]  # (d, N*T)
    w = torch.as_tensor(probs.ravel(), dtype=emb.W_E.dtype, device=emb.W_E.device)
    return FiniteMixture(x.T.contiguous(), torch.as_tensor(ys.ravel(), device=emb.W_E.device), w, N)


# ----------------------------------------------------------------------------- model C
@dataclass(frozen=True)
class BigramTriggerModel:
    """Model C (Section 3): a bigram chain whose K trigger tokens are followed by fixed outputs.

    pi_u (N,), pi_b (N, N) rows pi_b(.|i), pi_o (N, N) rows pi_o(.|q), pi_q (N,).
    Random triggers (`triggers is None`): K draws from pi_q without replacement per sequence.
    Fixed triggers: `triggers` is a tuple of K distinct tokens.
    """

    N: int
    T: int
    K: int
    pi_u: np.ndarray
    pi_b: np.ndarray
    pi_o: np.ndarray
    pi_q: np.ndarray | None = None
    triggers: tuple[int, ...] | None = None
    vocab: str | None = field(default=None, compare=False)

    def __post_init__(self):
        N = positive_int("N", self.N, minimum=2)
        positive_int("T", self.T, minimum=2)
        K = positive_int("K", self.K, minimum=0)
        object.__setattr__(self, "pi_u", probability_vector("pi_u", self.pi_u, N))
        object.__setattr__(self, "pi_b", probability_table("pi_b", self.pi_b, (N, N), rows=True))
        object.__setattr__(self, "pi_o", probability_table("pi_o", self.pi_o, (N, N), rows=True))
        if self.triggers is None:
            if self.pi_q is None:
                raise PopgradError("give either pi_q (random triggers) or triggers (fixed)")
            pi_q = probability_vector("pi_q", self.pi_q, N)
            object.__setattr__(self, "pi_q", pi_q)
            if K > np.count_nonzero(pi_q):
                raise PopgradError(f"K={K} random triggers drawn without replacement need at least K "
                                   f"tokens with pi_q > 0; pi_q has {np.count_nonzero(pi_q)} (N={N})")
        else:
            trig = tuple(int(t) for t in self.triggers)
            if len(trig) != K or len(set(trig)) != K or any(t < 0 or t >= N for t in trig):
                raise PopgradError(f"triggers must be {K} distinct tokens in 0..{N - 1}, got {self.triggers}")
            object.__setattr__(self, "triggers", trig)

    @property
    def random_triggers(self) -> bool:
        return self.triggers is None


def bigram_trigger_model(T: int = 256, K: int = 5, triggers: str = "random", outputs: str = "uniform",
                         counts=None) -> BigramTriggerModel:
    """Model C with pi_u, pi_b from character counts (tiny Shakespeare by default).

    triggers: 'random' (pi_q = pi_u, App. E / Figure 9), 'frequent' (the K most frequent tokens),
    'rare' (the 6th..(5+K)th most frequent, as in Figure 4). outputs: 'uniform' or 'bigram'
    (pi_o = pi_b).
    """
    choice("triggers", triggers, ("random", "frequent", "rare"))
    choice("outputs", outputs, ("uniform", "bigram"))
    counts = default_counts() if counts is None else counts
    N = counts.N
    K = positive_int("K", K, minimum=0)
    if K > N:
        raise PopgradError(f"K={K} triggers exceed the vocabulary size N={N}")
    pi_u, pi_b = counts.pi_u, counts.pi_b
    pi_o = np.full((N, N), 1.0 / N) if outputs == "uniform" else pi_b
    if triggers == "random":
        return BigramTriggerModel(N, T, K, pi_u, pi_b, pi_o, pi_q=pi_u, vocab=counts.vocab)
    order = np.argsort(-pi_u, kind="stable")
    start = 0 if triggers == "frequent" else 5
    if start + K > N:
        raise PopgradError(f"K={K} rare triggers need N >= {start + K}")
    return BigramTriggerModel(N, T, K, pi_u, pi_b, pi_o, triggers=tuple(int(i) for i in order[start:start + K]),
                              vocab=counts.vocab)


def uniform_bigram_trigger_model(N: int, T: int, K: int = 1) -> BigramTriggerModel:
    """Model C with every distribution uniform (the setting of App. B.3 before conditioning)."""
    N = positive_int("N", N, minimum=2)
    memory_budget(f"uniform bigram model with N={N}", 2 * N * N + N)
    u = np.full(N, 1.0 / N)
    U = np.full((N, N), 1.0 / N)
    return BigramTriggerModel(N, T, K, u, U, U, pi_q=u)


# ----------------------------------------------------------------------------- model D
@dataclass(frozen=True)
class SecondOccurrenceModel:
    """Model D (App. B.3, SPEC §2 D): K = 1, uniform; z_T is the second occurrence of trigger q.

    q, o i.i.d. uniform on [N]; the first trigger position t_q is T-1 if o = q, else uniform on
    {1..T-2} (paper positions); z_{t_q} = q, z_{t_q+1} = o, z_T = q, all other positions i.i.d.
    uniform on [N] minus {q}; label y = o. In code positions the first trigger sits at
    i_q = t_q - 1 in {0..T-3} (or T-2 when o = q), and the last position is T-1.
    """

    N: int
    T: int

    def __post_init__(self):
        positive_int("N", self.N, minimum=2)
        positive_int("T", self.T, minimum=3)

    def first_trigger_probs(self, o_equals_q: bool) -> np.ndarray:
        """P(i_q = i | o = q or o != q) over code positions i = 0..T-1 (paper t_q = i + 1)."""
        p = np.zeros(self.T)
        if o_equals_q:
            p[self.T - 2] = 1.0
        else:
            p[: self.T - 2] = 1.0 / (self.T - 2)
        return p

    def first_trigger_marginal(self) -> np.ndarray:
        """P(i_q = i) over code positions, averaging over o = q (prob 1/N) and o != q."""
        N = self.N
        return self.first_trigger_probs(True) / N + self.first_trigger_probs(False) * (N - 1) / N

    def enumerate(self, max_sequences: int = 2_000_000):
        """All sequences of model D with their probabilities and labels (exact, float64).

        Returns (z (M, T) int64, prob (M,) float64, y (M,) int64). Sequences are listed once
        per (q, o, i_q), which is a bijection: q = z_T, i_q is the other position of q, o = z_{i_q+1}.
        """
        N, T = self.N, self.T
        n_free = (N - 1) ** (T - 3)
        total = N * (N - 1) * (T - 2) * n_free + N * (N - 1) ** (T - 2)
        if total > max_sequences:
            raise PopgradError(f"model D with N={N}, T={T} has {total} sequences, more than "
                               f"max_sequences={max_sequences}; use the exact engine or Monte-Carlo")
        memory_budget("model D enumeration", total * (T + 3))
        zs, ps, ys = [], [], []
        for q in range(N):
            others = np.array([t for t in range(N) if t != q])
            for o in range(N):
                positions = [T - 2] if o == q else range(T - 2)
                for iq in positions:
                    fixed = {iq: q, iq + 1: o, T - 1: q}
                    free = [i for i in range(T) if i not in fixed]
                    combos = list(itertools.product(range(N - 1), repeat=len(free)))
                    grid = np.array(combos, dtype=np.int64).reshape(len(combos), len(free))
                    z = np.empty((grid.shape[0], T), dtype=np.int64)
                    z[:, free] = others[grid]
                    for i, tok in fixed.items():
                        z[:, i] = tok
                    p_pos = self.first_trigger_probs(o == q)[iq]
                    zs.append(z)
                    ps.append(np.full(z.shape[0], p_pos / (N * N * (N - 1) ** len(free))))
                    ys.append(np.full(z.shape[0], o, dtype=np.int64))
        return np.concatenate(zs), np.concatenate(ps), np.concatenate(ys)


def conditioned_bigram_chain(N: int, T: int):
    """Model D by brute force: the uniform bigram chain with q -> o, conditioned per (q, o).

    For each (q, o) (weight 1/N^2), enumerate all N^T sequences, weight each by the chain
    z_1 ~ U[N], z_t | z_{t-1} ~ U[N] unless z_{t-1} = q (then z_t = o), keep those where q occurs
    exactly twice and the second time at T, and renormalize. Returns a dict
    {(tuple(z), y): probability}. Independent of `SecondOccurrenceModel` (SPEC §2 D's equivalence).
    """
    N = positive_int("N", N, minimum=2)
    T = positive_int("T", T, minimum=3)
    if N ** T > 2_000_000:
        raise PopgradError(f"N^T = {N ** T} sequences is too many for brute force (limit 2e6)")
    seqs = np.array(list(itertools.product(range(N), repeat=T)), dtype=np.int64)  # (N^T, T)
    out: dict = {}
    for q in range(N):
        for o in range(N):
            prev, nxt = seqs[:, :-1], seqs[:, 1:]
            step = np.where(prev == q, (nxt == o).astype(float), 1.0 / N)
            prob = step.prod(axis=1) / N
            count_q = (seqs == q).sum(axis=1)
            keep = (count_q == 2) & (seqs[:, -1] == q) & (prob > 0)
            mass = prob[keep].sum()
            for z, pz in zip(seqs[keep], prob[keep] / mass):
                key = (tuple(int(v) for v in z), o)
                out[key] = out.get(key, 0.0) + pz / (N * N)
    return out


# ----------------------------------------------------------------------------- model E
@dataclass(frozen=True)
class NoisyRecallModel:
    """Model E (SPEC §7, noisy in-context recall): one fixed trigger q, its output poisoned w.p. eps.

    Vocabulary 0..N (vocab_size = N + 1); token N is the noise token. Per sequence an output
    ybar, uniform on [N] minus {q} (default) or on [N] (`ybar_avoids_q=False`, the talk's
    literal law: with ybar = q the text after the first q is q q q ..., about T in-context
    positions against about T/N for any other output, so these 1/N of the sequences carry about
    half of all in-context positions and the q -> q association swamps the statistics). A hidden chain on [N] runs z_1 ~ pi_u, h_{t+1} ~ pi_b(.|h_t) if h_t != q and
    h_{t+1} = ybar after q; the visible token is z_t = h_t, except that a token following a q
    (h_{t-1} = q) is shown as the noise token N with probability eps, independently. So after a
    visible q the next token is ybar w.p. 1 - eps and N w.p. eps (SPEC §7), the noise token never
    follows a non-trigger, and after a noise token the chain continues from ybar (the noise
    replaces ybar in the text: the "poisoned" data of the talk; SPEC §7 leaves this case open).
    Trigger positions: code positions i <= T-2 with z_i = q; in-context ones have q at an
    earlier position too (target z_{i+1}, which is ybar or the noise token).
    """

    N: int
    T: int
    eps: float
    pi_u: np.ndarray
    pi_b: np.ndarray
    q: int = 0
    ybar_avoids_q: bool = True

    def __post_init__(self):
        N = positive_int("N", self.N, minimum=2)
        positive_int("T", self.T, minimum=2)
        eps = float(self.eps)
        if not (0.0 <= eps < 1.0):
            raise PopgradError(f"eps must be in [0, 1), got {self.eps!r}")
        object.__setattr__(self, "eps", eps)
        object.__setattr__(self, "pi_u", probability_vector("pi_u", self.pi_u, N))
        object.__setattr__(self, "pi_b", probability_table("pi_b", self.pi_b, (N, N), rows=True))
        q = positive_int("q", self.q, minimum=0)
        if q >= N:
            raise PopgradError(f"trigger q must be a token in 0..{N - 1}, got {self.q}")
        object.__setattr__(self, "q", q)

    @property
    def outputs(self) -> np.ndarray:
        """The possible outputs ybar (uniform over them)."""
        return np.array([k for k in range(self.N) if not (self.ybar_avoids_q and k == self.q)])

    @property
    def vocab_size(self) -> int:
        """N + 1: the tokens of [N] and the noise token."""
        return self.N + 1

    @property
    def noise(self) -> int:
        """The noise token (code index N)."""
        return self.N

    def enumerate(self, max_rows: int = 2_000_000):
        """Brute force: every (ybar, hidden chain, noise pattern) with its probability (float64).

        Returns (z (M, T) int64 visible tokens, prob (M,), ybar (M,)); a visible sequence may be
        listed several times (different hidden chains), probabilities add. Rows N * N^T * 2^T
        before dropping zero-probability ones: tiny N, T only.
        """
        N, T = self.N, self.T
        rows = N * N ** T * 2 ** T
        if rows > max_rows:
            raise PopgradError(f"model E with N={N}, T={T} has {rows} (ybar, chain, pattern) rows, more than "
                               f"max_rows={max_rows}; use the exact engine (popgrad.theory.noisy_recall)")
        memory_budget("model E enumeration", 3.0 * rows * (T + 2))
        h = np.array(list(itertools.product(range(N), repeat=T)), dtype=np.int64)       # (N^T, T)
        bits = np.array(list(itertools.product((0, 1), repeat=T)), dtype=bool)          # (2^T, T)
        after_q = np.zeros_like(h, dtype=bool)
        after_q[:, 1:] = h[:, :-1] == self.q                                            # (N^T, T)
        zs, ps, ys = [], [], []
        outs = self.outputs
        for y in outs:
            step = np.where(h[:, :-1] == self.q, (h[:, 1:] == y).astype(float), self.pi_b[h[:, :-1], h[:, 1:]])
            p_h = self.pi_u[h[:, 0]] * step.prod(axis=1) / outs.size                           # (N^T,)
            ok = p_h > 0
            hh, aq, ph = h[ok], after_q[ok], p_h[ok]
            inside = ~(bits[None, :, :] & ~aq[:, None, :]).any(-1)                      # (n, 2^T) pattern in after_q
            n_noise = bits.sum(1)[None, :]
            n_out = aq.sum(1)[:, None]
            pw = ph[:, None] * self.eps ** n_noise * (1 - self.eps) ** (n_out - n_noise) * inside
            i, b = np.nonzero(pw > 0)
            z = np.where(bits[b], N, hh[i])
            zs.append(z)
            ps.append(pw[i, b])
            ys.append(np.full(i.size, y, dtype=np.int64))
        return np.concatenate(zs), np.concatenate(ps), np.concatenate(ys)


def noisy_recall_model(N: int, T: int, eps: float, q: int = 0, counts=None, ybar_avoids_q: bool = True) -> NoisyRecallModel:
    """Model E with uniform pi_u, pi_b on [N] (counts=None), or the character counts' pi_u, pi_b."""
    if counts is None:
        N = positive_int("N", N, minimum=2)
        memory_budget(f"model E with N={N}", N * N + N)
        return NoisyRecallModel(N, T, eps, np.full(N, 1.0 / N), np.full((N, N), 1.0 / N), q, ybar_avoids_q)
    return NoisyRecallModel(counts.N, T, eps, counts.pi_u, counts.pi_b, q, ybar_avoids_q)
