"""Resuming a training run refuses a checkpoint written with other settings.

training.resume_refuses_mismatch   checkpoint.load, for a checkpoint of configuration c0 and a run of c0 with
                                   one setting changed (every field of TrainConfig in turn, and three at once), or
                                   a setting present on one side only (both directions),
                                   raises one line (PopgradError, exit 2 in the CLI) naming exactly the changed
                                   settings; the same configuration on another device is accepted
"""

from __future__ import annotations

import dataclasses
import tempfile

from popgrad.errors import PopgradError
from popgrad.numerics import checkpoint as ckpt
from popgrad.numerics.training import TrainConfig
from popgrad.registry import Claim, Measurement, register

BASE = TrainConfig(T=32, d=16, batch=8, steps=8, probe_every=4, cutoff=8, K=3, device="cpu", freeze=(("W_K1", 3),))


def changed(value):
    """A different value of the same kind (the checkpoint compares values; validation is not needed)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "-other"
    if value is None:
        return 7
    return tuple(value) + (("W_K2", 5),)


def changed_settings(c0: TrainConfig, c1: TrainConfig) -> list[str]:
    """The reference: the names of the fields (device excluded) whose values differ, by direct comparison."""
    return [f.name for f in dataclasses.fields(c0) if f.name != "device" and getattr(c0, f.name) != getattr(c1, f.name)]


def _refusal(folder, cfg) -> str | None:
    try:
        ckpt.load(folder, cfg)
    except PopgradError as exc:
        return str(exc)
    return None


EXTRA = "a_setting_of_another_version"


def one_sided(tmp, names) -> list[str]:
    """Settings present on one side only: a checkpoint with a key this TrainConfig lacks, and one lacking a key
    this TrainConfig has (every field in turn), must each be refused naming exactly that key."""
    bad, base = [], ckpt.config_fields(BASE)
    cases = [({**base, EXTRA: 3}, EXTRA)] + [({k: v for k, v in base.items() if k != n}, n) for n in names]
    for saved, key in cases:
        want = sorted(set(saved) ^ set(base))                            # the reference: keys on one side only
        ckpt.save(tmp, {"config": saved})
        msg = _refusal(tmp, BASE)
        if msg is None:
            bad.append(f"checkpoint {'with' if key == EXTRA else 'without'} {key!r} accepted")
            continue
        named = sorted(k for k in set(saved) | set(base) if f"; {k}: " in msg)
        if named != want or "\n" in msg:
            bad.append(f"one-sided {want}, message names {named}")
    ckpt.save(tmp, {"config": base})
    return bad


def measure_resume_refuses_mismatch() -> Measurement:
    bad = []
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "device"]
    with tempfile.TemporaryDirectory(prefix="popgrad-claim-ckpt-") as tmp:
        ckpt.save(tmp, {"config": ckpt.config_fields(BASE)})
        if _refusal(tmp, dataclasses.replace(BASE, device="cuda")) is not None:
            bad.append("the same settings on another device were refused")
        variants = [dataclasses.replace(BASE, **{n: changed(getattr(BASE, n))}) for n in names]
        variants.append(dataclasses.replace(BASE, eta=0.5, weight_decay=0.0, loss="all"))
        for cfg in variants:
            want = changed_settings(BASE, cfg)
            msg = _refusal(tmp, cfg)
            if msg is None:
                bad.append(f"{want} accepted")
                continue
            named = [n for n in names if f"; {n}: " in msg]
            if named != want or "\n" in msg:
                bad.append(f"changed {want}, message names {named}")
        bad += one_sided(tmp, names)
    return Measurement(float(len(bad)), 0.0, "exact", details={"failures": bad},
                       note=f"{len(names)} settings changed one at a time and 3 at once, a checkpoint with a setting this "
                            f"run lacks and checkpoints lacking each setting: each refused in one line naming "
                            f"exactly the differing settings; another device accepted" if not bad else "; ".join(bad[:3]))


register(Claim(
    id="training.resume_refuses_mismatch",
    statement="resuming a training run from a checkpoint written with other settings (or a setting present on one "
              "side only) is refused in one line naming every differing setting (device excepted)",
    where="App. E training runs (popgrad train --resume): a resumed run must continue the same run",
    compared="numerics.checkpoint.load on a saved configuration vs a field-by-field comparison of the two "
             "TrainConfigs; shared: the configurations",
    kind="exact", tolerance="0 settings accepted or misnamed", measure=measure_resume_refuses_mismatch,
    code=("popgrad.numerics.checkpoint.load", "popgrad.numerics.checkpoint.save"),
    sides=(("popgrad.numerics.checkpoint.load",), ("popgrad.claims.checkpoint.changed_settings",))))
