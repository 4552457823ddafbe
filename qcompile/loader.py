"""Loading models into Relax with TVM's own frontends.

* ONNX (a path, opsets 13-21, external-data files next to the model) through
  ``tvm.relax.frontend.onnx.from_onnx``;
* a ``torch.nn.Module`` with example inputs through ``torch.export`` and
  ``from_exported_program``.

Input dimensions that the ONNX file leaves symbolic stay symbolic unless the user fixes
them (``input_shapes={"input_ids": (1, 128)}``, CLI ``--input-shape input_ids=1x128``) or
declares them multiples (``Multiple(32)``, CLI ``32n``: symbolic, a multiple of 32). An
image model whose symbolic height and width TVM cannot carry as arbitrary sizes (Swin's
windows and patch merging) is imported again with them as multiples of
:data:`IMAGE_MULTIPLE`, and says so (``Model.meta["dims_assumed"]``).
Everything is checked before conversion, so bad input fails early with one line.
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qcompile.errors import QCompileError, UnsupportedOpError

MIN_OPSET, MAX_OPSET = 13, 24
#: the multiple an image model's symbolic height and width are taken as when TVM cannot carry
#: them as arbitrary sizes: the total stride of the usual vision backbones (4x4 patches and
#: three 2x2 merges in Swin; five stride-2 stages in CNNs)
IMAGE_MULTIPLE = 32


@dataclass(frozen=True)
class Multiple:
    """An input dim that stays symbolic and is a multiple of ``k`` (``--input-shape`` ``32n``)."""

    k: int

    def __str__(self) -> str:
        return f"{self.k}n"


@dataclass
class InputSpec:
    name: str
    shape: tuple  # ints, or strings for symbolic dims
    dtype: str


@dataclass
class Model:
    """A loaded model: the Relax module plus where it came from (for the float oracle)."""

    mod: Any  # tvm.IRModule
    inputs: list[InputSpec]
    outputs: list[str]
    source: str  # "onnx" | "torch"
    path: Path | None = None  # the ONNX file, when loaded from one
    meta: dict = field(default_factory=dict)


def parse_input_shapes(specs: list[str] | None) -> dict[str, tuple[int | None, ...]]:
    """Parse CLI ``name=1x128`` strings (``?``: keep that dim as the model has it)."""
    out: dict[str, tuple[int, ...]] = {}
    for s in specs or []:
        name, sep, dims = s.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = tuple(None if d == "?" else Multiple(int(d[:-1])) if d.endswith("n") else int(d)
                              for d in dims.lower().split("x"))
            # 0 is valid: an empty KV cache (prefill)
            if any(d.k < 1 if isinstance(d, Multiple) else d is not None and d < 0 for d in out[name]):
                raise ValueError
        except ValueError:
            raise QCompileError(f"bad --input-shape '{s}'",
                                hint="expected NAME=D0xD1x..., e.g. input_ids=1x128 (0 for an empty past, "
                                     "? to keep a dim symbolic: pixel_values=?x3x224x224, 32n for a symbolic "
                                     "multiple of 32: pixel_values=?x3x32nx32n)") from None
    return out


def load(model, input_shapes: dict | None = None, example_inputs: tuple | None = None,
         dynamic_shapes=None, quantized: str = "keep") -> Model:
    """Load an ONNX path, a Hugging Face checkpoint folder, or a ``torch.nn.Module`` (with
    ``example_inputs``, and torch.export's ``dynamic_shapes`` for dims to keep symbolic)
    into Relax. An ONNX file that is already quantized (``MatMulInteger``, ``QuantizeLinear``
    ...) is kept as written (``quantized="keep"``) or lifted back to float
    (``quantized="float"``) for a pipeline to quantize its own way
    (:mod:`qcompile.frontend.quantized`); ``meta["quantized"]`` says which."""
    if quantized not in ("keep", "float"):
        raise QCompileError(f"quantized={quantized!r}: 'keep' or 'float'")
    if isinstance(model, (str, os.PathLike)):
        if Path(model).is_dir() and (Path(model) / "config.json").exists():
            return load_hf(Path(model), input_shapes or {})
        return load_onnx(Path(model), input_shapes or {}, quantized)
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None and isinstance(model, torch.nn.Module):
        if example_inputs is None:
            raise QCompileError("a torch.nn.Module needs example_inputs", hint="qc.load(module, example_inputs=(x,))")
        return load_torch(model, tuple(example_inputs), dynamic_shapes)
    raise QCompileError(f"cannot load a {type(model).__name__}", hint="give an ONNX path or a torch.nn.Module")


# --------------------------------------------------------------------------------- ONNX
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
                10: "float16", 11: "float64", 16: "bfloat16"}


def _read_onnx(path: Path, quantized: str = "keep"):
    """``(proto, summary)``: the checked model, with onnxruntime's fused ops decomposed and a
    quantized model kept or lifted (``summary`` says what was done; ``""`` for a float model)."""
    import onnx

    if not path.exists():
        raise QCompileError(f"model file not found: {path}")
    if path.is_dir():
        raise QCompileError(f"model path is a folder, not an ONNX file: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=True)
    except Exception as e:  # protobuf DecodeError, missing external data, ...
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QCompileError(f"cannot read ONNX file {path}: {msg}") from None
    if not proto.graph.node:
        raise QCompileError(f"{path} is not a valid ONNX model (no graph nodes)")
    from qcompile.frontend.decompose import decompose_ops

    from qcompile.frontend.quantized import prepare

    proto, _ = decompose_ops(proto)  # onnxruntime's fused ops as standard ONNX
    try:
        onnx.checker.check_model(proto, full_check=False)
    except Exception as e:
        msg = str(e).strip().splitlines()[0]
        # onnxruntime's own float16 converter (keep_io_types) appends the input casts at the
        # end of the graph; onnxruntime sorts such a graph on load, and so does qcompile
        from qcompile.frontend.onnx_prepare import topological_order

        if "topologically sorted" not in msg or not topological_order(proto.graph):
            raise QCompileError(f"malformed ONNX model {path}: {msg}") from None
        try:
            onnx.checker.check_model(proto, full_check=False)
        except Exception as e2:
            msg = str(e2).strip().splitlines()[0]
            raise QCompileError(f"malformed ONNX model {path}: {msg}") from None
    # after the check: lifted to float, int8 weights grow four times (past protobuf's 2 GB
    # for a 600 MB file), and a checked, sorted graph is what the rewrite reads
    try:
        proto, summary = prepare(proto, quantized)
    except QCompileError:
        raise
    except Exception as e:  # noqa: BLE001 - scales that do not fit their codes, a damaged file
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QCompileError(f"cannot read the quantization of {path}: {msg}") from None
    return proto, summary


def _check_onnx(proto, path: Path) -> int:
    from onnx import numpy_helper
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise QCompileError(f"{path}: ONNX opset {opset} is not supported",
                            hint=f"re-export with an opset between {MIN_OPSET} and {MAX_OPSET}")
    from qcompile.frontend.decompose import NOT_DECOMPOSED

    known = _get_convert_map()
    why = {p.key[len(NOT_DECOMPOSED):]: p.value for p in proto.metadata_props if p.key.startswith(NOT_DECOMPOSED)}
    for i, node in enumerate(proto.graph.node):
        if node.op_type == "If" and node.domain in ("", "ai.onnx"):
            continue  # inlined where its condition folds (onnx_prepare.resolve_ifs), else refused then
        # TVM registers onnxruntime's contrib Attention under the name of ONNX's own (opset
        # 23) Attention, a different operator: one that was not decomposed is refused
        if node.domain not in ("", "ai.onnx") or node.op_type not in known or node.op_type == "Attention":
            name = node.name or f"#{i}"
            op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            if name in why:
                raise UnsupportedOpError(name, op, f"qcompile decomposes {node.op_type}, but not this one: {why[name]}")
            raise UnsupportedOpError(name, op, "TVM's ONNX frontend has no converter for it; "
                                     "re-export without it or decompose it into standard ONNX ops")
    for init in proto.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype.kind == "f" and np.isnan(arr).any():  # +-inf is legitimate (attention masks)
            bad = int(np.isnan(arr).sum())
            raise QCompileError(f"weight '{init.name}' has {bad} NaN value(s)",
                                hint="the model file is corrupt or was exported from a diverged checkpoint")
    return opset


def _refuse_data_dependent_ifs(proto, inputs) -> None:
    """An ``If`` left after folding has a condition that depends on data or on a symbolic
    dim: TVM 0.27 would import it as a ``relax.If``, which qcompile's passes do not take."""
    node = next((n for n in proto.graph.node if n.op_type == "If"), None)
    if node is None:
        return
    symbolic = [s for s in inputs if not all(isinstance(d, int) for d in s.shape)]
    how = ("fixing the input dims it reads may make it constant: " + " ".join(
        f"--input-shape {s.name}={'x'.join(str(d) if isinstance(d, int) else f'<{d}>' for d in s.shape)}"
        for s in symbolic)) if symbolic else "re-export with the branch chosen (torch.export, or a traced model)"
    raise UnsupportedOpError(node.name or "If", "If", f"its condition is not a constant ({how})")


#: operands that set an output's shape: (op type) -> (input index, what it is)
_SHAPE_OPERANDS = {"Split": ((1, "split sizes"),), "Reshape": ((1, "target shape"),), "Expand": ((1, "shape"),),
                   "Tile": ((1, "repeats"),), "ConstantOfShape": ((0, "shape"),),
                   "Range": ((0, "start"), (1, "limit"), (2, "delta")), "TopK": ((1, "k"),),
                   "OneHot": ((1, "depth"),), "Resize": ((3, "sizes"),), "Pad": ((1, "pads"),)}
#: ops whose output's shape is the data itself
_DATA_SHAPED = {"NonZero", "Compress", "Unique", "NonMaxSuppression"}


def data_dependent_shape(proto):
    """``(node, op type, what)`` of the first node whose output shape depends on the input
    *values* (not only on their shapes): a ``Split`` sized by a mixture-of-experts router's
    counts (JetMoE), a ``NonZero``. TVM compiles static and symbolic shapes; a shape that is
    data is not one. ``None`` when every shape operand reads the inputs through ``Shape`` /
    ``Size`` only."""
    inits = {i.name for i in proto.graph.initializer}
    data = {i.name for i in proto.graph.input if i.name not in inits}
    for n in proto.graph.node:  # (topologically ordered, as ONNX requires)
        read = [x for x in n.input if x in data]
        if n.op_type in _DATA_SHAPED and read:
            return n, n.op_type, "its output's length"
        for k, what in _SHAPE_OPERANDS.get(n.op_type, ()):
            if k < len(n.input) and n.input[k] in data:
                return n, n.op_type, f"its {what}"
        if n.op_type in ("Shape", "Size", "ConstantOfShape", "EyeLike"):
            continue  # their values are the shapes (or a constant over them)
        if read:
            data.update(x for x in n.output if x)
    return None


def _onnx_inputs(proto) -> list[InputSpec]:
    inits = {i.name for i in proto.graph.initializer}
    specs = []
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim)
        specs.append(InputSpec(vi.name, dims, _ONNX_DTYPES.get(tt.elem_type, str(tt.elem_type))))
    return specs


