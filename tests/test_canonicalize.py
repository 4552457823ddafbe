"""Idiom recognition from both frontends: the right ops/composites appear, the rewritten
float graph computes the same as the original, and canonicalization is idempotent."""
import numpy as np
import pytest
import torch
import tvm_ffi

import qcompile as qc
from qcompile.ir import composites, op_histogram
from qcompile.models.tiny import TinyDecoder, TinyEncoder, decoder_inputs, encoder_inputs, export_onnx

ENCODERS = [dict(gelu_form=g, ln=ln) for g in ("erf", "tanh", "erf_decomposed", "tanh_decomposed")
            for ln in ("fused", "decomposed")] + [dict(masked=False)]
DECODERS = [dict(rope=r, rotary_frac=f) for r in ("half", "inter") for f in (1.0, 0.5)]


def _load(frontend, module, inputs, tmp_path, names):
    if frontend == "torch":
        return qc.load(module, example_inputs=inputs).mod
    return qc.load(export_onnx(module, inputs, tmp_path / "m.onnx", names)).mod


def _check(mod, module, inputs, expect):
    canon = qc.canonicalize(mod)
    hist = op_histogram(canon)
    for op, n in expect.items():
        assert hist.get(op, 0) == n, f"{op}: expected {n}, got {hist.get(op, 0)} in {hist}"
    assert tvm_ffi.structural_equal(canon, qc.canonicalize(canon)), "canonicalize is not idempotent"
    art = qc.build(canon, "llvm")
    got = art.run(*[t.numpy() for t in inputs])[0]
    with torch.no_grad():
        ref = module(*inputs).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    return canon


