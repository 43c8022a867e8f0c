"""Ablations of the assembled Theorem 3 head in three architectures (Sec. 4.2, B.3.2, B.3.3).

Architectures (eq. (7) convention, query on the left; code positions 0..T-1; no W_F):

    "sec4.2"  Section 4.2, full residual streams (= `induction_head.induction_head_logits`):
              x_t = w_E(z_t) + p_t, layer 1 scores x_t^T W_K^1 x_s, values x_s,
              f_t = Phi_1 sum_s A1_ts x_s, h_t = x_t + f_t; layer 2 queries, keys, values h.
    "B.3.2"   simplified second layer (App. B.3.2): layer 1 as above; layer 2 queries and values
              x_{t,0} = x_t, keys x_{t,1} = f_t (the first layer's output only).
    "B.3.3"   token-only first layer (App. B.3.3): x_t = w_E(z_t) (positions enter only through the
              layer-1 scores p_t^T W_K^1 p_s), values x_s; layer 2 queries/values x_t, keys f_t.

In every architecture out_t = h_t + W_O^2 W_V^2 sum_s A2_ts v_s (h_t = x_t + f_t, the residual
stream) and logits_t = W_U out_t. The softmaxes are exact (not linearized) and causal.

`architecture_logits` is the plain d-space forward pass at every position (the reference);
`last_position` is the fast path used for the ablation tables: every residual vector is written
in the coefficients of C = [W_E, P, Phi_1 W_E, Phi_1 P] (2(N + T) numbers instead of d), the
matrices enter through Grams C^T W C, and layer 2 runs only at the last position, which is all
that model D's accuracy needs. The two agree to float64 rounding (checked).

Defect removals and diagnostics (exact decompositions in the embedding bases: d >= 2N for W_O^2,
d >= N + T for W_K^2):
    project_positions(emb, W_K2, query, key)   W_K^2 with p_t removed on the query side and/or
                                               p_t, Phi_1 p_t on the key side
    w_o2_lines(emb, W_O2)                      W_O^2 = W_U^T (M_1 (W_V^2 W_E)^T + M_2 (W_V^2 Phi_1 W_E)^T)
    without_tau_line(emb, W_O2)                W_O^2 with its tau-line M_2 term removed
    wk2_blocks(emb, W_K2)                      W_K^2 in token/position coordinates (four blocks)
    bias_ratios(emb, W_K2)                     query-position bias vs query-token bias and token signal

Scoring: `evaluate_heads` (accuracy ± sqrt(p(1-p)/n), layer-2 peak), `ablation_table` (the rows of
`ablation_variants`), `recall_gaps` / `group_gap_se` (recall (9) with its margin).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from popgrad.errors import PopgradError, choice, positive_int
from popgrad.memory import memory_scores
from popgrad.numerics import induction_head as ih
from popgrad.numerics.induction_head import without_positions
from popgrad.numerics.samplers import make_generator, sample_model_d

ARCHITECTURES = ("sec4.2", "B.3.2", "B.3.3")
ARCH_LABEL = {"sec4.2": "Sec. 4.2 (full residual streams)",
              "B.3.2": "B.3.2 (layer 2: queries/values x_t, keys f_t)",
              "B.3.3": "B.3.3 (token-only residual; positions only in layer-1 scores)"}


def _causal(T, device):
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


# ----------------------------------------------------------------------------- reference forward passes
def _layer1(emb, z, W_K1, arch):
    """First layer: (x, f), x (B, T, d) the residual input, f (B, T, d) = Phi_1 sum_s A1_ts x_s (eq. (2))."""
    T = z.shape[1]
    tok = emb.W_E.T[z]                                                     # (B, T, d)
    if arch == "B.3.3":
        x = tok
        s1 = (emb.P.T[:T] @ W_K1 @ emb.P[:, :T])[None]                     # (1, T, T) p_t^T W p_s
    else:
        x = tok + emb.P.T[None, :T]
        s1 = x @ W_K1 @ x.transpose(1, 2)                                  # (B, T, T)
    a1 = torch.softmax(s1.masked_fill(~_causal(T, z.device), float("-inf")), dim=-1)
    f = (a1 @ x) @ emb.Phi1.T                                              # (B, T, d)
    return x, f


def architecture_logits(emb, z, W_K1, W_K2, W_O2, arch="sec4.2"):
    """Sec. 4.2 / B.3.2 / B.3.3 two-layer model without W_F: logits (B, T, N) for tokens z (B, T)."""
    choice("arch", arch, ARCHITECTURES)
    T = z.shape[1]
    x, f = _layer1(emb, z, W_K1, arch)
    h = x + f                                                              # (B, T, d)
    q, k, v = (h, h, h) if arch == "sec4.2" else (x, f, x)
    s2 = q @ W_K2 @ k.transpose(1, 2)                                      # (B, T, T)
    a2 = torch.softmax(s2.masked_fill(~_causal(T, z.device), float("-inf")), dim=-1)
    out = h + a2 @ v @ (W_O2 @ emb.W_V2).T                                 # (B, T, d)
    return out @ emb.W_U.T                                                 # (B, T, N)


# ----------------------------------------------------------------------------- fast last-position path
def coefficient_basis(emb):
    """C = [W_E, P, Phi_1 W_E, Phi_1 P] (d, 2m), m = N + T: every residual vector of the head is C c."""
    B = torch.cat([emb.W_E, emb.P], dim=1)                                 # (d, m)
    return torch.cat([B, emb.Phi1 @ B], dim=1)                             # (d, 2m)


@dataclass(frozen=True)
class Layer1:
    """Layer 1 of a batch in the coefficients of `coefficient_basis` (C = [B, Phi_1 B], B = [W_E, P]).

    x_t = B (e_{z_t} + pos e_{N+t}) (pos = False in B.3.3), f_t = Phi_1 B g_t, h_t = x_t + f_t.
    """

    z: torch.Tensor      # (B, T) token indices
    pos: bool            # whether x_t carries p_t
    g: torch.Tensor      # (B, T, m) first-layer output coefficients sum_s A1_ts (e_{z_s} + pos e_{N+s})


def layer1_fast(emb, z, W_K1, arch) -> Layer1:
    """Layer 1 in coefficients: scores gathered from G = B^T W_K^1 B (m, m), B = [W_E, P]; no (B, T, d) arrays."""
    Bsz, T = z.shape
    N, m = emb.N, emb.N + emb.T
    B = torch.cat([emb.W_E, emb.P], dim=1)                                 # (d, m)
    G = B.T @ W_K1 @ B                                                     # (m, m) [query, key]
    t = torch.arange(T, device=z.device)
    if arch == "B.3.3":                                                    # positions only in the scores
        s1 = G[N + t][:, N + t].expand(Bsz, T, T)
    else:                                                                  # (e_z + e_{N+t})^T G (e_z' + e_{N+s})
        s1 = (G[z[:, :, None], z[:, None, :]] + G[z][:, :, N + t] + G[N + t][:, z].transpose(0, 1)
              + G[N + t][:, N + t][None])                                  # (B, T, T)
    a1 = torch.softmax(s1.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=z.device).tril(), float("-inf")), dim=-1)
    g = torch.zeros(Bsz, T, m, dtype=a1.dtype, device=z.device)
    g.scatter_add_(2, z[:, None, :].expand(Bsz, T, T), a1)                 # token part: sum_s A1_ts e_{z_s}
    pos = arch != "B.3.3"
    if pos:
        g[:, :, N:N + T] += a1                                             # position part: sum_s A1_ts e_{N+s}
    return Layer1(z=z, pos=pos, g=g)


@dataclass(frozen=True)
class Layer2Grams:
    """One head's layer-2 matrices in coefficients: K = C^T W_K^2 C, R = W_U W_O^2 W_V^2 C, U = W_U C."""

    K: torch.Tensor      # (2m, 2m)
    R: torch.Tensor      # (N, 2m)
    U: torch.Tensor      # (N, 2m)


