# from typing import TypeVar
# from tvm.script import ir as I
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis
# from tvm.script import relax as R

past_sequence_length = TypeVar("past_sequence_length")
@I.ir_module
class Module:
    @T.prim_func(private=True, s_tir=True)
    def fwht24(lv81: T.Buffer((T.int64(1), T.int64(2), T.int64(24)), "float32"), B: T.Buffer((T.int64(12), T.int64(12)), "float32"), fwht: T.Buffer((T.int64(1), T.int64(2), T.int64(24)), "float32")):
        T.func_attr({"tirx.noalias": True})
        # with T.sblock("root"):
        fwht_in = T.sblock_alloc_buffer((T.int64(1), T.int64(2), T.int64(12), T.int64(2)))
        fwht_stage0 = T.sblock_alloc_buffer((T.int64(1), T.int64(2), T.int64(12), T.int64(2)))
        fwht_mix = T.sblock_alloc_buffer((T.int64(1), T.int64(2), T.int64(12), T.int64(2)))
        for i0, i1, i2, i3 in T.grid(T.int64(1), T.int64(2), T.int64(12), T.int64(2)):
            with T.sblock("fwht_in"):
                v_i0, v_i1, v_i2, v_i3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                T.reads(lv81[v_i0, v_i1, v_i2 * T.int64(2) + v_i3])
                T.writes(fwht_in[v_i0, v_i1, v_i2, v_i3])
                fwht_in[v_i0, v_i1, v_i2, v_i3] = lv81[v_i0, v_i1, v_i2 * T.int64(2) + v_i3]
        for i0, i1, i2, i3 in T.grid(T.int64(1), T.int64(2), T.int64(12), T.int64(2)):
            with T.sblock("fwht_stage0"):
                v_i0, v_i1, v_i2, v_i3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                T.reads(fwht_in[v_i0, v_i1, v_i2, T.int64(0):T.int64(2)])
                T.writes(fwht_stage0[v_i0, v_i1, v_i2, v_i3])
                fwht_stage0[v_i0, v_i1, v_i2, v_i3] = fwht_in[v_i0, v_i1, v_i2, v_i3 & T.int64(0)] + T.Cast("float32", T.int64(1) - (v_i3 & T.int64(1)) * T.int64(2)) * fwht_in[v_i0, v_i1, v_i2, v_i3 | T.int64(1)]
        for i0, i1, i2, i3, r in T.grid(T.int64(1), T.int64(2), T.int64(12), T.int64(2), T.int64(12)):
            with T.sblock("fwht_mix"):
                v_i0, v_i1, v_i2, v_i3, v_r = T.axis.remap("SSSSR", [i0, i1, i2, i3, r])
                T.reads(B[v_r, v_i2], fwht_stage0[v_i0, v_i1, v_r, v_i3])
                T.writes(fwht_mix[v_i0, v_i1, v_i2, v_i3])
                with T.init():
                    fwht_mix[v_i0, v_i1, v_i2, v_i3] = T.float32(0.0)
                fwht_mix[v_i0, v_i1, v_i2, v_i3] = fwht_mix[v_i0, v_i1, v_i2, v_i3] + B[v_r, v_i2] * fwht_stage0[v_i0, v_i1, v_r, v_i3]
        for i0, i1, i2 in T.grid(T.int64(1), T.int64(2), T.int64(24)):
            with T.sblock("fwht"):
                v_i0, v_i1, v_i2 = T.axis.remap("SSS", [i0, i1, i2])
                T.reads(fwht_mix[v_i0, v_i1, v_i2 // T.int64(2), v_i2 % T.int64(2)])
                T.writes(fwht[v_i0, v_i1, v_i2])
                fwht[v_i0, v_i1, v_i2] = fwht_mix[v_i0, v_i1, v_i2 // T.int64(2), v_i2 % T.int64(2)] * T.float32(0.20412414523193154)

    @R.function(private=True)
    def fused_relax_matmul_relax_multiply_relax_add_relax_nn_softmax_relax_matmul(lv56: R.Tensor((1, 2, 6, 8), dtype="float32"), lv57: R.Tensor((1, 2, 8, "past_sequence_length + 2"), dtype="float32"), param_0: R.Tensor((), dtype="float32"), lv60: R.Tensor((1, 1, 6, "past_sequence_length + 2"), dtype="float32"), lv63: R.Tensor((1, 2, "past_sequence_length + 2", 8), dtype="float32"), tir_vars: R.Shape([past_sequence_length])) -> R.Tensor((1, 2, 6, 8), dtype="float32"):
        R.func_attr({"Composite": "qcompile.attention", "Primitive": True})
        with R.dataflow():
            lv58: R.Tensor((1, 2, 6, past_sequence_length + 2), dtype="float32") = R.matmul(lv56, lv57, out_dtype=None)
            lv59: R.Tensor((1, 2, 6, past_sequence_length + 2), dtype="float32") = R.multiply(lv58, param_0)
            lv61: R.Tensor((1, 2, 6, past_sequence_length + 2), dtype="float32") = R.add(lv59, lv60)
            lv62: R.Tensor((1, 2, 6, past_sequence_length + 2), dtype="float32") = R.nn.softmax(lv61, axis=-1)
            gv: R.Tensor((1, 2, 6, 8), dtype="float32") = R.matmul(lv62, lv63, out_dtype=None)
            R.output(gv)
        return gv

    @R.function(private=True)
    def fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add(lv36: R.Tensor((1, 6, 2, 8), dtype="float32"), lv37: R.Tensor((1, 1, 2, 8), dtype="float32"), lv42: R.Tensor((1, 1, 2, 8), dtype="float32")) -> R.Tensor((1, 6, 2, 8), dtype="float32"):
        R.func_attr({"Composite": "qcompile.rope", "Primitive": True})
        with R.dataflow():
            lv38: R.Tensor((1, 6, 2, 4), dtype="float32") = R.strided_slice(lv36, (3,), (4,), (9223372036854775807,), (1,), assume_inbound=False)
            lv39: R.Tensor((1, 6, 2, 4), dtype="float32") = R.negative(lv38)
            lv40: R.Tensor((1, 6, 2, 4), dtype="float32") = R.strided_slice(lv36, (3,), (0,), (4,), (1,), assume_inbound=False)
            lv41: R.Tensor((1, 6, 2, 8), dtype="float32") = R.concat((lv39, lv40), axis=-1)
            lv43: R.Tensor((1, 6, 2, 8), dtype="float32") = R.multiply(lv36, lv37)
            lv44: R.Tensor((1, 6, 2, 8), dtype="float32") = R.multiply(lv41, lv42)
            gv: R.Tensor((1, 6, 2, 8), dtype="float32") = R.add(lv43, lv44)
            R.output(gv)
        return gv

    @R.function(private=True)
    def fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add1(lv45: R.Tensor((1, 2, 2, 8), dtype="float32"), lv37: R.Tensor((1, 1, 2, 8), dtype="float32"), lv42: R.Tensor((1, 1, 2, 8), dtype="float32")) -> R.Tensor((1, 2, 2, 8), dtype="float32"):
        R.func_attr({"Composite": "qcompile.rope", "Primitive": True})
        with R.dataflow():
            lv46: R.Tensor((1, 2, 2, 4), dtype="float32") = R.strided_slice(lv45, (3,), (4,), (9223372036854775807,), (1,), assume_inbound=False)
            lv47: R.Tensor((1, 2, 2, 4), dtype="float32") = R.negative(lv46)
            lv48: R.Tensor((1, 2, 2, 4), dtype="float32") = R.strided_slice(lv45, (3,), (0,), (4,), (1,), assume_inbound=False)
            lv49: R.Tensor((1, 2, 2, 8), dtype="float32") = R.concat((lv47, lv48), axis=-1)
            lv50: R.Tensor((1, 2, 2, 8), dtype="float32") = R.multiply(lv45, lv37)
            lv51: R.Tensor((1, 2, 2, 8), dtype="float32") = R.multiply(lv49, lv42)
            gv: R.Tensor((1, 2, 2, 8), dtype="float32") = R.add(lv50, lv51)
            R.output(gv)
        return gv

    @R.function
    def main(input_ids: R.Tensor((1, 2), dtype="int64"), attention_mask: R.Tensor((1, "past_sequence_length + 2"), dtype="int64"), position_ids: R.Tensor((1, 2), dtype="int64"), past_key_values_0_key: R.Tensor((1, 2, past_sequence_length, 8), dtype="float32"), past_key_values_0_value: R.Tensor((1, 2, past_sequence_length, 8), dtype="float32")) -> R.Tuple(R.Tensor((1, 2, 97), dtype="float32"), R.Tensor((1, 2, "past_sequence_length + 2", 8), dtype="float32"), R.Tensor((1, 2, "past_sequence_length + 2", 8), dtype="float32")):
        R.func_attr({"num_input": 5})
        cls = Module
        with R.dataflow():
            lv2: R.Tensor((1, 2), dtype="bool") = R.less(input_ids, R.const(0, "int64"))
            lv4: R.Tensor((1, 2), dtype="int64") = R.add(input_ids, R.const(97, "int64"))
            lv5: R.Tensor((1, 2), dtype="int64") = R.where(lv2, lv4, input_ids)
            lv6: R.Tensor((1, 2), dtype="float32") = R.astype(position_ids, dtype="float32")
            lv7: R.Tensor((1, 2, 1), dtype="float32") = R.expand_dims(lv6, axis=[2])
            lv8: R.Tensor((1, 2, 4), dtype="float32") = R.multiply(lv7, metadata["ir.GenericConst"][0])
            lv9: R.Tensor((1, 2, 8), dtype="float32") = R.concat((lv8, lv8), axis=-1)
            lv10: R.Tensor((1, 2, 8), dtype="float32") = R.cos(lv9)
            lv11: R.Tensor((1, 2, 8), dtype="float32") = R.sin(lv9)
            lv12: R.Tensor((1, past_sequence_length + 2), dtype="int64") = R.cumsum(attention_mask, axis=-1, dtype=None, exclusive=False)
            lv13: R.Tensor((1, past_sequence_length + 2), dtype="int64") = R.subtract(lv12, R.const(1, "int64"))
            lv14: R.Tensor((1, 1, past_sequence_length + 2), dtype="int64") = R.expand_dims(lv13, axis=[1])
            lv15: R.Tensor((1, 2, 1), dtype="int64") = R.expand_dims(position_ids, axis=[2])
            lv16: R.Tensor((1, 1, past_sequence_length + 2), dtype="int64") = R.expand_dims(attention_mask, axis=[1])
            lv17: R.Tensor((1, 2, past_sequence_length + 2), dtype="bool") = R.less_equal(lv14, lv15)
            lv18: R.Tensor((1, 1, past_sequence_length + 2), dtype="bool") = R.greater(lv16, R.const(0, "int64"))
            lv19: R.Tensor((1, 2, past_sequence_length + 2), dtype="bool") = R.logical_and(lv17, lv18)
            lv20: R.Tensor((1, 2, past_sequence_length + 2), dtype="float32") = R.where(lv19, R.const(0.0, "float32"), R.const(-340282346638528859811704183484516925440.0, "float32"))
            lv21: R.Tensor((1, 6, past_sequence_length + 2), dtype="float32") = R.concat((lv20, lv20, lv20), axis=1)
            lv22: R.Tensor((1, 2, 48), dtype="float32") = R.take(metadata["ir.GenericConst"][1], lv5, axis=0, mode="clip")
            lv29: R.Tensor((1, 2, 48), dtype="float32") = R.nn.rms_norm(lv22, metadata["ir.GenericConst"][2], axes=[-1], epsilon=9.9999997473787516e-06)
            lv30: R.Tensor((1, 2, 48), dtype="float32") = R.matmul(lv29, metadata["ir.GenericConst"][3], out_dtype=None)
            lv31: R.Tensor((1, 2, 6, 8), dtype="float32") = R.reshape(lv30, R.shape([1, 2, 6, 8]))
            lv32: R.Tensor((1, 2, 16), dtype="float32") = R.matmul(lv29, metadata["ir.GenericConst"][4], out_dtype=None)
            lv33: R.Tensor((1, 2, 2, 8), dtype="float32") = R.reshape(lv32, R.shape([1, 2, 2, 8]))
            lv34: R.Tensor((1, 2, 16), dtype="float32") = R.matmul(lv29, metadata["ir.GenericConst"][5], out_dtype=None)
            lv35: R.Tensor((1, 2, 2, 8), dtype="float32") = R.reshape(lv34, R.shape([1, 2, 2, 8]))
            lv36: R.Tensor((1, 6, 2, 8), dtype="float32") = R.permute_dims(lv31, axes=[0, 2, 1, 3])
            lv37: R.Tensor((1, 1, 2, 8), dtype="float32") = R.expand_dims(lv10, axis=[1])
            lv42: R.Tensor((1, 1, 2, 8), dtype="float32") = R.expand_dims(lv11, axis=[1])
            lv: R.Tensor((1, 6, 2, 8), dtype="float32") = cls.fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add(lv36, lv37, lv42)
            lv45: R.Tensor((1, 2, 2, 8), dtype="float32") = R.permute_dims(lv33, axes=[0, 2, 1, 3])
            lv1: R.Tensor((1, 2, 2, 8), dtype="float32") = cls.fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add1(lv45, lv37, lv42)
            lv53: R.Tensor((1, 2, 2, 8), dtype="float32") = R.permute_dims(lv35, axes=[0, 2, 1, 3])
            lv55: R.Tensor((1, 2, past_sequence_length + 2, 8), dtype="float32") = R.concat((past_key_values_0_key, lv1), axis=2)
            lv56: R.Tensor((1, 2, 6, 8), dtype="float32") = R.reshape(lv, R.shape([1, 2, 6, 8]))
            lv57: R.Tensor((1, 2, 8, past_sequence_length + 2), dtype="float32") = R.permute_dims(lv55, axes=[0, 1, 3, 2])
            lv60: R.Tensor((1, 1, 6, past_sequence_length + 2), dtype="float32") = R.expand_dims(lv21, axis=[1])
            lv63: R.Tensor((1, 2, past_sequence_length + 2, 8), dtype="float32") = R.concat((past_key_values_0_value, lv53), axis=2)
            lv3: R.Tensor((1, 2, 6, 8), dtype="float32") = cls.fused_relax_matmul_relax_multiply_relax_add_relax_nn_softmax_relax_matmul(lv56, lv57, R.const(0.35355338454246521, "float32"), lv60, lv63, R.shape([past_sequence_length]))
            lv65: R.Tensor((1, 6, 2, 8), dtype="float32") = R.reshape(lv3, R.shape([1, 6, 2, 8]))
            lv66: R.Tensor((1, 2, 6, 8), dtype="float32") = R.permute_dims(lv65, axes=[0, 2, 1, 3])
            lv67: R.Tensor((1, 2, 48), dtype="float32") = R.reshape(lv66, R.shape([1, 2, 48]))
            lv68: R.Tensor((1, 2, 48), dtype="float32") = R.matmul(lv67, metadata["ir.GenericConst"][6], out_dtype=None)
            lv69: R.Tensor((1, 2, 48), dtype="float32") = R.add(lv22, lv68)
            lv76: R.Tensor((1, 2, 48), dtype="float32") = R.nn.rms_norm(lv69, metadata["ir.GenericConst"][7], axes=[-1], epsilon=9.9999997473787516e-06)
            lv77: R.Tensor((1, 2, 24), dtype="float32") = R.matmul(lv76, metadata["ir.GenericConst"][8], out_dtype=None)
            lv78: R.Tensor((1, 2, 24), dtype="float32") = R.sigmoid(lv77)
            lv79: R.Tensor((1, 2, 24), dtype="float32") = R.multiply(lv77, lv78)
            lv80: R.Tensor((1, 2, 24), dtype="float32") = R.matmul(lv76, metadata["ir.GenericConst"][9], out_dtype=None)
            lv81: R.Tensor((1, 2, 24), dtype="float32") = R.multiply(lv79, lv80)
            lv23 = R.call_tir(cls.fwht24, (lv81, metadata["ir.GenericConst"][10]), out_ty=R.Tensor((1, 2, 24), dtype="float32"))
            lv82: R.Tensor((1, 2, 48), dtype="float32") = R.matmul(lv23, metadata["ir.GenericConst"][11], out_dtype=None)
            lv83: R.Tensor((1, 2, 48), dtype="float32") = R.add(lv69, lv82)
            lv90: R.Tensor((1, 2, 48), dtype="float32") = R.nn.rms_norm(lv83, metadata["ir.GenericConst"][12], axes=[-1], epsilon=9.9999997473787516e-06)
            lv91: R.Tensor((1, 2, 97), dtype="float32") = R.matmul(lv90, metadata["ir.GenericConst"][13], out_dtype=None)
            gv: R.Tuple(R.Tensor((1, 2, 97), dtype="float32"), R.Tensor((1, 2, past_sequence_length + 2, 8), dtype="float32"), R.Tensor((1, 2, past_sequence_length + 2, 8), dtype="float32")) = lv91, lv55, lv63
            gv1: R.Tuple(R.Tensor((1, 2, 97), dtype="float32"), R.Tensor((1, 2, past_sequence_length + 2, 8), dtype="float32"), R.Tensor((1, 2, past_sequence_length + 2, 8), dtype="float32")) = gv
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
# main.lv22 #0: float32[97, 48] max|x| 3.71556 mean 0.0157
# main.lv29 #0: float32[48] max|x| 1 mean 1
# main.lv30 #0: float32[48, 48] max|x| 0.297752 mean 0.000283
# main.lv32 #0: float32[48, 16] max|x| 0.290657 mean 0.00887
# main.lv34 #0: float32[48, 16] max|x| 0.260367 mean 0.00131
# main.lv3 #0: float32[] 0.353553
# main.lv68 #0: float32[48, 48] max|x| 0.279214 mean -0.00208
# main.lv76 #0: float32[48] max|x| 1 mean 1
# main.lv77 #0: float32[48, 24] max|x| 0.271016 mean -0.00183
# main.lv80 #0: float32[48, 24] max|x| 0.289481 mean 0.000207
# main.lv23 #0: float32[12, 12] max|x| 1 mean -0.0556
# main.lv82 #0: float32[24, 48] max|x| 0.372834 mean -0.00329
# main.lv90 #0: float32[48] max|x| 1 mean 1
# main.lv91 #0: float32[48, 97] max|x| 4.23455 mean 0.0176
