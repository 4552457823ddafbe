"""Matmuls packed for AVX2: int8 x int8 -> int32 through ``vpmaddwd`` (exact), with a
constant weight packed at compile time or a run-time operand packed in the kernel, and
float32 matmuls with a constant weight in the same layout.

LLVM vectorizes TVM's ``int32(a) * int32(b)`` accumulation as 8-lane 32-bit multiplies
(``vpmulld``: 8 products per instruction, and slow), so int8 matmuls ran slower than fp32
ones. AVX2 has no exact 8-bit dot product (``vpmaddubsw`` saturates its int16 pair sums;
VNNI is AVX-512/AVX-VNNI only), but ``vpmaddwd`` multiplies 16 int16 pairs and adds
adjacent products into 8 int32 lanes: 16 exact multiply-adds per instruction, twice what
an fp32 FMA does.

For a matmul ``x @ W`` whose weight ``W [K, N]`` is an int8 constant (every linear layer
of ``int-only``), :func:`pack_int8_matmuls` rewrites the Relax call into one kernel:

* ``W`` is packed at compile time into panels of 16 columns with ``k`` paired innermost,
  ``Wp[N/16, K/2, 16, 2]`` (int8): one 32-byte load holds the two ``k`` of 16 columns,
  sign-extended to int16 by one ``vpmovsxbw``;
* ``x`` is flattened to rows ``[M, K]`` and widened to int16 once (``A16``, zero-padded to
  a whole number of row tiles and to even ``K``), so a pair ``A16[m, 2k:2k+2]`` is one
  32-bit word that ``vpbroadcastd`` spreads over the lanes;
* the block ``C[m, j] += int32(A16[m, r]) * int32(Wp[j/16, r/2, j%16, r%2])`` is
  tensorized by :func:`intrin` (one row, 16 columns, 2 ``k``: two ``vpmaddwd`` + two
  ``vpaddd``) inside a ``ROWS x 16`` register tile: 12 int32 accumulators. A row tile runs
  over a group of up to 8 weight panels (:func:`panel_group`: the group in L2, the tile's
  rows in L1) before the next tile; (group, row tile) pairs are the parallel loop.

**Run-time operands** (attention's ``Q·Kᵀ`` and ``P·V``: int8 or uint8 times int8, with
batch and head axes): :func:`pack_runtime_int8_matmuls` makes the same packing a stage of
the kernel and the block gets a leading batch axis. The parallel loop runs over (batch, head),
and each iteration widens and packs its own head's operands just before its matmul reads
them (one parallel region per kernel, operands hot in cache; with fewer than
:data:`MIN_PARALLEL_HEADS` heads the tiles are parallel instead). A uint8 ``a`` widens to
int16 exactly. A ``Q·Kᵀ`` whose key count is not a multiple of 16 keeps its padded columns
through the requantization after it, into Shiftmax (:func:`pack_runtime_int8_matmuls`).

**float32** matmuls with a constant weight (``none``) take the same path without the
intrinsic: ``W`` packed at compile time into ``Wp[N/16, K, 16, 1]`` so that a weight panel
is one contiguous stream (unpacked, each ``k`` of a 16-column panel is a separate cache line
``N`` floats from the last, and a K=1536 panel spans 2.3 MB of pages), the rows copied into
a padded ``[M, K]``, and the block ``C[m, j] += A[m, k] * Wp[j/16, k, j%16, 0]`` vectorized
over the 16 columns by LLVM (two FMAs per broadcast row value) in the same ``ROWS x 16``
tile. The summation order over ``k`` is unchanged.

The rewrite is llvm-only (the graph that passes print and the NumPy reference interprets is
unchanged), applies only where the target has AVX2, and keeps results bit-exact (int16
products of int8 values and their pair sums are exact; the int32 accumulation is the same
as before, only in another order, and int32 addition is associative).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import tvm
from tvm import relax, te
from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

from qcompile.passes.int_only import intops
from qcompile.ir import call_tir_inputs, const_value, shape_of
from qcompile.rewrite import rebuild_main

BLOCK = "qmatmul_pmaddwd"   # the tensorized block's name (the schedule finds it by this name)
BLOCK_U8 = "qmatmul_pmaddubsw"
BLOCK_F32 = "matmul_packed_f32"
INTRIN = "qcompile_pmaddwd_1x16x2"
INTRIN_U8 = "qcompile_pmaddubsw_1x16x4"
U8_WEIGHT_MAX = 64          # 2 * 255 * 64 = 32640 <= 32767: vpmaddubsw's int16 pair sums cannot saturate
LANES = 16                  # columns per panel: two 8 x int32 accumulators
ROWS = 6                    # rows per register tile: 12 accumulators + 2 weight vectors + broadcast + product


@functools.cache
def intrin() -> str:
    """Register (once, on first use: parsing TVMScript takes seconds) and name the tensor
    intrinsic: ``C[0:16] += A[0:2] . B[0:16, 0:2]`` as two ``vpmaddwd`` + ``vpaddd``."""
    @T.prim_func(s_tir=True)
    def _desc(A: T.Buffer((2,), "int16", offset_factor=1), B: T.Buffer((16, 2), "int8", offset_factor=1),
              C: T.Buffer((16,), "int32", offset_factor=1, scope="local")) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:2], B[0:16, 0:2])
            T.writes(C[0:16])
            for j in T.serial(0, 16):
                for k in T.serial(0, 2):
                    with T.sblock("update"):
                        vj, vk = T.axis.remap("SR", [j, k])
                        C[vj] = C[vj] + T.cast(A[vk], "int32") * T.cast(B[vj, vk], "int32")

    @T.prim_func(s_tir=True)
    def _impl(A: T.Buffer((2,), "int16", offset_factor=1), B: T.Buffer((16, 2), "int8", offset_factor=1),
              C: T.Buffer((16,), "int32", offset_factor=1, scope="local")) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:2], B[0:16, 0:2])
            T.writes(C[0:16])
            # (a[2k], a[2k+1]) as one int32, broadcast: every lane pair multiplies the same two k
            a = T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "int16x2"), dtype="int32"), 8),
                              dtype="int16x16")
            C[T.ramp(T.int32(0), 1, 8)] += T.call_llvm_pure_intrin(
                "int32x8", T.llvm_lookup_intrinsic_id("llvm.x86.avx2.pmadd.wd"), a,
                T.cast(B.vload([0, 0], "int8x16"), "int16x16"))
            C[T.ramp(T.int32(8), 1, 8)] += T.call_llvm_pure_intrin(
                "int32x8", T.llvm_lookup_intrinsic_id("llvm.x86.avx2.pmadd.wd"), a,
                T.cast(B.vload([8, 0], "int8x16"), "int16x16"))

    TensorIntrin.register(INTRIN, _desc, _impl, override=True)
    return INTRIN


@functools.cache
def intrin_u8() -> str:
    """``C[0:16] += A[0:4] . B[0:16, 0:4]`` with ``A`` uint8 and ``B`` int8, ``|B| <=``
    :data:`U8_WEIGHT_MAX`: ``vpmaddubsw`` (32 byte products, adjacent pairs summed to int16:
    at most ``2 * 255 * 64``, exact) then ``vpmaddwd`` by ones (int16 pairs to int32) and
    ``vpaddd``, for each half of the 16 columns: 64 multiply-adds in six instructions."""
    @T.prim_func(s_tir=True)
    def _desc(A: T.Buffer((4,), "uint8", offset_factor=1), B: T.Buffer((16, 4), "int8", offset_factor=1),
              C: T.Buffer((16,), "int32", offset_factor=1, scope="local")) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4], B[0:16, 0:4])
            T.writes(C[0:16])
            for j in T.serial(0, 16):
                for k in T.serial(0, 4):
                    with T.sblock("update"):
                        vj, vk = T.axis.remap("SR", [j, k])
                        C[vj] = C[vj] + T.cast(A[vk], "int32") * T.cast(B[vj, vk], "int32")

    @T.prim_func(s_tir=True)
    def _impl(A: T.Buffer((4,), "uint8", offset_factor=1), B: T.Buffer((16, 4), "int8", offset_factor=1),
              C: T.Buffer((16,), "int32", offset_factor=1, scope="local")) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4], B[0:16, 0:4])
            T.writes(C[0:16])
            a = T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "uint8x4"), dtype="int32"), 8),
                              dtype="uint8x32")
            ones = T.broadcast(T.int16(1), 16)
            C[T.ramp(T.int32(0), 1, 8)] += T.call_llvm_pure_intrin(
                "int32x8", T.llvm_lookup_intrinsic_id("llvm.x86.avx2.pmadd.wd"),
                T.call_llvm_pure_intrin("int16x16", T.llvm_lookup_intrinsic_id("llvm.x86.avx2.pmadd.ub.sw"),
                                        a, B.vload([0, 0], "int8x32")), ones)
            C[T.ramp(T.int32(8), 1, 8)] += T.call_llvm_pure_intrin(
                "int32x8", T.llvm_lookup_intrinsic_id("llvm.x86.avx2.pmadd.wd"),
                T.call_llvm_pure_intrin("int16x16", T.llvm_lookup_intrinsic_id("llvm.x86.avx2.pmadd.ub.sw"),
                                        a, B.vload([8, 0], "int8x32")), ones)

    TensorIntrin.register(INTRIN_U8, _desc, _impl, override=True)
    return INTRIN_U8


def supported(target) -> bool:
    """The target is x86 with AVX2."""
    try:
        return bool(tvm.target.codegen.target_has_features("avx2", target))
    except Exception:  # noqa: BLE001 - not an x86 llvm target
        return False


def _round_up(n: int, f: int) -> int:
    return -(-n // f) * f


def row_tile(m: int) -> tuple[int, int]:
    """(rows per register tile, padded row count): six rows (twelve accumulators), ``m``
    padded up to a multiple of six; fewer only when ``m`` itself is smaller. Chosen from a
    scratch comparison on the 2-core AVX2 (Zen 2) machine, not a repo benchmark: six-row
    tiles with up to five padded rows ran faster than exact four- and five-row tiles."""
    if m <= ROWS:
        return m, m
    return ROWS, _round_up(m, ROWS)


def _pair(dtype) -> int:
    """``k`` values per weight word: two int8 for ``vpmaddwd``, one float32."""
    return 2 if str(dtype) == "int8" else 1


def u8_kernel(w: np.ndarray) -> bool:
    """An int8 weight takes the ``vpmaddubsw`` kernel when it fits :data:`U8_WEIGHT_MAX`
    (``int-only`` with ``weight_bits=7``)."""
    return w.dtype == np.int8 and int(np.abs(w.astype(np.int16)).max(initial=0)) <= U8_WEIGHT_MAX


def pack_weight(w: np.ndarray, p: int | None = None) -> np.ndarray:
    """``W [K, N]`` -> ``Wp [ceil(N/16), ceil(K/p), 16, p]``, zero-padded, ``p`` 2 for int8
    (4 for the ``vpmaddubsw`` kernel) and 1 for float32: ``Wp[j // 16, k // p, j % 16, k % p]
    = W[k, j]``."""
    k, n = w.shape
    p = p or _pair(w.dtype)
    kp, np_ = _round_up(k, p), _round_up(n, LANES)
    full = np.zeros((kp, np_), w.dtype)
    full[:k, :n] = w
    return np.ascontiguousarray(full.reshape(kp // p, p, np_ // LANES, LANES).transpose(2, 0, 3, 1))


def _unravel(i, lead: list[int]) -> list:
    """Flat index ``i`` over the leading axes ``lead`` -> one index per axis (row-major)."""
    idx = []
    for d in reversed(lead):
        idx.append(i % d)
        i = i // d
    return idx[::-1]


def _ravel(idx, lead: list[int]):
    """The inverse of :func:`_unravel`."""
    flat = 0
    for v, d in zip(idx, lead):
        flat = flat * d + v
    return flat


def packed_matmul_te(x: te.Tensor, wp: te.Tensor, k: int, n: int, corr: te.Tensor | None = None):
    """``x [..., K] @ W [K, N]`` with ``W`` packed by :func:`pack_weight`: the three stages
    described in the module docstring (int8 -> int32, or float32). With ``corr`` (the
    ``vpmaddubsw`` kernel, ``Wp`` packed with ``p = 4``) the rows are ``x + 128`` as uint8
    and ``corr[j] = 128 * sum_k W[k, j]`` is subtracted on the way out."""
    lead = [int(d) for d in x.shape[:-1]]
    m = math.prod(lead)
    p = 4 if corr is not None else _pair(wp.dtype)
    _, mp = row_tile(m)
    kp, np_ = int(wp.shape[1]) * p, int(wp.shape[0]) * LANES
    wide, acc = ("int16", "int32") if p == 2 else ("uint8", "int32") if p == 4 else ("float32", "float32")

    def a16(i, r):
        inside = tvm.tirx.all(i < m, r < k) if (mp != m or kp != k) else None
        v = x[(*_unravel(tvm.tirx.min(i, m - 1), lead), tvm.tirx.min(r, k - 1))]
        v = (v.astype("int16") + tvm.tirx.const(128, "int16")).astype(wide) if p == 4 else v.astype(wide)
        return v if inside is None else tvm.tirx.if_then_else(inside, v, tvm.tirx.const(0, wide))

    names = {2: ("qmatmul_a16", BLOCK, "qmatmul_out"), 4: ("qmatmul_a8u", BLOCK_U8, "qmatmul_out"),
             1: ("matmul_rows", BLOCK_F32, "matmul_out")}[p]
    a = te.compute((mp, kp), a16, name=names[0])
    r = te.reduce_axis((0, kp), "r")
    c = te.compute((mp, np_), lambda i, j: te.sum(
        a[i, r].astype(acc) * wp[j // LANES, r // p, j % LANES, r % p].astype(acc), axis=r), name=names[1])

    def out(*idx):
        row = _ravel(idx[:-1], lead)
        return c[row, idx[-1]] if corr is None else c[row, idx[-1]] - corr[idx[-1]]

    return te.compute((*lead, n), out, name=names[2])


def runtime_packed_matmul_te(a: te.Tensor, b: te.Tensor, pad_n: bool = False):
    """``a [..., M, K] @ b [..., K, N]`` for two run-time tensors (attention's ``Q·Kᵀ`` and
    ``P·V``): int8 or uint8 ``a``, int8 ``b``, the same leading (batch, head) axes. The
    packing of :func:`pack_weight` is a stage of the kernel (``b`` into ``Bp[B, N/16, K/2,
    16, 2]``, one pass over ``b``, reused by all of ``a``'s rows), then the same tensorized
    block with a leading batch axis. ``pad_n``: the output keeps ``N`` padded to whole
    panels (the padded columns hold 0; see :func:`pack_runtime_int8_matmuls`)."""
    lead = [int(d) for d in a.shape[:-2]]
    m, k, n = int(a.shape[-2]), int(a.shape[-1]), int(b.shape[-1])
    nb, (_, mp), kp, np_ = math.prod(lead), row_tile(m), _round_up(k, 2), _round_up(n, LANES)

    def a16(h, i, r):
        v = a[(*_unravel(h, lead), tvm.tirx.min(i, m - 1), tvm.tirx.min(r, k - 1))].astype("int16")
        return tvm.tirx.if_then_else(tvm.tirx.all(i < m, r < k), v, tvm.tirx.const(0, "int16"))

    def bpack(h, jo, ro, ji, ri):
        j, r = jo * LANES + ji, ro * 2 + ri
        v = b[(*_unravel(h, lead), tvm.tirx.min(r, k - 1), tvm.tirx.min(j, n - 1))]
        return tvm.tirx.if_then_else(tvm.tirx.all(j < n, r < k), v, tvm.tirx.const(0, "int8"))

    a_ = te.compute((nb, mp, kp), a16, name="qmatmul_a16")
    bp = te.compute((nb, np_ // LANES, kp // 2, LANES, 2), bpack, name="qmatmul_bpack")
    r = te.reduce_axis((0, kp), "r")
    c = te.compute((nb, mp, np_), lambda h, i, j: te.sum(
        a_[h, i, r].astype("int32") * bp[h, j // LANES, r // 2, j % LANES, r % 2].astype("int32"), axis=r),
        name=BLOCK)

    def out(*idx):
        return c[_ravel(idx[:-2], lead), idx[-2], idx[-1]]

    return te.compute((*lead, m, np_ if pad_n else n), out, name="qmatmul_out")


def _runtime_candidate(value) -> bool:
    """``matmul(a, b) -> int32`` of two run-time tensors with static shapes, ``a`` int8 or
    uint8, ``b`` int8, the same leading axes (no broadcasting)."""
    if not (isinstance(value, relax.Call) and getattr(value.op, "name", "") == "relax.matmul"):
        return False
    if str(value.attrs.out_dtype) != "int32":
        return False
    a, b = value.args
    if isinstance(a, tvm.ir.GenericConst) or isinstance(b, tvm.ir.GenericConst):
        return False
    sa, sb = shape_of(a), shape_of(b)
    if sa is None or sb is None or len(sa) < 3 or len(sa) != len(sb):
        return False
    if not all(isinstance(d, int) for d in (*sa, *sb)) or sa[:-2] != sb[:-2] or sa[-1] != sb[-2]:
        return False
    return str(a.ty.dtype) in ("int8", "uint8") and str(b.ty.dtype) == "int8"


def _scalar_operand(a) -> bool:
    """An operand that is the same for every element: a non-tensor (``PrimValue``) or a
    one-element constant."""
    if isinstance(a, relax.Var):
        return False
    v = const_value(a)
    return v is None or v.size == 1


def ragged_chains(func, matmuls: set) -> dict:
    """For each run-time matmul in ``matmuls`` whose ``N`` is not a whole number of panels:
    the elementwise bindings after it (ops of :data:`PAD_THROUGH` whose other operands are
    scalars), which can run on the padded columns too. ``{matmul var: [binding, ...]}``."""
    chains, owner = {}, {}
    for blk in func.body.blocks:
        for b in blk.bindings:
            v = b.value
            if b.var in matmuls:
                if shape_of(b.var)[-1] % LANES:
                    chains[b.var], owner[b.var] = [], b.var
                continue
            if not (isinstance(v, relax.Call) and getattr(v.op, "name", "") in PAD_THROUGH):
                continue
            tensors = [a for a in v.args if not _scalar_operand(a)]
            if len(tensors) == 1 and tensors[0] in owner:
                owner[b.var] = owner[tensors[0]]
                chains[owner[b.var]].append(b)
    return chains


# Elementwise Relax ops a padded attention score passes through (the requantization to
# Shiftmax's input): with scalar operands, each padded column stays a function of its own
# value, and the columns that are kept are computed exactly as before.
PAD_THROUGH = {f"relax.{n}" for n in ("astype", "multiply", "add", "subtract", "right_shift", "left_shift",
                                      "clip", "maximum", "minimum")}


OPAQUE = 8  # relax's kOpaque: FuseOps leaves the crop a kernel of its own


def crop_te(x: te.Tensor, n: int) -> te.Tensor:
    """The first ``n`` columns (last axis) of ``x``."""
    return te.compute((*x.shape[:-1], n), lambda *i: x(*i), name="crop")


def pack_runtime_int8_matmuls(mod) -> tuple[tvm.IRModule, int]:
    """Rewrite every int8 matmul of two run-time tensors in ``main`` (attention) into the
    kernel of :func:`runtime_packed_matmul_te`; returns the module and how many.

    Where ``N`` (the keys of ``Q·Kᵀ``: 197 for DeiT-S) is not a whole number of 16-column
    panels, the kernel's write-back would need a per-lane guard on the last panel, and TVM
    then writes back every panel element by element. So the kernel keeps ``N`` padded, the
    elementwise requantization after it (:func:`ragged_chains`) runs on the padded columns
    too (it fuses into the write-back as before), and the columns are cut back to ``N`` where
    the chain ends: an ``int-only`` Shiftmax kernel that reads it is rebuilt with the crop as
    its input stage (it reads the real columns of the padded rows); any other reader gets a
    crop kernel of its own (:func:`crop_te`, left unfused so that the crop cannot fuse back
    into the write-back and bring the guard with it)."""
    if not any(gv.name_hint == "main" for gv in mod.get_global_vars()):
        return mod, 0
    main = mod["main"]
    found = {b.var for blk in main.body.blocks for b in blk.bindings if _runtime_candidate(b.value)}
    if not found:
        return mod, 0
    chains = ragged_chains(main, found)
    in_chain = {b.var: b.value for c in chains.values() for b in c}
    main_values = {b.var: b.value for blk in main.body.blocks for b in blk.bindings}
    padded = {}  # original var -> its padded counterpart in the new main

    def cut(bb, var, pv):
        padded[var] = pv
        return bb.call_te(crop_te, pv, shape_of(var)[-1], primfunc_name_hint="crop_columns",
                          primfunc_attrs={"op_pattern": OPAQUE})

    def on_binding(bb, var, value):
        spec = intops.kernel_spec(mod, value) if padded else None
        if spec is not None and spec["op"] == "shiftmax" and call_tir_inputs(main_values[var])[0] in padded:
            p, n, mask = intops.ExpParams(K=spec["K"], n=spec["n"], B=spec["B"]), shape_of(var)[-1], call_tir_inputs(value)[1:]
            return bb.call_te(lambda xp, *m: intops.shiftmax_te(crop_te(xp, n), m[0] if m else None, p),
                              padded[call_tir_inputs(main_values[var])[0]], *mask, primfunc_name_hint="shiftmax",
                              primfunc_attrs=dict(mod[value.args[0]].attrs))
        if var in found:
            if var not in chains:
                return bb.call_te(runtime_packed_matmul_te, *value.args, primfunc_name_hint="qmatmul_pmaddwd_rt",
                                  primfunc_attrs={"op_pattern": 4})
            return cut(bb, var, bb.emit(bb.call_te(
                runtime_packed_matmul_te, *value.args, pad_n=True, primfunc_name_hint="qmatmul_pmaddwd_rt",
                primfunc_attrs={"op_pattern": 4}), name_hint=var.name + "_padded"))
        if var in in_chain:
            args = [padded[o] if isinstance(o, relax.Var) and o in padded else n
                    for o, n in zip(in_chain[var].args, value.args)]
            return cut(bb, var, bb.emit(relax.Call(value.op, args, value.attrs, value.ty_args),
                                        name_hint=var.name + "_padded"))
        return None

    mod = rebuild_main(mod, on_binding)
    if chains:  # the slices of the chain's inner values are unused
        mod = relax.transform.DeadCodeElimination(["main"])(mod)
    return mod, len(found)


def _candidate(value, dtype: str = "int8"):
    """(x, W) if ``value`` is ``matmul(x [..., K] static, W const [K, N])`` in ``dtype``:
    int8 -> int32, or float32."""
    if not (isinstance(value, relax.Call) and getattr(value.op, "name", "") == "relax.matmul"):
        return None
    out = str(value.attrs.out_dtype)
    if (dtype == "int8" and out != "int32") or (dtype == "float32" and out not in ("None", "void", "", "float32")):
        return None
    x, w = value.args
    shape = shape_of(x)
    if shape is None or str(x.ty.dtype) != dtype or not isinstance(w, tvm.ir.GenericConst):
        return None
    if len(shape) < 2 or not all(isinstance(d, int) for d in shape):
        return None
    wv = const_value(w)
    if wv is None or wv.dtype != np.dtype(dtype) or wv.ndim != 2 or shape[-1] != wv.shape[0]:
        return None
    return x, wv


def _pack(mod, dtype: str) -> tuple[tvm.IRModule, dict]:
    if not any(gv.name_hint == "main" for gv in mod.get_global_vars()):
        return mod, {}
    found = {}  # each weight is read once, here
    for blk in mod["main"].body.blocks:
        for b in blk.bindings:
            c = _candidate(b.value, dtype)
            if c is not None:
                found[b.var] = c[1]
    kinds = {v: ("pmaddubsw" if u8_kernel(w) else "pmaddwd") if dtype == "int8" else "f32"
             for v, w in found.items()}
    counts = {k: list(kinds.values()).count(k) for k in set(kinds.values())}
    if not found:
        return mod, counts

    def on_binding(bb, var, value):
        if var not in found:
            return None
        wv = found[var]
        k, n = wv.shape
        attrs = {"op_pattern": 4}  # kOutEWiseFusable: the epilogue fuses in
        if kinds[var] == "pmaddubsw":
            corr = (128 * wv.astype(np.int32).sum(0)).astype(np.int32)
            return bb.call_te(packed_matmul_te, value.args[0], relax.const(pack_weight(wv, 4)), k, n,
                              relax.const(corr), primfunc_name_hint="qmatmul_pmaddubsw", primfunc_attrs=attrs)
        return bb.call_te(packed_matmul_te, value.args[0], relax.const(pack_weight(wv)), k, n,
                          primfunc_name_hint="qmatmul_pmaddwd" if dtype == "int8" else "matmul_packed",
                          primfunc_attrs=attrs)

    return rebuild_main(mod, on_binding), counts


def pack_int8_matmuls(mod) -> tuple[tvm.IRModule, dict]:
    """Rewrite every int8 matmul with a constant weight in ``main`` into a packed kernel:
    ``vpmaddubsw`` where the weight fits :data:`U8_WEIGHT_MAX`, ``vpmaddwd`` otherwise.
    Returns the module and how many took each (``{"pmaddwd": n, "pmaddubsw": n}``)."""
    mod, counts = _pack(mod, "int8")
    return mod, {"pmaddwd": counts.get("pmaddwd", 0), "pmaddubsw": counts.get("pmaddubsw", 0)}


def pack_f32_matmuls(mod) -> tuple[tvm.IRModule, int]:
    """The same for float32 matmuls with a constant weight (no intrinsic: LLVM vectorizes)."""
    mod, counts = _pack(mod, "float32")
    return mod, counts.get("f32", 0)


PANEL_GROUP_BYTES = 256 * 1024  # weight panels one row tile runs over in turn (kept in L2: 512 KB on Zen 3)
MIN_PARALLEL_HEADS = 4  # a run-time kernel with fewer (batch x heads) iterations parallelizes its tiles


def panel_group(panels: int, panel_k_bytes: int) -> int:
    """Column panels per group (8, 4, 2 or 1, dividing ``panels``; ``panel_k_bytes``: bytes
    per column of a panel, ``K`` times the weight element size). A row tile (in L1) runs
    over every panel of its group before the next tile, and the group's panels (within
    :data:`PANEL_GROUP_BYTES`, in L2) are reused by every row tile, so the rows stream from
    memory once per group instead of once per panel. (Panel by panel, a batch-8 DeiT-S
    matmul read its 1.2-4.8 MB of rows from L3 for every 16 columns.)"""
    return next(f for f in (8, 4, 2, 1) if panels % f == 0 and f * LANES * panel_k_bytes <= PANEL_GROUP_BYTES)


def _pack_stages_at(sch, loop) -> None:
    """Compute the run-time kernel's widening (``A16``) and packing (``Bp``) stages for one
    (batch, head) inside its parallel iteration, just before the matmul reads them."""
    sch.compute_at(sch.get_sblock("qmatmul_bpack"), loop, preserve_unit_loops=True)
    a16 = sch.get_sblock("qmatmul_a16")
    sch.compute_at(a16, loop, preserve_unit_loops=True)
    inner = sch.get_loops(a16)[-1]
    if int(sch.get(inner).extent) % 16 == 0:
        sch.vectorize(sch.split(inner, [None, 16])[1])


def schedule(sch, block, epilogue) -> bool:
    """The register-tiled schedule of a :data:`BLOCK` block (tensorized) or a
    :data:`BLOCK_F32` block (vectorized); ``epilogue(sch,
    acc)`` inlines the fused elementwise consumers into the accumulator write-back (the
    default CPU schedule's rule)."""
    name = sch.get(block).name_hint
    if not name.startswith((BLOCK, BLOCK_U8, BLOCK_F32)):
        return False
    int8, u8 = name.startswith(BLOCK), name.startswith(BLOCK_U8)
    *batch, i, j, k = sch.get_loops(block)  # batch: the run-time kernel's (batch x heads) axis
    mr, _ = row_tile(int(sch.get(i).extent))
    io, ii = sch.split(i, [None, mr])
    g = panel_group(int(sch.get(j).extent) // LANES, int(sch.get(k).extent) * (1 if int8 or u8 else 4))
    jg, jo, ji = sch.split(j, [None, g, LANES])
    if int8 or u8:
        ko, ki = sch.split(k, [None, 4 if u8 else 2])
        sch.reorder(*batch, jg, io, jo, ko, ii, ji, ki)
    else:
        ko = k
        sch.reorder(*batch, jg, io, jo, ko, ii, ji)
    if batch and int(sch.get(batch[0]).extent) >= MIN_PARALLEL_HEADS:
        heads = batch[0]  # one parallel iteration per (batch, head), its operands packed inside it
        sch.parallel(heads)
        _pack_stages_at(sch, heads)
    else:
        sch.parallel(sch.fuse(*batch, jg, io))
    acc = sch.cache_write(block, 0, "local")
    sch.reverse_compute_at(acc, jo, preserve_unit_loops=True)
    epilogue(sch, acc)
    if not (int8 or u8):  # before the reduction is split into init and update, as in cpu_schedule
        sch.unroll(ii)
        sch.vectorize(ji)
    sch.decompose_reduction(block, ko)
    if int8 or u8:
        sch.unroll(ii)
        sch.tensorize(ji, intrin_u8() if u8 else intrin())
    sch.vectorize(sch.get_loops(acc)[-1])
    return True
