"""End to end through the command line on a small ONNX model exported in the test:
files written, report figures against onnxruntime, deterministic IR, `qcompile run`,
and bad input (one line, exit code 2, no OUT left behind, an existing OUT kept)."""
import json
import re
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from qcompile.cli import main
from qcompile.models import ASSETS, DEFAULT_MODEL


def compile_(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_compile_llvm_end_to_end(tmp_path, capsys, tiny_encoder_onnx, tiny_encoder_eval):
    out = tmp_path / "out"
    rc, stdout, _ = compile_(capsys, tiny_encoder_onnx, "--pipeline", "none", "--target", "llvm", "-o", out,
                             "--eval-data", tiny_encoder_eval, "--batch", "4", "-q")
    assert rc == 0
    assert {p.name for p in out.iterdir()} == {"model.so", "ir", "report.json", "report.md", "report.html"}
    # the llvm backend's graph rewrites are passes too: timed, dumped, their counts in the report
    llvm_steps = ["patch_convs", "lut", "fast_gelu", "split_heads", "decode_attention", "x86_packed", "mul32",
                  "shift32"]
    assert sorted(p.name for p in (out / "ir").iterdir()) == \
        ["00_input.py", "01_canonicalize.py"] + [f"{i:02d}_llvm_{n}.py" for i, n in enumerate(llvm_steps, start=2)]
    rep = json.loads((out / "report.json").read_text())
    ev = rep["evaluation"]
    assert ev["reference"] == "onnxruntime" and ev["samples"] == 6
    (metrics,) = ev["outputs"].values()
    assert metrics["cosine"] >= 0.99999 and metrics["max_abs_err"] < 1e-4
    assert rep["passes"][0]["name"] == "canonicalize" and rep["seconds"]["each_pass"]["01_canonicalize"] >= 0
    assert [p["name"] for p in rep["passes"][1:]] == [f"llvm.{n.replace('_', '-')}" for n in llvm_steps]
    assert rep["build"]["info"]["fast_gelu"] == rep["passes"][3]["notes"]["fast_gelu"] and "int8_luts" in rep["build"]["info"]
    assert "composite:qcompile.attention" in rep["ops_after"]
    assert "cosine" in stdout and "report.md" in stdout
    assert "## Against the float reference" in (out / "report.md").read_text()

    # IR dumps are byte-identical across runs
    out2 = tmp_path / "out2"
    assert compile_(capsys, tiny_encoder_onnx, "-o", out2, "-q")[0] == 0
    for name in (p.name for p in (out / "ir").iterdir()):
        assert (out / "ir" / name).read_bytes() == (out2 / "ir" / name).read_bytes()

    # `qcompile run` executes the artifact; it agrees with onnxruntime
    res = tmp_path / "res.npz"
    rc, stdout, _ = compile_(capsys, "run", out, "--inputs", tiny_encoder_eval, "--output", res, "--batch", "4")
    assert rc == 0 and res.exists()
    data = np.load(tiny_encoder_eval)
    sess = ort.InferenceSession(str(tiny_encoder_onnx), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": data["x"], "mask": data["mask"]})[0]
    (got,) = np.load(res).values()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def qc_run(out, *inputs):
    import tvm

    from qcompile.backends.common import Artifact

    rep = json.loads((out / "report.json").read_text())
    return Artifact("llvm", None, tvm.runtime.load_module(str(out / "model.so")), io=rep.get("io")).run(*inputs)[0]


def test_two_compiles_are_identical(tmp_path, tiny_encoder_onnx, tiny_encoder_eval):
    """Determinism beyond the IR: two int-only compiles (calibration and evaluation included)
    of the same inputs, each its own process as a user runs it, give byte-identical IR
    dumps, the same ``report.json`` except its one timing field ``seconds``, a ``report.md``
    that differs only in its time figures, and artifacts whose outputs are bit-identical.
    ``model.so`` itself is byte-identical in most runs but not all (4 runs of the ViT: 3
    equal): TVM's VM shape lowering emits the symbolic-batch shape function with its stores
    in an order that varies from process to process (seen: two ``vpmullq`` swapped in
    ``shape_func_compute_``, nothing else), so its bytes are not asserted. The tiny encoder
    (symbolic batch, a mask, every llvm rewrite) keeps this test at two short compiles; the
    ViT's int-only artifact is compiled by the tests of tests/test_int_only.py."""
    import subprocess
    import sys

    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        r = subprocess.run([sys.executable, "-m", "qcompile", str(tiny_encoder_onnx), "--pipeline", "int-only",
                            "--calib-data", str(tiny_encoder_eval), "--eval-data", str(tiny_encoder_eval),
                            "-o", str(out), "-q"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    files = sorted(str(p.relative_to(outs[0])) for p in outs[0].rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(outs[1])) for p in outs[1].rglob("*") if p.is_file())
    identical = [f for f in files if (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes()]
    assert set(files) - set(identical) <= {"report.json", "report.md", "report.html", "model.so"}
    assert {"ir/00_input.py", "ir/01_canonicalize.py", "ir/02_int_prepare.py", "ir/03_int_only.py"} <= set(identical)
    data = dict(np.load(tiny_encoder_eval))
    a, b = (qc_run(o, data["x"], data["mask"]) for o in outs)
    np.testing.assert_array_equal(a, b)
    reps = [json.loads((o / "report.json").read_text()) for o in outs]
    assert set(reps[0]["seconds"]) >= {"load", "passes", "build", "evaluate", "each_pass"}
    for r in reps:
        del r["seconds"]
    assert reps[0] == reps[1]
    for page in ("report.md", "report.html"):  # the same apart from times (the plot's PNG included)
        md = [re.sub(r"\d+\.\d+", "#", (o / page).read_text()) for o in outs]
        assert md[0] == md[1]


def test_cuda_and_int_accel_targets(tmp_path, capsys, tiny_encoder_onnx, tiny_encoder_eval):
    out = tmp_path / "cuda"
    rc, stdout, _ = compile_(capsys, tiny_encoder_onnx, "--target", "cuda", "-o", out, "-q",
                             "--eval-data", tiny_encoder_eval)
    assert rc == 0 and (out / "model.cu").exists() and (out / "model.so").exists()
    from qcompile.backends.cuda import gpu_present

    if gpu_present():
        assert "cosine" in stdout
    else:  # --eval-data given and not usable here: said, not skipped silently
        assert "evaluation skipped: a cuda artifact cannot run on this machine" in stdout
        assert "Evaluation skipped" in (out / "report.md").read_text()
    # a float model is refused by the integer-only target: one line, exit 2, no folder
    rc, _, err = compile_(capsys, tiny_encoder_onnx, "--target", "int-accel", "-o", tmp_path / "ia", "-q")
    assert rc == 2 and "refuses the build" in err and len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "ia").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def _unsupported_model(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
    node = helper.make_node("Relu", ["x"], ["h"], name="ok_relu")
    bad = helper.make_node("STFT", ["h", "h"], ["y"], name="my_stft")
    onnx.save(helper.make_model(helper.make_graph([node, bad], "g", [x], [y]),
                                opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.mark.parametrize("case", ["missing", "malformed", "unsupported", "bad-eval-shape", "bad-pipeline",
                                  "bad-input-shape", "tune-without-db", "missing-tune-db", "tune-cuda",
                                  "nan-eval-data", "inf-weight", "complex-eval-data", "arch-with-llvm",
                                  "mcpu-with-cuda", "exclusive-pipelines", "recipe-pass-int",
                                  "recipe-pass-table", "empty-eval-data", "lossy-int-eval-data"])
def test_bad_input_one_line_exit_2_out_kept(tmp_path, capsys, tiny_encoder_onnx, case):
    out = tmp_path / "out"
    out.mkdir()  # a previous artifact, which a failed compile must leave as it was
    (out / "report.json").write_text(json.dumps({"qcompile_version": "0"}))
    (out / "keep.txt").write_text("previous result")
    model, extra = tiny_encoder_onnx, []
    expect = ""
    if case == "missing":
        model, expect = tmp_path / "nope.onnx", "not found"
    elif case == "malformed":
        model = tmp_path / "bad.onnx"
        model.write_bytes(b"\x08\x07garbage that is not protobuf" * 3)
        expect = "onnx"
    elif case == "unsupported":
        model = tmp_path / "stft.onnx"
        _unsupported_model(model)
        expect = "my_stft"
    elif case == "bad-eval-shape":
        ev = tmp_path / "ev.npz"
        np.savez(ev, x=np.zeros((2, 3, 3), np.float32), mask=np.zeros((2, 1, 1, 3), np.float32))
        extra, expect = ["--eval-data", ev], "dim"
    elif case == "bad-pipeline":
        extra, expect = ["--pipeline", "nonsense"], "unknown pipeline"
    elif case == "bad-input-shape":
        extra, expect = ["--input-shape", "x=2xfoo"], "input-shape"
    elif case == "tune-without-db":
        extra, expect = ["--tune", "8"], "--tune-db"
    elif case == "missing-tune-db":
        extra, expect = ["--tune-db", tmp_path / "nodb"], "no tuning database"
    elif case == "tune-cuda":
        extra, expect = ["--target", "cuda", "--tune", "8", "--tune-db", tmp_path / "db"], "llvm only"
    elif case in ("nan-eval-data", "inf-weight"):
        from qcompile.models.tiny import encoder_inputs

        x, mask = (t.numpy() for t in encoder_inputs(b=4, seed=1))
        if case == "nan-eval-data":
            x[1, 0, 0] = np.nan
        else:  # before: all-NaN outputs summarized as "cosine nan, max |err| 0, top-1 agreement 100 %"
            proto = onnx.load(str(model))
            init = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)))
            arr = onnx.numpy_helper.to_array(init).copy()
            arr.flat[0] = np.inf
            init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
            model = tmp_path / "inf.onnx"
            onnx.save(proto, str(model))
        ev = tmp_path / "ev.npz"
        np.savez(ev, x=x, mask=mask)
        extra, expect = ["--eval-data", ev], "NaN/Inf"
    elif case == "complex-eval-data":
        ev = tmp_path / "ev.npz"
        np.savez(ev, x=np.zeros((2, 3, 3), np.complex64), mask=np.zeros((2, 1, 1, 3), np.float32))
        extra, expect = ["--eval-data", ev], "complex64"
    elif case == "arch-with-llvm":  # before: --arch was silently ignored by the llvm build
        extra, expect = ["--target", "llvm", "--arch", "sm_86"], "--target llvm takes no option 'arch'"
    elif case == "mcpu-with-cuda":
        extra, expect = ["--target", "cuda", "--mcpu", "znver3"], "it is for --target llvm"
    elif case == "exclusive-pipelines":
        extra, expect = ["--pipeline", "bfp+kv-prerope"], "cannot be combined"
    elif case in ("recipe-pass-int", "recipe-pass-table"):  # before: "lists no passes"
        recipe = tmp_path / "r.toml"
        recipe.write_text("pass = 5\n" if case == "recipe-pass-int" else '[pass]\nname = "canonicalize"\n')
        extra = ["--pipeline", recipe]
        expect = "'pass' must be an array of [[pass]] tables, got " + ("int 5" if case == "recipe-pass-int"
                                                                         else "a single [pass] table")
    elif case == "empty-eval-data":  # before: "the model's fixed batch is 16" for a symbolic batch
        ev = tmp_path / "ev.npz"
        from qcompile.models.tiny import encoder_inputs

        np.savez(ev, **{k: t.numpy()[:0] for k, t in zip(("x", "mask"), encoder_inputs(b=1))})
        extra, expect = ["--eval-data", ev], f"evaluation data {ev} has 0 samples"
    elif case == "lossy-int-eval-data":  # before: cast to float32 silently, 2^24 + 1 rounded to 2^24
        from qcompile.models.tiny import encoder_inputs

        x, mask = (t.numpy() for t in encoder_inputs(b=2, seed=1))
        ev = tmp_path / "ev.npz"
        np.savez(ev, x=np.full(x.shape, 2 ** 24 + 1, np.int64), mask=mask)
        extra, expect = ["--eval-data", ev], f"evaluation data {ev}: input 'x' is int64 with values beyond float32"
    rc, _, err = compile_(capsys, model, "-o", out, "-q", *extra)
    assert rc == 2
    lines = err.strip().splitlines()
    assert lines[0].startswith("qcompile: error:") and len(lines) <= 2, err
    assert expect.lower() in err.lower(), err
    if case == "unsupported":
        assert "STFT" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "report.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_list_pipelines(capsys):
    rc, out, _ = compile_(capsys, "--list-pipelines")
    assert rc == 0 and out.splitlines()[0].split()[0] == "none"


def test_run_refuses_non_artifact(tmp_path, capsys):
    rc, _, err = compile_(capsys, "run", tmp_path, "--inputs", tmp_path / "a.npz", "--output", tmp_path / "b.npz")
    assert rc == 2 and "not a qcompile artifact" in err


@pytest.mark.parametrize("case", ["user-folder", "default-build", "cwd", "parent-is-file", "symlink", "is-a-file",
                                  "under-proc", "read-only"])
def test_output_folder_that_is_not_an_artifact_is_never_replaced(tmp_path, capsys, monkeypatch,
                                                                   tiny_encoder_onnx, case):
    """`-o` replaces only a previous artifact: a user's own folder (the default `build/` of a
    project that has one, the working directory, a path under a file) is refused before any
    work, with exit 2, and nothing in it changes."""
    monkeypatch.chdir(tmp_path)
    keep = tmp_path / "build" / "lib" / "keep.txt"
    keep.parent.mkdir(parents=True)
    keep.write_text("the user's file")
    args = [tiny_encoder_onnx, "-q"]
    if case == "user-folder":
        args += ["-o", tmp_path / "build"]
    elif case == "cwd":
        args += ["-o", "."]
    elif case == "parent-is-file":
        args += ["-o", keep / "sub"]
    elif case == "symlink":
        (tmp_path / "link").symlink_to(tmp_path / "build")
        args += ["-o", tmp_path / "link"]
    elif case == "is-a-file":
        args += ["-o", keep]
    elif case == "under-proc":
        args += ["-o", "/proc/qcompile_out"]
    elif case == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only folder")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        args += ["-o", ro / "out"]
    rc, _, err = compile_(capsys, *args)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert lines[0].startswith("qcompile: error:") and len(lines) <= 2, err
    assert keep.read_text() == "the user's file"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_output_folder_replaces_a_previous_artifact(tmp_path, capsys, tiny_encoder_onnx):
    out = tmp_path / "out"
    out.mkdir()  # an empty folder may be used
    assert compile_(capsys, tiny_encoder_onnx, "-o", out, "-q")[0] == 0
    (out / "stale.txt").write_text("from the previous artifact")
    assert compile_(capsys, tiny_encoder_onnx, "-o", out, "-q")[0] == 0  # an artifact is replaced
    assert not (out / "stale.txt").exists() and (out / "report.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary or .old folder left
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask


def test_run_boundary(tmp_path, capsys, tiny_encoder_onnx, tiny_encoder_eval):
    """`qcompile run` checks what it is given before TVM sees it: one line and exit 2 for a
    damaged artifact (malformed or incomplete report.json, truncated model.so: before, a
    JSONDecodeError, a KeyError or SIGBUS), inputs of the wrong rank or with no samples, an
    output in a missing folder; float64 inputs for a float32 model are cast (before: a TVM
    'Check failed: ptr->dtype == dtype')."""
    import shutil

    art = tmp_path / "art"
    assert compile_(capsys, tiny_encoder_onnx, "-o", art, "-q")[0] == 0
    data = dict(np.load(tiny_encoder_eval))
    f64 = tmp_path / "f64.npz"
    np.savez(f64, x=data["x"].astype(np.float64), mask=data["mask"].astype(np.float64))
    rc, out, err = compile_(capsys, "run", art, "--inputs", f64, "--output", tmp_path / "r.npz")
    assert rc == 0, err
    sess = ort.InferenceSession(str(tiny_encoder_onnx), providers=["CPUExecutionProvider"])
    (got,) = np.load(tmp_path / "r.npz").values()
    np.testing.assert_allclose(got, sess.run(None, data)[0], rtol=1e-4, atol=1e-5)

    def refused(folder, inputs, output, expect):
        rc, _, err = compile_(capsys, "run", folder, "--inputs", inputs, "--output", output)
        lines = err.strip().splitlines()
        assert rc == 2 and lines[0].startswith("qcompile: error:") and len(lines) <= 2, err
        assert expect in err, err
        assert not Path(output).exists()

    from pathlib import Path

    for name, mutate, expect in [
        ("badjson", lambda d: (d / "report.json").write_text("{not json"), "not valid JSON"),
        ("empty", lambda d: (d / "report.json").write_text("{}"), "not a complete qcompile report"),
        ("trunc", lambda d: (d / "model.so").write_bytes((d / "model.so").read_bytes()[:4096]), "truncated"),
        ("zero-bytes", lambda d: (d / "report.json").write_bytes(b""), "not valid JSON"),
    ]:
        broken = tmp_path / name
        shutil.copytree(art, broken)
        mutate(broken)
        refused(broken, tiny_encoder_eval, tmp_path / f"{name}.npz", expect)
    rank = tmp_path / "rank.npz"
    np.savez(rank, x=data["x"][:, 0], mask=data["mask"])
    refused(art, rank, tmp_path / "o1.npz", "rank")
    shape = tmp_path / "shape.npz"
    np.savez(shape, x=np.concatenate([data["x"], data["x"]], axis=-1), mask=data["mask"])
    refused(art, shape, tmp_path / "o4.npz", "dim 2")
    u8 = tmp_path / "u8.npz"  # integers exact in float32: cast, with a note
    np.savez(u8, x=np.clip(np.round(data["x"]), 0, 255).astype(np.uint8), mask=data["mask"].astype(np.uint8))
    rc, _, err = compile_(capsys, "run", art, "--inputs", u8, "--output", tmp_path / "r8.npz")
    assert rc == 0 and "note:" in err, err
    empty = tmp_path / "empty.npz"
    np.savez(empty, x=data["x"][:0], mask=data["mask"][:0])
    refused(art, empty, tmp_path / "o2.npz", "0 samples")
    refused(art, tiny_encoder_eval, tmp_path / "missing" / "o3.npz", "does not exist")


def test_interrupt_in_a_pass_and_stale_temporaries(tmp_path, capsys, monkeypatch, tiny_encoder_onnx):
    """Ctrl-C inside a pass (which runs under TVM's FFI) is an interrupt: exit 130,
    'interrupted', no temporary folder left (before: "pass 'canonicalize' failed:
    RuntimeError", exit 2). A temporary folder left by a killed compile (its process gone)
    is removed by the next compile into the same OUT."""
    from qcompile.passes.canonicalize import Canonicalize

    stale = tmp_path / ".out.999999999.abcd"
    stale.mkdir()
    (stale / "model.so").write_bytes(b"half written")

    def interrupted(self, mod, ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(Canonicalize, "transform", interrupted)
    rc, _, err = compile_(capsys, tiny_encoder_onnx, "-o", tmp_path / "out", "-q")
    assert rc == 130 and "interrupted" in err and "failed" not in err
    assert not stale.exists()
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _previous_artifact(out):
    """A stand-in previous artifact in ``out`` and a snapshot of its bytes."""
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"qcompile_version": "0"}))
    (out / "keep.txt").write_text("previous result")
    return {p.name: p.read_bytes() for p in out.iterdir()}


@pytest.mark.parametrize("how", ["swallowed", "became-runtime-error", "became-pass-error"])
def test_interrupt_that_tvm_converted_or_a_fallback_swallowed(tmp_path, capsys, monkeypatch, tiny_encoder_onnx, how):
    """A SIGINT whose KeyboardInterrupt TVM's FFI turned into a RuntimeError (raised inside a
    C++ -> Python callback), which then surfaced as an internal error, as a pass's failure,
    or was swallowed by a fallback (the compile went on and replaced OUT, exit 0): the CLI's
    handler recorded the signal, so each is "interrupted", exit 130, OUT as it was, no
    temporary folder. The handler is called as the signal would call it."""
    import signal

    from qcompile import driver
    from qcompile.interrupts import INTERRUPTS
    from qcompile.passes.canonicalize import Canonicalize

    out = tmp_path / "out"
    before = _previous_artifact(out)
    handler_before = signal.getsignal(signal.SIGINT)

    def sigint():
        try:
            # the CLI's handler (called directly: under pytest-xdist a worker ignores SIGINT,
            # so main() does not install it there)
            INTERRUPTS.handler(signal.SIGINT, None)
        except KeyboardInterrupt:
            pass  # what TVM's FFI does with it: below, a RuntimeError or nothing

    if how == "became-pass-error":
        def transform(self, mod, ctx):
            sigint()
            raise RuntimeError("RuntimeError")

        monkeypatch.setattr(Canonicalize, "transform", transform)
    else:
        real = driver.build

        def build(*a, **k):
            sigint()
            if how == "became-runtime-error":
                raise RuntimeError("")
            return real(*a, **k)  # the build goes on: only the flag knows

        monkeypatch.setattr(driver, "build", build)
    rc, _, err = compile_(capsys, tiny_encoder_onnx, "-o", out, "-q")
    assert rc == 130 and err.strip().splitlines() == ["qcompile: interrupted"], err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert not INTERRUPTS.seen and signal.getsignal(signal.SIGINT) is handler_before  # restored


def test_ctrl_c_with_a_real_signal(tmp_path, tiny_encoder_onnx):
    """Ctrl-C as the terminal sends it (SIGINT to the process group) to a `qcompile` process
    at several points of a compile: while loading, in canonicalization (TVM calls back into
    Python there) and in the build. Every time: exit 130, one line saying "interrupted",
    no traceback, an existing OUT byte for byte as it was, no temporary folder left. Before,
    by timing: exit 0 with OUT replaced, exit 2 "pass 'canonicalize' failed: RuntimeError:
    RuntimeError", exit 1 "internal error: RuntimeError:". The points are the status lines
    the child prints plus a delay; each run stops at its signal (about 5 s each, TVM's import
    included)."""
    import signal
    import subprocess
    import sys
    import threading
    import time

    out = tmp_path / "out"
    before = _previous_artifact(out)
    # three points (one per step; more timings were tried when the fix was made: keeps `make test` lean)
    # (the signal goes right at "building": a tiny build can finish within a loaded machine's
    # scheduling delay, and a compile that completed before the signal rightly exits 0)
    for marker, delay in [("qcompile: loading", 0.3), ("qcompile: running", 0.1), ("qcompile: building", 0.0)]:
        p = subprocess.Popen([sys.executable, "-m", "qcompile", str(tiny_encoder_onnx), "-o", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                             start_new_session=True,  # its own process group, as a shell's foreground job
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        watchdog = threading.Timer(120, p.kill)
        watchdog.start()
        lines, sent = [], None
        for line in p.stderr:
            lines.append(line.rstrip("\n"))
            if line.startswith(marker):
                time.sleep(delay)
                os.killpg(p.pid, signal.SIGINT)
                sent = True
                break
        lines += p.stderr.read().splitlines()
        rc = p.wait()
        watchdog.cancel()
        where = f"{marker} + {delay} s: rc {rc}, stderr {lines}"
        assert sent, where
        assert rc == 130, where
        assert [x for x in lines if "interrupted" in x] == ["qcompile: interrupted"], where
        assert not [x for x in lines if "Traceback" in x or "error" in x.lower()], where
        assert {p_.name: p_.read_bytes() for p_ in out.iterdir()} == before, where
        assert [p_.name for p_ in tmp_path.iterdir()] == ["out"], where


def test_stale_folders_of_killed_runs_and_racing_replaces(tmp_path):
    """A compile killed while it replaced OUT left the previous OUT moved aside
    (``.OUT.old.<pid>``): the next compile removes it once its process is gone (before,
    only temporary folders were), and puts it back as OUT where the kill came between the
    two renames (OUT missing). A live process's folders are kept. Compiles racing for one
    OUT each move it aside under a name of their own: 8 threads replacing the same OUT at
    once all succeed, OUT is one of their complete artifacts, nothing is left beside it."""
    import shutil
    import threading

    from qcompile.driver import _remove_stale_temporaries, _replace

    def artifact(path, tag):
        path.mkdir()
        (path / "report.json").write_text(json.dumps({"qcompile_version": "0", "tag": tag}))
        return path

    dead = 999999999
    out = artifact(tmp_path / "out", "current")
    artifact(tmp_path / f".out.old.{dead}", "legacy name")
    artifact(tmp_path / f".out.old.{dead}.x1y2", "moved aside")
    artifact(tmp_path / f".out.{dead}.ab12", "temporary")
    live = artifact(tmp_path / f".out.old.{os.getppid()}.z9", "a live compile's")
    other = artifact(tmp_path / f".out.v2.{dead}.ab12", "another OUT's (out.v2) temporary")
    users = tmp_path / f".out.old.{dead}.u5"  # not an artifact: never removed
    users.mkdir()
    (users / "keep.txt").write_text("the user's file")
    _remove_stale_temporaries(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", live.name, other.name, users.name])
    shutil.rmtree(users)
    # killed between the renames: OUT missing, the previous one aside
    shutil.rmtree(out)
    artifact(tmp_path / f".out.old.{dead}.q7", "previous")
    _remove_stale_temporaries(out)
    assert json.loads((out / "report.json").read_text())["tag"] == "previous"

    for round_ in range(10):  # each round: 8 compiles finishing at once
        tmps = [artifact(tmp_path / f".out.{os.getpid()}.r{round_}t{i}", f"racer {round_}.{i}") for i in range(8)]
        errors, go = [], threading.Barrier(len(tmps))

        def race(t):
            go.wait()
            try:
                _replace(t, out)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=race, args=(t,)) for t in tmps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert json.loads((out / "report.json").read_text())["tag"].startswith(f"racer {round_}.")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", live.name, other.name])


def test_data_dtype_rule(tmp_path, capsys, tiny_encoder_onnx, tiny_encoder_eval):
    """One rule for the dtypes of --eval-data, --calib-data and `run --inputs` (before: any
    float or integer data was cast silently, 2^24 + 1 became 2^24): float64 for a float32
    input is rounded, with a note naming the file and input; integers and bools are taken
    where float32 holds every value exactly (|v| <= 2^24), with a note; beyond, and floats
    for an integer input, and values out of an integer input's range, are one line, exit 2,
    naming the role, file and input. Bad data stops a compile before any pass runs (no
    "running" status line); NaN/Inf before the model is even loaded."""
    from qcompile.errors import QCompileError
    from qcompile.samples import check_array, conform_dtype

    notes = []
    x64 = np.array([0.1, 1.5], np.float64)
    assert conform_dtype("x", x64, "float32", "evaluation data e.npz", notes.append).dtype == np.float32
    assert conform_dtype("x", np.array([2 ** 24, -3], np.int64), "float32", "d", notes.append).tolist() == [2 ** 24, -3]
    assert conform_dtype("x", np.array([1.5], np.float16), "float32", "d", notes.append).dtype == np.float32
    assert conform_dtype("m", np.array([0, 1], np.int64), "bool", "d", notes.append).tolist() == [False, True]
    assert notes == ["evaluation data e.npz: input 'x' is float64, cast to float32 (values rounded to float32's "
                     "precision)", "d: input 'x' is int64, cast to float32 (exact)",
                     "d: input 'x' is float16, cast to float32 (exact)", "d: input 'm' is int64, cast to bool (exact)"]
    assert conform_dtype("x", np.array([0.5], np.float64), "float32", "d", notes.append).dtype == np.float32
    assert notes[-1].endswith("cast to float32 (exact)")
    for arr, want, expect in [(np.array([2 ** 24 + 1]), "float32", "values beyond float32's exact integers"),
                              (np.array([1e300]), "float32", "out of float32's range"),
                              (np.array([0.5]), "int64", "is float64, the model takes int64"),
                              (np.array([300]), "uint8", "outside uint8's range"),
                              (np.array([2]), "bool", "outside bool's range"),
                              (np.array(["a"]), "float32", "the model takes float32")]:
        with pytest.raises(QCompileError, match=re.escape(f"calibration data c.npz: input 'x' is {arr.dtype}")) as e:
            check_array("x", arr, ["n"], want, "calibration data c.npz")
        assert expect in str(e.value)

    data = dict(np.load(tiny_encoder_eval))

    def cli(*args):
        rc, _, err = compile_(capsys, *args)
        return rc, [x for x in err.strip().splitlines() if x]

    f64 = tmp_path / "f64.npz"
    np.savez(f64, x=data["x"].astype(np.float64), mask=data["mask"].astype(np.uint8))
    out = tmp_path / "out"
    rc, lines = cli(tiny_encoder_onnx, "-o", out, "-q", "--eval-data", f64)
    assert rc == 0 and lines == [
        f"qcompile: note: evaluation data {f64}: input 'x' is float64, cast to float32 (exact)",
        f"qcompile: note: evaluation data {f64}: input 'mask' is uint8, cast to float32 (exact)"], lines
    rc, lines = cli("run", out, "--inputs", f64, "--output", tmp_path / "r.npz")
    assert rc == 0 and lines[0] == f"qcompile: note: --inputs {f64}: input 'x' is float64, cast to float32 (exact)"
    lossy = tmp_path / "lossy.npz"
    np.savez(lossy, x=data["x"].astype(np.float64) + 1e-12, mask=data["mask"])
    rc, lines = cli("run", out, "--inputs", lossy, "--output", tmp_path / "r.npz")
    assert rc == 0 and lines[0].endswith("is float64, cast to float32 (values rounded to float32's precision)")

    big = tmp_path / "big.npz"
    np.savez(big, x=np.full(data["x"].shape, 2 ** 24 + 1, np.int64), mask=data["mask"])
    for args in (["run", out, "--inputs", big, "--output", tmp_path / "r2.npz"],
                 [tiny_encoder_onnx, "-o", tmp_path / "o2", "--calib-data", big, "--pipeline", "int-only"],
                 [tiny_encoder_onnx, "-o", tmp_path / "o3", "--eval-data", big]):
        rc, lines = cli(*args)
        role = "--inputs" if args[0] == "run" else "calibration data" if "--calib-data" in args else "evaluation data"
        assert rc == 2 and lines[-1].startswith(f"qcompile: error: {role} {big}: input 'x' is int64 with values "
                                                "beyond float32's exact integers"), lines
        assert not [x for x in lines if x.startswith("qcompile: running")], lines  # before any pass
        assert not (tmp_path / "r2.npz").exists()

    for role in ("--eval-data", "--calib-data"):  # NaN: named by role and file, before loading the model
        nan = tmp_path / "nan.npz"
        x = data["x"].copy()
        x[1, 2, 3] = np.nan
        np.savez(nan, x=x, mask=data["mask"])
        rc, lines = cli(tiny_encoder_onnx, "-o", tmp_path / "o4", role, nan, "--pipeline", "int-only")
        what = "evaluation data" if role == "--eval-data" else "calibration data"
        assert rc == 2 and lines == [f"qcompile: error: {what} {nan}: array 'x' has 1 NaN/Inf value(s)"], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.npz", "f64.npz", "lossy.npz", "nan.npz", "out",
                                                          "r.npz"]


def test_calibration_samples_split_into_fixed_batch(tmp_path, tiny_encoder):
    """A fixed-batch model calibrated with more samples than its batch: the samples are
    split into the model's batch, as evaluation does (before: a TVM match_cast traceback,
    exit 1); a count that does not split, and NaN in calibration data, are one line naming
    the input (before: 'dyadic multiplier must be finite' from inside the pass)."""
    import qcompile as qc
    from qcompile.calibration import Calibration, MinMax
    from qcompile.errors import QCompileError
    from qcompile.models.tiny import encoder_inputs, export_onnx

    m, inp = tiny_encoder
    b = inp[0].shape[0]
    mod = qc.PassManager(qc.pipeline("none")).run(
        qc.load(export_onnx(m, inp, tmp_path / "fixed.onnx", ["x", "mask"], dynamic_batch=False)).mod)
    x, mask = (t.numpy() for t in encoder_inputs(b=4 * b, seed=3))
    param = mod["main"].params[0]
    got = Calibration({"x": x, "mask": mask}, batch=4 * b, progress=False).collect(mod, {param: [MinMax()]})
    (mm,) = got[param]
    assert mm.min == float(x.min()) and mm.max == float(x.max())  # every sample seen, in batches of b
    if b > 1:
        with pytest.raises(QCompileError, match="fixed batch"):
            Calibration({"x": x[:b + 1], "mask": mask[:b + 1]}, batch=b + 1, progress=False).collect(
                mod, {param: [MinMax()]})
    x[0, 0, 0] = np.nan  # refused when the data is given, before any work
    with pytest.raises(QCompileError, match="calibration data: array 'x' has 1 NaN"):
        Calibration({"x": x, "mask": mask}, batch=4 * b, progress=False)
    # fewer evaluation samples than a fixed batch: said as such (a symbolic batch never says "fixed")
    from qcompile.evaluate import usable

    fixed = qc.load(str(tmp_path / "fixed.onnx"))
    if b > 1:
        with pytest.raises(QCompileError, match=f"evaluation data has 1 sample\\(s\\), fewer than the model's "
                                                f"fixed batch of {b}"):
            usable(fixed, {"x": x[1:2], "mask": mask[1:2]}, batch=16)
    with pytest.raises(QCompileError, match="evaluation data has 0 samples$"):
        usable(fixed, {"x": x[:0], "mask": mask[:0]}, batch=16)


def test_help_version_and_assets_list_import_no_tvm():
    """`--help`, `--version`, `run --help` and `assets list` answer without importing TVM
    (before: 3.6 s here, all of it TVM's import), and the target names `--help` lists are
    the backends'."""
    import subprocess
    import sys

    from qcompile.backends import TARGETS
    from qcompile.cli import TARGET_NAMES

    assert sorted(TARGET_NAMES) == sorted(TARGETS)
    import qcompile as qc
    import qcompile.driver  # noqa: F401 - imports the submodules named like the API's functions

    assert callable(qc.build) and qc.build.__module__ == "qcompile.build"
    assert callable(qc.canonicalize) and qc.canonicalize.__module__ == "qcompile.passes.canonicalize.rules"
    for argv in (["--help"], ["--version"], ["run", "--help"], ["assets", "list"]):
        code = ("import sys\nfrom qcompile.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
                "assert 'tvm' not in sys.modules, 'tvm imported'\n" % argv)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (argv, r.stderr[-500:])


def test_few_calibration_samples_warn(tiny_encoder_onnx, capsys):
    """Calibration on fewer than 16 samples says so on stderr (issue #30: one sample gave
    visibly worse int-only scales); 16 or more are silent."""
    import qcompile as qc
    from qcompile.calibration import FEW_SAMPLES, Calibration, MinMax
    from qcompile.models.tiny import encoder_inputs

    mod = qc.PassManager(qc.pipeline("none")).run(qc.load(str(tiny_encoder_onnx)).mod)
    param = mod["main"].params[0]
    for n, warned in ((2, True), (FEW_SAMPLES, False)):
        x, mask = (t.numpy() for t in encoder_inputs(b=n, seed=4))
        Calibration({"x": x, "mask": mask}, batch=8, progress=False).collect(mod, {param: [MinMax()]})
        err = capsys.readouterr().err
        assert ("warning: calibration on 2 sample(s) only" in err) == warned, err


def test_status_lines_without_a_terminal(tmp_path, capsys, tiny_encoder_onnx, tiny_encoder_eval):
    """Without -q, each step says what it does on stderr (load, passes, build, evaluation);
    stderr is not a terminal here, so progress is plain start/end lines, no ``\\r`` redraws."""
    rc, _, err = compile_(capsys, tiny_encoder_onnx, "-o", tmp_path / "out", "--eval-data", tiny_encoder_eval,
                          "--batch", "2")
    assert rc == 0 and "\r" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("qcompile: loading ")
    assert "qcompile: running 1 pass(es): canonicalize + 8 llvm graph rewrite(s)" in lines
    assert "qcompile: building for llvm" in lines and "qcompile: evaluating: 3 batches" in lines
    assert any(re.fullmatch(r"qcompile: evaluating: 3 batches done in \d+\.\d s", x) for x in lines)


def test_internal_error_is_one_line_and_debug_shows_it(tmp_path, capsys, monkeypatch, tiny_encoder_onnx):
    """A defect (any exception that is not an input error) is one line, exit 1, pointing at
    --debug; with --debug the exception propagates with its traceback."""
    from qcompile import driver

    def broken(*a, **k):
        raise RuntimeError("something inside broke\nCheck failed: x == y")

    monkeypatch.setattr(driver, "compile_model", broken)
    rc, _, err = compile_(capsys, tiny_encoder_onnx, "-o", tmp_path / "o", "-q")
    assert rc == 1 and err.strip().splitlines() == [
        "qcompile: internal error: RuntimeError: Check failed: x == y (rerun with --debug for the traceback; "
        "please report it)"]
    with pytest.raises(RuntimeError, match="something inside broke"):
        main([str(tiny_encoder_onnx), "-o", str(tmp_path / "o"), "-q", "--debug"])


def test_int_only_fixes_symbolic_image_sizes_from_the_calibration_data(tmp_path, capsys):
    """Optimum exports vision models with symbolic height and width; int-only lowers
    convolutions, pools and means for one size (before: "mean at 'lv12' over a symbolic axis").
    The driver fixes the float inputs' symbolic dims beyond the batch to the calibration
    data's, says so, records it in report.json, and keeps the batch symbolic."""
    from qcompile.models import zoo

    path = zoo.ZOO["regnet"].onnx
    feeds = [zoo.onnx_feed(path, batch=2, seed=i) for i in range(8)]
    calib = tmp_path / "calib.npz"
    np.savez(calib, **{k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]})
    out = tmp_path / "out"
    rc = main([str(path), "--pipeline", "int-only", "--calib-data", str(calib), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "fixing pixel_values=?x3x32x32 from the calibration data" in err
    rep = json.loads((out / "report.json").read_text())
    assert rep["model"]["input_shapes_from_calibration"] == {"pixel_values": [None, 3, 32, 32]}
    (inp,) = rep["model"]["inputs"]
    assert inp["shape"][1:] == [3, 32, 32] and not isinstance(inp["shape"][0], int)
    # an explicit --input-shape wins: no fixing said
    rc = main([str(path), "--pipeline", "int-only", "--calib-data", str(calib), "-o", str(out),
               "--input-shape", "pixel_values=?x3x32x32"])
    assert rc == 0 and "from the calibration data" not in capsys.readouterr().err


def _square_grid_model(path):
    """Patch tokens reshaped to a square grid of side ``sqrt(h * w)`` computed in float (as
    DPT's neck does), then a linear layer: TVM's importer cannot take ``Pow`` of a symbolic
    size (a known zoo gap: dpt at ``none``), and it imports with the size fixed."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    nodes = [helper.make_node("Shape", ["pixel_values"], ["sh"]),
             helper.make_node("Gather", ["sh", "two"], ["h"], axis=0),
             helper.make_node("Gather", ["sh", "three"], ["w"], axis=0),
             helper.make_node("Mul", ["h", "w"], ["hw"]),
             helper.make_node("Cast", ["hw"], ["hwf"], to=f),
             helper.make_node("Pow", ["hwf", "half"], ["side_f"]),
             helper.make_node("Cast", ["side_f"], ["side"], to=i64),
             helper.make_node("Unsqueeze", ["side", "zero1"], ["side1"]),
             helper.make_node("Concat", ["zero1", "side1", "side1", "three1"], ["grid"], axis=0),
             helper.make_node("Transpose", ["pixel_values"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["t", "grid"], ["g"]),
             helper.make_node("MatMul", ["g", "W"], ["m"]),
             helper.make_node("Add", ["m", "bias"], ["y"])]
    rng = np.random.RandomState(0)
    inits = [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in
             {"two": 2, "three": 3, "zero1": [0], "three1": [3]}.items()]
    inits += [numpy_helper.from_array(np.array(0.5, np.float32), "half"),
              numpy_helper.from_array(rng.randn(3, 8).astype(np.float32), "W"),
              numpy_helper.from_array(rng.randn(8).astype(np.float32), "bias")]
    graph = helper.make_graph(nodes, "grid", [helper.make_tensor_value_info("pixel_values", f, ["b", 3, "h", "w"])],
                              [helper.make_tensor_value_info("y", f, ["b", "s", "s", 8])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_int_only_retries_an_import_that_needs_fixed_sizes(tmp_path, capsys):
    """An image size TVM cannot carry symbolically (a square grid of side ``sqrt(h * w)``
    computed in float): for int-only, which fixes the sizes anyway, the driver retries the
    import at the calibration data's sizes instead of stopping there."""
    path = tmp_path / "grid.onnx"
    _square_grid_model(path)
    calib = tmp_path / "calib.npz"
    np.savez(calib, pixel_values=np.random.RandomState(1).randn(8, 3, 16, 16).astype(np.float32))
    rc = main([str(path), "--pipeline", "int-only", "--calib-data", str(calib), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "fixing pixel_values=?x3x16x16 from the calibration data" in err
    # without calibration data to say the size, the import error stands, with its hint
    rc = main([str(path), "--pipeline", "none", "-o", str(tmp_path / "none")])
    assert rc == 2 and "--input-shape" in capsys.readouterr().err


def test_an_image_size_tvm_cannot_carry_is_taken_as_a_multiple(tmp_path, capsys):
    """Swin's shifted windows and patch merging do not import over an arbitrary symbolic
    image size; the loader imports them again with height and width as multiples of 32,
    says so, and records it in report.json (the artifact refuses other sizes)."""
    from qcompile.models import zoo

    out = tmp_path / "out"
    rc = main([str(zoo.ZOO["swin"].onnx), "--pipeline", "none", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "note: pixel_values's height and width taken as multiples of 32" in err
    report = json.loads((out / "report.json").read_text())
    assert "multiples of 32" in report["model"]["dims_assumed"]
    assert report["model"]["inputs"][0]["shape"] == ["batch_size", "num_channels", "height", "width"]
