"""int8 matmuls on NVIDIA GPUs as ``__dp4a`` integer dot products (sm_61 and later).

A dlight schedule rule, tried before dlight's own matmul rule. It takes any PrimFunc whose
reduction block is an int8/uint8 x int8/uint8 -> int32 matmul (batched or not, with any
fused elementwise epilogue: bias, dyadic requantization, ShiftGELU) and schedules it as

* normalize to ``C[S, I, J] += A[S, I, K] * B[S, J, K]`` (dlight's reindex, so K is the
  innermost axis of both operands whatever the source layouts were),
* pad I, J, K to the tile (zeros add nothing to an integer dot product),
* one thread block per ``TILE_I x TILE_J`` output tile, each thread ``MICRO x MICRO``
  accumulators in registers, K walked in steps of ``TILE_K`` through shared memory
  (cooperative, 4-byte loads; rows padded to keep every 4-byte group aligned),
* the innermost 4 K iterations tensorized with TVM's ``dp4a`` intrinsic, so the emitted
  CUDA has one ``__dp4a`` per 4 multiply-adds,
* the epilogue computed from the registers when the tile is written back.

Integer results are exact whatever the schedule, so the artifact stays bit-exact to the
NumPy reference of the integer graph (checked on the GPU by ``benchmarks/gpu``).
"""
from __future__ import annotations

import functools

import tvm
import tvm_ffi

from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import get_root_block
from tvm.s_tir.dlight.gpu.base import GPUScheduleRule
from tvm.s_tir.dlight.gpu.matmul import (auto_inline_consumer_chain, auto_inline_producers, check_sm_version,
                                         get_index_map, get_reduction_blocks)
from tvm.script import tirx as T

THREADS_I, THREADS_J = 8, 16  # 128 threads per block
MICRO = 4  # accumulators per thread along I and along J
TILE_K = 16  # K per shared-memory stage; a multiple of 4

_OPERANDS = {("int8", "int8"), ("uint8", "int8"), ("int8", "uint8")}


@functools.cache
def dp4a_intrin(dtype_a: str, dtype_b: str) -> str:
    """Register (once) and name the tensor intrinsic ``C += dot(A[0:4], B[0:4])`` -> ``__dp4a``.

    The same description as TVM's ``tensor_intrin.dot_product_common``; declared here because
    importing ``tvm.s_tir.tensor_intrin`` parses every intrinsic TVM has (two minutes)."""
    name = f"qcompile_dp4a_{dtype_a}_{dtype_b}"
    vec_a, vec_b = f"{dtype_a}x4", f"{dtype_b}x4"

    @T.prim_func(s_tir=True)
    def desc(A: T.Buffer((4,), dtype_a, offset_factor=1, align=4, scope="shared"),
             B: T.Buffer((4,), dtype_b, offset_factor=1, align=4, scope="shared"),
             C: T.Buffer((1,), "int32", offset_factor=1, align=4, scope="local")) -> None:
        with T.sblock("root"):
            T.reads(C[0], A[0:4], B[0:4])
            T.writes(C[0])
            for i in range(0, 4):
                with T.sblock("update"):
                    vi = T.axis.remap("R", [i])
                    C[0] = C[0] + T.cast(A[vi], "int32") * T.cast(B[vi], "int32")

    @T.prim_func(s_tir=True)
    def impl(A: T.Buffer((4,), dtype_a, offset_factor=1, align=4, scope="shared"),
             B: T.Buffer((4,), dtype_b, offset_factor=1, align=4, scope="shared"),
             C: T.Buffer((1,), "int32", offset_factor=1, align=4, scope="local")) -> None:
        with T.sblock("root"):
            T.reads(C[0], A[0:4], B[0:4])
            T.writes(C[0])
            C[0] += T.call_pure_extern("__dp4a", A.vload([0], vec_a), B.vload([0], vec_b), T.int32(0),
                                       dtype="int32")

    s_tir.TensorIntrin.register(name, desc, impl, override=True)
    return name


