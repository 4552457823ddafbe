"""NumPy reference of an integer Relax module: the oracle the compiled artifacts are
checked against bit for bit.

:func:`run` interprets ``main`` binding by binding with NumPy. Relax ops map to NumPy
operations with the same integer semantics (wrapping arithmetic, arithmetic shifts,
``clip`` then cast); each ``call_tir`` kernel emitted by the ``int-only`` pass carries its
name and parameters (``qcompile.kernel``) and runs the NumPy formula of
:mod:`qcompile.passes.int_only.intops`, written independently of its TE code. An op or kernel without a
NumPy rule is an error, never a silent fallback to TVM.
"""
from __future__ import annotations


import numpy as np
import tvm
from tvm import relax

from qcompile.passes.int_only import intops
from qcompile.errors import QCompileError


def _np_dtype(dt: str):
    return np.dtype("bool" if dt == "bool" else dt)


class _Interp:
    def __init__(self, mod):
        self.mod = mod
        self.sym: dict = {}

    def dim(self, d) -> int:
        if isinstance(d, tvm.tirx.IntImm):
            return int(d)
        ana = tvm.sym.Analyzer()
        for v, n in self.sym.items():
            ana.bind(v, n)
        e = ana.simplify(d)
        if not isinstance(e, tvm.tirx.IntImm):
            raise QCompileError(f"intref: cannot evaluate shape {d}")
        return int(e)

    def shape(self, s) -> tuple:
        vals = s.values if isinstance(s, relax.ShapeExpr) else s
        return tuple(self.dim(d) for d in vals)

    def value(self, e, env):
        if isinstance(e, relax.Var) and (e in env or e not in self.sym):
            return env[e]
        if e in self.sym:  # a dim variable (relax.Var and tirx.Var are one class in TVM 0.27)
            return self.dim(e)
        if isinstance(e, tvm.ir.GenericConst):
            return e.value.numpy()
        if isinstance(e, relax.ShapeExpr):
            return self.shape(e)
        if isinstance(e, relax.Tuple):
            return tuple(self.value(f, env) for f in e.fields)
        if isinstance(e, tvm.tirx.IntImm):
            return int(e.value)
        if isinstance(e, tvm.tirx.FloatImm):
            return float(e.value)
        if isinstance(e, tvm.ir.StringImm):  # a dtype argument (arange)
            return str(e.value)
        if isinstance(e, tvm.tirx.Expr):  # a symbolic slice bound
            return self.dim(e)
        if hasattr(e, "value") and isinstance(e.value, tvm.tirx.Expr):  # R.prim_value(dim expression)
            return self.value(e.value, env)
        raise QCompileError(f"intref: unsupported expression {type(e).__name__}: {e}")

    def run(self, inputs):
        main = self.mod["main"]
        env = {}
        for p, x in zip(main.params, inputs):
            x = np.asarray(x)
            for d, n in zip(p.ty.shape, x.shape):
                if isinstance(d, tvm.tirx.Var):
                    self.sym[d] = tvm.tirx.IntImm(str(d.ty.dtype), n)
            env[p] = x
        for blk in main.body.blocks:
            for b in blk.bindings:
                env[b.var] = self.call(b.var, b.value, env)
        out = self.value(main.body.body, env)
        return list(out) if isinstance(out, tuple) else [out]

    def call(self, var, e, env):
        if not isinstance(e, relax.Call):
            return self.value(e, env)
        if isinstance(e.op, relax.GlobalVar):
            raise QCompileError(f"intref: call of '{e.op.name_hint}' at '{var.name}' is not an integer kernel")
        if e.op.name == "relax.call_tir":
            return self.kernel(e, [None, self.value(e.args[1], env)])
        args = [self.value(a, env) for a in e.args]
        name = e.op.name.removeprefix("relax.")
        a = e.attrs
        out_dt = str(var.ty.dtype) if isinstance(var.ty, relax.TensorType) else None
        if name in BINARY:
            return np.asarray(BINARY[name](args[0], args[1]))
        if name == "astype":
            return args[0].astype(_np_dtype(str(a.dtype)))
        if name == "clip":
            x = args[0]
            return np.clip(x, args[1], args[2]).astype(x.dtype)
        if name == "floor":
            return np.floor(args[0])
        if name == "matmul":
            x, w = args
            dt = str(a.out_dtype) if a.out_dtype and str(a.out_dtype) != "void" else str(x.dtype)
            if np.issubdtype(_np_dtype(dt), np.integer):
                return np.matmul(x.astype(np.int64), w.astype(np.int64)).astype(dt)
            return np.matmul(x, w).astype(dt)
        if name == "reshape":
            return args[0].reshape(args[1])
        if name == "expand_dims":
            out = args[0]
            for ax in sorted(int(i) % (out.ndim + len(a.axis)) for i in a.axis):
                out = np.expand_dims(out, ax)
            return out
        if name in ("max", "min", "sum"):
            ax = None if a.axis is None else tuple(int(i) for i in a.axis)
            return np.asarray(getattr(np, {"max": "amax", "min": "amin", "sum": "sum"}[name])(
                args[0], axis=ax, keepdims=bool(a.keepdims))).astype(out_dt)
        if name == "logical_not":
            return np.logical_not(args[0])
        if name == "strided_slice":  # (Python slicing clamps the bounds as Relax does)
            x, axes, begin, end = args[:4]
            steps = args[4] if len(args) > 4 else (1,) * len(axes)
            idx = [slice(None)] * x.ndim
            for ax, b, e_, st in zip(axes, begin, end, steps):
                idx[int(ax) % x.ndim] = slice(int(b), int(e_), int(st))
            return x[tuple(idx)]
        if name == "squeeze":
            return np.squeeze(args[0], None if a.axis is None else tuple(int(i) for i in a.axis))
        if name == "permute_dims":
            axes = None if a.axes is None else [int(i) for i in a.axes]
            return np.transpose(args[0], axes)
        if name == "take":
            x, idx = args
            ax = int(a.axis)
            idx = np.clip(idx, 0, x.shape[ax] - 1) if str(a.mode) == "clip" else idx
            return np.take(x, idx, axis=ax)
        if name == "broadcast_to":
            return np.broadcast_to(args[0], args[1]).copy()
        if name == "concat":
            return np.concatenate(args[0], axis=int(a.axis))
        if name == "gather_nd":
            x, idx = args
            b = int(a.batch_dims)
            if b:
                raise NotImplementedError("gather_nd with batch_dims in the NumPy reference")
            return x[tuple(np.moveaxis(idx, -1, 0))]
        if name == "stack":
            return np.stack(args[0], axis=int(a.axis))
        if name == "where":
            return np.where(args[0], args[1], args[2]).astype(out_dt)
        if name == "nn.relu":
            return np.maximum(args[0], 0).astype(args[0].dtype)
        if name == "negative":
            return np.negative(args[0])
        if name == "nn.conv2d" and str(a.data_layout) == "NCHW" and str(a.kernel_layout) == "OIHW":
            return conv2d_ref(args[0], args[1], [int(v) for v in a.strides], [int(v) for v in a.padding],
                              [int(v) for v in a.dilation], int(a.groups)).astype(out_dt)
        if name == "nn.conv2d_transpose" and str(a.data_layout) == "NCHW" and str(a.kernel_layout) == "IOHW":
            return conv2d_transpose_ref(args[0], args[1], [int(v) for v in a.strides], [int(v) for v in a.padding],
                                        [int(v) for v in a.output_padding], [int(v) for v in a.dilation],
                                        int(a.groups)).astype(out_dt)
        if name == "nn.pad":
            w = [int(v) for v in a.pad_width]
            mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[str(a.pad_mode)]
            kw = {"constant_values": float(a.pad_value)} if mode == "constant" else {}
            return np.pad(args[0], list(zip(w[::2], w[1::2])), mode=mode, **kw).astype(args[0].dtype)
        if name == "scatter_nd" and str(a.reduction) == "update":
            data, idx, upd = args
            out = data.copy()
            idx = idx.astype(np.int64)
            out[tuple(idx[..., i] for i in range(idx.shape[-1]))] = upd
            return out
        if name == "assert_op":  # a run-time check (a dim the uniform fold assumed)
            if not bool(np.all(args[0])):
                raise QCompileError(f"intref: the run-time check at '{var.name}' fails")
            return None
        if name == "shape_to_tensor":
            return np.asarray([int(d) for d in args[0]], np.int64)
        if name == "arange":
            return np.arange(*(int(v) for v in args[:3])).astype(out_dt)
        if name == "scatter_elements" and str(a.reduction) in ("update", "none"):
            out = args[0].copy()
            np.put_along_axis(out, args[1].astype(np.int64), args[2], axis=int(a.axis))
            return out
        if name in ("argmax", "argmin"):  # (the first of equal values, as TVM's kernel picks it)
            x = args[0]
            ax = None if a.axis is None else int(a.axis)
            out = getattr(np, name)(x, axis=ax)
            if bool(a.keepdims):
                out = np.expand_dims(out, ax) if ax is not None else out.reshape([1] * x.ndim)
            return np.asarray(out).astype(out_dt)
        if name == "gather_elements":
            return np.take_along_axis(args[0], args[1].astype(np.int64), axis=int(a.axis))
        if name == "gather_nd" and int(a.batch_dims) == 0:
            x, idx = args
            return x[tuple(idx[..., i] for i in range(idx.shape[-1]))]
        raise QCompileError(f"intref: op '{name}' at '{var.name}' has no NumPy rule")

    def kernel(self, e, args):
        gv, ins = e.args[0], args[1]
        p = intops.kernel_spec(self.mod, e)
        if p is None:
            raise QCompileError(f"intref: kernel '{gv.name_hint}' has no qcompile.kernel attribute")
        op = p.pop("op")
        if op == "shiftmax":
            return intops.shiftmax_ref(ins[0], ins[1] if len(ins) > 1 else None, intops.ExpParams(**p))
        if op == "shiftgelu":
            return intops.shiftgelu_ref(ins[0], ins[1], intops.ExpParams(**p))
        if op == "shiftsigmoid":
            return intops.shiftsigmoid_ref(ins[0], intops.ExpParams(**p))
        if op == "isqrt":
            return intops.isqrt_ref(ins[0])
        if op in ("ilayernorm", "irmsnorm"):
            return intops.layernorm_ref(ins[0], p["eps_int"], p["P"], center=op == "ilayernorm")
        raise QCompileError(f"intref: no NumPy rule for kernel '{op}'")


