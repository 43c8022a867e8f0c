"""Atomic checkpoints of a training run: parameters, optimizer state, data-stream RNG state, probe rows.

A checkpoint is one file written to a temporary name in the same folder, flushed to disk and
renamed over the previous one (`os.replace`), so a kill at any moment leaves either the old or
the new checkpoint, never a torn one. Resuming restores everything the next step reads (the
trained matrices, SGD's momentum buffers, the generator of the batch stream) and the rows
already probed, so a resumed run ends with exactly the numbers of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from popgrad.errors import PopgradError

FILE = "checkpoint.pt"


def config_fields(cfg) -> dict:
    """The fields of a TrainConfig that define its numbers (device excluded), JSON-like."""
    out = dataclasses.asdict(cfg)
    out.pop("device", None)
    out["freeze"] = [list(f) for f in out["freeze"]]
    return out


def save(folder, state: dict) -> Path:
    """Write `state` to folder/checkpoint.pt atomically; returns the path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path, tmp = folder / FILE, folder / (FILE + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load(folder, cfg) -> dict | None:
    """The checkpoint in `folder` (None when there is none); refuses one of another configuration."""
    path = Path(folder) / FILE
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:                      # a file that is not a checkpoint
        raise PopgradError(f"--resume: cannot read {path}: {exc}") from None
    diff = differing_settings(state.get("config", {}), config_fields(cfg))
    if diff:
        raise PopgradError(f"--resume: {path} was written with other settings; " + "; ".join(diff))
    return state


MISSING = "(not set)"


def differing_settings(theirs: dict, mine: dict) -> list[str]:
    """'name: checkpoint X, this run Y' for every setting (of either side) whose values differ, in field order."""
    names = list(mine) + [k for k in theirs if k not in mine]
    return [f"{k}: checkpoint {theirs.get(k, MISSING)!r}, this run {mine.get(k, MISSING)!r}"
            for k in names if theirs.get(k, MISSING) != mine.get(k, MISSING)]


def capture(run, gen: torch.Generator, next_step: int, rows: list, seconds: float) -> dict:
    """Everything needed to continue `run` at `next_step` (before its batch is drawn)."""
    return {"config": config_fields(run.cfg), "next_step": next_step, "rows": list(rows), "seconds": seconds,
            "params": {k: v.detach().cpu().clone() for k, v in run.params.items()},
            "opt": run.opt.state_dict(), "gen": gen.get_state()}


def restore(run, gen: torch.Generator, state: dict) -> tuple[int, list, float]:
    """Load `state` into `run` and `gen`; returns (next_step, rows, seconds so far)."""
    with torch.no_grad():
        for k, v in run.params.items():
            v.copy_(state["params"][k].to(v))
    run.opt.load_state_dict(state["opt"])
    gen.set_state(state["gen"])
    return state["next_step"], list(state["rows"]), float(state["seconds"])
