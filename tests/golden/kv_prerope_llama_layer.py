# from typing import TypeVar
# from tvm.script import ir as I
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis
# from tvm.script import relax as R

past_sequence_length = TypeVar("past_sequence_length")
@I.ir_module
class Module:
    @T.prim_func(private=True, s_tir=True)
    def kv_dequant(lv44: T.Buffer((T.int64(1), T.int64(2), "past_sequence_length + T.int64(4)", T.int64(3)), "uint8"), B: T.Buffer((T.int64(2), T.int64(8)), "float32"), C: T.Buffer((T.int64(2), T.int64(8)), "float32"), lv48: T.Buffer((T.int64(1), T.int64(2), T.int64(1), T.int64(8)), "float16"), lv46: T.Buffer((T.int64(1), past_sequence_length + T.int64(4), T.int64(1)), "float16"), lv47: T.Buffer((T.int64(1), past_sequence_length + T.int64(4), T.int64(1)), "uint8"), past_sequence_length: T.int64, kv_dequant: T.Buffer((T.int64(1), T.int64(2), past_sequence_length + T.int64(4), T.int64(8)), "float32")):
        T.func_attr({"qcompile.kv_dequant": "{\"bits\": 3, \"d\": 8, \"k\": 1, \"per_channel\": true, \"sinks\": 1, \"table\": null}", "tirx.noalias": True})
        # with T.sblock("root"):
        for b, h, n, dd in T.grid(T.int64(1), T.int64(2), past_sequence_length + T.int64(4), T.int64(8)):
            with T.sblock("kv_dequant"):
                v_b, v_h, v_n, v_dd = T.axis.remap("SSSS", [b, h, n, dd])
                T.reads(lv48[v_b, v_h, v_n, v_dd], lv47[v_b, v_n, T.int64(0)], lv46[v_b, v_n, T.int64(0)], lv44[v_b, v_h, v_n, v_dd // T.int64(8) * T.int64(3):v_dd // T.int64(8) * T.int64(3) + T.int64(3)], B[v_h, v_dd], C[v_h, v_dd])
                T.writes(kv_dequant[v_b, v_h, v_n, v_dd])
                kv_dequant[v_b, v_h, v_n, v_dd] = T.if_then_else(v_n < T.int64(1), T.Cast("float32", lv48[v_b, v_h, v_n, v_dd]), T.if_then_else(lv47[v_b, v_n, T.int64(0)] == T.Cast("uint8", v_h * T.int64(8) + T.Cast("int64", v_dd)), T.Cast("float32", lv46[v_b, v_n, T.int64(0)]), T.Cast("float32", (T.Cast("int64", lv44[v_b, v_h, v_n, v_dd // T.int64(8) * T.int64(3)]) | T.Cast("int64", lv44[v_b, v_h, v_n, v_dd // T.int64(8) * T.int64(3) + T.int64(1)]) << T.int64(8) | T.Cast("int64", lv44[v_b, v_h, v_n, v_dd // T.int64(8) * T.int64(3) + T.int64(2)]) << T.int64(16)) >> T.Cast("int64", v_dd) % T.int64(8) * T.int64(3) & T.int64(7)) * B[v_h, v_dd] + C[v_h, v_dd]))

    @T.prim_func(private=True, s_tir=True)
    def kv_dequant1(lv82: T.Buffer((T.int64(1), T.int64(2), "past_sequence_length + T.int64(4)", T.int64(3)), "uint8"), lv83: T.Buffer((T.int64(1), T.int64(2), past_sequence_length + T.int64(4), T.int64(1)), "float16"), lv84: T.Buffer((T.int64(1), T.int64(2), past_sequence_length + T.int64(4), T.int64(1)), "float16"), lv87: T.Buffer((T.int64(1), T.int64(2), T.int64(1), T.int64(8)), "float16"), lv85: T.Buffer((T.int64(1), past_sequence_length + T.int64(4), T.int64(1)), "float16"), lv86: T.Buffer((T.int64(1), past_sequence_length + T.int64(4), T.int64(1)), "uint8"), past_sequence_length: T.int64, kv_dequant: T.Buffer((T.int64(1), T.int64(2), past_sequence_length + T.int64(4), T.int64(8)), "float32")):
        T.func_attr({"qcompile.kv_dequant": "{\"bits\": 3, \"d\": 8, \"k\": 1, \"per_channel\": false, \"sinks\": 1, \"table\": null}", "tirx.noalias": True})
        # with T.sblock("root"):
        for b, h, n, dd in T.grid(T.int64(1), T.int64(2), past_sequence_length + T.int64(4), T.int64(8)):
            with T.sblock("kv_dequant"):
                v_b, v_h, v_n, v_dd = T.axis.remap("SSSS", [b, h, n, dd])
                T.reads(lv87[v_b, v_h, v_n, v_dd], lv86[v_b, v_n, T.int64(0)], lv85[v_b, v_n, T.int64(0)], lv82[v_b, v_h, v_n, v_dd // T.int64(8) * T.int64(3):v_dd // T.int64(8) * T.int64(3) + T.int64(3)], lv83[v_b, v_h, v_n, T.int64(0)], lv84[v_b, v_h, v_n, T.int64(0)])
                T.writes(kv_dequant[v_b, v_h, v_n, v_dd])
                kv_dequant[v_b, v_h, v_n, v_dd] = T.if_then_else(v_n < T.int64(1), T.Cast("float32", lv87[v_b, v_h, v_n, v_dd]), T.if_then_else(lv86[v_b, v_n, T.int64(0)] == T.Cast("uint8", v_h * T.int64(8) + T.Cast("int64", v_dd)), T.Cast("float32", lv85[v_b, v_n, T.int64(0)]), T.Cast("float32", (T.Cast("int64", lv82[v_b, v_h, v_n, v_dd // T.int64(8) * T.int64(3)]) | T.Cast("int64", lv82[v_b, v_h, v_n, v_dd // T.int64(8) * T.int64(3) + T.int64(1)]) << T.int64(8) | T.Cast("int64", lv82[v_b, v_h, v_n, v_dd // T.int64(8) * T.int64(3) + T.int64(2)]) << T.int64(16)) >> T.Cast("int64", v_dd) % T.int64(8) * T.int64(3) & T.int64(7)) * T.Cast("float32", lv83[v_b, v_h, v_n, T.int64(0)]) + T.Cast("float32", lv84[v_b, v_h, v_n, T.int64(0)])))

    @T.prim_func(private=True, s_tir=True)
    def kv_quant_channel(lv45: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(8)), "float32"), B: T.Buffer((T.int64(2), T.int64(8)), "float32"), C: T.Buffer((T.int64(2), T.int64(8)), "float32"), kv_pack_channel: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(3)), "uint8")):
        T.func_attr({"tirx.noalias": True})
        # with T.sblock("root"):
        for i0, i1, i2, i3 in T.grid(T.int64(1), T.int64(2), T.int64(4), T.int64(3)):
            with T.sblock("kv_pack_channel"):
                v_i0, v_i1, v_i2, v_i3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                T.reads(lv45[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8):v_i3 // T.int64(3) * T.int64(8) + T.int64(8)], B[v_i1, v_i3 // T.int64(3) * T.int64(8):v_i3 // T.int64(3) * T.int64(8) + T.int64(8)], C[v_i1, v_i3 // T.int64(3) * T.int64(8):v_i3 // T.int64(3) * T.int64(8) + T.int64(8)])
                T.writes(kv_pack_channel[v_i0, v_i1, v_i2, v_i3])
                kv_pack_channel[v_i0, v_i1, v_i2, v_i3] = T.Cast("uint8", (T.Cast("int64", T.max(T.min(T.round((lv45[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8)] - B[v_i1, v_i3 // T.int64(3) * T.int64(8)]) * C[v_i1, v_i3 // T.int64(3) * T.int64(8)]), T.float32(7.0)), T.float32(0.0))) | T.Cast("int64", T.max(T.min(T.round((lv45[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8) + T.int64(1)] - B[v_i1, v_i3 // T.int64(3) * T.int64(8) + T.int64(1)]) * C[v_i1, v_i3 // T.int64(3) * T.int64(8) + T.int64(1)]), T.float32(7.0)), T.float32(0.0))) << T.int64(3) | T.Cast("int64", T.max(T.min(T.round((lv45[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8) + T.int64(2)] - B[v_i1, v_i3 // T.int64(3) * T.int64(8) + T.int64(2)]) * C[v_i1, v_i3 // T.int64(3) * T.int64(8) + T.int64(2)]), T.float32(7.0)), T.float32(0.0))) << T.int64(6) | T.Cast("int64", T.max(T.min(T.round((lv45[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8) + T.int64(3)] - B[v_i1, v_i3 // T.int64(3) * T.int64(8) + T.int64(3)]) * C[v_i1, v_i3 // T.int64(3) * T.int64(8) + T.int64(3)]), T.float32(7.0)), T.float32(0.0))) << T.int64(9) | T.Cast("int64", T.max(T.min(T.round((lv45[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8) + T.int64(4)] - B[v_i1, v_i3 // T.int64(3) * T.int64(8) + T.int64(4)]) * C[v_i1, v_i3 // T.int64(3) * T.int64(8) + T.int64(4)]), T.float32(7.0)), T.float32(0.0))) << T.int64(12) | T.Cast("int64", T.max(T.min(T.round((lv45[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8) + T.int64(5)] - B[v_i1, v_i3 // T.int64(3) * T.int64(8) + T.int64(5)]) * C[v_i1, v_i3 // T.int64(3) * T.int64(8) + T.int64(5)]), T.float32(7.0)), T.float32(0.0))) << T.int64(15) | T.Cast("int64", T.max(T.min(T.round((lv45[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8) + T.int64(6)] - B[v_i1, v_i3 // T.int64(3) * T.int64(8) + T.int64(6)]) * C[v_i1, v_i3 // T.int64(3) * T.int64(8) + T.int64(6)]), T.float32(7.0)), T.float32(0.0))) << T.int64(18) | T.Cast("int64", T.max(T.min(T.round((lv45[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8) + T.int64(7)] - B[v_i1, v_i3 // T.int64(3) * T.int64(8) + T.int64(7)]) * C[v_i1, v_i3 // T.int64(3) * T.int64(8) + T.int64(7)]), T.float32(7.0)), T.float32(0.0))) << T.int64(21)) >> v_i3 % T.int64(3) * T.int64(8) & T.int64(255))

    @T.prim_func(private=True, s_tir=True)
    def kv_quant_token(lv53: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(8)), "float32"), lv77: T.Buffer((T.int64(1), T.int64(4), T.int64(1)), "uint8"), kv_pack_token: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(3)), "uint8"), kv_scale: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(1)), "float16"), kv_zero: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(1)), "float16")):
        T.func_attr({"tirx.noalias": True})
        # with T.sblock("root"):
        kv_min = T.sblock_alloc_buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(1)))
        kv_max = T.sblock_alloc_buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(1)))
        for b, h, t, _, rd in T.grid(T.int64(1), T.int64(2), T.int64(4), T.int64(1), T.int64(8)):
            with T.sblock("kv_min"):
                v_b, v_h, v_t, v__, v_rd = T.axis.remap("SSSSR", [b, h, t, _, rd])
                T.reads(lv77[v_b, v_t, T.int64(0)], lv53[v_b, v_h, v_t, v_rd])
                T.writes(kv_min[v_b, v_h, v_t, v__])
                with T.init():
                    kv_min[v_b, v_h, v_t, v__] = T.float32(340282346638528859811704183484516925440.0)
                kv_min[v_b, v_h, v_t, v__] = T.min(kv_min[v_b, v_h, v_t, v__], T.Select(lv77[v_b, v_t, T.int64(0)] == T.Cast("uint8", v_h * T.int64(8) + v_rd), T.float32(300000000000000012135895401846682943488.0), lv53[v_b, v_h, v_t, v_rd]))
        for b, h, t, _, rd2 in T.grid(T.int64(1), T.int64(2), T.int64(4), T.int64(1), T.int64(8)):
            with T.sblock("kv_max"):
                v_b, v_h, v_t, v__, v_rd2 = T.axis.remap("SSSSR", [b, h, t, _, rd2])
                T.reads(lv77[v_b, v_t, T.int64(0)], lv53[v_b, v_h, v_t, v_rd2])
                T.writes(kv_max[v_b, v_h, v_t, v__])
                with T.init():
                    kv_max[v_b, v_h, v_t, v__] = T.float32(-340282346638528859811704183484516925440.0)
                kv_max[v_b, v_h, v_t, v__] = T.max(kv_max[v_b, v_h, v_t, v__], T.Select(lv77[v_b, v_t, T.int64(0)] == T.Cast("uint8", v_h * T.int64(8) + v_rd2), T.float32(-300000000549775575777803994281145270272.0), lv53[v_b, v_h, v_t, v_rd2]))
        for b, h, t, _ in T.grid(T.int64(1), T.int64(2), T.int64(4), T.int64(1)):
            with T.sblock("kv_zero"):
                v_b, v_h, v_t, v__ = T.axis.remap("SSSS", [b, h, t, _])
                T.reads(kv_max[v_b, v_h, v_t, T.int64(0)], kv_min[v_b, v_h, v_t, T.int64(0)])
                T.writes(kv_zero[v_b, v_h, v_t, v__])
                kv_zero[v_b, v_h, v_t, v__] = T.Cast("float16", T.Select(kv_max[v_b, v_h, v_t, T.int64(0)] < kv_min[v_b, v_h, v_t, T.int64(0)], T.float32(0.0), kv_min[v_b, v_h, v_t, T.int64(0)]))
        for b, h, t, _ in T.grid(T.int64(1), T.int64(2), T.int64(4), T.int64(1)):
            with T.sblock("kv_scale"):
                v_b, v_h, v_t, v__ = T.axis.remap("SSSS", [b, h, t, _])
                T.reads(kv_max[v_b, v_h, v_t, T.int64(0)], kv_min[v_b, v_h, v_t, T.int64(0)], kv_zero[v_b, v_h, v_t, T.int64(0)])
                T.writes(kv_scale[v_b, v_h, v_t, v__])
                kv_scale[v_b, v_h, v_t, v__] = T.Cast("float16", T.Select(kv_max[v_b, v_h, v_t, T.int64(0)] < kv_min[v_b, v_h, v_t, T.int64(0)], T.float32(0.0), (kv_max[v_b, v_h, v_t, T.int64(0)] - T.Cast("float32", kv_zero[v_b, v_h, v_t, T.int64(0)])) / T.float32(7.0)))
        for i0, i1, i2, i3 in T.grid(T.int64(1), T.int64(2), T.int64(4), T.int64(3)):
            with T.sblock("kv_pack_token"):
                v_i0, v_i1, v_i2, v_i3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                T.reads(lv53[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8):v_i3 // T.int64(3) * T.int64(8) + T.int64(8)], kv_zero[v_i0, v_i1, v_i2, T.int64(0)], kv_scale[v_i0, v_i1, v_i2, T.int64(0)])
                T.writes(kv_pack_token[v_i0, v_i1, v_i2, v_i3])
                kv_pack_token[v_i0, v_i1, v_i2, v_i3] = T.Cast("uint8", (T.Cast("int64", T.max(T.min(T.round((lv53[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8)] - T.Cast("float32", kv_zero[v_i0, v_i1, v_i2, T.int64(0)])) * T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0) / T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0)), T.float32(0.0))), T.float32(7.0)), T.float32(0.0))) | T.Cast("int64", T.max(T.min(T.round((lv53[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8) + T.int64(1)] - T.Cast("float32", kv_zero[v_i0, v_i1, v_i2, T.int64(0)])) * T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0) / T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0)), T.float32(0.0))), T.float32(7.0)), T.float32(0.0))) << T.int64(3) | T.Cast("int64", T.max(T.min(T.round((lv53[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8) + T.int64(2)] - T.Cast("float32", kv_zero[v_i0, v_i1, v_i2, T.int64(0)])) * T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0) / T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0)), T.float32(0.0))), T.float32(7.0)), T.float32(0.0))) << T.int64(6) | T.Cast("int64", T.max(T.min(T.round((lv53[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8) + T.int64(3)] - T.Cast("float32", kv_zero[v_i0, v_i1, v_i2, T.int64(0)])) * T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0) / T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0)), T.float32(0.0))), T.float32(7.0)), T.float32(0.0))) << T.int64(9) | T.Cast("int64", T.max(T.min(T.round((lv53[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8) + T.int64(4)] - T.Cast("float32", kv_zero[v_i0, v_i1, v_i2, T.int64(0)])) * T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0) / T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0)), T.float32(0.0))), T.float32(7.0)), T.float32(0.0))) << T.int64(12) | T.Cast("int64", T.max(T.min(T.round((lv53[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8) + T.int64(5)] - T.Cast("float32", kv_zero[v_i0, v_i1, v_i2, T.int64(0)])) * T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0) / T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0)), T.float32(0.0))), T.float32(7.0)), T.float32(0.0))) << T.int64(15) | T.Cast("int64", T.max(T.min(T.round((lv53[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8) + T.int64(6)] - T.Cast("float32", kv_zero[v_i0, v_i1, v_i2, T.int64(0)])) * T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0) / T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0)), T.float32(0.0))), T.float32(7.0)), T.float32(0.0))) << T.int64(18) | T.Cast("int64", T.max(T.min(T.round((lv53[v_i0, v_i1, v_i2, v_i3 // T.int64(3) * T.int64(8) + T.int64(7)] - T.Cast("float32", kv_zero[v_i0, v_i1, v_i2, T.int64(0)])) * T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0) / T.Select(T.float32(0.0) < T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.Cast("float32", kv_scale[v_i0, v_i1, v_i2, T.int64(0)]), T.float32(1.0)), T.float32(0.0))), T.float32(7.0)), T.float32(0.0))) << T.int64(21)) >> v_i3 % T.int64(3) * T.int64(8) & T.int64(255))

    @T.prim_func(private=True, s_tir=True)
    def kv_sink_update(past_key_values_0_key_sink: T.Buffer((T.int64(1), T.int64(2), T.int64(1), T.int64(8)), "float16"), lv45: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(8)), "float32"), past_key_values_0_key_codes: T.Buffer((T.int64(1), T.int64(2), past_sequence_length, T.int64(3)), "uint8"), kv_sink_update: T.Buffer((T.int64(1), T.int64(2), T.int64(1), T.int64(8)), "float16")):
        T.func_attr({"tirx.noalias": True})
        # with T.sblock("root"):
        for b, h, s, d in T.grid(T.int64(1), T.int64(2), T.int64(1), T.int64(8)):
            with T.sblock("kv_sink_update"):
                v_b, v_h, v_s, v_d = T.axis.remap("SSSS", [b, h, s, d])
                T.reads(lv45[v_b, v_h, T.max(T.min(v_s - past_sequence_length, T.int64(3)), T.int64(0)), v_d], past_key_values_0_key_sink[v_b, v_h, v_s, v_d])
                T.writes(kv_sink_update[v_b, v_h, v_s, v_d])
                kv_sink_update[v_b, v_h, v_s, v_d] = T.if_then_else(past_sequence_length <= v_s and v_s < past_sequence_length + T.int64(4), T.Cast("float16", lv45[v_b, v_h, T.max(T.min(v_s - past_sequence_length, T.int64(3)), T.int64(0)), v_d]), past_key_values_0_key_sink[v_b, v_h, v_s, v_d])

    @R.function(private=True)
    def fused_relax_matmul_relax_multiply_relax_add_relax_nn_softmax_relax_matmul(lv56: R.Tensor((1, 2, 12, 8), dtype="float32"), lv57: R.Tensor((1, 2, 8, "past_sequence_length + 4"), dtype="float32"), param_0: R.Tensor((), dtype="float32"), lv60: R.Tensor((1, 1, 12, "past_sequence_length + 4"), dtype="float32"), lv63: R.Tensor((1, 2, "past_sequence_length + 4", 8), dtype="float32"), tir_vars: R.Shape([past_sequence_length])) -> R.Tensor((1, 2, 12, 8), dtype="float32"):
        R.func_attr({"Composite": "qcompile.attention", "Primitive": True})
        with R.dataflow():
            lv58: R.Tensor((1, 2, 12, past_sequence_length + 4), dtype="float32") = R.matmul(lv56, lv57, out_dtype=None)
            lv59: R.Tensor((1, 2, 12, past_sequence_length + 4), dtype="float32") = R.multiply(lv58, param_0)
            lv61: R.Tensor((1, 2, 12, past_sequence_length + 4), dtype="float32") = R.add(lv59, lv60)
            lv62: R.Tensor((1, 2, 12, past_sequence_length + 4), dtype="float32") = R.nn.softmax(lv61, axis=-1)
            gv: R.Tensor((1, 2, 12, 8), dtype="float32") = R.matmul(lv62, lv63, out_dtype=None)
            R.output(gv)
        return gv

    @R.function(private=True)
    def fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add(lv36: R.Tensor((1, 6, 4, 8), dtype="float32"), lv37: R.Tensor((1, 1, 4, 8), dtype="float32"), lv42: R.Tensor((1, 1, 4, 8), dtype="float32")) -> R.Tensor((1, 6, 4, 8), dtype="float32"):
        R.func_attr({"Composite": "qcompile.rope", "Primitive": True})
        with R.dataflow():
            lv38: R.Tensor((1, 6, 4, 4), dtype="float32") = R.strided_slice(lv36, (3,), (4,), (9223372036854775807,), (1,), assume_inbound=False)
            lv39: R.Tensor((1, 6, 4, 4), dtype="float32") = R.negative(lv38)
            lv40: R.Tensor((1, 6, 4, 4), dtype="float32") = R.strided_slice(lv36, (3,), (0,), (4,), (1,), assume_inbound=False)
            lv41: R.Tensor((1, 6, 4, 8), dtype="float32") = R.concat((lv39, lv40), axis=-1)
            lv43: R.Tensor((1, 6, 4, 8), dtype="float32") = R.multiply(lv36, lv37)
            lv44: R.Tensor((1, 6, 4, 8), dtype="float32") = R.multiply(lv41, lv42)
            gv: R.Tensor((1, 6, 4, 8), dtype="float32") = R.add(lv43, lv44)
            R.output(gv)
        return gv

    @R.function
    def main(input_ids: R.Tensor((1, 4), dtype="int64"), attention_mask: R.Tensor((1, "past_sequence_length + 4"), dtype="int64"), position_ids: R.Tensor((1, 4), dtype="int64"), past_key_values_0_key_codes: R.Tensor((1, 2, past_sequence_length, 3), dtype="uint8"), past_key_values_0_key_sink: R.Tensor((1, 2, 1, 8), dtype="float16"), past_key_values_0_key_outlier_values: R.Tensor((1, past_sequence_length, 1), dtype="float16"), past_key_values_0_key_outlier_index: R.Tensor((1, past_sequence_length, 1), dtype="uint8"), past_key_values_0_value_codes: R.Tensor((1, 2, past_sequence_length, 3), dtype="uint8"), past_key_values_0_value_scale: R.Tensor((1, 2, past_sequence_length, 1), dtype="float16"), past_key_values_0_value_zero: R.Tensor((1, 2, past_sequence_length, 1), dtype="float16"), past_key_values_0_value_sink: R.Tensor((1, 2, 1, 8), dtype="float16"), past_key_values_0_value_outlier_values: R.Tensor((1, past_sequence_length, 1), dtype="float16"), past_key_values_0_value_outlier_index: R.Tensor((1, past_sequence_length, 1), dtype="uint8")) -> R.Tuple(R.Tensor((1, 4, 97), dtype="float32"), R.Tensor((1, 2, "past_sequence_length + 4", 3), dtype="uint8"), R.Tensor((1, 2, 1, 8), dtype="float16"), R.Tensor((1, "past_sequence_length + 4", 1), dtype="float16"), R.Tensor((1, "past_sequence_length + 4", 1), dtype="uint8"), R.Tensor((1, 2, "past_sequence_length + 4", 3), dtype="uint8"), R.Tensor((1, 2, "past_sequence_length + 4", 1), dtype="float16"), R.Tensor((1, 2, "past_sequence_length + 4", 1), dtype="float16"), R.Tensor((1, 2, 1, 8), dtype="float16"), R.Tensor((1, "past_sequence_length + 4", 1), dtype="float16"), R.Tensor((1, "past_sequence_length + 4", 1), dtype="uint8")):
        R.func_attr({"num_input": 13})
        cls = Module
        with R.dataflow():
            lv2: R.Tensor((1, 4), dtype="bool") = R.less(input_ids, R.const(0, "int64"))
            lv4: R.Tensor((1, 4), dtype="int64") = R.add(input_ids, R.const(97, "int64"))
            lv5: R.Tensor((1, 4), dtype="int64") = R.where(lv2, lv4, input_ids)
            lv6: R.Tensor((1, 4), dtype="float32") = R.astype(position_ids, dtype="float32")
            lv7: R.Tensor((1, 4, 1), dtype="float32") = R.expand_dims(lv6, axis=[2])
            lv8: R.Tensor((1, 4, 4), dtype="float32") = R.multiply(lv7, metadata["ir.GenericConst"][0])
            lv9: R.Tensor((1, 4, 8), dtype="float32") = R.concat((lv8, lv8), axis=-1)
            lv10: R.Tensor((1, 4, 8), dtype="float32") = R.cos(lv9)
            lv11: R.Tensor((1, 4, 8), dtype="float32") = R.sin(lv9)
            lv12: R.Tensor((1, past_sequence_length + 4), dtype="int64") = R.cumsum(attention_mask, axis=-1, dtype=None, exclusive=False)
            lv13: R.Tensor((1, past_sequence_length + 4), dtype="int64") = R.subtract(lv12, R.const(1, "int64"))
            lv14: R.Tensor((1, 1, past_sequence_length + 4), dtype="int64") = R.expand_dims(lv13, axis=[1])
            lv15: R.Tensor((1, 4, 1), dtype="int64") = R.expand_dims(position_ids, axis=[2])
            lv16: R.Tensor((1, 1, past_sequence_length + 4), dtype="int64") = R.expand_dims(attention_mask, axis=[1])
            lv17: R.Tensor((1, 4, past_sequence_length + 4), dtype="bool") = R.less_equal(lv14, lv15)
            lv18: R.Tensor((1, 1, past_sequence_length + 4), dtype="bool") = R.greater(lv16, R.const(0, "int64"))
            lv19: R.Tensor((1, 4, past_sequence_length + 4), dtype="bool") = R.logical_and(lv17, lv18)
            lv20: R.Tensor((1, 4, past_sequence_length + 4), dtype="float32") = R.where(lv19, R.const(0.0, "float32"), R.const(-340282346638528859811704183484516925440.0, "float32"))
            lv21: R.Tensor((1, 12, past_sequence_length + 4), dtype="float32") = R.concat((lv20, lv20, lv20), axis=1)
            lv22: R.Tensor((1, 4, 48), dtype="float32") = R.take(metadata["ir.GenericConst"][1], lv5, axis=0, mode="clip")
            lv29: R.Tensor((1, 4, 48), dtype="float32") = R.nn.rms_norm(lv22, metadata["ir.GenericConst"][2], axes=[-1], epsilon=9.9999997473787516e-06)
            lv30: R.Tensor((1, 4, 48), dtype="float32") = R.matmul(lv29, metadata["ir.GenericConst"][3], out_dtype=None)
            lv31: R.Tensor((1, 4, 6, 8), dtype="float32") = R.reshape(lv30, R.shape([1, 4, 6, 8]))
            lv32: R.Tensor((1, 4, 16), dtype="float32") = R.matmul(lv29, metadata["ir.GenericConst"][4], out_dtype=None)
            lv33: R.Tensor((1, 4, 2, 8), dtype="float32") = R.reshape(lv32, R.shape([1, 4, 2, 8]))
            lv34: R.Tensor((1, 4, 16), dtype="float32") = R.matmul(lv29, metadata["ir.GenericConst"][5], out_dtype=None)
            lv35: R.Tensor((1, 4, 2, 8), dtype="float32") = R.reshape(lv34, R.shape([1, 4, 2, 8]))
            lv36: R.Tensor((1, 6, 4, 8), dtype="float32") = R.permute_dims(lv31, axes=[0, 2, 1, 3])
            lv37: R.Tensor((1, 1, 4, 8), dtype="float32") = R.expand_dims(lv10, axis=[1])
            lv42: R.Tensor((1, 1, 4, 8), dtype="float32") = R.expand_dims(lv11, axis=[1])
            lv: R.Tensor((1, 6, 4, 8), dtype="float32") = cls.fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add(lv36, lv37, lv42)
            lv45: R.Tensor((1, 2, 4, 8), dtype="float32") = R.permute_dims(lv33, axes=[0, 2, 1, 3])
            lv53: R.Tensor((1, 2, 4, 8), dtype="float32") = R.permute_dims(lv35, axes=[0, 2, 1, 3])
            lv3: R.Tensor((1, 2, 4, 8), dtype="float32") = R.subtract(lv45, metadata["ir.GenericConst"][6])
            lv23: R.Tensor((1, 2, 4, 8), dtype="float32") = R.abs(lv3)
            lv24: R.Tensor((1, 2, 4, 8), dtype="float32") = R.multiply(lv23, metadata["ir.GenericConst"][7])
            lv25: R.Tensor((1, 4, 2, 8), dtype="float32") = R.permute_dims(lv24, axes=[0, 2, 1, 3])
            lv26: R.Tensor((1, 4, 16), dtype="float32") = R.reshape(lv25, R.shape([1, 4, 16]))
            lv27: R.Tensor((1, 4, 1), dtype="int64") = R.topk(lv26, k=1, axis=-1, ret_type="indices", largest=True, dtype="int64")
            lv28: R.Tensor((1, 4, 2, 8), dtype="float32") = R.permute_dims(lv45, axes=[0, 2, 1, 3])
            lv38: R.Tensor((1, 4, 16), dtype="float32") = R.reshape(lv28, R.shape([1, 4, 16]))
            lv39: R.Tensor((1, 4, 1), dtype="float32") = R.gather_elements(lv38, lv27, axis=-1)
            lv40: R.Tensor((1, 4, 1), dtype="float16") = R.astype(lv39, dtype="float16")
            lv41: R.Tensor((1, 4, 1), dtype="uint8") = R.astype(lv27, dtype="uint8")
            lv43 = R.call_tir(cls.kv_quant_channel, (lv45, metadata["ir.GenericConst"][8], metadata["ir.GenericConst"][9]), out_ty=R.Tensor((1, 2, 4, 3), dtype="uint8"))
            lv44: R.Tensor((1, 2, past_sequence_length + 4, 3), dtype="uint8") = R.concat((past_key_values_0_key_codes, lv43), axis=2)
            lv46: R.Tensor((1, past_sequence_length + 4, 1), dtype="float16") = R.concat((past_key_values_0_key_outlier_values, lv40), axis=1)
            lv47: R.Tensor((1, past_sequence_length + 4, 1), dtype="uint8") = R.concat((past_key_values_0_key_outlier_index, lv41), axis=1)
            lv48 = R.call_tir(cls.kv_sink_update, (past_key_values_0_key_sink, lv45, past_key_values_0_key_codes), out_ty=R.Tensor((1, 2, 1, 8), dtype="float16"))
            lv49 = R.call_tir(cls.kv_dequant, (lv44, metadata["ir.GenericConst"][10], metadata["ir.GenericConst"][8], lv48, lv46, lv47, past_sequence_length), out_ty=R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="float32"))
            lv50: R.Tensor((1, past_sequence_length + 4), dtype="int64") = R.cumsum(attention_mask, axis=-1, dtype="int64", exclusive=False)
            lv51: R.Tensor((1, past_sequence_length + 4), dtype="int64") = R.subtract(lv50, R.const(1, "int64"))
            lv52: R.Tensor((1, past_sequence_length + 4), dtype="int64") = R.maximum(lv51, R.const(0, "int64"))
            lv54: R.Tensor((1, past_sequence_length + 4), dtype="float32") = R.astype(lv52, dtype="float32")
            lv55: R.Tensor((1, past_sequence_length + 4, 1), dtype="float32") = R.expand_dims(lv54, axis=[2])
            lv56: R.Tensor((1, past_sequence_length + 4, 4), dtype="float32") = R.multiply(lv55, metadata["ir.GenericConst"][0])
            lv57: R.Tensor((1, past_sequence_length + 4, 8), dtype="float32") = R.concat((lv56, lv56), axis=-1)
            lv58: R.Tensor((1, past_sequence_length + 4, 8), dtype="float32") = R.cos(lv57)
            lv59: R.Tensor((1, 1, past_sequence_length + 4, 8), dtype="float32") = R.expand_dims(lv58, axis=[1])
            lv60: R.Tensor((1, past_sequence_length + 4, 8), dtype="float32") = R.sin(lv57)
            lv61: R.Tensor((1, 1, past_sequence_length + 4, 8), dtype="float32") = R.expand_dims(lv60, axis=[1])
            lv62: R.Tensor((1, 2, past_sequence_length + 4, 4), dtype="float32") = R.strided_slice(lv49, (3,), (4,), (9223372036854775807,), (1,), assume_inbound=False)
            lv63: R.Tensor((1, 2, past_sequence_length + 4, 4), dtype="float32") = R.negative(lv62)
            lv64: R.Tensor((1, 2, past_sequence_length + 4, 4), dtype="float32") = R.strided_slice(lv49, (3,), (0,), (4,), (1,), assume_inbound=False)
            lv65: R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="float32") = R.concat((lv63, lv64), axis=-1)
            lv66: R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="float32") = R.multiply(lv49, lv59)
            lv67: R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="float32") = R.multiply(lv65, lv61)
            lv68: R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="float32") = R.add(lv66, lv67)
            lv551: R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="float32") = lv68
            lv561: R.Tensor((1, 2, 12, 8), dtype="float32") = R.reshape(lv, R.shape([1, 2, 12, 8]))
            lv571: R.Tensor((1, 2, 8, past_sequence_length + 4), dtype="float32") = R.permute_dims(lv551, axes=[0, 1, 3, 2])
            lv601: R.Tensor((1, 1, 12, past_sequence_length + 4), dtype="float32") = R.expand_dims(lv21, axis=[1])
            lv69: R.Tensor((1, 2, 4, 8), dtype="float32") = R.abs(lv53)
            lv70: R.Tensor((1, 4, 2, 8), dtype="float32") = R.permute_dims(lv69, axes=[0, 2, 1, 3])
            lv71: R.Tensor((1, 4, 16), dtype="float32") = R.reshape(lv70, R.shape([1, 4, 16]))
            lv72: R.Tensor((1, 4, 1), dtype="int64") = R.topk(lv71, k=1, axis=-1, ret_type="indices", largest=True, dtype="int64")
            lv73: R.Tensor((1, 4, 2, 8), dtype="float32") = R.permute_dims(lv53, axes=[0, 2, 1, 3])
            lv74: R.Tensor((1, 4, 16), dtype="float32") = R.reshape(lv73, R.shape([1, 4, 16]))
            lv75: R.Tensor((1, 4, 1), dtype="float32") = R.gather_elements(lv74, lv72, axis=-1)
            lv76: R.Tensor((1, 4, 1), dtype="float16") = R.astype(lv75, dtype="float16")
            lv77: R.Tensor((1, 4, 1), dtype="uint8") = R.astype(lv72, dtype="uint8")
            lv78 = R.call_tir(cls.kv_quant_token, (lv53, lv77), out_ty=[R.Tensor((1, 2, 4, 3), dtype="uint8"), R.Tensor((1, 2, 4, 1), dtype="float16"), R.Tensor((1, 2, 4, 1), dtype="float16")])
            lv79: R.Tensor((1, 2, 4, 3), dtype="uint8") = lv78[0]
            lv80: R.Tensor((1, 2, 4, 1), dtype="float16") = lv78[1]
            lv81: R.Tensor((1, 2, 4, 1), dtype="float16") = lv78[2]
            lv82: R.Tensor((1, 2, past_sequence_length + 4, 3), dtype="uint8") = R.concat((past_key_values_0_value_codes, lv79), axis=2)
            lv83: R.Tensor((1, 2, past_sequence_length + 4, 1), dtype="float16") = R.concat((past_key_values_0_value_scale, lv80), axis=2)
            lv84: R.Tensor((1, 2, past_sequence_length + 4, 1), dtype="float16") = R.concat((past_key_values_0_value_zero, lv81), axis=2)
            lv85: R.Tensor((1, past_sequence_length + 4, 1), dtype="float16") = R.concat((past_key_values_0_value_outlier_values, lv76), axis=1)
            lv86: R.Tensor((1, past_sequence_length + 4, 1), dtype="uint8") = R.concat((past_key_values_0_value_outlier_index, lv77), axis=1)
            lv87 = R.call_tir(cls.kv_sink_update, (past_key_values_0_value_sink, lv53, past_key_values_0_value_codes), out_ty=R.Tensor((1, 2, 1, 8), dtype="float16"))
            lv88 = R.call_tir(cls.kv_dequant1, (lv82, lv83, lv84, lv87, lv85, lv86, past_sequence_length), out_ty=R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="float32"))
            lv631: R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="float32") = lv88
            lv89: R.Tensor((1, 2, 12, 8), dtype="float32") = cls.fused_relax_matmul_relax_multiply_relax_add_relax_nn_softmax_relax_matmul(lv561, lv571, R.const(0.35355338454246521, "float32"), lv601, lv631, R.shape([past_sequence_length]))
            lv651: R.Tensor((1, 6, 4, 8), dtype="float32") = R.reshape(lv89, R.shape([1, 6, 4, 8]))
            lv661: R.Tensor((1, 4, 6, 8), dtype="float32") = R.permute_dims(lv651, axes=[0, 2, 1, 3])
            lv671: R.Tensor((1, 4, 48), dtype="float32") = R.reshape(lv661, R.shape([1, 4, 48]))
            lv681: R.Tensor((1, 4, 48), dtype="float32") = R.matmul(lv671, metadata["ir.GenericConst"][11], out_dtype=None)
            lv691: R.Tensor((1, 4, 48), dtype="float32") = R.add(lv22, lv681)
            lv761: R.Tensor((1, 4, 48), dtype="float32") = R.nn.rms_norm(lv691, metadata["ir.GenericConst"][2], axes=[-1], epsilon=9.9999997473787516e-06)
            lv771: R.Tensor((1, 4, 80), dtype="float32") = R.matmul(lv761, metadata["ir.GenericConst"][12], out_dtype=None)
            lv781: R.Tensor((1, 4, 80), dtype="float32") = R.sigmoid(lv771)
            lv791: R.Tensor((1, 4, 80), dtype="float32") = R.multiply(lv771, lv781)
            lv801: R.Tensor((1, 4, 80), dtype="float32") = R.matmul(lv761, metadata["ir.GenericConst"][13], out_dtype=None)
            lv811: R.Tensor((1, 4, 80), dtype="float32") = R.multiply(lv791, lv801)
            lv821: R.Tensor((1, 4, 48), dtype="float32") = R.matmul(lv811, metadata["ir.GenericConst"][14], out_dtype=None)
            lv831: R.Tensor((1, 4, 48), dtype="float32") = R.add(lv691, lv821)
            lv90: R.Tensor((1, 4, 48), dtype="float32") = R.nn.rms_norm(lv831, metadata["ir.GenericConst"][2], axes=[-1], epsilon=9.9999997473787516e-06)
            lv91: R.Tensor((1, 4, 97), dtype="float32") = R.matmul(lv90, metadata["ir.GenericConst"][15], out_dtype=None)
            gv: R.Tuple(R.Tensor((1, 4, 97), dtype="float32"), R.Tensor((1, 2, past_sequence_length + 4, 3), dtype="uint8"), R.Tensor((1, 2, 1, 8), dtype="float16"), R.Tensor((1, past_sequence_length + 4, 1), dtype="float16"), R.Tensor((1, past_sequence_length + 4, 1), dtype="uint8"), R.Tensor((1, 2, past_sequence_length + 4, 3), dtype="uint8"), R.Tensor((1, 2, past_sequence_length + 4, 1), dtype="float16"), R.Tensor((1, 2, past_sequence_length + 4, 1), dtype="float16"), R.Tensor((1, 2, 1, 8), dtype="float16"), R.Tensor((1, past_sequence_length + 4, 1), dtype="float16"), R.Tensor((1, past_sequence_length + 4, 1), dtype="uint8")) = lv91, lv44, lv48, lv46, lv47, lv82, lv83, lv84, lv87, lv85, lv86
            gv1: R.Tuple(R.Tensor((1, 4, 97), dtype="float32"), R.Tensor((1, 2, past_sequence_length + 4, 3), dtype="uint8"), R.Tensor((1, 2, 1, 8), dtype="float16"), R.Tensor((1, past_sequence_length + 4, 1), dtype="float16"), R.Tensor((1, past_sequence_length + 4, 1), dtype="uint8"), R.Tensor((1, 2, past_sequence_length + 4, 3), dtype="uint8"), R.Tensor((1, 2, past_sequence_length + 4, 1), dtype="float16"), R.Tensor((1, 2, past_sequence_length + 4, 1), dtype="float16"), R.Tensor((1, 2, 1, 8), dtype="float16"), R.Tensor((1, past_sequence_length + 4, 1), dtype="float16"), R.Tensor((1, past_sequence_length + 4, 1), dtype="uint8")) = gv
            R.output(gv1)
        return gv1

