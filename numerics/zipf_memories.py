"""One-step memories under Zipf data: the error of W = sum_z q(z) u_{f(z)} e_z^T (SPEC §8).

Cabannes, Dohmatob, Bietti 2024 (`paper/talk_associative_memories.md`, "Scaling laws with finite
capacity"): z ~ p(z) proportional to z^-alpha on [N], y = f(z), n samples; q(z) = the count of z
(one population step of Lemma 1 on the empirical loss: q ~ p), 1{z seen}, or 1{z seen >= s times};
prediction argmax_y u_y^T W e_z; error P(y != f_hat(z)) under p. With n = infinity the schemes are
q = p, q = 1 and q = 1{z among the k most frequent} (the threshold s becomes a rank k).

Token space first: the counts and weights q are token statistics; embeddings are drawn last, only
for the stored tokens S = {q > 0} and their outputs Y = f(S). Scoring is chunked over queries
(never an N x M matrix):

- stored outputs y in Y: the scores u_y^T W e_z, a GEMM per chunk of queries;
- the M - |Y| outputs that no stored token maps to: u_y is independent of W and of e_z, so given
  v = W e_z their scores are i.i.d. N(0, |v|^2 / d); their max is drawn exactly as
  |v| / sqrt(d) * Phi^-1(U^(1/K)) with one uniform U per query (K of them);
- queries: the `exhaustive` most probable stored tokens, each weighted by p(z); the rest of S and
  the unstored tokens are each read on `tail` draws proportional to p (unbiased for their p-mass
  times their error rate). An unstored token has a fresh e_z (it is not in W).

Ties count as misses. The error is a Monte-Carlo estimate over the drawn memory and queries; its
`se` is the sampling error of the query draws (the memory's own randomness shows across seeds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import special

from popgrad.errors import PopgradError, choice, memory_budget, positive_int
from popgrad.rates import power_law_bootstrap

MAPS = ("injective", "mod2")
SCHEMES = ("counts", "seen", "threshold")
CHUNK = 1024


# ----------------------------------------------------------------------------- token statistics
def zipf_probs(N: int, alpha: float) -> np.ndarray:
    """p(z) proportional to (z + 1)^-alpha for z = 0..N-1 (token 0 the most frequent), float64."""
    N = positive_int("N", N)
    if not alpha > 1:
        raise PopgradError(f"alpha must be > 1, got {alpha}")
    w = np.arange(1, N + 1, dtype=np.float64) ** -float(alpha)
    return w / w.sum()


def map_outputs(kind: str, N: int) -> tuple[np.ndarray, int]:
    """The map f and its number of outputs M: injective f(z) = z (M = N) or z mod 2 (M = 2)."""
    choice("map", kind, MAPS)
    z = np.arange(positive_int("N", N))
    return (z, N) if kind == "injective" else (z % 2, 2)


def infinite_memory_error(p: np.ndarray, n) -> np.ndarray:
    """Hutter 2021: error of a memory that stores every seen token, sum_z p(z) (1 - p(z))^n, exactly."""
    n = np.atleast_1d(np.asarray(n, dtype=np.float64))
    return np.exp(n[:, None] * np.log1p(-p)[None, :]) @ p                # (len(n),)


def sample_counts(p: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Counts of each token in n i.i.d. draws from p (a multinomial), int64 (N,)."""
    return rng.multinomial(positive_int("n", n), p)


def scheme_weights(scheme: str, counts: np.ndarray, s: int = 1) -> np.ndarray:
    """q(z) of a memory scheme from the counts: counts, 1{seen}, 1{seen >= s}."""
    choice("scheme", scheme, SCHEMES)
    c = np.asarray(counts, dtype=np.float64)
    if scheme == "counts":
        return c
    return (c >= (1 if scheme == "seen" else positive_int("s", s))).astype(np.float64)


def population_weights(scheme: str, p: np.ndarray, k: int | None = None) -> np.ndarray:
    """q(z) at n = infinity: p (counts), 1 (seen), 1{z among the k most frequent} (threshold)."""
    choice("scheme", scheme, SCHEMES)
    if scheme == "counts":
        return p.copy()
    if scheme == "seen":
        return np.ones_like(p)
    k = positive_int("k", k)
    return (np.arange(p.size) < k).astype(np.float64)


