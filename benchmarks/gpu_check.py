"""The GPU in one step: every GPU-marked test, the benchmarks on CUDA, the bfloat16 path, one results file.

On a machine with CUDA, `python benchmarks/gpu_check.py` runs, one after the other:

1. every test marked `gpu` in `tests/` and `checks/` (`pytest -m gpu`; skipped tests are counted);
2. the Monte-Carlo benchmark, `popgrad bench --device cuda --json`;
3. the training benchmark, `benchmarks/bench_training.py --device cuda` (lean step vs the paper's
   structure; with `--paper-code PATH` also the paper's public module);
4. the bfloat16 benchmark, `benchmarks/bench_precision.py --device cuda` (matmul rates and the
   float32 / bfloat16 lean and autograd steps);
5. `popgrad train --precision auto --device cuda`, the measured choice on this GPU;

and writes `gpu_check.json` (machine, and each step's command, exit code, seconds and output) and
`gpu_check.md` (the same for reading) into `--out` (default `gpu_check_results/`). It exits 1 if
a step failed, else 0.

Without CUDA it says so, lists the steps it would run, and exits 0 (`--dry-run` lists them on
any machine). `--device cpu --tiny` runs the same steps on the CPU at tiny sizes: a test of
the script itself, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEP_TIMEOUT = 3600


def steps(device: str, tiny: bool, paper_code: str | None) -> list[dict]:
    """The steps to run: {name, argv, what}. `tiny`: the smallest sizes (a test of the script)."""
    py = sys.executable
    tests = ["tests/test_precision_units.py"] if tiny else ["tests", "checks"]
    bench = ["--batch", "4", "--rounds", "1", "--quick", "--T", "16"] if tiny else []
    train_size = ["--batches", "2", "--T", "16", "--d", "8", "--rounds", "1"] if tiny else \
        ["--batches", "64,512", "--rounds", "5"]
    run_size = ["--T", "16", "--d", "8", "--batch", "2", "--steps", "2", "--probe-every", "1", "--cutoff", "4"] if tiny \
        else ["--preset", "fig3", "--steps", "100", "--probe-every", "50"]
    return [
        {"name": "gpu tests", "what": "every test marked gpu (pytest -m gpu)",
         "argv": [py, "-m", "pytest", "-q", "-m", "gpu", "-rs", "-p", "no:cacheprovider", *tests]},
        {"name": "Monte-Carlo benchmark", "what": "block sampler vs per-token reference (popgrad bench)",
         "argv": [py, "-m", "popgrad", "bench", "--device", device, "--json", *bench]},
        {"name": "training benchmark", "what": "lean step vs the paper's structure (and public module)",
         "argv": [py, "benchmarks/bench_training.py", "--device", device, "--threads", "1", *train_size]
         + (["--paper-code", paper_code] if paper_code else [])},
        {"name": "bfloat16 benchmark", "what": "matmul rates and float32 / bfloat16 steps",
         "argv": [py, "benchmarks/bench_precision.py", "--device", device, "--threads", "1", *train_size]},
        {"name": "precision auto", "what": "the measured --precision auto choice at a training run's shapes",
         "argv": [py, "-m", "popgrad", "train", "--device", device, "--precision", "auto", "--json", *run_size]},
    ]


def machine(device: str) -> dict:
    """What ran: python, torch, CUDA device name and capability, CPU model, load average."""
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
            "cuda_available": torch.cuda.is_available(), "cpu_cores": os.cpu_count(),
            "load_average": list(os.getloadavg()), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        from popgrad.numerics.precision import cpu_model

        info["cpu_model"] = cpu_model()
    except ImportError:
        pass
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        info.update(gpu=torch.cuda.get_device_name(0), compute_capability=f"{major}.{minor}",
                    bf16_supported=bool(torch.cuda.is_bf16_supported()), cuda=torch.version.cuda)
    return info


def run_step(step: dict, env: dict) -> dict:
    start = time.perf_counter()
    try:
        done = subprocess.run(step["argv"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT)
        rc, out = done.returncode, done.stdout + (("\n[stderr]\n" + done.stderr) if done.stderr.strip() else "")
    except subprocess.TimeoutExpired as exc:
        rc, out = 124, f"timed out after {STEP_TIMEOUT} s\n{exc.stdout or ''}"
    return {**step, "command": shlex.join(step["argv"]), "rc": rc, "seconds": round(time.perf_counter() - start, 2),
            "output": out}


def markdown(info: dict, results: list[dict]) -> str:
    lines = ["# popgrad GPU check", "", "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), "",
             "| step | exit code | seconds | command |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['rc']} | {r['seconds']} | `{r['command']}` |" for r in results]
    for r in results:
        lines += ["", f"## {r['name']}: {r['what']}", "", f"`{r['command']}` (exit code {r['rc']}, {r['seconds']} s)",
                  "", "```", r["output"].rstrip()[-20000:], "```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="gpu_check_results", help="folder for gpu_check.json and gpu_check.md")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda (default); cpu runs the same steps on the CPU (with --tiny: a test of this script)")
    p.add_argument("--tiny", action="store_true", help="smallest sizes: checks that every step runs, measures nothing")
    p.add_argument("--dry-run", action="store_true", help="list the steps and exit")
    p.add_argument("--paper-code", metavar="PATH", help="a transformer-birth checkout for the training benchmark")
    args = p.parse_args(argv)
    todo = steps(args.device, args.tiny, args.paper_code)
    import torch

    if args.dry_run or (args.device == "cuda" and not torch.cuda.is_available()):
        if not args.dry_run:
            print(f"gpu_check: no CUDA device on this machine (torch {torch.__version__}, "
                  f"torch.cuda.is_available() is False): nothing was run on a GPU.")
        print("Steps it runs on a machine with CUDA (results into "
              f"{Path(args.out) / 'gpu_check.json'} and gpu_check.md):")
        for i, s in enumerate(todo, 1):
            print(f"{i}. {s['name']}: {s['what']}\n   {shlex.join(s['argv'])}")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONPATH": str(ROOT)}
    info = machine(args.device)
    results = []
    for s in todo:
        print(f"gpu_check: {s['name']} ...", file=sys.stderr, flush=True)
        results.append(run_step(s, env))
        print(f"gpu_check: {s['name']}: exit code {results[-1]['rc']}, {results[-1]['seconds']} s", file=sys.stderr)
    (out / "gpu_check.json").write_text(json.dumps({"machine": info, "tiny": args.tiny, "steps": results}, indent=1))
    (out / "gpu_check.md").write_text(markdown(info, results))
    failed = [r["name"] for r in results if r["rc"] != 0]
    print(f"gpu_check: {len(results) - len(failed)} of {len(results)} steps passed"
          + (f"; failed: {', '.join(failed)}" if failed else "") + f"; results in {out}/gpu_check.json and .md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
