# from typing import TypeVar
# from tvm.script import ir as I
# from tvm.script import relax as R

past_sequence_length = TypeVar("past_sequence_length")
@I.ir_module
class Module:
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
            lv: R.Tensor((1, 2, 48), dtype="float32") = R.abs(lv29)
            lv1: R.Tensor((1, 2, 1), dtype="float32") = R.max(lv, axis=[-1], keepdims=True)
            lv3: R.Tensor((1, 2, 1), dtype="float32") = R.divide(lv1, R.const(127.0, "float32"))
            lv23: R.Tensor((1, 2, 1), dtype="float32") = R.maximum(lv3, R.const(9.999999960041972e-13, "float32"))
            lv24: R.Tensor((1, 2, 48), dtype="float32") = R.divide(lv29, lv23)
            lv25: R.Tensor((1, 2, 48), dtype="float32") = R.round(lv24)
            lv26: R.Tensor((1, 2, 48), dtype="float32") = R.clip(lv25, -127, 127)
            lv27: R.Tensor((1, 2, 48), dtype="int8") = R.astype(lv26, dtype="int8")
            lv28: R.Tensor((1, 2, 48), dtype="int32") = R.matmul(lv27, metadata["ir.GenericConst"][3], out_dtype="int32")
            lv30: R.Tensor((1, 2, 48), dtype="float32") = R.astype(lv28, dtype="float32")
            lv31: R.Tensor((1, 2, 48), dtype="float32") = R.multiply(lv30, lv23)
            lv301: R.Tensor((1, 2, 48), dtype="float32") = R.multiply(lv31, metadata["ir.GenericConst"][4])
            lv311: R.Tensor((1, 2, 6, 8), dtype="float32") = R.reshape(lv301, R.shape([1, 2, 6, 8]))
            lv32: R.Tensor((1, 2, 16), dtype="int32") = R.matmul(lv27, metadata["ir.GenericConst"][5], out_dtype="int32")
            lv33: R.Tensor((1, 2, 16), dtype="float32") = R.astype(lv32, dtype="float32")
            lv34: R.Tensor((1, 2, 16), dtype="float32") = R.multiply(lv33, lv23)
            lv321: R.Tensor((1, 2, 16), dtype="float32") = R.multiply(lv34, metadata["ir.GenericConst"][6])
            lv331: R.Tensor((1, 2, 2, 8), dtype="float32") = R.reshape(lv321, R.shape([1, 2, 2, 8]))
            lv35: R.Tensor((1, 2, 16), dtype="int32") = R.matmul(lv27, metadata["ir.GenericConst"][7], out_dtype="int32")
            lv36: R.Tensor((1, 2, 16), dtype="float32") = R.astype(lv35, dtype="float32")
            lv37: R.Tensor((1, 2, 16), dtype="float32") = R.multiply(lv36, lv23)
            lv341: R.Tensor((1, 2, 16), dtype="float32") = R.multiply(lv37, metadata["ir.GenericConst"][8])
            lv351: R.Tensor((1, 2, 2, 8), dtype="float32") = R.reshape(lv341, R.shape([1, 2, 2, 8]))
            lv361: R.Tensor((1, 6, 2, 8), dtype="float32") = R.permute_dims(lv311, axes=[0, 2, 1, 3])
            lv371: R.Tensor((1, 1, 2, 8), dtype="float32") = R.expand_dims(lv10, axis=[1])
            lv42: R.Tensor((1, 1, 2, 8), dtype="float32") = R.expand_dims(lv11, axis=[1])
            lv38: R.Tensor((1, 6, 2, 8), dtype="float32") = cls.fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add(lv361, lv371, lv42)
            lv45: R.Tensor((1, 2, 2, 8), dtype="float32") = R.permute_dims(lv331, axes=[0, 2, 1, 3])
            lv110: R.Tensor((1, 2, 2, 8), dtype="float32") = cls.fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add1(lv45, lv371, lv42)
            lv53: R.Tensor((1, 2, 2, 8), dtype="float32") = R.permute_dims(lv351, axes=[0, 2, 1, 3])
            lv55: R.Tensor((1, 2, past_sequence_length + 2, 8), dtype="float32") = R.concat((past_key_values_0_key, lv110), axis=2)
            lv56: R.Tensor((1, 2, 6, 8), dtype="float32") = R.reshape(lv38, R.shape([1, 2, 6, 8]))
            lv57: R.Tensor((1, 2, 8, past_sequence_length + 2), dtype="float32") = R.permute_dims(lv55, axes=[0, 1, 3, 2])
            lv60: R.Tensor((1, 1, 6, past_sequence_length + 2), dtype="float32") = R.expand_dims(lv21, axis=[1])
            lv63: R.Tensor((1, 2, past_sequence_length + 2, 8), dtype="float32") = R.concat((past_key_values_0_value, lv53), axis=2)
            lv39: R.Tensor((1, 2, 6, 8), dtype="float32") = cls.fused_relax_matmul_relax_multiply_relax_add_relax_nn_softmax_relax_matmul(lv56, lv57, R.const(0.35355338454246521, "float32"), lv60, lv63, R.shape([past_sequence_length]))
            lv65: R.Tensor((1, 6, 2, 8), dtype="float32") = R.reshape(lv39, R.shape([1, 6, 2, 8]))
            lv66: R.Tensor((1, 2, 6, 8), dtype="float32") = R.permute_dims(lv65, axes=[0, 2, 1, 3])
            lv67: R.Tensor((1, 2, 48), dtype="float32") = R.reshape(lv66, R.shape([1, 2, 48]))
            lv40: R.Tensor((1, 2, 48), dtype="float32") = R.abs(lv67)
            lv41: R.Tensor((1, 2, 1), dtype="float32") = R.max(lv40, axis=[-1], keepdims=True)
            lv43: R.Tensor((1, 2, 1), dtype="float32") = R.divide(lv41, R.const(127.0, "float32"))
            lv44: R.Tensor((1, 2, 1), dtype="float32") = R.maximum(lv43, R.const(9.999999960041972e-13, "float32"))
            lv46: R.Tensor((1, 2, 48), dtype="float32") = R.divide(lv67, lv44)
            lv47: R.Tensor((1, 2, 48), dtype="float32") = R.round(lv46)
            lv48: R.Tensor((1, 2, 48), dtype="float32") = R.clip(lv47, -127, 127)
            lv49: R.Tensor((1, 2, 48), dtype="int8") = R.astype(lv48, dtype="int8")
            lv50: R.Tensor((1, 2, 48), dtype="int32") = R.matmul(lv49, metadata["ir.GenericConst"][9], out_dtype="int32")
            lv51: R.Tensor((1, 2, 48), dtype="float32") = R.astype(lv50, dtype="float32")
            lv52: R.Tensor((1, 2, 48), dtype="float32") = R.multiply(lv51, lv44)
            lv68: R.Tensor((1, 2, 48), dtype="float32") = R.multiply(lv52, metadata["ir.GenericConst"][10])
            lv69: R.Tensor((1, 2, 48), dtype="float32") = R.add(lv22, lv68)
            lv76: R.Tensor((1, 2, 48), dtype="float32") = R.nn.rms_norm(lv69, metadata["ir.GenericConst"][11], axes=[-1], epsilon=9.9999997473787516e-06)
            lv54: R.Tensor((1, 2, 48), dtype="float32") = R.abs(lv76)
            lv58: R.Tensor((1, 2, 1), dtype="float32") = R.max(lv54, axis=[-1], keepdims=True)
            lv59: R.Tensor((1, 2, 1), dtype="float32") = R.divide(lv58, R.const(127.0, "float32"))
            lv61: R.Tensor((1, 2, 1), dtype="float32") = R.maximum(lv59, R.const(9.999999960041972e-13, "float32"))
            lv62: R.Tensor((1, 2, 48), dtype="float32") = R.divide(lv76, lv61)
            lv64: R.Tensor((1, 2, 48), dtype="float32") = R.round(lv62)
            lv70: R.Tensor((1, 2, 48), dtype="float32") = R.clip(lv64, -127, 127)
            lv71: R.Tensor((1, 2, 48), dtype="int8") = R.astype(lv70, dtype="int8")
            lv72: R.Tensor((1, 2, 24), dtype="int32") = R.matmul(lv71, metadata["ir.GenericConst"][12], out_dtype="int32")
            lv73: R.Tensor((1, 2, 24), dtype="float32") = R.astype(lv72, dtype="float32")
            lv74: R.Tensor((1, 2, 24), dtype="float32") = R.multiply(lv73, lv61)
            lv77: R.Tensor((1, 2, 24), dtype="float32") = R.multiply(lv74, metadata["ir.GenericConst"][13])
            lv78: R.Tensor((1, 2, 24), dtype="float32") = R.sigmoid(lv77)
            lv79: R.Tensor((1, 2, 24), dtype="float32") = R.multiply(lv77, lv78)
            lv75: R.Tensor((1, 2, 24), dtype="int32") = R.matmul(lv71, metadata["ir.GenericConst"][14], out_dtype="int32")
            lv80: R.Tensor((1, 2, 24), dtype="float32") = R.astype(lv75, dtype="float32")
            lv81: R.Tensor((1, 2, 24), dtype="float32") = R.multiply(lv80, lv61)
            lv801: R.Tensor((1, 2, 24), dtype="float32") = R.multiply(lv81, metadata["ir.GenericConst"][15])
            lv811: R.Tensor((1, 2, 24), dtype="float32") = R.multiply(lv79, lv801)
            lv82: R.Tensor((1, 2, 24), dtype="float32") = R.abs(lv811)
            lv83: R.Tensor((1, 2, 1), dtype="float32") = R.max(lv82, axis=[-1], keepdims=True)
            lv84: R.Tensor((1, 2, 1), dtype="float32") = R.divide(lv83, R.const(127.0, "float32"))
            lv85: R.Tensor((1, 2, 1), dtype="float32") = R.maximum(lv84, R.const(9.999999960041972e-13, "float32"))
            lv86: R.Tensor((1, 2, 24), dtype="float32") = R.divide(lv811, lv85)
            lv87: R.Tensor((1, 2, 24), dtype="float32") = R.round(lv86)
            lv88: R.Tensor((1, 2, 24), dtype="float32") = R.clip(lv87, -127, 127)
            lv89: R.Tensor((1, 2, 24), dtype="int8") = R.astype(lv88, dtype="int8")
            lv90: R.Tensor((1, 2, 48), dtype="int32") = R.matmul(lv89, metadata["ir.GenericConst"][16], out_dtype="int32")
            lv91: R.Tensor((1, 2, 48), dtype="float32") = R.astype(lv90, dtype="float32")
            lv92: R.Tensor((1, 2, 48), dtype="float32") = R.multiply(lv91, lv85)
            lv821: R.Tensor((1, 2, 48), dtype="float32") = R.multiply(lv92, metadata["ir.GenericConst"][17])
            lv831: R.Tensor((1, 2, 48), dtype="float32") = R.add(lv69, lv821)
            lv901: R.Tensor((1, 2, 48), dtype="float32") = R.nn.rms_norm(lv831, metadata["ir.GenericConst"][18], axes=[-1], epsilon=9.9999997473787516e-06)
            lv911: R.Tensor((1, 2, 97), dtype="float32") = R.matmul(lv901, metadata["ir.GenericConst"][19], out_dtype=None)
            gv: R.Tuple(R.Tensor((1, 2, 97), dtype="float32"), R.Tensor((1, 2, past_sequence_length + 2, 8), dtype="float32"), R.Tensor((1, 2, past_sequence_length + 2, 8), dtype="float32")) = lv911, lv55, lv63
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
# main.lv22 #0: float32[97, 48] max|x| 4.10149 mean -0.0148
# main.lv29 #0: float32[48] max|x| 1.902 mean 0.993
# main.lv3 #0: float32[] 127
# main.lv23 #0: float32[] 1e-12
# main.lv28 #0: int8[48, 48] sha256:cc083e11bf5a
# main.lv301 #0: float32[48] max|x| 0.00113618 mean 0.00111
# main.lv32 #0: int8[48, 16] sha256:f1ccb217a5ee
# main.lv321 #0: float32[16] max|x| 0.00113511 mean 0.00112
# main.lv35 #0: int8[48, 16] sha256:98602d3cf4c8
# main.lv341 #0: float32[16] max|x| 0.00113625 mean 0.00112
# main.lv39 #0: float32[] 0.353553
# main.lv43 #0: float32[] 127
# main.lv44 #0: float32[] 1e-12
# main.lv50 #0: int8[48, 48] sha256:2247e06ece34
# main.lv68 #0: float32[48] max|x| 0.00113639 mean 0.00112
# main.lv76 #0: float32[48] max|x| 1.58753 mean 1
# main.lv59 #0: float32[] 127
# main.lv61 #0: float32[] 1e-12
# main.lv72 #0: int8[48, 24] sha256:cfb7d54fa76b
# main.lv77 #0: float32[24] max|x| 0.00113583 mean 0.00111
# main.lv75 #0: int8[48, 24] sha256:d57de0f520e1
# main.lv801 #0: float32[24] max|x| 0.00113531 mean 0.00112
# main.lv84 #0: float32[] 127
# main.lv85 #0: float32[] 1e-12
# main.lv90 #0: int8[24, 48] sha256:67229bc06546
# main.lv821 #0: float32[48] max|x| 0.00160612 mean 0.00155
# main.lv901 #0: float32[48] max|x| 1.7336 mean 1.02
# main.lv911 #0: float32[48, 97] max|x| 4.10149 mean -0.0148