def load_onnx(path: Path, input_shapes: dict[str, tuple[int, ...]], quantized: str = "keep") -> Model:
    from qcompile.frontend.onnx_prepare import (concat_fixed_dims, fold_shape_values, integer_size_arithmetic,
                                                resolve_ifs, slice_facts, vector_axes)

    proto, lifted = _read_onnx(path, quantized)
    proto, _ = concat_fixed_dims(proto)
    opset = _check_onnx(proto, path)
    inputs = _onnx_inputs(proto)
    names = [s.name for s in inputs]
    multiples = {}
    for name, shape in input_shapes.items():
        shape = tuple(None if d == "?" else d for d in shape)  # "?" or None: keep the model's dim
        if any(isinstance(d, Multiple) for d in shape):
            multiples[name] = [d.k if isinstance(d, Multiple) else 1 for d in shape]
            shape = tuple(None if isinstance(d, Multiple) else d for d in shape)
        if name not in names:
            raise QCompileError(f"--input-shape names '{name}', which is not a model input",
                                hint=f"inputs are: {', '.join(names)}")
        spec = next(s for s in inputs if s.name == name)
        if len(shape) != len(spec.shape):
            raise QCompileError(f"input '{name}' has rank {len(spec.shape)} {spec.shape}, "
                                f"--input-shape gives rank {len(shape)}")
        for d, (want, have) in enumerate(zip(spec.shape, shape)):
            if isinstance(want, int) and want > 0 and have is not None and want != have:
                raise QCompileError(f"input '{name}' dim {d} is fixed to {want} in the model, --input-shape gives {have}")
        spec.shape = tuple(want if have is None else have for want, have in zip(spec.shape, shape))
        # into the proto too: TVM reads a partly fixed shape's dims there, and the shape
        # folding before import (fold_shape_values) folds what the fixed dims make constant
        # (Longformer's chunk indices: NonZero over masks sized by the sequence)
        dims = next(i for i in proto.graph.input if i.name == name).type.tensor_type.shape.dim
        for dim, have in zip(dims, shape):
            if have is not None:
                dim.Clear()
                dim.dim_value = have
    for name, ks in multiples.items():
        spec = next(s for s in inputs if s.name == name)
        bad = [d for d, k in enumerate(ks) if k > 1 and isinstance(spec.shape[d], int)]
        if bad:
            raise QCompileError(f"input '{name}' dim {bad[0]} is fixed to {spec.shape[bad[0]]} in the model; "
                                f"--input-shape declares it a symbolic multiple of {ks[bad[0]]}")
    shape_dict = {s.name: list(s.shape) for s in inputs if all(isinstance(d, int) for d in s.shape)}
    dtype_dict = {s.name: s.dtype for s in inputs}
    proto, _ = fold_shape_values(integer_size_arithmetic(proto))
    proto, _ = resolve_ifs(proto)
    proto = vector_axes(proto)
    _refuse_data_dependent_ifs(proto, inputs)
    facts = slice_facts(proto)
    meta = {"opset": opset, **({"quantized": lifted} if lifted else {})}
    try:
        mod = _from_onnx(proto, shape_dict, dtype_dict, opset, facts, multiples)
    except QCompileError:
        raise
    except Exception as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        images = {} if multiples else _image_multiples(inputs)
        mod = None
        if images:  # Swin's windows: sizes TVM cannot carry as arbitrary ones, as multiples it can
            try:
                mod = _from_onnx(proto, shape_dict, dtype_dict, opset, facts, images)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                mod = None
        if mod is None:
            dd = data_dependent_shape(proto)
            if dd is not None and dd[1].lower() in msg.lower():
                # TVM failed on that op, whose shape no input shape would fix: say what it depends on
                node, op, what = dd
                raise UnsupportedOpError(node.name or op, op, f"{what} computed from the input data, not from the "
                                         "input shapes alone: a data-dependent shape (e.g. a mixture of experts "
                                         "dispatched by routing counts); TVM compiles static and symbolic shapes "
                                         f"only; re-export with a dense formulation (TVM said: {msg})") from None
            symbolic = [s for s in inputs if not all(isinstance(d, int) for d in s.shape)]
            hint = None
            if symbolic:
                hint = "the model has symbolic input dims; fix the ones TVM cannot carry with " + " ".join(
                    f"--input-shape {s.name}={'x'.join(str(d) if isinstance(d, int) else f'<{d}>' for d in s.shape)}"
                    for s in symbolic) + " (a number per <dim>, or ? to keep it symbolic" + (
                    f"; tried with {', '.join(images)} height and width as multiples of {IMAGE_MULTIPLE} too)"
                    if images else ")")
            raise QCompileError(f"TVM's ONNX frontend failed on {path.name}: {msg}", hint=hint) from None
        meta["dims_assumed"] = "; ".join(
            f"{name}'s height and width taken as multiples of {IMAGE_MULTIPLE}, since TVM cannot carry them as "
            f"arbitrary sizes; other sizes are refused at run time (--input-shape {name}=?x?x{IMAGE_MULTIPLE}nx"
            f"{IMAGE_MULTIPLE}n says so, a number fixes a size)" for name in images)
        multiples = images
    if multiples:
        meta["multiples"] = multiples
    return Model(mod, inputs, [o.name for o in proto.graph.output], "onnx", path, meta)