# ----------------------------------------------------------------------------- the error
@dataclass
class OneStepError:
    """Error of one drawn memory: the estimate, its query-sampling se, and what was stored."""

    error: float
    se: float
    stored: int
    outputs: int


def _max_gaussian(scale: torch.Tensor, K: int, gen: torch.Generator) -> torch.Tensor:
    """Max of K i.i.d. N(0, scale^2) per entry (exact in law): scale * Phi^-1(U^(1/K)), U uniform."""
    if K <= 0:
        return torch.full_like(scale, -math.inf)
    u = torch.rand(scale.shape, generator=gen, dtype=torch.float64).clamp_min(1e-300)
    tail = -np.expm1(np.log(u.numpy()) / K)                         # 1 - U^(1/K), accurate for large K
    return scale * torch.as_tensor(-special.ndtri(tail), dtype=scale.dtype)


def memory_error(p: np.ndarray, f: np.ndarray, M: int, q: np.ndarray, d: int, seed: int = 0,
                 exhaustive: int = 1024, tail: int = 1024, dtype=torch.float32) -> OneStepError:
    """SPEC §8: P_{z~p}(argmax_y u_y^T W e_z != f(z)) for W = sum_z q(z) u_{f(z)} e_z^T, N(0, I/d) embeddings.

    p (N,), f (N,) in [M], q (N,) >= 0. See the module docstring for the scoring and the query design."""
    d = positive_int("d", d)
    N = p.size
    if f.shape != (N,) or q.shape != (N,):
        raise PopgradError(f"p, f, q must all have shape ({N},), got {f.shape}, {q.shape}")
    gen = torch.Generator().manual_seed(int(seed))
    rng = np.random.default_rng(int(seed) + 7919)
    S = np.flatnonzero(q > 0)                                             # stored tokens (sorted)
    Y, fS = np.unique(f[S], return_inverse=True)                          # stored outputs, f(S) as rows of U_Y
    memory_budget(f"memory at d={d} with {S.size} stored tokens", d * (S.size + Y.size + 2 * d + CHUNK))
    E = torch.randn((S.size, d), generator=gen, dtype=torch.float64).to(dtype) / math.sqrt(d)     # (|S|, d)
    U = torch.randn((Y.size, d), generator=gen, dtype=torch.float64).to(dtype) / math.sqrt(d)     # (|Y|, d)
    qS = torch.as_tensor(q[S], dtype=dtype)
    W = (U[torch.as_tensor(fS)] * qS[:, None]).T @ E if S.size else torch.zeros((d, d), dtype=dtype)  # (d, d)
    row_of = np.full(M, -1)
    row_of[Y] = np.arange(Y.size)
    K = M - Y.size                                                        # outputs nobody stores

    def wrong(tokens: np.ndarray, e_q: torch.Tensor) -> np.ndarray:
        """Misses of queries `tokens` with embeddings e_q (c, d)."""
        out = []
        for a in range(0, tokens.size, CHUNK):
            z, e = tokens[a:a + CHUNK], e_q[a:a + CHUNK]
            V = e @ W.T                                                   # (c, d): (W e_z)^T
            scores = V @ U.T if Y.size else torch.zeros((z.size, 0), dtype=dtype)   # (c, |Y|)
            rows = torch.as_tensor(row_of[f[z]])
            inside = rows >= 0
            target = torch.where(inside, scores.gather(1, rows.clamp_min(0)[:, None]).squeeze(1)
                                 if Y.size else torch.zeros(z.size, dtype=dtype), torch.zeros(z.size, dtype=dtype))
            if Y.size:
                scores.scatter_(1, rows.clamp_min(0)[:, None],
                                torch.where(inside, torch.tensor(-math.inf, dtype=dtype),
                                            scores.gather(1, rows.clamp_min(0)[:, None]).squeeze(1))[:, None])
            best = scores.amax(dim=1) if Y.size else torch.full((z.size,), -math.inf, dtype=dtype)
            scale = V.double().norm(dim=1) / math.sqrt(d)
            fresh = torch.randn(z.size, generator=gen, dtype=torch.float64) * scale   # target when f(z) unstored
            target = torch.where(inside, target.double(), fresh)
            others = _max_gaussian(scale, K, gen)                        # unstored outputs (K), f(z) among them or not
            others_miss = _max_gaussian(scale, K - 1, gen)
            best = torch.maximum(best.double(), torch.where(inside, others, others_miss))
            out.append((target <= best).numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=bool)

    def embed(tokens: np.ndarray, stored: bool) -> torch.Tensor:
        if stored:
            return E[torch.as_tensor(np.searchsorted(S, tokens))]
        return torch.randn((tokens.size, d), generator=gen, dtype=torch.float64).to(dtype) / math.sqrt(d)

    error, var = 0.0, 0.0
    by_p = S[np.argsort(-p[S], kind="stable")]
    top, rest = by_p[:exhaustive], by_p[exhaustive:]
    if top.size:
        error += float(p[top] @ wrong(top, embed(top, True)))
    unstored = np.setdiff1d(np.arange(N), S, assume_unique=True)
    for group, stored in ((rest, True), (unstored, False)):
        mass = float(p[group].sum())
        if group.size == 0 or mass == 0.0 or tail == 0:
            if mass > 0 and tail == 0:
                error += mass                                             # not read: counted as misses
            continue
        draws = rng.choice(group, size=tail, p=p[group] / mass)
        w = wrong(draws, embed(draws, stored))
        rate = float(w.mean())
        error += mass * rate
        var += mass ** 2 * rate * (1 - rate) / tail
    return OneStepError(error, math.sqrt(var), int(S.size), int(Y.size))


