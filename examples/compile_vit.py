"""Compile the bundled Fashion-MNIST ViT through the Python API and classify test images.

    python examples/compile_vit.py
"""
import numpy as np

import qcompile as qc
from qcompile.models import ASSETS, DEFAULT_MODEL


def main():
    model = qc.load(DEFAULT_MODEL, input_shapes={"pixels": (32, 1, 28, 28)})
    pm = qc.PassManager(qc.pipeline("none"))
    mod = pm.run(model.mod)
    for rec in pm.records:
        print(f"{rec.name}: {rec.seconds:.2f} s, op changes {rec.changed_ops()}")
    art = qc.build(mod, target="llvm")
    data = np.load(ASSETS / "fmnist_test256.npz")
    correct = 0
    for i in range(0, 256, 32):
        (logits,) = art.run(data["pixels"][i:i + 32])
        correct += int((logits.argmax(-1) == data["labels"][i:i + 32]).sum())
    print(f"top-1 on 256 test images: {correct / 256:.2%}")


if __name__ == "__main__":
    main()