def _from_onnx(proto, shape_dict, dtype_dict, opset, facts, multiples: dict):
    """TVM's ``from_onnx`` with qcompile's converters; ``multiples`` (``{input: [k per
    dim]}``) puts a :class:`~qcompile.frontend.onnx_converters.DimsMultipleOf` after those
    inputs (on a copy of ``proto``)."""
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    from qcompile.frontend.onnx_converters import multiples_bound_back, patched_converters
    from qcompile.frontend.onnx_prepare import shape_value_consumers

    if multiples:
        model = onnx.ModelProto()
        model.CopyFrom(proto)
        for node in model.graph.node:
            node.input[:] = [f"{i}__multiple" if i in multiples else i for i in node.input]
        for i, (name, ks) in enumerate(multiples.items()):
            model.graph.node.insert(i, onnx.helper.make_node("QcDimsMultipleOf", [name], [f"{name}__multiple"],
                                                             multiples=ks))
        proto = model
    as_tensor = shape_value_consumers(proto)
    with patched_converters(facts, as_tensor), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        # TVM prints the failing node before raising (the error says it too), and onnx's
        # checker warns about qcompile's own op
        warnings.filterwarnings("ignore", message=".*QcDimsMultipleOf")
        mod = from_onnx(proto, shape_dict=shape_dict, dtype_dict=dtype_dict, opset=opset, keep_params_in_input=False)
        return multiples_bound_back(mod)


