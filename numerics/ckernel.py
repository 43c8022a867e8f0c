"""Optional compiled kernels of the model-C sampler: the positions loop of `sample_model_c` and
the first-distinct pass of its trigger draws (`samplers._without_replacement`).

The torch loop in `sample_model_c` runs eight tensor ops per position, each a full pass over
the batch. This module compiles, once per machine, a few dozen lines of C doing the same
arithmetic fused per token, with the machine's C compiler (`cc`), and loads them with ctypes.
They read the same uniforms, row maps and alias tables and write the same tokens: both paths
give identical sequences (tested); the compiled one makes one pass instead of eight, on
torch.get_num_threads() threads (ranges of sequences; the result does not depend on it).

Where no compiler works, or with POPGRAD_SAMPLER_KERNEL=torch, `positions_kernel()` returns None
and the torch code runs. The shared object is cached, keyed by a hash of the source and the
platform, in a directory only this user can write (~/.cache/popgrad-kernels-UID, else the temp
directory).
CPU only (CUDA uses the torch loop).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile

import torch

SOURCE = r"""
#include <pthread.h>
#include <stdint.h>
/* Positions 1..T-1 of model C for a block of B sequences (paper Section 3; see samplers.py).
   z: (T, ldz) int32, row 0 filled; u: (T, B) int32 uniforms in [0, 2^31);
   rowmap: (B*N) int32 offsets 2 r N' of the alias row of token j in sequence b;
   below = thr - 1 and token: interleaved alias tables (AliasTables). Tiles of sequences keep
   their row maps in cache; every token is z_t = token[idx - ((below[idx] - u) >> 31)] with
   idx = rowmap[b N + z_{t-1}] + 2 (u >> shift). Sequences are independent, so `threads`
   threads take contiguous ranges of tiles: the result does not depend on `threads`. */
typedef struct {
    int32_t *z; int64_t ldz; const int32_t *u, *rowmap, *below, *token;
    int64_t T, B, N, b0, b1; int32_t shift;
} job_t;

static void *positions_range(void *arg)
{
    const job_t *j = (const job_t *)arg;
    const int64_t tile = 256;
    for (int64_t b0 = j->b0; b0 < j->b1; b0 += tile) {
        int64_t b1 = b0 + tile < j->b1 ? b0 + tile : j->b1;
        for (int64_t t = 1; t < j->T; t++) {
            const int32_t *zp = j->z + (t - 1) * j->ldz, *ut = j->u + t * j->B;
            int32_t *zt = j->z + t * j->ldz;
            for (int64_t b = b0; b < b1; b++) {
                int32_t uu = ut[b];
                int32_t idx = j->rowmap[b * j->N + zp[b]] + ((uu >> j->shift) << 1);
                idx -= (j->below[idx] - uu) >> 31;
                zt[b] = j->token[idx];
            }
        }
    }
    return 0;
}

void model_c_positions(int32_t *z, int64_t ldz, const int32_t *u, const int32_t *rowmap,
                       const int32_t *below, const int32_t *token, int64_t T, int64_t B,
                       int64_t N, int32_t shift, int64_t threads)
{
    job_t jobs[64];
    pthread_t ids[64];
    int64_t n = threads < 1 ? 1 : (threads > 64 ? 64 : threads);
    if (n > B / 1024) n = B / 1024 > 0 ? B / 1024 : 1;
    int64_t step = (B + n - 1) / n;
    for (int64_t i = 0; i < n; i++) {
        job_t j = {z, ldz, u, rowmap, below, token, T, B, N, i * step, (i + 1) * step < B ? (i + 1) * step : B, shift};
        jobs[i] = j;
    }
    int ok[64] = {0};
    for (int64_t i = 1; i < n; i++)
        ok[i] = pthread_create(&ids[i], 0, positions_range, &jobs[i]) == 0;
    positions_range(&jobs[0]);
    for (int64_t i = 1; i < n; i++) {
        if (ok[i]) pthread_join(ids[i], 0);
        else positions_range(&jobs[i]);                 /* no thread: do its range here */
    }
}

/* First K distinct values, in order, of each column of c (M, B) int64 (tokens < N), written to
   q (B, K) int64 (left at -1 where a column has fewer than K distinct values). */
