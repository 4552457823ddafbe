"""The compile job behind the CLI: load -> passes -> build -> export -> evaluate -> report,
written atomically (a temporary folder renamed into place on success)."""
from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

import tvm

from qcompile import report as rep_mod
from qcompile.backends import tune as tuning_options
from qcompile.build import build, check_target_options, target_passes
from qcompile.calibration import Calibration
from qcompile.interrupts import INTERRUPTS
from qcompile.samples import check_finite, read_npz
from qcompile.errors import QCompileError
from qcompile.evaluate import Reference, compare, compare_layers, usable
from qcompile.loader import load
from qcompile.passmanager import PassManager
from qcompile.pipelines import pipeline
from qcompile.progress import status


def compile_model(model_path, pipeline_spec: str = "none", target: str = "llvm", out="build",
                  calib_data=None, eval_data=None, input_shapes=None, arch=None, mcpu=None,
                  batch: int = 16, eval_limit: int | None = None, progress: bool = True,
                  int_io: bool | None = None, calib_window: int = 512, tune: int = 0, tune_db=None,
                  quantized: str | None = None) -> dict:
    out = Path(out)
    check_output_folder(out)
    if (tune or tune_db) and target != "llvm":
        raise QCompileError("--tune/--tune-db apply to --target llvm only")
    tuning_options.check_options(tune, tune_db)
    build_options = {k: v for k, v in (("arch", arch), ("mcpu", mcpu)) if v is not None}
    if tune_db:
        build_options.update(tune_db=tune_db, tune_trials=tune, progress=progress)
    check_target_options(target, build_options)
    passes = pipeline(pipeline_spec, target=target)  # validate everything cheap before any work
    if quantized is None:  # an already quantized file: as written for `none`, lifted to float for a pipeline
        quantized = "keep" if all(p.name == "canonicalize" for p in passes) else "float"
    if quantized not in ("keep", "float"):
        raise QCompileError(f"--quantized {quantized}: 'keep' or 'float'")
    if int_io is not None:
        if not any(hasattr(p.config, "int_io") for p in passes):
            if int_io:
                raise QCompileError("--int-io needs an integer pipeline", hint="--pipeline int-only")
        else:
            passes = pipeline(pipeline_spec, target=target, int_io=int_io)
    if target == "int-accel" and any(getattr(p.config, "float_islands", False) for p in passes):
        raise QCompileError("--target int-accel runs integers only: float_islands cannot be used with it",
                            hint="drop float_islands, or build for llvm or cuda")
    # the data files are read and checked for NaN/Inf here, before any work; against the
    # model's inputs (dtype, rank, dims, samples) as soon as it is loaded, before any pass
    calib = Calibration(calib_data, batch=batch, progress=progress, window=calib_window) if calib_data else None
    evald = read_npz(eval_data) if eval_data else None
    eval_what = f"evaluation data {eval_data}"
    if evald is not None and eval_limit:
        evald = {k: v[:eval_limit] for k, v in evald.items()}
    if evald is not None:
        check_finite(evald, eval_what)
    seconds = {}
    try:  # the output's folder is made (and proven writable) before any work
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(out)
        with INTERRUPTS.deferred():  # Ctrl-C between mkdtemp and the assignment would leave it behind
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", dir=out.parent))
    except OSError as e:
        raise QCompileError(f"cannot create output folder {out}: {e.strerror or e}") from None
    try:
        INTERRUPTS.check()
        t = time.perf_counter()
        status(f"loading {model_path}", progress)
        model = None
        try:
            model = load(model_path, input_shapes=input_shapes or {}, quantized=quantized)
            fixed = static_input_shapes(model, passes, calib, input_shapes or {})
            if fixed:
                model = None  # loaded again below, at the fixed sizes
        except QCompileError as e:
            # TVM could not import it with symbolic sizes (Swin's windows); a pipeline that fixes
            # them anyway tries the calibration data's sizes before giving up
            fixed = static_input_shapes(None, passes, calib, input_shapes or {}, _onnx_input_names(model_path))
            if not fixed:
                raise
            try:
                model = load(model_path, input_shapes={**(input_shapes or {}), **fixed}, quantized=quantized)
            except QCompileError:
                raise e from None
        if model is not None and model.meta.get("dims_assumed"):
            status(f"note: {model.meta['dims_assumed']}", progress)
        if model is not None and model.meta.get("quantized"):
            _note(model.meta["quantized"])  # with -q too: the numerics are not the file's when lifted
        if fixed:
            status("fixing " + ", ".join(f"{k}={'x'.join('?' if d is None else str(d) for d in v)}"
                                         for k, v in fixed.items())
                   + " from the calibration data (the integer kernels need static sizes; --input-shape "
                     "overrides)", progress)
            input_shapes = {**(input_shapes or {}), **fixed}
            model = model or load(model_path, input_shapes=input_shapes, quantized=quantized)
        seconds["load"] = time.perf_counter() - t
        if calib is not None:
            calib.conform(model.inputs, note=_note)
        if evald is not None:
            evald, _, _ = usable(model, evald, batch, eval_what, note=_note)
        INTERRUPTS.check()  # here and after each step: an interrupt that a fallback swallowed stops the compile
        lowering = target_passes(target, build_options)  # the backend's graph rewrites, dumped like passes
        pm = PassManager(passes + lowering, calibration=calib, ir_dir=tmp / "ir", probes=evald is not None)
        status(f"running {len(passes)} pass(es): {', '.join(p.name for p in passes)}"
               + (f" + {len(lowering)} {target} graph rewrite(s)" if lowering else ""), progress)
        t = time.perf_counter()
        weights_before = rep_mod.weight_bytes(model.mod)
        mod = pm.run(model.mod)
        seconds["passes"] = time.perf_counter() - t
        INTERRUPTS.check()
        t = time.perf_counter()
        status(f"building for {target}", progress)
        art = build(mod, target, **build_options)
        for r in pm.records[len(passes):]:
            art.info.update(r.notes)
        art.io = host_io(pm)
        files = art.export(tmp)
        seconds["build"] = time.perf_counter() - t
        INTERRUPTS.check()
        report = {
            "qcompile_version": __import__("qcompile").__version__,
            "tvm_version": tvm.__version__,
            "model": {"name": Path(model_path).name, "path": str(model_path), "source": model.source,
                      **{k: v for k, v in model.meta.items() if isinstance(v, (str, int, float, bool, type(None)))},
                      "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in model.inputs],
                      **({"input_shapes_from_calibration": {k: list(v) for k, v in fixed.items()}} if fixed else {}),
                      "outputs": model.outputs},
            "pipeline": pipeline_spec,
            "passes": [{"index": r.index, "name": r.name,
                        "op_changes": r.changed_ops(), "ir_file": r.ir_file, "notes": r.notes} for r in pm.records],
            "ops_after": pm.records[len(passes) - 1].ops_after if pm.records else {},  # after the pipeline
            "io": art.io,
            "memory": {"weight_bytes_before": weights_before, "weight_bytes_after": rep_mod.weight_bytes(mod)},
            "build": {"target": target, "info": art.info, "files": files,
                      "artifact_bytes": sum((tmp / f).stat().st_size for f in files)},
        }
        if evald is not None:
            if not art.runnable:
                report["evaluation"] = None
                report["evaluation_skipped"] = f"a {target} artifact cannot run on this machine"
            else:
                t = time.perf_counter()
                ref = Reference(model, module=model.meta.get("module"))
                ev = compare(art, model, evald, ref, batch=batch, progress=progress)
                report["evaluation"] = {"reference": "onnxruntime" if model.source == "onnx" else "torch", **ev}
                seconds["evaluate"] = time.perf_counter() - t
                failed = [r.notes["probes_failed"] for r in pm.records if "probes_failed" in r.notes]
                if pm.probe is None and failed:
                    report["evaluation"]["layers"] = None
                    report["evaluation"]["layers_skipped"] = "internal error making the probes: " + \
                        (failed[0].strip().splitlines() or [""])[0]
                if pm.probe is not None:
                    t = time.perf_counter()
                    at = pm.probe_index
                    try:
                        report["evaluation"]["layers"] = {
                            "pass": pm.records[at - 1].name,
                            "ir_file": pm.records[at - 2].ir_file if at > 1 else "00_input.py",
                            **layer_errors(pm.probe, target, build_options, model, evald, batch, progress)}
                    except KeyboardInterrupt:
                        raise
                    except Exception as e:  # noqa: BLE001 - the artifact stands; the cause is said, not hidden
                        report["evaluation"]["layers"] = None
                        first = (str(e).strip().splitlines() or [""])[0]
                        report["evaluation"]["layers_skipped"] = (
                            first if isinstance(e, QCompileError) else f"internal error: {type(e).__name__}: {first}")
                    seconds["layers"] = time.perf_counter() - t
        # every timing in this one field (and, with --tune, build.info's tuning time): two compiles of
        # the same inputs differ nowhere else
        report["seconds"] = {**{k: round(v, 3) for k, v in seconds.items()},
                             "each_pass": {f"{r.index:02d}_{r.name}": round(r.seconds, 4) for r in pm.records}}
        INTERRUPTS.check()
        rep_mod.write(tmp, report)
        _replace(tmp, out)
    except BaseException:
        with INTERRUPTS.deferred():  # a second Ctrl-C does not cut the clean-up short
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _note(msg: str) -> None:
    """A note about the input data (a dtype cast), printed with or without ``-q``."""
    print(f"qcompile: note: {msg}", file=sys.stderr, flush=True)


