"""Command line.

    qcompile MODEL.onnx --pipeline none --target llvm -o OUT [--calib-data F.npz] [--eval-data F.npz]
             [--input-shape NAME=1x128 ...] [--arch sm_80] [--mcpu znver3] [--batch 16]
             [--tune N --tune-db DIR | --tune-db DIR]   # llvm: MetaSchedule tuning, stored and reused
    qcompile --list-pipelines
    qcompile run OUT --inputs F.npz --output G.npz
    qcompile assets fetch [NAME ...]
    qcompile assets export smollm2 [--chunk 64]   # prints the decoder ONNX's path
    qcompile assets calib smollm2 [--tokens 8192] # prints the calibration tokens' path (.npz)
    qcompile assets fisher smollm2 [--tokens 8192] [--samples 2048]  # KVQuant's Fisher samples (.npz)

Errors caused by the input print one line and exit 2, leaving no OUT behind. Ctrl-C
(SIGINT) exits 130 with "qcompile: interrupted", whenever it arrives: see
:class:`qcompile.interrupts.Interrupts`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from qcompile.errors import QCompileError
from qcompile.interrupts import INTERRUPTS


#: how data files are checked against the model's inputs (qcompile.samples.conform_dtype), for --help
DATA_RULE = ("one array per model input, samples along the first axis; rank and fixed dims must match, NaN/Inf "
             "are refused. A float32 input takes float64 data rounded to float32 (a note on stderr says so) and "
             "integer or bool data whose values are exact in float32 (|value| <= 2^24; a note says so); an "
             "integer input takes integers within its range; anything else is refused (exit 2) before any pass "
             "runs.")


#: the names of qcompile.backends.TARGETS, here so that `--help` imports no TVM (a test
#: keeps the two equal)
TARGET_NAMES = ("cuda", "int-accel", "llvm")


def _compile_parser() -> argparse.ArgumentParser:
    from qcompile import __version__

    ap = argparse.ArgumentParser(prog="qcompile", description="Quantization compiler for transformer models (TVM Relax).",
                                 epilog="Data files (--calib-data, --eval-data, `run --inputs`): " + DATA_RULE
                                        + " Other commands: `qcompile run OUT --inputs F.npz --output G.npz`, "
                                        "`qcompile assets fetch [NAME ...]`.")
    ap.add_argument("model", nargs="?", help="ONNX file")
    ap.add_argument("--pipeline", "-p", default="none", help="pipeline name, a+b composition, or a .toml recipe")
    ap.add_argument("--version", action="version", version=f"qcompile {__version__}")
    ap.add_argument("--target", "-t", default="llvm", choices=TARGET_NAMES)
    ap.add_argument("-o", "--out", default="build", help="output folder (default build); written atomically on success. An existing folder is "
                         "replaced only if it is empty or a previous qcompile artifact")
    ap.add_argument("--calib-data", help=".npz of calibration inputs (leading axis = samples); for a decoder "
                                         "with a KV cache, a token stream: 'tokens' (1-D) and optionally 'bos'")
    ap.add_argument("--calib-window", type=int, default=512,
                    help="decoder calibration: tokens per window, each from an empty cache (default 512)")
    ap.add_argument("--eval-data", help=".npz of held-out inputs; the report compares against onnxruntime")
    ap.add_argument("--eval-limit", type=int, help="evaluate on the first N samples only")
    ap.add_argument("--input-shape", action="append", metavar="NAME=D0xD1...", help="fix a symbolic input shape")
    ap.add_argument("--arch", help="CUDA arch (default sm_80)")
    ap.add_argument("--mcpu", help="LLVM CPU (default: this machine's)")
    ap.add_argument("--batch", type=int, default=16, help="batch size for calibration/evaluation (symbolic batch dims)")
    ap.add_argument("--int-io", action="store_true", default=None,
                    help="integer pipelines: integer model inputs/outputs (scales in report.json 'io'); "
                         "the default for --target int-accel")
    ap.add_argument("--quantized", choices=("keep", "float"),
                    help="an already quantized ONNX file (MatMulInteger, QuantizeLinear ...): keep computes it as "
                         "written, float lifts it back to float weights for the pipeline to quantize (default: "
                         "keep for --pipeline none, float otherwise)")
    ap.add_argument("--tune", type=int, default=0, metavar="N",
                    help="llvm: first tune the matmul kernels with N MetaSchedule trials into --tune-db "
                         "(minutes; the default build never tunes)")
    ap.add_argument("--tune-db", metavar="DIR", help="llvm: tuning database to use (and to add to with --tune)")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    ap.add_argument("--debug", action="store_true", help="on an internal error, show its Python traceback")
    ap.add_argument("--list-pipelines", action="store_true", help="list pipelines and exit")
    return ap


def _main_compile(argv) -> int:
    a = _compile_parser().parse_args(argv)  # --help and --version before TVM is imported

    from qcompile.driver import compile_model
    from qcompile.loader import parse_input_shapes
    from qcompile.pipelines import describe
    from qcompile.report import summary

    if a.list_pipelines:
        print("\n".join(describe()))
        return 0
    if not a.model:
        raise QCompileError("no model given", hint="qcompile MODEL.onnx --pipeline none --target llvm -o OUT")
    if a.batch < 1:
        raise QCompileError("--batch must be at least 1")
    rep = compile_model(a.model, a.pipeline, a.target, a.out, calib_data=a.calib_data, eval_data=a.eval_data,
                        input_shapes=parse_input_shapes(a.input_shape), arch=a.arch, mcpu=a.mcpu,
                        batch=a.batch, eval_limit=a.eval_limit, progress=not a.quiet, int_io=a.int_io,
                        calib_window=a.calib_window, tune=a.tune, tune_db=a.tune_db, quantized=a.quantized)
    print(summary(rep, a.out))
    return 0


def _main_run(argv) -> int:
    ap = argparse.ArgumentParser(prog="qcompile run",
                                 description="Execute a compiled artifact (llvm, int-accel; cuda where a GPU is present).")
    ap.add_argument("artifact", help="output folder of `qcompile MODEL ... -o OUT`")
    ap.add_argument("--inputs", required=True,
                    help=".npz with one array per model input (leading axis = samples). "
                         + DATA_RULE.replace("before any pass runs", "before the model runs"))
    ap.add_argument("--output", required=True, help=".npz to write, one array per model output")
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args(argv)

    import numpy as np
    import tvm

    from qcompile.backends.common import Artifact
    from qcompile.samples import batches, read_npz

    folder = Path(a.artifact)
    rep_path, lib = folder / "report.json", folder / "model.so"
    if not rep_path.exists() or not lib.exists():
        raise QCompileError(f"{folder} is not a qcompile artifact folder (needs report.json and model.so)")
    out_dir = Path(a.output).resolve().parent
    if not out_dir.is_dir():
        raise QCompileError(f"--output {a.output}: folder {out_dir} does not exist")
    if a.batch < 1:
        raise QCompileError(f"--batch must be >= 1, got {a.batch}")
    rep = _artifact_report(rep_path)
    _check_library(lib)
    device = "cpu"
    if rep["build"]["target"] == "cuda":
        from qcompile.backends.cuda import gpu_present

        if not gpu_present():
            raise QCompileError("a cuda artifact cannot run on this machine (no CUDA GPU found)")
        device = "cuda"
    data = read_npz(a.inputs)
    specs = rep["model"]["inputs"]
    missing = [s["name"] for s in specs if s["name"] not in data]
    if missing:
        raise QCompileError(f"--inputs {a.inputs} lacks input(s) {', '.join(missing)}")
    from qcompile.samples import check_array

    io = (rep.get("io") or {}).get("inputs") or {}
    what = f"--inputs {a.inputs}"
    for s_ in specs:
        arr = data[s_["name"]]
        want = (io.get(s_["name"]) or {}).get("dtype") or s_.get("dtype") or str(arr.dtype)
        arr = data[s_["name"]] = check_array(s_["name"], arr, s_["shape"], want, what=what,
                                             note=lambda m: print(f"qcompile: note: {m}", file=sys.stderr))
        if len(arr) == 0:
            raise QCompileError(f"{what}: input '{s_['name']}' has 0 samples")
    first = {s["shape"][0] for s in specs if s["shape"]}
    fixed = [d for d in first if isinstance(d, int) and d > 0]
    bs = fixed[0] if fixed else a.batch
    art = Artifact(rep["build"]["target"], None, tvm.runtime.load_module(str(lib)), device=device, io=rep.get("io"))
    outs: list[list] = []
    for feed in batches({s["name"]: data[s["name"]] for s in specs}, bs):
        res = art.run(*[feed[s["name"]] for s in specs])
        outs = outs or [[] for _ in res]
        for acc, r in zip(outs, res):
            acc.append(r)
    names = rep["model"]["outputs"]
    names = names if len(names) == len(outs) else [f"output{i}" for i in range(len(outs))]
    INTERRUPTS.check()
    output = Path(a.output)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp.npz")  # beside it, so that the rename is atomic
    try:
        np.savez(tmp, **{n: np.concatenate(o) for n, o in zip(names, outs)})
        with INTERRUPTS.deferred():
            INTERRUPTS.check()
            tmp.replace(output)
            INTERRUPTS.committed = output
    except BaseException:
        with INTERRUPTS.deferred():
            tmp.unlink(missing_ok=True)
        raise
    print(f"wrote {a.output}: " + ", ".join(f"{n} {np.concatenate(o).shape}" for n, o in zip(names, outs)))
    return 0


def _artifact_report(path: Path) -> dict:
    """An artifact's ``report.json``, checked for what ``run`` reads."""
    try:
        rep = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise QCompileError(f"{path} is not valid JSON ({type(e).__name__}: {e}); the artifact is damaged") from None
    ok = isinstance(rep, dict) and isinstance(rep.get("build"), dict) and "target" in rep["build"] \
        and isinstance(rep.get("model"), dict) and isinstance(rep["model"].get("inputs"), list) \
        and all(isinstance(s, dict) and "name" in s and isinstance(s.get("shape"), list) for s in rep["model"]["inputs"])
    if not ok:
        raise QCompileError(f"{path} lacks build.target or model.inputs: not a complete qcompile report")
    return rep


