"""Pass infrastructure: typed passes run through TVM's pass machinery, with instruments.

A :class:`Pass` has a ``name``, a typed ``Config`` (a dataclass; unknown or ill-typed
options are refused), says whether it ``needs_calibration``, and implements
``transform(mod, ctx) -> IRModule``. Each one is wrapped as a TVM module pass and run
under a ``tvm.transform.PassContext`` whose instruments

* write the IR after every pass as TVMScript (``ir/NN_name.py``; ``00_input.py`` first),
* time every pass,
* count ops before and after (``qcompile.ir.op_histogram``).

An exception inside a pass becomes a :class:`PassError` naming the pass and, where the
failure happened inside a pattern rewrite, the Relax binding it was rewriting.
"""
from __future__ import annotations

import dataclasses
import time
import typing
from pathlib import Path
from typing import Any, ClassVar

import tvm

from qcompile.errors import PassError, QCompileError
from qcompile.ir import op_histogram, script
from qcompile.rewrite import RewriteError


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """A pass without options."""


class Pass:
    """Base class of qcompile passes. Subclasses set ``name`` and implement ``transform``."""

    name: ClassVar[str] = "pass"
    Config: ClassVar[type] = NoConfig
    needs_calibration: ClassVar[bool] = False
    #: the pass lowers for static sizes of float inputs beyond the batch (int-only's
    #: convolutions, pools and means): the driver fixes symbolic ones from calibration data
    static_float_inputs: ClassVar[bool] = False

    def __init__(self, **options: Any):
        self.config = make_config(self.Config, options, self.name)

    def calibration_requests(self, mod) -> dict:
        """``{relax.Var in main: [Collector, ...]}`` the pass needs statistics for."""
        return {}

    def transform(self, mod, ctx: "PassContext"):
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{f.name}={getattr(self.config, f.name)!r}" for f in dataclasses.fields(self.config))
        return f"{self.name}({opts})"