def _onnx_input_names(path) -> set | None:
    """The graph input names of an ONNX file (no weights read), or None if it is not one."""
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        inits = {i.name for i in proto.graph.initializer}
        return {i.name for i in proto.graph.input if i.name not in inits}
    except Exception:  # noqa: BLE001 - not an ONNX file: no names to go by
        return None


def static_input_shapes(model, passes, calib, given: dict, names: set | None = None) -> dict:
    """For a pipeline with a pass that lowers for static float input sizes (int-only):
    ``{input: (None, d1, ...)}`` fixing each float input's symbolic dims beyond the batch
    to the calibration data's (the batch stays symbolic), for inputs the user did not shape
    with ``--input-shape``. Empty when nothing needs fixing or the data cannot say. ``model``
    None (it did not load with its symbolic sizes): every float array's sizes beyond the batch."""
    if calib is None or not calib.shapes or not any(getattr(p, "static_float_inputs", False) for p in passes):
        return {}
    if model is None:  # the model could not be loaded with symbolic sizes: every float array's
        return {k: (None, *map(int, calib.shapes[k][1:])) for k in sorted(calib.float_names)
                if k not in given and len(calib.shapes[k]) > 1 and (names is None or k in names)}
    out = {}
    for spec in model.inputs:
        have = calib.shapes.get(spec.name)
        if spec.name in given or not str(spec.dtype).startswith("float") or have is None \
                or len(have) != len(spec.shape):
            continue
        if all(isinstance(d, int) for d in spec.shape[1:]):
            continue
        out[spec.name] = (None, *(d if isinstance(d, int) else int(h) for d, h in zip(spec.shape[1:], have[1:])))
    return out


