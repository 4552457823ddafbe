"""The llvm decode-attention kernel (qcompile/backends/decode_attention.py): against NumPy
over symbolic lengths (grouped queries, multi-query broadcasting, masks, a divided scale,
a head size that is not a multiple of the lanes), and in place in a zoo decoder, where
every attention over the cache is rewritten and the artifact still matches onnxruntime."""
import numpy as np
import onnxruntime as ort
import pytest
import tvm
from tvm import te, tirx

import qcompile as qc
from qcompile.backends import decode_attention as da
from qcompile.backends.llvm import make_target
from qcompile.models import zoo


def _reference(q, k, v, s, m, inverse):
    if k.shape[1] not in (1, q.shape[1]):  # grouped-query: repeat_kv
        k, v = (np.repeat(t, q.shape[1] // t.shape[1], axis=1) for t in (k, v))
    lg = q @ np.swapaxes(k, -1, -2)
    lg = lg / s if inverse else lg * s
    if m is not None:
        lg = lg + m
    p = np.exp(lg - lg.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


@pytest.mark.parametrize("qs,ks,ms,inverse,dv", [
    ((1, 3, 3, 64), (1, 3, None, 64), (1, 1, 3, None), False, None),   # GQA grouped as [kv heads, group, D]
    ((2, 4, 1, 16), (2, 1, None, 16), (2, 1, 1, None), False, None),   # multi-query: one K/V head
    ((1, 2, 5, 20), (1, 2, None, 20), None, True, None),               # no mask, divided scale, D % 16 != 0
    ((1, 2, 3, 24), (1, 2, None, 24), (1, 1, 3, None), False, 16),     # latent attention: value head 16 < 24
    ((2, 6, 2, 16), (2, 2, None, 16), (2, 1, 2, None), False, None),   # 6 query heads on 2 KV heads (h // 3)
], ids=["gqa", "mqa", "nomask", "mla", "kv_heads"])
def test_kernel_matches_numpy(qs, ks, ms, inverse, dv):
    L = tirx.Var("L", "int64")
    sym = lambda s: tuple(L if d is None else d for d in s)  # noqa: E731
    vs = ks if dv is None else (*ks[:-1], dv)
    q, k, v = te.placeholder(qs, name="q"), te.placeholder(sym(ks), name="k"), te.placeholder(sym(vs), name="v")
    s = te.placeholder((), name="s")
    m = te.placeholder(sym(ms), name="m") if ms else None
    out = da.attention_te(q, k, v, s, m, inverse=inverse)
    f = da.schedule(te.create_prim_func([q, k, v, s, *([m] if m is not None else []), out]))
    ex = tvm.compile(tvm.IRModule({"main": f.with_attr("global_symbol", "main")}), target=make_target(None))
    rng = np.random.default_rng(0)
    for n in (1, 7, 300):
        fix = lambda s: tuple(n if d is None else d for d in s)  # noqa: E731
        a = [rng.standard_normal(qs), rng.standard_normal(fix(ks)), rng.standard_normal(fix(vs)), np.array(0.3)]
        if ms:
            a.append(np.where(rng.random(fix(ms)) < 0.3, -3.4e38, 0.0))
            a[-1][..., 0] = 0.0  # every row keeps a position
        a = [x.astype(np.float32) for x in a]
        o = tvm.runtime.tensor(np.zeros((*qs[:-1], vs[-1]), np.float32))
        ex["main"](*[tvm.runtime.tensor(x) for x in a], o)
        ref = _reference(*[x.astype(np.float64) for x in a], *([] if ms else [None]), inverse)
        np.testing.assert_allclose(o.numpy(), ref, rtol=1e-4, atol=1e-5)


def test_compound_query_length():
    """An encoder's self-attention over ``n // 10 - 1`` frames (a strided conv's output
    length, WavLM): queries and keys share the compound length, so the fused (batch, head,
    query) loop has no affine split to vectorize under; the kernel still compiles (rows of
    (batch, head) in parallel) and matches NumPy, and ``func`` is not left half-scheduled."""
    n = tirx.Var("n", "int64")
    T = n // 10 - 1
    q, k, v = (te.placeholder((2, 4, T, 16), name=x) for x in "qkv")
    s, m = te.placeholder((), name="s"), te.placeholder((2, 4, T, T), name="m")
    func = te.create_prim_func([q, k, v, s, m, da.attention_te(q, k, v, s, m), n])
    before = func.script()
    f = da.schedule(func)
    assert func.script() == before
    assert "T.parallel(8)" in f.script()  # the fallback: 2 x 4 (batch, head) rows
    ex = tvm.compile(tvm.IRModule({"main": f.with_attr("global_symbol", "main")}), target=make_target(None))
    rng = np.random.default_rng(0)
    for samples in (27, 95, 410):
        frames = samples // 10 - 1
        a = [rng.standard_normal((2, 4, frames, 16)) for _ in "qkv"] + [np.array(0.25)]
        a.append(rng.standard_normal((2, 4, frames, frames)))
        a = [x.astype(np.float32) for x in a]
        o = tvm.runtime.tensor(np.zeros((2, 4, frames, 16), np.float32))
        ex["main"](*[tvm.runtime.tensor(x) for x in a], o, samples)
        np.testing.assert_allclose(o.numpy(), _reference(*[x.astype(np.float64) for x in a], False),
                                   rtol=1e-4, atol=1e-5)


def test_zoo_decoder_attention_rewritten_and_matches_onnxruntime():
    """Llama (GQA, an Optimum export): both layers' attentions read the untransposed cache in
    the one kernel (the transposes are gone), each query head its KV head directly (the
    repeated copies of the cache ``repeat_kv`` makes are gone), prefill and a decode step
    match onnxruntime."""
    arch = zoo.ZOO["llama"]
    mod = qc.PassManager(qc.pipeline("none")).run(qc.load(str(arch.onnx)).mod)

    def repeats(m):  # float 5-D broadcasts: repeat_kv's [b, kv, group, L, D]
        return sum(1 for line in m["main"].script().splitlines()
                   if "R.broadcast_to(" in line and 'dtype="float32"' in line and line.count(",") >= 9
                   and "R.Tensor((batch_size, 2, 2," in line)
    assert repeats(mod) == 2 * arch.kwargs["num_hidden_layers"]
    assert repeats(da.rewrite(mod)[0]) == 0
    art = qc.build(mod, "llvm")
    assert art.info["decode_attentions"] == arch.kwargs["num_hidden_layers"]
    sess = ort.InferenceSession(str(arch.onnx), providers=["CPUExecutionProvider"])
    for got, ref in zoo._decode_two_steps(art, mod["main"], sess, arch.onnx):
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-4, atol=1e-4)


def test_nan_guard_row_masked_everywhere_is_zero():
    """SDPA's guard ``where(isnan(p), 0, p)``: a row masked everywhere with ``-inf`` (a padded
    query) gives 0, as the float model does; the other rows are plain attention."""
    L = tirx.Var("L", "int64")
    q, k, v = te.placeholder((1, 2, 3, 16), name="q"), te.placeholder((1, 2, L, 16), name="k"), \
        te.placeholder((1, 2, L, 16), name="v")
    s, m = te.placeholder((), name="s"), te.placeholder((1, 1, 3, L), name="m")
    out = da.attention_te(q, k, v, s, m, nan_guard=True)
    f = da.schedule(te.create_prim_func([q, k, v, s, m, out]))
    ex = tvm.compile(tvm.IRModule({"main": f.with_attr("global_symbol", "main")}), target=make_target(None))
    rng = np.random.default_rng(1)
    a = [rng.standard_normal(sh).astype(np.float32) for sh in ((1, 2, 3, 16), (1, 2, 9, 16), (1, 2, 9, 16))]
    mask = np.zeros((1, 1, 3, 9), np.float32)
    mask[..., 1, :] = -np.inf
    o = tvm.runtime.tensor(np.zeros((1, 2, 3, 16), np.float32))
    ex["main"](*[tvm.runtime.tensor(x) for x in (*a, np.array(0.25, np.float32), mask)], o)
    got = o.numpy()
    assert np.all(got[:, :, 1] == 0)
    ref = _reference(*[x.astype(np.float64) for x in a], 0.25, np.where(np.isinf(mask), 0, mask), False)
    np.testing.assert_allclose(got[:, :, [0, 2]], ref[:, :, [0, 2]], rtol=1e-4, atol=1e-5)


def test_packed_value_cache_read_inside_the_kernel(tmp_path, monkeypatch):
    """kv-prerope's value cache read packed (``FUSE_DEQUANT``, off by default as it measured
    slower): the kernel dequantizes each value where ``P @ V`` reads it (the ``kv_dequant``
    kernel of the values is gone, so the float copy of the value cache is never written),
    with the same results as the dequantize-then-attend path, prefill and decode step, and
    close to onnxruntime."""
    arch = zoo.ZOO["llama"]
    path = arch.onnx
    feeds = [zoo.onnx_feed(path, batch=2, seq=8, seed=100 + i) for i in range(4)]
    np.savez(tmp_path / "c.npz", **{k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]})
    cal = qc.Calibration(str(tmp_path / "c.npz"), batch=2, progress=False)
    mod = qc.PassManager(qc.pipeline("kv-prerope"), calibration=cal).run(qc.load(str(path)).mod)

    def dequants(m):
        return sum(1 for blk in m["main"].body.blocks for b in blk.bindings
                   if getattr(getattr(b.value, "op", None), "name", "") == "relax.call_tir"
                   and b.value.args[0].name_hint.startswith("kv_dequant"))

    layers = arch.kwargs["num_hidden_layers"]
    monkeypatch.setattr(da, "FUSE_DEQUANT", True)  # (off by default: see FUSE_DEQUANT)
    assert dequants(mod) == 2 * layers and dequants(da.rewrite(mod)[0]) == layers  # keys: RoPE after
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    fused = zoo._decode_two_steps(qc.build(mod, "llvm"), mod["main"], sess, path)
    monkeypatch.setattr(da, "FUSE_DEQUANT", False)
    plain = zoo._decode_two_steps(qc.build(mod, "llvm"), mod["main"], sess, path)
    for (gf, ref), (gp, _) in zip(fused, plain):
        for a, b in zip(gf, gp):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        assert zoo._cosine(gf[0], ref[0]) >= zoo.TOLERANCE["kv-prerope"]


def test_probabilities_read_twice_keep_their_own_attention(tmp_path):
    """Differential attention (DiffLlama) reads one softmax with two value halves: the
    attention composite returns a tuple (P, P @ V2), which the decode-attention kernel (one
    output) must leave alone (before: TVM's "The type of Tuple must be TupleType" in the llvm
    build). Over a symbolic length, equal to torch at two lengths."""
    import warnings

    import torch

    class TwoValues(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.o = torch.nn.Linear(16, 32), torch.nn.Linear(32, 16)
            self.k, self.v = torch.nn.Linear(16, 16), torch.nn.Linear(16, 16)

        def forward(self, x):
            b, t, _ = x.shape
            q = self.q(x).view(b, t, 4, 8).transpose(1, 2)
            k, v = (f(x).view(b, t, 2, 8).transpose(1, 2).repeat_interleave(2, dim=1) for f in (self.k, self.v))
            p = torch.softmax(q @ k.transpose(-1, -2) * 0.35, dim=-1)
            v1, v2 = v.chunk(2, dim=-1)
            y = torch.cat([p @ v1, p @ v2], dim=-1) - 0.5 * (p @ v)
            return self.o(y.transpose(1, 2).reshape(b, t, 32))

    torch.manual_seed(0)
    m = TwoValues().eval()
    path = tmp_path / "two.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(1, 6, 16),), str(path), input_names=["x"], output_names=["y"],
                          dynamo=True, dynamic_shapes={"x": {1: torch.export.Dim("seq", min=2, max=64)}},
                          verbose=False)
    from tvm import relax

    mod = qc.PassManager(qc.pipeline("none")).run(qc.load(str(path)).mod)
    tuples = [b.var for blk in mod["main"].body.blocks for b in blk.bindings
              if isinstance(b.value, relax.Call) and isinstance(b.value.op, relax.GlobalVar)
              and str((mod[b.value.op].attrs or {}).get("Composite", "")) == "qcompile.attention"
              and isinstance(b.var.ty, relax.TupleType)]
    assert len(tuples) == 1 and not set(tuples) & set(da.find(mod))  # the form this test is about
    art = qc.build(mod, "llvm")
    for t in (3, 9):
        x = torch.randn(1, t, 16)
        with torch.no_grad():
            np.testing.assert_allclose(art.run(x.numpy())[0], m(x).numpy(), rtol=1e-5, atol=1e-6)
