"""The verification report: claims run once, joined with the paper_refs index, written as markdown.

`build_report` turns the rows of `popgrad.commands.claims.claim_rows` and the index entries of
`popgrad.refs` into one markdown page: a summary (counts per verdict), one row per claim
(verdict, measured error or fitted rate, tolerance, code link, check node id), the errata
(paper vs correct expression, how it was established), the equation map (entry -> code ->
check -> verdict) and the index consistency problems. Figures come from a small hook list,
`FIGURE_PRODUCERS`: each producer reads the computed rows, or runs another popgrad command
in-process through `run_command` (e.g. `popgrad recall-table --plot`), and writes PNGs; a
producer whose command or module is not there raises `FigureUnavailable` and the report says so
in one line. Add a producer with `register_figure(name, title, producer)`.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from popgrad import cli, refs

ROW_VERDICTS = ("exact", "approx", "erratum", "fail", "error", "not run")


# ----------------------------------------------------------------------------- figures
class FigureUnavailable(Exception):
    """A figure producer cannot run here (its module or function is missing); the message says why."""


@dataclass(frozen=True)
class Figure:
    """One produced (or missing) figure of the report."""

    name: str
    title: str
    paths: tuple[Path, ...] = ()
    missing: str = ""                         # why nothing was produced


# producer(rows, figures_dir, fast) -> a path or a list of paths of written PNGs
Producer = Callable[[Sequence[dict], Path, bool], "Path | Sequence[Path]"]
FIGURE_PRODUCERS: list[tuple[str, str, Producer]] = []


def register_figure(name: str, title: str, producer: Producer) -> None:
    """Add (or replace) a figure producer; the report shows figures in registration order."""
    FIGURE_PRODUCERS[:] = [p for p in FIGURE_PRODUCERS if p[0] != name] + [(name, title, producer)]


def _pyplot():
    import matplotlib  # heavy optional dependency: loaded only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def error_ratio(row: dict) -> float:
    """log10(error / tolerance) of a claim row (<= 0 passes); -16 for a zero error, +inf if not finite."""
    err, tol = row.get("error"), row.get("tolerance")
    if not isinstance(err, (int, float)) or not isinstance(tol, (int, float)) or not math.isfinite(err):
        return math.inf
    if err == 0:
        return -16.0
    return math.log10(err / tol) if tol > 0 else math.inf


def claims_overview_figure(rows: Sequence[dict], fig_dir: Path, fast: bool) -> Path:
    """Claims overview: log10(measured error / tolerance) per claim, coloured by verdict."""
    plt = _pyplot()
    run = [r for r in rows if r["verdict"] not in ("not run",)]
    if not run:
        raise FigureUnavailable("no claim was run")
    colours = {"exact": "tab:green", "approx": "tab:blue", "erratum": "tab:orange", "fail": "tab:red", "error": "tab:red"}
    floor = -8.0                                                   # smaller ratios (and zero errors) drawn at the floor
    raw = [error_ratio(r) for r in run]
    ratios = [min(max(x, floor), 2.0) for x in raw]                # non-finite errors drawn at +2 (fail)
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(run) + 1.4))
    bars = ax.barh(range(len(run)), ratios, color=[colours.get(r["verdict"], "grey") for r in run])
    for bar, x, r in zip(bars, raw, run):
        if x <= floor:
            bar.set_hatch("//")
            ax.text(floor + 0.1, bar.get_y() + bar.get_height() / 2, "error 0" if r.get("error") == 0 else f"<= 1e{floor:.0f}",
                    va="center", fontsize=6)
    ax.axvline(0.0, color="black", lw=1)
    ax.set_yticks(range(len(run)), [r["claim"] for r in run], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"log10(measured error / tolerance)   (left of 0: within tolerance; hatched: <= {floor:.0f})")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()][:4]
    ax.legend(handles, ["exact", "approx", "erratum", "fail/error"], fontsize=7, loc="best")
    ax.set_title("popgrad claims" + (" (--fast)" if fast else ""))
    fig.tight_layout()
    path = fig_dir / "claims_overview.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_command(argv: Sequence[str]) -> None:
    """Run a `popgrad` subcommand in this process (stdout discarded); FigureUnavailable if absent or failing."""
    names = {m.NAME for m in cli._command_modules()}
    if argv[0] not in names:
        raise FigureUnavailable(f"`popgrad {argv[0]}` does not exist (popgrad/commands/ has {sorted(names)})")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(list(argv))
        except SystemExit as exc:
            status = exc.code
    if status not in (0, None):
        last = (err.getvalue().strip().splitlines() or ["no message"])[-1]
        raise FigureUnavailable(f"`popgrad {' '.join(argv)}` exited with {status}: {last}")


def recall_table_figure(rows: Sequence[dict], fig_dir: Path, fast: bool):
    """One-step recall R_1 vs batches, one curve per d (App. E, Figure 9), from `popgrad recall-table --plot`."""
    path = fig_dir / "recall_table.png"
    sizes = ["--dims", "32,128", "--batches", "1,4,16"] if fast else []
    run_command(["recall-table", *sizes, "--seeds", "1", "--plot", str(path)])
    if not path.is_file():
        raise FigureUnavailable(f"`popgrad recall-table --plot {path}` wrote no file")
    return path


def theorem3_figures(rows: Sequence[dict], fig_dir: Path, fast: bool):
    """Heatmaps of the learned Theorem 3 matrices and recall curves, from `popgrad theorem3 --plot DIR`."""
    folder = fig_dir / "theorem3"
    folder.mkdir(exist_ok=True)
    sizes = ["--N", "16", "--T", "8", "--d", "128"] if fast else ["--N", "32", "--T", "16", "--d", "256"]
    run_command(["theorem3", *sizes, "--plot", str(folder)])
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise FigureUnavailable(f"`popgrad theorem3 --plot {folder}` wrote no PNG")
    return paths


register_figure("claims_overview", "Claims: measured error relative to tolerance", claims_overview_figure)
register_figure("recall_table", "One-step recall R_1 (App. E, Figure 9)", recall_table_figure)
register_figure("theorem3", "Theorem 3: learned matrices vs the targets of (7), and the head ablation", theorem3_figures)


def make_figures(rows: Sequence[dict], fig_dir: Path, fast: bool = False) -> list[Figure]:
    """Run every registered producer; a producer that cannot run yields a Figure with `missing` set."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for name, title, producer in FIGURE_PRODUCERS:
        try:
            out = producer(rows, fig_dir, fast)
            paths = (Path(out),) if isinstance(out, (str, os.PathLike)) else tuple(Path(p) for p in out)
            figures.append(Figure(name, title, paths=paths))
        except FigureUnavailable as exc:
            figures.append(Figure(name, title, missing=str(exc)))
        except Exception as exc:  # a broken producer must not lose the report
            figures.append(Figure(name, title, missing=f"producer failed: {type(exc).__name__}: {exc}"))
    return figures