def _int8_matmul(block) -> tuple[str, str] | None:
    if len(block.reads) < 2 or len(block.writes) != 1 or str(block.writes[0].source.dtype) != "int32":
        return None
    key = (str(block.reads[0].source.dtype), str(block.reads[1].source.dtype))
    return key if key in _OPERANDS else None


class Int8MatmulDP4A(GPUScheduleRule):
    """int8 matmul (+ fused epilogue) -> shared-memory tiled ``__dp4a`` kernel."""

    def apply(self, func, target, _tunable):
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        if target.kind.name != "cuda" or check_sm_version(str(target.attrs.get("arch", ""))) < 61:
            return None  # __dp4a needs sm_61 or later
        sch = s_tir.Schedule(func)
        blocks = sch.get_child_blocks(get_root_block(sch))
        reduction = get_reduction_blocks(sch, blocks)
        if reduction is None:
            return None
        main = reduction[0]
        dtypes = _int8_matmul(sch.get(main))
        if dtypes is None or not get_index_map(sch.get(main)):
            return None

        # normalize to C[S, I, J] += A[S, I, K] * B[S, J, K]
        reindex_a = sch.reindex(main, ("read", 0))
        reindex_b = sch.reindex(main, ("read", 1))
        reindex_c = sch.reindex(main, ("write", 0))
        matmul_map, a_map, b_map, c_map = get_index_map(sch.get(main))
        sch.transform_layout(reindex_a, ("write", 0), a_map)
        sch.transform_layout(reindex_b, ("write", 0), b_map)
        sch.transform_layout(reindex_c, ("read", 0), c_map)
        sch.transform_block_layout(main, matmul_map)
        sch.pad_einsum(main, [1, THREADS_I * MICRO, THREADS_J * MICRO, TILE_K])

        batch, i, j, k = sch.get_loops(main)
        bi, ti, ii = sch.split(i, [None, THREADS_I, MICRO])
        bj, tj, jj = sch.split(j, [None, THREADS_J, MICRO])
        ko, ki, k4 = sch.split(k, [None, TILE_K // 4, 4])
        sch.reorder(bi, bj, ti, tj, ko, ki, ii, jj, k4)
        sch.bind(sch.fuse(batch, bi), "blockIdx.y")
        sch.bind(bj, "blockIdx.x")
        sch.bind(ti, "threadIdx.y")
        sch.bind(tj, "threadIdx.x")
        sch.annotate(tj, ann_key="pragma_auto_unroll_max_step", ann_val=256)
        sch.annotate(tj, ann_key="pragma_unroll_explicit", ann_val=1)

        store = sch.cache_write(main, 0, "local")
        sch.reverse_compute_at(store, tj, preserve_unit_loops=True)

        for index in (0, 1):
            fetch = sch.cache_read(main, index, "shared")
            n = len(sch.get_loops(fetch))
            sch.compute_at(fetch, ko, preserve_unit_loops=True)
            ty, tx, _, vec = sch.split(sch.fuse(*sch.get_loops(fetch)[-n:]),
                                       [THREADS_I, THREADS_J, None, 4])
            sch.vectorize(vec)
            sch.bind(ty, "threadIdx.y")
            sch.bind(tx, "threadIdx.x")
            # row stride TILE_K + 4 bytes: fewer bank conflicts, 4-byte groups stay aligned
            sch.storage_align(fetch, 0, axis=1, factor=TILE_K, offset=4)
            auto_inline_producers(sch, fetch)

        auto_inline_consumer_chain(sch, store)
        sch.decompose_reduction(main, ko)
        sch.tensorize(k4, dp4a_intrin(*dtypes))
        return sch


def uses_dp4a(func) -> bool:
    """Whether a scheduled PrimFunc calls ``__dp4a``."""
    found = []

    def cb(obj):
        if isinstance(obj, tvm.ir.expr.StringImm) and obj.value == "__dp4a":
            found.append(obj)

    tvm_ffi.structural_walk(func, cb)
    return bool(found)
