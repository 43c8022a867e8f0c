"""Every hardware branch of the precision and device choices, on any CPU (capabilities injected).

The machine is described by a `Hardware` (CPU model and flags, torch version, threads, CUDA
device) and a `CudaProbe`; the step timing by a timer. Each test builds the machine it needs, so
the branches a given CPU never takes (bfloat16 claimed and fast, claimed and slow, not claimed,
CUDA with and without bf16 tensor cores, no CUDA) all run here.
"""

import json

import pytest
import torch

from popgrad.cli import main
from popgrad.device import CudaProbe, resolve_device
from popgrad.errors import PopgradError
from popgrad.numerics import precision as pr
from popgrad.numerics import training as trn

SMALL = dict(T=24, d=12, batch=6, K=3, steps=1, probe_every=1, cutoff=8, device="cpu")
XEON = pr.Hardware("Intel(R) Xeon(R) CPU @ 2.20GHz", frozenset({"avx2", "avx512f", "avx512_bf16"}), "2.13.0", 1)
EPYC_AVX2 = pr.Hardware("AMD EPYC", frozenset({"avx2", "fma"}), "2.13.0", 1)
AMX = pr.Hardware("Intel(R) Xeon(R) Platinum 8480+", frozenset({"avx512_bf16", "amx_bf16"}), "2.13.0", 1)


def cfg(**over):
    return trn.TrainConfig(**{**SMALL, **over})


class Timer:
    """A fake step timer: bfloat16 takes `ratio` times the float32 step; counts its calls."""

    def __init__(self, ratio: float):
        self.ratio, self.calls = ratio, []

    def __call__(self, config, device):
        self.calls.append((config.batch, torch.device(device).type))
        return pr.StepTiming((0.10, 0.11, 0.09), tuple(self.ratio * t for t in (0.10, 0.11, 0.09)), config.batch)


@pytest.mark.parametrize("hardware, ratio, picked, words", [
    (XEON, 2.6, "float32", "2.6x slower"),            # claims avx512_bf16, slower in bfloat16: the reviewer's machine
    (XEON, 0.5, "bfloat16", "2.0x faster"),           # claims it and is faster
    (AMX, 0.3, "bfloat16", "3.3x faster"),
    (EPYC_AVX2, 7.3, "float32", "7.3x slower"),       # no bf16 flag, emulated
    (EPYC_AVX2, 0.8, "bfloat16", "1.2x faster"),      # no flag but measured faster: the measurement decides
    (XEON, 0.95, "float32", "1.1x faster"),           # within FASTER: not worth the rounding
])
def test_auto_decides_from_the_measurement_not_the_flag(tmp_path, hardware, ratio, picked, words):
    """Test that auto picks bfloat16 iff the measured step is >= 1.1x faster, whatever the flags say,
    and that the reason gives the measured ratio, its source and batch."""
    timer = Timer(ratio)
    p = pr.resolve_precision("auto", "cpu", cfg=cfg(batch=64), hardware=hardware, timer=timer,
                             cache=pr.TimingCache(tmp_path / "t.json"))
    assert p.name == picked
    assert f"bfloat16 step {words} here (measured, batch 64, 3 interleaved rounds)" in p.reason, p.reason
    assert timer.calls == [(64, "cpu")]


def test_requested_precisions_are_kept_and_never_measured():
    """Test that float32 and bfloat16 asked by name are used as asked, with a warning where no bf16 is claimed."""
    timer = Timer(100.0)
    assert pr.resolve_precision("float32", "cpu", cfg=cfg(), hardware=XEON, timer=timer).name == "float32"
    slow = pr.resolve_precision("bfloat16", "cpu", cfg=cfg(), hardware=EPYC_AVX2, timer=timer)
    assert slow.name == "bfloat16" and "emulated" in slow.reason
    assert pr.resolve_precision("bfloat16", "cpu", cfg=cfg(), hardware=AMX, timer=timer).reason == "requested"
    assert timer.calls == []


@pytest.mark.parametrize("capability, bf16, measured", [((8, 0), True, True), ((9, 0), True, True),
                                                         ((7, 5), False, False), ((8, 6), False, False)])
def test_auto_on_cuda_measures_only_with_bf16_tensor_cores(tmp_path, capability, bf16, measured):
    """Test the CUDA branches: compute capability >= 8.0 with bf16 support is measured; below, float32 at once."""
    hw = pr.Hardware("AMD EPYC", frozenset(), "2.13.0", 1, pr.CudaDevice("NVIDIA X", capability, bf16))
    timer = Timer(0.4)
    p = pr.resolve_precision("auto", "cuda", cfg=cfg(batch=512), hardware=hw, timer=timer,
                             cache=pr.TimingCache(tmp_path / "t.json"))
    assert (timer.calls == [(512, "cuda")]) == measured
    assert p.name == ("bfloat16" if measured else "float32")
    assert f"compute capability {capability[0]}.{capability[1]}" in p.reason


def test_auto_without_shapes_or_cuda_device_keeps_float32():
    """Test that auto without run shapes, or asked for CUDA on a machine without one, keeps float32 unmeasured."""
    timer = Timer(0.1)
    assert pr.resolve_precision("auto", "cpu", hardware=XEON, timer=timer).name == "float32"
    assert pr.resolve_precision("auto", "cuda", cfg=cfg(), hardware=XEON, timer=timer).name == "float32"
    assert timer.calls == []


