"""Model definitions and loaders used by tests, examples and benchmarks.

* :mod:`qcompile.models.vit` -- DeiT-style ViT trained on Fashion-MNIST (the bundled default model).
* :mod:`qcompile.models.tiny` -- tiny random-weight encoder/decoder blocks for unit and golden tests only.
* :mod:`qcompile.models.data` -- Fashion-MNIST loader with fixed, disjoint calibration/evaluation splits.
"""
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "vit_fmnist.onnx"
