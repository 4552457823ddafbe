"""kv-prerope: packed-cache kernels bit-exact against NumPy, cache-path analysis on decoder
variants, the RoPE-after-dequantize path against the float model, generation through
prefill + decode artifacts, golden IR of one rewritten layer, and clear refusals."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from tvm import relax, tirx

import qcompile as qc
from qcompile import lm
from qcompile.passes.kvcache import kvquant as kq
from qcompile.calibration import Calibration, Collected
from qcompile.errors import QCompileError
from qcompile.ir import script
from qcompile.analysis.kvcache import cache_paths
from qcompile.models.llama import LlamaConfig, LlamaDecoder, export_onnx
from qcompile.passes.kvcache.prerope import KvPrerope
from qcompile.analysis.residual import Graph

sys.path.insert(0, str(Path(__file__).parent))
from test_golden import GOLDEN, check_golden  # noqa: E402

# ----------------------------------------------------------------------------- kernels


@settings(max_examples=40, deadline=None)
@given(bits=st.sampled_from(kq.BITS), d=st.sampled_from([8, 16, 64]), seed=st.integers(0, 2**31 - 1))
def test_pack_round_trip(bits, d, seed):
    codes = np.random.default_rng(seed).integers(0, 2**bits, (2, 3, 5, d)).astype(np.uint8)
    packed = kq.pack_ref(codes, bits)
    assert packed.shape == (2, 3, 5, d * bits // 8) and packed.dtype == np.uint8
    np.testing.assert_array_equal(kq.unpack_ref(packed, bits), codes)


def test_pack_layout_is_little_endian_bit_stream():
    codes = np.arange(8, dtype=np.uint8)[None]  # 3-bit codes 0..7
    word = sum(int(c) << (3 * i) for i, c in enumerate(codes[0]))
    np.testing.assert_array_equal(kq.pack_ref(codes, 3)[0], [(word >> (8 * r)) & 255 for r in range(3)])


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_pack_layout_is_planar_where_bits_divide_8(bits):
    """Slice ``s`` of the vector (``W = D * bits / 8`` codes) fills bits ``s*bits..`` of every
    byte: a run of consecutive codes is a run of consecutive bytes (the decoder vectorizes)."""
    d = 32
    w = d * bits // 8
    codes = np.random.default_rng(bits).integers(0, 2**bits, (3, d)).astype(np.uint8)
    want = sum(codes[:, s * w:(s + 1) * w].astype(np.int64) << (s * bits) for s in range(8 // bits))
    np.testing.assert_array_equal(kq.pack_ref(codes, bits), want.astype(np.uint8))


def _kernel_module(bits, heads, d, t, sinks, k, per_channel, consts, table=None):
    """Quantize a step into a packed cache of symbolic length P, update the sinks, dequantize."""
    P = tirx.Var("P", "int64")
    x = relax.Var("x", relax.TensorType((1, heads, t, d), "float32"))
    past = relax.Var("past", relax.TensorType((1, heads, P, d * bits // 8), "uint8"))
    sink = relax.Var("sink", relax.TensorType((1, heads, sinks, d), "float16"))
    params = [x, past, sink]
    if k:
        idx = relax.Var("idx", relax.TensorType((1, t, k), "uint8"))
        params.append(idx)
    bb = relax.BlockBuilder()
    with bb.function("main", params):
        with bb.dataflow():
            if per_channel:
                zero, scale, inv = (relax.const(c) for c in consts)
                codes = bb.emit_te(kq.quant_channel_te(bits, table), x, zero, inv)
                extra = []
            else:
                tq = bb.emit_te(kq.quant_token_te(bits, k, table), x, *([idx] if k else []))
                codes = bb.emit(relax.TupleGetItem(tq, 0))
                extra = [bb.emit(relax.TupleGetItem(tq, 1)), bb.emit(relax.TupleGetItem(tq, 2))]
            full = bb.emit(relax.op.concat([past, codes], axis=2))
            new_sink = bb.emit_te(kq.sink_update_te(), sink, x, past)
            args = [full, scale, zero] if per_channel else [codes, *extra]
            deq = bb.emit_te(kq.dequant_te(bits, d, per_channel, sinks, 0, table), *args, new_sink)
            gv = bb.emit_output(relax.Tuple([full, new_sink, deq, *extra]))
        bb.emit_func_output(gv)
    return bb.get()


@pytest.mark.parametrize("bits, nuq", [(b, False) for b in kq.BITS] + [(b, True) for b in (2, 3, 4)])
@pytest.mark.parametrize("per_channel", [True, False])
def test_kernels_bit_exact(bits, nuq, per_channel):
    rng = np.random.default_rng(bits)
    table = None
    if nuq:  # levels from k-means on a skewed sample, in level units
        table = kq.kmeans_levels(rng.beta(2, 5, 5000) * kq.levels(bits), np.ones(5000), bits)
        assert np.all(np.diff(table) > 0) and len(table) == 2 ** bits
    heads, d, t, p, sinks = 2, 16, 5, 3, 4
    x = (rng.normal(size=(1, heads, t, d)) * rng.uniform(0.1, 3, (1, 1, 1, d))).astype(np.float32)
    x[0, 0, 1] = 0.25  # a constant vector: zero per-token range
    lo, hi = x.min((0, 2)) * 0.9, x.max((0, 2)) * 0.9  # some clipping
    scale = ((hi - lo) / kq.levels(bits)).astype(np.float32)
    inv = (1 / scale).astype(np.float32)
    mod = _kernel_module(bits, heads, d, t, sinks, 0, per_channel, (lo.astype(np.float32), scale, inv), table)
    art = qc.build(mod, "llvm")
    past = rng.integers(0, 256, (1, heads, p, d * bits // 8)).astype(np.uint8)
    sink = rng.normal(size=(1, heads, sinks, d)).astype(np.float16)
    full, new_sink, deq, *extra = art.run(x, past, sink)
    if per_channel:
        codes = kq.codes_ref(x, lo[None, :, None], inv[None, :, None], bits, table)
        np.testing.assert_array_equal(full, np.concatenate([past, kq.pack_ref(codes, bits)], 2))
        ref = kq.dequant_ref(kq.unpack_ref(full, bits), scale[None, :, None], lo[None, :, None], new_sink, table=table)
    else:
        zero, sc, iv = kq.token_params_ref(x, bits)
        np.testing.assert_array_equal(extra[0], sc)
        np.testing.assert_array_equal(extra[1], zero)
        codes = kq.codes_ref(x, zero.astype(np.float32), iv, bits, table)
        np.testing.assert_array_equal(full, np.concatenate([past, kq.pack_ref(codes, bits)], 2))
        ref = kq.dequant_ref(codes, sc, zero, new_sink, table=table)
        assert np.all(kq.dequant_ref(codes, sc, zero, table=table)[0, 0, 1] == np.float32(np.float16(0.25)))
    np.testing.assert_array_equal(new_sink, kq.sink_update_ref(sink, x, p))
    np.testing.assert_allclose(deq, ref, rtol=1e-6, atol=1e-6)  # a multiply-add: FMA contraction at most


def test_outliers_left_out_of_the_token_range():
    rng = np.random.default_rng(0)
    heads, d, t, bits = 2, 8, 3, 2
    x = rng.normal(size=(1, heads, t, d)).astype(np.float32)
    x[0, 1, 2, 5] = 40.0
    val, idx = kq.outliers_ref(np.abs(x), x, 1)
    assert idx[0, 2, 0] == 1 * d + 5 and val[0, 2, 0] == 40.0
    mod = _kernel_module(bits, heads, d, t, 1, 1, False, None)
    art = qc.build(mod, "llvm")
    past = np.zeros((1, heads, 0, d * bits // 8), np.uint8)
    _, _, _, scale, zero = art.run(x, past, np.zeros((1, heads, 1, d), np.float16), idx)
    z, s, _ = kq.token_params_ref(x, bits, idx)
    np.testing.assert_array_equal(scale, s)
    assert scale[0, 1, 2, 0] < 2  # the outlier does not stretch its vector's range
    restored = kq.dequant_ref(np.zeros((1, heads, t, d)), s, z, None, val, idx)
    assert restored[0, 1, 2, 5] == 40.0


@pytest.mark.parametrize("past, t, r", [(0, 3, 5), (6, 3, 5), (2, 7, 4), (4, 1, 4)])
def test_recent_window_kernels_bit_exact(past, t, r):
    """The recent-window buffer after a step (the last ``r`` rows of ``concat(old, new)``)
    and both formats' dequantization reading their last positions from it (a cache shorter
    than the window included), bit for bit against NumPy."""
    from qcompile.passes.kvcache import bfp_format as bf

    rng = np.random.default_rng(past * 7 + t)
    heads, d, bits, n = 2, 16, 3, past + t
    x = relax.Var("x", relax.TensorType((1, heads, t, d), "float32"))
    old = relax.Var("old", relax.TensorType((1, heads, r, d), "float16"))
    codes = relax.Var("codes", relax.TensorType((1, heads, n, d * bits // 8), "uint8"))
    sig = relax.Var("sig", relax.TensorType((1, heads, n, d // 2), "uint8"))
    exps = relax.Var("exps", relax.TensorType((1, heads, n, d // 8), "uint8"))
    scale, zero = rng.uniform(0.1, 1, (heads, d)).astype(np.float32), rng.normal(size=(heads, d)).astype(np.float32)
    bb = relax.BlockBuilder()
    with bb.function("main", [x, old, codes, sig, exps]):
        with bb.dataflow():
            new = bb.emit_te(kq.recent_update_te(), old, x)
            sink = bb.emit(relax.op.astype(relax.op.strided_slice(x, axes=[2], begin=[0], end=[1]), "float16"))
            deq = bb.emit_te(kq.dequant_te(bits, d, True, 1, recent=r), codes, relax.const(scale), relax.const(zero),
                             sink, new)
            bdeq = bb.emit_te(bf.dequant_te(4, 8, 0, r), sig, exps, new)
            gv = bb.emit_output(relax.Tuple([new, deq, bdeq]))
        bb.emit_func_output(gv)
    art = qc.build(bb.get(), "llvm")
    xs = rng.normal(size=(1, heads, t, d)).astype(np.float32)
    olds = rng.normal(size=(1, heads, r, d)).astype(np.float16)
    c = rng.integers(0, 256, (1, heads, n, d * bits // 8)).astype(np.uint8)
    s_ = rng.integers(0, 256, (1, heads, n, d // 2)).astype(np.uint8)
    e = rng.integers(100, 140, (1, heads, n, d // 8)).astype(np.uint8)
    new, deq, bdeq = art.run(xs, olds, c, s_, e)
    ref_new = kq.recent_update_ref(olds, xs)
    np.testing.assert_array_equal(new, ref_new)
    np.testing.assert_array_equal(new[:, :, r - min(r, t):], xs[:, :, t - min(r, t):].astype(np.float16))
    sink = xs[:, :, :1].astype(np.float16)
    ref = kq.dequant_ref(kq.unpack_ref(c, bits), scale[None, :, None], zero[None, :, None], sink, recent=ref_new)
    np.testing.assert_allclose(deq, ref, rtol=1e-6, atol=1e-6)  # a multiply-add: FMA contraction at most
    assert np.array_equal(deq[:, :, max(n - r, 1):], ref_new[:, :, r - (n - max(n - r, 1)):].astype(np.float32))
    bref = kq.float_buffers_ref(bf.dequantize_ref(s_, e, 4, 8), None, ref_new)
    np.testing.assert_array_equal(bdeq, bref)


# ----------------------------------------------------------------------------- decoders

VARIANTS = {
    "gqa_half": dict(),
    "mha_interleaved": dict(kv_heads=6, rope="interleaved"),
    "gqa_partial_rotary": dict(rotary_dim=4),
    "qkv_bias_qk_norm": dict(qkv_bias=True, qk_norm=True),
}


def tiny_decoder(tmp_path, chunk=4, layers=2, **kw):
    torch.manual_seed(0)
    c = LlamaConfig(vocab=97, hidden=48, intermediate=80, layers=layers, heads=6, kv_heads=kw.pop("kv_heads", 2),
                    head_dim=8, rope_theta=1000.0, rms_eps=1e-5, tied=True, **kw)
    m = LlamaDecoder(c).eval()
    return m, export_onnx(m, tmp_path / f"dec_t{chunk}.onnx", chunk=chunk)


def _canon(path):
    return qc.PassManager(qc.pipeline("none")).run(qc.load(path).mod)


def _calib(window=16):
    return Calibration({"tokens": np.random.default_rng(1).integers(0, 97, 4 * window)}, window=window, progress=False)


def _logits(art, mod, ids, chunk):
    step, past, out = lm.artifact_step(art), lm.empty_cache_for(mod["main"]), []
    for s in range(0, ids.shape[1], chunk):
        x = ids[:, s:s + chunk]
        logits, past = step(x, *lm.step_feed(x, s), past)
        out.append(logits)
    return np.concatenate(out, 1), past


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cache_paths_found(variant, tmp_path):
    m, path = tiny_decoder(tmp_path, **VARIANTS[variant])
    mod = _canon(path)
    g = Graph(mod)
    params = {p.name: p for p in mod["main"].params}
    layers = cache_paths(g, params["position_ids"], params["input_ids"])
    assert len(layers) == 2
    for i, layer in enumerate(layers):
        assert layer.key.param.name == f"past_key_values_{i}_key" and layer.value.param.name == f"past_key_values_{i}_value"
        assert (layer.key.heads, layer.key.head_dim) == (m.c.kv_heads, 8)
        assert [int(d) for d in layer.key.pre_rope.ty.shape] == [1, m.c.kv_heads, 4, 8]
        assert layer.key.new in layer.key.rope_chain


E2E = {**VARIANTS, "mha_half": dict(kv_heads=6)}


@pytest.mark.parametrize("variant", sorted(E2E))
def test_rope_after_dequantize_matches_float(variant, tmp_path):
    """Sinks covering the whole window: the cache holds float16 pre-RoPE keys, and attention
    re-applies RoPE at each cached token's position; logits must match the float model up to
    float16 storage. Then (for one variant: the 8-bit codes do not depend on the RoPE layout,
    which the float16 check covers for every variant) a real 8-bit cache stays close."""
    _, path = tiny_decoder(tmp_path, **E2E[variant])
    mod0 = _canon(path)
    ids = np.random.default_rng(2).integers(0, 97, (1, 16))
    ref, _ = _logits(qc.build(mod0, "llvm"), mod0, ids, 4)
    calib = _calib()
    cases = [(dict(bits=8, sinks=16), 2e-3)]
    if variant == "gqa_partial_rotary":
        cases.append((dict(bits=8, sinks=1), 2e-2))
    for opts, tol in cases:
        mod = qc.PassManager([KvPrerope(**opts)], calibration=calib).run(mod0)
        out, present = _logits(qc.build(mod, "llvm"), mod, ids, 4)
        err = np.abs(out - ref).max() / np.abs(ref).max()
        assert err < tol, (opts, err)
        assert (out.argmax(-1) == ref.argmax(-1)).mean() >= 0.9
    assert present[0].dtype == np.uint8 and present[0].shape[2] == 16  # the packed key codes of 16 tokens


def test_kmeans_levels_fit_the_data():
    rng = np.random.default_rng(0)
    u = np.concatenate([rng.normal(1.5, 0.05, 3000), rng.normal(4.3, 0.05, 1000)])  # between uniform levels
    t = kq.kmeans_levels(u, np.ones_like(u), 3)
    err_nuq = np.min(np.abs(u[:, None] - t), 1).mean()
    err_uni = np.min(np.abs(u[:, None] - np.arange(8)), 1).mean()
    assert err_nuq < 0.5 * err_uni


@pytest.fixture(scope="module")
def float_reference(tmp_path_factory):
    """The tiny decoder canonicalized, 16 token ids, and its float artifact's logits and present
    cache on them (exported and built once for the modules' tests)."""
    _, path = tiny_decoder(tmp_path_factory.mktemp("float_reference"))
    mod0 = _canon(path)
    ids = np.random.default_rng(3).integers(0, 97, (1, 16))
    return (mod0, ids, *_logits(qc.build(mod0, "llvm"), mod0, ids, 4))


@pytest.mark.parametrize("keys", ["pre-rope", "post-rope", "per-token"])
def test_modes_and_bytes(keys, float_reference):
    mod0, ids, ref, _ = float_reference
    pm = qc.PassManager([KvPrerope(bits=3, keys=keys, outliers=0.05)], calibration=_calib())
    mod = pm.run(mod0)
    out, present = _logits(qc.build(mod, "llvm"), mod, ids, 4)
    assert np.abs(out - ref).max() / np.abs(ref).max() < 0.1
    lay = pm.records[-1].notes["kv_cache"]
    # per token: 2 heads x 8 x 3 bits = 6 bytes of codes per K and V, 1 outlier (f16 + u8) each,
    # per-token scale + zero (2 x f16 x 2 heads) for values (and for per-token keys)
    per_tok = 2 * 2 * (6 + 3) + 2 * 8 + (2 * 8 if keys == "per-token" else 0)
    assert lay["bytes_per_token"] == per_tok
    cached = sum(p.nbytes for p in present) - 2 * 2 * lay["sinks"] * 2 * 8 * 2
    assert cached == 16 * per_tok  # what the artifact really returned
    assert lay["float16_bytes_per_token"] == 2 * 2 * 2 * 8 * 2


def test_recent_window_and_rotation(float_reference):
    """KIVI's window: with the last 16 positions in float16 (the whole 16-token text) a 2-bit
    cache gives the float model's logits up to float16 storage; with the last 4 it is nearer
    than without any. The window is a fixed buffer, counted in the fixed bytes. QuaRot's
    online rotation of the per-token caches: the window holds ``x Q`` (what is encoded), and
    the decoded cache is multiplied back by ``Q^T``; per-channel keys are never rotated."""
    from qcompile.hadamard import random_orthogonal_hadamard

    mod0, ids, ref, ref_cache = float_reference
    q = random_orthogonal_hadamard(8, seed=0)[0]
    errs, means = {}, {}
    for keys, recent, rotate, rotated in (("pre-rope", 0, False, []), ("pre-rope", 4, False, []),
                                          ("pre-rope", 16, True, ["values"]),
                                          ("per-token", 16, True, ["keys", "values"])):
        pm = qc.PassManager([KvPrerope(bits=2, keys=keys, recent=recent, rotate=rotate)], calibration=_calib())
        mod = pm.run(mod0)
        out, present = _logits(qc.build(mod, "llvm"), mod, ids, 4)
        errs[keys, recent] = np.abs(out - ref).max() / np.abs(ref).max()
        means[keys, recent] = np.abs(out - ref).mean()
        lay = pm.records[-1].notes["kv_cache"]
        assert lay["rotated"] == rotated
        assert lay["recent_bytes"] == 2 * 2 * recent * 2 * 8 * 2  # layers x (K, V) x R x heads x D x f16
        assert lay["fixed_bytes"] == lay["sink_bytes"] + lay["recent_bytes"] + lay["constant_bytes"]
        got = dict(zip([p.name for p in mod["main"].params][3:], present))
        if recent:
            assert got["past_key_values_0_value_recent"].shape == (1, 2, recent, 8)
            v = ref_cache[1][:, :, -recent:]  # layer 0's values: those of the float model
            np.testing.assert_allclose(got["past_key_values_0_value_recent"], v @ q if rotate else v, atol=2e-3)
    assert errs["per-token", 16] < 2e-3 and errs["pre-rope", 16] < 2e-3, errs
    assert errs["pre-rope", 0] > 1e-2 and means["pre-rope", 0] > means["pre-rope", 4] > means["pre-rope", 16], means


def test_fisher_weights_are_squared_loss_gradients(tmp_path):
    """KVQuant's sensitivity weights: the squared gradient of the next-token loss at a sampled
    key entry matches a finite difference of the loss; the pass fits its nuq levels to
    them (other levels than the count-weighted k-means) and refuses a file of another model."""
    from qcompile.models.llama import step_inputs
    from qcompile.passes.kvcache import fisher as fi

    m, path = tiny_decoder(tmp_path)
    m = m.double()  # a float64 finite difference
    tokens = np.random.default_rng(5).integers(0, 97, 30)

    def forward(x):
        return m(x, *step_inputs(x, 0), *[c.double() for c in m.empty_cache()])[0]

    stats = fi.collect(m, tokens, window=16, bos=1, samples=8, forward=forward, progress=False)
    assert sorted(stats) == sorted(f"{p}{r}{i}" for p in ("", "g") for r in "kv" for i in range(2))
    assert stats["k0"].shape == (8, 16) and np.all(stats["gk1"] >= 0) and stats["gv0"].max() > 0

    # the gradient of one key entry by a central difference: window 0, its sampled positions
    # (neither the BOS, which the sink holds, nor the last, which no later token reads)
    pos = 1 + np.sort(np.random.default_rng(0).choice(14, size=4, replace=False))
    ids = torch.from_numpy(np.concatenate([[1], tokens[:15]]))[None]
    t, c = int(pos[1]), 5

    def loss(delta):
        def bump(_m, _i, out):
            out = out.clone()
            out[0, t, c] += delta
            return out
        h = m.layers[1].self_attn.k_proj.register_forward_hook(bump)
        try:
            with torch.no_grad():
                logits = forward(ids)
            return float(torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="sum"))
        finally:
            h.remove()

    g = (loss(1e-5) - loss(-1e-5)) / 2e-5
    assert g * g > 1e-6 * stats["gk1"].max()  # an entry that matters
    np.testing.assert_allclose(stats["gk1"][1, c], g * g, rtol=1e-4)

    f = tmp_path / "fisher.npz"
    fi.save(stats, f)
    mod0 = _canon(path)
    mod = qc.PassManager([KvPrerope(bits=3, nuq=True, fisher=str(f))], calibration=_calib()).run(mod0)
    specs = [json.loads(str(fn.attrs[kq.DEQUANT_ATTR])) for _, fn in mod.functions_items()
             if isinstance(fn, tirx.PrimFunc) and fn.attrs and kq.DEQUANT_ATTR in fn.attrs]
    value_tables = [np.array(sp["table"]) for sp in specs if not sp["per_channel"]]
    # layer 0's value levels: k-means of its row-normalized samples weighted by their Fisher information
    x, w = stats["v0"].reshape(-1, 2, 8), stats["gv0"].reshape(-1, 2, 8)
    lo, hi = x.min(-1, keepdims=True), x.max(-1, keepdims=True)
    u = (x - lo) / np.where(hi > lo, hi - lo, 1) * 7
    weighted, counted = kq.kmeans_levels(u, w, 3), kq.kmeans_levels(u, np.ones_like(w), 3)
    assert not np.allclose(weighted, counted, atol=1e-3)
    assert any(np.allclose(t, weighted, atol=1e-5) for t in value_tables)
    assert not any(np.allclose(t, counted, atol=1e-3) for t in value_tables)
    with pytest.raises(QCompileError, match="nuq=true"):
        KvPrerope(bits=3, fisher=str(f))
    fi.save({k: v[:, :8] for k, v in stats.items()}, f)
    with pytest.raises(QCompileError, match="another model"):
        qc.PassManager([KvPrerope(bits=3, nuq=True, fisher=str(f))], calibration=_calib()).run(mod0)