def make_config(cls, options: dict, pass_name: str):
    """Build a config dataclass from user options, checking names and types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in options.items():
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise QCompileError(f"pass '{pass_name}' has no option '{key}'", hint=f"options: {known}")
        want = hints[key]
        base = typing.get_origin(want) or want
        ok = isinstance(value, base) if isinstance(base, type) else True
        if base is float and isinstance(value, int) and not isinstance(value, bool):
            options[key] = float(value)
            ok = True
        if base is int and isinstance(value, bool):
            ok = False
        if not ok:
            raise QCompileError(f"pass '{pass_name}' option '{key}' must be {getattr(want, '__name__', want)}, "
                                f"got {type(value).__name__} {value!r}")
    return cls(**options)


@dataclasses.dataclass
class Probes:
    """A quantizing pass's answer to a request for per-layer error: ``float_mod`` and
    ``quant_mod`` are the pass's input and output modules whose ``main`` also returns, after
    its own outputs, the tensors named ``bindings`` (binding names of the input module, in
    the IR dump before the pass), dequantized in ``quant_mod``. ``labels`` say which block
    each is; ``io`` is the integer-I/O input scales when the quantized ``main`` takes integers."""

    bindings: list
    labels: list
    float_mod: object
    quant_mod: object
    io: dict | None = None


def mapped_probes(before, after, env: dict) -> Probes | None:
    """The :class:`Probes` of a pass that keeps the float graph's shape and re-emits it
    (``rebuild_main(..., env=env)``: ``env`` maps each var of ``before``'s ``main`` to its
    counterpart in ``after``'s): the block outputs of ``before``, read in both."""
    from qcompile.analysis.blocks import block_outputs
    from qcompile.rewrite import with_outputs

    points = [(v, label) for v, label in block_outputs(before) if isinstance(env.get(v), tvm.relax.Var)]
    if not points:
        return None
    return Probes([v.name for v, _ in points], [label for _, label in points],
                  with_outputs(before, [v for v, _ in points]), with_outputs(after, [env[v] for v, _ in points]))


@dataclasses.dataclass
class PassContext:
    """What a running pass can read (calibration statistics; ``probes``: whether per-layer
    error was asked for) and write (notes for the report; ``probe``: a :class:`Probes`)."""

    stats: dict = dataclasses.field(default_factory=dict)
    notes: dict = dataclasses.field(default_factory=dict)
    probes: bool = False
    probe: Probes | None = None

    def answer_probes(self, make) -> None:
        """Where per-block error was asked for, ``probe = make()``; a failure is said in the
        notes (``probes_failed``), never a reason for the compile to fail."""
        if not self.probes:
            return
        try:
            self.probe = make()
        except Exception as e:  # noqa: BLE001 - said in the report instead
            self.notes["probes_failed"] = f"{type(e).__name__}: {e}"


@dataclasses.dataclass
class PassRecord:
    index: int
    name: str
    seconds: float
    ops_before: dict
    ops_after: dict
    notes: dict
    ir_file: str | None

    def changed_ops(self) -> dict:
        keys = sorted(set(self.ops_before) | set(self.ops_after))
        return {k: self.ops_after.get(k, 0) - self.ops_before.get(k, 0) for k in keys
                if self.ops_after.get(k, 0) != self.ops_before.get(k, 0)}


@tvm.ir.instrument.pass_instrument
class PassRecorder:
    """TVM pass instrument: op histogram before and after, wall time, then ``on_record``.
    Only top-level passes named in ``names`` count (TVM's nested passes fire too)."""

    def __init__(self, names: set[str], on_record):
        self.names, self.on_record, self.depth = set(names), on_record, 0
        self.t0, self.before = 0.0, {}

    def run_before_pass(self, mod, info):
        self.depth += 1
        if self.depth == 1 and info.name in self.names:
            self.before = op_histogram(mod)
            self.t0 = time.perf_counter()

    def run_after_pass(self, mod, info):
        if self.depth == 1 and info.name in self.names:
            self.on_record(info.name, time.perf_counter() - self.t0, self.before, mod)
        self.depth -= 1


class PassManager:
    """Runs passes in order, collecting calibration statistics for the passes that need them."""

    def __init__(self, passes: list[Pass], calibration=None, ir_dir: str | Path | None = None,
                 probes: bool = False):
        self.passes = list(passes)
        self.probes = probes       # ask quantizing passes for per-layer probes
        self.probe: Probes | None = None  # the last one a pass gave, and that pass's index
        self.probe_index = 0
        self.calibration = calibration
        self.ir_dir = Path(ir_dir) if ir_dir is not None else None
        self.records: list[PassRecord] = []
        names = [p.name for p in self.passes]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise QCompileError(f"pass '{sorted(dup)[0]}' appears twice in the pipeline")

    def _write_ir(self, index: int, name: str, mod) -> str | None:
        if self.ir_dir is None:
            return None
        self.ir_dir.mkdir(parents=True, exist_ok=True)
        fname = f"{index:02d}_{name.replace('-', '_').replace('.', '_')}.py"
        (self.ir_dir / fname).write_text(script(mod))
        return fname

    def run(self, mod):
        self.records = []
        self.probe = None
        self._write_ir(0, "input", mod)
        for i, p in enumerate(self.passes, start=1):
            ctx = PassContext(probes=self.probes)
            if p.needs_calibration:
                if self.calibration is None:
                    raise QCompileError(f"pass '{p.name}' needs calibration data",
                                        hint="pass --calib-data F.npz (or calibration=qc.Calibration(...))")
                ctx.stats = self.calibration.collect(mod, p.calibration_requests(mod))
            mod = self._run_one(p, mod, ctx, i)
            if ctx.probe is not None:
                self.probe, self.probe_index = ctx.probe, i
        return mod

    def _run_one(self, p: Pass, mod, ctx: PassContext, index: int):
        raised: list[BaseException] = []  # exception types do not survive TVM's FFI boundary

        @tvm.ir.transform.module_pass(opt_level=0, name=p.name)
        def tvm_pass(m, _tvm_ctx):
            try:
                return p.transform(m, ctx)
            except BaseException as e:
                raised.append(e)
                raise

        def record(name, seconds, before, after):
            try:
                ok = tvm.relax.analysis.well_formed(after) is not False
            except Exception as e:  # noqa: BLE001
                ok, why = False, str(e).strip().splitlines()[0]
            else:
                why = "relax.analysis.well_formed failed"
            if not ok:
                raised.append(PassError(name, None, RuntimeError(f"produced ill-formed IR: {why}")))
                raise RuntimeError(why)
            ir_file = self._write_ir(index, name, after)
            self.records.append(PassRecord(index, name, seconds, before, op_histogram(after), dict(ctx.notes), ir_file))

        try:
            with tvm.transform.PassContext(opt_level=3, instruments=[PassRecorder({p.name}, record)]):
                return tvm_pass(mod)
        except Exception as e:  # noqa: BLE001 - becomes a one-line PassError
            e = raised[0] if raised else e
            if isinstance(e, KeyboardInterrupt):  # Ctrl-C inside a pass: an interrupt, not a failed pass
                raise KeyboardInterrupt from None
            if isinstance(e, QCompileError):
                raise e from None
            binding, cause, root = None, e, e
            while root is not None:
                if isinstance(root, RewriteError):
                    binding, cause = root.binding, root.cause
                    break
                root = root.__cause__ or root.__context__
            raise PassError(p.name, binding, cause) from e