void first_distinct(const int64_t *c, int64_t *q, int64_t M, int64_t B, int64_t K)
{
    for (int64_t b = 0; b < B; b++) {
        int64_t *row = q + b * K, got = 0;
        for (int64_t i = 0; i < M && got < K; i++) {
            int64_t v = c[i * B + b], seen = 0;
            for (int64_t k = 0; k < got; k++)
                seen |= row[k] == v;
            if (!seen)
                row[got++] = v;
        }
    }
}
"""

_LOADED: dict[str, object] = {}


def _cache_dir() -> str:
    """A directory only this user can write: ~/.cache (or $XDG_CACHE_HOME), else the temp dir,
    else a fresh private temp directory (a shared library is loaded from here)."""
    uid = getattr(os, "getuid", lambda: 0)()
    home_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for base in (home_cache, tempfile.gettempdir()):
        path = os.path.join(base, f"popgrad-kernels-{uid}")
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            st = os.stat(path)
        except OSError:
            continue
        if st.st_uid == uid and not st.st_mode & 0o022:
            return path
    return tempfile.mkdtemp(prefix="popgrad-kernels-")


def _compile(path: str) -> bool:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return False
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
        src, out = os.path.join(tmp, "k.c"), os.path.join(tmp, "k.so")
        with open(src, "w") as fh:
            fh.write(SOURCE)
        try:
            done = subprocess.run([cc, "-O3", "-shared", "-fPIC", "-pthread", "-o", out, src], capture_output=True,
                                  timeout=120)
        except (OSError, subprocess.SubprocessError):
            return False
        if done.returncode != 0 or not os.path.isfile(out):
            return False
        os.replace(out, path)                                               # atomic: safe across processes
    return True


def positions_kernel():
    """The compiled `model_c_positions` (ctypes function), or None (no compiler, or disabled)."""
    if os.environ.get("POPGRAD_SAMPLER_KERNEL", "auto") == "torch":
        return None
    if "fn" in _LOADED:
        return _LOADED["fn"]
    fn = None
    _LOADED["distinct"] = None
    try:
        key = hashlib.sha256(f"{SOURCE}{platform.machine()}{platform.system()}".encode()).hexdigest()[:16]
        path = os.path.join(_cache_dir(), f"model_c_{key}.so")
        if os.path.isfile(path) or _compile(path):
            lib = ctypes.CDLL(path)
            fn = lib.model_c_positions
            fn.restype = None
            fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int32,
                           ctypes.c_int64]
            distinct = lib.first_distinct
            distinct.restype = None
            distinct.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64]
            _LOADED["distinct"] = distinct
    except (OSError, AttributeError):
        fn = None
    _LOADED["fn"] = fn
    return fn


def run_positions(fn, z: torch.Tensor, u: torch.Tensor, rowmap: torch.Tensor, below: torch.Tensor,
                  token: torch.Tensor, N: int, shift: int, threads: int = 1) -> None:
    """Fill rows 1..T-1 of z (T, B) (rows contiguous) in place with the compiled kernel, on
    `threads` threads (ranges of sequences; the result does not depend on it)."""
    T, B = u.shape
    assert z.dtype == u.dtype == rowmap.dtype == below.dtype == token.dtype == torch.int32
    assert z.device.type == "cpu" and z.stride(1) == 1 and u.is_contiguous() and rowmap.is_contiguous()
    assert below.is_contiguous() and token.is_contiguous() and z.shape == (T, B)
    fn(z.data_ptr(), z.stride(0), u.data_ptr(), rowmap.data_ptr(), below.data_ptr(), token.data_ptr(),
       T, B, N, shift, max(1, int(threads)))


def first_distinct(c: torch.Tensor, q: torch.Tensor) -> bool:
    """Fill q (B, K) int64 (preset to -1) with the first K distinct values of each column of c
    (M, B) int64, in order, with the compiled kernel; False (q untouched) when there is none."""
    if positions_kernel() is None or _LOADED.get("distinct") is None:
        return False
    M, B = c.shape
    assert c.dtype == q.dtype == torch.int64 and c.is_contiguous() and q.is_contiguous() and q.shape[0] == B
    _LOADED["distinct"](c.data_ptr(), q.data_ptr(), M, B, q.shape[1])
    return True