@pytest.mark.parametrize("frontend", ["torch", "onnx"])
@pytest.mark.parametrize("cfg", ENCODERS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_encoder_idioms(frontend, cfg, tmp_path):
    torch.manual_seed(0)
    m, inp = TinyEncoder(**cfg).eval(), encoder_inputs()
    gelu = "nn.gelu_tanh" if cfg.get("gelu_form", "erf").startswith("tanh") else "nn.gelu"
    canon = _check(_load(frontend, m, inp, tmp_path, ["x", "mask"]), m, inp,
                   {gelu: 1, "nn.layer_norm": 2, "composite:qcompile.attention": 1, "nn.softmax": 0,
                    "erf": 0, "tanh": 0, "mean": 0, "sqrt": 0})
    (name, fn), = composites(canon, "qcompile.attention")
    ops = [b.value.op.name for b in fn.body.blocks[0].bindings]
    masked = cfg.get("masked", True)
    assert ops == ["relax.matmul", "relax.divide"] + (["relax.add"] if masked else []) + \
        ["relax.nn.softmax", "relax.matmul"]


@pytest.mark.parametrize("frontend", ["torch", "onnx"])
@pytest.mark.parametrize("cfg", DECODERS, ids=lambda c: f"{c['rope']}-{c['rotary_frac']}")
def test_decoder_idioms(frontend, cfg, tmp_path):
    torch.manual_seed(0)
    m, inp = TinyDecoder(**cfg).eval(), decoder_inputs()
    canon = _check(_load(frontend, m, inp, tmp_path, ["x", "positions"]), m, inp,
                   {"nn.rms_norm": 2, "composite:qcompile.rope": 2, "composite:qcompile.attention": 1,
                    "rsqrt": 0, "mean": 0, "negative": 0})
    # partial rotary: the rotated slice is half of head_dim, the rest passes through a concat
    for _, fn in composites(canon, "qcompile.rope"):
        width = int(fn.params[0].ty.shape[-1])
        assert width == int(8 * cfg["rotary_frac"])


def test_decomposed_softmax(tmp_path):
    """Via ONNX (ReduceMax); TVM's torch frontend has no amax and torch.export turns max(dim) into topk."""
    class M(torch.nn.Module):
        def forward(self, x):
            e = torch.exp(x - x.amax(-1, keepdim=True))
            return e / e.sum(-1, keepdim=True)

    x = torch.randn(2, 5, 7)
    mod = qc.load(export_onnx(M(), (x,), tmp_path / "s.onnx", ["x"])).mod
    _check(mod, M(), (x,), {"nn.softmax": 1, "exp": 0})


def test_not_an_idiom_is_left_alone():
    """x * 0.4 * (1 + erf(x / sqrt 2)) is not GELU: the constant check must refuse it."""
    class M(torch.nn.Module):
        def forward(self, x):
            return x * 0.4 * (1.0 + torch.erf(x / 1.4142135))

    x = torch.randn(2, 6)
    _check(qc.load(M(), example_inputs=(x,)).mod, M(), (x,), {"nn.gelu": 0, "erf": 1})


def test_take_becomes_clip_mode_and_keeps_values():
    import tvm

    emb = torch.nn.Embedding(11, 4)
    ids = torch.tensor([[0, 3, 10, 5]])
    mod = qc.canonicalize(qc.load(emb.eval(), example_inputs=(ids,)).mod)
    modes = []

    def cb(obj):
        if isinstance(obj, tvm.ir.Call) and isinstance(obj.op, tvm.ir.Op) and obj.op.name == "relax.take":
            modes.append(str(obj.attrs.mode))

    tvm_ffi.structural_walk(mod, cb)
    assert modes == ["clip"]
    with torch.no_grad():
        np.testing.assert_array_equal(qc.build(mod).run(ids.numpy())[0], emb(ids).numpy())


def test_cast_bound_to_the_output_alias():
    """``(x > 0).any(-1)`` ends in an ``astype`` bound to the output through an alias;
    ``rewrite_call`` handed the cast rule the alias variable (canonicalize crashed with
    "'DataflowVar' object has no attribute 'attrs'")."""
    import numpy as np
    import torch

    import qcompile as qc

    class AnyPositive(torch.nn.Module):
        def forward(self, x):
            return (x > 0).any(-1)

    x = torch.randn(3, 4)
    model = qc.load(AnyPositive(), example_inputs=(x,))
    mod = qc.PassManager(qc.pipeline("none")).run(model.mod)
    got = qc.build(mod, "llvm").run(x.numpy())[0]
    np.testing.assert_array_equal(got, AnyPositive()(x).numpy())


def test_mask_added_before_the_scale(tmp_path):
    """CodeGen's attention, ``softmax((q kT + mask) / s) v``: the mask is moved behind the
    scale so the attention composite forms (before: "no attention (qcompile.attention
    composite) in the model" for k-sort, bfp and kv-prerope); the float graph is unchanged
    up to round-off."""
    class Attn(torch.nn.Module):
        def forward(self, q, k, v, mask):
            return torch.softmax((q @ k.transpose(-1, -2) + mask) / 4.0, -1) @ v

    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 5, 8) for _ in range(3))
    mask = torch.triu(torch.full((5, 5), -1e9), 1)[None, None]
    inp = (q, k, v, mask)
    mod = qc.load(export_onnx(Attn(), inp, tmp_path / "a.onnx", ["q", "k", "v", "mask"])).mod
    _check(mod, Attn(), inp, {"composite:qcompile.attention": 1, "nn.softmax": 0})


def test_attention_over_merged_heads(tmp_path):
    """BLOOM/DeBERTa-style attention over ``batch*heads``: 4-D q/k/v merged to 3-D, 3-D
    matmuls, an ALiBi-like bias per merged head, the scores split back to 4-D for a
    ``masked_fill`` with the dtype's minimum, softmax, merged again for ``P V``. The merges
    move behind the ops and the fill becomes an additive mask, so the composite forms; the
    float graph is unchanged up to round-off."""
    class Attn(torch.nn.Module):
        def forward(self, q, k, v, alibi, drop):
            b, h, t, d = q.shape
            s = (q.reshape(b * h, t, d) @ (k.reshape(b * h, t, d) / 4.0).transpose(1, 2)) * 0.5 + alibi
            s = s.reshape(b, h, t, t).masked_fill(drop, torch.finfo(torch.float32).min)
            p = torch.softmax(s, -1).reshape(b * h, t, t)
            return (p @ v.reshape(b * h, t, d)).reshape(b, h, t, d)

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8) for _ in range(3))
    alibi = torch.randn(6, 1, 5)
    drop = torch.zeros(2, 1, 5, 5, dtype=torch.bool)
    drop[..., 3:] = True
    inp = (q, k, v, alibi, drop)
    mod = qc.load(export_onnx(Attn(), inp, tmp_path / "a.onnx", ["q", "k", "v", "alibi", "drop"])).mod
    _check(mod, Attn(), inp, {"composite:qcompile.attention": 1, "nn.softmax": 0, "where": 1})