BINARY = {
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply,
    "right_shift": np.right_shift, "left_shift": np.left_shift,
    "maximum": np.maximum, "minimum": np.minimum,
    "less": np.less, "greater": np.greater, "equal": np.equal, "not_equal": np.not_equal,
    "less_equal": np.less_equal, "greater_equal": np.greater_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or,
    "floor_divide": np.floor_divide,
}


def run(mod, *inputs: np.ndarray) -> list[np.ndarray]:
    """Outputs of ``mod['main']`` on ``inputs``, computed with NumPy only."""
    with np.errstate(over="ignore"):
        return _Interp(mod).run(inputs)


def conv2d_ref(x: np.ndarray, w: np.ndarray, strides, padding, dilation, groups: int) -> np.ndarray:
    """NCHW x OIHW convolution in int64 (padding ``[top, left, bottom, right]`` with zeros)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    top, left, bottom, right = padding if len(padding) == 4 else (padding[0], padding[1]) * 2
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    sh, sw = strides
    dh, dw = dilation
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow), np.int64)
    og = o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * og:(g + 1) * og].astype(np.int64)
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    return out


def conv2d_transpose_ref(x: np.ndarray, w: np.ndarray, strides, padding, output_padding, dilation,
                         groups: int) -> np.ndarray:
    """NCHW x IOHW transposed convolution in int64: every input pixel scatters its weighted
    kernel to ``(h * stride + i * dilation, w * stride + j * dilation)`` of the full output,
    which is then cropped by ``padding`` (``[top, left, bottom, right]``) and extended by
    ``output_padding`` at the bottom and right (ONNX ConvTranspose, TVM conv2d_transpose)."""
    n, c, h, wd = x.shape
    ci, og, kh, kw = w.shape
    top, left, bottom, right = padding if len(padding) == 4 else (padding[0], padding[1]) * 2
    sh, sw = strides
    dh, dw = dilation
    fh = (h - 1) * sh + dh * (kh - 1) + 1 + output_padding[0]
    fw = (wd - 1) * sw + dw * (kw - 1) + 1 + output_padding[1]
    full = np.zeros((n, og * groups, fh, fw), np.int64)
    cg = c // groups
    for g in range(groups):
        xs = x[:, g * cg:(g + 1) * cg].astype(np.int64)
        ws = w[g * cg:(g + 1) * cg].astype(np.int64)
        for i in range(kh):
            for j in range(kw):
                full[:, g * og:(g + 1) * og, i * dh:i * dh + sh * (h - 1) + 1:sh,
                     j * dw:j * dw + sw * (wd - 1) + 1:sw] += np.einsum("nchw,co->nohw", xs, ws[:, :, i, j])
    return full[:, :, top:fh - bottom, left:fw - right]
