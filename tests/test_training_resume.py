"""Test checkpoints and --resume: a killed run continued from its checkpoint ends bit-identical."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from popgrad.cli import main
from popgrad.numerics import checkpoint as ckpt
from popgrad.numerics import training as trn

ROOT = Path(__file__).resolve().parents[1]


def cfg(**over):
    return trn.TrainConfig(**{**dict(T=32, d=16, batch=8, steps=24, probe_every=4, device="cpu", cutoff=8, K=3,
                                     embed="code", scale="sqrt", freeze=(("W_K1", 6),)), **over})


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    """Test that stopping at step 13 and resuming from the step-10 checkpoint gives the same rows and weights."""
    full = trn.train(cfg())

    def stop(step, row):
        if step >= 12:
            raise KeyboardInterrupt
    part = trn.train(cfg(), callback=stop, checkpoint_dir=tmp_path, checkpoint_every=5)
    assert part["interrupted"] and torch.load(tmp_path / ckpt.FILE, weights_only=False)["next_step"] == 10
    resumed = trn.train(cfg(), checkpoint_dir=tmp_path, checkpoint_every=5)
    assert resumed["rows"] == full["rows"]
    for k, v in full["params"].items():
        assert torch.equal(v, resumed["params"][k])
    again = trn.train(cfg(), checkpoint_dir=tmp_path, checkpoint_every=5)     # finished: read back, no training
    assert again["rows"] == full["rows"]


def test_resume_refuses_another_configuration(tmp_path, capsys):
    """Test that --resume with a checkpoint of another configuration is one line, exit 2."""
    trn.train(cfg(steps=8), checkpoint_dir=tmp_path / "custom-seed0", checkpoint_every=4)
    argv = ["train", "--T", "32", "--d", "16", "--batch", "8", "--steps", "8", "--probe-every", "4", "--device", "cpu",
            "--cutoff", "8", "--K", "3", "--embed", "code", "--scale", "sqrt", "--eta", "0.3", "--resume", str(tmp_path)]
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "eta" in err


def test_cli_resume_after_sigkill(tmp_path):
    """Test that `popgrad train --checkpoint` killed by SIGKILL and rerun with --resume prints an uninterrupted run's rows."""
    base = [sys.executable, "-m", "popgrad", "train", "--T", "32", "--d", "16", "--batch", "16", "--steps", "160",
            "--probe-every", "40", "--device", "cpu", "--cutoff", "8", "--K", "3", "--threads", "1", "--json",
            "--checkpoint-every", "10"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    ref = json.loads(subprocess.run(base, capture_output=True, text=True, check=True, cwd=ROOT, env=env).stdout)
    folder = tmp_path / "ck"
    proc = subprocess.Popen(base + ["--checkpoint", str(folder)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = folder / "custom-seed0" / ckpt.FILE
    try:
        while proc.poll() is None:
            if path.exists() and torch.load(path, weights_only=False)["next_step"] >= 40:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        proc.wait()
    state = torch.load(path, weights_only=False)
    out = json.loads(subprocess.run(base + ["--resume", str(folder)], capture_output=True, text=True, check=True,
                                    cwd=ROOT, env=env).stdout)
    assert out["rows"] == ref["rows"] and out["per_seed"] == ref["per_seed"]
    assert proc.returncode == -signal.SIGKILL or state["next_step"] == 161   # killed, or it had finished


def test_resume_names_every_differing_setting(tmp_path, capsys):
    """Test that --resume with three settings changed exits 2 with one line naming all three (and no other)."""
    trn.train(cfg(steps=8), checkpoint_dir=tmp_path / "custom-seed0", checkpoint_every=4)
    argv = ["train", "--T", "32", "--d", "16", "--batch", "16", "--steps", "8", "--probe-every", "4", "--device", "cpu",
            "--cutoff", "8", "--K", "3", "--embed", "code", "--scale", "sqrt", "--eta", "0.3", "--loss", "all", "--freeze", "W_K1:6",
            "--resume", str(tmp_path)]
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    named = sorted(part.split(":")[0].strip() for part in err.split(";")[1:])
    assert named == ["batch", "eta", "loss"], err