def test_symbolic_dims_are_simplified(tmp_path):
    """MobileBERT's trigram embedding slices a token off and pads it back: the importer types
    the result ``seq - 1 + 1``. Canonicalization leaves every binding's dims simplified (a
    reshape to ``seq``), so that kernels emitted later describe the tensor as legalization
    does (before: int-only's build failed in FuseTIR, "Inconsistent buffers ... mapped to the
    same relax var"); the graph still computes the same."""
    from tvm import relax
    from tvm.sym import Analyzer

    class M(torch.nn.Module):
        def forward(self, x):
            nxt = torch.nn.functional.pad(x[:, 1:], (0, 0, 0, 1))
            prv = torch.nn.functional.pad(x[:, :-1], (0, 0, 1, 0))
            return torch.cat([nxt, x, prv], -1) * 2.0

    x = torch.randn(2, 6, 4)
    path = tmp_path / "m.onnx"
    torch.onnx.export(M(), (x,), str(path), input_names=["x"], dynamic_axes={"x": {1: "seq"}}, dynamo=False)
    mod = qc.load(str(path)).mod
    ana = Analyzer()

    def unsimplified(m):
        return [b.var.name for blk in m["main"].body.blocks for b in blk.bindings
                if isinstance(b.var.ty, relax.TensorType) and isinstance(b.var.ty.shape, relax.ShapeExpr)
                and not all(tvm_ffi.structural_equal(d, ana.simplify(d)) for d in b.var.ty.shape.values)]

    assert unsimplified(mod), "the importer's spelling changed: this test no longer covers the case"
    canon = qc.canonicalize(mod)
    left = set(unsimplified(canon))
    users = [(b.value.op.name, a.name) for blk in canon["main"].body.blocks for b in blk.bindings
             if isinstance(b.value, relax.Call) for a in b.value.args if isinstance(a, relax.Var) and a.name in left]
    assert left and all(op == "relax.reshape" for op, _ in users), users  # only read through the reshape
    assert tvm_ffi.structural_equal(canon, qc.canonicalize(canon))
    for n in (6, 3):
        xs = np.random.default_rng(n).standard_normal((2, n, 4)).astype(np.float32)
        np.testing.assert_allclose(qc.build(canon, "llvm").run(xs)[0], M()(torch.from_numpy(xs)).numpy(), rtol=1e-6)


class _NormsWithoutEpsilon(torch.nn.Module):
    """RMSNorm and LayerNorm written out with no epsilon, as torch's dynamo ONNX export of
    Helium (eps 1e-8) and I-BERT (eps 1e-12) leaves them: ``x * rsqrt(mean(x^2))`` and
    ``(x - mean) / sqrt(mean((x - mean)^2))``."""

    def __init__(self):
        super().__init__()
        self.g = torch.nn.Parameter(1 + 0.1 * torch.randn(16))
        self.lin = torch.nn.Linear(16, 16)

    def forward(self, x):
        r = self.g * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True)))
        d = self.lin(r) - self.lin(r).mean(-1, keepdim=True)
        return self.g * (d / torch.sqrt(d.pow(2).mean(-1, keepdim=True)))


@pytest.mark.parametrize("frontend", ["torch", "onnx"])
def test_norms_without_epsilon(frontend, tmp_path):
    """Before: neither was recognized (no residual stream for rotate, ``power`` for int-only)."""
    torch.manual_seed(0)
    m, inp = _NormsWithoutEpsilon().eval(), (torch.randn(2, 5, 16),)
    _check(_load(frontend, m, inp, tmp_path, ["x"]), m, inp,
           {"nn.rms_norm": 1, "nn.layer_norm": 1, "power": 0, "rsqrt": 0, "sqrt": 0})


