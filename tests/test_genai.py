"""onnxruntime-genai's decoders: ``GroupQueryAttention`` (packed or separate QKV, RoPE inside,
a cache buffer with per-row valid lengths ``seqlens_k``) and the contrib ``RotaryEmbedding``,
decomposed into standard ONNX before import (``qcompile/frontend/decompose.py``) as
onnxruntime computes them on the CPU; each compared with onnxruntime's own kernel.

The real models are the zoo's tiny decoders built by onnxruntime-genai's model builder
(``python qcompile/models/zoo.py export-genai``, committed under ``tests/zoo/genai/``): the
published form of Phi-3, Llama, Qwen and Gemma ONNX models. Before: ``unsupported op: node
'/model/layers.0/attn/GroupQueryAttention' has op type 'com.microsoft::GroupQueryAttention'``.
"""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import qcompile as qc
from qcompile.frontend.onnx_prepare import concat_fixed_dims
from qcompile.models import zoo

N, KV = 4, 2  # query heads, KV heads


def _gqa_model(path, h=16, attrs=None, packed=True, rotary=True, rd=None, sink=False, pos=False, bias=False,
               fixed=None):
    """One GroupQueryAttention node; ``fixed``: (B, S, P) to fix every dim (attention_bias)."""
    vi = helper.make_tensor_value_info
    b, s, p = fixed or ("b", "s", "p")
    t = p + s if fixed else "t"
    ins, names, inits = [], [], []
    if packed:
        ins.append(vi("qkv", TensorProto.FLOAT, [b, s, (N + 2 * KV) * h]))
        names += ["qkv", "", ""]
    else:
        ins += [vi("q", TensorProto.FLOAT, [b, s, N * h]), vi("k", TensorProto.FLOAT, [b, s, KV * h]),
                vi("v", TensorProto.FLOAT, [b, s, KV * h])]
        names += ["q", "k", "v"]
    ins += [vi("pk", TensorProto.FLOAT, [b, KV, p, h]), vi("pv", TensorProto.FLOAT, [b, KV, p, h]),
            vi("seqlens_k", TensorProto.INT32, [b]), vi("total", TensorProto.INT32, [])]
    names += ["pk", "pv", "seqlens_k", "total"]
    if rotary:
        rd = rd or h
        ang = np.outer(np.arange(64), 1.0 / 10000 ** (np.arange(rd // 2) / (rd // 2))).astype(np.float32)
        inits += [numpy_helper.from_array(np.cos(ang), "cos"), numpy_helper.from_array(np.sin(ang), "sin")]
        names += ["cos", "sin"]
    else:
        names += ["", ""]
    if pos:
        ins.append(vi("pos", TensorProto.INT64, [b, s]))
    names.append("pos" if pos else "")
    if bias:
        ins.append(vi("bias", TensorProto.FLOAT, [b, 1, s, t]))
    names.append("bias" if bias else "")
    if sink:
        inits.append(numpy_helper.from_array(np.array([0.5, -1, 2, 0], np.float32), "sink"))
    names.append("sink" if sink else "")
    while names[-1] == "":
        names.pop()
    node = helper.make_node("GroupQueryAttention", names, ["y", "pk2", "pv2"], domain="com.microsoft", name="gqa",
                            num_heads=N, kv_num_heads=KV, do_rotary=int(rotary), **(attrs or {}))
    outs = [vi("y", TensorProto.FLOAT, [b, s, N * h]), vi("pk2", TensorProto.FLOAT, [b, KV, t, h]),
            vi("pv2", TensorProto.FLOAT, [b, KV, t, h])]
    onnx.save(helper.make_model(helper.make_graph([node], "g", ins, outs, inits),
                                opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]),
              str(path))


def _gqa_feed(rng, b, s, p, lens, h=16, packed=True):
    """Inputs for rows of valid lengths ``lens`` (past + new) over a ``p``-position past buffer."""
    f = {"qkv": rng.standard_normal((b, s, (N + 2 * KV) * h))} if packed else {
        "q": rng.standard_normal((b, s, N * h)), "k": rng.standard_normal((b, s, KV * h)),
        "v": rng.standard_normal((b, s, KV * h))}
    f.update(pk=rng.standard_normal((b, KV, p, h)), pv=rng.standard_normal((b, KV, p, h)))
    f = {k: v.astype(np.float32) for k, v in f.items()}
    f["seqlens_k"] = np.array([n - 1 for n in lens], np.int32)
    f["total"] = np.array(max(lens), np.int32)  # 0-d, as onnxruntime-genai feeds it
    return f


def _compare(path, feed, rows):
    """qcompile (llvm, ``none``) against onnxruntime: the output's valid query rows and the
    present caches' valid positions of each batch row (``rows``: (query rows, cache length))."""
    model = qc.load(str(path))
    got = qc.build(qc.PassManager(qc.pipeline("none")).run(model.mod), "llvm").run(
        *[feed[s.name] for s in model.inputs])
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    for b, (q_rows, n) in enumerate(rows):
        np.testing.assert_allclose(got[0][b, :q_rows], ref[0][b, :q_rows], rtol=1e-5, atol=1e-5)
        for i in (1, 2):
            np.testing.assert_allclose(got[i][b, :, :n], ref[i][b, :, :n], rtol=1e-5, atol=1e-5)


# (name, batch, new tokens, past buffer, valid lengths, model options)
CASES = [
    ("prompt", 2, 5, 0, [5, 5], {}),
    ("prompt right-padded", 2, 5, 0, [5, 3], {}),
    ("decode, rows of different lengths", 2, 1, 6, [5, 7], {}),
    # onnxruntime-genai's shared buffer: the past is max_length long, valid up to seqlens_k
    ("decode in a longer buffer", 2, 1, 16, [5, 7], {}),
    ("chunk after a past, separate QKV", 1, 3, 4, [7], {"packed": False}),
    ("interleaved, sliding window", 1, 3, 4, [7], {"attrs": {"rotary_interleaved": 1, "local_window_size": 2}}),
    ("partial rotary, softcap", 1, 3, 4, [7], {"h": 32, "rd": 16, "attrs": {"softcap": 2.0}}),
    ("no rotary, head sink, scale", 1, 3, 4, [7], {"rotary": False, "sink": True, "attrs": {"scale": 0.3}}),
    ("smooth softmax", 1, 3, 4, [7], {"attrs": {"smooth_softmax": 1}}),
]


@pytest.mark.parametrize("name,b,s,p,lens,opts", CASES, ids=[c[0] for c in CASES])
def test_group_query_attention_matches_onnxruntime(tmp_path, name, b, s, p, lens, opts):
    h = opts.get("h", 16)
    _gqa_model(tmp_path / "m.onnx", **opts)
    feed = _gqa_feed(np.random.default_rng(0), b, s, p, lens, h, opts.get("packed", True))
    rows = [(min(s, n), n) for n in lens]
    _compare(tmp_path / "m.onnx", feed, rows)


def test_group_query_attention_with_bias(tmp_path):
    """An additive ``attention_bias`` after the softcap (fixed dims: the bias's key axis is the
    present's)."""
    _gqa_model(tmp_path / "m.onnx", bias=True, fixed=(1, 3, 4), attrs={"softcap": 3.0})
    rng = np.random.default_rng(1)
    feed = _gqa_feed(rng, 1, 3, 4, [7])
    feed["bias"] = rng.standard_normal((1, 1, 3, 7)).astype(np.float32)
    _compare(tmp_path / "m.onnx", feed, [(3, 7)])


@pytest.mark.parametrize("opts,why", [
    # Gemma-2 from onnxruntime-genai: the cache a ring buffer of the window's size
    ({"attrs": {"local_window_size": 4, "sliding_window_cache": 1}}, "sliding_window_cache"),
    # onnxruntime reads them as one offset in a first prompt and per row after it
    ({"pos": True}, "position_ids"),
])
def test_what_group_query_attention_does_not_decompose_is_refused_saying_why(tmp_path, opts, why):
    """Not decomposed, and the loader names the node and the reason."""
    _gqa_model(tmp_path / "m.onnx", **opts)
    with pytest.raises(qc.UnsupportedOpError, match=f"gqa.*GroupQueryAttention.*{why}"):
        qc.load(str(tmp_path / "m.onnx"))


def test_group_query_attention_norm_inputs_are_refused(tmp_path):
    """Newer onnxruntime releases take per-head q/k RMSNorm weights as inputs 14 and 15 (no
    attribute says so): a node that has them is refused, never decomposed without its norm."""
    _gqa_model(tmp_path / "m.onnx")
    m = onnx.load(str(tmp_path / "m.onnx"))
    node = m.graph.node[0]
    while len(node.input) < 14:
        node.input.append("")
    node.input.append("qn")
    m.graph.initializer.append(numpy_helper.from_array(np.ones(16, np.float32), "qn"))
    onnx.save(m, str(tmp_path / "m.onnx"))
    with pytest.raises(qc.UnsupportedOpError, match="inputs beyond head_sink \\(qn\\)"):
        qc.load(str(tmp_path / "m.onnx"))


@pytest.mark.parametrize("rank,offset,interleaved", [(3, False, 0), (4, True, 1), (3, True, 0), (4, "0-d", 0)])
def test_contrib_rotary_embedding_matches_onnxruntime(tmp_path, rank, offset, interleaved):
    """onnxruntime's contrib ``RotaryEmbedding``: positions ``[B, S]`` or one offset, heads in
    their own axis or in the hidden one (their count from the tables' width)."""
    b, s, h = 2, 5, 16
    vi = helper.make_tensor_value_info
    shape = [b, s, N * h] if rank == 3 else [b, N, s, h]
    ang = np.random.default_rng(0).standard_normal((32, h // 2)).astype(np.float32)
    inits = [numpy_helper.from_array(np.cos(ang), "cos"), numpy_helper.from_array(np.sin(ang), "sin")]
    pos_shape = [] if offset == "0-d" else [1] if offset else [b, s]
    node = helper.make_node("RotaryEmbedding", ["x", "pos", "cos", "sin"], ["y"], domain="com.microsoft",
                            interleaved=interleaved)
    m = helper.make_model(helper.make_graph([node], "g", [vi("x", TensorProto.FLOAT, shape),
                                                          vi("pos", TensorProto.INT64, pos_shape)],
                                            [vi("y", TensorProto.FLOAT, shape)], inits),
                          opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    onnx.save(m, str(tmp_path / "r.onnx"))
    rng = np.random.default_rng(1)
    feed = {"x": rng.standard_normal(shape).astype(np.float32),
            "pos": np.array(3) if offset == "0-d" else np.array([3]) if offset else rng.integers(0, 32, (b, s))}
    model = qc.load(str(tmp_path / "r.onnx"))
    got = qc.build(qc.PassManager(qc.pipeline("none")).run(model.mod), "llvm").run(
        *[feed[s.name] for s in model.inputs])
    ref = ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"]).run(None, feed)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=1e-5)


def test_a_symbolic_dim_a_concat_equates_with_a_fixed_one_is_fixed():
    """onnxruntime-genai declares the cache ``[batch, kv_heads, past, kv_cache_dim]``; the
    concat with the new keys ``[batch, kv_heads, seq, 16]`` makes ``kv_cache_dim`` 16 (TVM
    could not vectorize a loop over it: "Failed to vectorize loop with extent
    kv_cache_dim")."""
    vi = helper.make_tensor_value_info
    node = helper.make_node("Concat", ["past", "new"], ["y"], axis=2)
    m = helper.make_model(helper.make_graph(
        [node], "g", [vi("past", TensorProto.FLOAT, ["b", 2, "p", "d"]), vi("new", TensorProto.FLOAT, ["b", 2, "s", 16])],
        [vi("y", TensorProto.FLOAT, ["b", 2, "t", "d"])]))
    out, fixed = concat_fixed_dims(m)
    assert fixed == {"d": 16}
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in (out.graph.input[0],
                                                                                       out.graph.output[0])]
    assert dims == [["b", 2, "p", 16], ["b", 2, "t", 16]]


# ---- the zoo's decoders as onnxruntime-genai's builder writes them --------------------------

GENAI_MODELS = [*zoo.GENAI, "llama-int4"]


def _genai_feed(cfg, rng, b, s, p, lens):
    dec = cfg["model"]["decoder"]
    f = {"input_ids": rng.integers(0, 256, (b, s)).astype(np.int64),
         "attention_mask": (np.arange(p + s)[None] < np.array(lens)[:, None]).astype(np.int64)}
    for i in range(dec["num_hidden_layers"]):
        for kv in ("key", "value"):
            f[f"past_key_values.{i}.{kv}"] = rng.standard_normal(
                (b, dec["num_key_value_heads"], p, dec["head_size"])).astype(np.float32)
    return f


@pytest.mark.slow
@pytest.mark.parametrize("name", GENAI_MODELS)
def test_genai_decoder(name):
    """The prompt (empty past) and a decode step of two rows of different lengths in one
    buffer (right-padded mask, as onnxruntime-genai batches): logits and the present caches'
    valid positions equal to onnxruntime's. int4 (``MatMulNBits``, dequantized at import):
    onnxruntime's CPU kernel quantizes the activations to int8 at accuracy_level 4, so the
    two agree to that rounding only."""
    path = zoo.GENAI_FIXTURES / f"{name}.onnx"
    cfg = json.loads(path.with_suffix(".json").read_text())
    model = qc.load(str(path))
    art = qc.build(qc.PassManager(qc.pipeline("none")).run(model.mod), "llvm")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for b, s, p, lens in ((1, 6, 0, [6]), (2, 1, 5, [6, 4])):
        feed = _genai_feed(cfg, rng, b, s, p, lens)
        got = art.run(*[feed[x.name] for x in model.inputs])
        ref = sess.run(None, feed)
        for r, n in enumerate(lens):
            if name.endswith("int4"):
                assert zoo._cosine(got[0][r], ref[0][r]) >= 0.9999
            else:
                np.testing.assert_allclose(got[0][r], ref[0][r], rtol=1e-4, atol=1e-5)
                for g, x in zip(got[1:], ref[1:]):
                    np.testing.assert_allclose(g[r, :, :n], x[r, :, :n], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_genai_decoder_rotated_and_w8a8():
    """``rotate`` (an equivalence) and ``w8a8`` (int8 x int8 matmuls) on the genai Llama: as
    the zoo measures them (a prefill, then a step fed the artifact's own presents: ``rotate``
    keeps the value cache in its rotated basis), and on a prompt of right-padded rows."""
    path = zoo.GENAI_FIXTURES / "llama.onnx"
    cfg = json.loads(path.with_suffix(".json").read_text())
    model = qc.load(str(path))
    feed = _genai_feed(cfg, np.random.default_rng(0), 2, 6, 0, [6, 4])
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    for pipe, tol in (("rotate", 0.99999), ("w8a8", 0.999)):
        cell = zoo.check(path, pipe, "decoder")
        assert cell["status"] == "pass", cell
        got = qc.build(qc.PassManager(qc.pipeline(pipe)).run(model.mod), "llvm").run(
            *[feed[x.name] for x in model.inputs])
        for r, n in enumerate((6, 4)):
            assert zoo._cosine(got[0][r, :n], ref[0][r, :n]) >= tol, pipe


def _cache_axes(params) -> dict:
    """Each cache input's token axis (the one sized by the symbolic past length; None for a
    fixed-size sink buffer)."""
    return {p.name: next((i for i, d in enumerate(p.ty.shape) if str(d) == "past_sequence_length"), None)
            for p in params if p.name not in ("input_ids", "attention_mask")}


def _calibration(path):
    """Four zoo-style samples (batch 2, 8 tokens, empty cache), as ``zoo.check`` calibrates."""
    feeds = [zoo.onnx_feed(path, batch=2, seq=8, seed=100 + i) for i in range(4)]
    return qc.Calibration({k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}, batch=2, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("pipeline,options", [("kv-prerope", {"kv-prerope": {"outliers": 0.05}}),
                                              ("bfp", zoo.OPTIONS["bfp"]), ("k-sort", None)])
def test_genai_cache_pipelines(pipeline, options):
    """The KV-cache pipelines on the genai Llama, whose present cache is the buffer with each
    row's new tokens at its own positions (``gather_elements`` of ``concat(past, new)``):
    against onnxruntime on the float model as the zoo measures it (a prefill, then a step
    with 3 cached positions); and, for the stored caches, a decode step of two rows of
    different lengths (7 and 5 valid positions) in one 8-position buffer gives each row
    exactly what it gets alone with its own compact cache: logits, codes, scales, outliers
    and sinks, bit for bit."""
    path = zoo.GENAI_FIXTURES / "llama.onnx"
    cell = zoo.check(path, pipeline, "decoder")
    assert cell["status"] == "pass", cell
    if pipeline == "k-sort":
        return
    if pipeline == "kv-prerope":  # a second sink (a recent window) would sit at the concat's, not the rows', positions
        for opts, match in (({"sinks": 2}, "more than one sink"), ({"recent": 4}, "recent window")):
            with pytest.raises(qc.QCompileError, match=match):
                zoo_model = qc.load(str(path))
                qc.PassManager(qc.pipeline(pipeline, {"kv-prerope": opts}),
                               calibration=_calibration(path)).run(zoo_model.mod)
    model = qc.load(str(path))
    mod = qc.PassManager(qc.pipeline(pipeline, options), calibration=_calibration(path)).run(model.mod)
    art = qc.build(mod, "llvm")
    names = [p.name for p in mod["main"].params]
    axes = _cache_axes(mod["main"].params)
    caches = [n for n in names if n in axes]

    def run(ids, mask, cache):
        outs = art.run(ids, mask, *[cache[n] for n in caches])
        return outs[0], dict(zip(caches, outs[1:]))

    def empty():
        return {p.name: np.zeros([1 if i == 0 else (0 if i == axes[p.name] else int(d))
                                  for i, d in enumerate(p.ty.shape)], str(p.ty.dtype))
                for p in mod["main"].params if p.name in axes}

    rng = np.random.default_rng(0)
    alone = []
    for n in (6, 4):  # each row alone: a prompt of n tokens, then one decode step
        _, c = run(rng.integers(0, 256, (1, n)), np.ones((1, n), np.int64), empty())
        tok = rng.integers(0, 256, (1, 1))
        logits, c2 = run(tok, np.ones((1, n + 1), np.int64), c)
        alone.append((n, c, tok, logits, c2))

    def pad(x, ax, size):
        if ax is None:
            return x
        w = [(0, 0)] * x.ndim
        w[ax] = (0, size - x.shape[ax])
        return np.pad(x, w)

    buffer = {k: np.concatenate([pad(a[1][k], axes[k], 8) for a in alone]) for k in caches}
    mask = np.zeros((2, 9), np.int64)
    for r, a in enumerate(alone):
        mask[r, :a[0] + 1] = 1
    logits, present = run(np.concatenate([a[2] for a in alone]), mask, buffer)
    for r, (n, _, _, ref_logits, ref_cache) in enumerate(alone):
        np.testing.assert_array_equal(logits[r], ref_logits[0])
        for k in caches:
            got = present[k][r]
            if axes[k] is not None:
                got = np.take(got, np.arange(n + 1), axis=axes[k] - 1)
            np.testing.assert_array_equal(got, ref_cache[k][0])
