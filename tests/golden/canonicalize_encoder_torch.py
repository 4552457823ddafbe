# from tvm.script import ir as I
# from tvm.script import relax as R

@I.ir_module
class Module:
    @R.function(private=True)
    def fused_relax_matmul_relax_divide_relax_add_relax_nn_softmax_relax_matmul(lv6: R.Tensor((1, 4, 8, 8), dtype="float32"), lv21: R.Tensor((1, 4, 8, 8), dtype="float32"), param_0: R.Tensor((), dtype="float32"), lv32: R.Tensor((1, 1, 1, 8), dtype="float32"), lv20: R.Tensor((1, 4, 8, 8), dtype="float32")) -> R.Tensor((1, 4, 8, 8), dtype="float32"):
        R.func_attr({"Composite": "qcompile.attention", "Primitive": True})
        with R.dataflow():
            lv27: R.Tensor((1, 4, 8, 8), dtype="float32") = R.matmul(lv6, lv21, out_dtype=None)
            lv28: R.Tensor((1, 4, 8, 8), dtype="float32") = R.divide(lv27, param_0)
            lv33: R.Tensor((1, 4, 8, 8), dtype="float32") = R.add(lv28, lv32)
            lv34: R.Tensor((1, 4, 8, 8), dtype="float32") = R.nn.softmax(lv33, axis=-1)
            gv: R.Tensor((1, 4, 8, 8), dtype="float32") = R.matmul(lv34, lv20, out_dtype=None)
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 8, 32), dtype="float32"), mask: R.Tensor((1, 8), dtype="float32")) -> R.Tensor((1, 8, 32), dtype="float32"):
        cls = Module
        with R.dataflow():
            lv: R.Tensor((8, 32), dtype="float32") = R.reshape(x, R.shape([8, 32]))
            lv2: R.Tensor((8, 32), dtype="float32") = R.matmul(lv, metadata["ir.GenericConst"][0], out_dtype="float32")
            lv3: R.Tensor((8, 32), dtype="float32") = R.add(lv2, metadata["ir.GenericConst"][1])
            lv5: R.Tensor((1, 8, 4, 8), dtype="float32") = R.reshape(lv3, R.shape([1, 8, 4, 8]))
            lv6: R.Tensor((1, 4, 8, 8), dtype="float32") = R.permute_dims(lv5, axes=[0, 2, 1, 3])
            lv9: R.Tensor((8, 32), dtype="float32") = R.matmul(lv, metadata["ir.GenericConst"][2], out_dtype="float32")
            lv10: R.Tensor((8, 32), dtype="float32") = R.add(lv9, metadata["ir.GenericConst"][3])
            lv12: R.Tensor((1, 8, 4, 8), dtype="float32") = R.reshape(lv10, R.shape([1, 8, 4, 8]))
            lv13: R.Tensor((1, 4, 8, 8), dtype="float32") = R.permute_dims(lv12, axes=[0, 2, 1, 3])
            lv16: R.Tensor((8, 32), dtype="float32") = R.matmul(lv, metadata["ir.GenericConst"][4], out_dtype="float32")
            lv17: R.Tensor((8, 32), dtype="float32") = R.add(lv16, metadata["ir.GenericConst"][5])
            lv19: R.Tensor((1, 8, 4, 8), dtype="float32") = R.reshape(lv17, R.shape([1, 8, 4, 8]))
            lv20: R.Tensor((1, 4, 8, 8), dtype="float32") = R.permute_dims(lv19, axes=[0, 2, 1, 3])
            lv21: R.Tensor((1, 4, 8, 8), dtype="float32") = R.permute_dims(lv13, axes=[0, 1, 3, 2])
            lv29: R.Tensor((1, 1, 8), dtype="float32") = R.expand_dims(mask, axis=[1])
            lv30: R.Tensor((1, 1, 1, 8), dtype="float32") = R.expand_dims(lv29, axis=[2])
            lv31: R.Tensor((1, 1, 1, 8), dtype="float32") = R.subtract(R.const(1.0, "float32"), lv30)
            lv32: R.Tensor((1, 1, 1, 8), dtype="float32") = R.multiply(lv31, R.const(-10000.0, "float32"))
            lv_1: R.Tensor((1, 4, 8, 8), dtype="float32") = cls.fused_relax_matmul_relax_divide_relax_add_relax_nn_softmax_relax_matmul(lv6, lv21, R.const(2.8284270763397217, "float32"), lv32, lv20)
            lv41: R.Tensor((1, 8, 4, 8), dtype="float32") = R.permute_dims(lv_1, axes=[0, 2, 1, 3])
            lv43: R.Tensor((8, 32), dtype="float32") = R.reshape(lv41, R.shape([8, 32]))
            lv45: R.Tensor((8, 32), dtype="float32") = R.matmul(lv43, metadata["ir.GenericConst"][6], out_dtype="float32")
            lv46: R.Tensor((8, 32), dtype="float32") = R.add(lv45, metadata["ir.GenericConst"][7])
            lv47: R.Tensor((1, 8, 32), dtype="float32") = R.reshape(lv46, R.shape([1, 8, 32]))
            lv48: R.Tensor((1, 8, 32), dtype="float32") = R.add(x, lv47)
            lv58: R.Tensor((1, 8, 32), dtype="float32") = R.nn.layer_norm(lv48, metadata["ir.GenericConst"][8], metadata["ir.GenericConst"][9], axes=[-1], epsilon=9.9999997473787516e-06, center=True, scale=True)
            lv59: R.Tensor((8, 32), dtype="float32") = R.reshape(lv58, R.shape([8, 32]))
            lv61: R.Tensor((8, 128), dtype="float32") = R.matmul(lv59, metadata["ir.GenericConst"][10], out_dtype="float32")
            lv62: R.Tensor((8, 128), dtype="float32") = R.add(lv61, metadata["ir.GenericConst"][11])
            lv63: R.Tensor((1, 8, 128), dtype="float32") = R.reshape(lv62, R.shape([1, 8, 128]))
            lv68: R.Tensor((1, 8, 128), dtype="float32") = R.nn.gelu(lv63)
            lv69: R.Tensor((8, 128), dtype="float32") = R.reshape(lv68, R.shape([8, 128]))
            lv71: R.Tensor((8, 32), dtype="float32") = R.matmul(lv69, metadata["ir.GenericConst"][12], out_dtype="float32")
            lv72: R.Tensor((8, 32), dtype="float32") = R.add(lv71, metadata["ir.GenericConst"][13])
            lv73: R.Tensor((1, 8, 32), dtype="float32") = R.reshape(lv72, R.shape([1, 8, 32]))
            lv74: R.Tensor((1, 8, 32), dtype="float32") = R.add(lv58, lv73)
            gv: R.Tensor((1, 8, 32), dtype="float32") = R.nn.layer_norm(lv74, metadata["ir.GenericConst"][14], metadata["ir.GenericConst"][15], axes=[-1], epsilon=9.9999997473787516e-06, center=True, scale=True)
            R.output(gv)
        return gv

