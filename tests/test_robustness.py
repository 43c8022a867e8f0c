"""Robustness: every CLI option and public function refuses bad input with one clear PopgradError.

The CLI fuzz is generic: it walks `popgrad.cli.build_parser()`, so every subcommand and every
option that takes a value is covered, including commands added later. A bad value must give a
non-zero exit, a one-line stderr naming the option or the value, and no traceback, within
TIME_LIMIT seconds (a huge size must be refused up front, not by running out of memory or time).
"""

import argparse
import contextlib
import io
import math
import re
import signal

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from popgrad import cli, registry
from popgrad.errors import PopgradError

TIME_LIMIT = 20
BAD_NUMBERS = ["-1", "0", "nan", "inf", "-inf", "1000000000000", "abc", "", "1.5", "1,,x"]
HUGE = "1000000000000"


class _TooSlow(Exception):
    pass


def _options():
    """(command, action) for every option of every subcommand that takes a value."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = []
    for name, p in sorted(sub.choices.items()):
        for a in p._actions:
            if a.option_strings and a.nargs != 0 and not isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
                out.append((name, a))
    return out


OPTIONS = _options()
OPTION_IDS = [f"{c}:{a.option_strings[-1]}" for c, a in OPTIONS]


def _run_cli(argv):
    """Run popgrad in-process: (exit code, stdout, stderr, exception or None)."""
    out, err = io.StringIO(), io.StringIO()

    def alarm(signum, frame):
        raise _TooSlow()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TIME_LIMIT)
    code, exc = None, None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # noqa: BLE001 - anything else would be a traceback for the user
        exc = e
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return code, out.getvalue(), err.getvalue(), exc


def _rejected(action, value) -> bool:
    """Whether argparse itself refuses `value` for `action` (its type or choices)."""
    try:
        v = action.type(value) if action.type else value
    except (argparse.ArgumentTypeError, TypeError, ValueError, PopgradError):
        return True
    return action.choices is not None and v not in action.choices


def _describe(action) -> str:
    return " ".join(str(x) for x in (action.metavar, action.dest, action.help)).lower()


def _is_path_option(action) -> bool:
    text = _describe(action)
    return action.choices is None and (any(w in text for w in ("file", "path", "dir", "text")) or
                                       action.metavar in ("OUT", "DIR"))


def _bad_values(action, tmp_path):
    """Values that must be refused: those the option's type rejects, huge sizes, bad paths."""
    vals = [v for v in BAD_NUMBERS if _rejected(action, v)]
    seedlike = "seed" in action.dest
    if not seedlike and action.type is not None and not _rejected(action, HUGE):
        try:
            parsed = action.type(HUGE)
        except Exception:  # noqa: BLE001
            parsed = None
        if isinstance(parsed, int) or (isinstance(parsed, list) and parsed and isinstance(parsed[0], int)):
            vals.append(HUGE)                     # a huge size accepted by the parser: must be refused up front
    if _is_path_option(action):
        regular = tmp_path / "regular.txt"
        regular.write_text("ab")
        vals.append(str(regular / "x.png"))       # under a regular file: neither a file nor a dir can be made
        if "text" in action.dest or "input" in _describe(action):   # an input text file
            (tmp_path / "empty.txt").write_text("")
            (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x80abc\xc3")
            vals += [str(tmp_path / "missing.txt"), str(tmp_path / "empty.txt"), str(tmp_path / "binary.txt")]
        elif "dir" not in _describe(action) and action.metavar not in ("DIR",):
            vals.append(str(tmp_path))            # a directory where a file is expected
    return vals


def _check_one(command, action, value, joined=False):
    opt = action.option_strings[-1]
    code, out, err, exc = _run_cli([command, f"{opt}={value}"] if joined else [command, opt, value])
    where = f"popgrad {command} {opt} {value!r}"
    assert not isinstance(exc, _TooSlow), f"{where}: not refused within {TIME_LIMIT} s"
    assert exc is None, f"{where}: raised {type(exc).__name__}: {exc} (a traceback for the user)"
    assert code not in (0, None), f"{where}: accepted (exit 0)"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"{where}: stderr is not one line: {err!r}"
    assert "Traceback" not in err
    names = {s.lstrip("-").lower() for s in action.option_strings} | {action.dest.lower(), action.dest.replace("_", "-")}
    msg = lines[0].lower()
    named = any(re.search(rf"(?<![a-z0-9_]){re.escape(n)}(?![a-z0-9_])", msg) for n in names)
    assert named or (value and value.lower() in msg), \
        f"{where}: message does not name the option or value: {lines[0]!r}"


@pytest.mark.parametrize("command,action", OPTIONS, ids=OPTION_IDS)
def test_cli_option_refuses_bad_values(command, action, tmp_path):
    """Test that every bad value of this option exits non-zero with one line naming it and no traceback."""
    for value in _bad_values(action, tmp_path):
        _check_one(command, action, value)


bad_text = st.one_of(st.sampled_from(BAD_NUMBERS), st.integers(max_value=0).map(str),
                     st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=6))