# ----------------------------------------------------------------------------- sweeps
S_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
TUNE_SEED = 10_000                      # the threshold is tuned on memories drawn from this seed on, never reused


def _seed(*parts: int) -> int:
    h = 0
    for x in parts:
        h = (h * 1_000_003 + int(x)) % (2 ** 31 - 1)
    return h


def k_grid(N: int) -> list[int]:
    """Ranks k tried for the n = infinity threshold scheme: round(2^(j/2)) from 2 to N."""
    ks = sorted({min(N, int(round(2 ** (j / 2)))) for j in range(2, 2 * int(math.log2(N)) + 2)})
    return [k for k in ks if k >= 2]


def _error(p, f, M, q, d, seed, exhaustive, tail):
    return memory_error(p, f, M, q, d, seed, exhaustive, tail).error


def tune_threshold(p, f, M, d, weights_of, grid, seed, exhaustive, tail, tune_draws: int = 3) -> int:
    """The grid value (s, or k at n = infinity) with the smallest median error over `tune_draws` tuning
    memories (seeds TUNE_SEED + ..., disjoint from the reported seeds); `weights_of(value, draw)` gives q."""
    best, best_err = grid[0], math.inf
    for v in grid:
        err = np.median([_error(p, f, M, weights_of(v, t), d, _seed(TUNE_SEED, seed, t, v), exhaustive, tail)
                       for t in range(tune_draws)])
        if err < best_err - 1e-12:
            best, best_err = v, err
    return best