# ----------------------------------------------------------------------------- markdown
def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _link(path_line: tuple[str, int] | None, name: str, out_dir: Path) -> str:
    """`name` linked to path#Lline relative to the report's folder (plain name if unknown)."""
    if path_line is None:
        return f"`{name}` (not found)"
    path, line = path_line
    target = Path(path) if Path(path).is_absolute() else refs.ROOT / path
    rel = Path(os.path.relpath(target, out_dir)).as_posix()
    return f"[`{name.rsplit('.', 1)[-1]}`]({rel}#L{line}) ({path}:{line})"


def _measured(row: dict) -> str:
    if row["verdict"] in ("not run", "error"):
        return row.get("note", "")
    text = f"{row['error']:.2e}" if isinstance(row.get("error"), (int, float)) else str(row.get("error"))
    return text + (f"; rate {row['rate']}" if row.get("rate") else "")


def summary_section(rows: Sequence[dict], entries: Sequence[refs.Entry]) -> str:
    counts = Counter(r["verdict"] for r in rows)
    lines = ["## Summary", "", "| verdict | claims |", "|---|---|"]
    lines += [f"| {v} | {counts[v]} |" for v in ROW_VERDICTS if counts[v] or v in ("exact", "approx", "erratum", "fail")]
    lines += [f"| **total** | {len(rows)} |", ""]
    index = Counter(e.verdict for e in entries)
    lines += ["Index entries by verdict: " + ", ".join(f"{v} {index[v]}" for v in refs.VERDICTS) + f" (total {len(entries)}).", ""]
    return "\n".join(lines)


