# from tvm.script import ir as I
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis
# from tvm.script import relax as R

@I.ir_module
class Module:
    @T.prim_func(private=True, s_tir=True)
    def shiftsigmoid(a0: T.Buffer((T.int64(4), T.int64(24)), "int32"), shiftsigmoid: T.Buffer((T.int64(4), T.int64(24)), "int32")):
        T.func_attr({"qcompile.kernel": "{\"op\": \"shiftsigmoid\"}", "tirx.noalias": True})
        # with T.sblock("root"):
        for i0, i1 in T.grid(T.int64(4), T.int64(24)):
            with T.sblock("shiftsigmoid"):
                v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                T.reads(a0[v_i0, v_i1])
                T.writes(shiftsigmoid[v_i0, v_i1])
                shiftsigmoid[v_i0, v_i1] = T.Cast("int32", (T.Select(T.int64(0) <= T.Cast("int64", a0[v_i0, v_i1]), T.int64(8388608), (T.max((T.Cast("int64", a0[v_i0, v_i1]) >> T.int64(1)) + T.Cast("int64", a0[v_i0, v_i1]) - (T.Cast("int64", a0[v_i0, v_i1]) >> T.int64(4)), T.int64(-3840)) + (T.max((T.Cast("int64", a0[v_i0, v_i1]) >> T.int64(1)) + T.Cast("int64", a0[v_i0, v_i1]) - (T.Cast("int64", a0[v_i0, v_i1]) >> T.int64(4)), T.int64(-3840)) * T.int64(-1) >> T.int64(8) << T.int64(8)) >> T.int64(1)) + T.int64(256) << T.int64(15) - (T.max((T.Cast("int64", a0[v_i0, v_i1]) >> T.int64(1)) + T.Cast("int64", a0[v_i0, v_i1]) - (T.Cast("int64", a0[v_i0, v_i1]) >> T.int64(4)), T.int64(-3840)) * T.int64(-1) >> T.int64(8))) << T.int64(8)) // (((T.max((T.Select(T.int64(0) <= T.Cast("int64", a0[v_i0, v_i1]), T.Cast("int64", a0[v_i0, v_i1]), T.int64(0) - T.Cast("int64", a0[v_i0, v_i1])) * T.int64(-1) >> T.int64(1)) - T.Select(T.int64(0) <= T.Cast("int64", a0[v_i0, v_i1]), T.Cast("int64", a0[v_i0, v_i1]), T.int64(0) - T.Cast("int64", a0[v_i0, v_i1])) - (T.Select(T.int64(0) <= T.Cast("int64", a0[v_i0, v_i1]), T.Cast("int64", a0[v_i0, v_i1]), T.int64(0) - T.Cast("int64", a0[v_i0, v_i1])) * T.int64(-1) >> T.int64(4)), T.int64(-3840)) + (T.max((T.Select(T.int64(0) <= T.Cast("int64", a0[v_i0, v_i1]), T.Cast("int64", a0[v_i0, v_i1]), T.int64(0) - T.Cast("int64", a0[v_i0, v_i1])) * T.int64(-1) >> T.int64(1)) - T.Select(T.int64(0) <= T.Cast("int64", a0[v_i0, v_i1]), T.Cast("int64", a0[v_i0, v_i1]), T.int64(0) - T.Cast("int64", a0[v_i0, v_i1])) - (T.Select(T.int64(0) <= T.Cast("int64", a0[v_i0, v_i1]), T.Cast("int64", a0[v_i0, v_i1]), T.int64(0) - T.Cast("int64", a0[v_i0, v_i1])) * T.int64(-1) >> T.int64(4)), T.int64(-3840)) * T.int64(-1) >> T.int64(8) << T.int64(8)) >> T.int64(1)) + T.int64(256) << T.int64(15) - (T.max((T.Select(T.int64(0) <= T.Cast("int64", a0[v_i0, v_i1]), T.Cast("int64", a0[v_i0, v_i1]), T.int64(0) - T.Cast("int64", a0[v_i0, v_i1])) * T.int64(-1) >> T.int64(1)) - T.Select(T.int64(0) <= T.Cast("int64", a0[v_i0, v_i1]), T.Cast("int64", a0[v_i0, v_i1]), T.int64(0) - T.Cast("int64", a0[v_i0, v_i1])) - (T.Select(T.int64(0) <= T.Cast("int64", a0[v_i0, v_i1]), T.Cast("int64", a0[v_i0, v_i1]), T.int64(0) - T.Cast("int64", a0[v_i0, v_i1])) * T.int64(-1) >> T.int64(4)), T.int64(-3840)) * T.int64(-1) >> T.int64(8))) + T.int64(8388608)))

    @R.function
    def main(a0: R.Tensor((4, 24), dtype="int32")) -> R.Tensor((4, 24), dtype="int32"):
        cls = Module
        with R.dataflow():
            gv = R.call_tir(cls.shiftsigmoid, (a0,), out_ty=R.Tensor((4, 24), dtype="int32"))
            R.output(gv)
        return gv