def n_sweep(alpha: float, kind: str, ns, d: int, N: int, seeds: int, exhaustive: int = 512, tail: int = 512,
            progress=None) -> list[dict]:
    """Error against n at fixed d for the three schemes (counts, seen, threshold with s tuned), per seed,
    beside the infinite-memory error sum_z p (1 - p)^n (exact)."""
    p = zipf_probs(N, alpha)
    f, M = map_outputs(kind, N)
    rows = []
    for n in ns:
        hutter = float(infinite_memory_error(p, n)[0])
        for scheme in SCHEMES:
            s = 1
            if scheme == "threshold":
                grid = [v for v in S_GRID if v <= max(1, n // 4)] or [1]
                s = tune_threshold(p, f, M, d, lambda v, t: scheme_weights(
                    "threshold", sample_counts(p, n, np.random.default_rng(_seed(TUNE_SEED, n, t))), v),
                    grid, n, exhaustive, tail)
            errs = []
            for seed in range(seeds):
                counts = sample_counts(p, n, np.random.default_rng(_seed(1, n, seed)))
                errs.append(_error(p, f, M, scheme_weights(scheme, counts, s), d, _seed(2, n, seed, alpha * 10),
                                   exhaustive, tail))
            rows.append({"sweep": "n", "alpha": alpha, "map": kind, "scheme": scheme, "n": n, "d": d, "N": N,
                         "s": s, "errors": errs, "error": float(np.mean(errs)),
                         "se": float(np.std(errs, ddof=1) / math.sqrt(seeds)) if seeds > 1 else float("nan"),
                         "infinite_memory": hutter})
            if progress:
                progress(f"alpha={alpha} {kind} n={n} {scheme}: {rows[-1]['error']:.4g}")
    return rows


def d_sweep(alpha: float, kind: str, dims, N: int, seeds: int, exhaustive: int = 1024, tail: int = 1024,
            progress=None) -> list[dict]:
    """Error against d at n = infinity (q = p, q = 1, q = 1{rank < k} with k tuned), per seed."""
    p = zipf_probs(N, alpha)
    f, M = map_outputs(kind, N)
    rows = []
    for d in dims:
        for scheme in SCHEMES:
            k = None
            if scheme == "threshold":
                k = tune_threshold(p, f, M, d, lambda v, t: population_weights("threshold", p, v), k_grid(N),
                                   d, exhaustive, tail)
            q = population_weights(scheme, p, k)
            errs = [_error(p, f, M, q, d, _seed(3, d, seed, alpha * 10), exhaustive, tail) for seed in range(seeds)]
            rows.append({"sweep": "d", "alpha": alpha, "map": kind, "scheme": scheme, "n": "inf", "d": d, "N": N,
                         "k": k, "errors": errs, "error": float(np.mean(errs)),
                         "se": float(np.std(errs, ddof=1) / math.sqrt(seeds)) if seeds > 1 else float("nan")})
            if progress:
                progress(f"alpha={alpha} {kind} d={d} {scheme}: {rows[-1]['error']:.4g}")
    return rows


def theorem_exponent(sweep: str, scheme: str, alpha: float) -> float | None:
    """The informal theorem's exponent (error ~ x^-exponent): (alpha-1)/alpha in n for every scheme;
    in d, (alpha-1)/(2 alpha) for counts, alpha - 1 for the threshold; 'any k' (None) for q = 1{seen}."""
    if sweep == "n":
        return (alpha - 1) / alpha
    return {"counts": (alpha - 1) / (2 * alpha), "threshold": alpha - 1, "seen": None}[scheme]


def fitted_exponents(rows: list[dict], resamples: int = 1000) -> list[dict]:
    """Per (sweep, alpha, map, scheme): the exponent b of error ~ x^-b fitted to the medians of the per-seed
    errors (popgrad.rates.power_law_bootstrap, 95% percentile interval over resampled seeds), over the points
    with a non-zero median, beside the theorem's exponent."""
    out = []
    keys = sorted({(r["sweep"], r["alpha"], r["map"], r["scheme"]) for r in rows}, key=str)
    for sweep, alpha, kind, scheme in keys:
        pts = {(float(r[sweep]),): np.asarray(r["errors"]) for r in rows
               if (r["sweep"], r["alpha"], r["map"], r["scheme"]) == (sweep, alpha, kind, scheme)}
        pts = {k: v for k, v in pts.items() if np.median(v) > 0}
        row = {"sweep": sweep, "alpha": alpha, "map": kind, "scheme": scheme, "points": len(pts),
               "theorem": theorem_exponent(sweep, scheme, alpha)}
        if len(pts) >= 3:
            # a zero error in a resample gives log 0: floor at a tenth of the smallest non-zero error
            floor = 0.1 * min(float(np.min(v[v > 0])) for v in pts.values())
            pts = {k: np.maximum(v, floor) for k, v in pts.items()}
            point, lo, hi, _ = power_law_bootstrap(pts, resamples=resamples)
            row.update(exponent=-float(point[1]), lo=-float(hi[1]), hi=-float(lo[1]))
        out.append(row)
    return out


def mc_z_score(draws, exact: float) -> tuple[float, float, float]:
    """(mean, se, z) of Monte-Carlo draws against an exact value: se = std (ddof 1) / sqrt(n), z = (mean - exact) / se."""
    v = np.asarray(draws, dtype=np.float64)
    se = float(v.std(ddof=1) / math.sqrt(v.size))
    return float(v.mean()), se, float((v.mean() - exact) / se)
