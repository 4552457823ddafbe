"""Shared fixtures: tiny models exported once per session, and the --update-golden flag."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from qcompile.models.tiny import export_onnx


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/*.py from the current output (review the diff!)")


@pytest.fixture(scope="session")
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


@pytest.fixture(scope="session")
def tiny_encoder():
    from qcompile.models.tiny import TinyEncoder, encoder_inputs

    torch.manual_seed(0)
    return TinyEncoder().eval(), encoder_inputs()


@pytest.fixture(scope="session")
def tiny_encoder_onnx(tmp_path_factory, tiny_encoder):
    m, inp = tiny_encoder
    return export_onnx(m, inp, tmp_path_factory.mktemp("enc") / "enc.onnx", ["x", "mask"], dynamic_batch=True)


@pytest.fixture(scope="session")
def tiny_encoder_eval(tmp_path_factory):
    from qcompile.models.tiny import encoder_inputs

    x, mask = encoder_inputs(b=6, seed=1)
    path = tmp_path_factory.mktemp("data") / "enc_eval.npz"
    np.savez(path, x=x.numpy(), mask=mask.numpy())
    return path


@pytest.fixture(scope="session")
def smollm2_canon():
    """SmolLM2-135M (64-token steps) through the ``none`` pipeline, its tokenizer, and
    ``float_art()``: its llvm artifact, built on first use. Shared by the SmolLM2 tests of
    rotate, bfp and kv-prerope, which each spent about 35 s loading and canonicalizing it
    (and building the float artifact) on their own."""
    import functools
    from types import SimpleNamespace

    import qcompile as qc
    from qcompile import assets
    from qcompile.models import smollm2

    assets.require("smollm2")
    assets.require("austen")
    _, tok = smollm2.load_hf()
    canon = qc.PassManager(qc.pipeline("none")).run(qc.load(smollm2.export_onnx(64)).mod)
    return SimpleNamespace(canon=canon, tok=tok, float_art=functools.cache(lambda: qc.build(canon, "llvm")))