def layer2_grams(emb, W_K2, W_O2, basis=None) -> Layer2Grams:
    """The Grams of `Layer2Grams` for W_K^2, W_O^2 (C = `coefficient_basis(emb)` unless given)."""
    C = coefficient_basis(emb) if basis is None else basis                # (d, 2m)
    return Layer2Grams(K=C.T @ W_K2 @ C, R=(emb.W_U @ W_O2) @ (emb.W_V2 @ C), U=emb.W_U @ C)


def _x_part(M, l1: Layer1, t):
    """Rows of M (.., 2m) picked by the one-hot part of x at positions t: M[z_t] + pos M[N+t] -> (B, len(t), ...)."""
    N = l1.g.shape[-1] - l1.z.shape[1]
    out = M[l1.z[:, t]]
    return out + M[N + t][None] if l1.pos else out


def last_position(l1: Layer1, grams: Layer2Grams, arch):
    """Layer 2 at the last position only: (logits (B, N), attention A2_{T,.} (B, T)), in coefficients.

    sec4.2: queries, keys, values h = [x; g]; B.3.2 / B.3.3: queries and values x, keys f = [0; g].
    """
    Bsz, T = l1.z.shape
    m = l1.g.shape[-1]
    N = m - T
    last = torch.tensor([T - 1], device=l1.z.device)
    full = arch == "sec4.2"
    u = _x_part(grams.K, l1, last)[:, 0]                                   # (B, 2m) = x_T^T K
    if full:
        u = u + l1.g[:, -1] @ grams.K[m:]                                  # + f_T^T K
    s2 = torch.einsum("btc,bc->bt", l1.g, u[:, m:])                        # f_s part of the keys
    if full:                                                               # + x_s part: u[z_s] + u[N+s]
        s2 = s2 + u[:, :m].gather(1, l1.z) + (u[:, N:m] if l1.pos else 0.0)
    a2 = torch.softmax(s2, dim=-1)                                         # (B, T) all s <= T
    head = torch.zeros(Bsz, 2 * m, dtype=a2.dtype, device=a2.device)
    head[:, :m].scatter_add_(1, l1.z, a2)                                  # values' x part
    if l1.pos:
        head[:, N:m] += a2
    if full:
        head[:, m:] = torch.einsum("bt,btc->bc", a2, l1.g)                 # values' f part
    resid = _x_part(grams.U.T, l1, last)[:, 0] + l1.g[:, -1] @ grams.U[:, m:].T    # W_U h_T (B, N)
    return resid + head @ grams.R.T, a2


