"""``int-only``: I-ViT's integer-only transformer, post-training (Li & Gu, ICCV 2023).

Two passes:

``int-prepare`` (float -> float, the model's function unchanged): ``qcompile.rope``
composites are inlined (RoPE in an encoder), inference BatchNorm becomes its per-channel
affine, a convolution whose stride equals its kernel (a ViT patch embedding) becomes
reshape/transpose + matmul (+ its bias; other convolutions are integer ``conv2d``s with
one weight scale; a ``conv1d`` is a ``conv2d`` over a unit height), ``x * sigmoid(x)`` becomes SiLU (``x * sigmoid(c x)``, CLIP's quick GELU,
``silu(c x) / c``), and every LayerNorm ``LN(x; g, b)`` becomes ``LN(x; 1, 0) * g + b`` so the
normalized value is a tensor of its own (calibrated, quantized, and its affine folded
into the matmuls that read it: "gamma migration").

``int-only`` (needs calibration) walks ``main`` binding by binding and emits the integer
graph. Every float tensor gets one of these integer forms:

* ``Q``: int8 or int16 with one scale per tensor (int8 where it feeds a matmul or
  ShiftGELU, int16 for the residual stream, LayerNorm inputs and data movement);
* ``Acc``: int32 with a scale per last-axis channel (a matmul's accumulator, a bias added,
  a LayerNorm's ``gamma``): requantized lazily, by one dyadic multiply per channel, to
  whatever its consumer needs;
* ``Const``: a float constant quantized when a consumer fixes its scale.

Scales: int8 activations from the calibrated maximum of |x| (or a percentile,
``act_calib="percentile"``); a matmul's input gets a scale per channel, ``s_j`` folded
into the weight's rows (SmoothQuant, ``smooth_alpha``); int16 from the maximum; weights
int8 per output channel (max); biases int32 at the accumulator's scale. Requantization is dyadic (``intops.requant_ref``), round half up.
Softmax (inside the ``qcompile.attention`` composite) is Shiftmax on ``q k^T`` requantized
into the log domain with ``1/sqrt(d)`` folded in; the probabilities are uint8 (scale
2^-8) and ``P V`` an integer matmul. GELU is ShiftGELU. The only float left is the
model-input quantization and output dequantization; ``int_io`` removes both (the report
gives the scales). Every integer intermediate is bounded from the dtypes and the constants
(``notes['overflow']``); a bound over its type's range stops the pass naming the binding,
except Shiftmax, whose clamp ``n`` is lowered until ``L 2^(K+n) < 2^31``.

A symbolic attention length (an encoder exported with a dynamic sequence axis) is bounded
by ``max_length`` (default 512, BERT's limit): the overflow analysis and Shiftmax's ``n``
use the bound, and ``main`` checks it at run time before any integer work (an artifact
called with a longer sequence fails naming the length; it never overflows silently).
Image sizes must be static (``--input-shape pixel_values=?x3x224x224`` keeps the batch
symbolic; the CLI fixes them from the calibration data, ``static_float_inputs``): the patch
embedding is lowered as a matmul over patches of one grid.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional, Union

import numpy as np
import tvm
import tvm_ffi
from tvm import relax
from tvm.relax import op as O
from tvm.relax.dpl import is_const, is_op, wildcard

from qcompile.passes.int_only.uniform import fold_uniform
from qcompile.passes.int_only import intops
from qcompile.analysis.blocks import block_outputs
from qcompile.analysis.flops import binding_flops
from qcompile.analysis.graph import Graph
from qcompile.analysis.patterns import comm, mul, same, scalar
from qcompile.collectors import AbsMaxPerChannel, Histogram, MinMax
from qcompile.errors import QCompileError
from qcompile.ir import attention_roles, const_value, shape_of
from qcompile.passmanager import Pass, Probes
from qcompile.rewrite import rewrite, with_outputs

# ============================================================================ int-prepare


def patchify(func):
    """conv2d(x, w, stride=kernel, no padding) [+ bias] -> patches @ w^T [+ bias], same layout
    (a ViT patch embedding as a matmul; also used by the llvm backend, whose schedules tile
    matmuls but not convolutions)."""
    x, w, b = wildcard(), is_const(), is_const()
    conv = is_op("relax.nn.conv2d")(x, w)
    pat = is_op("relax.add")(conv, b) | conv

    def fn(call, m):
        c = m[conv]
        a = c.attrs
        wv = const_value(m[w])
        xs = shape_of(m[x])
        O_, C, kh, kw = wv.shape
        ok = (list(map(int, a.strides)) == [kh, kw] and all(int(p) == 0 for p in a.padding)
              and all(int(d) == 1 for d in a.dilation) and int(a.groups) == 1 and str(a.data_layout) == "NCHW"
              and str(a.kernel_layout) == "OIHW" and xs is not None and all(isinstance(d, int) for d in xs[2:])
              and xs[2] % kh == 0 and xs[3] % kw == 0)
        if not ok:
            return call
        bias = None
        if call.op.name == "relax.add":
            bv = const_value(m[b])
            if bv is None or bv.size != O_ or bv.reshape(-1).shape[0] != O_ or (bv.ndim == 4 and bv.shape[1] != O_):
                return call
            bias = bv.reshape(O_)
        n, hp, wp = xs[0], xs[2] // kh, xs[3] // kw
        t = O.reshape(m[x], [n, C, hp, kh, wp, kw])
        t = O.permute_dims(t, [0, 2, 4, 1, 3, 5])
        t = O.reshape(t, [n, hp * wp, C * kh * kw])
        y = O.matmul(t, relax.const(wv.reshape(O_, -1).T.copy()))
        if bias is not None:
            y = O.add(y, relax.const(bias.astype(wv.dtype)))
        y = O.reshape(y, [n, hp, wp, O_])
        return O.permute_dims(y, [0, 3, 1, 2])

    return rewrite(pat, fn, func)


def conv1d_as_conv2d(func):
    """conv1d(x [N, C, L], w [O, C/g, K]) -> squeeze(conv2d(x [N, C, 1, L], w [O, C/g, 1, K]))
    with the same stride, padding, dilation and groups: one integer convolution rule for
    speech feature extractors, HuBERT's grouped positional conv and SqueezeBERT's grouped
    1x1 projections."""
    x, w = wildcard(), is_const()

    def fn(call, m):
        a = call.attrs
        wv = const_value(m[w])
        if str(a.data_layout) != "NCW" or str(a.kernel_layout) != "OIW" or str(a.out_layout) not in ("NCW", "") \
                or wv is None or wv.ndim != 3:
            return call
        pad = [int(p) for p in a.padding]
        y = O.nn.conv2d(O.expand_dims(m[x], [2]), relax.const(wv[:, :, None, :]), strides=[1, int(a.strides[0])],
                        padding=[0, pad[0], 0, pad[-1]], dilation=[1, int(a.dilation[0])], groups=int(a.groups),
                        data_layout="NCHW", kernel_layout="OIHW")
        return O.squeeze(y, [2])

    return rewrite(is_op("relax.nn.conv1d")(x, w), fn, func)


def avg_pool1d_as_2d(func):
    """avg_pool1d(x [N, C, L]) -> squeeze(avg_pool2d(x [N, C, 1, L])) with the same window,
    stride, padding and count rule (SEW's squeezed sequence): one integer pooling rule."""
    x = wildcard()

    def fn(call, m):
        a = call.attrs
        if str(a.layout) != "NCW" or str(a.out_layout) not in ("NCW", ""):
            return call
        pad = [int(p) for p in a.padding]
        y = O.nn.avg_pool2d(O.expand_dims(m[x], [2]), pool_size=[1, int(a.pool_size[0])],
                            strides=[1, int(a.strides[0])], padding=[0, pad[0], 0, pad[-1]],
                            dilation=[1, int(a.dilation[0])], ceil_mode=bool(a.ceil_mode),
                            count_include_pad=bool(a.count_include_pad), layout="NCHW")
        return O.squeeze(y, [2])

    return rewrite(is_op("relax.nn.avg_pool1d")(x), fn, func)


def _split_layernorm(func):
    x, g, b = wildcard(), is_const(), is_const()

    def fn(call, m):
        gv, bv = const_value(m[g]), const_value(m[b])
        if np.all(gv == 1) and np.all(bv == 0):
            return call
        a = call.attrs
        n = O.nn.layer_norm(m[x], relax.const(np.ones_like(gv)), relax.const(np.zeros_like(bv)),
                            axes=[int(i) for i in a.axes], epsilon=float(a.epsilon))
        return O.add(O.multiply(n, m[g]), m[b])

    f = rewrite(is_op("relax.nn.layer_norm")(x, g, b), fn, func)

    def fn_rms(call, m):  # RMSNorm: the same split of its scale
        gv = const_value(m[g])
        if np.all(gv == 1):
            return call
        a = call.attrs
        n = O.nn.rms_norm(m[x], relax.const(np.ones_like(gv)), axes=[int(i) for i in a.axes], epsilon=float(a.epsilon))
        return O.multiply(n, m[g])

    return rewrite(is_op("relax.nn.rms_norm")(x, g), fn_rms, f)


def _silu(func):
    """``x * sigmoid(x)`` is SiLU; ``x * sigmoid(c x)`` (CLIP's quick GELU, c = 1.702) is
    ``silu(c x) / c``: one op that int-only lowers as ShiftGELU's ``x σ(x)``."""
    x, x2, c = wildcard(), wildcard(), is_const()
    sig = is_op("relax.sigmoid")

    def plain(call, m):
        return O.nn.silu(m[x]) if same(m[x], m[x2]) else call

    def scaled(call, m):
        cv = scalar(m[c])
        if not same(m[x], m[x2]) or cv is None or cv == 0:
            return call
        dt = str(call.ty.dtype)
        return O.multiply(O.nn.silu(O.multiply(m[x], relax.const(cv, dt))), relax.const(1.0 / cv, dt))

    func = rewrite(comm(mul, x, sig(comm(mul, x2, c))), scaled, func)
    return rewrite(comm(mul, x, sig(x2)), plain, func)


class IntPrepare(Pass):
    """Float-level preparation for ``int-only`` (equivalence-preserving)."""

    name = "int-prepare"

    def transform(self, mod, ctx):
        mod = _inline_rope(mod)
        # masks and position tables computed from the shapes over a symbolic batch, proved
        # the same for every sample: constants broadcast over the batch
        mod, folded = fold_uniform(mod)
        if folded:
            ctx.notes["uniform_folded"] = folded
        # inference BatchNorm (LeViT) as its per-channel affine: multiplies and adds by constants
        mod = relax.transform.FoldConstant()(relax.transform.DecomposeOpsForInference()(mod))
        mod = mod.clone() if hasattr(mod, "clone") else mod  # a pass may hand back its input: never mutate it
        f = _silu(_split_layernorm(patchify(avg_pool1d_as_2d(conv1d_as_conv2d(mod["main"])))))
        mod["main"] = f
        return relax.transform.Normalize()(mod)


def _inline_rope(mod):
    """``qcompile.rope`` composites (RoPE in an encoder: RoFormer, ModernBERT, ESM) inlined
    back into ``main``: their slices, negation, concat and the two products with the cos/sin
    tables each have an integer rule, the composite as a whole has none."""
    from qcompile.rewrite import emit_body, rebuild_main

    funcs = {gv: f for gv, f in mod.functions.items()
             if isinstance(f, relax.Function) and str((f.attrs or {}).get("Composite", "")) == "qcompile.rope"}
    if not funcs:
        return mod

    def on_binding(bb, var, val):
        if isinstance(val, relax.Call) and isinstance(val.op, relax.GlobalVar) and val.op in funcs:
            f = funcs[val.op]
            dims = {}  # the composite's own symbolic dims, as main's
            for prm, arg in zip(f.params, val.args):
                pshape, ashape = getattr(prm.ty, "shape", None), getattr(arg.ty, "shape", None)
                if pshape is not None and ashape is not None and len(pshape) == len(ashape):
                    dims.update((pd, ad) for pd, ad in zip(pshape, ashape)
                                if isinstance(pd, tvm.tirx.Var) and pd not in dims)
            f = f.bind_symbolic_vars(dims) if dims else f
            return emit_body(bb, f, dict(zip(f.params, val.args)))
        return None

    out = rebuild_main(mod, on_binding)
    names = {g.name_hint for g in funcs}
    for gv in [gv for gv in out.functions if gv.name_hint in names]:
        del out[gv]
    return out


# ============================================================================ integer forms


@dataclasses.dataclass
class Q:
    expr: relax.Expr
    scale: float
    dtype: str


@dataclasses.dataclass
class Acc:
    expr: relax.Expr       # int32
    scale: np.ndarray      # float64, shape () or (C,) along the last axis
    bound: float           # max |value| (worst case from dtypes and constants)
    norm: Optional[tuple] = None  # (normalized var, gamma, beta): a LayerNorm's affine, foldable into matmuls


@dataclasses.dataclass
class Const:
    make: Callable[[float, str], relax.Expr]  # (scale, dtype) -> integer expression
    absmax: float
    value: Optional[np.ndarray] = None        # the float value, where it is a plain constant (of the
    # tensor's rank, 1 along a symbolic axis it is broadcast over)


def _uniform_value(expr, lowered) -> Optional[np.ndarray]:
    """A where branch's value as a one-element array when it is one number: a scalar constant, or
    a constant broadcast to a shape (``broadcast_to(-inf, [S, S])``, CLIP's causal mask)."""
    v = const_value(expr)
    if v is None and isinstance(lowered, Const) and lowered.value is not None and lowered.value.size:
        v = lowered.value
    if v is None or not (v.size == 1 or (v == v.flat[0]).all()):
        return v
    return np.asarray(v.flat[0]).reshape(1)


@dataclasses.dataclass
class Mask:
    keep: relax.Expr        # int8, 1 = attend
    fill: float = -3.4e38   # what the float model adds where it drops (its minimum, or -1e4 ...)


@dataclasses.dataclass
class Raw:
    expr: relax.Expr        # a non-float value (ids, masks): copied as is


@dataclasses.dataclass
class TupleOf:
    fields: list            # a tuple of float-model expressions (each looked up where it is used)


@dataclasses.dataclass
class Lin:
    """A float tensor computed exactly from an integer one: ``a * float(expr) + b`` (an
    attention mask cast to float and scaled, ``(1 - float(m)) * min``), kept as the integer
    tensor and the two numbers until a consumer needs it: an attention turns it into a keep
    mask, a float island into the float value."""
    expr: relax.Expr        # integer (or bool) tensor
    a: float = 1.0
    b: float = 0.0


@dataclasses.dataclass
class Biased:
    """An additive mask plus a bias on the logits, summed before the scores take them (MPNet
    adds its constant relative position bias to the padding mask; SEW-D adds the mask to its
    position scores, an activation): the attention adds the bias in the log domain and drops
    by the mask."""
    mask: Union[Lin, Mask]
    bias: Optional[Const]
    src: relax.Expr         # the mask's own binding (its statistics show it two-valued)
    act: Optional[relax.Var] = None  # an activation bias (its binding), instead of ``bias``


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


#: elementwise functions without a rule of their own, lowered as a table over int8 codes
#: (``IntOnly.op_table``)
_TABLE_FUNCS = {"relax.exp": np.exp, "relax.tanh": np.tanh, "relax.erf": _erf, "relax.log": np.log,
                "relax.sin": np.sin, "relax.cos": np.cos, "relax.nn.softplus": lambda x: np.logaddexp(0, x),
                "relax.rsqrt": lambda x: 1 / np.sqrt(x), "relax.abs": np.abs}


def _c(v, dt):
    return relax.const(np.asarray(v, dtype=dt), dt)


# ============================================================================ the pass


@dataclasses.dataclass(frozen=True)
class IntOnlyConfig:
    act_calib: str = "max"            # "max" or "percentile" for per-tensor int8 activations
    percentile: float = 99.99
    shiftmax_K: int = 8               # log-domain fraction bits
    shiftmax_n: int = 15              # exponent clamp (lowered when a row is too long)
    softmax_bits: int = 8             # uint8 probabilities
    gelu_K: int = 8
    gelu_n: int = 15
    gelu_bits: int = 8                # sigmoid fraction bits
    fold_norm_affine: bool = True     # LayerNorm gamma/beta into the matmuls reading it
    smooth_alpha: float = 0.8         # SmoothQuant migration strength for matmul inputs (0: off)
    weight_bits: int = 8              # per-channel weight range [-(2^(b-1)-1), 2^(b-1)-1]; 7 lets
                                      # the llvm build use vpmaddubsw exactly (x86_packed.py)
    int_io: Optional[bool] = None     # None: decided by the target (int-accel: True)
    max_length: int = 512             # bound of a symbolic attention length (Shiftmax's overflow
                                      # bounds choose n by it; checked at run time); 0: refuse one
    float_islands: bool = False       # an op without an integer lowering runs in float between a
                                      # dequantize and a requantize (listed in the notes); never on
                                      # int-accel. False: such an op stops the pass, named


FLOATS = ("float16", "float32", "float64", "bfloat16")


def _is_float_tensor(v) -> bool:
    return isinstance(getattr(v, "ty", None), relax.TensorType) and str(v.ty.dtype) in FLOATS


class IntOnly(Pass):
    name = "int-only"
    Config = IntOnlyConfig
    needs_calibration = True
    static_float_inputs = True

    def calibration_requests(self, mod):
        main = mod["main"]
        hist = self.config.act_calib == "percentile"
        vars_ = [p for p in main.params] + [b.var for blk in main.body.blocks for b in blk.bindings
                                            if not isinstance(b.value, tvm.ir.GenericConst)]
        return {v: [MinMax(), AbsMaxPerChannel()] + ([Histogram()] if hist else [])
                for v in vars_ if _is_float_tensor(v)}

    def transform(self, mod, ctx):
        cfg = self.config
        if cfg.act_calib not in ("percentile", "max"):
            raise QCompileError(f"int-only: act_calib must be 'percentile' or 'max', not '{cfg.act_calib}'")
        lowering = _Lowering(mod, ctx.stats, cfg)
        out = _assemble(mod, lowering, lowering.run())
        ctx.notes.update(lowering.notes())
        if lowering.islands:  # each island's share of the float model's arithmetic
            work = binding_flops(mod, mod["main"], fill=max(cfg.max_length, 1))
            total = sum(work.values()) or 1
            for isl in lowering.islands:
                isl["flops_share"] = round(work.get(isl["binding"], 0) / total, 6)
        ctx.notes["ops"] = count_ops(out["main"])
        ctx.answer_probes(lambda: self.probes(mod, ctx.stats))  # per-block error for the report
        return out

    def probes(self, mod, stats) -> Probes | None:
        """The input and output modules returning each block's output as well (a second
        lowering walk, so the artifact's ``main`` is the one built without them)."""
        points = dict(block_outputs(mod))
        lowering = _Lowering(mod, stats, self.config)
        qmod = _assemble(mod, lowering, lowering.run(list(points)))
        points = [(v, points[v]) for v in lowering.probed]
        if not points:
            return None
        return Probes([v.name for v, _ in points], [label for _, label in points],
                      with_outputs(mod, [v for v, _ in points]), qmod,
                      lowering.io["inputs"] if lowering.int_io else None)


def _assemble(mod, lowering: "_Lowering", main):
    """``mod`` with its float ``main`` replaced by ``main`` (lowered by ``lowering``): the
    composites dropped, the integer kernels the lowering emitted added."""
    out = mod.clone()
    for gv, f in list(out.functions.items()):
        if isinstance(f, relax.Function) and (f.attrs or {}).get("Composite"):
            del out[gv]
    out["main"] = main
    for gv, f in lowering.bb.get().functions.items():
        if isinstance(f, tvm.tirx.PrimFunc):
            out[gv] = f
    return relax.transform.DeadCodeElimination()(relax.transform.Normalize()(out))


#: Relax op name -> the method of :class:`_Lowering` that lowers it (``@lowers``), as TVM's
#: ``register_legalize`` maps ops to legalizations: one rule per op, found by name
RULES: dict[str, Callable] = {}


def pool_counts(size, out, kernel, strides, padding, include_pad: bool) -> np.ndarray:
    """The divisor of each output position of a 2-D average pool, ``[OH, OW]`` (float64),
    as TOPI and PyTorch define it: the window clipped to the padded input where padding
    counts, to the input where it does not."""
    per_axis = []
    for ax in range(2):
        n, o, k, st, lo, hi = size[ax], out[ax], kernel[ax], strides[ax], padding[ax], padding[ax + 2]
        start = np.arange(o) * st - lo
        end = np.minimum(start + k, n + hi)
        per_axis.append(end - start if include_pad else np.minimum(start + k, n) - np.maximum(start, 0))
    # a ceil_mode window starting past the input sums nothing: TOPI divides it by 1
    return np.maximum(np.outer(per_axis[0], per_axis[1]), 1).astype(np.float64)


def lowers(op: str):
    """Register the decorated ``_Lowering`` method as the integer lowering of ``op``."""
    def deco(fn):
        if op in RULES:
            raise ValueError(f"int-only: two lowerings for {op}")
        RULES[op] = fn
        return fn
    return deco


def supported_ops() -> list[str]:
    """The ops int-only lowers: the rules, the attention composite, data movement."""
    return sorted({op.removeprefix("relax.") for op in RULES} | set(DATA_MOVEMENT) | {"qcompile.attention"})


class _Lowering:
    """One walk over ``main``: float bindings in, integer bindings out. Each op's rule is a
    method registered with :func:`lowers`."""

    def __init__(self, mod, stats, cfg: IntOnlyConfig):
        if not 2 <= int(cfg.weight_bits) <= 8:
            raise QCompileError(f"int-only: weight_bits={cfg.weight_bits} is outside 2..8 (int8 weights)")
        self.mod, self.stats, self.cfg = mod, stats, cfg
        self.int_io = bool(cfg.int_io)
        self.bb = relax.BlockBuilder()
        self.env: dict = {}
        self.cache: dict = {}
        self.overflow: list[dict] = []
        self.io: dict = {"inputs": {}, "outputs": []}
        self.binding = "?"
        self.kernels = 0
        self.notes_shiftmax: list[dict] = []
        self.bounded: list[str] = []   # symbolic attention lengths bounded by max_length
        self.normalized: dict = {}
        self.islands: list[dict] = []  # float islands (``float_islands``), in graph order
        self.probed: list = []         # the probes :meth:`run` returns, in order
        self.shape_only = Graph(mod).shape_only()  # for the hint of a failing position table

    def symbolic_lengths(self, main) -> list:
        """The symbolic attention lengths (last axis of each attention's ``k``), once each,
        when ``max_length`` bounds them (else the attention refuses them)."""
        if self.cfg.max_length <= 0:
            return []
        out = {}
        for blk in main.body.blocks:
            for b in blk.bindings:
                v = b.value
                if not (isinstance(v, relax.Call) and isinstance(v.op, relax.GlobalVar)):
                    continue
                f = self.mod[v.op]
                if (f.attrs or {}).get("Composite") != "qcompile.attention" or attention_roles(f) is None:
                    continue
                length = v.args[attention_roles(f)["params"].index("k")].ty.shape[-1]
                if not isinstance(length, tvm.tirx.IntImm):
                    out.setdefault(str(length), length)
        return list(out.values())

    def length_guards(self, lengths: list) -> None:
        """Run-time checks, ahead of the dataflow, that every symbolic attention length is at
        most ``max_length``: the overflow analysis (Shiftmax's row sums, P·V's accumulator)
        assumed it. The artifact fails with the length named rather than overflow silently."""
        bound = self.cfg.max_length
        self.bounded = [str(v) for v in lengths]
        for length in lengths:
            n = self.bb.emit(O.reshape(O.shape_to_tensor(relax.ShapeExpr([length])), []))
            ok = self.bb.emit(O.less_equal(n, relax.const(bound, "int64")))
            self.bb.emit(O.assert_op(ok, format_args=[n], format=(
                f"int-only: attention length {{}} exceeds max_length={bound}, the bound the integer "
                "kernels were compiled for")))

    # ------------------------------------------------------------------ scales
    def _stat(self, var):
        st = self.stats.get(var)
        if st is None:
            raise QCompileError(f"int-only: no calibration statistics for '{var.name}'")
        return st

    def scale(self, var, dtype: str) -> float:
        mm, _, *hist = self._stat(var)
        hist = hist[0] if hist else None
        lo, hi = intops.INT_RANGE[dtype]
        if not (math.isfinite(mm.min) and math.isfinite(mm.max)):
            raise QCompileError(f"int-only: calibrated range of '{var.name}' is not finite ({mm.min}, {mm.max})",
                                hint="NaN or inf in the float model's activations on the calibration data")
        top = mm.absmax
        if dtype == "int8" and hist is not None:
            top = min(top, hist.percentile(self.cfg.percentile))
        return (top if top > 0 else 1.0) / hi

    # ------------------------------------------------------------------ bookkeeping
    def check(self, op: str, bound: float, limit_bits: int) -> None:
        limit = 2 ** (limit_bits - 1) - 1
        self.overflow.append({"binding": self.binding, "op": op, "bound": float(bound), "limit": f"int{limit_bits}",
                              "headroom_bits": round(math.log2(limit / max(bound, 1)), 2)})
        if bound > limit:
            raise QCompileError(f"int-only: {op} at binding '{self.binding}' can reach {bound:.3g}, over the "
                                f"int{limit_bits} range",
                                hint="narrow the calibration range or split the reduction")

    def emit(self, expr):
        return self.bb.emit(expr)

    def requant(self, x, in_bound: float, m, dtype: str, clip=None):
        """int tensor ``x`` (|x| <= in_bound) times real ``m`` (scalar or per last axis) -> ``dtype``."""
        d = intops.dyadic(m)
        self.check("requantize (int64 product)", in_bound * float(d.mult.max()) + 2 ** (d.shift - 1), 64)
        lo, hi = clip if clip is not None else intops.INT_RANGE[dtype]
        mult = _c(d.mult, "int64")
        w = self.emit(O.multiply(self.emit(O.astype(x, "int64")) if _dtype(x) != "int64" else x, mult))
        w = self.emit(O.right_shift(self.emit(O.add(w, _c(1 << (d.shift - 1), "int64"))), _c(d.shift, "int64")))
        return self.emit(O.astype(self.emit(O.clip(w, lo, hi)), dtype))

    def rescale(self, v, target, dtype: str, clip=None):
        """A ``Q`` or ``Acc`` value requantized to scale ``target`` (scalar or per last axis)."""
        bound = intops.INT_RANGE[v.dtype][1] if isinstance(v, Q) else v.bound
        return self.requant(v.expr, bound, v.scale / target, dtype, clip)

    # ------------------------------------------------------------------ conversions
    def as_q(self, var, dtype: str) -> Q:
        """The value of float ``var`` as ``dtype`` at ``var``'s calibrated scale (cached)."""
        key = (var, dtype)
        if key in self.cache:
            return self.cache[key]
        v = self.env[var]
        if isinstance(v, Q) and v.dtype == dtype:
            return v
        if isinstance(v, Const):
            s = v.absmax / intops.INT_RANGE[dtype][1] if v.absmax > 0 else 1.0
            q = Q(v.make(s, dtype), s, dtype)
        elif isinstance(v, (Q, Acc)):
            s = self.scale(var, dtype)
            q = Q(self.rescale(v, s, dtype), s, dtype)
        else:
            raise QCompileError(f"int-only: '{var.name}' ({type(v).__name__}) cannot be used as a tensor here")
        self.cache[key] = q
        return q

    def to_scale(self, var, s: float, limit: float):
        """``var`` as int32 at scale ``s``, clipped to ``±limit``."""
        v = self.env.get(var) if isinstance(var, relax.Var) else None
        if v is None and isinstance(var, tvm.ir.GenericConst):
            v = self.const(var)
        if isinstance(v, Const):
            return v.make(s, "int32")
        if isinstance(v, (Q, Acc)):
            return self.rescale(v, s, "int32", (-limit, limit))
        raise QCompileError(f"int-only: '{getattr(var, 'name', var)}' cannot be added here")

    def const(self, c) -> Const:
        v = const_value(c).astype(np.float64)
        finite = bool(np.all(np.isfinite(v)))

        def make(s, dt, v=v):  # NaN/inf are refused where a consumer quantizes the constant; a mask's
            if not finite:     # -inf (Whisper's causal mask) is read as a mask before that
                raise QCompileError(f"int-only: constant used at binding '{self.binding}' holds NaN or inf")
            lo, hi = intops.INT_RANGE[dt]
            return _c(np.clip(np.floor(v / s + 0.5), lo, hi), dt)

        return Const(make, float(np.abs(v).max()) if v.size and finite else 0.0, v)

    def operand(self, e):
        if isinstance(e, tvm.ir.GenericConst):
            return self.const(e) if str(e.ty.dtype) in FLOATS else Raw(e)
        if isinstance(e, relax.Var) and e in self.env:
            return self.env[e]
        return Raw(e)  # a shape variable (arange(0, seq)), a PrimValue, a shape

    # ------------------------------------------------------------------ walk
    def run(self, probes: list | None = None):
        """The integer ``main``; with ``probes`` (float vars of the input's ``main``) it also
        returns their values, dequantized, after its own outputs (for per-layer error)."""
        main = self.mod["main"]
        params, float_inputs = [], []
        for p in main.params:
            if _is_float_tensor(p):
                s = self.scale(p, "int8")
                if self.int_io:
                    nv = relax.Var(p.name, relax.TensorType(p.ty.shape, "int8"))
                    params.append(nv)
                    self.env[p] = Q(nv, s, "int8")
                    self.io["inputs"][p.name] = {"dtype": "int8", "scale": s}
                else:
                    nv = relax.Var(p.name, p.ty)
                    params.append(nv)
                    float_inputs.append((p, nv, s))
                    self.io["inputs"][p.name] = {"dtype": str(p.ty.dtype), "scale": s, "quantized_in_artifact": True}
            else:
                nv = relax.Var(p.name, p.ty)
                params.append(nv)
                self.env[p] = Raw(nv)
        attrs = dict(main.attrs) if main.attrs else {}
        lengths = self.symbolic_lengths(main)
        with self.bb.function("main", params, attrs=attrs or None, pure=not lengths):
            self.length_guards(lengths)
            with self.bb.dataflow():
                for p, nv, s in float_inputs:  # the input boundary: floor(x / s + 0.5), clipped
                    lo, hi = intops.INT_RANGE["int8"]
                    t = self.emit(O.floor(self.emit(O.add(self.emit(O.multiply(nv, _c(1.0 / s, "float32"))),
                                                         _c(0.5, "float32")))))
                    self.env[p] = Q(self.emit(O.astype(self.emit(O.clip(t, lo, hi)), "int8")), s, "int8")
                for blk in main.body.blocks:
                    for b in blk.bindings:
                        self.binding = b.var.name
                        self.env[b.var] = self.lower(b.var, b.value)
                outs = self.outputs(main.body.body)
                if probes:
                    fields = list(outs.fields) if isinstance(outs, relax.Tuple) else [outs]
                    for v in probes:
                        try:
                            fields.append(self.dequantize(v))
                            self.probed.append(v)
                        except QCompileError:  # a form with no float value (a mask): not probed
                            pass
                    outs = relax.Tuple(fields)
                gv = self.bb.emit_output(outs)
            self.bb.emit_func_output(gv)
        return self.bb.get()["main"]

    def outputs(self, body):
        if isinstance(body, relax.Var) and isinstance(self.env.get(body), TupleOf):
            body = relax.Tuple(self.env[body].fields)  # the output tuple, bound in the dataflow block
        fields = body.fields if isinstance(body, relax.Tuple) else [body]
        res = []
        for f in fields:
            v = self.env.get(f) if isinstance(f, relax.Var) else None
            if isinstance(v, Raw):
                res.append(v.expr)
                continue
            q = self.as_q(f, "int16")
            self.io["outputs"].append({"dtype": "int16" if self.int_io else str(f.ty.dtype), "scale": q.scale,
                                       "dequantized_in_artifact": not self.int_io})
            if self.int_io:
                res.append(q.expr)
            else:
                res.append(self.emit(O.multiply(self.emit(O.astype(q.expr, "float32")), _c(q.scale, "float32"))))
        return relax.Tuple(res) if isinstance(body, relax.Tuple) else res[0]

    # ------------------------------------------------------------------ one binding
    def lower(self, var, value):
        if isinstance(value, tvm.ir.GenericConst):
            return self.const(value) if str(value.ty.dtype) in FLOATS else Raw(value)
        if isinstance(value, relax.Var):
            return self.env[value]
        if isinstance(value, relax.Tuple) and any(_is_float_tensor(f) for f in value.fields):
            return TupleOf(list(value.fields))
        if isinstance(value, relax.TupleGetItem) and isinstance(self.env.get(value.tuple_value), TupleOf):
            f = self.env[value.tuple_value].fields[int(value.index)]
            return self.operand(f)
        if isinstance(value, relax.TupleGetItem) and isinstance(self.env.get(value.tuple_value), Raw) \
                and _is_float_tensor(var):  # a field of a float island's tuple (batch_norm's output)
            t = self.env[value.tuple_value].expr
            return self.requantize_float(var, self.emit(relax.TupleGetItem(t, int(value.index))))
        if not isinstance(value, relax.Call):
            if not _is_float_tensor(var):
                return Raw(self.emit(self._subst(value)))
            raise QCompileError(f"int-only: binding '{var.name}' ({type(value).__name__}) is not supported")
        if isinstance(value.op, relax.GlobalVar):
            f = self.mod[value.op]
            if str((f.attrs or {}).get("Composite", "")) == "qcompile.attention":
                return self.attention(var, value, f)
            raise QCompileError(f"int-only: binding '{var.name}' calls '{value.op.name_hint}', which has no integer lowering")
        name = value.op.name.removeprefix("relax.")
        args = [self.operand(a) for a in value.args]
        if all(isinstance(a, Raw) for a in args) and not _is_float_tensor(var):
            return Raw(self.emit(self._subst(value)))
        rule = RULES.get(value.op.name)
        rule = rule.__get__(self) if rule is not None else None
        if rule is None and name in DATA_MOVEMENT:
            return self._move(var, value, args, _keeps_last(value, var))
        if rule is None and name == "nn.conv2d" and not self.cfg.float_islands:
            xs = shape_of(value.args[0]) or []
            if not all(isinstance(d, int) for d in xs[2:]):
                p = value.args[0]
                fix = "x".join("?" if not isinstance(d, int) else str(d) for d in xs[:2]) + "xHxW"
                raise QCompileError(f"int-only: the convolution at '{var.name}' (a patch embedding?) has symbolic "
                                    f"spatial dims {[str(d) for d in xs[2:]]}; int-only lowers it as a matmul over "
                                    "patches, for one image size",
                                    hint=f"fix the image size with --input-shape {p.name}={fix}" if isinstance(p, relax.Var)
                                    and p in self.mod["main"].params else "fix the image size with --input-shape")
            raise QCompileError(f"int-only: op 'nn.conv2d' at binding '{var.name}' has no integer lowering (only a "
                                "patch embedding: stride equal to the kernel, no padding, dilation or groups)")
        if rule is None and self.cfg.float_islands:
            return self.island(var, value, f"no integer lowering for '{name}'")
        if rule is None:
            raise QCompileError(f"int-only: op '{name}' at binding '{var.name}' has no integer lowering",
                                hint=self.shape_hint(var) + "supported: " + ", ".join(supported_ops()) + "; "
                                + ISLAND_HINT)
        checked, kernels = len(self.overflow), self.kernels
        try:
            return rule(var, value, args)
        except QCompileError as e:  # a form the rule does not lower (e.g. a matmul of two activations)
            del self.overflow[checked:]  # the rule's bounds no longer describe the graph
            self.kernels = kernels
            if self.cfg.float_islands:
                return self.island(var, value, e.message.removeprefix("int-only: "))
            if e.hint is None:
                raise QCompileError(e.message, hint=self.shape_hint(var) + ISLAND_HINT) from None
            raise

    def shape_hint(self, var) -> str:
        """Where a failing binding is computed from the input shapes alone (a position
        table), the way to make it a constant."""
        if var not in self.shape_only:
            return ""
        fix = []
        for p in self.mod["main"].params:
            dims = shape_of(p) or []
            if not all(isinstance(d, int) for d in dims[1:]):  # the batch may stay symbolic
                fix.append(f"--input-shape {p.name}=" + "x".join(
                    "?" if i == 0 and not isinstance(d, int) else str(d) if isinstance(d, int) else "N"
                    for i, d in enumerate(dims)))
        return (f"'{var.name}' is computed from the input shapes alone (a position table): fix them "
                f"({' '.join(fix) or '--input-shape'}) and it folds into a constant; ")

    def _subst(self, value):
        def sub(e):
            if isinstance(e, relax.Var) and e in self.env and isinstance(self.env[e], Raw):
                return self.env[e].expr
            if isinstance(e, relax.Tuple):  # concat's operands (a transformers-5 mask's gather indices)
                return relax.Tuple([sub(f) for f in e.fields])
            return e

        if isinstance(value, relax.Call):
            return relax.Call(value.op, [sub(a) for a in value.args], value.attrs, value.ty_args)
        if isinstance(value, relax.Tuple):
            return relax.Tuple([sub(a) for a in value.fields])
        return value

    # ------------------------------------------------------------------ linear algebra
    @lowers("relax.matmul")
    def op_matmul(self, var, call, args):
        x, w = call.args
        wv = const_value(w)
        forms = [self.env.get(e) if isinstance(e, relax.Var) else None for e in (x, w)]
        if wv is None and all(isinstance(f, (Q, Acc, Const)) for f in forms) and any(isinstance(f, (Q, Acc)) for f in forms):
            return self.activation_matmul(var, x, w)  # (a Const: a table computed from weights alone, SEW-D's
            # position keys; a bare constant operand is refused as before)
        xv = const_value(x)
        if wv is None and xv is not None and isinstance(forms[1], (Q, Acc)):
            return self.constant_times_activation(var, xv, w)
        if wv is not None and wv.ndim > 2 and isinstance(forms[0], (Q, Acc)):
            return self.batched_weight_matmul(var, x, wv)
        if wv is None or wv.ndim != 2:
            raise QCompileError(f"int-only: matmul at '{var.name}' multiplies two activations outside attention")
        wv = wv.astype(np.float64)
        if not np.all(np.isfinite(wv)):
            raise QCompileError(f"int-only: weight of matmul '{var.name}' holds NaN or inf")
        extra = None
        src = self.env.get(x)
        affine = _norm_affine(src.norm, wv.shape[0]) if isinstance(src, Acc) and src.norm is not None else None
        if self.cfg.fold_norm_affine and affine is not None:
            # gamma migration: matmul(n * g + b, W) = matmul(n, g W) + b W, n quantized on its own
            nvar, g, b = affine
            extra = b @ wv
            wv = g[:, None] * wv
            x = nvar
        if self.cfg.smooth_alpha > 0:
            xq, wv = self.smoothed(x, wv)
        else:
            xq = self.as_q(x, "int8")
        qmax = 2 ** (self.cfg.weight_bits - 1) - 1
        sw = np.abs(wv).max(0) / qmax
        sw[sw == 0] = 1.0
        wq = np.clip(np.floor(wv / sw + 0.5), -qmax, qmax).astype(np.int8)
        K = wv.shape[0]
        bound = K * 127.0 * float(np.abs(wq.astype(np.int64)).max(initial=0))
        self.check("int8 matmul accumulator", bound, 32)
        acc = self.emit(O.matmul(xq.expr, _c(wq, "int8"), out_dtype="int32"))
        if extra is not None:
            bi = np.floor(extra / (xq.scale * sw) + 0.5)
            bound += float(np.abs(bi).max(initial=0))
            self.check("accumulator + folded LayerNorm bias", bound, 32)
            acc = self.emit(O.add(acc, _c(bi, "int32")))
        return Acc(acc, xq.scale * sw, bound)

    def activation_matmul(self, var, a, b):
        """``a @ b`` of two activations outside an attention (DeBERTa's and SEW-D's position
        scores, LiLT's layout scores): both int8 at their calibrated per-tensor scales, an
        int32 product at scale ``s_a s_b``, bounded by ``K 127^2``."""
        K = (shape_of(a) or [None])[-1]
        if not isinstance(K, int):
            raise QCompileError(f"int-only: matmul of two activations at '{var.name}' over a symbolic length "
                                f"({K}): its accumulator cannot be bounded")
        aq, bq = self.as_q(a, "int8"), self.as_q(b, "int8")
        if np.asarray(aq.scale).size != 1 or np.asarray(bq.scale).size != 1:
            raise QCompileError(f"int-only: matmul of two activations at '{var.name}' needs per-tensor scales")
        bound = K * 127.0 * 127.0
        self.check("int8 x int8 activation matmul", bound, 32)
        acc = self.emit(O.matmul(aq.expr, bq.expr, out_dtype="int32"))
        return Acc(acc, np.asarray(float(aq.scale) * float(bq.scale), np.float64), bound)

    def batched_weight_matmul(self, var, x, wv):
        """``x @ W`` with a constant ``W`` of one matrix per batch index (``[..., K, N]``: ViTDet's
        decomposed relative positions, ``einsum("bhwc,hkc->bhwk", q, table)``): int8 weights with
        one scale per output column over every matrix (the last axis, where per-channel scales
        live), ``x`` int8 at its calibrated scale, an int32 product bounded by ``K 127
        max|W_q|``."""
        wv = np.asarray(wv, np.float64)
        if not np.all(np.isfinite(wv)):
            raise QCompileError(f"int-only: weight of matmul '{var.name}' holds NaN or inf")
        xq = self.as_q(x, "int8")
        if np.asarray(xq.scale).size != 1:
            raise QCompileError(f"int-only: matmul at '{var.name}' of per-channel input scales and a batched weight")
        qmax = 2 ** (self.cfg.weight_bits - 1) - 1
        sw = np.abs(wv).max(tuple(range(wv.ndim - 1))) / qmax
        sw[sw == 0] = 1.0
        wq = np.clip(np.floor(wv / sw + 0.5), -qmax, qmax).astype(np.int8)
        bound = wv.shape[-2] * 127.0 * float(np.abs(wq.astype(np.int64)).max(initial=0))
        self.check("int8 batched-weight matmul accumulator", bound, 32)
        acc = self.emit(O.matmul(xq.expr, _c(wq, "int8"), out_dtype="int32"))
        return Acc(acc, float(xq.scale) * sw, bound)

    def constant_times_activation(self, var, cv, b):
        """``C @ b`` with the constant on the left (learned queries projected ahead of time:
        GroupViT's group tokens, Perceiver's latents; token-mixing weights): ``C`` int8 at one
        scale for the tensor (its rows are not on the last axis, where per-channel scales
        live), ``b`` int8 at its calibrated scale, an int32 product bounded by ``K 127 max|C_q|``."""
        cv = np.asarray(cv, np.float64)
        if not np.all(np.isfinite(cv)):
            raise QCompileError(f"int-only: the constant operand of matmul '{var.name}' holds NaN or inf")
        bq = self.as_q(b, "int8")
        if np.asarray(bq.scale).size != 1:
            raise QCompileError(f"int-only: matmul at '{var.name}' of a constant and an activation with "
                                "per-channel scales")
        qmax = 2 ** (self.cfg.weight_bits - 1) - 1
        sc = float(np.abs(cv).max()) / qmax or 1.0
        cq = np.clip(np.floor(cv / sc + 0.5), -qmax, qmax).astype(np.int8)
        bound = cv.shape[-1] * 127.0 * float(np.abs(cq.astype(np.int64)).max(initial=0))
        self.check("int8 constant x activation matmul", bound, 32)
        acc = self.emit(O.matmul(_c(cq, "int8"), bq.expr, out_dtype="int32"))
        return Acc(acc, np.asarray(sc * float(bq.scale), np.float64), bound)

    @lowers("relax.clip")
    def op_clip(self, var, call, args):
        """``clip(x, lo, hi)`` (ReLU6, Hardswish's ``relu6(x + 3)``): the bounds rounded to
        ``x``'s int16 grid; monotone, so the calibrated scale carries over."""
        try:
            lo, hi = (float(e.value) for e in call.args[1:3])
        except (AttributeError, TypeError, ValueError):
            raise QCompileError(f"int-only: clip at '{var.name}' has bounds that are not constants") from None
        q = self.as_q(call.args[0], "int16")
        top = intops.INT_RANGE["int16"][1]
        lq, hq = (int(np.clip(np.floor(b / q.scale + 0.5), -top, top)) for b in (lo, hi))
        return Q(self.emit(O.clip(q.expr, lq, hq)), q.scale, "int16")

    @lowers("relax.nn.conv2d")
    def op_nn_conv2d(self, var, call, args):
        """A convolution that is not a patch embedding (those became matmuls in
        ``int-prepare``): overlapping patch embeddings, depthwise convolutions, conv stems.
        int8 input at its calibrated scale, int8 weights with one scale for the tensor (the
        output channels are not on the last axis, where per-channel scales live), int32
        accumulation bounded by the taps each output sums."""
        a, wv, xq, wq, sw = self._conv_operands(var, call, "OIHW", "convolution")
        taps = int(np.prod(wv.shape[1:]))  # input channels per group x kernel area
        bound = taps * 127.0 * float(np.abs(wq.astype(np.int64)).max(initial=0))
        self.check("int8 convolution accumulator", bound, 32)
        acc = self.emit(O.nn.conv2d(xq.expr, _c(wq, "int8"), strides=a.strides, padding=a.padding,
                                    dilation=a.dilation, groups=int(a.groups), data_layout="NCHW",
                                    kernel_layout="OIHW", out_dtype="int32"))
        return Acc(acc, np.asarray(xq.scale * sw), bound)

    def _conv_operands(self, var, call, kernel_layout: str, what: str):
        """(attrs, float weight, int8 input, int8 weight codes, weight scale) of an NCHW
        convolution with a constant weight in ``kernel_layout``."""
        x, w = call.args
        wv, a = const_value(w), call.attrs
        if wv is None or str(a.data_layout) != "NCHW" or str(a.kernel_layout) != kernel_layout \
                or str(a.out_layout) not in ("NCHW", ""):
            raise QCompileError(f"int-only: {what} at '{var.name}' (not NCHW/{kernel_layout} with a constant weight)")
        return (a, wv, self.as_q(x, "int8"), *self._conv_weight(var, wv))

    def _conv_weight(self, var, wv):
        """int8 codes of a convolution weight and their one scale (symmetric, round half up)."""
        wv = wv.astype(np.float64)
        if not np.all(np.isfinite(wv)):
            raise QCompileError(f"int-only: weight of convolution '{var.name}' holds NaN or inf")
        qmax = 2 ** (self.cfg.weight_bits - 1) - 1
        sw = float(np.abs(wv).max()) / qmax or 1.0
        return np.clip(np.floor(wv / sw + 0.5), -qmax, qmax).astype(np.int8), sw

    @lowers("relax.nn.conv2d_transpose")
    def op_nn_conv2d_transpose(self, var, call, args):
        """A transposed convolution (a learned upsampling: DPT's fusion neck, segmentation
        decoders) as :meth:`op_nn_conv2d`: int8 input and weight, one weight scale, int32
        accumulation. Each output sums at most ``C_in/groups x ceil(kh/sh) x ceil(kw/sw)``
        taps (with unit dilation; the whole kernel area otherwise)."""
        a, wv, xq, wq, sw = self._conv_operands(var, call, "IOHW", "transposed convolution")
        kh, kw = wv.shape[2:]
        (sh, sx), (dh, dx) = (int(v) for v in a.strides), (int(v) for v in a.dilation)
        area = (-(-kh // sh) if dh == 1 else kh) * (-(-kw // sx) if dx == 1 else kw)
        bound = wv.shape[0] // int(a.groups) * area * 127.0 * float(np.abs(wq.astype(np.int64)).max(initial=0))
        self.check("int8 transposed convolution accumulator", bound, 32)
        acc = self.emit(O.nn.conv2d_transpose(xq.expr, _c(wq, "int8"), strides=a.strides, padding=a.padding,
                                              output_padding=a.output_padding, dilation=a.dilation,
                                              groups=int(a.groups), data_layout="NCHW", kernel_layout="IOHW",
                                              out_dtype="int32"))
        return Acc(acc, np.asarray(xq.scale * sw), bound)

    def smoothed(self, x, wv):
        """SmoothQuant (Xiao et al. 2023) in the integer domain: input channel j is quantized
        at its own scale ``s_j S`` (one per-channel dyadic requantization, where a per-tensor
        one would run anyway) and ``s_j`` is folded into row j of the weight, with
        ``s_j = max|x_j|^a / max|W_j|^(1-a)``."""
        a = self.cfg.smooth_alpha
        m = self._stat(x)[1].value.astype(np.float64)
        w = np.abs(wv).max(1)
        if m.shape != w.shape:
            return self.as_q(x, "int8"), wv
        sj = np.where((m > 0) & (w > 0), np.maximum(m, 1e-12) ** a / np.maximum(w, 1e-12) ** (1 - a), 1.0)
        S = float((m / sj).max()) / 127.0 or 1.0
        v = self.env[x]
        if not isinstance(v, (Q, Acc)):
            return self.as_q(x, "int8"), wv
        return Q(self.rescale(v, sj * S, "int8"), S, "int8"), sj[:, None] * wv

    @lowers("relax.astype")
    def op_astype(self, var, call, args):
        if isinstance(args[0], Raw):  # ids or a mask, cast to float: exact, kept integer
            return Lin(args[0].expr)
        if isinstance(args[0], (Q, Acc, Lin)) and _is_float_tensor(call.args[0]) and _is_float_tensor(var):
            return args[0]  # a float -> float cast: the integer form stands for either
        if isinstance(args[0], Lin) and str(var.ty.dtype) == "bool":
            # a float mask back to bool (Canine's mask max-pooled to its downsampled length):
            # a m + b != 0, decided on the integer m
            x = args[0]
            m = self.bb.emit(O.astype(x.expr, "int64"))
            t = None if x.a == 0 else -x.b / x.a   # the one m where a m + b = 0, if any
            if t is None or t != round(t):         # the same answer everywhere
                return Raw(self.bb.emit((O.equal if x.a != 0 or x.b != 0 else O.not_equal)(m, m)))
            return Raw(self.bb.emit(O.not_equal(m, relax.const(int(round(t)), "int64"))))
        raise QCompileError(f"int-only: astype at '{var.name}' of a '{type(args[0]).__name__}' value")

    def _lin(self, var, x, c, fn):
        cv = c.value if isinstance(c, Const) else None
        if not isinstance(x, Lin) or cv is None or cv.size == 0 or not (cv == cv.reshape(-1)[0]).all():
            raise QCompileError(f"int-only: binding '{var.name}' combines a cast integer tensor with a "
                                "non-scalar")
        expr = x.expr
        if cv.size != 1 and not tvm_ffi.structural_equal(var.ty.shape, self.bb.normalize(expr).ty.shape):
            # a tensor of one value (Canine's broadcast of the mask over a tensor of ones): the
            # scalar, and the integer tensor broadcast to the result's shape
            expr = self.bb.emit(relax.op.broadcast_to(expr, var.ty.shape))
        return Lin(expr, *fn(x.a, x.b, float(cv.reshape(-1)[0])))

    @lowers("relax.subtract")
    def op_subtract(self, var, call, args):
        x, y = args
        if isinstance(y, Lin) and isinstance(x, (Q, Acc)) and _mask_like(Lin(y.expr, -y.a, -y.b)):
            # scores - big * (1 - float(mask)) (Funnel): the mask negated, as an add takes it
            self.two_valued(call.args[1], y)
            return Biased(Lin(y.expr, -y.a, -y.b), None, None, act=call.args[0])
        if isinstance(y, Lin):  # c - (a m + b)
            return self._lin(var, y, x, lambda a, b, c: (-a, c - b))
        if isinstance(x, Lin):
            return self._lin(var, x, y, lambda a, b, c: (a, b - c))
        if isinstance(x, (Q, Acc, Const)) and isinstance(y, (Q, Acc, Const)) and not (isinstance(x, Const) and isinstance(y, Const)):
            return self.combine(var, call, O.subtract)  # a BatchNorm's mean, a difference of branches
        raise QCompileError(f"int-only: subtract at '{var.name}' has no integer lowering outside cast masks")

    @lowers("relax.maximum")
    def op_maximum(self, var, call, args):
        """Elementwise maximum (minimum) of two values (an ONNX ``Max``: Mamba's
        ``max(dt, floor)``, a clamp of scores): both at the output's calibrated int16 scale,
        where the order of the codes is the order of the values."""
        if not all(isinstance(a, (Q, Acc, Const)) for a in args) or all(isinstance(a, Const) for a in args):
            raise QCompileError(f"int-only: {call.op.name.removeprefix('relax.')} at '{var.name}' of "
                                f"{' and '.join(type(a).__name__ for a in args)}")
        return self.combine(var, call, O.maximum if call.op.name == "relax.maximum" else O.minimum)

    lowers("relax.minimum")(op_maximum)

    @lowers("relax.add")
    def op_add(self, var, call, args):
        a, b = args
        if isinstance(a, (Lin, Mask)) and isinstance(b, (Lin, Mask)):
            return self.masks_summed(var, call, args)
        if isinstance(a, (Lin, Mask)) or isinstance(b, (Lin, Mask)):
            x, c = (a, b) if isinstance(a, (Lin, Mask)) else (b, a)
            if isinstance(c, Const) and (c.value is None or c.value.size > 1 or isinstance(x, Mask)):
                return Biased(x, c, call.args[0] if x is a else call.args[1])  # both go to the attention
            if isinstance(c, (Q, Acc)) and (isinstance(x, Mask) or _mask_like(x)):  # a mask plus activation
                # scores (SEW-D's; a cast mask scaled, Funnel's)
                return Biased(x, None, call.args[0] if x is a else call.args[1],
                              act=call.args[1] if x is a else call.args[0])
            return self._lin(var, x, c, lambda a_, b_, c_: (a_, b_ + c_))
        if isinstance(a, Const) and isinstance(b, Const):  # two constant terms (Swin: the relative position
            # bias plus the shifted-window mask broadcast over the batch): a constant, summed in int32
            if a.value is not None and b.value is not None:
                return self.const(relax.const((a.value + b.value).astype(np.float32)))

            def make(s, dt, a=a, b=b):
                lo, hi = intops.INT_RANGE[dt]
                t = self.emit(O.add(a.make(s, "int32"), b.make(s, "int32")))
                return t if dt == "int32" else self.emit(O.astype(self.emit(O.clip(t, lo, hi)), dt))

            return Const(make, a.absmax + b.absmax)
        if isinstance(a, Const) and not isinstance(b, Const):
            a, b = b, a
        if isinstance(a, Acc) and isinstance(b, Const) and b.value is not None:  # bias: into the accumulator
            bv, C = b.value, a.scale.size
            if not np.all(np.isfinite(bv)):
                raise QCompileError(f"int-only: constant used at binding '{var.name}' holds NaN or inf")
            per_last = bv.ndim >= 1 and bv.shape[-1] == bv.size == C
            if C == 1 or per_last:
                bi = np.floor(bv / a.scale + 0.5)
                bound = a.bound + float(np.abs(bi).max(initial=0))
                if bound > 2 ** 31 - 1 and a.norm is None:
                    # the bias dwarfs the products at the accumulator's fine scale (a BatchNorm
                    # shift folded into a convolution of small inputs: EfficientNet): the
                    # accumulator is requantized to a scale 2^k coarser first, which drops only
                    # resolution far below the output's calibrated step
                    k = 2.0 ** math.ceil(math.log2(bound / 2 ** 30))
                    coarse = a.scale * k
                    if var in self.stats and float(np.max(coarse)) > self.scale(var, "int16"):
                        raise QCompileError(f"int-only: accumulator + bias at binding '{var.name}': the bias "
                                            "needs an accumulator step coarser than the output's int16 step",
                                            hint="a channel with tiny weights and a large bias; narrow the "
                                                 "calibration range or keep this layer in float")
                    a = Acc(self.rescale(a, coarse, "int32"), coarse, a.bound / k + 1)
                    bi = np.floor(bv / coarse + 0.5)
                    bound = a.bound + float(np.abs(bi).max(initial=0))
                self.check("accumulator + bias", bound, 32)
                norm = (a.norm[0], a.norm[1], a.norm[2] + bv.reshape(-1)) if a.norm is not None and per_last else None
                return Acc(self.emit(O.add(a.expr, _c(bi, "int32"))), a.scale, bound, norm)
        return self.combine(var, call, O.add)

    def combine(self, var, call, op):
        """``op`` (add, subtract) of two values: both requantized to the output's calibrated
        int16 scale, combined in int32, clipped to int16."""
        s = self.scale(var, "int16")
        ta, tb = (self.to_scale(e, s, 2 ** 30) for e in call.args)
        t = self.emit(op(ta, tb))
        return Q(self.emit(O.astype(self.emit(O.clip(t, -32767, 32767)), "int16")), s, "int16")

    @lowers("relax.sum")
    def op_sum(self, var, call, args):
        """Sum over static axes (WavLM's gate summed over its groups, a masked-mean pooling's
        numerator): the int32 sum at the input's scale, as :meth:`op_mean` without the 1/N."""
        return self.op_mean(var, call, args, average=False)

    @lowers("relax.mean")
    def op_mean(self, var, call, args, average: bool = True):
        """Mean over static axes (BEiT's mean pooling over tokens): an int32 sum, the 1/N
        folded into the scale (a per-channel accumulator scale survives while the last axis
        is not reduced)."""
        what = "mean" if average else "sum"
        shape = shape_of(call.args[0]) or []
        nd = len(shape)
        axes = sorted(int(a) % nd for a in call.attrs.axis) if call.attrs.axis is not None else list(range(nd))
        n = 1
        for a in axes:
            if not isinstance(shape[a], int):
                raise QCompileError(f"int-only: {what} at '{var.name}' over a symbolic axis ({shape[a]})")
            n *= shape[a]
        src = args[0]
        if isinstance(src, Acc) and (src.scale.size == 1 or nd - 1 not in axes):
            x, scale, bound = src.expr, src.scale, src.bound
        else:
            q = self.as_q(call.args[0], "int16")
            x, scale, bound = q.expr, np.asarray(q.scale), 32767.0
        self.check(f"{what} (int32 sum)", n * bound, 32)
        keep = bool(call.attrs.keepdims)
        total = self.emit(O.sum(self.emit(O.astype(x, "int32")) if _dtype(x) != "int32" else x,
                                axis=axes, keepdims=keep))
        return Acc(total, np.asarray(scale, np.float64) / (n if average else 1), n * bound)

    @lowers("relax.multiply")
    def op_multiply(self, var, call, args):
        a, b = args
        if isinstance(a, Lin) or isinstance(b, Lin):
            x, c = (a, b) if isinstance(a, Lin) else (b, a)
            if isinstance(c, (Q, Acc)) and x.b == 0:  # activation * float(mask): a select
                self.two_valued(call.args[0] if isinstance(a, Lin) else call.args[1], x)
                return self.mask_select(var, c, x)
            return self._lin(var, x, c, lambda a_, b_, c_: (a_ * c_, b_ * c_))
        if isinstance(a, (Q, Acc)) and isinstance(b, (Q, Acc)):
            return self.activation_product(call)
        if isinstance(a, Const):
            a, b = b, a
            cv = const_value(call.args[0])
        else:
            cv = const_value(call.args[1])
        if cv is None and isinstance(b, Const) and b.value is not None:
            cv = b.value  # a constant broadcast over a symbolic axis (PatchTST's observed-values mask)
            if cv.size > 1 and np.all(cv == cv.reshape(-1)[0]):
                cv = cv.reshape(-1)[:1]
        if cv is None and isinstance(a, (Q, Acc)) and isinstance(b, Const):
            # a constant moved where its value is no longer one array (WavLM's position bias
            # broadcast over the batch and merged with the heads): its codes are a tensor of
            # the integer graph, so the product is one of two tensors
            return self.activation_product(call)
        if cv is None or not isinstance(a, (Q, Acc)):
            raise QCompileError(f"int-only: multiply at '{var.name}' is not by a constant")
        cv = cv.astype(np.float64)
        if not np.all(np.isfinite(cv)):
            raise QCompileError(f"int-only: constant used at binding '{var.name}' holds NaN or inf")
        last = shape_of(var)[-1]
        if not (cv.size == 1 or (cv.shape[-1] == cv.size and cv.size == last)):
            return self.constant_product(call, a, cv)
        cv = cv.reshape(-1)
        sign = np.sign(cv).astype(np.int64)  # 0: a channel multiplied by 0 (ConvNeXt-V2's GRN
        # gamma starts at zeros) is zeroed, at the input's scale rather than a scale of 0
        x = a.expr if isinstance(a, Acc) else self.emit(O.astype(a.expr, "int32"))
        bound = a.bound if isinstance(a, Acc) else intops.INT_RANGE[a.dtype][1]
        if np.any(sign <= 0):
            x = self.emit(O.multiply(x, _c(sign if cv.size > 1 else sign[0], "int32")))
        scale = np.where(cv == 0, 1.0, np.abs(cv)) * a.scale
        src = call.args[0] if isinstance(args[1], Const) else call.args[1]
        norm = (src, cv, np.zeros_like(cv)) if isinstance(a, Q) and self.normalized.get(src) else None
        return Acc(x, scale if scale.size > 1 else scale.reshape(()), bound, norm)

    def constant_product(self, call, a, cv: np.ndarray):
        """``x * c`` with ``c`` a constant varying along an axis other than the last (a
        BatchNorm2d's per-channel scale over NCHW): ``c`` as 12-bit codes at one scale (the
        int32 product keeps 2^15 of headroom for a bias added after it), ``x`` as int16, the
        product in int32 at the product of the scales."""
        src = call.args[0] if isinstance(self.operand(call.args[0]), (Q, Acc)) else call.args[1]
        xq = self.as_q(src, "int16")
        sc = float(np.abs(cv).max()) / 2047 or 1.0
        codes = np.clip(np.floor(cv / sc + 0.5), -2047, 2047)
        self.check("product by a per-channel constant (int32)", 32767.0 * float(np.abs(codes).max(initial=0)), 32)
        x = self.emit(O.multiply(self.emit(O.astype(xq.expr, "int32")), _c(codes, "int32")))
        return Acc(x, np.asarray(xq.scale * sc), 32767.0 * float(np.abs(codes).max(initial=0)))

    def activation_product(self, call):
        """The elementwise product of two activations (a GLU's ``act(gate) * up``, a gate
        computed in the graph): each operand as int8 at its calibrated scale, the product in
        int32 at the product of the scales (|q_a q_b| <= 127^2), requantized by its user. A
        constant operand (one without a single array value) is int16 codes at its own scale."""
        dts = ["int16" if isinstance(self.operand(e), Const) else "int8" for e in call.args]
        qa, qb = (self.as_q(e, dt) for e, dt in zip(call.args, dts))
        bound = float(intops.INT_RANGE[dts[0]][1] * intops.INT_RANGE[dts[1]][1])
        self.check("product of two activations (int32)", bound, 32)
        x = self.emit(O.multiply(self.emit(O.astype(qa.expr, "int32")), self.emit(O.astype(qb.expr, "int32"))))
        return Acc(x, np.asarray(qa.scale * qb.scale), bound)

    #: fraction bits of a quotient of two activations (int16 codes: |q_x 2^f| < 2^31)
    QUOTIENT_BITS = 15

    def activation_quotient(self, var, call):
        """``x / y`` with ``y`` an activation (ConvNeXt-V2's GRN: a norm over its mean; a std
        scaler: values over their std): both as int16 codes at their scales, the quotient in
        fixed point, ``round(q_x 2^f / q_y)`` at scale ``s_x / s_y 2^-f``. ``y`` must have been
        positive on the calibration data (a code below 1 counts as 1: the float model divides
        by a value below the scale there)."""
        st = self.stats.get(call.args[1]) if isinstance(call.args[1], relax.Var) else None
        if st is None or not float(st[0].min) > 0:
            low = "no statistics" if st is None else f"took {float(st[0].min):g}"
            raise QCompileError(f"int-only: divide at '{var.name}' by an activation that is not positive on the "
                                f"calibration data ({low})")
        qx, qy = self.as_q(call.args[0], "int16"), self.as_q(call.args[1], "int16")
        f = self.QUOTIENT_BITS
        self.check("quotient of two activations (int64 numerator)", 32767.0 * 2.0 ** (f + 1) + 32767.0, 64)
        num = self.emit(O.left_shift(self.emit(O.astype(qx.expr, "int64")), _c(f + 1, "int64")))
        den = self.emit(O.maximum(self.emit(O.astype(qy.expr, "int64")), _c(1, "int64")))
        # round half up: floor((2 q_x 2^f + q_y) / (2 q_y))
        quo = self.emit(O.floor_divide(self.emit(O.add(num, den)),
                                       self.emit(O.left_shift(den, _c(1, "int64")))))
        bound = 32767.0 * 2.0 ** f
        self.check("quotient of two activations (int32)", bound, 32)
        return Acc(self.emit(O.astype(quo, "int32")), np.asarray(qx.scale / qy.scale * 2.0 ** -f), bound)

    @lowers("relax.sqrt")
    def op_sqrt(self, var, call, args):
        """The square root of a non-negative activation (an L2 norm: ConvNeXt-V2's GRN; a
        standard deviation): the integer square root (the layer norm's Newton kernel) of the
        codes shifted left by an even ``2k``, ``v = q s -> sqrt(v) = isqrt(q 4^k) sqrt(s) 2^-k``,
        with ``k`` as large as int64 allows up to 2^22 levels of root. Negative codes (round-off
        below 0) count as 0."""
        a = args[0]
        if isinstance(a, Acc) and a.scale.size > 1:  # one scale for the tensor first
            t = float(a.scale.max()) * a.bound / 2.0 ** 30
            a = Acc(self.rescale(a, t, "int32"), np.asarray(t), 2.0 ** 30)
        if isinstance(a, Q):
            x, s, bound = a.expr, float(a.scale), float(intops.INT_RANGE[a.dtype][1])
        elif isinstance(a, Acc):
            x, s, bound = a.expr, float(a.scale), float(a.bound)
        else:
            raise QCompileError(f"int-only: sqrt at '{var.name}' of {type(a).__name__}")
        # as fine as int64 allows, at most 2^22 levels (headroom for a sum or mean of roots)
        k = max(0, min((61 - math.ceil(math.log2(bound + 1))) // 2,
                       math.floor(22 - math.log2(bound + 1) / 2)))
        self.check("integer square root (int64 input)", bound * 4.0 ** k, 63)
        v = self.emit(O.maximum(self.emit(O.astype(x, "int64")), _c(0, "int64")))
        v = self.emit(O.left_shift(v, _c(2 * k, "int64"))) if k else v
        r = self.kernel("isqrt", intops.isqrt_te, [v], {})
        out_bound = math.sqrt(bound) * 2.0 ** k + 1
        self.check("integer square root (int32 output)", out_bound, 32)
        return Acc(self.emit(O.astype(r, "int32")), np.asarray(math.sqrt(s) * 2.0 ** -k), out_bound)

    def op_table(self, var, call, args):
        """Any elementwise function ``f`` of one activation that has no rule of its own (exp,
        tanh, erf, log, sin, cos: OWL-ViT's ELU, a BERT pooler's tanh) as a table over the
        input's int8 codes, as integer accelerators and TFLite's int8 kernels compute them:
        ``y = T[q + 128]``, ``T[c] = round(f(c s_x) / s_y)`` in int32 with ``s_y`` putting
        ``max |f|`` over the codes at 2^20. ``f`` is evaluated on the input's calibrated
        scale only, so the table costs 256 entries whatever ``f`` is; codes where ``f`` is
        not finite (a log below 0: outside the calibrated range, round-off) take the value of
        the nearest code where it is."""
        f = _TABLE_FUNCS[call.op.name]
        xq = self.as_q(call.args[0], "int8")
        codes = np.arange(-128, 128, dtype=np.float64)
        with np.errstate(all="ignore"):
            vals = f(codes * float(xq.scale))
        ok = np.isfinite(vals)
        if not ok.any():
            raise QCompileError(f"int-only: {call.op.name} at '{var.name}' is not finite anywhere on its "
                                "input's calibrated range")
        if not ok.all():  # each non-finite entry takes its nearest finite neighbour's value
            good = np.flatnonzero(ok)
            vals = vals[good[np.abs(np.arange(256)[:, None] - good[None, :]).argmin(1)]]
        bound = 2.0 ** 20
        s_y = max(float(np.abs(vals).max()), 1e-30) / bound
        table = _c(np.round(vals / s_y).astype(np.int32), "int32")
        idx = self.emit(O.add(self.emit(O.astype(xq.expr, "int32")), _c(128, "int32")))
        self.kernels += 1
        return Acc(self.emit(O.take(table, idx, axis=0)), np.asarray(s_y), bound)

    for _op in _TABLE_FUNCS:
        lowers(_op)(op_table)
    del _op

    @lowers("relax.power")
    def op_power(self, var, call, args):
        """``x ** 2`` (a variance written with Pow: PatchTST's scaler) is ``x * x``; ``x ** 0.5``
        is :meth:`op_sqrt`."""
        e = const_value(call.args[1])
        if e is None or e.size != 1 or float(e.reshape(())) not in (2.0, 0.5):
            raise QCompileError(f"int-only: power at '{var.name}' with an exponent other than 2 or 0.5")
        if float(e.reshape(())) == 0.5:
            return self.op_sqrt(var, call, args[:1])
        x = call.args[0]
        return self.activation_product(relax.Call(O.multiply(x, x).op, [x, x]))

    @lowers("relax.negative")
    def op_negative(self, var, call, args):
        """``-x``: exact on the symmetric ranges (int8 and int16 stop at +-(2^(b-1) - 1))."""
        (a,) = args
        if isinstance(a, Q):
            return Q(self.emit(O.negative(a.expr)), a.scale, a.dtype)
        if isinstance(a, Acc):
            return Acc(self.emit(O.negative(a.expr)), a.scale, a.bound)
        raise QCompileError(f"int-only: negative at '{var.name}' of {type(a).__name__}")

    @lowers("relax.divide")
    def op_divide(self, var, call, args):
        """Division by a constant is multiplication by its reciprocal (DeBERTa scales q by
        ``1/sqrt(d * scale_factor)`` with a divide)."""
        a, b = args
        if isinstance(b, (Q, Acc)) and isinstance(a, (Q, Acc, Const)):
            return self.activation_quotient(var, call)
        if not isinstance(b, Const) or b.value is None or not np.all(b.value != 0):
            raise QCompileError(f"int-only: divide at '{var.name}' is not by a nonzero constant")
        if isinstance(a, Lin):
            return self._lin(var, a, b, lambda a_, b_, c_: (a_ / c_, b_ / c_))
        inv = relax.const((1.0 / b.value).astype(str(call.args[1].ty.dtype)))
        return self.op_multiply(var, relax.Call(O.multiply(call.args[0], inv).op, [call.args[0], inv]),
                                [a, self.const(inv)])

    # ------------------------------------------------------------------ nonlinear
    @lowers("relax.nn.layer_norm")
    def op_nn_layer_norm(self, var, call, args):
        return self.norm(var, call, center=True)

    @lowers("relax.nn.rms_norm")
    def op_nn_rms_norm(self, var, call, args):
        return self.norm(var, call, center=False)

    def norm(self, var, call, center: bool):
        """Integer LayerNorm (``center``) or RMSNorm over the last axis; the affine was split
        off by int-prepare and is lowered as a per-channel multiply (and add)."""
        x, g = call.args[:2]
        b = call.args[2] if center else None
        a = call.attrs
        kind = "layer_norm" if center else "rms_norm"
        xs = shape_of(x)
        if [int(i) % len(xs) for i in a.axes] != [len(xs) - 1]:
            raise QCompileError(f"int-only: {kind} at '{var.name}' is not over the last axis")
        if not (np.all(const_value(g) == 1) and (b is None or np.all(const_value(b) == 0))):
            raise QCompileError(f"int-only: {kind} at '{var.name}' keeps its affine (run int-prepare first)")
        if not isinstance(xs[-1], int):
            raise QCompileError(f"int-only: {kind} at '{var.name}' normalizes a symbolic axis ({xs[-1]})",
                                hint="fix that dimension with --input-shape")
        xq = self.as_q(x, "int16")
        C = int(xs[-1])
        P = intops.layernorm_out_bits(C)
        eps_int = int(round(C * float(a.epsilon) / xq.scale ** 2))
        self.check(f"{kind.replace('_', '')} sum of squares (int64)", C * (2.0 * 32767) ** 2 + eps_int, 64)
        op = "ilayernorm" if center else "irmsnorm"
        out = self.kernel(op, lambda t: intops.layernorm_te(t, eps_int, P, center=center), [xq.expr],
                          dict(eps_int=eps_int, P=P))
        self.normalized[var] = True
        return Q(out, 2.0 ** -P, "int16")

    @lowers("relax.nn.gelu")
    def op_nn_gelu(self, var, call, args):
        return self.x_sigmoid(call, 1.702)

    @lowers("relax.nn.silu")
    def op_nn_silu(self, var, call, args):
        """SiLU ``x σ(x)`` (and CLIP's quick GELU ``x σ(1.702 x)``, which canonicalization
        writes as ``silu(1.702 x) / 1.702``): ShiftGELU's kernel is ``x σ(α x)`` with α = 1."""
        return self.x_sigmoid(call, 1.0)

    def x_sigmoid(self, call, alpha: float):
        """``x σ(α x)`` by I-ViT's ShiftGELU (the sigmoid's exponent by shifts)."""
        cfg = self.cfg
        xq = self.as_q(call.args[0], "int8")
        p = intops.ExpParams(cfg.gelu_K, cfg.gelu_n, cfg.gelu_bits)
        t = self.requant(xq.expr, 127, alpha * xq.scale * 2 ** p.K, "int32", (-(2 ** 24), 2 ** 24))
        self.check("ShiftGELU numerator (int64)", 2.0 ** (p.K + p.n + p.B), 64)
        out = self.kernel("shiftgelu", lambda a, b: intops.shiftgelu_te(a, b, p), [xq.expr, t],
                          dict(K=p.K, n=p.n, B=p.B))
        return Acc(out, np.asarray(xq.scale * 2.0 ** -p.B), 127.0 * 2 ** p.B)

    @lowers("relax.sigmoid")
    def op_sigmoid(self, var, call, args):
        """``σ(x)`` by ShiftGELU's sigmoid alone (YOLOS's box head, gates): ``x`` at scale
        ``2^-K``, the result at ``2^-B`` in ``[0, 1]``."""
        cfg = self.cfg
        xq = self.as_q(call.args[0], "int8")
        p = intops.ExpParams(cfg.gelu_K, cfg.gelu_n, cfg.gelu_bits)
        t = self.requant(xq.expr, 127, xq.scale * 2 ** p.K, "int32", (-(2 ** 24), 2 ** 24))
        self.check("ShiftGELU numerator (int64)", 2.0 ** (p.K + p.n + p.B), 64)
        out = self.kernel("shiftsigmoid", lambda a: intops.shiftsigmoid_te(a, p), [t], dict(K=p.K, n=p.n, B=p.B))
        return Acc(out, np.asarray(2.0 ** -p.B), 2.0 ** p.B)

    # ShiftGELU is I-ViT's x·σ(1.702x), an approximation of GELU whichever way the model
    # writes it: the tanh form (GPT-2's gelu_new, ALBERT, ViT's gelu_pytorch_tanh) differs
    # from the erf form by < 5e-4, far below the approximation's own error
    lowers("relax.nn.gelu_tanh")(op_nn_gelu)

    def attention(self, var, call, f):
        roles = attention_roles(f)
        if roles is None:
            raise QCompileError(f"int-only: attention at '{var.name}' has a form without an integer lowering")
        if roles["sinks"]:
            raise QCompileError(f"int-only: attention at '{var.name}' has attention sinks (logits joined to the "
                                "softmax and sliced off), which Shiftmax does not lower")
        cfg = self.cfg
        a = dict(zip(roles["params"], call.args))
        q, k, v = self.as_q(a["q"], "int8"), self.as_q(a["k"], "int8"), self.as_q(a["v"], "int8")
        alpha = roles["scale"]
        if alpha is None:
            c = float(const_value(a.get("scale", a.get("inv_scale"))).reshape(()))
            alpha = c if "scale" in a else 1.0 / c
        D, L = shape_of(a["q"])[-1], shape_of(a["k"])[-1]
        if not isinstance(D, int):
            raise QCompileError(f"int-only: attention at '{var.name}' has a symbolic head size ({D})")
        if not isinstance(L, int):
            if cfg.max_length <= 0:
                raise QCompileError(f"int-only: attention at '{var.name}' has a symbolic length ({L}); Shiftmax's "
                                    "overflow bounds need a bound on it",
                                    hint="set int-only's option max_length (checked at run time), or fix the "
                                         "sequence length with --input-shape")
            L = cfg.max_length  # checked at run time by the guards emitted first (length_guards)
        self.check("q k^T accumulator", D * 127.0 * 127.0, 32)
        scores = self.emit(O.matmul(q.expr, k.expr, out_dtype="int32"))
        K, n = self.shiftmax_n(var, L)
        t = self.requant(scores, D * 127.0 * 127.0, q.scale * k.scale * alpha * 2 ** K, "int32",
                         (-(2 ** 20), 2 ** 20))
        p = intops.ExpParams(K, n, cfg.softmax_bits)
        ins = [t]
        if "mask" in a:
            m = self.env.get(a["mask"]) if isinstance(a["mask"], relax.Var) else None
            src = a["mask"]
            bias = None  # a constant bias on the logits (BEiT's relative position bias, ALiBi
            # slopes times distances): added to the log-domain scores at their scale 2^-K
            act = None  # an activation bias (DeBERTa-style position scores): the same, requantized
            if isinstance(m, Biased):
                bias, m, src, act = m.bias, m.mask, m.src, m.act
            elif isinstance(a["mask"], tvm.ir.GenericConst):
                bias, m = const_value(a["mask"]).astype(np.float64), None
            elif isinstance(m, Const):
                bias, m = m, None
            elif isinstance(m, (Q, Acc)):
                act, m = a["mask"], None
            if act is not None:
                self.check("Shiftmax input with an activation bias", 2.0 ** 21, 32)
                t = self.emit(O.add(t, self.to_scale(act, 2.0 ** -K, 2 ** 20)))
            if bias is not None:
                kept, bias = self.const_mask(bias)
                if bias is not None:
                    t = self.logit_bias(t, bias, K)
                if kept is not None:
                    m = kept if m is None else self.and_masks(var, [(m, src), (kept, None)])
            if isinstance(m, Lin):
                self.two_valued(src, m)
                m = self.lin_mask(var, m)
            if isinstance(m, Mask):
                ins = [*self.dead_rows(t, m, roles["nan_guard"])]
            elif m is not None:
                raise QCompileError(f"int-only: attention at '{var.name}' adds a float bias that is neither a "
                                    "0/-inf mask nor a constant")
            else:
                ins = [t]  # the biased scores (before: the scores without their bias when no mask came with it)
        probs = self.kernel("shiftmax", (lambda s, mk: intops.shiftmax_te(s, mk, p)) if len(ins) == 2
                            else (lambda s: intops.shiftmax_te(s, None, p)), ins, dict(K=K, n=n, B=p.B))
        self.check("P V accumulator", L * 255.0 * 127.0, 32)
        out = self.emit(O.matmul(probs, v.expr, out_dtype="int32"))
        self.notes_shiftmax.append({"binding": var.name, "row": L, "n": n})
        return Acc(out, np.asarray(v.scale * 2.0 ** -p.B), L * 255.0 * 127.0)

    def logit_bias(self, t, bias: Const, K: int):
        """``t`` (scores at scale ``2^-K``) plus a constant bias at the same scale."""
        if bias.absmax * 2.0 ** K > 2 ** 20:
            raise QCompileError(f"int-only: a constant bias on the scores at '{self.binding}' reaches "
                                f"{bias.absmax:g}, beyond Shiftmax's input range", hint="lower shiftmax_K")
        self.check("Shiftmax input with a constant bias", 2.0 ** 21, 32)
        return self.emit(O.add(t, bias.make(2.0 ** -K, "int32")))

    def two_valued(self, e, m: Lin) -> None:
        """A cast integer tensor taken for a 0/1 mask must have been one on the calibration
        data: its float value ``a m + b`` took only ``b`` and ``a + b`` there."""
        st = self.stats.get(e) if isinstance(e, relax.Var) else None
        if st is None:
            return  # a value made inside the pass (no statistics): the rules' forms are masks
        mm = st[0]
        ok = np.array([m.b, m.a + m.b], np.float64)

        def seen(v):  # the statistics are float32 values, a and b double
            return bool(np.isclose(v, ok, rtol=1e-6, atol=0).any())

        if not (seen(mm.min) and seen(mm.max)):
            raise QCompileError(f"int-only: '{e.name}' is used as a 0/1 mask but took values in [{mm.min:g}, {mm.max:g}] "
                                "on the calibration data", hint="only 0/1 integer masks are lowered as masks")

    def mask_select(self, var, v, m: Lin):
        """``x * (a * float(mask))`` with a 0/1 integer ``mask`` (DeBERTa's embeddings, masked
        mean pooling): ``where(mask != 0, x, 0)`` at the scale ``a`` times x's. As for additive
        masks, ``mask`` is taken to hold 0/1."""
        xm = v.expr
        if shape_of(m.expr) != shape_of(var):  # broadcast the mask to the product's shape
            m = Lin(self.emit(O.broadcast_to(m.expr, relax.ShapeExpr(list(var.ty.shape.values)))), m.a, m.b)
        dt = _dtype(m.expr)
        keep = m.expr if dt == "bool" else self.emit(O.not_equal(m.expr, _c(0, dt)))
        if shape_of(v.expr) != shape_of(var):
            xm = self.emit(O.broadcast_to(xm, relax.ShapeExpr(list(var.ty.shape.values))))
        out = self.emit(O.where(keep, xm, _c(0, _dtype(xm))))
        scale = np.asarray(v.scale, np.float64) * abs(m.a)
        if m.a < 0:
            out = self.emit(O.negative(out))
        if isinstance(v, Acc):
            return Acc(out, scale, v.bound)
        return Q(out, float(scale), v.dtype)

    def dead_rows(self, t, mask: "Mask", nan_guard: bool):
        """(scores, keep) for Shiftmax. A mask that depends on the query (DeBERTa's
        ``m_i m_j``, [.., T, S] with T > 1) can mask a padded token's row everywhere. The
        float model then adds the fill to every score of the row: a fill that swamps the
        scores (<= -1e30, the dtype's minimum) makes the row uniform, so its keys are all
        kept and its scores zeroed; a smaller fill (-1e4) shifts the row evenly, so its keys
        are all kept and its scores left. Unless the model guards the row to zero itself
        (SDPA's NaN guard, which Shiftmax's zero row already matches)."""
        keep = mask.keep
        kshape = shape_of(keep)
        if nan_guard or kshape is None or len(kshape) < 2 or kshape[-2] == 1:
            return t, keep
        alive = self.emit(O.max(keep, axis=[-1], keepdims=True))                  # [.., T, 1]
        dead = self.emit(O.equal(alive, _c(0, _dtype(keep))))
        keep = self.emit(O.astype(self.emit(O.logical_or(self.emit(O.not_equal(keep, _c(0, _dtype(keep)))), dead)),
                                  _dtype(keep)))
        if mask.fill <= -1e30:
            t = self.emit(O.where(dead, _c(0, _dtype(t)), t))
        return t, keep

    def lin_mask(self, var, m: Lin) -> Mask:
        """An additive mask ``a * float(m) + b`` from a 0/1 integer mask (older HF exports:
        ``(1 - float(mask)) * min``): 0 for one value of ``m``, <= -1e4 for the other. The
        keep mask is ``m == m0`` (an ``attention_mask`` holds 0/1: other values, for which
        the float model would add a large positive or infinite bias, count as masked)."""
        for m0 in (1, 0):
            if m.a * m0 + m.b == 0 and m.a * (1 - m0) + m.b <= -1e4:
                dt = _dtype(m.expr)
                keep = m.expr if dt == "bool" and m0 == 1 else self.emit(O.equal(m.expr, _c(m0, dt)))
                return Mask(self.emit(O.astype(keep, "int8")), m.a * (1 - m0) + m.b)
        raise QCompileError(f"int-only: attention at '{var.name}' adds {m.a:g} * float(m) + {m.b:g}, which is not "
                            "a 0/-inf mask of a 0/1 integer tensor")

    def masks_summed(self, var, call, args) -> Mask:
        """Two additive masks summed (ImageGPT, older GPT-2 exports: a causal ``where`` plus
        ``(1 - float(attention_mask)) * min``): a position is kept where both keep it."""
        return self.and_masks(var, list(zip(args, call.args)))

    def and_masks(self, var, masks) -> Mask:
        """One keep mask from ``(Mask or Lin, its binding)`` pairs: kept where all keep."""
        ms = []
        for m, e in masks:
            if isinstance(m, Lin):
                self.two_valued(e, m)
                m = self.lin_mask(var, m)
            ms.append(m)
        keep = self.emit(O.logical_and(*[self.emit(O.not_equal(m.keep, _c(0, _dtype(m.keep)))) for m in ms]))
        return Mask(self.emit(O.astype(keep, "int8")), min(m.fill for m in ms))

    def const_mask(self, bias):
        """A constant logit bias (a ``Const`` or its float array) whose entries <= -1e4 drop
        positions (a causal mask folded to a constant once the length is fixed, alone or summed
        with a position bias; -inf too): (a keep ``Mask`` or None, the finite bias or None)."""
        v = bias.value if isinstance(bias, Const) else bias
        if v is None:
            return None, bias  # a constant made inside the pass: a bias as it is
        drop = v <= -1e4
        if np.isnan(v).any() or np.isposinf(v).any():
            raise QCompileError(f"int-only: the constant bias on the scores at '{self.binding}' holds NaN or +inf")
        if not drop.any():
            return None, bias if isinstance(bias, Const) else self.const(relax.const(v.astype(np.float32)))
        fin = np.where(drop, 0.0, v)
        kept = Mask(_c((~drop).astype(np.int8), "int8"), float(v[drop].max()))
        return kept, self.const(relax.const(fin.astype(np.float32))) if np.any(fin != 0) else None

    def kernel(self, op, fn, ins, params):
        self.kernels += 1
        return self.emit(self.bb.call_te(fn, *ins, primfunc_name_hint=op,
                                         primfunc_attrs=intops.kernel_attrs(op, **params)))

    @lowers("relax.where")
    def op_where(self, var, call, args):
        cond, a, b = call.args
        av, bv = _uniform_value(a, args[1]), _uniform_value(b, args[2])
        if isinstance(args[0], Raw) and av is not None and bv is not None and av.size == 1 and bv.size == 1:
            lead = len(shape_of(var) or []) - len(shape_of(cond) or [])
            c0 = O.expand_dims(args[0].expr, list(range(lead))) if lead > 0 else args[0].expr  # the output's rank
            if av.item() == 0.0 and bv.item() <= -1e4:  # where(keep, 0, -big)
                return Mask(self.emit(O.astype(c0, "int8")), bv.item())
            if bv.item() == 0.0 and av.item() <= -1e4:  # where(drop, -big, 0): HF encoders
                return Mask(self.emit(O.astype(O.logical_not(c0), "int8")), av.item())
        if isinstance(args[0], Raw):  # where(drop, -big, mask) / where(keep, mask, -big): masks combined
            for drop, big, i in ((True, av, 2), (False, bv, 1)):
                m = args[i]
                if big is None or big.size != 1 or big.item() > -1e4 or not isinstance(m, (Mask, Lin)):
                    continue
                if isinstance(m, Lin):
                    self.two_valued(call.args[i], m)
                    m = self.lin_mask(var, m)
                c = args[0].expr
                if _dtype(c) != "bool":
                    c = self.emit(O.not_equal(c, _c(0, _dtype(c))))
                if drop:
                    c = self.emit(O.logical_not(c))
                keep = self.emit(O.logical_and(self.emit(O.not_equal(m.keep, _c(0, "int8"))), c))
                return Mask(self.emit(O.astype(keep, "int8")), min(m.fill, big.item()))
        if isinstance(args[0], Raw):  # a masked fill of an activation (OWL-ViT's logits of padded queries)
            for k, fill in ((1, av), (2, bv)):
                x = args[3 - k]
                if fill is None or fill.size != 1 or not isinstance(x, (Q, Acc)):
                    continue
                return self.masked_fill(args[0].expr, float(fill.item()), x, call.args[3 - k], fill_first=k == 1)
        if isinstance(args[0], Raw) and all(isinstance(x, (Q, Acc, Const)) for x in args[1:]) \
                and any(isinstance(x, (Q, Acc)) for x in args[1:]):
            # a selection between two activations (Funnel's attention bias, same or different
            # token type): both at the output's calibrated int16 scale, as concat joins them
            s = self.scale(var, "int16")
            a, b = (v.make(s, "int16") if isinstance(v, Const) else
                    self.emit(O.astype(self.to_scale(f, s, 32767), "int16")) for v, f in zip(args[1:], call.args[1:]))
            c = args[0].expr
            if _dtype(c) != "bool":
                c = self.emit(O.not_equal(c, _c(0, _dtype(c))))
            return Q(self.emit(O.where(c, a, b)), s, "int16")
        raise QCompileError(f"int-only: float where at '{var.name}' selects neither a mask, a fill nor between "
                            "activations")

    def masked_fill(self, cond, fill: float, x, xvar, fill_first: bool):
        """``where(cond, fill, x)`` (or ``where(cond, x, fill)``) for an activation ``x``: the
        fill quantized at ``x``'s scale, saturated to ``x``'s range (a fill of minus the
        largest float, the usual "masked out", becomes the lowest value ``x`` can hold)."""
        if isinstance(x, Acc) and x.scale.size > 1:
            x = self.as_q(xvar, "int16")
        if isinstance(x, Q):
            lo, hi = intops.INT_RANGE[x.dtype]
            scale, dt = float(x.scale), x.dtype
        else:
            lo, hi = -x.bound, x.bound
            scale, dt = float(x.scale), "int32"
        code = _c(min(max(math.floor(fill / scale + 0.5), lo), hi) if math.isfinite(fill) else (lo if fill < 0 else hi),
                  dt)
        if _dtype(cond) != "bool":
            cond = self.emit(O.not_equal(cond, _c(0, _dtype(cond))))
        out = self.emit(O.where(cond, code, x.expr) if fill_first else O.where(cond, x.expr, code))
        return Q(out, x.scale, x.dtype) if isinstance(x, Q) else Acc(out, x.scale, x.bound)

    # ------------------------------------------------------------------ data movement
    def _move(self, var, call, args, keeps_last: bool):
        src = args[0]
        if not all(isinstance(a, Raw) for a in args[1:]):
            raise QCompileError(f"int-only: {call.op.name} at '{var.name}' takes a float shape or index")
        rest = [a.expr for a in args[1:]]

        def rebuild(e):
            return relax.Call(call.op, [e, *rest], call.attrs, call.ty_args)

        if isinstance(src, Const):
            return Const(lambda s, dt: self.emit(rebuild(src.make(s, dt))), src.absmax)
        if isinstance(src, Lin):
            return Lin(self.emit(rebuild(src.expr)), src.a, src.b)
        if isinstance(src, Mask):  # a mask sliced or reshaped (BART's causal mask cut to the length)
            return Mask(self.emit(rebuild(src.keep)), src.fill)
        if isinstance(src, Acc) and (src.scale.size == 1 or keeps_last):
            return Acc(self.emit(rebuild(src.expr)), src.scale, src.bound)
        if isinstance(src, Acc):
            src = self.as_q(call.args[0], "int16")
        if isinstance(src, Q):
            return Q(self.emit(rebuild(src.expr)), src.scale, src.dtype)
        raise QCompileError(f"int-only: cannot move '{type(src).__name__}' at '{var.name}'")

    @staticmethod
    def _keeps_last(call) -> bool:
        """A per-channel scale survives where the last axis is kept (never from a 0-d value:
        T5's scale broadcast)."""
        src, dst = shape_of(call.args[0]) or [], shape_of(call) or []
        return bool(src) and bool(dst) and dst[-1] == src[-1]

    def shiftmax_n(self, var, L: int) -> tuple[int, int]:
        """Shiftmax's ``(K, n)`` for rows of ``L``: ``n`` lowered until the row sum ``L
        2^(K+n)`` fits int32 (refused below 4)."""
        K, n = self.cfg.shiftmax_K, self.cfg.shiftmax_n
        while n > 0 and L * 2 ** (K + n) > 2 ** 31 - 1:
            n -= 1
        if n < 4:
            raise QCompileError(f"int-only: Shiftmax at '{var.name}' over rows of {L}: L 2^(K+n) overflows int32 "
                                f"for every n >= 4 (K={K})", hint="lower shiftmax_K")
        self.check("Shiftmax row sum", L * 2.0 ** (K + n), 32)
        return K, n

    @lowers("relax.nn.softmax")
    def op_nn_softmax(self, var, call, args):
        """A softmax outside an attention (ConvBERT's per-token dynamic-convolution kernels, a
        router's expert weights): I-ViT's Shiftmax over the softmax axis (moved last around
        it when it is not). The logits as int32 at scale ``2^-K`` from the input's calibrated
        int16 scale, clipped to Shiftmax's input range as in an attention; the
        probabilities at ``2^-B``, as int16."""
        cfg, x = self.cfg, call.args[0]
        dims = shape_of(x)
        axis = int(call.attrs.axis) % len(dims)
        L = dims[axis]
        if not isinstance(L, int):
            raise QCompileError(f"int-only: softmax at '{var.name}' over a symbolic length ({L})",
                                hint="fix that length with --input-shape")
        K, n = self.shiftmax_n(var, L)
        q = self.as_q(x, "int16")
        t = self.requant(q.expr, 32767.0, q.scale * 2.0 ** K, "int32", (-(2 ** 20), 2 ** 20))
        perm = None
        if axis != len(dims) - 1:
            perm = [i for i in range(len(dims)) if i != axis] + [axis]
            t = self.emit(O.permute_dims(t, perm))
        p = intops.ExpParams(K, n, cfg.softmax_bits)
        probs = self.kernel("shiftmax", lambda s: intops.shiftmax_te(s, None, p), [t], dict(K=K, n=n, B=p.B))
        if perm is not None:
            probs = self.emit(O.permute_dims(probs, [int(i) for i in np.argsort(perm)]))
        self.notes_shiftmax.append({"binding": var.name, "row": L, "n": n})
        return Q(self.emit(O.astype(probs, "int16")), 2.0 ** -p.B, "int16")

    @lowers("relax.shape_of")
    def op_shape_of(self, var, call, args):
        """The shape of any tensor (ConvBERT's unfold reads ``shape(pad(x))[2]`` at run time):
        the integer form has the float tensor's shape, so it is that shape's expression."""
        dims = shape_of(call.args[0])
        if dims is None:
            raise QCompileError(f"int-only: shape_of at '{var.name}' of a tensor whose shape is not known")
        return Raw(self.emit(relax.ShapeExpr([tvm.tirx.IntImm("int64", d) if isinstance(d, int) else d
                                              for d in dims])))

    @lowers("relax.reshape")
    def op_reshape(self, var, call, args):
        return self._move(var, call, args, self._keeps_last(call))

    @lowers("relax.permute_dims")
    def op_permute_dims(self, var, call, args):
        axes = call.attrs.axes
        nd = len(shape_of(call))
        return self._move(var, call, args, axes is not None and int(axes[-1]) == nd - 1)

    @lowers("relax.take")
    def op_take(self, var, call, args):
        if isinstance(args[0], Const) and isinstance(args[1], Raw):  # embedding lookup from a float table
            c = args[0]
            s = c.absmax / 32767 if c.absmax > 0 else 1.0
            return Q(self.emit(O.take(c.make(s, "int16"), args[1].expr, axis=int(call.attrs.axis),
                                      mode=str(call.attrs.mode))), s, "int16")
        nd = len(shape_of(call.args[0]))
        return self._move(var, call, args, int(call.attrs.axis) % nd != nd - 1)

    @lowers("relax.gather_elements")
    def op_gather_elements(self, var, call, args):
        """torch.gather (DeBERTa's and SEW-D's relative-position scores picked per query):
        selection by integer indices, so data movement; a per-channel scale survives only a
        gather along another axis."""
        nd = len(shape_of(call.args[0]))
        return self._move(var, call, args, int(call.attrs.axis) % nd != nd - 1 and self._keeps_last(call))

    @lowers("relax.gather_nd")
    def op_gather_nd(self, var, call, args):
        """``gather_nd`` (index tuples picking whole sub-tensors: TVM's import of an adaptive
        pooling's or a resize's selection, UperNet): data movement; a per-channel scale
        survives where the last axis is neither indexed nor changed."""
        nd, k = len(shape_of(call.args[0])), (shape_of(call.args[1]) or [None])[-1]
        if not isinstance(k, int):
            raise QCompileError(f"int-only: gather_nd at '{var.name}' with index tuples of a symbolic length")
        keeps = int(call.attrs.batch_dims) + k < nd and self._keeps_last(call)
        return self._move(var, call, args, keeps)

    @lowers("relax.broadcast_to")
    def op_broadcast_to(self, var, call, args):
        out = self._move(var, call, args, self._keeps_last(call))
        src, dims = args[0], shape_of(var)
        if isinstance(src, Const) and src.value is not None and dims is not None and src.value.ndim <= len(dims):
            # a constant broadcast over the batch (a mask folded by fold_uniform) keeps its value,
            # 1 along the symbolic axes: an attention still reads it as a mask or a bias
            v = src.value.reshape((1,) * (len(dims) - src.value.ndim) + src.value.shape)
            if all(n == 1 or (isinstance(d, int) and n == d) for n, d in zip(v.shape, dims)):
                out.value = np.broadcast_to(v, [d if isinstance(d, int) else 1 for d in dims]).copy()
        return out

    # max(q, 0) and max over a window commute with a positive scale: the integer tensor passes
    # through as data movement does (pooling mixes the last axis, so per-tensor scale first)
    @lowers("relax.nn.relu")
    def op_nn_relu(self, var, call, args):
        self._monotone_lin(var, args[0])
        return self._move(var, call, args, True)

    @lowers("relax.nn.max_pool2d")
    def op_nn_max_pool2d(self, var, call, args):
        self._monotone_lin(var, args[0])
        return self._move(var, call, args, False)

    @lowers("relax.nn.avg_pool2d")
    def op_nn_avg_pool2d(self, var, call, args):
        """Average pooling (PoolFormer's token mixer, EfficientNet's global pool): the window
        sums are an int32 depthwise convolution of the int8 values with a kernel of ones
        (zero padding is the integer 0), then 1/count: folded into the scale where every
        window counts the same, else (``count_include_pad=False`` at a border, a ``ceil_mode``
        window) an int32 reciprocal per output position, ``round(2^k / count)``, at scale
        ``2^-k``. Counts follow TOPI's (and PyTorch's) definition (:func:`pool_counts`)."""
        a = call.attrs
        shape, out = shape_of(call.args[0]), shape_of(var)
        if str(a.layout) != "NCHW" or shape is None or out is None or len(shape) != 4 \
                or not all(isinstance(d, int) for d in (*shape[1:], *out[2:])) or any(int(d) != 1 for d in a.dilation):
            raise QCompileError(f"int-only: average pool at '{var.name}' (not NCHW with static spatial dims "
                                "and no dilation)")
        self._monotone_lin(var, args[0])
        (kh, kw), (sh, sw) = [int(k) for k in a.pool_size], [int(k) for k in a.strides]
        pt, pl, pb, pr = [int(p) for p in a.padding]
        counts = pool_counts(shape[2:], out[2:], (kh, kw), (sh, sw), (pt, pl, pb, pr), bool(a.count_include_pad))
        pb = max(pb, (out[2] - 1) * sh + kh - shape[2] - pt)  # ceil_mode: the last window runs past the pads
        pr = max(pr, (out[3] - 1) * sw + kw - shape[3] - pl)
        xq = self.as_q(call.args[0], "int8")
        C = shape[1]
        bound = kh * kw * 127.0
        self.check("average pool (int32 window sum)", bound, 32)
        total = self.emit(O.nn.conv2d(xq.expr, _c(np.ones((C, 1, kh, kw)), "int8"), strides=[sh, sw],
                                      padding=[pt, pl, pb, pr], groups=C, data_layout="NCHW", kernel_layout="OIHW",
                                      out_dtype="int32"))
        if np.all(counts == counts.flat[0]):
            return Acc(total, np.asarray(xq.scale / counts.flat[0], np.float64), bound)
        k = min(15, int(math.floor(math.log2((2 ** 31 - 1) / (bound / counts.min())))))
        recip = np.floor(2.0 ** k / counts + 0.5)
        self.check("average pool (sum x reciprocal)", bound * float(recip.max()), 32)
        scaled = self.emit(O.multiply(total, _c(recip.reshape(1, 1, *counts.shape), "int32")))
        return Acc(scaled, np.asarray(xq.scale / 2.0 ** k, np.float64), bound * float(recip.max()))

    @lowers("relax.image.resize2d")
    def op_image_resize2d(self, var, call, args):
        """Nearest, bilinear or bicubic resizing of static sizes (GLPN's and ViTPose's
        decoders, CrossViT's second branch): a fixed linear map per axis, ``y = A_h x A_w^T``.
        Where its weights are fractions with a small denominator ``d`` (quarters for an
        upsampling by 2 with half-pixel centers), ``d A`` as integers makes it two integer
        matmuls into int32, exactly ``d_h d_w`` times the resized int8 values, at scale
        ``s / (d_h d_w)``. Other ratios (bicubic weights, a bilinear 37 -> 50) take the
        weights rounded to 1/256, as a weight quantizer would: at most 1/512 off per weight,
        about one int8 step of the output in the worst case (a row may sum to 1 +- 1/256)."""
        a = call.attrs
        shape, out = shape_of(call.args[0]), shape_of(var)
        method, mode = str(a.method), str(a.coordinate_transformation_mode)
        if str(a.layout) != "NCHW" or shape is None or out is None or len(shape) != 4 \
                or not all(isinstance(d, int) for d in (*shape[1:], *out[2:])) or method not in ("linear",
                                                                                                "nearest_neighbor",
                                                                                                "cubic"):
            raise QCompileError(f"int-only: resize at '{var.name}' (not a linear, cubic or nearest NCHW resize of "
                                "static spatial dims)")
        try:
            mats = [intops.resize_weights(n, m, method, mode, str(a.rounding_method), float(a.cubic_alpha),
                                          bool(int(a.cubic_exclude))) for n, m in zip(shape[2:], out[2:])]
        except ValueError as e:
            raise QCompileError(f"int-only: resize at '{var.name}': unsupported {e}") from None
        ints = [intops.integer_weights(m) or (np.round(m * 256).astype(np.int64), 256) for m in mats]
        (wh, dh), (ww, dw) = ints
        xq = self.as_q(call.args[0], "int8")
        if np.ndim(xq.scale) != 0:
            raise QCompileError(f"int-only: resize at '{var.name}' of a tensor with a scale per channel")
        n, c, h, w = shape
        bound_w = 127.0 * float(np.abs(ww).sum(1).max())
        bound = bound_w * float(np.abs(wh).sum(1).max())
        self.check("resize (int32 weighted sum)", bound, 32)
        rows = self.emit(O.reshape(xq.expr, [-1, w]))                          # (n c h, w)
        t = self.emit(O.matmul(rows, _c(ww.T, "int8" if np.abs(ww).max() <= 127 else "int32"), out_dtype="int32"))
        t = self.emit(O.reshape(t, [-1, h, out[3]]))                            # (n c, h, w')
        t = self.emit(O.matmul(_c(wh, "int32"), t, out_dtype="int32"))          # (n c, h', w')
        total = self.emit(O.reshape(t, call.ty.shape))
        return Acc(total, np.asarray(xq.scale / (dh * dw), np.float64), bound)

    @staticmethod
    def _monotone_lin(var, x) -> None:
        """relu / max commute with ``a * float(m)`` only for ``a >= 0`` and no offset."""
        if isinstance(x, Lin) and not (x.a >= 0 and x.b == 0):
            raise QCompileError(f"int-only: '{var.name}' applies a monotone op to {x.a:g} * float(m) + {x.b:g}")

    lowers("relax.nn.max_pool1d")(op_nn_max_pool2d)

    @lowers("relax.max")
    def op_max(self, var, call, args):
        """A max (or min) over axes (Hiera's query pooling: the max over strided tokens)
        commutes with a positive scale like a pooling window; a per-channel scale survives
        unless the reduction crosses the channel axis."""
        self._monotone_lin(var, args[0])
        nd = len(shape_of(call.args[0]))
        axes = call.attrs.axis
        return self._move(var, call, args, axes is not None and all(int(a) % nd != nd - 1 for a in axes))

    lowers("relax.min")(op_max)

    @lowers("relax.nn.pad")
    def op_nn_pad(self, var, call, args):
        """Constant padding with 0 (Swin's windows: 0 is the integer 0 at any scale), or
        padding with copies of the tensor's own values (reflect, replicate, circular:
        Swin2SR pads its image to a multiple of the window by reflection)."""
        mode = str(call.attrs.pad_mode)
        if not (mode in ("reflect", "replicate", "circular") or (mode == "constant" and float(call.attrs.pad_value) == 0.0)):
            raise QCompileError(f"int-only: the pad at '{var.name}' is not a constant pad with 0 nor a copy of "
                                "the values")
        if isinstance(args[0], Lin):
            raise QCompileError(f"int-only: the pad at '{var.name}' pads a mask")
        width = [int(w) for w in call.attrs.pad_width]
        return self._move(var, call, args, width[-2:] == [0, 0])

    # ------------------------------------------------------------------ float islands
    def dequantize(self, e):
        """The float value of operand ``e`` (as the float model had it) from its integer form."""
        if isinstance(e, tvm.ir.GenericConst) or not isinstance(e, relax.Var):
            return e
        v = self.env[e]
        dt = str(e.ty.dtype) if _is_float_tensor(e) else None
        if isinstance(v, Raw):
            return v.expr
        if isinstance(v, Lin):
            x = self.emit(O.astype(v.expr, dt))
            return self.emit(O.add(self.emit(O.multiply(x, _c(v.a, dt))), _c(v.b, dt)))
        if isinstance(v, Const):
            if v.value is not None:
                return _c(v.value, dt)
            s = v.absmax / 2 ** 30 if v.absmax > 0 else 1.0
            v = Q(v.make(s, "int32"), s, "int32")
        if isinstance(v, (Q, Acc)):
            scale = np.asarray(v.scale, np.float64)
            return self.emit(O.multiply(self.emit(O.astype(v.expr, dt)), _c(scale, dt)))
        raise QCompileError(f"int-only: '{e.name}' ({type(v).__name__}) cannot enter a float island at "
                            f"'{self.binding}'")

    def island(self, var, call, why: str):
        """``call`` kept in float (``float_islands``): its operands dequantized, its float
        result requantized to int16 at its calibrated scale. Listed in ``notes['float_islands']``."""
        if isinstance(call.op, relax.GlobalVar):
            raise QCompileError(f"int-only: binding '{var.name}' ({why}) cannot be a float island")
        args = []
        for a in call.args:
            if isinstance(a, relax.Tuple):
                args.append(relax.Tuple([self.dequantize(f) for f in a.fields]))
            else:
                args.append(self.dequantize(a))
        out = self.emit(relax.Call(call.op, args, call.attrs, call.ty_args))
        self.islands.append({"binding": var.name, "op": call.op.name.removeprefix("relax."), "why": why})
        if not _is_float_tensor(var):
            return Raw(out)
        return self.requantize_float(var, out)

    def requantize_float(self, var, out) -> Q:
        """The float value ``out`` of ``var`` as int16 at ``var``'s calibrated scale."""
        s, dt = self.scale(var, "int16"), str(var.ty.dtype)
        t = self.emit(O.floor(self.emit(O.add(self.emit(O.multiply(out, _c(1.0 / s, dt))), _c(0.5, dt)))))
        return Q(self.emit(O.astype(self.emit(O.clip(t, -32767, 32767)), "int16")), s, "int16")

    @lowers("relax.scatter_nd")
    def op_scatter_nd(self, var, call, args):
        """``scatter_nd(data, indices, updates)`` (Longformer writes its diagonals of scores
        into place) and ``scatter_elements`` (GroupViT's one-hot of an argmax): data movement,
        the data and the updates as int16 at the result's calibrated scale, as
        :meth:`op_concat` does for its parts. Only a plain write (no reduction) moves data."""
        name = call.op.name.removeprefix("relax.")
        if str(call.attrs.reduction) not in ("update", "none"):
            raise QCompileError(f"int-only: {name} at '{var.name}' reduces ({call.attrs.reduction}) instead of writing")
        if not isinstance(args[1], Raw) and const_value(call.args[1]) is None:
            raise QCompileError(f"int-only: {name} at '{var.name}' takes float indices")
        s = self.scale(var, "int16")
        parts = []
        for e in (call.args[0], call.args[2]):
            v = self.operand(e)
            parts.append(v.make(s, "int16") if isinstance(v, Const) else
                         self.emit(O.astype(self.to_scale(e, s, 32767), "int16")))
        idx = args[1].expr if isinstance(args[1], Raw) else call.args[1]
        return Q(self.emit(relax.Call(call.op, [parts[0], idx, parts[1]], call.attrs)), s, "int16")

    lowers("relax.scatter_elements")(op_scatter_nd)

    @lowers("relax.argmax")
    def op_argmax(self, var, call, args):
        """The position of the largest (smallest) value along an axis (GroupViT's hard group
        assignment): the same position in the integer codes, one positive scale along that axis
        (ties that rounding creates go to the first, as argmax does): an integer index."""
        x = args[0]
        nd = len(shape_of(call.args[0]) or [])
        axis = call.attrs.axis
        along_last = axis is None or int(axis) % max(nd, 1) == nd - 1
        if isinstance(x, Lin) and x.a > 0:
            e = x.expr
        elif isinstance(x, (Q, Acc)):
            scale = np.asarray(x.scale, np.float64)
            if (scale <= 0).any() or (along_last and scale.size > 1 and not (scale == scale.flat[0]).all()):
                raise QCompileError(f"int-only: {call.op.name.removeprefix('relax.')} at '{var.name}' compares "
                                    "values under different per-channel scales")
            e = x.expr
        else:
            raise QCompileError(f"int-only: {call.op.name.removeprefix('relax.')} at '{var.name}' of "
                                f"{type(x).__name__}")
        return Raw(self.emit(relax.Call(call.op, [e], call.attrs)))

    lowers("relax.argmin")(op_argmax)

    @lowers("relax.concat")
    def op_concat(self, var, call, args):
        """concat (stack: along a new axis, as TVM imports a Max/Min/Sum/Mean of three or more
        inputs) of values requantized to the output's calibrated int16 scale."""
        s = self.scale(var, "int16")
        tup = call.args[0]
        fields = tup.fields if isinstance(tup, relax.Tuple) else None
        if fields is None:
            raise QCompileError(f"int-only: {call.op.name.removeprefix('relax.')} at '{var.name}' of a tuple variable")
        parts = []
        for f in fields:
            v = self.operand(f)
            parts.append(v.make(s, "int16") if isinstance(v, Const) else
                         self.emit(O.astype(self.to_scale(f, s, 32767), "int16")))
        return Q(self.emit(relax.Call(call.op, [relax.Tuple(parts)], call.attrs)), s, "int16")

    lowers("relax.stack")(op_concat)

    # ------------------------------------------------------------------ report
    def notes(self) -> dict:
        worst = min(self.overflow, key=lambda r: r["headroom_bits"]) if self.overflow else None
        return {"integer_kernels": self.kernels, "io": self.io, "int_io": self.int_io,
                "shiftmax": list(self.notes_shiftmax),
                "symbolic_lengths": {"bound": self.cfg.max_length, "checked_at_run_time": self.bounded}
                if self.bounded else None,
                "overflow": {"checked": len(self.overflow), "tightest": worst},
                "float_islands": self.islands}


ISLAND_HINT = "or keep such ops in float with int-only's option float_islands=true (a recipe; llvm and cuda only)"

#: ops that only move, select or repeat values: an integer tensor passes through with its
#: scale (a per-channel scale only while the last axis stays whole; else it is requantized
#: per tensor first). reshape, permute_dims, take and broadcast_to have rules of their own.
DATA_MOVEMENT = frozenset({"expand_dims", "squeeze", "strided_slice", "tile", "repeat", "flatten"})


def _mask_like(m) -> bool:
    """A :class:`Lin` ``a float(m) + b`` that is 0 for one value of a 0/1 ``m`` and <= -1e4 for
    the other (what :meth:`_Lowering.lin_mask` turns into a keep mask)."""
    return isinstance(m, Lin) and any(m.a * m0 + m.b == 0 and m.a * (1 - m0) + m.b <= -1e4 for m0 in (1, 0))


def _norm_affine(norm, k: int):
    """A normalized tensor's ``(n, g, b)`` with ``g`` and ``b`` as ``k`` per-channel vectors
    (a scalar gain or shift, as SwiftFormer's ``x * scale`` after its norm, applies to every
    channel), or ``None`` where they do not run along the matmul's ``k`` input channels."""
    nvar, g, b = norm
    g, b = np.asarray(g, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    if g.size not in (1, k) or b.size not in (1, k):
        return None
    return nvar, np.broadcast_to(g, (k,)), np.broadcast_to(b, (k,))


def _keeps_last(call, out_var) -> bool:
    """The output's last axis is the input's last axis, whole (per-channel scales still apply)."""
    from qcompile.analysis.moves import axis_back

    src = call.args[0]
    nd_in, nd_out = len(src.ty.shape), len(out_var.ty.shape)
    if axis_back(call, out_var.ty, nd_out - 1) != nd_in - 1:
        return False
    a, b = shape_of(src), shape_of(out_var)
    return a is not None and b is not None and a[-1] == b[-1]


def count_ops(main) -> dict:
    """Bindings of ``main`` that compute an integer result, and those that compute a float one
    (the input quantization and output dequantization, unless ``int_io``)."""
    n_int, floats = 0, []
    for blk in main.body.blocks:
        for b in blk.bindings:
            if not isinstance(b.value, relax.Call):
                continue
            op = b.value.op
            name = op.name.removeprefix("relax.") if isinstance(op, tvm.ir.Op) else op.name_hint
            if _is_float_tensor(b.var):
                floats.append(f"{b.var.name}: {name}")
            else:
                n_int += 1
    return {"integer": n_int, "float": floats}


def _dtype(e) -> str:
    return str(e.ty.dtype)