def test_measurement_is_cached_by_cpu_torch_threads_and_shapes(tmp_path):
    """Test that a second resolution reads the cache (and says so), and that another CPU model, torch
    version, thread count or batch is measured afresh."""
    cache = pr.TimingCache(tmp_path / "sub" / "t.json")
    timer = Timer(3.0)
    first = pr.resolve_precision("auto", "cpu", cfg=cfg(), hardware=XEON, timer=timer, cache=cache)
    again = pr.resolve_precision("auto", "cpu", cfg=cfg(), hardware=XEON, timer=timer, cache=cache)
    assert len(timer.calls) == 1 and "(measured," in first.reason and "(cached, batch 6," in again.reason
    assert again.name == first.name == "float32"
    for hw, c in ((EPYC_AVX2, cfg()), (pr.Hardware(XEON.cpu_model, XEON.cpu_flags, "2.14.0", 1), cfg()),
                  (pr.Hardware(XEON.cpu_model, XEON.cpu_flags, "2.13.0", 2), cfg()), (XEON, cfg(batch=7))):
        pr.resolve_precision("auto", "cpu", cfg=c, hardware=hw, timer=timer, cache=cache)
    assert len(timer.calls) == 5
    stored = json.loads((tmp_path / "sub" / "t.json").read_text())
    assert len(stored) == 5 and all(abs(v["ratio"] - 3.0) < 1e-12 for v in stored.values())


def test_cache_dir_is_redirectable_and_a_broken_cache_reads_empty(tmp_path, monkeypatch):
    """Test that $POPGRAD_CACHE_DIR moves the user cache, and a malformed file is measured over."""
    monkeypatch.setenv("POPGRAD_CACHE_DIR", str(tmp_path))
    assert pr.TimingCache().path == tmp_path / "precision_timings.json"
    (tmp_path / "precision_timings.json").write_text("{not json")
    timer = Timer(2.0)
    assert pr.resolve_precision("auto", "cpu", cfg=cfg(), hardware=XEON, timer=timer).name == "float32"
    assert len(timer.calls) == 1 and json.loads((tmp_path / "precision_timings.json").read_text())


def test_hardware_detect_and_the_real_measurement(tmp_path):
    """Test the real probe and timer at a tiny size: positive interleaved timings, a decision that
    follows them, and a cache entry under this machine's key."""
    hw = pr.Hardware.detect("cpu")
    assert hw.torch_version == torch.__version__ and hw.threads == torch.get_num_threads()
    timing = pr.time_steps(cfg(), "cpu", rounds=2)
    assert timing.batch == 6 and len(timing.float32_s) == len(timing.bfloat16_s) >= 1
    assert min(timing.float32_s + timing.bfloat16_s) > 0
    cache = pr.TimingCache(tmp_path / "t.json")
    p = pr.resolve_precision("auto", "cpu", cfg=cfg(), cache=cache)
    assert "(measured, batch 6" in p.reason
    (stored,) = json.loads(cache.path.read_text()).values()
    assert p.name == ("bfloat16" if stored["ratio"] * pr.FASTER <= 1 else "float32")


def test_resolve_device_branches_with_an_injected_probe():
    """Test auto / cpu / cuda / cuda:N with and without CUDA, on any machine."""
    none, two = CudaProbe(False), CudaProbe(True, 2)
    assert resolve_device("auto", cuda=none).type == "cpu"
    assert resolve_device("auto", cuda=two).type == "cuda"
    assert resolve_device("cuda:1", cuda=two) == torch.device("cuda:1")
    with pytest.raises(PopgradError, match="CUDA is not available"):
        resolve_device("cuda", cuda=none)
    with pytest.raises(PopgradError, match="only 2 CUDA device"):
        resolve_device("cuda:2", cuda=two)
    assert resolve_device("cpu", cuda=two).type == "cpu"


TINY = ["train", "--T", "16", "--d", "16", "--batch", "4", "--steps", "2", "--probe-every", "1", "--device", "cpu",
        "--cutoff", "4", "--json"]


def test_cli_auto_prints_the_measured_ratio(tmp_path, monkeypatch, capsys):
    """Test that `popgrad train --precision auto` reports its measured (here: cached, slower) ratio and
    records float32 in the JSON; the cache is the redirected user cache."""
    monkeypatch.setenv("POPGRAD_CACHE_DIR", str(tmp_path))
    config = trn.TrainConfig(T=16, d=16, batch=4, steps=2, probe_every=1, device="cpu", cutoff=4, precision="auto")
    key = f"{pr.Hardware.detect('cpu').key('cpu')} | cpu | {pr.shape_key(config)}"
    pr.TimingCache().put(key, pr.StepTiming((0.1, 0.1), (0.26, 0.26), 4))
    assert main(TINY + ["--precision", "auto"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["notes"][0].startswith("precision float32: auto: bfloat16 step 2.6x slower here (cached, batch 4")
    assert out["configs"]["custom"][0]["precision"] == "float32"


@pytest.mark.parametrize("precision", ["float32", "auto"])
def test_float64_runs_record_float64(precision, capsys):
    """Test that --dtype float64 runs record precision 'float64' (their matmuls), in the JSON and the Run."""
    assert main(TINY + ["--dtype", "float64", "--precision", precision]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [c["precision"] for c in out["configs"]["custom"]] == ["float64"]
    run = trn.setup(cfg(dtype="float64", precision=precision))
    assert run.cfg.precision == "float64" and run.precision.name == "float64" and not run.precision.autocast
    assert run.ws.low is None
    again = trn.setup(trn.TrainConfig(**{**vars(run.cfg), "dtype": "float32"}))    # a float64 record, rerun in float32
    assert again.cfg.precision == "float32" and not again.precision.autocast
