"""Documented defaults and presets are the ones the code runs (docs/defaults.md, docs/training.md).

defaults.documented   (a) every row of docs/defaults.md's App. E table (hand-written from Sec. 5 / App. E) equals
                      the TrainConfig of that preset at App. E size (numerics.training.preset_config), and the
                      "(no preset)" row TrainConfig's defaults; every preset has a row;
                      (b) the CPU size stated in docs/training.md (batch, steps, freezing step) is the one the
                      presets use (numerics.training.cpu_size, FULL_SIZE, FIG3_UNFREEZE);
                      (c) every option default in docs/defaults.md's generated tables, and every "(default X)"
                      in an option's help (or a closing "(X)"), equals the parser's default (read in a subprocess:
                      claims may not import the CLI layer); (d) docs/capacity.md's search resolution ("default
                      0.5% of N") is the capacity parser's --resolution
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from popgrad.numerics import presets
from popgrad.numerics import training as trn
from popgrad.registry import Claim, ClaimUnavailable, Measurement, register

ROOT = Path(__file__).resolve().parents[2]
DOC, TRAINING_DOC = ROOT / "docs" / "defaults.md", ROOT / "docs" / "training.md"
MARKER = "<!-- GENERATED"
ALWAYS = 2 ** 62                                   # a freeze step that is never reached (numerics.presets)


def _table(lines: list[str], header_start: str) -> list[dict]:
    """The rows of the markdown table whose header line starts with `header_start`, as dicts."""
    i = next(k for k, ln in enumerate(lines) if ln.startswith(header_start))
    cols = [c.strip() for c in lines[i].strip().strip("|").split("|")]
    rows = []
    for ln in lines[i + 2:]:
        if not ln.startswith("|"):
            break
        rows.append(dict(zip(cols, [c.strip() for c in re.split(r"(?<!\\)\|", ln.strip().strip("|"))])))
    return rows


def value(text: str):
    """A documented value: '—' None, yes/no and true/false bools, comma lists, numbers as float, else the text."""
    t = text.strip().strip("`")
    if t in ("—", "none"):
        return None
    if t in ("yes", "true", "no", "false"):
        return t in ("yes", "true")
    if "," in t and not t.startswith("{"):
        return [value(x) for x in t.split(",")]
    try:
        return float(t)
    except ValueError:
        return t.replace("\\|", "|")


def _norm(v):
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, (list, tuple)):
        return _norm(v[0]) if len(v) == 1 else [_norm(x) for x in v]    # a one-element list shows as its element
    return str(v)


def documented_config(row: dict) -> dict:
    """The TrainConfig fields a row of the App. E table states."""
    out = {k: value(row[k]) for k in ("K", "d", "T", "eta", "momentum", "weight_decay", "batch", "steps")}
    out.update(triggers=row["triggers"], outputs=row["outputs"], loss=row["loss"], W_F=value(row["W_F"]))
    out["embed"], out["scale"] = row["embed/scale"].split("/")
    freeze = []
    if row["freeze"] != "none":
        for part in row["freeze"].split():
            name, until = part.split(":")
            freeze.append((name, float(ALWAYS if until == "always" else until)))
    out["freeze"] = freeze
    return out


def _app_e_errors(lines) -> list[str]:
    bad = []
    rows = _table(lines, "| run | figure |")
    names = [r["run"] for r in rows if r["run"] != "(no preset)"]
    if sorted(names) != sorted(presets.PRESETS):
        bad.append(f"presets without a row or rows without a preset: {sorted(set(names) ^ set(presets.PRESETS))}")
    for r in rows:
        cfg = trn.TrainConfig() if r["run"] == "(no preset)" else trn.preset_config(r["run"])
        for k, want in documented_config(r).items():
            got = [(n, float(s)) for n, s in cfg.freeze] if k == "freeze" else _norm(getattr(cfg, k))
            if got != want:
                bad.append(f"{r['run']}: {k} documented {want!r}, code {got!r}")
    return bad


def _cpu_size_errors() -> list[str]:
    text = " ".join(TRAINING_DOC.read_text().split())
    m = re.search(r"batch (\d+) \(App\. E: (\d+)\) and (\d+) steps \(popgrad's App\. E default: (\d+)\), freezing step "
                  r"(\d+) -> (\d+)", text)
    if m is None:
        return ["docs/training.md no longer states the CPU size of the presets"]
    b, b_full, s, s_full, f_full, f = map(int, m.groups())
    small = trn.cpu_size("fig3")
    got = (small["batch"], presets.FULL_SIZE["batch"], small["steps"], presets.FULL_SIZE["steps"], presets.FIG3_UNFREEZE,
           round(presets.FIG3_UNFREEZE * small["steps"] / presets.FULL_SIZE["steps"]))
    want = (b, b_full, s, s_full, f_full, f)
    return [] if got == want else [f"CPU size documented {want}, code {got}"]


def parser_defaults() -> dict:
    """{command: [{option, default, help}]} from `popgrad.cli.option_defaults` in a subprocess."""
    code = "import json; from popgrad.cli import option_defaults; print(json.dumps(option_defaults()))"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return json.loads(out.stdout)


def _stated_defaults(help_text: str):
    """Numbers or number lists a help text states as '(default X)' / 'default X', or as a closing '(X)' (None when
    it states none; an equation number is written mid-sentence, 'head (7) (default 10)')."""
    m = re.search(r"default:? ([0-9][0-9.,e-]*)(?=[ ;)]|$)", help_text) or re.search(r"\(([0-9][0-9.,e-]*)\)$", help_text)
    return value(m.group(1).rstrip(",.")) if m else None


def _option_errors(lines, actual: dict) -> tuple[list[str], int]:
    bad, n = [], 0
    start = next(i for i, ln in enumerate(lines) if ln.startswith(MARKER))
    documented = {}
    for i, ln in enumerate(lines[start:], start):
        if ln.startswith("### popgrad "):
            documented[ln[len("### popgrad "):].strip()] = {r["option"].strip("`"): r["default"]
                                                             for r in _table(lines[i:], "| option | default |")}
    if sorted(documented) != sorted(actual):
        bad.append(f"commands documented {sorted(documented)}, parsers {sorted(actual)}")
    fields = {f.replace("_", "-"): f for f in trn.TrainConfig.__dataclass_fields__}
    for cmd, opts in actual.items():
        doc = documented.get(cmd, {})
        if sorted(doc) != sorted(o["option"] for o in opts):
            bad.append(f"{cmd}: options documented {sorted(doc)}, parser {sorted(o['option'] for o in opts)}")
        for o in opts:
            n += 1
            if o["option"] in doc and value(doc[o["option"]]) != _norm(o["default"]):
                bad.append(f"{cmd} {o['option']}: documented {doc[o['option']]}, parser {o['default']!r}")
            stated = _stated_defaults(o["help"])
            real = o["default"]
            if real is None and cmd == "train" and o["option"].lstrip("-") in fields:
                real = getattr(trn.TrainConfig(), fields[o["option"].lstrip("-")])
            if stated is not None and real is not None and _norm(real) != stated:
                bad.append(f"{cmd} {o['option']}: help says default {stated}, the command uses {real!r}")
    return bad, n


CAPACITY_DOC = ROOT / "docs" / "capacity.md"


def _capacity_resolution_errors(actual: dict) -> list[str]:
    """docs/capacity.md's stated search resolution ('default 0.5% of N') vs the capacity parser's --resolution."""
    m = re.search(r"default ([0-9.]+) ?% of N", " ".join(CAPACITY_DOC.read_text().split()))
    if m is None:
        return ["docs/capacity.md no longer states the search resolution"]
    want = float(m.group(1)) / 100
    got = next((o["default"] for o in actual.get("capacity", []) if o["option"] == "--resolution"), None)
    return [] if got is not None and abs(got - want) <= 1e-12 else [f"capacity --resolution: docs/capacity.md {want}, "
                                                                     f"parser {got!r}"]


def measure_documented() -> Measurement:
    if not (DOC.exists() and TRAINING_DOC.exists()):
        raise ClaimUnavailable("docs/defaults.md and docs/training.md are not installed: this claim holds the source "
                               "checkout's documentation against the code (run it from a checkout)")
    lines = DOC.read_text().splitlines()
    app_e = _app_e_errors(lines)
    cpu = _cpu_size_errors()
    actual = parser_defaults()
    opts, n = _option_errors(lines, actual)
    bad = app_e + cpu + opts + _capacity_resolution_errors(actual)
    return Measurement(float(len(bad)), 0.0, "exact", details={"mismatches": bad},
                       note=(f"{len(presets.PRESETS)} presets and TrainConfig x 15 App. E settings, the CPU size, "
                             f"{n} option defaults and their help texts: all as documented") if not bad
                       else "; ".join(bad[:4]) + (f" (+{len(bad) - 4} more)" if len(bad) > 4 else ""))


register(Claim(
    id="defaults.documented",
    statement="every documented default and preset value (App. E: d, T, K, eta, momentum 0.9, weight decay 1e-4, "
              "batch 512, loss, W_F, triggers, freezing; the CPU size; every option's default) is the one the code uses",
    where="Sec. 5 (experimental setup), App. E; docs/defaults.md, docs/training.md",
    compared="docs/defaults.md (App. E table by hand; option tables), docs/training.md's CPU size and the options' help "
             "texts, docs/capacity.md's search resolution, parsed, vs numerics.training.preset_config / TrainConfig / cpu_size and the argparse parsers (in a "
             "subprocess); shared: nothing (the documentation is the other side)",
    kind="exact", tolerance="0 mismatches", measure=measure_documented,
    code=("popgrad.numerics.training.preset_config", "popgrad.numerics.training.cpu_size"),
    sides=(("popgrad.numerics.training.preset_config", "popgrad.numerics.training.cpu_size"),
           ("popgrad.claims.defaults.documented_config", "popgrad.claims.defaults.value"))))
