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
from qcompile.errors import QCompileError
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


class _Idx(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("pos", torch.tensor([1, -1]))

    def forward(self, x, i):
        return (x[:, :, torch.tensor([-2])] + x[:, :, [-1]] + x[:, :, -3:-2]
                + x[:, :, i].sum(-1, keepdim=True) + x[:, :, self.pos].sum(-1, keepdim=True))


def test_negative_indices_wrap_as_in_torch():
    """``x[:, :, [-2]]`` (Falcon's multi-query key head out of its fused projection),
    ``index_select`` with ``-3`` and a computed index holding negatives: the importer's
    ``take(mode="fast")`` read outside ``x`` (different garbage each run, cosine 0.6 on
    Falcon's logits). Constants become their non-negative equals; computed indices wrap
    (torch's ``index_select`` refuses negatives itself)."""
    x = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0))
    i = torch.tensor([-1, 0, -5])
    model = qc.load(_Idx(), example_inputs=(x, i))
    ex = tvm.compile(model.mod, target="llvm")
    vm = tvm.relax.VirtualMachine(ex, tvm.cpu())
    ref = _Idx()(x, i).numpy()
    for _ in range(3):
        got = vm["main"](tvm.runtime.tensor(x.numpy()), tvm.runtime.tensor(i.numpy())).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    takes = [str(b.value.attrs.mode) for b in model.mod["main"].body.blocks[0].bindings
             if getattr(getattr(b.value, "op", None), "name", None) == "relax.take"]
    assert takes.count("wrap") == 1 and takes.count("fast") == 3, takes


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


# ---- torch ops TVM's importer converts wrongly or not at all (qcompile/frontend/torch_converters.py)

def _ids(x):
    return (x * 10).long()


@pytest.mark.parametrize("name,f", [
    ("int_true_division", lambda x: _ids(x) / 4),             # TVM: truncated, int64, no error
    ("int_floor_division", lambda x: _ids(x) // 4),           # TVM: int32 constant, import fails
    ("div_floor_mode", lambda x: torch.div(_ids(x), 4, rounding_mode="floor")),
    ("div_trunc_mode", lambda x: torch.div(_ids(x), 4, rounding_mode="trunc")),
    ("float_div_trunc_mode", lambda x: torch.div(x * 10, 4, rounding_mode="trunc")),
    ("int_by_int_tensor", lambda x: _ids(x) / _ids(x).abs().clamp(min=1)),
    ("int_clamp_min", lambda x: _ids(x).clamp(min=1)),         # TVM: clip(x, 1, inf) on int64
    ("int_clamp_max", lambda x: _ids(x).clamp(max=2)),
    ("int_clamp_tensor", lambda x: torch.clamp(_ids(x), min=_ids(x[:1]))),
    ("float_clamp", lambda x: x.clamp(min=0.1)),
    ("argsort_floor_div", lambda x: torch.sort(x.flatten())[1] // 3),  # an MoE's token of each routed row
    ("topk_unsorted", lambda x: torch.topk(x, 3, dim=-1, sorted=False)[0].sort(-1)[0]),
    ("histc", lambda x: torch.histc(x, bins=5, min=-1.0, max=1.0)),
    ("cat_skips_empty_1d", lambda x: torch.cat([x.new_zeros(0), x, x], 0)),  # XLM, ImageGPT, BART
])
def test_torch_ops_as_torch_computes_them(name, f):
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    got = _run(qc.load(_F(f), example_inputs=(x,)).mod, x.numpy())
    ref = f(x).numpy()
    assert got.dtype == ref.dtype, name
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_grouped_mm_fallback():
    """``transformers::grouped_mm_fallback`` (an MoE's experts on CPU float32): rows in
    groups ending at ``offs``, each times its group's weight, rows past the last end zero."""
    transformers = pytest.importorskip("transformers")  # registers the custom op
    from transformers.integrations import moe  # noqa: F401

    class G(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(3, 6, 5, generator=torch.Generator().manual_seed(1)))

        def forward(self, x):
            offs = torch.tensor([2, 2, 5], dtype=torch.int32)  # group 1 empty, row 5 past the end
            return torch.ops.transformers.grouped_mm_fallback(x, self.w, offs)

    x = torch.randn(6, 6, generator=torch.Generator().manual_seed(0))
    g = G()
    with torch.no_grad():
        ref = g(x).numpy()
    assert not ref[5].any() and ref[:5].any()
    got = _run(qc.load(g, example_inputs=(x,)).mod, x.numpy())
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_data_dependent_shape_is_refused_by_name():
    """A shape read from tensor values (``.item()``): one line naming the node, not TVM's
    ``TypeError: unsupported operand type(s) for +: 'Node' and 'int'``."""
    from qcompile.errors import QCompileError

    class D(torch.nn.Module):  # JetMoE's experts: rows split by their routed counts
        def forward(self, x):
            idx = torch.argsort(x[:, 0])
            counts = torch.stack([(x[:, 0] > 0).sum(), (x[:, 0] <= 0).sum()]).tolist()
            parts = torch.split(x[idx], counts, dim=0)
            return torch.cat([parts[0] * 2, parts[1]], 0)

    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(QCompileError, match="reads a tensor value into a shape"):
        qc.load(D(), example_inputs=(x,))


_TINY = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=256, tie_word_embeddings=False,
             pad_token_id=0)
_MOE = dict(num_local_experts=4, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32)


@pytest.mark.parametrize("config,extra", [
    ("MixtralConfig", _MOE),     # grouped experts: histc + grouped_mm_fallback, argsort // top-k
    ("Dots1Config", dict(_MOE, n_routed_experts=4, n_shared_experts=1, first_k_dense_replace=1)),  # topk unsorted
    ("NanoChatConfig", {}),      # gainless RMSNorm on the residual path; q/k norms after RoPE of the other sign
    ("DiffLlamaConfig", {}),     # differential attention: an attention composite with a tuple result
])
def test_hf_decoders_outside_the_zoo(config, extra):
    """Decoders of ``transformers`` 5.x with no Optimum export (torch.export only), through
    ``qc.load``: ``none`` and ``rotate`` equal torch to round-off (each failed at import or
    in ``rotate`` before)."""
    transformers = pytest.importorskip("transformers")
    cfg = getattr(transformers, config)(**_TINY, **extra)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(cfg).eval()

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids, mask):
            return self.m(input_ids=ids, attention_mask=mask, use_cache=False).logits

    m = Logits(hf).eval()
    ex = (torch.randint(0, 256, (2, 6), generator=torch.Generator().manual_seed(7)), torch.ones(2, 6, dtype=torch.int64))
    with torch.no_grad():
        ref = m(*ex).numpy()
    model = qc.load(m, example_inputs=ex)
    for pipeline in ("none", "rotate"):
        mod = qc.PassManager(qc.pipeline(pipeline)).run(model.mod)
        got = qc.build(mod, "llvm").run(*[t.numpy() for t in ex])[0]
        cos = float((got * ref).sum() / np.sqrt((got * got).sum() * (ref * ref).sum()))
        assert cos > 0.99999, (config, pipeline, cos)
        assert np.abs(got - ref).max() < 1e-3, (config, pipeline)