# Metadata omitted. Use show_meta=True in script() method to show it.
# constants
# main.lv2 #0: float32[32, 32] max|x| 0.636086 mean 0.00246
# main.lv3 #0: float32[32] max|x| 0.239637 mean 0.0155
# main.lv9 #0: float32[32, 32] max|x| 0.763645 mean 0.00727
# main.lv10 #0: float32[32] max|x| 0.222032 mean 0.0077
# main.lv16 #0: float32[32, 32] max|x| 0.689982 mean -0.00348
# main.lv17 #0: float32[32] max|x| 0.179511 mean -0.0312
# main.lv31 #0: float32[] 1
# main.lv32 #0: float32[] -10000
# main.lv #0: float32[] 2.82843
# main.lv45 #0: float32[32, 32] max|x| 0.639752 mean 0.00122
# main.lv46 #0: float32[32] max|x| 0.242728 mean 0.0101
# main.lv58 #0: float32[32] max|x| 0.233617 mean -0.0112
# main.lv58 #1: float32[32] max|x| 0.224378 mean -0.00451
# main.lv61 #0: float32[32, 128] max|x| 0.775905 mean -0.00596
# main.lv62 #0: float32[128] max|x| 0.226197 mean -0.00618
# main.lv71 #0: float32[128, 32] max|x| 0.744674 mean 0.00292
# main.lv72 #0: float32[32] max|x| 0.217806 mean -0.002
# main.gv #0: float32[32] max|x| 0.285945 mean 0.0156
# main.gv #1: float32[32] max|x| 0.270662 mean -0.0294