TYPED_OPTIONS = [o for o in OPTIONS if o[1].type is not None or o[1].choices is not None]


@settings(max_examples=60)
@given(option=st.sampled_from(TYPED_OPTIONS), value=bad_text)
def test_cli_fuzz_values_the_parser_rejects(option, value):
    """Test that any value an option's type or choices reject gives exit 2, one line naming it, no traceback.

    Values the parser accepts are not examples of this test (hypothesis `assume` discards them, so
    every example that runs asserts); accepted values are covered by the contract tests below."""
    command, action = option
    assume(_rejected(action, value))
    _check_one(command, action, value, joined=True)


def _contract(argv):
    """The documented CLI contract: exit 0 with parseable output, or exit 2 with exactly one stderr line."""
    code, out, err, exc = _run_cli(argv)
    assert exc is None, f"popgrad {argv}: raised {type(exc).__name__}: {exc}"
    assert code in (0, 2), f"popgrad {argv}: exit {code}"
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert out == "", out
        return code, None
    return code, out


@settings(max_examples=40)
@given(text=st.one_of(st.text(max_size=8), st.sampled_from(["eq32", "lemma", "", " ", "theorem3.step", "|", "\n"])))
def test_cli_contract_claims_list_any_selection(text):
    """Test that `popgrad claims --list --json -k TEXT` exits 0 with JSON listing only matching ids, or 2 with one line."""
    import json

    code, out = _contract(["claims", "--list", "--json", f"--select={text}"])
    if code == 0:
        rows = json.loads(out)["rows"]
        assert rows and all(text in r["claim"] for r in rows)
    else:
        assert not text.strip() or not any(text in c.id for c in registry.all_claims())


def test_cli_contract_valid_runs_give_parseable_output(tmp_path):
    """Test exit 0 with parseable JSON and CSV for cheap valid invocations."""
    import csv
    import json

    code, out = _contract(["claims", "-k", "eq32", "--json"])
    assert code == 0
    rows = json.loads(out)["rows"]
    assert [r["claim"] for r in rows] == ["eq32.softmax_jacobian"] and rows[0]["verdict"] == "exact"
    code, out = _contract(["claims", "-k", "eq32", "--csv", str(tmp_path / "c.csv")])
    assert code == 0 and "eq32.softmax_jacobian" in out
    with open(tmp_path / "c.csv") as fh:
        assert [r["claim"] for r in csv.DictReader(fh)] == ["eq32.softmax_jacobian"]
    # the report's exit-0 output is held in tests/test_paper_refs.py (it runs the report once)


# ----------------------------------------------------------------------------- output locations
@pytest.mark.parametrize("out", ["/proc/popgrad_x.md", "/nonexistent-folder/x.md"])
def test_report_unwritable_out_exits_2_before_any_claim(out):
    """Test that `popgrad report --out <unwritable>` exits 2 with one line (in-process) before running any
    claim, using little CPU (a bound that holds on a loaded machine; no wall-clock bound)."""
    import time

    from popgrad import registry as reg

    reg._CACHE.clear()
    start = time.process_time()
    code, _, err, exc = _run_cli(["report", "--out", out])
    cpu = time.process_time() - start
    assert exc is None and code == 2, (code, err)
    assert len(err.strip().splitlines()) == 1 and "--out" in err
    assert not reg._CACHE, "claims ran before the output location was validated"
    assert cpu < 5.0, f"used {cpu:.2f} s of CPU"