def _image_multiples(inputs) -> dict:
    """``{input: [1, 1, IMAGE_MULTIPLE, IMAGE_MULTIPLE]}`` for each float input of rank 4 whose
    height and width are both symbolic (an image batch, NCHW)."""
    return {s.name: [1, 1, IMAGE_MULTIPLE, IMAGE_MULTIPLE] for s in inputs
            if len(s.shape) == 4 and str(s.dtype).startswith("float")
            and not any(isinstance(d, int) for d in s.shape[2:])}


# --------------------------------------------------------------------------- HF folder
def load_hf(folder: Path, input_shapes: dict) -> Model:
    """A Hugging Face checkpoint folder (``config.json`` + weights), loaded with
    ``transformers`` (the ``hf`` extra) and traced by torch.export at the example shapes:
    ``input_ids``/``attention_mask`` of ``1x16`` for text models (decoders without cache,
    returning logits), ``pixel_values`` of ``1xCxSxS`` at the config's image size for vision
    models; ``input_shapes`` (``--input-shape``) changes them. The float reference of
    ``--eval-data`` is the same torch module."""
    try:
        import torch
        import transformers
    except ImportError:
        raise QCompileError(f"{folder} is a Hugging Face checkpoint folder; loading it needs transformers",
                            hint="pip install 'qcompile[hf]' (transformers==5.23.0)") from None
    try:
        config = transformers.AutoConfig.from_pretrained(str(folder))
        arch = (getattr(config, "architectures", None) or [None])[0]
        cls = getattr(transformers, arch, None) if arch else None
        cls = cls or transformers.AutoModel
        hf = cls.from_pretrained(str(folder), attn_implementation="eager").eval()
    except Exception as e:  # noqa: BLE001 - a bad folder is the user's input
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QCompileError(f"cannot load the Hugging Face checkpoint {folder}: {msg}") from None
    vision = hasattr(config, "image_size") and hasattr(config, "num_channels") and not hasattr(config, "vocab_size")
    decoder = bool(arch and arch.endswith("ForCausalLM"))

    def shape(name, default):
        got = input_shapes.get(name)
        if got is not None and any(d is None for d in got):
            raise QCompileError(f"--input-shape {name}: a Hugging Face folder is traced at fixed shapes (no ?)")
        return tuple(got) if got is not None else default

    if vision:
        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.m = hf

            def forward(self, pixel_values):
                return self.m(pixel_values=pixel_values)[0]

        size = int(config.image_size) if not isinstance(config.image_size, (list, tuple)) else config.image_size
        hw = (size, size) if isinstance(size, int) else tuple(size)
        ex = (torch.randn(*shape("pixel_values", (1, int(config.num_channels), *hw))),)
    else:
        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.m = hf

            def forward(self, input_ids, attention_mask):
                extra = {"use_cache": False} if decoder else {}
                return self.m(input_ids=input_ids, attention_mask=attention_mask, **extra)[0]

        ids = shape("input_ids", (1, 16))
        ex = (torch.randint(0, int(getattr(config, "vocab_size", 2)), ids),
              torch.ones(shape("attention_mask", ids), dtype=torch.int64))
    module = Wrapped().eval()
    model = load_torch(module, ex)
    model.meta.update(module=module, hf_folder=str(folder), architecture=arch or type(hf).__name__)
    return model


