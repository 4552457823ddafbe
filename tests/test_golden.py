"""Golden IR: canonicalized tiny encoder/decoder from both frontends, as TVMScript text.

Update deliberately with ``pytest tests/test_golden.py --update-golden`` and review the diff.
"""
import difflib
from pathlib import Path

import pytest
import torch

import qcompile as qc
from qcompile.ir import script
from qcompile.models.tiny import TinyDecoder, TinyEncoder, decoder_inputs, encoder_inputs, export_onnx

GOLDEN = Path(__file__).parent / "golden"


def _case(name, tmp_path):
    torch.manual_seed(0)
    kind, frontend = name.split("_")
    if kind == "encoder":
        m, inp, names = TinyEncoder(gelu_form="erf_decomposed", ln="decomposed").eval(), encoder_inputs(), ["x", "mask"]
    else:
        m, inp, names = TinyDecoder(rope="half", rotary_frac=0.5).eval(), decoder_inputs(), ["x", "positions"]
    if frontend == "torch":
        return qc.load(m, example_inputs=inp).mod
    return qc.load(export_onnx(m, inp, tmp_path / f"{name}.onnx", names)).mod


def check_golden(text: str, path: Path, update: bool):
    if update:
        path.write_text(text)
        return
    assert path.exists(), f"missing golden {path.name}: run pytest --update-golden and review the diff"
    expected = path.read_text()
    if text != expected:
        diff = "".join(list(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                                 "golden", "now"))[:80])
        pytest.fail(f"IR differs from {path.name} (pytest --update-golden to accept):\n{diff}")


@pytest.mark.parametrize("name", ["encoder_torch", "encoder_onnx", "decoder_torch", "decoder_onnx"])
def test_canonicalize_golden(name, tmp_path, update_golden):
    check_golden(script(qc.canonicalize(_case(name, tmp_path))), GOLDEN / f"canonicalize_{name}.py", update_golden)