def test_generation_prefill_and_decode(tmp_path):
    """Prefill (4-token steps) and decode (1-token steps) artifacts share one calibration and
    one packed cache; with every position a float16 sink the greedy text is the float model's."""
    m, p4 = tiny_decoder(tmp_path, chunk=4)
    p1 = export_onnx(m, tmp_path / "dec_t1.onnx", chunk=1)
    pre, dec = _canon(p4), _canon(p1)
    prompt = list(np.random.default_rng(4).integers(0, 97, 9))
    steps = {}
    for name, mod in (("prefill", pre), ("decode", dec)):
        steps[name] = lm.artifact_step(qc.build(mod, "llvm"))
    want = lm.generate(steps["prefill"], steps["decode"], 4, prompt, 6, lm.empty_cache_for(pre["main"]))
    calib = _calib()
    stats = calib.collect(pre, KvPrerope().calibration_requests(pre))
    opts = dict(bits=8, sinks=32)
    mods = {"prefill": qc.PassManager([KvPrerope(**opts)], calibration=Collected(stats)).run(pre),
            "decode": qc.PassManager([KvPrerope(**opts)], calibration=Collected(stats, by_order=True)).run(dec)}
    art = {k: lm.artifact_step(qc.build(v, "llvm")) for k, v in mods.items()}
    got = lm.generate(art["prefill"], art["decode"], 4, prompt, 6, lm.empty_cache_for(mods["prefill"]["main"]))
    assert got == want


