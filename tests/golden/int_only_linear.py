# from tvm.script import ir as I
# from tvm.script import relax as R

@I.ir_module
class Module:
    @R.function
    def main(input: R.Tensor((4, 16), dtype="float32")) -> R.Tensor((4, 8), dtype="float32"):
        with R.dataflow():
            lv: R.Tensor((4, 16), dtype="float32") = R.multiply(input, R.const(47.101993560791016, "float32"))
            lv1: R.Tensor((4, 16), dtype="float32") = R.add(lv, R.const(0.5, "float32"))
            lv2: R.Tensor((4, 16), dtype="float32") = R.floor(lv1)
            lv3: R.Tensor((4, 16), dtype="float32") = R.clip(lv2, -127, 127)
            lv4: R.Tensor((4, 16), dtype="int8") = R.astype(lv3, dtype="int8")
            lv5: R.Tensor((4, 16), dtype="int64") = R.astype(lv4, dtype="int64")
            lv6: R.Tensor((4, 16), dtype="int64") = R.multiply(lv5, metadata["ir.GenericConst"][0])
            lv7: R.Tensor((4, 16), dtype="int64") = R.add(lv6, R.const(268435456, "int64"))
            lv8: R.Tensor((4, 16), dtype="int64") = R.right_shift(lv7, R.const(29, "int64"))
            lv9: R.Tensor((4, 16), dtype="int64") = R.clip(lv8, -127, 127)
            lv10: R.Tensor((4, 16), dtype="int8") = R.astype(lv9, dtype="int8")
            lv11: R.Tensor((4, 8), dtype="int32") = R.matmul(lv10, metadata["ir.GenericConst"][1], out_dtype="int32")
            lv12: R.Tensor((4, 8), dtype="int32") = R.add(lv11, metadata["ir.GenericConst"][2])
            lv13: R.Tensor((4, 8), dtype="int64") = R.astype(lv12, dtype="int64")
            lv14: R.Tensor((4, 8), dtype="int64") = R.multiply(lv13, metadata["ir.GenericConst"][3])
            lv15: R.Tensor((4, 8), dtype="int64") = R.add(lv14, R.const(1073741824, "int64"))
            lv16: R.Tensor((4, 8), dtype="int64") = R.right_shift(lv15, R.const(31, "int64"))
            lv17: R.Tensor((4, 8), dtype="int64") = R.clip(lv16, -32767, 32767)
            lv18: R.Tensor((4, 8), dtype="int16") = R.astype(lv17, dtype="int16")
            lv19: R.Tensor((4, 8), dtype="float32") = R.astype(lv18, dtype="float32")
            lv20: R.Tensor((4, 8), dtype="float32") = R.multiply(lv19, R.const(5.9984489780617878e-05, "float32"))
            gv: R.Tensor((4, 8), dtype="float32") = lv20
            R.output(gv)
        return gv

# Metadata omitted. Use show_meta=True in script() method to show it.
# constants
# main.lv #0: float32[] 47.102
# main.lv1 #0: float32[] 0.5
# main.lv6 #0: int64[16] sha256:49731c47f548
# main.lv7 #0: int64[] 268435456
# main.lv8 #0: int64[] 29
# main.lv11 #0: int8[16, 8] sha256:9165574f33b6
# main.lv12 #0: int32[8] sha256:b16b1888a7bc
# main.lv14 #0: int64[8] sha256:ef75ba1c244a
# main.lv15 #0: int64[] 1073741824
# main.lv16 #0: int64[] 31
# main.lv20 #0: float32[] 5.99845e-05