def _check_library(lib: Path) -> None:
    """``model.so`` must be a whole ELF file: a truncated one crashes the process (SIGBUS)
    when loaded, so its section table is checked against the file size first."""
    import struct

    size = lib.stat().st_size
    with open(lib, "rb") as f:
        head = f.read(64)
    if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
        raise QCompileError(f"{lib} is not a 64-bit ELF shared library; the artifact is damaged")
    end = "<" if head[5] == 1 else ">"
    shoff, = struct.unpack(end + "Q", head[40:48])
    shentsize, shnum = struct.unpack(end + "HH", head[58:62])
    if shoff + shentsize * shnum > size:
        raise QCompileError(f"{lib} is truncated ({size} bytes, its section table ends at "
                            f"{shoff + shentsize * shnum}); the artifact is damaged")


def _main_assets(argv) -> int:
    from qcompile import assets

    ap = argparse.ArgumentParser(prog="qcompile assets", description="Fetch and cache models and data sets.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="install/cache assets (all by default)")
    f.add_argument("names", nargs="*",
                   help=f"any of: {', '.join(sorted(assets.ASSETS))}")
    f.add_argument("--for-tests", action="store_true", help="only what the test suite uses")
    sub.add_parser("list", help="what is available and whether it is cached")
    e = sub.add_parser("export", help="export a cached decoder to ONNX (once) and print its path")
    e.add_argument("model", choices=["smollm2"])
    e.add_argument("--chunk", type=int, default=64, help="tokens per step (static in the graph; default 64)")
    c = sub.add_parser("calib", help="write a decoder's calibration token stream (.npz) once and print its path")
    c.add_argument("model", choices=["smollm2"])
    c.add_argument("--tokens", type=int, default=8192, help="tokens of the calibration text (default 8192)")
    fi = sub.add_parser("fisher", help="write a decoder's Fisher samples on its calibration text (.npz, for "
                                       "kv-prerope's nuq=true fisher=PATH) once and print their path")
    fi.add_argument("model", choices=["smollm2"])
    fi.add_argument("--tokens", type=int, default=8192, help="tokens of the calibration text (default 8192)")
    fi.add_argument("--samples", type=int, default=2048, help="token positions sampled (default 2048)")
    a = ap.parse_args(argv)
    if a.cmd == "fisher":
        from qcompile.models import smollm2

        print(smollm2.fisher_samples(a.tokens, a.samples))
        return 0
    if a.cmd == "calib":
        from qcompile.models import smollm2

        print(smollm2.calibration_tokens(a.tokens))
        return 0
    if a.cmd == "export":
        from qcompile.models import smollm2

        if a.chunk < 1:
            raise QCompileError(f"--chunk must be positive, got {a.chunk}")
        print(smollm2.export_onnx(a.chunk))
        return 0
    if a.cmd == "list":
        for name, asset in sorted(assets.ASSETS.items()):
            print(f"{name:<16} {'ok     ' if asset.present() else 'missing'}  {asset.description}")
        return 0
    if a.for_tests:
        assets.fetch(sorted(n for n, x in assets.ASSETS.items() if x.for_tests))
    else:
        assets.fetch(a.names or sorted(assets.ASSETS))
    return 0


def main(argv=None) -> int:
    entry = argv is None  # the qcompile command (python -m qcompile, the console script), not a caller's test
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    with INTERRUPTS.installed(for_the_process=entry):
        try:
            if argv[:1] == ["run"]:
                rc = _main_run(argv[1:])
            elif argv[:1] == ["assets"]:
                rc = _main_assets(argv[1:])
            else:
                rc = _main_compile(argv)
            INTERRUPTS.check()  # a signal during the final rename (deferred) or swallowed on its way
            return rc
        except BaseException as e:  # noqa: BLE001 - sorted in _report; SystemExit (argparse) passes through
            with INTERRUPTS.deferred():  # the one line is said, not cut short by a second Ctrl-C
                return _report(e, debug)


def _report(e: BaseException, debug: bool) -> int:
    """The one line on stderr for an exception out of a command, and the exit code."""
    if isinstance(e, KeyboardInterrupt) or (INTERRUPTS.seen and not isinstance(e, SystemExit)):
        # whatever the interrupt became on its way through TVM (a RuntimeError, a pass's failure)
        where = f" after {INTERRUPTS.committed} was written (it is complete)" if INTERRUPTS.committed else ""
        print(f"qcompile: interrupted{where}", file=sys.stderr)
        return 130
    if isinstance(e, QCompileError):
        print(f"qcompile: error: {e}", file=sys.stderr)
        return e.exit_code
    if not isinstance(e, Exception) or debug:
        raise e
    # a defect of qcompile or TVM, not of the input: one line, exit 1
    first = (str(e).strip().splitlines() or [""])[-1][:300]
    print(f"qcompile: internal error: {type(e).__name__}: {first} (rerun with --debug for the traceback; "
          "please report it)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
