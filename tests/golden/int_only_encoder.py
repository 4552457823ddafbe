# from tvm.script import ir as I
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis
# from tvm.script import relax as R

@I.ir_module
class Module:
    @T.prim_func(private=True, s_tir=True)
    def ilayernorm(lv112: T.Buffer((T.int64(4), T.int64(8), T.int64(32)), "int16"), ilayernorm: T.Buffer((T.int64(4), T.int64(8), T.int64(32)), "int16")):
        T.func_attr({"qcompile.kernel": "{\"P\": 12, \"eps_int\": 17644, \"op\": \"ilayernorm\"}", "tirx.noalias": True})
        # with T.sblock("root"):
        row_sum = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        mean = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        sum_sq = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        var_eps = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        bit_length = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        isqrt0 = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        isqrt1 = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        isqrt2 = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        isqrt3 = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        isqrt4 = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        isqrt5 = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        isqrt6 = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        factor = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        for i0, i1, k in T.grid(T.int64(4), T.int64(8), T.int64(32)):
            with T.sblock("row_sum"):
                v_i0, v_i1, v_k = T.axis.remap("SSR", [i0, i1, k])
                T.reads(lv112[v_i0, v_i1, v_k])
                T.writes(row_sum[v_i0, v_i1])
                with T.init():
                    row_sum[v_i0, v_i1] = T.int64(0)
                row_sum[v_i0, v_i1] = row_sum[v_i0, v_i1] + T.Cast("int64", lv112[v_i0, v_i1, v_k])
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("mean"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(row_sum[v_i0, v_i1])
                T.writes(mean[v_i0, v_i1])
                mean[v_i0, v_i1] = (row_sum[v_i0, v_i1] + T.int64(16)) // T.int64(32)
        for i0, i1, k2 in T.grid(T.int64(4), T.int64(8), T.int64(32)):
            with T.sblock("sum_sq"):
                v_i0, v_i1, v_k2 = T.axis.remap("SSR", [i0, i1, k2])
                T.reads(lv112[v_i0, v_i1, v_k2], mean[v_i0, v_i1])
                T.writes(sum_sq[v_i0, v_i1])
                with T.init():
                    sum_sq[v_i0, v_i1] = T.int64(0)
                sum_sq[v_i0, v_i1] = sum_sq[v_i0, v_i1] + (T.Cast("int64", lv112[v_i0, v_i1, v_k2]) - mean[v_i0, v_i1]) * (T.Cast("int64", lv112[v_i0, v_i1, v_k2]) - mean[v_i0, v_i1])
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("var_eps"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(sum_sq[v_i0, v_i1])
                T.writes(var_eps[v_i0, v_i1])
                var_eps[v_i0, v_i1] = sum_sq[v_i0, v_i1] + T.int64(17644) << T.int64(24)
        for i0, i1, b in T.grid(T.int64(4), T.int64(8), T.int64(63)):
            with T.sblock("bit_length"):
                v_i0, v_i1, v_b = T.axis.remap("SSR", [i0, i1, b])
                T.reads(var_eps[v_i0, v_i1])
                T.writes(bit_length[v_i0, v_i1])
                with T.init():
                    bit_length[v_i0, v_i1] = T.int64(0)
                bit_length[v_i0, v_i1] = bit_length[v_i0, v_i1] + T.Select(T.int64(0) < var_eps[v_i0, v_i1] >> v_b, T.int64(1), T.int64(0))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("isqrt0"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(bit_length[v_i0, v_i1])
                T.writes(isqrt0[v_i0, v_i1])
                isqrt0[v_i0, v_i1] = T.int64(1) << (bit_length[v_i0, v_i1] + T.int64(1) >> T.int64(1))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("isqrt1"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(isqrt0[v_i0, v_i1], var_eps[v_i0, v_i1])
                T.writes(isqrt1[v_i0, v_i1])
                isqrt1[v_i0, v_i1] = T.min(isqrt0[v_i0, v_i1], isqrt0[v_i0, v_i1] + var_eps[v_i0, v_i1] // T.max(isqrt0[v_i0, v_i1], T.int64(1)) >> T.int64(1))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("isqrt2"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(isqrt1[v_i0, v_i1], var_eps[v_i0, v_i1])
                T.writes(isqrt2[v_i0, v_i1])
                isqrt2[v_i0, v_i1] = T.min(isqrt1[v_i0, v_i1], isqrt1[v_i0, v_i1] + var_eps[v_i0, v_i1] // T.max(isqrt1[v_i0, v_i1], T.int64(1)) >> T.int64(1))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("isqrt3"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(isqrt2[v_i0, v_i1], var_eps[v_i0, v_i1])
                T.writes(isqrt3[v_i0, v_i1])
                isqrt3[v_i0, v_i1] = T.min(isqrt2[v_i0, v_i1], isqrt2[v_i0, v_i1] + var_eps[v_i0, v_i1] // T.max(isqrt2[v_i0, v_i1], T.int64(1)) >> T.int64(1))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("isqrt4"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(isqrt3[v_i0, v_i1], var_eps[v_i0, v_i1])
                T.writes(isqrt4[v_i0, v_i1])
                isqrt4[v_i0, v_i1] = T.min(isqrt3[v_i0, v_i1], isqrt3[v_i0, v_i1] + var_eps[v_i0, v_i1] // T.max(isqrt3[v_i0, v_i1], T.int64(1)) >> T.int64(1))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("isqrt5"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(isqrt4[v_i0, v_i1], var_eps[v_i0, v_i1])
                T.writes(isqrt5[v_i0, v_i1])
                isqrt5[v_i0, v_i1] = T.min(isqrt4[v_i0, v_i1], isqrt4[v_i0, v_i1] + var_eps[v_i0, v_i1] // T.max(isqrt4[v_i0, v_i1], T.int64(1)) >> T.int64(1))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("isqrt6"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(isqrt5[v_i0, v_i1], var_eps[v_i0, v_i1])
                T.writes(isqrt6[v_i0, v_i1])
                isqrt6[v_i0, v_i1] = T.min(isqrt5[v_i0, v_i1], isqrt5[v_i0, v_i1] + var_eps[v_i0, v_i1] // T.max(isqrt5[v_i0, v_i1], T.int64(1)) >> T.int64(1))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("factor"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(isqrt6[v_i0, v_i1])
                T.writes(factor[v_i0, v_i1])
                factor[v_i0, v_i1] = T.int64(203805475324559360) // T.max(isqrt6[v_i0, v_i1], T.int64(1))
        for i0, i1, i2 in T.grid(T.int64(4), T.int64(8), T.int64(32)):
            with T.sblock("ilayernorm"):
                v_i0, v_i1, v_i2 = T.axis.remap("SSS", [i0, i1, i2])
                T.reads(lv112[v_i0, v_i1, v_i2], mean[v_i0, v_i1], factor[v_i0, v_i1])
                T.writes(ilayernorm[v_i0, v_i1, v_i2])
                ilayernorm[v_i0, v_i1, v_i2] = T.Cast("int16", T.max(T.min((T.Cast("int64", lv112[v_i0, v_i1, v_i2]) - mean[v_i0, v_i1]) * factor[v_i0, v_i1] + T.int64(1073741824) >> T.int64(31), T.int64(32767)), T.int64(-32767)))

    @T.prim_func(private=True, s_tir=True)
    def ilayernorm1(lv164: T.Buffer((T.int64(4), T.int64(8), T.int64(32)), "int16"), ilayernorm: T.Buffer((T.int64(4), T.int64(8), T.int64(32)), "int16")):
        T.func_attr({"qcompile.kernel": "{\"P\": 12, \"eps_int\": 391165, \"op\": \"ilayernorm\"}", "tirx.noalias": True})
        # with T.sblock("root"):
        row_sum = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        mean = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        sum_sq = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        var_eps = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        bit_length = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        isqrt0 = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        isqrt1 = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        isqrt2 = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        isqrt3 = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        isqrt4 = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        isqrt5 = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        isqrt6 = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        factor = T.sblock_alloc_buffer((T.int64(4), T.int64(8)), "int64")
        for i0, i1, k in T.grid(T.int64(4), T.int64(8), T.int64(32)):
            with T.sblock("row_sum"):
                v_i0, v_i1, v_k = T.axis.remap("SSR", [i0, i1, k])
                T.reads(lv164[v_i0, v_i1, v_k])
                T.writes(row_sum[v_i0, v_i1])
                with T.init():
                    row_sum[v_i0, v_i1] = T.int64(0)
                row_sum[v_i0, v_i1] = row_sum[v_i0, v_i1] + T.Cast("int64", lv164[v_i0, v_i1, v_k])
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("mean"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(row_sum[v_i0, v_i1])
                T.writes(mean[v_i0, v_i1])
                mean[v_i0, v_i1] = (row_sum[v_i0, v_i1] + T.int64(16)) // T.int64(32)
        for i0, i1, k2 in T.grid(T.int64(4), T.int64(8), T.int64(32)):
            with T.sblock("sum_sq"):
                v_i0, v_i1, v_k2 = T.axis.remap("SSR", [i0, i1, k2])
                T.reads(lv164[v_i0, v_i1, v_k2], mean[v_i0, v_i1])
                T.writes(sum_sq[v_i0, v_i1])
                with T.init():
                    sum_sq[v_i0, v_i1] = T.int64(0)
                sum_sq[v_i0, v_i1] = sum_sq[v_i0, v_i1] + (T.Cast("int64", lv164[v_i0, v_i1, v_k2]) - mean[v_i0, v_i1]) * (T.Cast("int64", lv164[v_i0, v_i1, v_k2]) - mean[v_i0, v_i1])
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("var_eps"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(sum_sq[v_i0, v_i1])
                T.writes(var_eps[v_i0, v_i1])
                var_eps[v_i0, v_i1] = sum_sq[v_i0, v_i1] + T.int64(391165) << T.int64(24)
        for i0, i1, b in T.grid(T.int64(4), T.int64(8), T.int64(63)):
            with T.sblock("bit_length"):
                v_i0, v_i1, v_b = T.axis.remap("SSR", [i0, i1, b])
                T.reads(var_eps[v_i0, v_i1])
                T.writes(bit_length[v_i0, v_i1])
                with T.init():
                    bit_length[v_i0, v_i1] = T.int64(0)
                bit_length[v_i0, v_i1] = bit_length[v_i0, v_i1] + T.Select(T.int64(0) < var_eps[v_i0, v_i1] >> v_b, T.int64(1), T.int64(0))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("isqrt0"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(bit_length[v_i0, v_i1])
                T.writes(isqrt0[v_i0, v_i1])
                isqrt0[v_i0, v_i1] = T.int64(1) << (bit_length[v_i0, v_i1] + T.int64(1) >> T.int64(1))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("isqrt1"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(isqrt0[v_i0, v_i1], var_eps[v_i0, v_i1])
                T.writes(isqrt1[v_i0, v_i1])
                isqrt1[v_i0, v_i1] = T.min(isqrt0[v_i0, v_i1], isqrt0[v_i0, v_i1] + var_eps[v_i0, v_i1] // T.max(isqrt0[v_i0, v_i1], T.int64(1)) >> T.int64(1))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("isqrt2"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(isqrt1[v_i0, v_i1], var_eps[v_i0, v_i1])
                T.writes(isqrt2[v_i0, v_i1])
                isqrt2[v_i0, v_i1] = T.min(isqrt1[v_i0, v_i1], isqrt1[v_i0, v_i1] + var_eps[v_i0, v_i1] // T.max(isqrt1[v_i0, v_i1], T.int64(1)) >> T.int64(1))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("isqrt3"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(isqrt2[v_i0, v_i1], var_eps[v_i0, v_i1])
                T.writes(isqrt3[v_i0, v_i1])
                isqrt3[v_i0, v_i1] = T.min(isqrt2[v_i0, v_i1], isqrt2[v_i0, v_i1] + var_eps[v_i0, v_i1] // T.max(isqrt2[v_i0, v_i1], T.int64(1)) >> T.int64(1))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("isqrt4"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(isqrt3[v_i0, v_i1], var_eps[v_i0, v_i1])
                T.writes(isqrt4[v_i0, v_i1])
                isqrt4[v_i0, v_i1] = T.min(isqrt3[v_i0, v_i1], isqrt3[v_i0, v_i1] + var_eps[v_i0, v_i1] // T.max(isqrt3[v_i0, v_i1], T.int64(1)) >> T.int64(1))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("isqrt5"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(isqrt4[v_i0, v_i1], var_eps[v_i0, v_i1])
                T.writes(isqrt5[v_i0, v_i1])
                isqrt5[v_i0, v_i1] = T.min(isqrt4[v_i0, v_i1], isqrt4[v_i0, v_i1] + var_eps[v_i0, v_i1] // T.max(isqrt4[v_i0, v_i1], T.int64(1)) >> T.int64(1))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("isqrt6"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(isqrt5[v_i0, v_i1], var_eps[v_i0, v_i1])
                T.writes(isqrt6[v_i0, v_i1])
                isqrt6[v_i0, v_i1] = T.min(isqrt5[v_i0, v_i1], isqrt5[v_i0, v_i1] + var_eps[v_i0, v_i1] // T.max(isqrt5[v_i0, v_i1], T.int64(1)) >> T.int64(1))
        for i0, i1 in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("factor"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(isqrt6[v_i0, v_i1])
                T.writes(factor[v_i0, v_i1])
                factor[v_i0, v_i1] = T.int64(203805475324559360) // T.max(isqrt6[v_i0, v_i1], T.int64(1))
        for i0, i1, i2 in T.grid(T.int64(4), T.int64(8), T.int64(32)):
            with T.sblock("ilayernorm"):
                v_i0, v_i1, v_i2 = T.axis.remap("SSS", [i0, i1, i2])
                T.reads(lv164[v_i0, v_i1, v_i2], mean[v_i0, v_i1], factor[v_i0, v_i1])
                T.writes(ilayernorm[v_i0, v_i1, v_i2])
                ilayernorm[v_i0, v_i1, v_i2] = T.Cast("int16", T.max(T.min((T.Cast("int64", lv164[v_i0, v_i1, v_i2]) - mean[v_i0, v_i1]) * factor[v_i0, v_i1] + T.int64(1073741824) >> T.int64(31), T.int64(32767)), T.int64(-32767)))

    @T.prim_func(private=True, s_tir=True)
    def shiftgelu(lv132: T.Buffer((T.int64(4), T.int64(8), T.int64(128)), "int8"), lv138: T.Buffer((T.int64(4), T.int64(8), T.int64(128)), "int32"), shiftgelu: T.Buffer((T.int64(4), T.int64(8), T.int64(128)), "int32")):
        T.func_attr({"qcompile.kernel": "{\"B\": 8, \"K\": 8, \"n\": 15, \"op\": \"shiftgelu\"}", "tirx.noalias": True})
        # with T.sblock("root"):
        for i0, i1, i2 in T.grid(T.int64(4), T.int64(8), T.int64(128)):
            with T.sblock("shiftgelu"):
                v_i0, v_i1, v_i2 = T.axis.remap("SSS", [i0, i1, i2])
                T.reads(lv132[v_i0, v_i1, v_i2], lv138[v_i0, v_i1, v_i2])
                T.writes(shiftgelu[v_i0, v_i1, v_i2])
                shiftgelu[v_i0, v_i1, v_i2] = T.Cast("int32", T.Cast("int64", lv132[v_i0, v_i1, v_i2]) * ((T.Select(T.int64(0) <= T.Cast("int64", lv132[v_i0, v_i1, v_i2]), T.int64(8388608), (T.max((T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) * T.int64(-1) >> T.int64(1)) - T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) - (T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) * T.int64(-1) >> T.int64(4)), T.int64(-3840)) + (T.max((T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) * T.int64(-1) >> T.int64(1)) - T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) - (T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) * T.int64(-1) >> T.int64(4)), T.int64(-3840)) * T.int64(-1) >> T.int64(8) << T.int64(8)) >> T.int64(1)) + T.int64(256) << T.int64(15) - (T.max((T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) * T.int64(-1) >> T.int64(1)) - T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) - (T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) * T.int64(-1) >> T.int64(4)), T.int64(-3840)) * T.int64(-1) >> T.int64(8))) << T.int64(8)) // (((T.max((T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) * T.int64(-1) >> T.int64(1)) - T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) - (T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) * T.int64(-1) >> T.int64(4)), T.int64(-3840)) + (T.max((T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) * T.int64(-1) >> T.int64(1)) - T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) - (T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) * T.int64(-1) >> T.int64(4)), T.int64(-3840)) * T.int64(-1) >> T.int64(8) << T.int64(8)) >> T.int64(1)) + T.int64(256) << T.int64(15) - (T.max((T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) * T.int64(-1) >> T.int64(1)) - T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) - (T.Select(T.int64(0) <= T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.Cast("int64", lv138[v_i0, v_i1, v_i2]), T.int64(0) - T.Cast("int64", lv138[v_i0, v_i1, v_i2])) * T.int64(-1) >> T.int64(4)), T.int64(-3840)) * T.int64(-1) >> T.int64(8))) + T.int64(8388608))))

    @T.prim_func(private=True, s_tir=True)
    def shiftmax(lv84: T.Buffer((T.int64(4), T.int64(4), T.int64(8), T.int64(8)), "int32"), shiftmax: T.Buffer((T.int64(4), T.int64(4), T.int64(8), T.int64(8)), "uint8")):
        T.func_attr({"qcompile.kernel": "{\"B\": 8, \"K\": 8, \"n\": 15, \"op\": \"shiftmax\"}", "tirx.noalias": True})
        # with T.sblock("root"):
        row_max = T.sblock_alloc_buffer((T.int64(4), T.int64(4), T.int64(8)), "int32")
        row_floor = T.sblock_alloc_buffer((T.int64(4), T.int64(4), T.int64(8)), "int32")
        exp = T.sblock_alloc_buffer((T.int64(4), T.int64(4), T.int64(8), T.int64(8)), "int32")
        row_sum = T.sblock_alloc_buffer((T.int64(4), T.int64(4), T.int64(8)), "int32")
        factor = T.sblock_alloc_buffer((T.int64(4), T.int64(4), T.int64(8)), "int32")
        for i0, i1, i2, k in T.grid(T.int64(4), T.int64(4), T.int64(8), T.int64(8)):
            with T.sblock("row_max"):
                v_i0, v_i1, v_i2, v_k = T.axis.remap("SSSR", [i0, i1, i2, k])
                T.reads(lv84[v_i0, v_i1, v_i2, v_k])
                T.writes(row_max[v_i0, v_i1, v_i2])
                with T.init():
                    row_max[v_i0, v_i1, v_i2] = -2147483648
                row_max[v_i0, v_i1, v_i2] = T.max(row_max[v_i0, v_i1, v_i2], lv84[v_i0, v_i1, v_i2, v_k])
        for i0, i1, i2 in T.grid(T.int64(4), T.int64(4), T.int64(8)):
            with T.sblock("row_floor"):
                v_i0, v_i1, v_i2 = T.axis.remap("SSS", [i0, i1, i2])
                T.reads(row_max[v_i0, v_i1, v_i2])
                T.writes(row_floor[v_i0, v_i1, v_i2])
                row_floor[v_i0, v_i1, v_i2] = T.Cast("int32", T.max(T.Cast("int64", row_max[v_i0, v_i1, v_i2]) - T.int64(4096), T.int64(-2147483648)))
        for i0, i1, i2, i3 in T.grid(T.int64(4), T.int64(4), T.int64(8), T.int64(8)):
            with T.sblock("exp"):
                v_i0, v_i1, v_i2, v_i3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                T.reads(lv84[v_i0, v_i1, v_i2, v_i3], row_max[v_i0, v_i1, v_i2], row_floor[v_i0, v_i1, v_i2])
                T.writes(exp[v_i0, v_i1, v_i2, v_i3])
                exp[v_i0, v_i1, v_i2, v_i3] = (T.max(T.max(T.max(T.min(lv84[v_i0, v_i1, v_i2, v_i3], row_max[v_i0, v_i1, v_i2]), row_floor[v_i0, v_i1, v_i2]) - row_max[v_i0, v_i1, v_i2], -4096) + (T.max(T.max(T.min(lv84[v_i0, v_i1, v_i2, v_i3], row_max[v_i0, v_i1, v_i2]), row_floor[v_i0, v_i1, v_i2]) - row_max[v_i0, v_i1, v_i2], -4096) >> 1) - (T.max(T.max(T.min(lv84[v_i0, v_i1, v_i2, v_i3], row_max[v_i0, v_i1, v_i2]), row_floor[v_i0, v_i1, v_i2]) - row_max[v_i0, v_i1, v_i2], -4096) >> 4), -3840) + (T.max(T.max(T.max(T.min(lv84[v_i0, v_i1, v_i2, v_i3], row_max[v_i0, v_i1, v_i2]), row_floor[v_i0, v_i1, v_i2]) - row_max[v_i0, v_i1, v_i2], -4096) + (T.max(T.max(T.min(lv84[v_i0, v_i1, v_i2, v_i3], row_max[v_i0, v_i1, v_i2]), row_floor[v_i0, v_i1, v_i2]) - row_max[v_i0, v_i1, v_i2], -4096) >> 1) - (T.max(T.max(T.min(lv84[v_i0, v_i1, v_i2, v_i3], row_max[v_i0, v_i1, v_i2]), row_floor[v_i0, v_i1, v_i2]) - row_max[v_i0, v_i1, v_i2], -4096) >> 4), -3840) * -1 >> 8 << 8) >> 1) + 256 << 15 - (T.max(T.max(T.max(T.min(lv84[v_i0, v_i1, v_i2, v_i3], row_max[v_i0, v_i1, v_i2]), row_floor[v_i0, v_i1, v_i2]) - row_max[v_i0, v_i1, v_i2], -4096) + (T.max(T.max(T.min(lv84[v_i0, v_i1, v_i2, v_i3], row_max[v_i0, v_i1, v_i2]), row_floor[v_i0, v_i1, v_i2]) - row_max[v_i0, v_i1, v_i2], -4096) >> 1) - (T.max(T.max(T.min(lv84[v_i0, v_i1, v_i2, v_i3], row_max[v_i0, v_i1, v_i2]), row_floor[v_i0, v_i1, v_i2]) - row_max[v_i0, v_i1, v_i2], -4096) >> 4), -3840) * -1 >> 8)
        for i0, i1, i2, k2 in T.grid(T.int64(4), T.int64(4), T.int64(8), T.int64(8)):
            with T.sblock("row_sum"):
                v_i0, v_i1, v_i2, v_k2 = T.axis.remap("SSSR", [i0, i1, i2, k2])
                T.reads(exp[v_i0, v_i1, v_i2, v_k2])
                T.writes(row_sum[v_i0, v_i1, v_i2])
                with T.init():
                    row_sum[v_i0, v_i1, v_i2] = 0
                row_sum[v_i0, v_i1, v_i2] = row_sum[v_i0, v_i1, v_i2] + exp[v_i0, v_i1, v_i2, v_k2]
        for i0, i1, i2 in T.grid(T.int64(4), T.int64(4), T.int64(8)):
            with T.sblock("factor"):
                v_i0, v_i1, v_i2 = T.axis.remap("SSS", [i0, i1, i2])
                T.reads(row_sum[v_i0, v_i1, v_i2])
                T.writes(factor[v_i0, v_i1, v_i2])
                factor[v_i0, v_i1, v_i2] = 2147483647 // T.max(row_sum[v_i0, v_i1, v_i2], 1)
        for i0, i1, i2, i3 in T.grid(T.int64(4), T.int64(4), T.int64(8), T.int64(8)):
            with T.sblock("shiftmax"):
                v_i0, v_i1, v_i2, v_i3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                T.reads(exp[v_i0, v_i1, v_i2, v_i3], factor[v_i0, v_i1, v_i2])
                T.writes(shiftmax[v_i0, v_i1, v_i2, v_i3])
                shiftmax[v_i0, v_i1, v_i2, v_i3] = T.Cast("uint8", T.min(T.Cast("uint32", exp[v_i0, v_i1, v_i2, v_i3] * factor[v_i0, v_i1, v_i2]) + T.uint32(4194304) >> T.uint32(23), T.uint32(255)))

    @R.function
    def main(x: R.Tensor((4, 8, 32), dtype="float32"), mask: R.Tensor((4, 8), dtype="float32")) -> R.Tensor((4, 8, 32), dtype="float32"):
        cls = Module
        with R.dataflow():
            lv: R.Tensor((4, 8, 32), dtype="float32") = R.multiply(x, R.const(30.964330673217773, "float32"))
            lv1: R.Tensor((4, 8, 32), dtype="float32") = R.add(lv, R.const(0.5, "float32"))
            lv2: R.Tensor((4, 8, 32), dtype="float32") = R.floor(lv1)
            lv3: R.Tensor((4, 8, 32), dtype="float32") = R.clip(lv2, -127, 127)
            lv4: R.Tensor((4, 8, 32), dtype="int8") = R.astype(lv3, dtype="int8")
            lv10: R.Tensor((32, 32), dtype="int8") = R.reshape(lv4, R.shape([32, 32]))
            lv11: R.Tensor((32, 32), dtype="int64") = R.astype(lv10, dtype="int64")
            lv12: R.Tensor((32, 32), dtype="int64") = R.multiply(lv11, metadata["ir.GenericConst"][0])
            lv13: R.Tensor((32, 32), dtype="int64") = R.add(lv12, R.const(268435456, "int64"))
            lv14: R.Tensor((32, 32), dtype="int64") = R.right_shift(lv13, R.const(29, "int64"))
            lv15: R.Tensor((32, 32), dtype="int64") = R.clip(lv14, -127, 127)
            lv16: R.Tensor((32, 32), dtype="int8") = R.astype(lv15, dtype="int8")
            lv17: R.Tensor((32, 32), dtype="int32") = R.matmul(lv16, metadata["ir.GenericConst"][1], out_dtype="int32")
            lv18: R.Tensor((32, 32), dtype="int32") = R.add(lv17, metadata["ir.GenericConst"][2])
            lv19: R.Tensor((32, 32), dtype="int64") = R.astype(lv18, dtype="int64")
            lv20: R.Tensor((32, 32), dtype="int64") = R.multiply(lv19, metadata["ir.GenericConst"][3])
            lv21: R.Tensor((32, 32), dtype="int64") = R.add(lv20, R.const(536870912, "int64"))
            lv22: R.Tensor((32, 32), dtype="int64") = R.right_shift(lv21, R.const(30, "int64"))
            lv23: R.Tensor((32, 32), dtype="int64") = R.clip(lv22, -32767, 32767)
            lv24: R.Tensor((32, 32), dtype="int16") = R.astype(lv23, dtype="int16")
            lv25: R.Tensor((4, 8, 4, 8), dtype="int16") = R.reshape(lv24, R.shape([4, 8, 4, 8]))
            lv26: R.Tensor((4, 4, 8, 8), dtype="int16") = R.permute_dims(lv25, axes=[0, 2, 1, 3])
            lv27: R.Tensor((32, 32), dtype="int64") = R.astype(lv10, dtype="int64")
            lv28: R.Tensor((32, 32), dtype="int64") = R.multiply(lv27, metadata["ir.GenericConst"][4])
            lv29: R.Tensor((32, 32), dtype="int64") = R.add(lv28, R.const(268435456, "int64"))
            lv30: R.Tensor((32, 32), dtype="int64") = R.right_shift(lv29, R.const(29, "int64"))
            lv31: R.Tensor((32, 32), dtype="int64") = R.clip(lv30, -127, 127)
            lv32: R.Tensor((32, 32), dtype="int8") = R.astype(lv31, dtype="int8")
            lv33: R.Tensor((32, 32), dtype="int32") = R.matmul(lv32, metadata["ir.GenericConst"][5], out_dtype="int32")
            lv34: R.Tensor((32, 32), dtype="int32") = R.add(lv33, metadata["ir.GenericConst"][6])
            lv35: R.Tensor((32, 32), dtype="int64") = R.astype(lv34, dtype="int64")
            lv36: R.Tensor((32, 32), dtype="int64") = R.multiply(lv35, metadata["ir.GenericConst"][7])
            lv37: R.Tensor((32, 32), dtype="int64") = R.add(lv36, R.const(536870912, "int64"))
            lv38: R.Tensor((32, 32), dtype="int64") = R.right_shift(lv37, R.const(30, "int64"))
            lv39: R.Tensor((32, 32), dtype="int64") = R.clip(lv38, -32767, 32767)
            lv40: R.Tensor((32, 32), dtype="int16") = R.astype(lv39, dtype="int16")
            lv41: R.Tensor((4, 8, 4, 8), dtype="int16") = R.reshape(lv40, R.shape([4, 8, 4, 8]))
            lv42: R.Tensor((4, 4, 8, 8), dtype="int16") = R.permute_dims(lv41, axes=[0, 2, 1, 3])
            lv43: R.Tensor((32, 32), dtype="int64") = R.astype(lv10, dtype="int64")
            lv44: R.Tensor((32, 32), dtype="int64") = R.multiply(lv43, metadata["ir.GenericConst"][8])
            lv45: R.Tensor((32, 32), dtype="int64") = R.add(lv44, R.const(268435456, "int64"))
            lv46: R.Tensor((32, 32), dtype="int64") = R.right_shift(lv45, R.const(29, "int64"))
            lv47: R.Tensor((32, 32), dtype="int64") = R.clip(lv46, -127, 127)
            lv48: R.Tensor((32, 32), dtype="int8") = R.astype(lv47, dtype="int8")
            lv49: R.Tensor((32, 32), dtype="int32") = R.matmul(lv48, metadata["ir.GenericConst"][9], out_dtype="int32")
            lv50: R.Tensor((32, 32), dtype="int32") = R.add(lv49, metadata["ir.GenericConst"][10])
            lv51: R.Tensor((32, 32), dtype="int64") = R.astype(lv50, dtype="int64")
            lv52: R.Tensor((32, 32), dtype="int64") = R.multiply(lv51, metadata["ir.GenericConst"][11])
            lv53: R.Tensor((32, 32), dtype="int64") = R.add(lv52, R.const(536870912, "int64"))
            lv54: R.Tensor((32, 32), dtype="int64") = R.right_shift(lv53, R.const(30, "int64"))
            lv55: R.Tensor((32, 32), dtype="int64") = R.clip(lv54, -32767, 32767)
            lv56: R.Tensor((32, 32), dtype="int16") = R.astype(lv55, dtype="int16")
            lv57: R.Tensor((4, 8, 4, 8), dtype="int16") = R.reshape(lv56, R.shape([4, 8, 4, 8]))
            lv58: R.Tensor((4, 4, 8, 8), dtype="int16") = R.permute_dims(lv57, axes=[0, 2, 1, 3])
            lv59: R.Tensor((4, 4, 8, 8), dtype="int16") = R.permute_dims(lv42, axes=[0, 1, 3, 2])
            lv60: R.Tensor((4, 4, 8, 8), dtype="int64") = R.astype(lv26, dtype="int64")
            lv61: R.Tensor((4, 4, 8, 8), dtype="int64") = R.multiply(lv60, R.const(2130771458, "int64"))
            lv62: R.Tensor((4, 4, 8, 8), dtype="int64") = R.add(lv61, R.const(274877906944, "int64"))
            lv63: R.Tensor((4, 4, 8, 8), dtype="int64") = R.right_shift(lv62, R.const(39, "int64"))
            lv64: R.Tensor((4, 4, 8, 8), dtype="int64") = R.clip(lv63, -127, 127)
            lv65: R.Tensor((4, 4, 8, 8), dtype="int8") = R.astype(lv64, dtype="int8")
            lv66: R.Tensor((4, 4, 8, 8), dtype="int64") = R.astype(lv59, dtype="int64")
            lv67: R.Tensor((4, 4, 8, 8), dtype="int64") = R.multiply(lv66, R.const(2130771458, "int64"))
            lv68: R.Tensor((4, 4, 8, 8), dtype="int64") = R.add(lv67, R.const(274877906944, "int64"))
            lv69: R.Tensor((4, 4, 8, 8), dtype="int64") = R.right_shift(lv68, R.const(39, "int64"))
            lv70: R.Tensor((4, 4, 8, 8), dtype="int64") = R.clip(lv69, -127, 127)
            lv71: R.Tensor((4, 4, 8, 8), dtype="int8") = R.astype(lv70, dtype="int8")
            lv72: R.Tensor((4, 4, 8, 8), dtype="int64") = R.astype(lv58, dtype="int64")
            lv73: R.Tensor((4, 4, 8, 8), dtype="int64") = R.multiply(lv72, R.const(2130771458, "int64"))
            lv74: R.Tensor((4, 4, 8, 8), dtype="int64") = R.add(lv73, R.const(274877906944, "int64"))
            lv75: R.Tensor((4, 4, 8, 8), dtype="int64") = R.right_shift(lv74, R.const(39, "int64"))
            lv76: R.Tensor((4, 4, 8, 8), dtype="int64") = R.clip(lv75, -127, 127)
            lv77: R.Tensor((4, 4, 8, 8), dtype="int8") = R.astype(lv76, dtype="int8")
            lv78: R.Tensor((4, 4, 8, 8), dtype="int32") = R.matmul(lv65, lv71, out_dtype="int32")
            lv79: R.Tensor((4, 4, 8, 8), dtype="int64") = R.astype(lv78, dtype="int64")
            lv80: R.Tensor((4, 4, 8, 8), dtype="int64") = R.multiply(lv79, R.const(1598018829, "int64"))
            lv81: R.Tensor((4, 4, 8, 8), dtype="int64") = R.add(lv80, R.const(8589934592, "int64"))
            lv82: R.Tensor((4, 4, 8, 8), dtype="int64") = R.right_shift(lv81, R.const(34, "int64"))
            lv83: R.Tensor((4, 4, 8, 8), dtype="int64") = R.clip(lv82, -1048576, 1048576)
            lv84: R.Tensor((4, 4, 8, 8), dtype="int32") = R.astype(lv83, dtype="int32")
            lv85 = R.call_tir(cls.shiftmax, (lv84,), out_ty=R.Tensor((4, 4, 8, 8), dtype="uint8"))
            lv86: R.Tensor((4, 4, 8, 8), dtype="int32") = R.matmul(lv85, lv77, out_dtype="int32")
            lv87: R.Tensor((4, 8, 4, 8), dtype="int32") = R.permute_dims(lv86, axes=[0, 2, 1, 3])
            lv88: R.Tensor((32, 32), dtype="int32") = R.reshape(lv87, R.shape([32, 32]))
            lv89: R.Tensor((32, 32), dtype="int64") = R.astype(lv88, dtype="int64")
            lv90: R.Tensor((32, 32), dtype="int64") = R.multiply(lv89, metadata["ir.GenericConst"][12])
            lv91: R.Tensor((32, 32), dtype="int64") = R.add(lv90, R.const(34359738368, "int64"))
            lv92: R.Tensor((32, 32), dtype="int64") = R.right_shift(lv91, R.const(36, "int64"))
            lv93: R.Tensor((32, 32), dtype="int64") = R.clip(lv92, -127, 127)
            lv94: R.Tensor((32, 32), dtype="int8") = R.astype(lv93, dtype="int8")
            lv95: R.Tensor((32, 32), dtype="int32") = R.matmul(lv94, metadata["ir.GenericConst"][13], out_dtype="int32")
            lv96: R.Tensor((32, 32), dtype="int32") = R.add(lv95, metadata["ir.GenericConst"][14])
            lv97: R.Tensor((4, 8, 32), dtype="int32") = R.reshape(lv96, R.shape([4, 8, 32]))
            lv98: R.Tensor((4, 8, 32), dtype="int64") = R.astype(lv4, dtype="int64")
            lv99: R.Tensor((4, 8, 32), dtype="int64") = R.multiply(lv98, R.const(2011632641, "int64"))
            lv100: R.Tensor((4, 8, 32), dtype="int64") = R.add(lv99, R.const(4194304, "int64"))
            lv101: R.Tensor((4, 8, 32), dtype="int64") = R.right_shift(lv100, R.const(23, "int64"))
            lv102: R.Tensor((4, 8, 32), dtype="int64") = R.clip(lv101, -1073741824, 1073741824)
            lv103: R.Tensor((4, 8, 32), dtype="int32") = R.astype(lv102, dtype="int32")
            lv104: R.Tensor((4, 8, 32), dtype="int64") = R.astype(lv97, dtype="int64")
            lv105: R.Tensor((4, 8, 32), dtype="int64") = R.multiply(lv104, metadata["ir.GenericConst"][15])
            lv106: R.Tensor((4, 8, 32), dtype="int64") = R.add(lv105, R.const(1073741824, "int64"))
            lv107: R.Tensor((4, 8, 32), dtype="int64") = R.right_shift(lv106, R.const(31, "int64"))
            lv108: R.Tensor((4, 8, 32), dtype="int64") = R.clip(lv107, -1073741824, 1073741824)
            lv109: R.Tensor((4, 8, 32), dtype="int32") = R.astype(lv108, dtype="int32")
            lv110: R.Tensor((4, 8, 32), dtype="int32") = R.add(lv103, lv109)
            lv111: R.Tensor((4, 8, 32), dtype="int32") = R.clip(lv110, -32767, 32767)
            lv112: R.Tensor((4, 8, 32), dtype="int16") = R.astype(lv111, dtype="int16")
            lv113 = R.call_tir(cls.ilayernorm, (lv112,), out_ty=R.Tensor((4, 8, 32), dtype="int16"))
            lv114: R.Tensor((4, 8, 32), dtype="int32") = R.astype(lv113, dtype="int32")
            lv115: R.Tensor((4, 8, 32), dtype="int32") = R.multiply(lv114, metadata["ir.GenericConst"][16])
            lv116: R.Tensor((4, 8, 32), dtype="int32") = R.add(lv115, metadata["ir.GenericConst"][17])
            lv117: R.Tensor((32, 32), dtype="int32") = R.reshape(lv116, R.shape([32, 32]))
            lv118: R.Tensor((32, 32), dtype="int64") = R.astype(lv117, dtype="int64")
            lv119: R.Tensor((32, 32), dtype="int64") = R.multiply(lv118, metadata["ir.GenericConst"][18])
            lv120: R.Tensor((32, 32), dtype="int64") = R.add(lv119, R.const(68719476736, "int64"))
            lv121: R.Tensor((32, 32), dtype="int64") = R.right_shift(lv120, R.const(37, "int64"))
            lv122: R.Tensor((32, 32), dtype="int64") = R.clip(lv121, -127, 127)
            lv123: R.Tensor((32, 32), dtype="int8") = R.astype(lv122, dtype="int8")
            lv124: R.Tensor((32, 128), dtype="int32") = R.matmul(lv123, metadata["ir.GenericConst"][19], out_dtype="int32")
            lv125: R.Tensor((32, 128), dtype="int32") = R.add(lv124, metadata["ir.GenericConst"][20])
            lv126: R.Tensor((4, 8, 128), dtype="int32") = R.reshape(lv125, R.shape([4, 8, 128]))
            lv127: R.Tensor((4, 8, 128), dtype="int64") = R.astype(lv126, dtype="int64")
            lv128: R.Tensor((4, 8, 128), dtype="int64") = R.multiply(lv127, metadata["ir.GenericConst"][21])
            lv129: R.Tensor((4, 8, 128), dtype="int64") = R.add(lv128, R.const(137438953472, "int64"))
            lv130: R.Tensor((4, 8, 128), dtype="int64") = R.right_shift(lv129, R.const(38, "int64"))
            lv131: R.Tensor((4, 8, 128), dtype="int64") = R.clip(lv130, -127, 127)
            lv132: R.Tensor((4, 8, 128), dtype="int8") = R.astype(lv131, dtype="int8")
            lv133: R.Tensor((4, 8, 128), dtype="int64") = R.astype(lv132, dtype="int64")
            lv134: R.Tensor((4, 8, 128), dtype="int64") = R.multiply(lv133, R.const(1255819638, "int64"))
            lv135: R.Tensor((4, 8, 128), dtype="int64") = R.add(lv134, R.const(268435456, "int64"))
            lv136: R.Tensor((4, 8, 128), dtype="int64") = R.right_shift(lv135, R.const(29, "int64"))
            lv137: R.Tensor((4, 8, 128), dtype="int64") = R.clip(lv136, -16777216, 16777216)
            lv138: R.Tensor((4, 8, 128), dtype="int32") = R.astype(lv137, dtype="int32")
            lv139 = R.call_tir(cls.shiftgelu, (lv132, lv138), out_ty=R.Tensor((4, 8, 128), dtype="int32"))
            lv140: R.Tensor((32, 128), dtype="int32") = R.reshape(lv139, R.shape([32, 128]))
            lv141: R.Tensor((32, 128), dtype="int64") = R.astype(lv140, dtype="int64")
            lv142: R.Tensor((32, 128), dtype="int64") = R.multiply(lv141, metadata["ir.GenericConst"][22])
            lv143: R.Tensor((32, 128), dtype="int64") = R.add(lv142, R.const(34359738368, "int64"))
            lv144: R.Tensor((32, 128), dtype="int64") = R.right_shift(lv143, R.const(36, "int64"))
            lv145: R.Tensor((32, 128), dtype="int64") = R.clip(lv144, -127, 127)
            lv146: R.Tensor((32, 128), dtype="int8") = R.astype(lv145, dtype="int8")
            lv147: R.Tensor((32, 32), dtype="int32") = R.matmul(lv146, metadata["ir.GenericConst"][23], out_dtype="int32")
            lv148: R.Tensor((32, 32), dtype="int32") = R.add(lv147, metadata["ir.GenericConst"][24])
            lv149: R.Tensor((4, 8, 32), dtype="int32") = R.reshape(lv148, R.shape([4, 8, 32]))
            lv150: R.Tensor((4, 8, 32), dtype="int64") = R.astype(lv116, dtype="int64")
            lv151: R.Tensor((4, 8, 32), dtype="int64") = R.multiply(lv150, metadata["ir.GenericConst"][25])
            lv152: R.Tensor((4, 8, 32), dtype="int64") = R.add(lv151, R.const(536870912, "int64"))
            lv153: R.Tensor((4, 8, 32), dtype="int64") = R.right_shift(lv152, R.const(30, "int64"))
            lv154: R.Tensor((4, 8, 32), dtype="int64") = R.clip(lv153, -1073741824, 1073741824)
            lv155: R.Tensor((4, 8, 32), dtype="int32") = R.astype(lv154, dtype="int32")
            lv156: R.Tensor((4, 8, 32), dtype="int64") = R.astype(lv149, dtype="int64")
            lv157: R.Tensor((4, 8, 32), dtype="int64") = R.multiply(lv156, metadata["ir.GenericConst"][26])
            lv158: R.Tensor((4, 8, 32), dtype="int64") = R.add(lv157, R.const(1073741824, "int64"))
            lv159: R.Tensor((4, 8, 32), dtype="int64") = R.right_shift(lv158, R.const(31, "int64"))
            lv160: R.Tensor((4, 8, 32), dtype="int64") = R.clip(lv159, -1073741824, 1073741824)
            lv161: R.Tensor((4, 8, 32), dtype="int32") = R.astype(lv160, dtype="int32")
            lv162: R.Tensor((4, 8, 32), dtype="int32") = R.add(lv155, lv161)
            lv163: R.Tensor((4, 8, 32), dtype="int32") = R.clip(lv162, -32767, 32767)
            lv164: R.Tensor((4, 8, 32), dtype="int16") = R.astype(lv163, dtype="int16")
            lv165 = R.call_tir(cls.ilayernorm1, (lv164,), out_ty=R.Tensor((4, 8, 32), dtype="int16"))
            lv166: R.Tensor((4, 8, 32), dtype="int32") = R.astype(lv165, dtype="int32")
            lv167: R.Tensor((4, 8, 32), dtype="int32") = R.multiply(lv166, metadata["ir.GenericConst"][27])
            lv168: R.Tensor((4, 8, 32), dtype="int32") = R.add(lv167, metadata["ir.GenericConst"][28])
            lv169: R.Tensor((4, 8, 32), dtype="int64") = R.astype(lv168, dtype="int64")
            lv170: R.Tensor((4, 8, 32), dtype="int64") = R.multiply(lv169, metadata["ir.GenericConst"][29])
            lv171: R.Tensor((4, 8, 32), dtype="int64") = R.add(lv170, R.const(134217728, "int64"))
            lv172: R.Tensor((4, 8, 32), dtype="int64") = R.right_shift(lv171, R.const(28, "int64"))
            lv173: R.Tensor((4, 8, 32), dtype="int64") = R.clip(lv172, -32767, 32767)
            lv174: R.Tensor((4, 8, 32), dtype="int16") = R.astype(lv173, dtype="int16")
            lv175: R.Tensor((4, 8, 32), dtype="float32") = R.astype(lv174, dtype="float32")
            lv176: R.Tensor((4, 8, 32), dtype="float32") = R.multiply(lv175, R.const(1.4413375538424589e-05, "float32"))
            gv: R.Tensor((4, 8, 32), dtype="float32") = lv176
            R.output(gv)
        return gv

# Metadata omitted. Use show_meta=True in script() method to show it.
# constants
# main.lv #0: float32[] 30.9643
# main.lv1 #0: float32[] 0.5
# main.lv12 #0: int64[32] sha256:8afdecd79c4f
# main.lv13 #0: int64[] 268435456
# main.lv14 #0: int64[] 29
# main.lv17 #0: int8[32, 32] sha256:38d891c67f82
# main.lv18 #0: int32[32] sha256:66d7f9ec236a
# main.lv20 #0: int64[32] sha256:a516bf59ea6d
# main.lv21 #0: int64[] 536870912
# main.lv22 #0: int64[] 30
# main.lv28 #0: int64[32] sha256:48a2c86283e5
# main.lv29 #0: int64[] 268435456
# main.lv30 #0: int64[] 29
# main.lv33 #0: int8[32, 32] sha256:df0fc7d8890a
# main.lv34 #0: int32[32] sha256:73f17576ae54
# main.lv36 #0: int64[32] sha256:beb1494ee955
# main.lv37 #0: int64[] 536870912
# main.lv38 #0: int64[] 30
# main.lv44 #0: int64[32] sha256:deb1e4c20122
# main.lv45 #0: int64[] 268435456
# main.lv46 #0: int64[] 29
# main.lv49 #0: int8[32, 32] sha256:f22cd3a5ab0f
# main.lv50 #0: int32[32] sha256:0bbb2e5e2151
# main.lv52 #0: int64[32] sha256:4b4ca2848857
# main.lv53 #0: int64[] 536870912
# main.lv54 #0: int64[] 30
# main.lv61 #0: int64[] 2130771458
# main.lv62 #0: int64[] 274877906944
# main.lv63 #0: int64[] 39
# main.lv67 #0: int64[] 2130771458
# main.lv68 #0: int64[] 274877906944
# main.lv69 #0: int64[] 39
# main.lv73 #0: int64[] 2130771458
# main.lv74 #0: int64[] 274877906944
# main.lv75 #0: int64[] 39
# main.lv80 #0: int64[] 1598018829
# main.lv81 #0: int64[] 8589934592
# main.lv82 #0: int64[] 34
# main.lv90 #0: int64[32] sha256:a29c74ca5b5d
# main.lv91 #0: int64[] 34359738368
# main.lv92 #0: int64[] 36
# main.lv95 #0: int8[32, 32] sha256:7cb2ec337e81
# main.lv96 #0: int32[32] sha256:03aceeb5244e
# main.lv99 #0: int64[] 2011632641
# main.lv100 #0: int64[] 4194304
# main.lv101 #0: int64[] 23
# main.lv105 #0: int64[32] sha256:bf3ab5331e88
# main.lv106 #0: int64[] 1073741824
# main.lv107 #0: int64[] 31
# main.lv115 #0: int32[32] sha256:efcb99bddb14
# main.lv116 #0: int32[32] sha256:1f81eb8b5bc8
# main.lv119 #0: int64[32] sha256:48556493328d
# main.lv120 #0: int64[] 68719476736
# main.lv121 #0: int64[] 37
# main.lv124 #0: int8[32, 128] sha256:9db9ab1fb24a
# main.lv125 #0: int32[128] sha256:ed020615361d
# main.lv128 #0: int64[128] sha256:43d52c105533
# main.lv129 #0: int64[] 137438953472
# main.lv130 #0: int64[] 38
# main.lv134 #0: int64[] 1255819638
# main.lv135 #0: int64[] 268435456
# main.lv136 #0: int64[] 29
# main.lv142 #0: int64[128] sha256:de34c0e1983c
# main.lv143 #0: int64[] 34359738368
# main.lv144 #0: int64[] 36
# main.lv147 #0: int8[128, 32] sha256:078e26086e18
# main.lv148 #0: int32[32] sha256:7dfe3800dd7c
# main.lv151 #0: int64[32] sha256:8507448bcb20
# main.lv152 #0: int64[] 536870912
# main.lv153 #0: int64[] 30
# main.lv157 #0: int64[32] sha256:7beeece334a7
# main.lv158 #0: int64[] 1073741824
# main.lv159 #0: int64[] 31
# main.lv167 #0: int32[32] sha256:8e7d545160b5
# main.lv168 #0: int32[32] sha256:f872f1c37127
# main.lv170 #0: int64[32] sha256:e3954b8c44af
# main.lv171 #0: int64[] 134217728
# main.lv172 #0: int64[] 28
# main.lv176 #0: float32[] 1.44134e-05