# --------------------------------------------------------------------------------- torch
def load_torch(module, example_inputs: tuple, dynamic_shapes=None) -> Model:
    """A ``torch.nn.Module`` through ``torch.export`` at ``example_inputs``; with
    ``dynamic_shapes`` (torch.export's: ``{1: Dim("seq")}`` per input, or for a ``*args``
    forward a one-element tuple of them) those dims stay symbolic in the module."""
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    from qcompile.frontend.torch_converters import CONVERTERS as TORCH_CONVERTERS
    from qcompile.frontend.torch_converters import refuse_unsupported_complex

    for name, p in list(module.named_parameters()) + list(module.named_buffers()):
        if p.is_floating_point() and torch.isnan(p).any():
            raise QCompileError(f"weight '{name}' has {int(torch.isnan(p).sum())} NaN value(s)")
    module = module.eval()
    try:
        ep = torch.export.export(module, example_inputs, dynamic_shapes=dynamic_shapes)
        _refuse_data_dependent_shapes(ep)
        refuse_unsupported_complex(ep)
        mod = from_exported_program(ep, keep_params_as_input=False, unwrap_unit_return_tuple=True,
                                    custom_convert_map=TORCH_CONVERTERS)
    except QCompileError:
        raise
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QCompileError(f"torch.export/import failed: {type(e).__name__}: {msg}") from None
    mod = wrap_negative_take_indices(promote_integral_scans(mod))
    params = mod["main"].params
    import tvm

    inputs = [InputSpec(p.name, tuple(int(d) if isinstance(d, tvm.tirx.IntImm) else str(d) for d in p.ty.shape),
                        str(p.ty.dtype)) for p in params]
    return Model(mod, inputs, ["output"], "torch", None, {"example_inputs": example_inputs})