def test_complex_rope_is_carried_as_pairs():
    """RoPE written with complex numbers (DeepSeek-V2, Llama 4): ``view_as_complex`` of the
    (even, odd) pairs times ``polar(1, angle)`` (unsqueezed over the heads, scaled by a real
    factor), then ``view_as_real`` (before: "Unsupported function types ['view_as_complex.default',
    'view_as_real.default', 'polar.default']"). Carried as float pairs, equal to torch; another
    op on a complex value is refused by name."""
    class ComplexRope(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(16, 16)
            self.register_buffer("inv_freq", 1.0 / 100 ** (torch.arange(0, 8, 2).float() / 8))

        def rope(self, x, pos):
            freqs = pos[..., None].float() * self.inv_freq  # [B, T, 4]
            cis = torch.polar(torch.ones_like(freqs), freqs) * 0.5
            z = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))  # [B, T, H, 4]
            return torch.view_as_real(z * cis.unsqueeze(-2)).flatten(3)

        def forward(self, x, pos):
            b, t, _ = x.shape
            return self.rope(self.proj(x).view(b, t, 2, 8), pos)

    class ComplexAbs(ComplexRope):
        def forward(self, x, pos):
            z = torch.view_as_complex(self.proj(x).view(*x.shape[:-1], 8, 2))
            return z.abs()

    torch.manual_seed(0)
    x, pos = torch.randn(2, 5, 16), torch.arange(5)[None].repeat(2, 1)
    m = ComplexRope().eval()
    model = qc.load(m, example_inputs=(x, pos))
    got = qc.build(qc.PassManager(qc.pipeline("none")).run(model.mod), "llvm").run(x.numpy(), pos.numpy())[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, m(x, pos).numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(QCompileError, match=r"node '.*' \(aten\.abs\.default\) computes with complex numbers"):
        qc.load(ComplexAbs().eval(), example_inputs=(x, pos))
