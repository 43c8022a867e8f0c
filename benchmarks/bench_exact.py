"""Benchmark: the exact model-D engine (popgrad.theory.model_d_exact, popgrad.theory.theorem3) vs enumeration.

Prints three markdown tables: engine vs enumeration (steps 1-3) at small (N, T); the engine's
cost as N and T grow (fitted log-log exponents); and the time for every exact quantity at
N = 64, T = 64, d = 128. Run: `python benchmarks/bench_exact.py [--device auto]`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from popgrad.cliutil import markdown_table
from popgrad.data import SecondOccurrenceModel
from popgrad.device import resolve_device
from popgrad.embeddings import make_embeddings
from popgrad.theory import theorem3 as t3


def timed(fn, repeat=1):
    """Best CPU time (process_time; wall time on CUDA) of `repeat` calls in seconds, and the last result.

    CPU time, with one torch thread (see main), is robust to other jobs sharing the machine.
    """
    clock = time.perf_counter if torch.cuda.is_available() else time.process_time
    best, out = float("inf"), None
    for _ in range(repeat):
        start = clock()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, clock() - start)
    return best, out


def engine_vs_enumeration(d=16):
    """Steps 1-3 by the engine and by enumeration + autograd (popgrad.claims.engine references)."""
    from popgrad.claims.engine import reference_step1, reference_step2, reference_step3

    rows = []
    for N, T in ((3, 6), (4, 6), (4, 7), (5, 6), (3, 10), (4, 9)):
        model, emb = SecondOccurrenceModel(N, T), make_embeddings(d, N, T)
        te, steps = timed(lambda: t3.three_steps(model, emb), 3)
        W1, W2, W3 = steps["W_O2"], steps["W_K2"], steps["W_K1"]

        def enum():
            z, p, y = (torch.as_tensor(a) for a in model.enumerate())
            R1 = reference_step1(emb, z, p, y)
            R2 = reference_step2(emb, R1, z, p, y)
            G, Km = t3.step3_readouts(emb, R1, R2)
            return R1, R2, reference_step3(emb, G, Km, z, p, y)
        tn, ref = timed(enum)
        err = max(float((a - b).norm() / b.norm()) for a, b in zip((W1, W2, W3), ref))
        rows.append({"N": N, "T": T, "sequences": len(model.enumerate()[1]), "engine_s": te, "enumeration_s": tn,
                     "speedup": tn / te, "max_rel_err": err})
    return rows


def scaling(device, d=64):
    """Engine time (three steps) over N at T = 32 and over T at N = 32, with fitted exponents."""
    rows, fits = [], {}
    for name, sizes in (("N", [(N, 32) for N in (64, 128, 256, 512)]), ("T", [(32, T) for T in (64, 128, 256, 512)])):
        ts = []
        for N, T in sizes:
            model, emb = SecondOccurrenceModel(N, T), make_embeddings(d, N, T, device=device)
            t, _ = timed(lambda: t3.three_steps(model, emb), 3)
            ts.append(t)
            rows.append({"vary": name, "N": N, "T": T, "d": d, "seconds": t})
        xs = [s[0] if name == "N" else s[1] for s in sizes]
        fits[name] = float(np.polyfit(np.log(xs[1:]), np.log(ts[1:]), 1)[0])   # fit on the larger sizes
    return rows, fits


def everything(device, N=64, T=64, d=128):
    """Every exact quantity at (N, T, d): steps 1-3 (+ idealized), closed form, tau, a_{k,j,i}, A-D, recall."""
    model, emb = SecondOccurrenceModel(N, T), make_embeddings(d, N, T, device=device)
    parts = {}
    parts["step1 (15)"], W1 = timed(lambda: t3.step1_W_O2(model, emb))
    parts["step1 (16) + corrected"], _ = timed(lambda: (t3.step1_W_O2_closed_form(model, emb),
                                                        t3.step1_W_O2_corrected(model, emb)))
    parts["step2 (17)"], W2 = timed(lambda: t3.step2_W_K2(model, emb, W1))
    parts["step3 Lemma 5"], W3 = timed(lambda: t3.step3_W_K1(model, emb, W1, W2))
    parts["step3 idealized"], _ = timed(lambda: t3.step3_W_K1(model, emb, W1, W2, idealized=True))
    parts["tau, a_kji exact rationals"], _ = timed(lambda: (t3.tau(N, T), t3.a_kji_exact(N, T)))
    parts["A, B, C, D"], _ = timed(lambda: t3.abcd_terms(N, T))
    parts["recall (9)"], rec = timed(lambda: t3.recall_per_step(emb, W1, W2, W3))
    rows = [{"quantity": k, "seconds": v} for k, v in parts.items()]
    rows.append({"quantity": "total", "seconds": sum(parts.values())})
    return rows, rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="auto | cpu | cuda (default cpu)")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    torch.set_num_threads(1)
    print(f"device: {device}, torch threads: {torch.get_num_threads()}\n")
    print("### Engine vs enumeration (steps 1-3, d = 16, CPU)\n")
    print(markdown_table(engine_vs_enumeration(), ("N", "T", "sequences", "engine_s", "enumeration_s", "speedup",
                                                   "max_rel_err")))
    rows, fits = scaling(device)
    print("\n### Engine cost (three steps, d = 64, CPU seconds, 1 thread)\n")
    print(markdown_table(rows, ("vary", "N", "T", "d", "seconds")))
    print(f"\nfitted exponents (largest three sizes, CPU seconds): time ~ N^{fits['N']:.2f} (T=32), T^{fits['T']:.2f} (N=32)")
    rows, rec = everything(device)
    print("\n### Every exact quantity at N = 64, T = 64, d = 128\n")
    print(markdown_table(rows, ("quantity", "seconds")))
    print("\nrecall (9) after the three steps: " + ", ".join(f"{k} {v:.3f}" for k, v in rec.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