def _refuse_data_dependent_shapes(ep) -> None:
    """A shape read from tensor *values* (``x.item()``, ``.tolist()``: torch.export's
    unbacked symbols, e.g. JetMoE's experts split by their routed-token counts) has no
    Relax form: TVM's importer dies on it with an unrelated ``TypeError``. Named here."""
    import re

    reads = {str(n.meta.get("val")): n for n in ep.graph.nodes if n.op == "call_function"
             and getattr(n.target, "__name__", "") in ("_local_scalar_dense.default", "item.default")}
    if not reads:
        return
    for shaped in ep.graph.nodes:
        dims = getattr(shaped.meta.get("val"), "shape", None) or ()
        used = {u for d in dims for u in re.findall(r"u\d+", str(d)) if u in reads}
        if used:
            node = reads[sorted(used)[0]]
            users = ", ".join(sorted(u.name for u in node.users))[:120]
            raise QCompileError(f"torch.export: node '{node.name}' reads a tensor value into a shape (.item() / "
                                f".tolist(), used by {users}): data-dependent shapes have no compiled form",
                                hint="write the computation with static shapes (for a transformers MoE: "
                                     "experts_implementation='grouped_mm' or 'batched_mm')")


def wrap_negative_take_indices(mod):
    """torch's negative indices for ``x[..., idx]`` (``aten.index.Tensor``) and
    ``index_select``, which ``from_exported_program`` drops: it emits ``R.take(x, idx,
    mode="fast")``, and a constant ``-2`` then reads outside ``x`` (uninitialized memory:
    different numbers each run). Falcon's fused multi-query projection takes its key and
    value heads as ``qkv[:, :, [-2]]`` and ``[-1]``. A constant index over a static axis is
    written as its non-negative equal (analyses see the plain gather); any other negative
    constant, and every computed index, takes ``mode="wrap"``, torch's meaning for ``-n <= i
    < 0`` (the ONNX importer already wraps Gather's indices)."""
    import numpy as np
    import tvm
    from tvm import relax
    from tvm.relax import op as O

    def fix(call, _builder):
        if getattr(call.op, "name", None) != "relax.take" or str(call.attrs.mode) != "fast":
            return None
        x, idx = call.args
        axis = int(call.attrs.axis) if call.attrs.axis is not None else None
        if not isinstance(idx, tvm.ir.GenericConst):
            return O.take(x, idx, axis=axis, mode="wrap")
        v = idx.value.numpy()
        if not (v < 0).any():
            return None
        n = x.ty.shape[axis] if axis is not None and x.ty.shape is not None else None
        if hasattr(n, "value") and (v >= -int(n.value)).all():
            return O.take(x, relax.const(np.where(v < 0, v + int(n.value), v).astype(v.dtype)), axis=axis,
                          mode="fast")
        return O.take(x, idx, axis=axis, mode="wrap")

    return _rewrite_calls(mod, fix)