def last_position_logits(emb, z, W_K1, W_K2, W_O2, arch="sec4.2"):
    """Fast path end to end: logits (B, N) at the last position (equals `architecture_logits(...)[:, -1]`)."""
    choice("arch", arch, ARCHITECTURES)
    return last_position(layer1_fast(emb, z, W_K1, arch), layer2_grams(emb, W_K2, W_O2), arch)[0]


# ----------------------------------------------------------------------------- defect removals
def project_positions(emb, W_K2, query=True, key=True):
    """W_K^2 (eq. (7)) with positional directions removed: span{p_t} on the query side, span{p_t, Phi_1 p_t} on the key side."""
    return without_positions(emb, W_K2, query, key)


def _require_rank(emb, m, what):
    if emb.d < m:
        raise PopgradError(f"{what} needs d >= {m} (an exact decomposition in the embedding basis), got d={emb.d}")


def w_o2_lines(emb, W_O2):
    """Eq. (16) structure: (M_1, M_2) (N, N) with W_O^2 = W_U^T M_1 (W_V^2 W_E)^T + W_U^T M_2 (W_V^2 Phi_1 W_E)^T + R.

    Coefficients by least squares in the bases W_U^T (outputs) and [W_V^2 W_E, W_V^2 Phi_1 W_E] (inputs);
    R = 0 for the exact one-step matrix (16). Also returns R's relative norm.
    """
    _require_rank(emb, 2 * emb.N, "the W_O^2 line decomposition")
    In = torch.cat([emb.W_V2 @ emb.W_E, emb.W_V2 @ emb.Phi1 @ emb.W_E], dim=1)   # (d, 2N)
    M = torch.linalg.pinv(emb.W_U.T) @ W_O2 @ torch.linalg.pinv(In).T            # (N, 2N)
    resid = W_O2 - emb.W_U.T @ M @ In.T
    rel = float(torch.linalg.norm(resid) / torch.linalg.norm(W_O2))
    return M[:, :emb.N], M[:, emb.N:], rel


