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
# constants
# main.lv #0: float32[32, 32] max|x| 0.636086 mean 0.00246
# main.lv1 #0: float32[32] max|x| 0.239637 mean 0.0155
# main.lv3 #0: float32[32, 32] max|x| 0.763645 mean 0.00727
# main.lv4 #0: float32[32] max|x| 0.222032 mean 0.0077
# main.lv5 #0: float32[32, 32] max|x| 0.689982 mean -0.00348
# main.lv6 #0: float32[32] max|x| 0.179511 mean -0.0312
# main.lv14 #0: float32[] 1
# main.lv16 #0: float32[] -10000
# main.lv #0: float32[] 2.82843
# main.lv23 #0: float32[32, 32] max|x| 0.639752 mean 0.00122
# main.lv24 #0: float32[32] max|x| 0.242728 mean 0.0101
# main.lv34 #0: float32[32] max|x| 0.233617 mean -0.0112
# main.lv34 #1: float32[32] max|x| 0.224378 mean -0.00451
# main.lv35 #0: float32[32, 128] max|x| 0.775905 mean -0.00596
# main.lv36 #0: float32[128] max|x| 0.226197 mean -0.00618
# main.lv42 #0: float32[128, 32] max|x| 0.744674 mean 0.00292
# main.lv43 #0: float32[32] max|x| 0.217806 mean -0.002
# main.gv #0: float32[32] max|x| 0.285945 mean 0.0156
# main.gv #1: float32[32] max|x| 0.270662 mean -0.0294