# Bad invocations that must be refused before any work: (argv, what the one stderr line names).
# Each runs in a fresh process, which reports its exit status, whether torch was imported and its CPU time.
BAD_INVOCATIONS = [
    (["recall-table", "--plot", "out.txt"], "--plot"),
    (["scaling", "--plot", "x.txt"], "--plot"),
    (["train", "--plot", "out.txt"], "--plot"),
    (["dynamics", "--plot", "curves.csv"], "--plot"),
    (["recall-table", "--dims", "16,,32"], "--dims"),
    (["scaling", "--sweeps", "d,,N"], "--sweeps"),
    (["capacity", "--dims", "16,"], "--dims"),
    (["capacity", "--maps", "mod2,,injective"], "--maps"),
    (["dynamics", "--etas", "1,,2"], "--etas"),
    (["recall-table", "--T", "1"], "--T"),
    (["theorem3", "--N", "0"], "--N"),
    (["theorem3", "--N", "1"], "N="),
    (["theorem3", "--plot", "/proc/popgrad_x"], "--plot"),
    (["scaling", "--dims", "100000000"], "--dims"),
    (["capacity", "--dims", "10000000"], "--dims"),
    (["train", "--steps", "0"], "--steps"),
    (["report", "--out", "/proc/popgrad_x.md"], "--out"),
    (["recall-table", "--scheduler", "foo"], "--scheduler"),
    (["recall-table", "--scheduler", "tcp://127.0.0.1:99999"], "--scheduler"),
    (["recall-table", "--scheduler-timeout", "0"], "--scheduler-timeout"),
    (["recall-table", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--workers"),
    (["cache", "list", "/nonexistent-popgrad-cache"], "DIR"),
    (["cache", "list", "--stale", "."], "--stale"),
]
# Command modules that import torch when they are imported (argument errors would then cost torch's
# import time, ~2 s of CPU): none; every command refuses bad arguments before torch loads.
TORCH_AT_IMPORT: set = set()
CHILD = """
import json, resource, sys
from popgrad import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as exit:                            # argparse refuses through SystemExit
    code = exit.code
r = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"code": code, "torch": "torch" in sys.modules, "cpu": r.ru_utime + r.ru_stime}))
"""


@pytest.mark.parametrize("argv,names", BAD_INVOCATIONS, ids=[" ".join(a) for a, _ in BAD_INVOCATIONS])
def test_bad_invocation_refused_before_work(argv, names):
    """Test that a bad invocation exits 2 with one line naming the argument, no traceback, before torch
    loads (except where the command module imports it) and within a CPU-time bound that holds at load 10."""
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, cwd=root, timeout=600)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert names in lines[0], lines[0]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["code"] == 2, info
    if argv[0] not in TORCH_AT_IMPORT:
        assert not info["torch"], "torch was imported before the argument was refused"
    assert info["cpu"] < (30.0 if argv[0] in TORCH_AT_IMPORT else 5.0), info


def test_report_refuses_unwritable_derived_figures_folder(tmp_path):
    """Test that the report's derived figures folder is validated up front (a file in its place: exit 2)."""
    (tmp_path / "r_figures").write_text("not a folder")
    code, _, err, exc = _run_cli(["report", "--out", str(tmp_path / "r.md")])
    assert exc is None and code == 2 and len(err.strip().splitlines()) == 1
    assert "r_figures" in err and not (tmp_path / "r.md").exists()


def test_late_write_failure_is_one_line_and_leaves_nothing(tmp_path):
    """Test that a write failing after validation raises one PopgradError line and leaves no partial file."""
    from popgrad.cliutil import check_output_dir, check_output_file, write_text_file

    folder = tmp_path / "gone"
    folder.mkdir()
    target = check_output_file(folder / "x.md", "--out")
    folder.rmdir()                                   # the folder disappears between validation and writing
    with pytest.raises(PopgradError, match="--out: cannot write") as info:
        write_text_file(target, "text", "--out")
    assert "\n" not in str(info.value) and not folder.exists()
    write_text_file(tmp_path / "ok.md", "whole", "--out")
    assert (tmp_path / "ok.md").read_text() == "whole" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(PopgradError, match="not a folder"):
        check_output_dir(tmp_path / "ok.md", "--figures")
    with pytest.raises(PopgradError, match="does not exist"):
        check_output_dir(tmp_path / "a" / "b", "--figures")


def test_cli_unknown_command_and_option_one_line():
    """Test that an unknown subcommand or option gives exit 2 and one line."""
    for argv in (["no-such-command"], ["capacity", "--no-such-option"]):
        code, _, err, exc = _run_cli(argv)
        assert exc is None and code == 2 and len(err.strip().splitlines()) == 1


def test_capacity_huge_dims_refused_with_memory_estimate():
    """Test that `popgrad capacity --dims 10000000` is refused up front with the memory estimate."""
    code, _, err, exc = _run_cli(["capacity", "--dims", "10000000"])
    assert exc is None and code == 2
    assert "--dims 10000000" in err and "GiB" in err


# ----------------------------------------------------------------------------- public functions
bad_ints = st.one_of(st.integers(max_value=0), st.just(10 ** 12), st.floats(allow_nan=True), st.text(max_size=3),
                     st.none(), st.booleans())


def _raises_popgrad(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except PopgradError:
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{fn.__name__}{args}{kw} raised {type(exc).__name__}: {exc}, not PopgradError")
    pytest.fail(f"{fn.__name__}{args}{kw} accepted a bad value")


def _is_valid_size(v):
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v < 10 ** 12 or \
        isinstance(v, float) and math.isfinite(v) and v.is_integer() and v >= 1


@settings(max_examples=30)
@given(bad=bad_ints, which=st.sampled_from(["d", "N", "T"]))
def test_make_embeddings_refuses_bad_sizes(bad, which):
    """Test that make_embeddings refuses non-positive, non-integer or huge sizes with PopgradError."""
    from popgrad.embeddings import make_embeddings

    if _is_valid_size(bad):
        return
    kw = {"d": 4, "N": 3, "T": 2, which: bad}
    _raises_popgrad(make_embeddings, **kw)


@settings(max_examples=30)
@given(bad=bad_ints, which=st.sampled_from(["N", "T"]))
def test_data_models_refuse_bad_sizes(bad, which):
    """Test that the model-D and uniform model-C constructors and samplers refuse bad sizes with PopgradError."""
    from popgrad.numerics.samplers import make_generator, sample_model_d
    from popgrad.data import SecondOccurrenceModel, random_finite_pairs, uniform_bigram_trigger_model

    if _is_valid_size(bad) or bad == 10 ** 12:   # a huge N or T is a valid (lazy) model description
        return
    kw = {"N": 3, "T": 4, which: bad}
    _raises_popgrad(SecondOccurrenceModel, **kw)
    _raises_popgrad(uniform_bigram_trigger_model, kw["N"], kw["T"], 1)
    if which == "N":
        _raises_popgrad(random_finite_pairs, bad)
    _raises_popgrad(sample_model_d, SecondOccurrenceModel(3, 4), bad, make_generator(0))
    _raises_popgrad(make_generator, bad if bad != 0 else -1)


def test_huge_sizes_refused_up_front_by_memory_estimate():
    """Test that sizes too large for memory raise PopgradError with the estimate, not MemoryError."""
    from popgrad.data import uniform_bigram_trigger_model
    from popgrad.embeddings import make_embeddings

    for fn, args in ((make_embeddings, (10 ** 7, 10 ** 7, 3)), (uniform_bigram_trigger_model, (10 ** 12, 4, 1))):
        with pytest.raises(PopgradError, match="GiB"):
            fn(*args)


@settings(max_examples=30)
@given(p=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=6))
def test_finite_pairs_refuses_non_probability_tables(p):
    """Test that FinitePairs refuses anything that is not a square probability table."""
    from popgrad.data import FinitePairs

    arr = np.asarray(p, dtype=float)
    n = int(math.isqrt(arr.size))
    ok = arr.size > 0 and n * n == arr.size and np.all(np.isfinite(arr)) and np.all(arr >= 0) and abs(arr.sum() - 1) < 1e-9
    if ok:
        return
    _raises_popgrad(FinitePairs, arr.reshape(n, -1) if n and n * n == arr.size else arr)


@settings(max_examples=20)
@given(text=st.one_of(st.text(max_size=1), st.binary(max_size=4), st.none(), st.integers()))
def test_count_text_refuses_degenerate_text(text):
    """Test that count_text refuses non-strings and texts with fewer than 2 distinct characters."""
    from popgrad.corpus import count_text

    if isinstance(text, str) and len(set(text)) >= 2:
        return
    _raises_popgrad(count_text, text)


def test_count_file_refuses_missing_empty_and_non_utf8(tmp_path):
    """Test that count_file refuses a missing, an empty, a directory and a non-UTF-8 file."""
    from popgrad.corpus import count_file

    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x80abc")
    for path in (tmp_path / "missing.txt", tmp_path / "empty.txt", tmp_path / "bin.txt", tmp_path):
        _raises_popgrad(count_file, path)


@settings(max_examples=20)
@given(device=st.one_of(st.text(max_size=6), st.integers(), st.none()), dtype=st.one_of(st.text(max_size=8), st.integers()))
def test_device_and_dtype_refuse_unknown_names(device, dtype):
    """Test that resolve_device / resolve_dtype refuse unknown names with PopgradError."""
    import torch

    from popgrad.device import resolve_device, resolve_dtype

    if device not in (None, "auto", "cpu") and not (isinstance(device, str) and device.startswith("cuda")
                                                    and torch.cuda.is_available()):
        _raises_popgrad(resolve_device, device)
    if dtype not in ("float32", "float64"):
        _raises_popgrad(resolve_dtype, dtype)


@settings(max_examples=20)
@given(d=bad_ints, threshold=st.one_of(st.floats(), st.integers(), st.text(max_size=2)))
def test_capacity_functions_refuse_bad_input(d, threshold):
    """Test that the capacity search refuses bad d and thresholds outside (0, 1] with PopgradError."""
    from popgrad.numerics.capacity import capacity_at, validate_threshold

    if not _is_valid_size(d):
        _raises_popgrad(capacity_at, "mod2", d)
    if not (isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and 0 < threshold <= 1):
        _raises_popgrad(validate_threshold, threshold)


# ----------------------------------------------------------------------------- outputs and the library
def test_interrupted_csv_is_marked_and_single_sample_se_reads_na(tmp_path):
    """Test that an interrupted run's CSV carries `interrupted = yes` on every row (a complete one has no
    such column), and that an undefined standard error (one sample) prints 'n/a' in tables."""
    import argparse
    import csv

    from popgrad.cliutil import emit, markdown_table, mean_se, pm

    rows = [{"step": 1, "acc": 0.5, "acc_se": math.nan}, {"step": 2, "acc": 0.75, "acc_se": 0.01}]
    for interrupted in (True, False):
        path = tmp_path / f"{interrupted}.csv"
        out = io.StringIO()
        emit(rows, ["step", "acc", "acc_se"], argparse.Namespace(json=False, csv=str(path)),
             extra={"interrupted": interrupted}, out=out)
        read = list(csv.DictReader(open(path)))
        assert [r["step"] for r in read] == ["1", "2"]
        assert [r.get("interrupted") for r in read] == (["yes", "yes"] if interrupted else [None, None])
        assert "| 1 | 0.5 | n/a |" in out.getvalue() and "| 2 | 0.75 | 0.01 |" in out.getvalue()
    assert markdown_table([{"se": math.nan, "x": math.nan}], ["se", "x"]).splitlines()[-1] == "| n/a | nan |"
    assert pm(0.5, math.nan) == "0.500 ± n/a" and pm(0.5, 0.01) == "0.500 ± 0.010"
    m, se = mean_se([0.5])
    assert m == 0.5 and math.isnan(se)
    assert mean_se([1.0, 3.0]) == (2.0, 1.0)                  # std (ddof 1) sqrt(2), over sqrt(2)


def test_recall_table_with_one_seed_prints_na():
    """Test that `popgrad recall-table --seeds 1` prints 'mean ± n/a' cells, not NaN."""
    code, out, err, exc = _run_cli(["recall-table", "--dims", "8", "--batches", "1", "--T", "16", "--seeds", "1",
                                    "--device", "cpu"])
    assert exc is None and code == 0, err
    assert "± n/a" in out and "nan" not in out.lower()


def test_popgrad_error_is_exported_and_raised_by_the_api():
    """Test that `popgrad.PopgradError` is public, and that recall_table and memory_recall raise it for bad
    arguments, naming the argument."""
    import torch

    import popgrad

    assert "PopgradError" in popgrad.__all__ and popgrad.PopgradError is PopgradError
    for kw, name in ((dict(dims=16), "dims"), (dict(batches=[1, 0]), "batches[1]"), (dict(seeds=0), "seeds"),
                     (dict(seed=-1), "seed"), (dict(dims="16"), "dims"), (dict(sweep=3), "sweep")):
        with pytest.raises(popgrad.PopgradError, match=rf"^{re.escape(name)} "):
            popgrad.recall_table(**kw)
    W, U, V = torch.zeros(4, 3), torch.zeros(3, 5), torch.zeros(4, 6)
    assert popgrad.memory_recall(W, U, V, [0, 1, 2, 3, 4]) == 0.0          # all scores tie: no unique argmax
    for args, name in (((torch.zeros(3, 4), U, V, range(5)), "W"), ((W, U, V, range(4)), "targets"),
                       ((W, U, V, [0, 1, 2, 3, 6]), "targets"), ((W, U.numpy(), V, range(5)), "U"),
                       ((W, U[0], V, range(5)), "U")):
        with pytest.raises(popgrad.PopgradError, match=rf"^{name} "):
            popgrad.memory_recall(*args)