def layer_errors(probe, target: str, build_options: dict, model, data: dict, batch: int, progress: bool) -> dict:
    """The per-layer error of a quantizing pass's probes (:func:`compare_layers`): both
    probe modules built for ``target`` (the float one as the float model; neither is
    exported), run on the evaluation data."""
    status(f"building the per-layer probes ({len(probe.bindings)} block outputs)", progress)
    options = {k: v for k, v in build_options.items() if not k.startswith("tune")}  # never tuned into the user's db
    float_art = build(probe.float_mod, target, **options)
    quant_art = build(probe.quant_mod, target, **options)
    return {"reference": "the float model before the quantizing pass, built by qcompile",
            "blocks": compare_layers(probe, float_art, quant_art, model, data, batch, progress)}


ARTIFACT_MARKER = "qcompile_version"  # a key of every report.json the driver writes


def is_artifact(folder: Path) -> bool:
    """True if ``folder`` holds a qcompile artifact (a ``report.json`` written by this driver)."""
    try:
        rep = json.loads((folder / "report.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(rep, dict) and ARTIFACT_MARKER in rep


def _stale_pid(out: Path, p: Path) -> tuple[str, int] | None:
    """``("tmp", pid)`` for a temporary folder ``.OUT.<pid>.<random>``, ``("old", pid)`` for
    a previous ``OUT`` moved aside by :func:`_replace` (``.OUT.old.<pid>.<random>``, or
    ``.OUT.old.<pid>`` as earlier versions named it); None for anything else."""
    parts = p.name[len(out.name) + 2:].split(".")
    if len(parts) == 2 and parts[0].isdigit():
        return "tmp", int(parts[0])
    if parts[0] == "old" and len(parts) in (2, 3) and parts[1].isdigit():
        return "old", int(parts[1])
    return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


def _remove_stale_temporaries(out: Path) -> None:
    """Folders left beside ``OUT`` by a killed compile, removed when their process is gone
    (a live one may be a concurrent compile): its temporary folders (``.OUT.<pid>.*``), and
    a previous ``OUT`` it had moved aside (``.OUT.old.<pid>*``). A compile killed between
    the two renames of :func:`_replace` leaves no ``OUT`` and the previous one moved aside:
    that one is put back as ``OUT``, not deleted. A moved-aside folder that holds no
    artifact (a user's folder :func:`_replace` could not put back) is never removed."""
    for p in sorted(out.parent.glob(f".{glob.escape(out.name)}.*")):
        kind_pid = _stale_pid(out, p)
        if kind_pid is None or not p.is_dir() or p.is_symlink() or _alive(kind_pid[1]):
            continue
        if kind_pid[0] == "old":
            if not is_artifact(p) and any(p.iterdir()):
                continue
            if not out.exists() and is_artifact(p):
                try:
                    os.rename(p, out)
                    continue
                except OSError:
                    pass
        shutil.rmtree(p, ignore_errors=True)


def check_output_folder(out: Path) -> None:
    """Refuse, before any work, an ``-o`` that the final rename could not take or that would
    destroy the user's files: only a missing path, an empty folder or a previous qcompile
    artifact may be (atomically) replaced."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise QCompileError(f"output path {out} exists and is not a folder",
                            hint="-o names a folder that qcompile creates or replaces")
    here = Path.cwd().resolve()
    target = out.resolve()
    if target == here or target in here.parents:
        raise QCompileError(f"output folder {out} is the working directory or contains it",
                            hint="-o names a folder of its own, e.g. -o build")
    if out.is_dir() and any(out.iterdir()) and not is_artifact(out):
        raise QCompileError(f"output folder {out} exists and does not hold a qcompile artifact; "
                            "refusing to replace it", hint="choose another -o, or remove the folder yourself")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise QCompileError(f"cannot create output folder {out}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise QCompileError(f"cannot create output folder {out}: {parent} is not writable")


def host_io(pm) -> dict | None:
    """The input/output scales an integer-I/O artifact needs from its host (else None)."""
    for r in pm.records:
        if r.notes.get("int_io"):
            return r.notes["io"]
    return None


def _replace(tmp: Path, out: Path, attempts: int = 20) -> None:
    """Move ``tmp`` to ``out``, the compile's one commit; an existing ``out`` (an artifact or
    an empty folder) is replaced. Not done when Ctrl-C arrived (``KeyboardInterrupt``); a
    signal during the renames is deferred, so that ``out`` is never left moved aside.

    Race-safe: ``out`` is moved aside under a name unique to this call (a fresh
    ``mkdtemp`` folder, ``.OUT.old.<pid>.<random>``: rename(2) replaces an empty folder), and
    when another compile puts its ``OUT`` in place between the two renames, the move is
    tried again: the last compile to finish wins, neither fails."""
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp made it 0700; the artifact gets the user's umask
    with INTERRUPTS.deferred():
        INTERRUPTS.check()  # an interrupt (even one a fallback swallowed) never replaces OUT
        olds = []
        try:
            for _ in range(attempts):
                try:
                    os.rename(tmp, out)  # out absent, or an empty folder: replaced atomically
                    INTERRUPTS.committed = out
                    return
                except OSError as e:
                    if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                        raise
                try:
                    mode = os.lstat(out).st_mode  # one look: another compile may move it meanwhile
                except FileNotFoundError:
                    continue
                if not stat.S_ISDIR(mode):
                    raise QCompileError(f"output path {out} became a file during the compile; not replacing it")
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.{os.getpid()}.", dir=out.parent))
                try:
                    os.rename(out, old)  # onto the empty folder: replaced
                except FileNotFoundError:  # another compile moved it first: try again
                    old.rmdir()
                    continue
                # checked once moved aside, so that what is checked is what gets removed
                if not is_artifact(old) and any(old.iterdir()):  # it changed during the compile
                    try:
                        os.rename(old, out)
                    except OSError:
                        raise QCompileError(f"output folder {out} no longer holds a qcompile artifact; it is "
                                            f"kept as {old}, not replaced") from None
                    raise QCompileError(f"output folder {out} no longer holds a qcompile artifact; not replacing it")
                olds.append(old)
            raise QCompileError(f"output folder {out} kept changing during the final rename "
                                f"({attempts} tries); another compile writes to it")
        finally:
            for old in olds:
                shutil.rmtree(old, ignore_errors=True)
