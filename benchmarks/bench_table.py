"""Render a saved `popgrad bench --json` output as the README's performance table.

Run: `python -m popgrad bench --json > benchmarks/results/NAME.json`, then
`python benchmarks/bench_table.py benchmarks/results/NAME.json`. Prints one markdown row per
(batch, threads): sampler and reference tokens/s and the ratio, each as median [min-max] over
the interleaved rounds (and the mean ratio +- its standard error), then the machine line
(cores, load averages, copy bandwidth).
"""

from __future__ import annotations

import argparse
import json


def span(row: dict, key: str, fmt: str) -> str:
    """'median [min-max]' of one measured quantity of a bench row."""
    med, lo, hi = row[key], row[f"{key}_min"], row[f"{key}_max"]
    return f"{med:{fmt}} [{lo:{fmt}}-{hi:{fmt}}]"


def render(data: dict) -> str:
    """The markdown table and machine line of one bench JSON payload."""
    rows = data["rows"]
    ref = {r["batch"]: r for r in rows if r["what"].startswith("reference")}
    lines = ["| batch | threads | block sampler tokens/s | reference tokens/s | ratio: median [min-max] | "
             "ratio: mean +- se | first batch (ms) | share of copy limit |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["what"] != "block sampler":
            continue
        lines.append(f"| {r['batch']} | {r['threads'] or r['device']} | {span(r, 'tokens_per_s', '.3g')} | "
                     f"{span(ref[r['batch']], 'tokens_per_s', '.3g')} | **{r['ratio_vs_reference']:.0f}x** "
                     f"[{r['ratio_min']:.0f}-{r['ratio_max']:.0f}] | {r['ratio_mean']:.0f} +- {r['ratio_se']:.0f} | "
                     f"{r['first_batch_ms']:.0f} | "
                     f"{100 * r['fraction_of_limit']:.1f}% |")
    m = data["machine"]
    bw = ", ".join(f"{k.replace('_', ' ')}: {v / 1e9:.1f} GB/s" for k, v in m["copy_bandwidth_bytes_per_s"].items())
    first = next(r for r in rows if r["what"] == "block sampler")
    lines.append("")
    lines.append(f"{m['cpu_cores']} CPU cores; load average (1, 5, 15 min) "
                 f"{', '.join(f'{x:.1f}' for x in m['load_average_start'])} at start, "
                 f"{', '.join(f'{x:.1f}' for x in m['load_average_end'])} at end; {first['rounds']} rounds; "
                 f"block {first['block']} sequences; copy bandwidth {bw}; "
                 f"{m['output_bytes_per_token']:.2f} output bytes per token; torch {data['meta']['torch']}.")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json_file")
    args = p.parse_args()
    with open(args.json_file) as fh:
        print(render(json.load(fh)))


if __name__ == "__main__":
    main()
