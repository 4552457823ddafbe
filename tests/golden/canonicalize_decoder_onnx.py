# from tvm.script import ir as I
# from tvm.script import relax as R

@I.ir_module
class Module:
    @R.function(private=True)
    def fused_relax_matmul_relax_divide_relax_add_relax_nn_softmax_relax_matmul(lv48: R.Tensor((1, 4, 8, 8), dtype="float32"), lv49: R.Tensor((1, 4, 8, 8), dtype="float32"), param_0: R.Tensor((), dtype="float32"), param_1: R.Tensor((8, 8), dtype="float32"), lv54: R.Tensor((1, 4, 8, 8), dtype="float32")) -> R.Tensor((1, 4, 8, 8), dtype="float32"):
        R.func_attr({"Composite": "qcompile.attention", "Primitive": True})
        with R.dataflow():
            lv50: R.Tensor((1, 4, 8, 8), dtype="float32") = R.matmul(lv48, lv49, out_dtype=None)
            lv51: R.Tensor((1, 4, 8, 8), dtype="float32") = R.divide(lv50, param_0)
            lv52: R.Tensor((1, 4, 8, 8), dtype="float32") = R.add(lv51, param_1)
            lv53: R.Tensor((1, 4, 8, 8), dtype="float32") = R.nn.softmax(lv52, axis=-1)
            gv: R.Tensor((1, 4, 8, 8), dtype="float32") = R.matmul(lv53, lv54, out_dtype=None)
            R.output(gv)
        return gv

    @R.function(private=True)
    def fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add(lv20: R.Tensor((1, 4, 8, 4), dtype="float32"), lv21: R.Tensor((1, 1, 8, 4), dtype="float32"), lv26: R.Tensor((1, 1, 8, 4), dtype="float32")) -> R.Tensor((1, 4, 8, 4), dtype="float32"):
        R.func_attr({"Composite": "qcompile.rope", "Primitive": True})
        with R.dataflow():
            lv22: R.Tensor((1, 4, 8, 2), dtype="float32") = R.strided_slice(lv20, (3,), (2,), (9223372036854775807,), (1,), assume_inbound=False)
            lv23: R.Tensor((1, 4, 8, 2), dtype="float32") = R.negative(lv22)
            lv24: R.Tensor((1, 4, 8, 2), dtype="float32") = R.strided_slice(lv20, (3,), (0,), (2,), (1,), assume_inbound=False)
            lv25: R.Tensor((1, 4, 8, 4), dtype="float32") = R.concat((lv23, lv24), axis=-1)
            lv27: R.Tensor((1, 4, 8, 4), dtype="float32") = R.multiply(lv20, lv21)
            lv28: R.Tensor((1, 4, 8, 4), dtype="float32") = R.multiply(lv25, lv26)
            gv: R.Tensor((1, 4, 8, 4), dtype="float32") = R.add(lv27, lv28)
            R.output(gv)
        return gv

    @R.function(private=True)
    def fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add1(lv32: R.Tensor((1, 2, 8, 4), dtype="float32"), lv21: R.Tensor((1, 1, 8, 4), dtype="float32"), lv26: R.Tensor((1, 1, 8, 4), dtype="float32")) -> R.Tensor((1, 2, 8, 4), dtype="float32"):
        R.func_attr({"Composite": "qcompile.rope", "Primitive": True})
        with R.dataflow():
            lv33: R.Tensor((1, 2, 8, 2), dtype="float32") = R.strided_slice(lv32, (3,), (2,), (9223372036854775807,), (1,), assume_inbound=False)
            lv34: R.Tensor((1, 2, 8, 2), dtype="float32") = R.negative(lv33)
            lv35: R.Tensor((1, 2, 8, 2), dtype="float32") = R.strided_slice(lv32, (3,), (0,), (2,), (1,), assume_inbound=False)
            lv36: R.Tensor((1, 2, 8, 4), dtype="float32") = R.concat((lv34, lv35), axis=-1)
            lv37: R.Tensor((1, 2, 8, 4), dtype="float32") = R.multiply(lv32, lv21)
            lv38: R.Tensor((1, 2, 8, 4), dtype="float32") = R.multiply(lv36, lv26)
            gv: R.Tensor((1, 2, 8, 4), dtype="float32") = R.add(lv37, lv38)
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 8, 32), dtype="float32"), positions: R.Tensor((1, 8), dtype="int64")) -> R.Tensor((1, 8, 32), dtype="float32"):
        R.func_attr({"num_input": 2})
        cls = Module
        with R.dataflow():
            lv: R.Tensor((1, 8, 1), dtype="int64") = R.expand_dims(positions, axis=[2])
            lv1: R.Tensor((1, 8, 1), dtype="float32") = R.astype(lv, dtype="float32")
            lv2: R.Tensor((1, 8, 2), dtype="float32") = R.multiply(lv1, metadata["ir.GenericConst"][0])
            lv3: R.Tensor((1, 8, 4), dtype="float32") = R.concat((lv2, lv2), axis=-1)
            lv4: R.Tensor((1, 8, 4), dtype="float32") = R.cos(lv3)
            lv5: R.Tensor((1, 8, 4), dtype="float32") = R.sin(lv3)
            lv12: R.Tensor((1, 8, 32), dtype="float32") = R.nn.rms_norm(x, metadata["ir.GenericConst"][1], axes=[-1], epsilon=9.9999999747524271e-07)
            lv13: R.Tensor((1, 8, 32), dtype="float32") = R.matmul(lv12, metadata["ir.GenericConst"][2], out_dtype=None)
            lv14: R.Tensor((1, 8, 4, 8), dtype="float32") = R.reshape(lv13, R.shape([1, 8, 4, 8]))
            lv15: R.Tensor((1, 8, 16), dtype="float32") = R.matmul(lv12, metadata["ir.GenericConst"][3], out_dtype=None)
            lv16: R.Tensor((1, 8, 2, 8), dtype="float32") = R.reshape(lv15, R.shape([1, 8, 2, 8]))
            lv17: R.Tensor((1, 8, 16), dtype="float32") = R.matmul(lv12, metadata["ir.GenericConst"][4], out_dtype=None)
            lv18: R.Tensor((1, 8, 2, 8), dtype="float32") = R.reshape(lv17, R.shape([1, 8, 2, 8]))
            lv19: R.Tensor((1, 4, 8, 8), dtype="float32") = R.permute_dims(lv14, axes=[0, 2, 1, 3])
            lv20: R.Tensor((1, 4, 8, 4), dtype="float32") = R.strided_slice(lv19, (3,), (0,), (4,), (1,), assume_inbound=False)
            lv21: R.Tensor((1, 1, 8, 4), dtype="float32") = R.expand_dims(lv4, axis=[1])
            lv26: R.Tensor((1, 1, 8, 4), dtype="float32") = R.expand_dims(lv5, axis=[1])
            lv_1: R.Tensor((1, 4, 8, 4), dtype="float32") = cls.fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add(lv20, lv21, lv26)
            lv30: R.Tensor((1, 4, 8, 4), dtype="float32") = R.strided_slice(lv19, (3,), (4,), (9223372036854775807,), (1,), assume_inbound=False)
            lv31: R.Tensor((1, 2, 8, 8), dtype="float32") = R.permute_dims(lv16, axes=[0, 2, 1, 3])
            lv32: R.Tensor((1, 2, 8, 4), dtype="float32") = R.strided_slice(lv31, (3,), (0,), (4,), (1,), assume_inbound=False)
            lv1_1: R.Tensor((1, 2, 8, 4), dtype="float32") = cls.fused_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_multiply_relax_add1(lv32, lv21, lv26)
            lv40: R.Tensor((1, 2, 8, 4), dtype="float32") = R.strided_slice(lv31, (3,), (4,), (9223372036854775807,), (1,), assume_inbound=False)
            lv41: R.Tensor((1, 2, 8, 8), dtype="float32") = R.concat((lv1_1, lv40), axis=-1)
            lv42: R.Tensor((1, 2, 1, 8, 8), dtype="float32") = R.expand_dims(lv41, axis=[2])
            lv43: R.Tensor((1, 2, 2, 8, 8), dtype="float32") = R.broadcast_to(lv42, R.shape([1, 2, 2, 8, 8]))
            lv44: R.Tensor((1, 2, 8, 8), dtype="float32") = R.permute_dims(lv18, axes=[0, 2, 1, 3])
            lv45: R.Tensor((1, 2, 1, 8, 8), dtype="float32") = R.expand_dims(lv44, axis=[2])
            lv46: R.Tensor((1, 2, 2, 8, 8), dtype="float32") = R.broadcast_to(lv45, R.shape([1, 2, 2, 8, 8]))
            lv47: R.Tensor((1, 4, 8, 8), dtype="float32") = R.reshape(lv43, R.shape([1, 4, 8, 8]))
            lv48: R.Tensor((1, 4, 8, 8), dtype="float32") = R.concat((lv_1, lv30), axis=-1)
            lv49: R.Tensor((1, 4, 8, 8), dtype="float32") = R.permute_dims(lv47, axes=[0, 1, 3, 2])
            lv54: R.Tensor((1, 4, 8, 8), dtype="float32") = R.reshape(lv46, R.shape([1, 4, 8, 8]))
            lv_2: R.Tensor((1, 4, 8, 8), dtype="float32") = cls.fused_relax_matmul_relax_divide_relax_add_relax_nn_softmax_relax_matmul(lv48, lv49, R.const(2.8284270763397217, "float32"), metadata["ir.GenericConst"][5], lv54)
            lv56: R.Tensor((1, 8, 4, 8), dtype="float32") = R.permute_dims(lv_2, axes=[0, 2, 1, 3])
            lv57: R.Tensor((1, 8, 32), dtype="float32") = R.reshape(lv56, R.shape([1, 8, 32]))
            lv58: R.Tensor((1, 8, 32), dtype="float32") = R.matmul(lv57, metadata["ir.GenericConst"][6], out_dtype=None)
            lv59: R.Tensor((1, 8, 32), dtype="float32") = R.add(x, lv58)
            lv66: R.Tensor((1, 8, 32), dtype="float32") = R.nn.rms_norm(lv59, metadata["ir.GenericConst"][7], axes=[-1], epsilon=9.9999999747524271e-07)
            lv67: R.Tensor((1, 8, 64), dtype="float32") = R.matmul(lv66, metadata["ir.GenericConst"][8], out_dtype=None)
            lv68: R.Tensor((1, 8, 64), dtype="float32") = R.sigmoid(lv67)
            lv69: R.Tensor((1, 8, 64), dtype="float32") = R.multiply(lv67, lv68)
            lv70: R.Tensor((1, 8, 64), dtype="float32") = R.matmul(lv66, metadata["ir.GenericConst"][9], out_dtype=None)
            lv71: R.Tensor((1, 8, 64), dtype="float32") = R.multiply(lv69, lv70)
            lv72: R.Tensor((1, 8, 32), dtype="float32") = R.matmul(lv71, metadata["ir.GenericConst"][10], out_dtype=None)
            gv: R.Tensor((1, 8, 32), dtype="float32") = R.add(lv59, lv72)
            R.output(gv)
        return gv

# Metadata omitted. Use show_meta=True in script() method to show it.
# constants
# main.lv2 #0: float32[2] max|x| 1 mean 0.505
# main.lv12 #0: float32[32] max|x| 1.17516 mean 0.964
# main.lv13 #0: float32[32, 32] max|x| 0.176749 mean -7.34e-05
# main.lv15 #0: float32[32, 16] max|x| 0.176624 mean -0.00342
# main.lv17 #0: float32[32, 16] max|x| 0.17597 mean 0.00258
# main.lv #0: float32[] 2.82843
# main.lv #1: float32[8, 8] max|x| inf mean -inf
# main.lv58 #0: float32[32, 32] max|x| 0.176712 mean -0.00157
# main.lv66 #0: float32[32] max|x| 1.28875 mean 1
# main.lv67 #0: float32[32, 64] max|x| 0.176724 mean -0.00361
# main.lv70 #0: float32[32, 64] max|x| 0.176691 mean 0.00242
# main.lv72 #0: float32[64, 32] max|x| 0.124986 mean 0.00257