def claims_section(rows: Sequence[dict], checks_of: dict[str, list[str]], out_dir: Path) -> str:
    lines = ["## Claims", "", "| claim | where | verdict | measured error; rate | tolerance | code | check |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        code = "<br>".join(_link(refs.code_location(n), n, out_dir) for n in r.get("code", ())) or "—"
        tol = f"{r['tolerance']:.1e} ({r['tolerance_text']})" if isinstance(r.get("tolerance"), (int, float)) else r.get("tolerance_text", "")
        checks = "<br>".join(f"`{c}`" for c in checks_of.get(r["claim"], ())) or "—"
        lines.append("| " + " | ".join(_cell(x) for x in (f"`{r['claim']}`", r["where"], f"**{r['verdict']}**",
                                                                _measured(r), tol)) + f" | {code} | {checks} |")
    notes = [f"- `{r['claim']}`: {r['note']}" for r in rows if r.get("note") and r["verdict"] not in ("not run", "error")]
    return "\n".join(lines + ([""] + ["Notes:", ""] + notes if notes else []) + [""])


def errata_section(entries: Sequence[refs.Entry], verdict_of: dict[str, str]) -> str:
    lines = ["## Errata and ambiguities", ""]
    shown = [e for e in entries if e.erratum]
    if not shown:
        return "\n".join(lines + ["No entry of the index records an erratum.", ""])
    for e in shown:
        kind = "erratum" if e.verdict == "erratum" else f"ambiguity / typo (entry verdict: {e.verdict})"
        lines += [f"### {e.id} — {e.where} ({kind})", "",
                  f"- paper: `{e.erratum['paper']}`", f"- correct: `{e.erratum['correct']}`",
                  f"- established by: {e.erratum['how']}"]
        if e.erratum.get("evidence"):
            lines.append(f"- evidence: {e.erratum['evidence']}")
        if e.claims:
            lines.append("- claims: " + ", ".join(f"`{c}` ({verdict_of.get(c, 'not run')})" for c in e.claims))
        lines.append("")
    return "\n".join(lines)


def equation_map_section(entries: Sequence[refs.Entry], verdict_of: dict[str, str], out_dir: Path) -> str:
    lines = ["## Equation map", "", "| entry | where | code | checks | claims (measured verdict) | index verdict |",
             "|---|---|---|---|---|---|"]
    for e in entries:
        code = "<br>".join(_link(refs.code_location(n), n, out_dir) for n in e.code) or "—"
        checks = "<br>".join(f"`{c}`" for c in e.checks) or "—"
        claims = "<br>".join(f"`{c}` ({verdict_of.get(c, 'not run')})" for c in e.claims) or "—"
        lines.append(f"| `{_cell(e.id)}` | {_cell(e.where)} | {code} | {checks} | {claims} | {e.verdict} |")
    return "\n".join(lines + [""])


def consistency_section(problems: dict[str, list[str]] | None, index_error: str = "") -> str:
    lines = ["## Index consistency", ""]
    if index_error:
        return "\n".join(lines + ["The index could not be loaded:", "", "```", index_error, "```", ""])
    found = {k: v for k, v in (problems or {}).items() if v}
    if not found:
        return "\n".join(lines + ["The index, the checks and the claim registry agree (tests/test_paper_refs.py).", ""])
    for kind, items in found.items():
        lines += [f"- {kind.replace('_', ' ')} ({len(items)}):"] + [f"  - `{_cell(i)}`" for i in items]
    return "\n".join(lines + [""])


def figures_section(figures: Sequence[Figure], out_dir: Path) -> str:
    lines = ["## Figures", ""]
    for f in figures:
        if f.missing:
            lines.append(f"- *{f.title}*: not generated — {f.missing}")
            continue
        for p in f.paths:
            title = f.title if len(f.paths) == 1 else f"{f.title} ({Path(p).name})"
            lines += [f"**{title}**", "", f"![{title}]({Path(os.path.relpath(p, out_dir)).as_posix()})", ""]
    return "\n".join(lines + [""])


def _acc(row: dict | None) -> str:
    """'0.123 ± 0.004 (n = 4096)' from an ablation row of `popgrad.numerics.head_ablation.evaluate_heads`."""
    if not row:
        return "(not measured)"
    return f"{row['accuracy']:.3f} ± {row['acc_se']:.3f} (n = {row['n']})"


def theorem3_section(rows: Sequence[dict]) -> str:
    """Theorem 3's assembled head in words, every figure from the claim rows (accuracies with se and n)."""
    by = {r["claim"]: r for r in rows}
    lines = ["## Theorem 3: the assembled head", ""]
    arch = by.get("theorem3.head_architecture")
    if not arch or arch["verdict"] in ("not run", "error"):
        return "\n".join(lines + ["The head claims (`theorem3.head_*`) were not run; see `popgrad theorem3`.", ""])
    d = arch.get("details", {})
    g = lambda a, h: d.get(f"{a} | {h}")
    both = next((v for k, v in d.items() if k.startswith("sec4.2 | all learned, both defects removed")), None)
    learned = by.get("theorem3.head_learned", {})
    recall = learned.get("details", {}).get("recall", {})
    tau = by.get("theorem3.head_tau_line", {}).get("details", {}).get("c2_over_c1", {})
    ratios = by.get("theorem3.wk2_query_position_sum", {}).get("details", {}).get("ratios", {})
    r32 = ratios.get("N=32,T=16")
    text = [
        "N = 32, T = 16, d = 256, beta = 10, exact one-step matrices; accuracy = argmax at the last position of fresh "
        "model-D sequences equals o, ± its standard error sqrt(p(1-p)/n) over independent sequences.",
        "",
        ("- Each one-step matrix is a memory of its target in (7) (recall (9), scored per input: "
         + ", ".join(f"{k} {v:.2f}" for k, v in recall.items()) + "; the margins are thin, see the recall-margin "
         "table of `popgrad theorem3`), " if recall else "- ")
        + f"but the assembled head in the Sec. 4.2 model reaches {_acc(g('sec4.2', 'all three learned'))}, against "
          f"{_acc(g('sec4.2', 'hand-built (7)'))} for the hand-built (7) (chance 1/32).",
        f"- What projection fixes: removing the positional part of W_K^2 (queries span(p_t), keys span(p_t, Phi_1 p_t)) "
        f"repairs W_K^2 when it is the only learned matrix inside (7): {_acc(g('sec4.2', 'learned W_K2 only (others (7))'))} "
        f"-> {_acc(g('sec4.2', 'learned W_K2 only, positions removed: both sides'))}. What it does not fix: W_O^2's tau-line W_V^2 Phi_1 w_E(k) -> w_U(k)"
        + (f" ({tau.get('N=32,T=16', float('nan')):.3f} of the correct line)" if tau else "")
        + f", which makes the trigger a competitor: all three learned with projection give "
          f"{_acc(g('sec4.2', 'all learned, W_K2 positions removed: both sides'))}; removing both defects gives {_acc(both)}.",
        f"- Architecture: all three learned give {_acc(g('B.3.3', 'all three learned'))} in B.3.3 (token-only residual), "
        f"{_acc(g('B.3.2', 'all three learned'))} in B.3.2 and {_acc(g('sec4.2', 'all three learned'))} in Sec. 4.2: the "
        f"failure needs positions in the layer-2 queries and keys (B.3.2 with projection: "
        f"{_acc(g('B.3.2', 'all learned, W_K2 positions removed: both sides'))}).",
    ]
    if r32:
        per = [v[1] for v in ratios.values()]
        text.append(f"- W_K^2's query-position row is exactly the sum of its N query-token rows, so the bias it drives over "
                    f"key positions is N times the mean query-token bias (exact); per query token the ratio is "
                    f"{min(per):.3f} N to {max(per):.3f} N over (N, T) in {', '.join(ratios)} (d = 128, measured). "
                    f"That bias is {r32[0]:.1f} times the token-memory signal at N = 32, T = 16 (coefficients, d = 128).")
    text.append("- Full tables (three architectures, 16384 sequences): `popgrad theorem3`, docs/results/theorem3_cli.md.")
    return "\n".join(lines + text + [""])


def build_report(rows: Sequence[dict], entries: Sequence[refs.Entry], figures: Sequence[Figure], out_dir: Path,
                 problems: dict[str, list[str]] | None = None, checks_of: dict[str, list[str]] | None = None,
                 header: str = "", index_error: str = "") -> str:
    """The whole report as markdown; links are relative to `out_dir` (the folder of the report file)."""
    verdict_of = {r["claim"]: r["verdict"] for r in rows}
    parts = ["# popgrad verification report", "",
             "Claims of Bietti et al., *Birth of a Transformer: A Memory Viewpoint* (NeurIPS 2023), each comparing two "
             "independent computations (see README.md). Generated by `popgrad report`.", ""]
    if header:
        parts += [header, ""]
    parts += [summary_section(rows, entries), theorem3_section(rows), figures_section(figures, out_dir),
              claims_section(rows, checks_of or {}, out_dir), errata_section(entries, verdict_of),
              equation_map_section(entries, verdict_of, out_dir), consistency_section(problems, index_error)]
    return "\n".join(parts)


def checks_by_claim(entries: Sequence[refs.Entry], root=None) -> dict[str, list[str]]:
    """{claim id: check node ids}: the checks that call assert_claim(id), else those cited next to it in the index."""
    found = {k: list(v) for k, v in refs.claims_asserted_by_checks(root).items()}
    for e in entries:
        for c in e.claims:
            found.setdefault(c, list(e.checks))
    return found
