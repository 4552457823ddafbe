# from tvm.script import ir as I
# from tvm.script import relax as R

@I.ir_module
class Module:
    @R.function(private=True)
    def fused_relax_matmul_relax_divide_relax_add_relax_nn_softmax_relax_matmul(lv41: R.Tensor((1, 4, 8, 8), dtype="float32"), lv58: R.Tensor((1, 4, 8, 8), dtype="float32"), param_0: R.Tensor((), dtype="float32"), param_1: R.Tensor((8, 8), dtype="float32"), lv4: R.Tensor((1, 4, 8, 8), dtype="float32")) -> R.Tensor((1, 4, 8, 8), dtype="float32"):
        R.func_attr({"Composite": "qcompile.attention", "Primitive": True})
        with R.dataflow():
            lv64: R.Tensor((1, 4, 8, 8), dtype="float32") = R.matmul(lv41, lv58, out_dtype=None)
            lv65: R.Tensor((1, 4, 8, 8), dtype="float32") = R.divide(lv64, param_0)
            lv75: R.Tensor((1, 4, 8, 8), dtype="float32") = R.add(lv65, param_1)
            lv76: R.Tensor((1, 4, 8, 8), dtype="float32") = R.nn.softmax(lv75, axis=-1)
            gv: R.Tensor((1, 4, 8, 8), dtype="float32") = R.matmul(lv76, lv4, out_dtype=None)
            R.output(gv)
        return gv

    @R.function(private=True)
    def fused_relax_multiply_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_add(lv32: R.Tensor((1, 4, 8, 4), dtype="float32"), lv5: R.Tensor((1, 1, 8, 4), dtype="float32"), lv7: R.Tensor((1, 1, 8, 4), dtype="float32")) -> R.Tensor((1, 4, 8, 4), dtype="float32"):
        R.func_attr({"Composite": "qcompile.rope", "Primitive": True})
        with R.dataflow():
            lv34: R.Tensor((1, 4, 8, 4), dtype="float32") = R.multiply(lv32, lv5)
            lv35: R.Tensor((1, 4, 8, 2), dtype="float32") = R.strided_slice(lv32, (3,), (2,), (9223372036854775807,), (1,), assume_inbound=False)
            lv36: R.Tensor((1, 4, 8, 2), dtype="float32") = R.negative(lv35)
            lv37: R.Tensor((1, 4, 8, 2), dtype="float32") = R.strided_slice(lv32, (3,), (0,), (2,), (1,), assume_inbound=False)
            lv38: R.Tensor((1, 4, 8, 4), dtype="float32") = R.concat((lv36, lv37), axis=-1)
            lv39: R.Tensor((1, 4, 8, 4), dtype="float32") = R.multiply(lv38, lv7)
            gv: R.Tensor((1, 4, 8, 4), dtype="float32") = R.add(lv34, lv39)
            R.output(gv)
        return gv

    @R.function(private=True)
    def fused_relax_multiply_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_add1(lv42: R.Tensor((1, 2, 8, 4), dtype="float32"), lv5: R.Tensor((1, 1, 8, 4), dtype="float32"), lv7: R.Tensor((1, 1, 8, 4), dtype="float32")) -> R.Tensor((1, 2, 8, 4), dtype="float32"):
        R.func_attr({"Composite": "qcompile.rope", "Primitive": True})
        with R.dataflow():
            lv44: R.Tensor((1, 2, 8, 4), dtype="float32") = R.multiply(lv42, lv5)
            lv45: R.Tensor((1, 2, 8, 2), dtype="float32") = R.strided_slice(lv42, (3,), (2,), (9223372036854775807,), (1,), assume_inbound=False)
            lv46: R.Tensor((1, 2, 8, 2), dtype="float32") = R.negative(lv45)
            lv47: R.Tensor((1, 2, 8, 2), dtype="float32") = R.strided_slice(lv42, (3,), (0,), (2,), (1,), assume_inbound=False)
            lv48: R.Tensor((1, 2, 8, 4), dtype="float32") = R.concat((lv46, lv47), axis=-1)
            lv49: R.Tensor((1, 2, 8, 4), dtype="float32") = R.multiply(lv48, lv7)
            gv: R.Tensor((1, 2, 8, 4), dtype="float32") = R.add(lv44, lv49)
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 8, 32), dtype="float32"), positions: R.Tensor((1, 8), dtype="int64")) -> R.Tensor((1, 8, 32), dtype="float32"):
        cls = Module
        with R.dataflow():
            lv: R.Tensor((1, 8, 1), dtype="int64") = R.expand_dims(positions, axis=[2])
            lv1: R.Tensor((1, 8, 1), dtype="float32") = R.astype(lv, dtype="float32")
            lv2: R.Tensor((1, 8, 2), dtype="float32") = R.multiply(lv1, metadata["ir.GenericConst"][0])
            lv3: R.Tensor((1, 8, 4), dtype="float32") = R.concat((lv2, lv2), axis=-1)
            lv4: R.Tensor((1, 8, 4), dtype="float32") = R.cos(lv3)
            lv5: R.Tensor((1, 1, 8, 4), dtype="float32") = R.expand_dims(lv4, axis=[1])
            lv6: R.Tensor((1, 8, 4), dtype="float32") = R.sin(lv3)
            lv7: R.Tensor((1, 1, 8, 4), dtype="float32") = R.expand_dims(lv6, axis=[1])
            lv13: R.Tensor((1, 8, 32), dtype="float32") = R.nn.rms_norm(x, metadata["ir.GenericConst"][1], axes=[-1], epsilon=9.9999999747524271e-07)
            lv15: R.Tensor((8, 32), dtype="float32") = R.reshape(lv13, R.shape([8, 32]))
            lv16: R.Tensor((8, 32), dtype="float32") = R.matmul(lv15, metadata["ir.GenericConst"][2], out_dtype="float32")
            lv18: R.Tensor((1, 8, 4, 8), dtype="float32") = R.reshape(lv16, R.shape([1, 8, 4, 8]))
            lv19: R.Tensor((1, 4, 8, 8), dtype="float32") = R.permute_dims(lv18, axes=[0, 2, 1, 3])
            lv22: R.Tensor((8, 16), dtype="float32") = R.matmul(lv15, metadata["ir.GenericConst"][3], out_dtype="float32")
            lv24: R.Tensor((1, 8, 2, 8), dtype="float32") = R.reshape(lv22, R.shape([1, 8, 2, 8]))
            lv25: R.Tensor((1, 2, 8, 8), dtype="float32") = R.permute_dims(lv24, axes=[0, 2, 1, 3])
            lv28: R.Tensor((8, 16), dtype="float32") = R.matmul(lv15, metadata["ir.GenericConst"][4], out_dtype="float32")
            lv30: R.Tensor((1, 8, 2, 8), dtype="float32") = R.reshape(lv28, R.shape([1, 8, 2, 8]))
            lv31: R.Tensor((1, 2, 8, 8), dtype="float32") = R.permute_dims(lv30, axes=[0, 2, 1, 3])
            lv32: R.Tensor((1, 4, 8, 4), dtype="float32") = R.strided_slice(lv19, (3,), (0,), (4,), (1,), assume_inbound=False)
            lv33: R.Tensor((1, 4, 8, 4), dtype="float32") = R.strided_slice(lv19, (3,), (4,), (9223372036854775807,), (1,), assume_inbound=False)
            lv_1: R.Tensor((1, 4, 8, 4), dtype="float32") = cls.fused_relax_multiply_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_add(lv32, lv5, lv7)
            lv41: R.Tensor((1, 4, 8, 8), dtype="float32") = R.concat((lv_1, lv33), axis=-1)
            lv42: R.Tensor((1, 2, 8, 4), dtype="float32") = R.strided_slice(lv25, (3,), (0,), (4,), (1,), assume_inbound=False)
            lv43: R.Tensor((1, 2, 8, 4), dtype="float32") = R.strided_slice(lv25, (3,), (4,), (9223372036854775807,), (1,), assume_inbound=False)
            lv1_1: R.Tensor((1, 2, 8, 4), dtype="float32") = cls.fused_relax_multiply_relax_strided_slice_relax_negative_relax_strided_slice_relax_concat_relax_multiply_relax_add1(lv42, lv5, lv7)
            lv51: R.Tensor((1, 2, 8, 8), dtype="float32") = R.concat((lv1_1, lv43), axis=-1)
            lv52: R.Tensor((1, 2, 1, 8, 8), dtype="float32") = R.expand_dims(lv51, axis=[2])
            lv53: R.Tensor((1, 2, 2, 8, 8), dtype="float32") = R.broadcast_to(lv52, R.shape([1, 2, 2, 8, 8]))
            lv54: R.Tensor((1, 4, 8, 8), dtype="float32") = R.reshape(lv53, R.shape([1, 4, 8, 8]))
            lv55: R.Tensor((1, 2, 1, 8, 8), dtype="float32") = R.expand_dims(lv31, axis=[2])
            lv56: R.Tensor((1, 2, 2, 8, 8), dtype="float32") = R.broadcast_to(lv55, R.shape([1, 2, 2, 8, 8]))
            lv58: R.Tensor((1, 4, 8, 8), dtype="float32") = R.permute_dims(lv54, axes=[0, 1, 3, 2])
            lv4_1: R.Tensor((1, 4, 8, 8), dtype="float32") = R.reshape(lv56, R.shape([1, 4, 8, 8]))
            lv_2: R.Tensor((1, 4, 8, 8), dtype="float32") = cls.fused_relax_matmul_relax_divide_relax_add_relax_nn_softmax_relax_matmul(lv41, lv58, R.const(2.8284270763397217, "float32"), metadata["ir.GenericConst"][5], lv4_1)
            lv83: R.Tensor((1, 8, 4, 8), dtype="float32") = R.permute_dims(lv_2, axes=[0, 2, 1, 3])
            lv86: R.Tensor((8, 32), dtype="float32") = R.reshape(lv83, R.shape([8, 32]))
            lv87: R.Tensor((8, 32), dtype="float32") = R.matmul(lv86, metadata["ir.GenericConst"][6], out_dtype="float32")
            lv88: R.Tensor((1, 8, 32), dtype="float32") = R.reshape(lv87, R.shape([1, 8, 32]))
            lv89: R.Tensor((1, 8, 32), dtype="float32") = R.add(x, lv88)
            lv95: R.Tensor((1, 8, 32), dtype="float32") = R.nn.rms_norm(lv89, metadata["ir.GenericConst"][7], axes=[-1], epsilon=9.9999999747524271e-07)
            lv99: R.Tensor((1, 8, 64), dtype="float32") = R.matmul(lv95, metadata["ir.GenericConst"][8], out_dtype=None)
            lv100: R.Tensor((1, 8, 64), dtype="float32") = R.sigmoid(lv99)
            lv101: R.Tensor((1, 8, 64), dtype="float32") = R.multiply(lv99, lv100)
            lv105: R.Tensor((1, 8, 64), dtype="float32") = R.matmul(lv95, metadata["ir.GenericConst"][9], out_dtype=None)
            lv106: R.Tensor((1, 8, 64), dtype="float32") = R.multiply(lv101, lv105)
            lv110: R.Tensor((1, 8, 32), dtype="float32") = R.matmul(lv106, metadata["ir.GenericConst"][10], out_dtype=None)
            gv: R.Tensor((1, 8, 32), dtype="float32") = R.add(lv89, lv110)
            R.output(gv)
        return gv

# Metadata omitted. Use show_meta=True in script() method to show it.
# constants
# main.lv2 #0: float32[2] max|x| 1 mean 0.505
# main.lv13 #0: float32[32] max|x| 1.17516 mean 0.964
# main.lv16 #0: float32[32, 32] max|x| 0.176749 mean -7.34e-05
# main.lv22 #0: float32[32, 16] max|x| 0.176624 mean -0.00342
# main.lv28 #0: float32[32, 16] max|x| 0.17597 mean 0.00258
# main.lv #0: float32[] 2.82843
# main.lv #1: float32[8, 8] max|x| inf mean -inf
# main.lv87 #0: float32[32, 32] max|x| 0.176712 mean -0.00157
# main.lv95 #0: float32[32] max|x| 1.28875 mean 1
# main.lv99 #0: float32[32, 64] max|x| 0.176724 mean -0.00361
# main.lv105 #0: float32[32, 64] max|x| 0.176691 mean 0.00242
# main.lv110 #0: float32[64, 32] max|x| 0.124986 mean 0.00257