def test_golden_layer(tmp_path, update_golden):
    _, path = tiny_decoder(tmp_path, layers=1)
    mod = qc.PassManager([KvPrerope(bits=3, outliers=0.05)], calibration=_calib()).run(_canon(path))
    check_golden(script(mod), GOLDEN / "kv_prerope_llama_layer.py", update_golden)


# ----------------------------------------------------------------------------- refusals


def test_refuses_a_model_without_cache():
    mod = _canon(Path(qc.__file__).parent / "models/assets/vit_fmnist.onnx")
    with pytest.raises(QCompileError, match="input_ids"):
        KvPrerope().transform(mod, None)


@pytest.mark.parametrize("opts, match", [(dict(bits=5), "5-bit"), (dict(keys="pre"), "not a mode"),
                                         (dict(outliers=0.7), "outliers"), (dict(recent=-1), "recent"),
                                         (dict(nuq=True, rotate=True), "do not combine"),
                                         (dict(fisher="f.npz"), "nuq=true")])
def test_bad_options(opts, match):
    with pytest.raises(QCompileError, match=match):
        KvPrerope(**opts)


def test_missing_calibration_is_a_clear_error(tmp_path):
    _, path = tiny_decoder(tmp_path)
    with pytest.raises(QCompileError, match="needs calibration data"):
        qc.PassManager([KvPrerope()]).run(_canon(path))
    qc.PassManager([KvPrerope(keys="per-token")]).run(_canon(path))  # per-token keys need none


