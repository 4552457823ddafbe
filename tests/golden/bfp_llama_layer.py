# from typing import TypeVar
# from tvm.script import ir as I
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis
# from tvm.script import relax as R

past_sequence_length = TypeVar("past_sequence_length")
@I.ir_module
class Module:
    @T.prim_func(private=True, s_tir=True)
    def bfp_dequant(lv41: T.Buffer((T.int64(1), T.int64(2), "past_sequence_length + T.int64(4)", T.int64(4)), "uint8"), lv43: T.Buffer((T.int64(1), T.int64(2), past_sequence_length + T.int64(4), T.int64(1)), "uint8"), lv44: T.Buffer((T.int64(1), T.int64(2), T.int64(1), T.int64(8)), "float16"), past_sequence_length: T.int64, bfp_dequant: T.Buffer((T.int64(1), T.int64(2), past_sequence_length + T.int64(4), T.int64(8)), "float32")):
        T.func_attr({"tirx.noalias": True})
        # with T.sblock("root"):
        for i0, i1, i2, i3 in T.grid(T.int64(1), T.int64(2), past_sequence_length + T.int64(4), T.int64(8)):
            with T.sblock("bfp_dequant"):
                v_i0, v_i1, v_i2, v_i3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                T.reads(lv44[v_i0, v_i1, v_i2, v_i3], lv41[v_i0, v_i1, v_i2, v_i3 % T.int64(4)], lv43[v_i0, v_i1, v_i2, v_i3 // T.int64(8)])
                T.writes(bfp_dequant[v_i0, v_i1, v_i2, v_i3])
                bfp_dequant[v_i0, v_i1, v_i2, v_i3] = T.if_then_else(v_i2 < T.int64(1), T.Cast("float32", lv44[v_i0, v_i1, v_i2, v_i3]), T.Cast("float32", T.Cast("int64", T.Cast("int64", T.Cast("int32", lv41[v_i0, v_i1, v_i2, v_i3 % T.int64(4)])) >> v_i3 % T.int64(8) // T.int64(4) * T.int64(4) & T.int64(15)) - T.Select(T.int64(8) <= T.Cast("int64", lv41[v_i0, v_i1, v_i2, v_i3 % T.int64(4)]) >> v_i3 % T.int64(8) // T.int64(4) * T.int64(4) & T.int64(15), T.int64(16), T.int64(0))) * T.reinterpret("float32", T.Cast("uint32", T.Cast("int32", lv43[v_i0, v_i1, v_i2, v_i3 // T.int64(8)]) - 2 << 23)))

    @T.prim_func(private=True, s_tir=True)
    def bfp_dequant1(lv50: T.Buffer((T.int64(1), T.int64(2), "past_sequence_length + T.int64(4)", T.int64(8)), "uint8"), lv51: T.Buffer((T.int64(1), T.int64(2), past_sequence_length + T.int64(4), T.int64(1)), "uint8"), lv52: T.Buffer((T.int64(1), T.int64(2), T.int64(1), T.int64(8)), "float16"), past_sequence_length: T.int64, bfp_dequant: T.Buffer((T.int64(1), T.int64(2), past_sequence_length + T.int64(4), T.int64(8)), "float32")):
        T.func_attr({"tirx.noalias": True})
        # with T.sblock("root"):
        for i0, i1, i2, i3 in T.grid(T.int64(1), T.int64(2), past_sequence_length + T.int64(4), T.int64(8)):
            with T.sblock("bfp_dequant"):
                v_i0, v_i1, v_i2, v_i3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                T.reads(lv52[v_i0, v_i1, v_i2, v_i3], lv50[v_i0, v_i1, v_i2, v_i3], lv51[v_i0, v_i1, v_i2, v_i3 // T.int64(8)])
                T.writes(bfp_dequant[v_i0, v_i1, v_i2, v_i3])
                bfp_dequant[v_i0, v_i1, v_i2, v_i3] = T.if_then_else(v_i2 < T.int64(1), T.Cast("float32", lv52[v_i0, v_i1, v_i2, v_i3]), T.Cast("float32", T.Cast("int64", lv50[v_i0, v_i1, v_i2, v_i3]) - T.Select(T.int64(128) <= T.Cast("int64", lv50[v_i0, v_i1, v_i2, v_i3]), T.int64(256), T.int64(0))) * T.reinterpret("float32", T.Cast("uint32", T.Cast("int32", lv51[v_i0, v_i1, v_i2, v_i3 // T.int64(8)]) - 6 << 23)))

    @T.prim_func(private=True, s_tir=True)
    def bfp_quant(lv110: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(8)), "float32"), bfp_pack: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(4)), "uint8"), bfp_exponent: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(1)), "uint8")):
        T.func_attr({"tirx.noalias": True})
        # with T.sblock("root"):
        bfp_field = T.sblock_alloc_buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(1)), "int32")
        for i0, i1, i2, i3, rb in T.grid(T.int64(1), T.int64(2), T.int64(4), T.int64(1), T.int64(8)):
            with T.sblock("bfp_field"):
                v_i0, v_i1, v_i2, v_i3, v_rb = T.axis.remap("SSSSR", [i0, i1, i2, i3, rb])
                T.reads(lv110[v_i0, v_i1, v_i2, v_i3 * T.int64(8) + v_rb])
                T.writes(bfp_field[v_i0, v_i1, v_i2, v_i3])
                with T.init():
                    bfp_field[v_i0, v_i1, v_i2, v_i3] = -2147483648
                bfp_field[v_i0, v_i1, v_i2, v_i3] = T.max(bfp_field[v_i0, v_i1, v_i2, v_i3], T.Cast("int32", T.reinterpret("uint32", lv110[v_i0, v_i1, v_i2, v_i3 * T.int64(8) + v_rb]) >> T.uint32(23) & T.uint32(255)))
        for i0, i1, i2, i3 in T.grid(T.int64(1), T.int64(2), T.int64(4), T.int64(1)):
            with T.sblock("bfp_exponent"):
                v_i0, v_i1, v_i2, v_i3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                T.reads(bfp_field[v_i0, v_i1, v_i2, v_i3])
                T.writes(bfp_exponent[v_i0, v_i1, v_i2, v_i3])
                bfp_exponent[v_i0, v_i1, v_i2, v_i3] = T.Cast("uint8", T.max(T.min(bfp_field[v_i0, v_i1, v_i2, v_i3], 254), 4))
        for i0, i1, i2, i3 in T.grid(T.int64(1), T.int64(2), T.int64(4), T.int64(4)):
            with T.sblock("bfp_pack"):
                v_i0, v_i1, v_i2, v_i3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                T.reads(lv110[v_i0, v_i1, v_i2, v_i3:v_i3 + T.int64(5)], bfp_exponent[v_i0, v_i1, v_i2, v_i3 // T.int64(8):v_i3 // T.int64(8) + ((v_i3 % T.int64(8) + T.int64(4)) // T.int64(8) + T.int64(1))])
                T.writes(bfp_pack[v_i0, v_i1, v_i2, v_i3])
                bfp_pack[v_i0, v_i1, v_i2, v_i3] = T.Cast("uint8", T.Cast("int64", T.max(T.min(T.round(lv110[v_i0, v_i1, v_i2, v_i3] * T.reinterpret("float32", T.Cast("uint32", 256 - T.Cast("int32", bfp_exponent[v_i0, v_i1, v_i2, v_i3 // T.int64(8)]) << 23))), T.float32(7.0)), T.float32(-7.0))) & T.int64(15) | (T.Cast("int64", T.max(T.min(T.round(lv110[v_i0, v_i1, v_i2, v_i3 + T.int64(4)] * T.reinterpret("float32", T.Cast("uint32", 256 - T.Cast("int32", bfp_exponent[v_i0, v_i1, v_i2, (v_i3 + T.int64(4)) // T.int64(8)]) << 23))), T.float32(7.0)), T.float32(-7.0))) & T.int64(15)) << T.int64(4))

    @T.prim_func(private=True, s_tir=True)
    def bfp_quant1(lv53: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(8)), "float32"), bfp_pack: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(8)), "uint8"), bfp_exponent: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(1)), "uint8")):
        T.func_attr({"tirx.noalias": True})
        # with T.sblock("root"):
        bfp_field = T.sblock_alloc_buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(1)), "int32")
        for i0, i1, i2, i3, rb in T.grid(T.int64(1), T.int64(2), T.int64(4), T.int64(1), T.int64(8)):
            with T.sblock("bfp_field"):
                v_i0, v_i1, v_i2, v_i3, v_rb = T.axis.remap("SSSSR", [i0, i1, i2, i3, rb])
                T.reads(lv53[v_i0, v_i1, v_i2, v_i3 * T.int64(8) + v_rb])
                T.writes(bfp_field[v_i0, v_i1, v_i2, v_i3])
                with T.init():
                    bfp_field[v_i0, v_i1, v_i2, v_i3] = -2147483648
                bfp_field[v_i0, v_i1, v_i2, v_i3] = T.max(bfp_field[v_i0, v_i1, v_i2, v_i3], T.Cast("int32", T.reinterpret("uint32", lv53[v_i0, v_i1, v_i2, v_i3 * T.int64(8) + v_rb]) >> T.uint32(23) & T.uint32(255)))
        for i0, i1, i2, i3 in T.grid(T.int64(1), T.int64(2), T.int64(4), T.int64(1)):
            with T.sblock("bfp_exponent"):
                v_i0, v_i1, v_i2, v_i3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                T.reads(bfp_field[v_i0, v_i1, v_i2, v_i3])
                T.writes(bfp_exponent[v_i0, v_i1, v_i2, v_i3])
                bfp_exponent[v_i0, v_i1, v_i2, v_i3] = T.Cast("uint8", T.max(T.min(bfp_field[v_i0, v_i1, v_i2, v_i3], 254), 8))
        for i0, i1, i2, i3 in T.grid(T.int64(1), T.int64(2), T.int64(4), T.int64(8)):
            with T.sblock("bfp_pack"):
                v_i0, v_i1, v_i2, v_i3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                T.reads(lv53[v_i0, v_i1, v_i2, v_i3], bfp_exponent[v_i0, v_i1, v_i2, v_i3 // T.int64(8)])
                T.writes(bfp_pack[v_i0, v_i1, v_i2, v_i3])
                bfp_pack[v_i0, v_i1, v_i2, v_i3] = T.Cast("uint8", T.Cast("int64", T.max(T.min(T.round(lv53[v_i0, v_i1, v_i2, v_i3] * T.reinterpret("float32", T.Cast("uint32", 260 - T.Cast("int32", bfp_exponent[v_i0, v_i1, v_i2, v_i3 // T.int64(8)]) << 23))), T.float32(127.0)), T.float32(-127.0))) & T.int64(255))

    @T.prim_func(private=True, s_tir=True)
    def kv_sink_update(past_key_values_0_key_sink: T.Buffer((T.int64(1), T.int64(2), T.int64(1), T.int64(8)), "float16"), lv110: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(8)), "float32"), past_key_values_0_key_significands: T.Buffer((T.int64(1), T.int64(2), past_sequence_length, T.int64(4)), "uint8"), kv_sink_update: T.Buffer((T.int64(1), T.int64(2), T.int64(1), T.int64(8)), "float16")):
        T.func_attr({"tirx.noalias": True})
        # with T.sblock("root"):
        for b, h, s, d in T.grid(T.int64(1), T.int64(2), T.int64(1), T.int64(8)):
            with T.sblock("kv_sink_update"):
                v_b, v_h, v_s, v_d = T.axis.remap("SSSS", [b, h, s, d])
                T.reads(lv110[v_b, v_h, T.max(T.min(v_s - past_sequence_length, T.int64(3)), T.int64(0)), v_d], past_key_values_0_key_sink[v_b, v_h, v_s, v_d])
                T.writes(kv_sink_update[v_b, v_h, v_s, v_d])
                kv_sink_update[v_b, v_h, v_s, v_d] = T.if_then_else(past_sequence_length <= v_s and v_s < past_sequence_length + T.int64(4), T.Cast("float16", lv110[v_b, v_h, T.max(T.min(v_s - past_sequence_length, T.int64(3)), T.int64(0)), v_d]), past_key_values_0_key_sink[v_b, v_h, v_s, v_d])

    @T.prim_func(private=True, s_tir=True)
    def kv_sink_update1(past_key_values_0_value_sink: T.Buffer((T.int64(1), T.int64(2), T.int64(1), T.int64(8)), "float16"), lv53: T.Buffer((T.int64(1), T.int64(2), T.int64(4), T.int64(8)), "float32"), past_key_values_0_value_significands: T.Buffer((T.int64(1), T.int64(2), past_sequence_length, T.int64(8)), "uint8"), kv_sink_update: T.Buffer((T.int64(1), T.int64(2), T.int64(1), T.int64(8)), "float16")):
        T.func_attr({"tirx.noalias": True})
        # with T.sblock("root"):
        for b, h, s, d in T.grid(T.int64(1), T.int64(2), T.int64(1), T.int64(8)):
            with T.sblock("kv_sink_update"):
                v_b, v_h, v_s, v_d = T.axis.remap("SSSS", [b, h, s, d])
                T.reads(lv53[v_b, v_h, T.max(T.min(v_s - past_sequence_length, T.int64(3)), T.int64(0)), v_d], past_key_values_0_value_sink[v_b, v_h, v_s, v_d])
                T.writes(kv_sink_update[v_b, v_h, v_s, v_d])
                kv_sink_update[v_b, v_h, v_s, v_d] = T.if_then_else(past_sequence_length <= v_s and v_s < past_sequence_length + T.int64(4), T.Cast("float16", lv53[v_b, v_h, T.max(T.min(v_s - past_sequence_length, T.int64(3)), T.int64(0)), v_d]), past_key_values_0_value_sink[v_b, v_h, v_s, v_d])

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
    def fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add1_heads2(lv45: R.Tensor((1, 2, 4, 8), dtype="float32"), lv37: R.Tensor((1, 2, 4, 8), dtype="float32"), lv42: R.Tensor((1, 2, 4, 8), dtype="float32")) -> R.Tensor((1, 2, 4, 8), dtype="float32"):
        R.func_attr({"Composite": "qcompile.rope", "Primitive": True})
        with R.dataflow():
            lv46: R.Tensor((1, 2, 4, 4), dtype="float32") = R.strided_slice(lv45, (3,), (4,), (9223372036854775807,), (1,), assume_inbound=False)
            lv47: R.Tensor((1, 2, 4, 4), dtype="float32") = R.negative(lv46)
            lv48: R.Tensor((1, 2, 4, 4), dtype="float32") = R.strided_slice(lv45, (3,), (0,), (4,), (1,), assume_inbound=False)
            lv49: R.Tensor((1, 2, 4, 8), dtype="float32") = R.concat((lv47, lv48), axis=-1)
            lv50: R.Tensor((1, 2, 4, 8), dtype="float32") = R.multiply(lv45, lv37)
            lv51: R.Tensor((1, 2, 4, 8), dtype="float32") = R.multiply(lv49, lv42)
            gv: R.Tensor((1, 2, 4, 8), dtype="float32") = R.add(lv50, lv51)
            gv1: R.Tensor((1, 2, 4, 8), dtype="float32") = gv
            R.output(gv1)
        return gv1

    @R.function(private=True)
    def fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add_heads6(lv36: R.Tensor((1, 6, 4, 8), dtype="float32"), lv37: R.Tensor((1, 6, 4, 8), dtype="float32"), lv42: R.Tensor((1, 6, 4, 8), dtype="float32")) -> R.Tensor((1, 6, 4, 8), dtype="float32"):
        R.func_attr({"Composite": "qcompile.rope", "Primitive": True})
        with R.dataflow():
            lv38: R.Tensor((1, 6, 4, 4), dtype="float32") = R.strided_slice(lv36, (3,), (4,), (9223372036854775807,), (1,), assume_inbound=False)
            lv39: R.Tensor((1, 6, 4, 4), dtype="float32") = R.negative(lv38)
            lv40: R.Tensor((1, 6, 4, 4), dtype="float32") = R.strided_slice(lv36, (3,), (0,), (4,), (1,), assume_inbound=False)
            lv41: R.Tensor((1, 6, 4, 8), dtype="float32") = R.concat((lv39, lv40), axis=-1)
            lv43: R.Tensor((1, 6, 4, 8), dtype="float32") = R.multiply(lv36, lv37)
            lv44: R.Tensor((1, 6, 4, 8), dtype="float32") = R.multiply(lv41, lv42)
            gv: R.Tensor((1, 6, 4, 8), dtype="float32") = R.add(lv43, lv44)
            gv1: R.Tensor((1, 6, 4, 8), dtype="float32") = gv
            R.output(gv1)
        return gv1

    @R.function
    def main(input_ids: R.Tensor((1, 4), dtype="int64"), attention_mask: R.Tensor((1, "past_sequence_length + 4"), dtype="int64"), position_ids: R.Tensor((1, 4), dtype="int64"), past_key_values_0_key_significands: R.Tensor((1, 2, past_sequence_length, 4), dtype="uint8"), past_key_values_0_key_exponents: R.Tensor((1, 2, past_sequence_length, 1), dtype="uint8"), past_key_values_0_key_sink: R.Tensor((1, 2, 1, 8), dtype="float16"), past_key_values_0_value_significands: R.Tensor((1, 2, past_sequence_length, 8), dtype="uint8"), past_key_values_0_value_exponents: R.Tensor((1, 2, past_sequence_length, 1), dtype="uint8"), past_key_values_0_value_sink: R.Tensor((1, 2, 1, 8), dtype="float16")) -> R.Tuple(R.Tensor((1, 4, 97), dtype="float32"), R.Tensor((1, 2, "past_sequence_length + 4", 4), dtype="uint8"), R.Tensor((1, 2, "past_sequence_length + 4", 1), dtype="uint8"), R.Tensor((1, 2, 1, 8), dtype="float16"), R.Tensor((1, 2, "past_sequence_length + 4", 8), dtype="uint8"), R.Tensor((1, 2, "past_sequence_length + 4", 1), dtype="uint8"), R.Tensor((1, 2, 1, 8), dtype="float16")):
        R.func_attr({"num_input": 9})
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
            lv: R.Tensor((1, 1, 4, 8), dtype="float32") = R.take(lv37, metadata["ir.GenericConst"][6], axis=3, mode="fast")
            lv1: R.Tensor((1, 1, 4, 8), dtype="float32") = R.take(lv37, metadata["ir.GenericConst"][7], axis=3, mode="fast")
            lv3: R.Tensor((1, 6, 4, 8), dtype="float32") = R.concat((lv, lv, lv, lv1, lv1, lv1), axis=1)
            lv23: R.Tensor((1, 1, 4, 8), dtype="float32") = R.take(lv42, metadata["ir.GenericConst"][8], axis=3, mode="fast")
            lv24: R.Tensor((1, 1, 4, 8), dtype="float32") = R.take(lv42, metadata["ir.GenericConst"][9], axis=3, mode="fast")
            lv25: R.Tensor((1, 6, 4, 8), dtype="float32") = R.concat((lv23, lv23, lv23, lv24, lv24, lv24), axis=1)
            lv26: R.Tensor((1, 6, 4, 8), dtype="float32") = cls.fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add_heads6(lv36, lv3, lv25)
            lv45: R.Tensor((1, 2, 4, 8), dtype="float32") = R.permute_dims(lv33, axes=[0, 2, 1, 3])
            lv27: R.Tensor((1, 2, 4, 8), dtype="float32") = R.concat((lv, lv1), axis=1)
            lv28: R.Tensor((1, 2, 4, 8), dtype="float32") = R.concat((lv23, lv24), axis=1)
            lv110: R.Tensor((1, 2, 4, 8), dtype="float32") = cls.fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add1_heads2(lv45, lv27, lv28)
            lv53: R.Tensor((1, 2, 4, 8), dtype="float32") = R.permute_dims(lv35, axes=[0, 2, 1, 3])
            lv38 = R.call_tir(cls.bfp_quant, (lv110,), out_ty=[R.Tensor((1, 2, 4, 4), dtype="uint8"), R.Tensor((1, 2, 4, 1), dtype="uint8")])
            lv39: R.Tensor((1, 2, 4, 4), dtype="uint8") = lv38[0]
            lv40: R.Tensor((1, 2, 4, 1), dtype="uint8") = lv38[1]
            lv41: R.Tensor((1, 2, past_sequence_length + 4, 4), dtype="uint8") = R.concat((past_key_values_0_key_significands, lv39), axis=2)
            lv43: R.Tensor((1, 2, past_sequence_length + 4, 1), dtype="uint8") = R.concat((past_key_values_0_key_exponents, lv40), axis=2)
            lv44 = R.call_tir(cls.kv_sink_update, (past_key_values_0_key_sink, lv110, past_key_values_0_key_significands), out_ty=R.Tensor((1, 2, 1, 8), dtype="float16"))
            lv46 = R.call_tir(cls.bfp_dequant, (lv41, lv43, lv44, past_sequence_length), out_ty=R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="float32"))
            lv55: R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="float32") = lv46
            lv56: R.Tensor((1, 2, 12, 8), dtype="float32") = R.reshape(lv26, R.shape([1, 2, 12, 8]))
            lv57: R.Tensor((1, 2, 8, past_sequence_length + 4), dtype="float32") = R.permute_dims(lv55, axes=[0, 1, 3, 2])
            lv60: R.Tensor((1, 1, 12, past_sequence_length + 4), dtype="float32") = R.expand_dims(lv21, axis=[1])
            lv47 = R.call_tir(cls.bfp_quant1, (lv53,), out_ty=[R.Tensor((1, 2, 4, 8), dtype="uint8"), R.Tensor((1, 2, 4, 1), dtype="uint8")])
            lv48: R.Tensor((1, 2, 4, 8), dtype="uint8") = lv47[0]
            lv49: R.Tensor((1, 2, 4, 1), dtype="uint8") = lv47[1]
            lv50: R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="uint8") = R.concat((past_key_values_0_value_significands, lv48), axis=2)
            lv51: R.Tensor((1, 2, past_sequence_length + 4, 1), dtype="uint8") = R.concat((past_key_values_0_value_exponents, lv49), axis=2)
            lv52 = R.call_tir(cls.kv_sink_update1, (past_key_values_0_value_sink, lv53, past_key_values_0_value_significands), out_ty=R.Tensor((1, 2, 1, 8), dtype="float16"))
            lv54 = R.call_tir(cls.bfp_dequant1, (lv50, lv51, lv52, past_sequence_length), out_ty=R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="float32"))
            lv63: R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="float32") = lv54
            lv381: R.Tensor((1, 2, 12, 8), dtype="float32") = cls.fused_relax_matmul_relax_multiply_relax_add_relax_nn_softmax_relax_matmul(lv56, lv57, R.const(0.35355338454246521, "float32"), lv60, lv63, R.shape([past_sequence_length]))
            lv65: R.Tensor((1, 6, 4, 8), dtype="float32") = R.reshape(lv381, R.shape([1, 6, 4, 8]))
            lv66: R.Tensor((1, 4, 6, 8), dtype="float32") = R.permute_dims(lv65, axes=[0, 2, 1, 3])
            lv67: R.Tensor((1, 4, 48), dtype="float32") = R.reshape(lv66, R.shape([1, 4, 48]))
            lv68: R.Tensor((1, 4, 48), dtype="float32") = R.matmul(lv67, metadata["ir.GenericConst"][10], out_dtype=None)
            lv69: R.Tensor((1, 4, 48), dtype="float32") = R.add(lv22, lv68)
            lv76: R.Tensor((1, 4, 48), dtype="float32") = R.nn.rms_norm(lv69, metadata["ir.GenericConst"][2], axes=[-1], epsilon=9.9999997473787516e-06)
            lv77: R.Tensor((1, 4, 80), dtype="float32") = R.matmul(lv76, metadata["ir.GenericConst"][11], out_dtype=None)
            lv78: R.Tensor((1, 4, 80), dtype="float32") = R.sigmoid(lv77)
            lv79: R.Tensor((1, 4, 80), dtype="float32") = R.multiply(lv77, lv78)
            lv80: R.Tensor((1, 4, 80), dtype="float32") = R.matmul(lv76, metadata["ir.GenericConst"][12], out_dtype=None)
            lv81: R.Tensor((1, 4, 80), dtype="float32") = R.multiply(lv79, lv80)
            lv82: R.Tensor((1, 4, 48), dtype="float32") = R.matmul(lv81, metadata["ir.GenericConst"][13], out_dtype=None)
            lv83: R.Tensor((1, 4, 48), dtype="float32") = R.add(lv69, lv82)
            lv90: R.Tensor((1, 4, 48), dtype="float32") = R.nn.rms_norm(lv83, metadata["ir.GenericConst"][2], axes=[-1], epsilon=9.9999997473787516e-06)
            lv91: R.Tensor((1, 4, 97), dtype="float32") = R.matmul(lv90, metadata["ir.GenericConst"][14], out_dtype=None)
            gv: R.Tuple(R.Tensor((1, 4, 97), dtype="float32"), R.Tensor((1, 2, past_sequence_length + 4, 4), dtype="uint8"), R.Tensor((1, 2, past_sequence_length + 4, 1), dtype="uint8"), R.Tensor((1, 2, 1, 8), dtype="float16"), R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="uint8"), R.Tensor((1, 2, past_sequence_length + 4, 1), dtype="uint8"), R.Tensor((1, 2, 1, 8), dtype="float16")) = lv91, lv41, lv43, lv44, lv50, lv51, lv52
            gv1: R.Tuple(R.Tensor((1, 4, 97), dtype="float32"), R.Tensor((1, 2, past_sequence_length + 4, 4), dtype="uint8"), R.Tensor((1, 2, past_sequence_length + 4, 1), dtype="uint8"), R.Tensor((1, 2, 1, 8), dtype="float16"), R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="uint8"), R.Tensor((1, 2, past_sequence_length + 4, 1), dtype="uint8"), R.Tensor((1, 2, 1, 8), dtype="float16")) = gv
            gv2: R.Tuple(R.Tensor((1, 4, 97), dtype="float32"), R.Tensor((1, 2, past_sequence_length + 4, 4), dtype="uint8"), R.Tensor((1, 2, past_sequence_length + 4, 1), dtype="uint8"), R.Tensor((1, 2, 1, 8), dtype="float16"), R.Tensor((1, 2, past_sequence_length + 4, 8), dtype="uint8"), R.Tensor((1, 2, past_sequence_length + 4, 1), dtype="uint8"), R.Tensor((1, 2, 1, 8), dtype="float16")) = gv1
            R.output(gv2)
        return gv2

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
# main.lv30 #0: float32[48, 48] max|x| 0.144295 mean 0.0037
# main.lv32 #0: float32[48, 16] max|x| 0.144159 mean 0.00301
# main.lv34 #0: float32[48, 16] max|x| 0.144303 mean 0.00165
# main.lv #0: int32[8] sha256:99f8b2e9d82c
# main.lv1 #0: int32[8] sha256:380e099972fc
# main.lv23 #0: int32[8] sha256:99f8b2e9d82c
# main.lv24 #0: int32[8] sha256:380e099972fc
# main.lv381 #0: float32[] 0.353553
# main.lv68 #0: float32[48, 48] max|x| 0.144321 mean 0.000632
# main.lv76 #0: float32[48] max|x| 1 mean 1
# main.lv77 #0: float32[48, 80] max|x| 0.144251 mean 0.00218
# main.lv80 #0: float32[48, 80] max|x| 0.144288 mean 0.000784
# main.lv82 #0: float32[80, 48] max|x| 0.111799 mean -4e-05
# main.lv90 #0: float32[48] max|x| 1 mean 1
# main.lv91 #0: float32[48, 97] max|x| 4.10149 mean -0.0148