# Metadata omitted. Use show_meta=True in script() method to show it.
# constants
# main.lv2 #0: int64[] 0
# main.lv4 #0: int64[] 97
# main.lv8 #0: float32[4] max|x| 1 mean 0.304
# main.lv13 #0: int64[] 1
# main.lv18 #0: int64[] 0
# main.lv20 #0: float32[] 0
# main.lv20 #1: float32[] -3.40282e+38
# main.lv22 #0: float32[97, 48] max|x| 4.10149 mean -0.0148
# main.lv29 #0: float32[48] max|x| 1 mean 1
# main.lv30 #0: float32[48, 48] max|x| 0.144295 mean 0.000272
# main.lv32 #0: float32[48, 16] max|x| 0.144159 mean 0.00131
# main.lv34 #0: float32[48, 16] max|x| 0.144303 mean 0.00165
# main.lv3 #0: float32[1, 2, 1, 8] max|x| 0.35192 mean 0.0201
# main.lv24 #0: float32[1, 2, 1, 8] max|x| 1.17932 mean 0.928
# main.lv43 #0: float32[2, 8] max|x| 1.48054 mean -1.08
# main.lv43 #1: float32[2, 8] max|x| 4.12762 mean 3.25
# main.lv49 #0: float32[2, 8] max|x| 0.387473 mean 0.314
# main.lv49 #1: float32[2, 8] max|x| 1.48054 mean -1.08
# main.lv51 #0: int64[] 1
# main.lv52 #0: int64[] 0
# main.lv56 #0: float32[4] max|x| 1 mean 0.304
# main.lv89 #0: float32[] 0.353553
# main.lv681 #0: float32[48, 48] max|x| 0.144321 mean 0.000632
# main.lv761 #0: float32[48] max|x| 1 mean 1
# main.lv771 #0: float32[48, 80] max|x| 0.144251 mean 0.00218
# main.lv801 #0: float32[48, 80] max|x| 0.144288 mean 0.000784
# main.lv821 #0: float32[80, 48] max|x| 0.111799 mean -4e-05
# main.lv90 #0: float32[48] max|x| 1 mean 1
# main.lv91 #0: float32[48, 97] max|x| 4.10149 mean -0.0148
