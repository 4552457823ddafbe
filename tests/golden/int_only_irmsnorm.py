# from tvm.script import ir as I
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis
# from tvm.script import relax as R

@I.ir_module
class Module:
    @T.prim_func(private=True, s_tir=True)
    def irmsnorm(a0: T.Buffer((T.int64(5), T.int64(48)), "int16"), irmsnorm: T.Buffer((T.int64(5), T.int64(48)), "int16")):
        T.func_attr({"qcompile.kernel": "{\"op\": \"irmsnorm\"}", "tirx.noalias": True})
        # with T.sblock("root"):
        sum_sq = T.sblock_alloc_buffer((T.int64(5),), "int64")
        var_eps = T.sblock_alloc_buffer((T.int64(5),), "int64")
        bit_length = T.sblock_alloc_buffer((T.int64(5),), "int64")
        isqrt0 = T.sblock_alloc_buffer((T.int64(5),), "int64")
        isqrt1 = T.sblock_alloc_buffer((T.int64(5),), "int64")
        isqrt2 = T.sblock_alloc_buffer((T.int64(5),), "int64")
        isqrt3 = T.sblock_alloc_buffer((T.int64(5),), "int64")
        isqrt4 = T.sblock_alloc_buffer((T.int64(5),), "int64")
        isqrt5 = T.sblock_alloc_buffer((T.int64(5),), "int64")
        isqrt6 = T.sblock_alloc_buffer((T.int64(5),), "int64")
        factor = T.sblock_alloc_buffer((T.int64(5),), "int64")
        for i0, k2 in T.grid(T.int64(5), T.int64(48)):
            with T.sblock("sum_sq"):
                v_i0, v_k2 = T.axis.remap("SR", [i0, k2])
                T.reads(a0[v_i0, v_k2])
                T.writes(sum_sq[v_i0])
                with T.init():
                    sum_sq[v_i0] = T.int64(0)
                sum_sq[v_i0] = sum_sq[v_i0] + T.Cast("int64", a0[v_i0, v_k2]) * T.Cast("int64", a0[v_i0, v_k2])
        for i0 in range(T.int64(5)):
            with T.sblock("var_eps"):
                v_i0 = T.axis.spatial(T.int64(5), i0)
                T.reads(sum_sq[v_i0])
                T.writes(var_eps[v_i0])
                var_eps[v_i0] = sum_sq[v_i0] + T.int64(3) << T.int64(22)
        for i0, b in T.grid(T.int64(5), T.int64(63)):
            with T.sblock("bit_length"):
                v_i0, v_b = T.axis.remap("SR", [i0, b])
                T.reads(var_eps[v_i0])
                T.writes(bit_length[v_i0])
                with T.init():
                    bit_length[v_i0] = T.int64(0)
                bit_length[v_i0] = bit_length[v_i0] + T.Select(T.int64(0) < var_eps[v_i0] >> v_b, T.int64(1), T.int64(0))
        for i0 in range(T.int64(5)):
            with T.sblock("isqrt0"):
                v_i0 = T.axis.spatial(T.int64(5), i0)
                T.reads(bit_length[v_i0])
                T.writes(isqrt0[v_i0])
                isqrt0[v_i0] = T.int64(1) << (bit_length[v_i0] + T.int64(1) >> T.int64(1))
        for i0 in range(T.int64(5)):
            with T.sblock("isqrt1"):
                v_i0 = T.axis.spatial(T.int64(5), i0)
                T.reads(isqrt0[v_i0], var_eps[v_i0])
                T.writes(isqrt1[v_i0])
                isqrt1[v_i0] = T.min(isqrt0[v_i0], isqrt0[v_i0] + var_eps[v_i0] // T.max(isqrt0[v_i0], T.int64(1)) >> T.int64(1))
        for i0 in range(T.int64(5)):
            with T.sblock("isqrt2"):
                v_i0 = T.axis.spatial(T.int64(5), i0)
                T.reads(isqrt1[v_i0], var_eps[v_i0])
                T.writes(isqrt2[v_i0])
                isqrt2[v_i0] = T.min(isqrt1[v_i0], isqrt1[v_i0] + var_eps[v_i0] // T.max(isqrt1[v_i0], T.int64(1)) >> T.int64(1))
        for i0 in range(T.int64(5)):
            with T.sblock("isqrt3"):
                v_i0 = T.axis.spatial(T.int64(5), i0)
                T.reads(isqrt2[v_i0], var_eps[v_i0])
                T.writes(isqrt3[v_i0])
                isqrt3[v_i0] = T.min(isqrt2[v_i0], isqrt2[v_i0] + var_eps[v_i0] // T.max(isqrt2[v_i0], T.int64(1)) >> T.int64(1))
        for i0 in range(T.int64(5)):
            with T.sblock("isqrt4"):
                v_i0 = T.axis.spatial(T.int64(5), i0)
                T.reads(isqrt3[v_i0], var_eps[v_i0])
                T.writes(isqrt4[v_i0])
                isqrt4[v_i0] = T.min(isqrt3[v_i0], isqrt3[v_i0] + var_eps[v_i0] // T.max(isqrt3[v_i0], T.int64(1)) >> T.int64(1))
        for i0 in range(T.int64(5)):
            with T.sblock("isqrt5"):
                v_i0 = T.axis.spatial(T.int64(5), i0)
                T.reads(isqrt4[v_i0], var_eps[v_i0])
                T.writes(isqrt5[v_i0])
                isqrt5[v_i0] = T.min(isqrt4[v_i0], isqrt4[v_i0] + var_eps[v_i0] // T.max(isqrt4[v_i0], T.int64(1)) >> T.int64(1))
        for i0 in range(T.int64(5)):
            with T.sblock("isqrt6"):
                v_i0 = T.axis.spatial(T.int64(5), i0)
                T.reads(isqrt5[v_i0], var_eps[v_i0])
                T.writes(isqrt6[v_i0])
                isqrt6[v_i0] = T.min(isqrt5[v_i0], isqrt5[v_i0] + var_eps[v_i0] // T.max(isqrt5[v_i0], T.int64(1)) >> T.int64(1))
        for i0 in range(T.int64(5)):
            with T.sblock("factor"):
                v_i0 = T.axis.spatial(T.int64(5), i0)
                T.reads(isqrt6[v_i0])
                T.writes(factor[v_i0])
                factor[v_i0] = T.int64(124807763892109312) // T.max(isqrt6[v_i0], T.int64(1))
        for i0, i1 in T.grid(T.int64(5), T.int64(48)):
            with T.sblock("irmsnorm"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(a0[v_i0, v_i1], factor[v_i0])
                T.writes(irmsnorm[v_i0, v_i1])
                irmsnorm[v_i0, v_i1] = T.Cast("int16", T.max(T.min(T.Cast("int64", a0[v_i0, v_i1]) * factor[v_i0] + T.int64(1073741824) >> T.int64(31), T.int64(32767)), T.int64(-32767)))

    @R.function
    def main(a0: R.Tensor((5, 48), dtype="int16")) -> R.Tensor((5, 48), dtype="int16"):
        cls = Module
        with R.dataflow():
            gv = R.call_tir(cls.irmsnorm, (a0,), out_ty=R.Tensor((5, 48), dtype="int16"))
            R.output(gv)
        return gv