def without_tau_line(emb, W_O2):
    """W_O^2 with its tau-line (W_V^2 Phi_1 w_E(k) -> w_U(k), (16)'s second term) removed: W_U^T M_1 (W_V^2 W_E)^T."""
    M1, _, _ = w_o2_lines(emb, W_O2)
    return emb.W_U.T @ M1 @ (emb.W_V2 @ emb.W_E).T


def wk2_coefficients(emb, W_K2):
    """W_K^2 (eq. (7)) = Q C K^T with queries Q = [W_E, P] (d, N+T), keys K = Phi_1 [W_E, P]; returns (C, rel residual)."""
    _require_rank(emb, emb.N + emb.T, "the W_K^2 block decomposition")
    Q = torch.cat([emb.W_E, emb.P], dim=1)                                 # (d, N+T)
    K = emb.Phi1 @ Q                                                       # (d, N+T)
    C = torch.linalg.pinv(Q) @ W_K2 @ torch.linalg.pinv(K).T               # (N+T, N+T) [query, key]
    resid = W_K2 - Q @ C @ K.T
    return C, float(torch.linalg.norm(resid) / torch.linalg.norm(W_K2))


BLOCKS = ("token-token", "token-position", "position-token", "position-position")   # query-key


def wk2_blocks(emb, W_K2):
    """The four (query, key) blocks of W_K^2: {name: (coefficient block, d x d component)} and the residual."""
    C, rel = wk2_coefficients(emb, W_K2)
    N = emb.N
    Q = {"token": emb.W_E, "position": emb.P}
    K = {"token": emb.Phi1 @ emb.W_E, "position": emb.Phi1 @ emb.P}
    sl = {"token": slice(0, N), "position": slice(N, None)}
    out = {}
    for name in BLOCKS:
        qs, ks = name.split("-")
        c = C[sl[qs], sl[ks]]
        out[name] = (c, Q[qs] @ c @ K[ks].T)
    return out, rel


def block_table(emb, W_K2):
    """Rows: block, coefficient norm, Frobenius norm of the d x d component, share of the squared norms."""
    blocks, rel = wk2_blocks(emb, W_K2)
    sq = {k: float(torch.linalg.norm(v[1])) ** 2 for k, v in blocks.items()}
    tot = sum(sq.values())
    return [{"block (query-key)": k, "coef_norm": float(torch.linalg.norm(blocks[k][0])),
             "norm": math.sqrt(sq[k]), "share": sq[k] / tot} for k in BLOCKS], rel