def test_shifted_window_mask_on_a_split_view_is_an_attention_bias():
    """Swin's shifted windows add their mask to a 5-D view of the scores
    (``[batch, windows, heads, n, n]``) and view them back; the attention form has one
    additive term on the 4-D scores, so those layers were no ``qcompile.attention`` (int-only
    refused Swin and Donut-Swin at the scores' matmul). The term moves onto the unsplit scores
    (a constant broadcast over the batch): every window attention is a composite now, and the
    canonicalized float graph still matches onnxruntime, image size fixed, batch symbolic."""
    import onnxruntime as ort

    from qcompile.models import zoo

    arch = zoo.ZOO["swin"]
    model = qc.load(str(arch.onnx), input_shapes={"pixel_values": (None, 3, 32, 32)})
    mod = qc.PassManager(qc.pipeline("none")).run(model.mod)
    names = {n for n, _ in composites(mod, "qcompile.attention")}
    calls = [b for blk in mod["main"].body.blocks for b in blk.bindings
             if getattr(getattr(b.value, "op", None), "name_hint", None) in names]
    assert len(calls) == sum(arch.kwargs["depths"])  # before: 3 (stage 1's shifted block was not one)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    got = qc.build(mod, "llvm").run(x)[0]
    ref = ort.InferenceSession(str(arch.onnx), providers=["CPUExecutionProvider"]).run(None, {"pixel_values": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_two_score_products_summed_are_one_attention():
    """LiLT sums its text and layout scores (two scaled ``q k^T`` products) before the mask
    and the softmax; the rule that gathers two biases into one term took the other product
    for a bias and swapped them forever ("rewrite does not terminate"). Now the two products
    are one over the concatenated head dims (``concat(q1 c1, q2 c2) @ concat(k1, k2)``): each
    of LiLT's attentions (text and layout, in each layer) is a ``qcompile.attention`` (int-only
    passes on LiLT since), and the
    canonicalized graph matches onnxruntime."""
    import onnxruntime as ort

    from qcompile.models import zoo

    path = zoo.ZOO["lilt"].onnx
    mod = qc.PassManager(qc.pipeline("none")).run(qc.load(str(path)).mod)
    names = {n for n, _ in composites(mod, "qcompile.attention")}
    calls = [b for blk in mod["main"].body.blocks for b in blk.bindings
             if getattr(getattr(b.value, "op", None), "name_hint", None) in names]
    # two per layer but the last layer's layout attention, which no output reads (dead code)
    assert len(calls) == 2 * zoo.ZOO["lilt"].kwargs["num_hidden_layers"] - 1
    assert "nn.softmax" not in op_histogram(mod)  # before: softmax over the summed products, outside any
    feed = zoo.onnx_feed(path, batch=2, seq=6)
    got = qc.build(mod, "llvm").run(*[feed[k] for k in ("input_ids", "bbox", "attention_mask")])[0]
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_rope_over_a_compound_length_stays_well_formed():
    """wav2vec2-conformer's rotary attention runs over ``samples // 10 - 1`` frames: the RoPE
    composite's parameters only hold that expression, so once its shape parameter was
    inlined nothing defined ``samples`` ("produced ill-formed IR: Var sequence_length is not
    defined"). The composite now takes the dims it needs as a shape parameter of its own."""
    from qcompile.models import zoo

    mod = qc.PassManager(qc.pipeline("none")).run(qc.load(str(zoo.ZOO["wav2vec2-conformer"].onnx)).mod)
    ropes = composites(mod, "qcompile.rope")
    assert ropes
    from tvm import relax

    for _, f in ropes:
        assert any(p.name == "dims" for p in f.params) and not list(relax.analysis.free_symbolic_vars(f))


def test_cosine_attention_is_rms_norm_and_a_per_head_scale_in_q():
    """Swin-V2's cosine attention: ``F.normalize`` of q and k (a sum of squares, a root, a
    clamp, a division) becomes ``rms_norm(x) / sqrt(D)``, its learned logit scale (one per
    head) moves into q, and the shifted-window mask added to a 5-D view in two steps is one
    constant term: every window attention is a ``qcompile.attention`` with one scalar scale,
    nothing of the normalization is left, and the float graph still matches onnxruntime."""
    import onnxruntime as ort

    from qcompile.models import zoo

    arch = zoo.ZOO["swinv2"]
    model = qc.load(str(arch.onnx), input_shapes={"pixel_values": (None, 3, 32, 32)})
    mod = qc.PassManager(qc.pipeline("none")).run(model.mod)
    ops = op_histogram(mod)
    assert "sum" not in ops and "sqrt" not in ops and "nn.softmax" not in ops
    assert ops["nn.rms_norm"] == 2 * sum(arch.kwargs["depths"])  # q and k of every block
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    got = qc.build(mod, "llvm").run(x)[0]
    ref = ort.InferenceSession(str(arch.onnx), providers=["CPUExecutionProvider"]).run(None, {"pixel_values": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


class _RopeOtherSign(torch.nn.Module):
    """RoPE with ``rot(x) = cat(x2, -x1)`` (a rotation by -theta, NanoChat's spelling),
    rotate-half or interleaved."""

    def __init__(self, form):
        super().__init__()
        self.form = form
        ang = torch.arange(6.0)[:, None] * (10000.0 ** (-torch.arange(4.0) / 4))[None]
        rep = (lambda t: torch.cat([t, t], -1)) if form == "half" else (lambda t: t.repeat_interleave(2, -1))
        self.register_buffer("cos", rep(ang.cos()))
        self.register_buffer("sin", rep(ang.sin()))

    def forward(self, x):
        if self.form == "half":
            rot = torch.cat([x[..., 4:], -x[..., :4]], -1)
        else:
            rot = torch.stack([x[..., 1::2], -x[..., 0::2]], -1).flatten(-2)
        return (x * self.cos + rot * self.sin) @ torch.eye(8)


@pytest.mark.parametrize("form", ["half", "interleaved"])
@pytest.mark.parametrize("frontend", ["torch", "onnx"])
def test_rope_of_the_other_sign_is_rope(form, frontend, tmp_path):
    """``x*cos + cat(x2, -x1)*sin`` is RoPE with ``-sin``: one ``qcompile.rope``, equal to
    the original (the cache passes then find it)."""
    m = _RopeOtherSign(form).eval()
    inp = (torch.randn(2, 3, 6, 8, generator=torch.Generator().manual_seed(0)),)
    _check(_load(frontend, m, inp, tmp_path, ["x"]), m, inp, {"composite:qcompile.rope": 1, "negative": 0})


class _SinkAttention(torch.nn.Module):
    """gpt-oss's attention: a learned logit per head joins each row's softmax (after the
    max shift written out) and is sliced off before ``P V``; RoPE on the two halves apart."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.sinks = torch.nn.Parameter(torch.randn(2, generator=g))
        ang = torch.arange(6.0)[:, None] * (10000.0 ** (-torch.arange(4.0) / 4))[None]
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())

    def rope(self, x):
        x1, x2 = torch.chunk(x, 2, dim=-1)
        return torch.cat((x1 * self.cos - x2 * self.sin, x2 * self.cos + x1 * self.sin), dim=-1)

    def forward(self, q, k, v, mask):
        s = self.rope(q) @ self.rope(k).transpose(-1, -2) * 8 ** -0.5 + mask
        sinks = self.sinks.reshape(1, -1, 1, 1).expand(q.shape[0], -1, q.shape[-2], -1)
        logits = torch.cat([s, sinks], dim=-1)
        logits = logits - logits.max(dim=-1, keepdim=True).values
        return torch.softmax(logits, dim=-1)[..., :-1] @ v


@pytest.mark.parametrize("frontend", ["torch", "onnx"])
def test_attention_sinks_and_rope_on_halves(frontend, tmp_path):
    """The sink form is one ``qcompile.attention`` (its sink logits a role the lowerings
    read or refuse) and the halves form is one ``qcompile.rope`` each for q and k, equal to
    the original; before, neither was recognized and every cache pass refused gpt-oss."""
    from qcompile.ir import attention_roles

    g = torch.Generator().manual_seed(0)
    inp = tuple(torch.randn(2, 2, 6, 8, generator=g) for _ in range(3)) + \
        (torch.triu(torch.full((6, 6), -1e9), 1).expand(2, 1, 6, 6).contiguous(),)
    m = _SinkAttention().eval()
    canon = _check(_load(frontend, m, inp, tmp_path, ["q", "k", "v", "mask"]), m, inp,
                   {"composite:qcompile.attention": 1, "composite:qcompile.rope": 2})
    (f,) = [f for _, f in canon.functions.items() if (f.attrs or {}).get("Composite") == "qcompile.attention"]
    roles = attention_roles(f)
    assert roles["sinks"] and {"q", "k", "v", "mask"} <= set(roles["params"])


def test_eager_attention_over_merged_heads(tmp_path):
    """Eager attention of older HF models (DETR, Speech2Text, the BART family before SDPA)
    views the scores as [batch * heads, T, S] for the softmax and multiplies by the values
    viewed alike: the softmax and the product move back over the view, and the attention
    composite forms (int-only needs it), computing the same."""
    class M(torch.nn.Module):
        def forward(self, q, k, v, mask):
            b, h, t, d = q.shape
            s = q @ k.transpose(-1, -2) * d ** -0.5 + mask
            p = torch.softmax(s.view(b * h, t, t), dim=-1)
            return (p @ v.reshape(b * h, t, d)).view(b, h, t, d).transpose(1, 2).reshape(b, t, h * d)

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    mask = torch.triu(torch.full((5, 5), -1e9), 1).expand(2, 1, 5, 5).contiguous()
    inputs = (q, k, v, mask)
    mod = qc.load(export_onnx(M(), inputs, tmp_path / "a.onnx", ["q", "k", "v", "mask"], dynamic_batch=True)).mod
    _check(mod, M(), inputs, {"composite:qcompile.attention": 1, "nn.softmax": 0})


def test_tf_same_max_pool_and_a_same_size_resize(tmp_path):
    """timm's ``MaxPool2dSame`` pads with ``-inf`` before a pool without padding (an explicit
    pad int-only cannot take: "the pad at 'lv23' is not a constant pad with 0"): the pad
    becomes the pool's own. A bicubic resize to the size the image already has (CrossViT's
    branch resize traced at its own size) is dropped. Both against onnxruntime, exact."""
    import onnxruntime as ort

    from qcompile.passes.canonicalize.rules import canonicalize

    class M(torch.nn.Module):
        def forward(self, x):  # [N, 3, 9, 10]
            y = torch.nn.functional.pad(x, (0, 1, 1, 1), value=float("-inf"))
            y = torch.nn.functional.max_pool2d(y, 3, 2)
            z = torch.nn.functional.interpolate(x, size=(9, 10), mode="bicubic", align_corners=False)
            return y.flatten(1), z

    x = torch.randn(2, 3, 9, 10)
    path = export_onnx(M(), (x,), tmp_path / "p.onnx", ["x"], dynamic_batch=True)
    loaded = qc.load(path).mod
    assert {"nn.pad", "image.resize2d"} <= set(op_histogram(loaded))
    mod = canonicalize(loaded)
    ops = op_histogram(mod)
    assert "nn.pad" not in ops and "image.resize2d" not in ops and ops.get("nn.max_pool2d") == 1
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xs = np.random.default_rng(0).standard_normal((3, 3, 9, 10)).astype(np.float32)
    for got, ref in zip(qc.build(mod, "llvm").run(xs), sess.run(None, {"x": xs})):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


class _ClampedAttention(torch.nn.Module):
    """XGLM's eager attention: masked scores clamped at the float minimum before the softmax
    (``torch.max(scores, finfo.min)``, an ONNX ``Max`` of two inputs)."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = (torch.nn.Linear(16, 16) for _ in range(3))

    def forward(self, x, mask):
        s = self.q(x) @ self.k(x).transpose(-1, -2) * 0.25 + mask
        s = torch.max(s, torch.tensor(torch.finfo(torch.float32).min))
        return torch.softmax(s, -1) @ self.v(x)


def test_clamped_scores_form_the_attention(tmp_path):
    """``maximum(scores + mask, float32 min)`` becomes ``scores + maximum(mask, min)``: the
    attention composite forms (before: none, so k-sort, bfp and kv-prerope refused XGLM with
    "no attention"), and the result is the clamped model's bit for bit in float32 terms, a
    mask of ``-inf`` over a whole row included (uniform attention, not NaN)."""
    import warnings

    torch.manual_seed(0)
    m = _ClampedAttention().eval()
    x = torch.randn(2, 5, 16)
    mask = torch.zeros(2, 5, 5)
    mask[0, :, 3:] = torch.finfo(torch.float32).min
    mask[1, 2, :] = float("-inf")   # a row masked everywhere
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x, mask), str(tmp_path / "m.onnx"), input_names=["x", "mask"], output_names=["y"],
                          dynamo=False, opset_version=17)
    canon = qc.canonicalize(qc.load(tmp_path / "m.onnx").mod)
    hist = op_histogram(canon)
    assert hist.get("composite:qcompile.attention") == 1 and hist.get("stack", 0) == 0, hist
    assert tvm_ffi.structural_equal(canon, qc.canonicalize(canon))
    got = qc.build(canon, "llvm").run(x.numpy(), mask.numpy())[0]
    with torch.no_grad():
        ref = m(x, mask).numpy()
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_multi_input_max_min_mean_are_elementwise(tmp_path):
    """ONNX ``Max``/``Min``/``Mean``/``Sum`` of three inputs (TVM imports them as ``stack`` + a
    reduction over the new axis) become chains of ``maximum``/``minimum``/``add``, the
    constant operand unbroadcast; the values are the same."""
    import onnx
    from onnx import TensorProto, helper

    c = helper.make_tensor("c", TensorProto.FLOAT, [], [0.25])
    nodes = [helper.make_node(op, ["a", "b", "c"], [op.lower()]) for op in ("Max", "Min", "Mean", "Sum")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 4]) for n in "ab"],
                          [helper.make_tensor_value_info(op.lower(), TensorProto.FLOAT, ["n", 4])
                           for op in ("Max", "Min", "Mean", "Sum")], [c])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    canon = qc.canonicalize(qc.load(tmp_path / "m.onnx").mod)
    hist = op_histogram(canon)
    assert hist.get("stack", 0) == 0 and hist.get("maximum") == 2 and hist.get("minimum") == 2, hist
    a, b = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    got = qc.build(canon, "llvm").run(a, b)
    for y, ref in zip(got, (np.maximum(np.maximum(a, b), 0.25), np.minimum(np.minimum(a, b), 0.25),
                            (a + b + 0.25) / 3, a + b + 0.25)):
        np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)


def test_one_part_split_and_concat_are_identities(tmp_path):
    """A ``Split`` into one part and a ``Concat`` of one input (X-MOD's language adapters: the
    batch split by language and joined again) are the tensor itself: nothing is left between
    the linears for the analyses and int-only to walk through (before: ``op 'split' ... has no
    integer lowering``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32), "w")
    nodes = [helper.make_node("Split", ["x"], ["p"], axis=0), helper.make_node("MatMul", ["p", "w"], ["h"]),
             helper.make_node("Concat", ["h"], ["y"], axis=0)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    canon = qc.canonicalize(qc.load(tmp_path / "m.onnx").mod)
    hist = op_histogram(canon)
    assert hist.get("split", 0) == 0 and hist.get("concat", 0) == 0 and hist.get("matmul") == 1, hist
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(qc.build(canon, "llvm").run(x)[0], x @ numpy_helper.to_array(w), rtol=1e-6)