def test_cli_compiles_and_reports_bytes(tmp_path):
    _, path = tiny_decoder(tmp_path)
    calib = tmp_path / "calib.npz"
    np.savez(calib, tokens=np.random.default_rng(5).integers(0, 97, 64))
    from qcompile.cli import main

    out = tmp_path / "out"
    assert main([str(path), "--pipeline", "kv-prerope", "--target", "llvm", "-o", str(out),
                 "--calib-data", str(calib), "--calib-window", "16"]) == 0
    report = (out / "report.md").read_text()
    assert "KV cache" in report and "bytes per token" in report
    bad = tmp_path / "bad"
    assert main([str(path), "--pipeline", "kv-prerope", "--target", "llvm", "-o", str(bad)]) != 0
    assert not bad.exists()


def test_torch_export_graph(tmp_path):
    """torch.export of the decoder (static past length 4; GQA attention as 3-D bmm, which the
    canonicalizer folds back into the attention composite): the cache paths are found, and the
    packed step with every cached position a float16 sink matches the torch module."""
    from qcompile.models.llama import step_inputs

    m, _ = tiny_decoder(tmp_path)
    ids = torch.randint(0, 97, (1, 4), generator=torch.Generator().manual_seed(0))
    mask, pos = step_inputs(ids, 4)
    past = [torch.randn(1, 2, 4, 8, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    mod = qc.PassManager(qc.pipeline("none")).run(qc.load(m, example_inputs=(ids, mask, pos, *past)).mod)
    g = Graph(mod)
    params = {p.name: p for p in mod["main"].params}
    layers = cache_paths(g, params["position_ids"], params["input_ids"])
    assert len(layers) == 2 and [int(d) for d in layers[0].key.pre_rope.ty.shape] == [1, 2, 4, 8]
    packed = qc.PassManager([KvPrerope(bits=8, sinks=8, keys="per-token")]).run(mod)
    args = [ids.numpy(), mask.numpy(), pos.numpy()]
    for t in past:  # codes, scale, zero (unused: all 8 positions are sinks), sinks
        sink = np.zeros((1, 2, 8, 8), np.float16)
        sink[:, :, :4] = t.numpy()
        args += [np.zeros((1, 2, 4, 8), np.uint8), np.zeros((1, 2, 4, 1), np.float16),
                 np.zeros((1, 2, 4, 1), np.float16), sink]
    out = qc.build(packed, "llvm").run(*args)
    with torch.no_grad():
        ref = m(ids, mask, pos, *[t.half().float() for t in past])[0].numpy()
    assert np.abs(out[0] - ref).max() < 1e-3 * np.abs(ref).max()


def test_composes_with_rotate(tmp_path):
    """rotate+kv-prerope: the rotated graph (its output returned through an alias) still has
    its cache paths; with every position a float16 sink the logits stay the float model's."""
    from qcompile.passes.rotate import Rotate

    _, path = tiny_decoder(tmp_path)
    mod0 = _canon(path)
    ids = np.random.default_rng(6).integers(0, 97, (1, 16))
    ref, _ = _logits(qc.build(mod0, "llvm"), mod0, ids, 4)
    assert [p.name for p in qc.pipeline("rotate+kv-prerope")] == ["canonicalize", "rotate", "kv-prerope"]
    mod = qc.PassManager([Rotate(), KvPrerope(bits=8, sinks=16)], calibration=_calib()).run(mod0)
    out, _ = _logits(qc.build(mod, "llvm"), mod, ids, 4)
    assert np.abs(out - ref).max() < 2e-3 * np.abs(ref).max()