def bias_ratios(emb, W_K2):
    """Query-position vs query-token bias over key positions, against the token-memory signal (coefficients).

    C[p_T, Phi_1 p_s] (the query-position row at the last position) is the bias over key positions s
    driven by the query position; C[w_E(j), Phi_1 p_s] the one driven by query token j. Biases are
    measured as the spread (max - min over s) of the row; the token-memory signal is the mean
    diagonal C[w_E(j), Phi_1 w_E(j)] minus the mean off-diagonal. Identity (exact for the gradient (17),
    where p_T always enters with w_E(q)): C[p_T, .] = sum_j C[w_E(j), .].
    """
    C, _ = wk2_coefficients(emb, W_K2)
    N, T = emb.N, emb.T
    tt = C[:N, :N]
    diag = torch.diagonal(tt)
    signal = float(diag.mean() - (tt.sum() - diag.sum()) / (N * N - N))
    pos_row = C[N + T - 1, N:]                                             # (T,) query p_T, keys Phi_1 p_s
    tok_rows = C[:N, N:]                                                   # (N, T) query w_E(j)
    spread = lambda r: (r.max(-1).values - r.min(-1).values)
    pos_bias = float(spread(pos_row))
    tok_bias = spread(tok_rows).double()                                   # (N,)
    identity = float(torch.linalg.norm(C[N + T - 1] - C[:N].sum(0)) / torch.linalg.norm(C[N + T - 1]))
    return {"signal": signal, "pos_bias": pos_bias, "pos_over_signal": pos_bias / signal,
            "tok_bias_mean": float(tok_bias.mean()), "tok_bias_se": float(tok_bias.std() / math.sqrt(N)),
            "pos_over_tok": pos_bias / float(tok_bias.mean()), "mean_tok_bias": float(spread(tok_rows.mean(0))),
            "pos_over_mean_tok": pos_bias / float(spread(tok_rows.mean(0))), "identity_rel": identity}


# ----------------------------------------------------------------------------- the ablation table
SIDES = {"query side": (True, False), "key side": (False, True), "both sides": (True, True)}
BOTH_DEFECTS = "all learned, both defects removed (tau-line, W_K2 positions both sides)"


def ablation_variants(emb, learned, beta=10.0):
    """{row label: (W_K1 key, mats)}: the hand-built head (7), swaps, all learned, and defect removals.

    Learned matrices are rescaled after any removal (W_K's to mean target score beta, W_O^2 to 1);
    the W_K1 key ('hand' or 'learned') names the layer-1 matrix so layer 1 is computed once per key.
    """
    hand = ih.hand_built(emb, beta, beta)
    resc = lambda m: ih.rescaled_learned(emb, {**learned, **m}, beta)
    L = resc({})
    K2 = {s: resc({"W_K2": project_positions(emb, learned["W_K2"], *f)})["W_K2"] for s, f in SIDES.items()}
    O2 = resc({"W_O2": without_tau_line(emb, learned["W_O2"])})["W_O2"]
    rows = {
        "hand-built (7)": {**hand},
        "learned W_K1 only (others (7))": {**hand, "W_K1": L["W_K1"]},
        "learned W_K2 only (others (7))": {**hand, "W_K2": L["W_K2"]},
        "learned W_O2 only (others (7))": {**hand, "W_O2": L["W_O2"]},
    }
    for side in SIDES:
        rows[f"learned W_K2 only, positions removed: {side}"] = {**hand, "W_K2": K2[side]}
    rows["all three learned"] = dict(L)
    for side in SIDES:
        rows[f"all learned, W_K2 positions removed: {side}"] = {**L, "W_K2": K2[side]}
    rows["all learned, W_O2 tau-line removed"] = {**L, "W_O2": O2}
    for side in ("query side", "key side"):
        rows[f"all learned, tau-line + W_K2 positions removed: {side}"] = {**L, "W_K2": K2[side], "W_O2": O2}
    rows[BOTH_DEFECTS] = {**L, "W_K2": K2["both sides"], "W_O2": O2}
    return {k: ("hand" if m["W_K1"] is hand["W_K1"] else "learned", m) for k, m in rows.items()}


def stderr(p, n):
    """Binomial standard error sqrt(p(1-p)/n) of an accuracy over n independent sequences."""
    return math.sqrt(max(p * (1.0 - p), 0.0) / n)


