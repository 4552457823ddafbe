# from tvm.script import ir as I
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis
# from tvm.script import relax as R

@I.ir_module
class Module:
    @T.prim_func(private=True, s_tir=True)
    def shiftmax(a0: T.Buffer((T.int64(3), T.int64(17)), "int32"), a1: T.Buffer((T.int64(3), T.int64(17)), "int8"), shiftmax: T.Buffer((T.int64(3), T.int64(17)), "uint8")):
        T.func_attr({"qcompile.kernel": "{\"op\": \"shiftmax\"}", "tirx.noalias": True})
        # with T.sblock("root"):
        row_max = T.sblock_alloc_buffer((T.int64(3),), "int32")
        row_floor = T.sblock_alloc_buffer((T.int64(3),), "int32")
        exp = T.sblock_alloc_buffer((T.int64(3), T.int64(17)), "int32")
        row_sum = T.sblock_alloc_buffer((T.int64(3),), "int32")
        factor = T.sblock_alloc_buffer((T.int64(3),), "int32")
        for i0, k in T.grid(T.int64(3), T.int64(17)):
            with T.sblock("row_max"):
                v_i0, v_k = T.axis.remap("SR", [i0, k])
                T.reads(a1[v_i0, v_k], a0[v_i0, v_k])
                T.writes(row_max[v_i0])
                with T.init():
                    row_max[v_i0] = -2147483648
                row_max[v_i0] = T.max(row_max[v_i0], T.Select(a1[v_i0, v_k] != T.int8(0), a0[v_i0, v_k], -2147483648))
        for i0 in range(T.int64(3)):
            with T.sblock("row_floor"):
                v_i0 = T.axis.spatial(T.int64(3), i0)
                T.reads(row_max[v_i0])
                T.writes(row_floor[v_i0])
                row_floor[v_i0] = T.Cast("int32", T.max(T.Cast("int64", row_max[v_i0]) - T.int64(4096), T.int64(-2147483648)))
        for i0, i1 in T.grid(T.int64(3), T.int64(17)):
            with T.sblock("exp"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(a1[v_i0, v_i1], a0[v_i0, v_i1], row_max[v_i0], row_floor[v_i0])
                T.writes(exp[v_i0, v_i1])
                exp[v_i0, v_i1] = T.Select(a1[v_i0, v_i1] != T.int8(0), (T.max(T.max(T.max(T.min(a0[v_i0, v_i1], row_max[v_i0]), row_floor[v_i0]) - row_max[v_i0], -4096) + (T.max(T.max(T.min(a0[v_i0, v_i1], row_max[v_i0]), row_floor[v_i0]) - row_max[v_i0], -4096) >> 1) - (T.max(T.max(T.min(a0[v_i0, v_i1], row_max[v_i0]), row_floor[v_i0]) - row_max[v_i0], -4096) >> 4), -3840) + (T.max(T.max(T.max(T.min(a0[v_i0, v_i1], row_max[v_i0]), row_floor[v_i0]) - row_max[v_i0], -4096) + (T.max(T.max(T.min(a0[v_i0, v_i1], row_max[v_i0]), row_floor[v_i0]) - row_max[v_i0], -4096) >> 1) - (T.max(T.max(T.min(a0[v_i0, v_i1], row_max[v_i0]), row_floor[v_i0]) - row_max[v_i0], -4096) >> 4), -3840) * -1 >> 8 << 8) >> 1) + 256 << 15 - (T.max(T.max(T.max(T.min(a0[v_i0, v_i1], row_max[v_i0]), row_floor[v_i0]) - row_max[v_i0], -4096) + (T.max(T.max(T.min(a0[v_i0, v_i1], row_max[v_i0]), row_floor[v_i0]) - row_max[v_i0], -4096) >> 1) - (T.max(T.max(T.min(a0[v_i0, v_i1], row_max[v_i0]), row_floor[v_i0]) - row_max[v_i0], -4096) >> 4), -3840) * -1 >> 8), 0)
        for i0, k2 in T.grid(T.int64(3), T.int64(17)):
            with T.sblock("row_sum"):
                v_i0, v_k2 = T.axis.remap("SR", [i0, k2])
                T.reads(exp[v_i0, v_k2])
                T.writes(row_sum[v_i0])
                with T.init():
                    row_sum[v_i0] = 0
                row_sum[v_i0] = row_sum[v_i0] + exp[v_i0, v_k2]
        for i0 in range(T.int64(3)):
            with T.sblock("factor"):
                v_i0 = T.axis.spatial(T.int64(3), i0)
                T.reads(row_sum[v_i0])
                T.writes(factor[v_i0])
                factor[v_i0] = 2147483647 // T.max(row_sum[v_i0], 1)
        for i0, i1 in T.grid(T.int64(3), T.int64(17)):
            with T.sblock("shiftmax"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(exp[v_i0, v_i1], factor[v_i0])
                T.writes(shiftmax[v_i0, v_i1])
                shiftmax[v_i0, v_i1] = T.Cast("uint8", T.min(T.Cast("uint32", exp[v_i0, v_i1] * factor[v_i0]) + T.uint32(4194304) >> T.uint32(23), T.uint32(255)))

    @R.function
    def main(a0: R.Tensor((3, 17), dtype="int32"), a1: R.Tensor((3, 17), dtype="int8")) -> R.Tensor((3, 17), dtype="uint8"):
        cls = Module
        with R.dataflow():
            gv = R.call_tir(cls.shiftmax, (a0, a1), out_ty=R.Tensor((3, 17), dtype="uint8"))
            R.output(gv)
        return gv