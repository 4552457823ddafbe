"""The `none` pipeline on real models: the compiled llvm artifact matches onnxruntime.

Marked slow (they run in CI; deselect locally with -m 'not slow')."""
import json

import numpy as np
import pytest

from qcompile import assets
from qcompile.driver import compile_model
from qcompile.models import ASSETS, DEFAULT_MODEL

pytestmark = pytest.mark.slow


def test_bundled_vit_matches_onnxruntime(tmp_path):
    meta = json.loads((ASSETS / "vit_fmnist.json").read_text())
    assert meta["test_top1"] >= 0.88  # the recorded accuracy of the committed checkpoint
    rep = compile_model(DEFAULT_MODEL, "none", "llvm", tmp_path / "vit", eval_data=ASSETS / "fmnist_test256.npz",
                        batch=32, progress=False)
    ev = rep["evaluation"]["outputs"]["logits"]
    assert ev["cosine"] >= 0.99999
    assert ev["top1_agreement"] == 1.0
    assert ev["top1_accuracy"] == ev["reference_top1_accuracy"] >= 0.85  # 256 test images


@pytest.mark.asset
def test_minilm_matches_onnxruntime(tmp_path):
    assets.require("minilm")
    from qcompile.models import minilm

    onnx_path = minilm.export_onnx()
    sentences = ["The weather is lovely today.", "It's so sunny outside!",
                 "She walked to the station in the rain."]
    feed = minilm.tokenize(sentences)
    np.savez(tmp_path / "ev.npz", **feed)
    rep = compile_model(onnx_path, "none", "llvm", tmp_path / "minilm", eval_data=tmp_path / "ev.npz",
                        progress=False)
    (out,) = rep["evaluation"]["outputs"].values()
    assert out["cosine"] >= 0.99999 and out["max_abs_err"] < 1e-3