@contextmanager
def _one_thread():
    """Run small CPU tensor ops on one thread: intra-op threads only add synchronization at these sizes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate_heads(emb, model, heads, n=16384, seed=0, archs=ARCHITECTURES, batch=4096, progress=None):
    """Accuracy +- se and layer-2 attention-peak rate at the last position of n fresh model-D sequences.

    heads: {label: {"W_K1", "W_K2", "W_O2"}}. Every (architecture, head) is scored on the same n
    sequences (seed), target o; the layer-2 peak counts when argmax_s A2_{T,s} is the output token's
    position i_q + 1. Standard errors sqrt(p(1-p)/n) over the n independent sequences.
    """
    positive_int("head samples", n)
    for a in archs:
        choice("arch", a, ARCHITECTURES)
    W1 = {id(m["W_K1"]): m["W_K1"] for m in heads.values()}               # layer 1 once per distinct W_K^1
    basis = coefficient_basis(emb)
    grams = {r: layer2_grams(emb, m["W_K2"], m["W_O2"], basis) for r, m in heads.items()}
    hits = {(a, r): 0 for a in archs for r in heads}
    peaks = dict(hits)
    gen = make_generator(seed, emb.W_E.device)
    starts = range(0, n, batch)
    for start in (progress(starts) if progress else starts):
        z, o, q, iq = sample_model_d(model, min(batch, n - start), gen)
        with _one_thread():
            _score_batch(emb, z, o, iq, archs, W1, heads, grams, hits, peaks)
    rows = []
    for a in archs:
        for r in heads:
            acc, pk = hits[(a, r)] / n, peaks[(a, r)] / n
            rows.append({"architecture": a, "head": r, "accuracy": acc, "acc_se": stderr(acc, n), "n": n,
                         "chance": 1.0 / emb.N, "peak_on_output": pk, "peak_se": stderr(pk, n)})
    return rows


def _score_batch(emb, z, o, iq, archs, W1, heads, grams, hits, peaks):
    """Add one batch's hits (argmax logits = o) and layer-2 peaks (argmax A2 = i_q + 1) to the counters."""
    for a in archs:
        l1 = {k: layer1_fast(emb, z, W, a) for k, W in W1.items()}
        for r, m in heads.items():
            logits, a2 = last_position(l1[id(m["W_K1"])], grams[r], a)
            hits[(a, r)] += int((logits.argmax(-1) == o).sum())
            peaks[(a, r)] += int((a2.argmax(-1) == iq + 1).sum())


def ablation_table(emb, model, learned, n=16384, seed=0, beta=10.0, archs=ARCHITECTURES, batch=4096, progress=None):
    """The ablation rows of `ablation_variants`, scored by `evaluate_heads` in each architecture."""
    heads = {k: m for k, (_, m) in ablation_variants(emb, learned, beta).items()}
    return evaluate_heads(emb, model, heads, n, seed, archs, batch, progress)


# ----------------------------------------------------------------------------- recall with its margin
def recall_gaps(W, U, V, targets):
    """Eq. (9) with margins: per input i, gap_i = v_{t_i}^T W u_i - max_{j != t_i} v_j^T W u_i, and the best wrong j.

    Recall (ties as misses) = mean(gap > 0). Returns (gaps (n,), best wrong (n,), mean target score).
    """
    S = memory_scores(W, U, V)                                             # (n, m)
    t = torch.as_tensor(targets, dtype=torch.int64, device=S.device)
    rows = torch.arange(S.shape[0], device=S.device)
    right = S[rows, t]
    wrong = S.clone()
    wrong[rows, t] = float("-inf")
    best = wrong.max(dim=1)
    return right - best.values, best.indices, float(right.mean())


def group_gap_se(groups, U, V, targets, best_wrong):
    """Standard error of each input's gap from G group estimates (G, d, d), at the full sample's best wrong j."""
    t = torch.as_tensor(targets, dtype=torch.int64, device=groups.device)
    rows = torch.arange(t.shape[0], device=groups.device)
    g = torch.stack([(lambda S: S[rows, t] - S[rows, best_wrong])(memory_scores(W, U, V)) for W in groups])
    return g.std(dim=0) / math.sqrt(groups.shape[0])                      # (n,)
