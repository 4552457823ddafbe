"""torch.export graphs with integer scans and boolean arithmetic (HF decoders' mask code).

``from_exported_program`` drops torch's int64 promotion for ``cumsum`` / ``cumprod`` /
``prod`` of bool and integer inputs, and torch's ``mask + mask`` / ``mask * mask`` /
``maximum`` / ``minimum`` on booleans import as arithmetic on ``bool``. Both reach TVM's
LLVM codegen as ``i1`` arithmetic and die with ``Check failed:
(t.MatchesCode(DLDataTypeCode::kDLFloat))``. HF ``LlamaForCausalLM`` (any attention
implementation) has ``cumsum(position_ids_diff != 1)`` in its mask."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import tvm

import qcompile as qc
from qcompile.passes.canonicalize.rules import canonicalize


class _F(torch.nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


def _run(mod, x):
    ex = tvm.compile(mod, target="llvm")
    vm = tvm.relax.VirtualMachine(ex, tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


@pytest.mark.parametrize("name,f", [
    ("cumsum_bool", lambda x: torch.cumsum(x > 0, -1)),
    ("cumsum_int32", lambda x: torch.cumsum((x * 10).int(), -1)),  # torch: int64
    ("cumprod_bool", lambda x: torch.cumprod(x > -0.5, -1)),
    ("prod_bool", lambda x: torch.prod(x > -2.0)),
    ("cumsum_explicit_dtype", lambda x: torch.cumsum(x > 0, -1, dtype=torch.int32)),
    ("add_bool", lambda x: (x > 0) + (x < 0.5)),
    ("mul_bool", lambda x: (x > 0) * (x < 0.5)),
    ("maximum_bool", lambda x: torch.maximum(x > 0, x < 0.5)),
    ("minimum_bool", lambda x: torch.minimum(x > 0, x < 0.5)),
])
def test_integral_scans_and_bool_arithmetic(name, f):
    x = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    model = qc.load(_F(f), example_inputs=(x,))
    tvm.relax.analysis.well_formed(model.mod)  # the promoted dtype reaches the bound vars
    got = _run(canonicalize(model.mod), x.numpy())
    ref = f(x).numpy()
    assert got.dtype == ref.dtype, name
    np.testing.assert_array_equal(got, ref)


def test_bool_arithmetic_is_canonical():
    """The canonical form is the logical op, and canonicalizing again changes nothing."""
    from qcompile.ir import op_histogram

    x = torch.randn(2, 8)
    mod = canonicalize(qc.load(_F(lambda x: ((x > 0) + (x < 0.5)) * (x > -1)), example_inputs=(x,)).mod)
    ops = op_histogram(mod)
    assert ops.get("logical_or") == 1 and ops.get("logical_and") == 1
    assert "add" not in ops and "multiply" not in ops
    tvm.ir.assert_structural_equal(canonicalize(mod), mod)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_hf_llama_logits_build(attn):
    """The issue's graph: a tiny seeded HF Llama, logits without cache, ``none`` pipeline,
    llvm build (about 10 s each)."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=256)
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(cfg).eval()

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids):
            return self.m(input_ids=ids, use_cache=False).logits

    m = Logits(hf).eval()
    ids = torch.randint(0, 256, (1, 8), generator=torch.Generator().manual_seed(0))
    model = qc.load(m, example_inputs=(ids,))
    mod = qc.PassManager(qc.pipeline("none")).run(model.mod)
    got = qc.build(mod, "llvm").run(ids.numpy())[0]
    ref = m(ids).detach().numpy()
    assert np.abs(got - ref).max() < 1e-4
