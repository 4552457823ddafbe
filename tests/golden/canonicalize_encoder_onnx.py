# from tvm.script import ir as I
# from tvm.script import relax as R

@I.ir_module
class Module:
    @R.function(private=True)
    def fused_relax_matmul_relax_divide_relax_add_relax_nn_softmax_relax_matmul(lv9: R.Tensor((1, 4, 8, 8), dtype="float32"), lv10: R.Tensor((1, 4, 8, 8), dtype="float32"), param_0: R.Tensor((), dtype="float32"), lv16: R.Tensor((1, 1, 1, 8), dtype="float32"), lv19: R.Tensor((1, 4, 8, 8), dtype="float32")) -> R.Tensor((1, 4, 8, 8), dtype="float32"):
        R.func_attr({"Composite": "qcompile.attention", "Primitive": True})
        with R.dataflow():
            lv11: R.Tensor((1, 4, 8, 8), dtype="float32") = R.matmul(lv9, lv10, out_dtype=None)
            lv15: R.Tensor((1, 4, 8, 8), dtype="float32") = R.divide(lv11, param_0)
            lv17: R.Tensor((1, 4, 8, 8), dtype="float32") = R.add(lv15, lv16)
            lv18: R.Tensor((1, 4, 8, 8), dtype="float32") = R.nn.softmax(lv17, axis=-1)
            gv: R.Tensor((1, 4, 8, 8), dtype="float32") = R.matmul(lv18, lv19, out_dtype=None)
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 8, 32), dtype="float32"), mask: R.Tensor((1, 8), dtype="float32")) -> R.Tensor((1, 8, 32), dtype="float32"):
        R.func_attr({"num_input": 2})
        cls = Module
        with R.dataflow():
            lv: R.Tensor((1, 8, 32), dtype="float32") = R.matmul(x, metadata["ir.GenericConst"][0], out_dtype=None)
            lv1: R.Tensor((1, 8, 32), dtype="float32") = R.add(lv, metadata["ir.GenericConst"][1])
            lv2: R.Tensor((1, 8, 4, 8), dtype="float32") = R.reshape(lv1, R.shape([1, 8, 4, 8]))
            lv3: R.Tensor((1, 8, 32), dtype="float32") = R.matmul(x, metadata["ir.GenericConst"][2], out_dtype=None)
            lv4: R.Tensor((1, 8, 32), dtype="float32") = R.add(lv3, metadata["ir.GenericConst"][3])
            lv5: R.Tensor((1, 8, 32), dtype="float32") = R.matmul(x, metadata["ir.GenericConst"][4], out_dtype=None)
            lv6: R.Tensor((1, 8, 32), dtype="float32") = R.add(lv5, metadata["ir.GenericConst"][5])
            lv7: R.Tensor((1, 8, 4, 8), dtype="float32") = R.reshape(lv6, R.shape([1, 8, 4, 8]))
            lv8: R.Tensor((1, 8, 4, 8), dtype="float32") = R.reshape(lv4, R.shape([1, 8, 4, 8]))
            lv9: R.Tensor((1, 4, 8, 8), dtype="float32") = R.permute_dims(lv2, axes=[0, 2, 1, 3])
            lv10: R.Tensor((1, 4, 8, 8), dtype="float32") = R.permute_dims(lv8, axes=[0, 2, 3, 1])
            lv12: R.Tensor((1, 1, 8), dtype="float32") = R.expand_dims(mask, axis=[1])
            lv13: R.Tensor((1, 1, 1, 8), dtype="float32") = R.expand_dims(lv12, axis=[2])
            lv14: R.Tensor((1, 1, 1, 8), dtype="float32") = R.subtract(R.const(1.0, "float32"), lv13)
            lv16: R.Tensor((1, 1, 1, 8), dtype="float32") = R.multiply(lv14, R.const(-10000.0, "float32"))
            lv19: R.Tensor((1, 4, 8, 8), dtype="float32") = R.permute_dims(lv7, axes=[0, 2, 1, 3])
            lv_1: R.Tensor((1, 4, 8, 8), dtype="float32") = cls.fused_relax_matmul_relax_divide_relax_add_relax_nn_softmax_relax_matmul(lv9, lv10, R.const(2.8284270763397217, "float32"), lv16, lv19)
            lv21: R.Tensor((1, 8, 4, 8), dtype="float32") = R.permute_dims(lv_1, axes=[0, 2, 1, 3])
            lv22: R.Tensor((1, 8, 32), dtype="float32") = R.reshape(lv21, R.shape([1, 8, 32]))
            lv23: R.Tensor((1, 8, 32), dtype="float32") = R.matmul(lv22, metadata["ir.GenericConst"][6], out_dtype=None)
            lv24: R.Tensor((1, 8, 32), dtype="float32") = R.add(lv23, metadata["ir.GenericConst"][7])
            lv25: R.Tensor((1, 8, 32), dtype="float32") = R.add(x, lv24)
            lv34: R.Tensor((1, 8, 32), dtype="float32") = R.nn.layer_norm(lv25, metadata["ir.GenericConst"][8], metadata["ir.GenericConst"][9], axes=[-1], epsilon=9.9999997473787516e-06, center=True, scale=True)
            lv35: R.Tensor((1, 8, 128), dtype="float32") = R.matmul(lv34, metadata["ir.GenericConst"][10], out_dtype=None)
            lv36: R.Tensor((1, 8, 128), dtype="float32") = R.add(lv35, metadata["ir.GenericConst"][11])
            lv41: R.Tensor((1, 8, 128), dtype="float32") = R.nn.gelu(lv36)
            lv42: R.Tensor((1, 8, 32), dtype="float32") = R.matmul(lv41, metadata["ir.GenericConst"][12], out_dtype=None)
            lv43: R.Tensor((1, 8, 32), dtype="float32") = R.add(lv42, metadata["ir.GenericConst"][13])
            lv44: R.Tensor((1, 8, 32), dtype="float32") = R.add(lv34, lv43)
            gv: R.Tensor((1, 8, 32), dtype="float32") = R.nn.layer_norm(lv44, metadata["ir.GenericConst"][14], metadata["ir.GenericConst"][15], axes=[-1], epsilon=9.9999997473787516e-06, center=True, scale=True)
            R.output(gv)
        return gv

# Metadata omitted. Use show_meta=True in script() method to show it.