_NARROW_INTEGRAL = ("bool", "int8", "int16", "int32", "uint8", "uint16", "uint32")


def promote_integral_scans(mod):
    """torch's integer type promotion for ``cumsum`` / ``cumprod`` / ``prod``, which
    ``from_exported_program`` drops (it keeps it for ``sum``): without an explicit
    ``dtype``, torch computes these over bool and integer inputs in int64. The importer
    emits ``R.cumsum(x, dtype=None)``, which keeps ``x``'s dtype: int32 wraps where torch
    does not, and bool is arithmetic on ``i1``, which TVM cannot compile (LLVM codegen dies
    with ``Check failed: (t.MatchesCode(DLDataTypeCode::kDLFloat))``). HF transformers'
    mask code does ``cumsum(position_ids_diff != 1)`` (Llama, Qwen2, GPT-NeoX, eager or sdpa).
    Types downstream follow (``equal`` of two int64 tensors is still bool)."""
    from tvm import relax
    from tvm.relax import op as O

    def narrow(e) -> bool:
        return str(getattr(e.ty, "dtype", "")) in _NARROW_INTEGRAL

    def no_dtype(call) -> bool:
        dt = call.attrs.dtype
        return dt is None or str(dt) in ("", "void")

    scans = {"relax.cumsum": O.cumsum, "relax.cumprod": O.cumprod}

    def fix(call, builder):
        name = getattr(call.op, "name", None)
        if name in scans and narrow(call.args[0]) and no_dtype(call):
            return scans[name](call.args[0], axis=call.attrs.axis, dtype="int64", exclusive=bool(call.attrs.exclusive))
        if name == "relax.prod" and narrow(call.args[0]):
            x = O.astype(call.args[0], "int64") if builder is None else builder.normalize(O.astype(call.args[0], "int64"))
            return O.prod(x, axis=call.attrs.axis, keepdims=bool(call.attrs.keepdims))
        return None

    return _rewrite_calls(mod, fix)


def _rewrite_calls(mod, fix):
    """Replace every call ``c`` of ``mod``'s Relax functions for which ``fix(c, builder)``
    is not None by that expression (``builder`` is None while looking for matches). A mutator, not ``rewrite_call``:
    where the result's dtype changes, it re-types the bound variable and re-infers every
    call downstream (``rewrite_call`` keeps the old annotation on the var, which is then not
    well-formed). ``mod`` itself when nothing matches."""
    from tvm import relax

    found = []
    for f in mod.functions.values():
        if isinstance(f, relax.Function):
            relax.analysis.post_order_visit(f.body, lambda e: found.append(e) if isinstance(e, relax.Call)
                                            and fix(e, None) is not None else None)
    if not found:
        return mod

    @relax.expr_functor.mutator
    class Rewrite(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            fixed = fix(call, self.builder_)
            return call if fixed is None else fixed

    mutator = Rewrite(mod)
    for gv, f in list(mod.functions.items()):
        if isinstance(f, relax.Function):
            mutator.builder_.update_func(gv, mutator.visit_expr(f))
    return mutator.builder_.get()
