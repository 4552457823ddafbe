"""End to end through the command line on a small ONNX model exported in the test:
files written, report figures against onnxruntime, deterministic IR, `qcompile run`,
and bad input (one line, exit code 2, no OUT left behind, an existing OUT kept)."""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from qcompile.cli import main


def compile_(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_compile_llvm_end_to_end(tmp_path, capsys, tiny_encoder_onnx, tiny_encoder_eval):
    out = tmp_path / "out"
    rc, stdout, _ = compile_(capsys, tiny_encoder_onnx, "--pipeline", "none", "--target", "llvm", "-o", out,
                             "--eval-data", tiny_encoder_eval, "--batch", "4", "-q")
    assert rc == 0
    assert {p.name for p in out.iterdir()} == {"model.so", "ir", "report.json", "report.md"}
    assert sorted(p.name for p in (out / "ir").iterdir()) == ["00_input.py", "01_canonicalize.py"]
    rep = json.loads((out / "report.json").read_text())
    ev = rep["evaluation"]
    assert ev["reference"] == "onnxruntime" and ev["samples"] == 6
    (metrics,) = ev["outputs"].values()
    assert metrics["cosine"] >= 0.99999 and metrics["max_abs_err"] < 1e-4
    assert rep["passes"][0]["name"] == "canonicalize" and rep["passes"][0]["seconds"] >= 0
    assert "composite:qcompile.attention" in rep["ops_after"]
    assert "cosine" in stdout and "report.md" in stdout
    assert "## Against the float reference" in (out / "report.md").read_text()

    # IR dumps are byte-identical across runs
    out2 = tmp_path / "out2"
    assert compile_(capsys, tiny_encoder_onnx, "-o", out2, "-q")[0] == 0
    for name in ("00_input.py", "01_canonicalize.py"):
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


def test_cuda_and_int_accel_targets(tmp_path, capsys, tiny_encoder_onnx, tiny_encoder_eval):
    out = tmp_path / "cuda"
    rc, stdout, _ = compile_(capsys, tiny_encoder_onnx, "--target", "cuda", "-o", out, "-q")
    assert rc == 0 and (out / "model.cu").exists() and (out / "model.so").exists()
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
                                  "bad-input-shape", "tune-without-db", "missing-tune-db", "tune-cuda"])
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


@pytest.mark.parametrize("case", ["user-folder", "default-build", "cwd", "parent-is-file", "symlink"])
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
