"""Operators TVM 0.27's importer lacks (or mistakes), decomposed into the standard ONNX ops
they compute before import: onnxruntime's fused operators, and ONNX's newest ones.

onnxruntime's transformer optimizer (``onnxruntime.transformers.optimizer``, which Optimum's
``--optimize O1..O4`` and many published ``model_optimized.onnx`` files use) rewrites a
graph into its own ``com.microsoft`` operators: ``SkipLayerNormalization`` (a residual add
and a LayerNorm), ``EmbedLayerNormalization`` (BERT's three embeddings and their
LayerNorm), ``Attention`` (the QKV projection, the heads, the mask, softmax and the value
product in one node), ``BiasGelu``/``FastGelu``/``Gelu``/``QuickGelu`` and the RMSNorm
forms ``SimplifiedLayerNormalization`` and ``SkipSimplifiedLayerNormalization``. TVM 0.27
has no converter for any of them, so such a model stopped at import. Each is rewritten
here into the standard ops that compute it, following onnxruntime's contrib-op
specification (``docs/ContribOperators.md``), so the graph reads as an exporter would have
written it and canonicalization finds its LayerNorms, GELUs and attentions again.

``MatMulNBits`` (block-quantized weights) is dequantized at import. ONNX's own ``Attention``
and ``RotaryEmbedding`` (opset 23) are decomposed here too: TVM registers the contrib
``Attention`` under the first name and has no converter for the second.

onnxruntime's ``GroupQueryAttention`` (the attention of every onnxruntime-genai decoder:
packed QKV, RoPE inside, a cache buffer with per-row valid lengths) and its contrib
``RotaryEmbedding`` are decomposed as onnxruntime computes them.

What is not decomposed (an ``Attention`` with a past state, rotary or a shared buffer, a
``GroupQueryAttention`` over a ring-buffer cache, other contrib ops) stays, and the loader
refuses it naming the node (and why, where the rule says).
"""
from __future__ import annotations

import math

import numpy as np

MS = "com.microsoft"


class _Emitter:
    """Fresh names and nodes for one decomposed node (``<node name>/<k>``)."""

    def __init__(self, node, graph, graph_init: dict, elem_type: dict):
        self.node, self.graph, self.nodes, self.k = node, graph, [], 0
        self.base = node.name or node.op_type
        self.graph_init, self.elem_type = graph_init, elem_type  # initializers (and Constant nodes' tensors), element types by name
        self.dims: dict = {}  # static dims by name (None: symbolic), where shape inference knows them
        self.opset = 17  # the model's default-domain opset (set by decompose_ops)

    def name(self, tag: str) -> str:
        self.k += 1
        return f"{self.base}/{tag}_{self.k}"

    def const(self, value, dtype=np.float32) -> str:
        from onnx import numpy_helper

        n = self.name("c")
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype), n))
        return n

    def op(self, op_type: str, inputs, out=None, **attrs) -> str:
        from onnx import helper

        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=self.name(op_type), **attrs))
        return out


def _attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _in(node, i) -> str:
    return node.input[i] if len(node.input) > i else ""


def _out(node, i) -> str:
    return node.output[i] if len(node.output) > i else ""


def _gelu_erf(e, x, out):
    """``0.5 x (1 + erf(x / sqrt 2))``."""
    t = e.op("Erf", [e.op("Mul", [x, e.const(1 / math.sqrt(2))])])
    return e.op("Mul", [e.op("Mul", [x, e.const(0.5)]), e.op("Add", [t, e.const(1.0)])], out)


def _gelu_tanh(e, x, out):
    """``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (FastGelu)."""
    cube = e.op("Mul", [e.op("Mul", [x, x]), x])
    inner = e.op("Mul", [e.op("Add", [x, e.op("Mul", [cube, e.const(0.044715)])]), e.const(math.sqrt(2 / math.pi))])
    return e.op("Mul", [e.op("Mul", [x, e.const(0.5)]), e.op("Add", [e.op("Tanh", [inner]), e.const(1.0)])], out)


def _rms(e, x, gamma, eps, out):
    """``x / sqrt(mean(x^2) + eps) * gamma`` over the last axis."""
    ms = e.op("ReduceMean", [e.op("Mul", [x, x]), e.const([-1], np.int64)], keepdims=1)
    inv = e.op("Div", [e.const(1.0), e.op("Sqrt", [e.op("Add", [ms, e.const(eps)])])])
    return e.op("Mul", [e.op("Mul", [x, inv]), gamma], out)


def _skip_sum(e, node, bias_at: int):
    s = e.op("Add", [node.input[0], node.input[1]])
    if _in(node, bias_at):
        s = e.op("Add", [s, node.input[bias_at]])
    if _out(node, 3):
        e.op("Identity", [s], node.output[3])
    return s


def _skip_layer_norm(e, node):
    s = _skip_sum(e, node, 4)
    ins = [s, node.input[2]] + ([node.input[3]] if _in(node, 3) else [])
    e.op("LayerNormalization", ins, node.output[0], axis=-1, epsilon=float(_attr(node, "epsilon", 1e-12)))


def _skip_simplified_layer_norm(e, node):
    s = _skip_sum(e, node, 3)
    _rms(e, s, node.input[2], float(_attr(node, "epsilon", 1e-6)), node.output[0])


def _simplified_layer_norm(e, node):
    if int(_attr(node, "axis", -1)) != -1:
        return False
    _rms(e, node.input[0], node.input[1], float(_attr(node, "epsilon", 1e-5)), node.output[0])


def _bias_gelu(e, node):
    _gelu_erf(e, e.op("Add", [node.input[0], node.input[1]]), node.output[0])


def _gelu(e, node):
    _gelu_erf(e, node.input[0], node.output[0])


def _fast_gelu(e, node):
    x = e.op("Add", [node.input[0], node.input[1]]) if _in(node, 1) else node.input[0]
    _gelu_tanh(e, x, node.output[0])


def _quick_gelu(e, node):
    x = node.input[0]
    a = float(_attr(node, "alpha", 1.702))
    e.op("Mul", [x, e.op("Sigmoid", [e.op("Mul", [x, e.const(a)])])], node.output[0])


def _embed_layer_norm(e, node):
    """``LN(word[ids] + pos[positions] + seg[segment_ids])``; ``mask_index`` the mask's row
    sums (int32); positions ``arange(S)`` unless ``position_ids`` is given."""
    ids = node.input[0]
    emb = e.op("Gather", [node.input[2], ids])
    pos_ids = _in(node, 8)
    if not pos_ids:
        seq = e.op("Gather", [e.op("Shape", [ids]), e.const(1, np.int64)])
        pos_ids = e.op("Unsqueeze", [e.op("Range", [e.const(0, np.int64), seq, e.const(1, np.int64)]),
                                     e.const([0], np.int64)])
    emb = e.op("Add", [emb, e.op("Gather", [node.input[3], pos_ids])])
    if _in(node, 1) and _in(node, 4):
        emb = e.op("Add", [emb, e.op("Gather", [node.input[4], node.input[1]])])
    if _out(node, 2):
        e.op("Identity", [emb], node.output[2])
    e.op("LayerNormalization", [emb, node.input[5], node.input[6]], node.output[0], axis=-1,
         epsilon=float(_attr(node, "epsilon", 1e-12)))
    if _out(node, 1):
        if not _in(node, 7):
            return False
        e.op("Cast", [e.op("ReduceSum", [node.input[7], e.const([1], np.int64)], keepdims=0)], node.output[1],
             to=6)


def _attend(e, node, scores, v, keys, mask: str, rank, ranks_ok, width: int):
    """The rest of an attention from its scaled scores ``[B, N, S, T]``: the key mask
    (``mask``: right-padding lengths ``[B]`` or a raw 0/1 mask ``[B, T]`` / ``[B, S, T]``; a
    masked key gets ``mask_filter_value`` added, as onnxruntime does), ``unidirectional``
    (``mask_filter_value`` above the diagonal), ``attention_bias`` (input 5), softmax, the
    value product and the heads merged into ``width`` channels (-1: inferred). False where
    the mask's rank is not one of ``ranks_ok``."""
    fill = float(_attr(node, "mask_filter_value", -10000.0))
    if mask:
        if rank not in ranks_ok:
            return False
        if rank == 1:  # lengths [B]: keys j >= len masked
            j = e.op("Range", [e.const(0, np.int64), keys, e.const(1, np.int64)])
            lens = e.op("Unsqueeze", [e.op("Cast", [mask], to=7), e.const([1], np.int64)])
            keep = e.op("Unsqueeze", [e.op("Less", [e.op("Unsqueeze", [j, e.const([0], np.int64)]), lens]),
                                      e.const([1, 2], np.int64)])
        else:  # a raw mask [B, T] or [B, S, T]
            keep = e.op("Unsqueeze", [e.op("Greater", [e.op("Cast", [mask], to=7), e.const(0, np.int64)]),
                                      e.const([1, 2] if rank == 2 else [1], np.int64)])
        scores = e.op("Add", [scores, e.op("Where", [keep, e.const(0.0), e.const(fill)])])
    if int(_attr(node, "unidirectional", 0)):
        j = e.op("Range", [e.const(0, np.int64), keys, e.const(1, np.int64)])
        later = e.op("Greater", [e.op("Unsqueeze", [j, e.const([0], np.int64)]),
                                 e.op("Unsqueeze", [j, e.const([1], np.int64)])])
        scores = e.op("Add", [scores, e.op("Where", [later, e.const(fill), e.const(0.0)])])
    if _in(node, 5):
        scores = e.op("Add", [scores, node.input[5]])
    out = e.op("Transpose", [e.op("MatMul", [e.op("Softmax", [scores], axis=-1), v])], perm=[0, 2, 1, 3])
    e.op("Reshape", [out, e.const([0, 0, width], np.int64)], node.output[0])


def _attention(e, node, ranks: dict):
    """onnxruntime's ``Attention`` without a past state: ``x W + b`` split into Q, K, V,
    heads, ``softmax(Q K^T * scale + mask) V``, heads merged. ``mask_index``: right-padding
    lengths ``[B]``, or a raw 0/1 mask ``[B, T]`` / ``[B, S, T]``: masked keys get
    ``mask_filter_value`` added, as onnxruntime does; ``unidirectional`` adds it above the
    diagonal; ``attention_bias`` is added as it is."""
    if _in(node, 4) or _in(node, 6) or _out(node, 1) or int(_attr(node, "do_rotary", 0)) \
            or int(_attr(node, "past_present_share_buffer", 0)):
        return False
    heads = int(_attr(node, "num_heads"))
    sizes = _attr(node, "qkv_hidden_sizes")
    w = e.graph_init.get(node.input[1])
    if sizes is None:
        if w is None:
            return False
        sizes = [w.dims[1] // 3] * 3
    hq, hk, hv = (int(s) for s in sizes)
    if hq != hk or hq % heads or hv % heads:
        return False
    d, dv = hq // heads, hv // heads
    x = node.input[0]
    qkv = e.op("MatMul", [x, node.input[1]])
    if _in(node, 2):
        qkv = e.op("Add", [qkv, node.input[2]])
    q, k, v = (e.op("Slice", [qkv, e.const([a], np.int64), e.const([b], np.int64), e.const([-1], np.int64)])
               for a, b in ((0, hq), (hq, 2 * hq), (2 * hq, 2 * hq + hv)))

    def heads_of(t, dh, perm):
        return e.op("Transpose", [e.op("Reshape", [t, e.const([0, 0, heads, dh], np.int64)])], perm=perm)

    q, kt, v = heads_of(q, d, [0, 2, 1, 3]), heads_of(k, d, [0, 2, 3, 1]), heads_of(v, dv, [0, 2, 1, 3])
    scale = _attr(node, "scale", 0.0) or 1 / math.sqrt(d)
    scores = e.op("Mul", [e.op("MatMul", [q, kt]), e.const(scale)])
    seq = e.op("Gather", [e.op("Shape", [x]), e.const(1, np.int64)])
    return _attend(e, node, scores, v, seq, _in(node, 3), ranks.get(_in(node, 3)), (1, 2, 3), hv)


def _multi_head_attention(e, node, ranks: dict):
    """onnxruntime's ``MultiHeadAttention`` with separate ``[B, S, H]`` query, key and value
    (cross-attention too: ``L`` keys), no past state: optional packed ``bias``,
    ``key_padding_mask`` (lengths ``[B]`` or a raw mask ``[B, L]``), ``attention_bias``,
    ``unidirectional`` (self-attention lengths only)."""
    if any(_in(node, i) for i in range(6, 10)) or any(_out(node, i) for i in range(1, 4)):
        return False
    if any(ranks.get(node.input[i]) != 3 for i in range(3)):
        return False  # packed QKV / BNSH layouts are not decomposed
    heads = int(_attr(node, "num_heads"))
    q, k, v = node.input[:3]
    if _in(node, 3):
        b = node.input[3]
        hs = e.graph_init.get(b)
        if hs is None or hs.dims[0] % 3:
            return False
        h = hs.dims[0] // 3
        q, k, v = (e.op("Add", [t, e.op("Slice", [b, e.const([a * h], np.int64), e.const([(a + 1) * h], np.int64)])])
                   for a, t in enumerate((q, k, v)))
    hidden = e.op("Gather", [e.op("Shape", [node.input[0]]), e.const(2, np.int64)])
    d = e.op("Div", [hidden, e.const(heads, np.int64)])
    dims = e.op("Concat", [e.const([0, 0, heads], np.int64), e.op("Unsqueeze", [d, e.const([0], np.int64)])], axis=0)

    def heads_of(t, perm):
        return e.op("Transpose", [e.op("Reshape", [t, dims])], perm=perm)

    qh, kt, vh = heads_of(q, [0, 2, 1, 3]), heads_of(k, [0, 2, 3, 1]), heads_of(v, [0, 2, 1, 3])
    scale = _attr(node, "scale", 0.0)
    if scale:
        scale = e.const(scale)
    else:  # 1 / sqrt(head size), from the query's hidden size
        scale = e.op("Div", [e.const(1.0), e.op("Sqrt", [e.op("Cast", [d], to=1)])])
    scores = e.op("Mul", [e.op("MatMul", [qh, kt]), scale])
    keys = e.op("Gather", [e.op("Shape", [k]), e.const(1, np.int64)])
    return _attend(e, node, scores, vh, keys, _in(node, 4), ranks.get(_in(node, 4)), (1, 2), -1)


def _fused_matmul(e, node, ranks: dict):
    """onnxruntime's ``FusedMatMul``: ``alpha * op(A) @ op(B)``, ``op`` swapping the last two
    axes where ``transA``/``transB`` say (its optimizer folds a transpose and a scale into
    the matmul; saved optimized models have it). ``transBatchA/B`` are not decomposed."""
    if _attr(node, "transBatchA", 0) or _attr(node, "transBatchB", 0):
        return "transBatchA/transBatchB are not decomposed"
    ops = []
    for k, flag in ((0, "transA"), (1, "transB")):
        x = node.input[k]
        if _attr(node, flag, 0):
            r = ranks.get(x)
            if r is None or r < 2:
                return f"the rank of input {k} is unknown"
            x = e.op("Transpose", [x], perm=list(range(r - 2)) + [r - 1, r - 2])
        ops.append(x)
    alpha = float(_attr(node, "alpha", 1.0))
    y = e.op("MatMul", ops, None if alpha != 1.0 else node.output[0])
    if alpha != 1.0:
        from onnx import helper

        e.op("Mul", [y, e.const(alpha, helper.tensor_dtype_to_np_dtype(e.elem_type.get(node.input[0], 1)))],
             node.output[0])


def _unpack_bits(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The first ``count`` ``bits``-wide codes of each row of ``packed`` (uint8), the lowest
    bits of a byte first (onnxruntime's packing)."""
    per = 8 // bits
    shifts = (np.arange(per) * bits).astype(np.uint8)
    codes = (packed[..., None] >> shifts) & np.uint8((1 << bits) - 1)
    return codes.reshape(*packed.shape[:-1], -1)[..., :count]


def _matmul_nbits(e, node):
    """``MatMulNBits`` (onnxruntime's block-quantized weights: onnxruntime-genai's int4
    models, ``MatMulNBitsQuantizer``): the weight is dequantized here, ``W[n, k] = (q[n, k] -
    z[n, k // bs]) * s[n, k // bs]``, and the node becomes ``A @ W^T`` (+ bias). The int4
    codes become float32 weights: qcompile's pipelines quantize them again as they quantize
    any float weight."""
    from onnx import numpy_helper

    K, N = int(_attr(node, "K")), int(_attr(node, "N"))
    bits, bs = int(_attr(node, "bits", 4)), int(_attr(node, "block_size"))
    if bits not in (2, 4, 8) or _in(node, 4):  # g_idx (act-order) is not decomposed
        return False
    get = {i: e.graph_init.get(_in(node, i)) for i in (1, 2, 3)}
    if get[1] is None or get[2] is None or (_in(node, 3) and get[3] is None):
        return False
    blocks = (K + bs - 1) // bs
    q = _unpack_bits(numpy_helper.to_array(get[1]).reshape(N, blocks, -1), bits, bs).astype(np.float32)
    scale = numpy_helper.to_array(get[2]).astype(np.float32).reshape(N, blocks)
    if get[3] is None:
        zero = np.full((N, blocks), 2 ** (bits - 1), np.float32)
    else:
        z = numpy_helper.to_array(get[3])
        zero = (_unpack_bits(z.reshape(N, -1), bits, blocks) if z.dtype == np.uint8 else z.reshape(N, blocks))
        zero = zero.astype(np.float32)
    w = ((q - zero[..., None]) * scale[..., None]).reshape(N, blocks * bs)[:, :K]
    dtype = numpy_helper.to_array(get[2]).dtype
    out = e.op("MatMul", [node.input[0], e.const(w.T.astype(dtype), dtype)],
               None if _in(node, 5) else node.output[0])
    if _in(node, 5):
        e.op("Add", [out, node.input[5]], node.output[0])


def _repeat_kv(e, t, nq):
    """``[B, kvh, L, d] -> [B, nq, L, d]`` (``nq``: a 1-element shape tensor), each KV head
    serving ``nq / kvh`` query heads: HF's ``repeat_kv`` spelling (unsqueeze, expand,
    reshape), which the cache analyses trace through."""
    sh = e.op("Shape", [t])
    rep = e.op("Div", [nq, e.op("Gather", [sh, e.const([1], np.int64)])])
    big = e.op("Concat", [e.op("Slice", [sh, e.const([0], np.int64), e.const([2], np.int64)]), rep,
                          e.op("Slice", [sh, e.const([2], np.int64), e.const([4], np.int64)])], axis=0)
    x = e.op("Expand", [e.op("Unsqueeze", [t, e.const([2], np.int64)]), big])
    return e.op("Reshape", [x, e.op("Concat", [e.op("Slice", [sh, e.const([0], np.int64), e.const([1], np.int64)]),
                                              nq, e.op("Slice", [sh, e.const([2], np.int64),
                                                                 e.const([4], np.int64)])], axis=0)])


def _onnx_attention(e, node, ranks: dict):
    """ONNX's own ``Attention`` (opset 23; torch.onnx's dynamo exporter writes
    ``scaled_dot_product_attention`` as it at opset 23). TVM 0.27's converter registered
    under that name is onnxruntime's contrib ``Attention`` (packed QKV weights), a different
    operator, so it must not reach it. Decomposed here: 4-D ``[B, H, S, d]`` or 3-D ``[B, S,
    H d]`` (``q_num_heads``/``kv_num_heads``) inputs, a past state concatenated on the
    sequence axis (the present outputs), grouped KV heads repeated, ``scale`` (default ``1 /
    sqrt(d)``), a boolean or additive ``attn_mask``, ``is_causal`` without a past (the
    upper-left triangle), ``softcap``."""
    if _in(node, 6) or _out(node, 3) or int(_attr(node, "qk_matmul_output_mode", 0)):
        return False
    q, k, v = node.input[:3]
    rank = ranks.get(q)
    if rank not in (3, 4) or any(ranks.get(t) != rank for t in (k, v)):
        return False
    past = _in(node, 4) and _in(node, 5)
    if int(_attr(node, "is_causal", 0)) and past:
        return False
    if rank == 3:
        qh, kvh = _attr(node, "q_num_heads"), _attr(node, "kv_num_heads")
        if not qh or not kvh:
            return False

        def heads(t, n):
            return e.op("Transpose", [e.op("Reshape", [t, e.const([0, 0, int(n), -1], np.int64)])], perm=[0, 2, 1, 3])

        q, k, v = heads(q, qh), heads(k, kvh), heads(v, kvh)
    if past:
        k = e.op("Concat", [node.input[4], k], axis=2)
        v = e.op("Concat", [node.input[5], v], axis=2)
    for i, t in ((1, k), (2, v)):
        if _out(node, i):
            e.op("Identity", [t], node.output[i])
    shape_q, shape_k = e.op("Shape", [q]), e.op("Shape", [k])
    nq = e.op("Gather", [shape_q, e.const([1], np.int64)])
    k, v = _repeat_kv(e, k, nq), _repeat_kv(e, v, nq)
    scale = _attr(node, "scale", None)
    if scale is None:
        d = e.op("Cast", [e.op("Gather", [shape_q, e.const(3, np.int64)])], to=1)
        scale_t = e.op("Div", [e.const(1.0), e.op("Sqrt", [d])])
    else:
        scale_t = e.const(float(scale))
    scores = e.op("Mul", [e.op("MatMul", [q, e.op("Transpose", [k], perm=[0, 1, 3, 2])]), scale_t])
    cap = float(_attr(node, "softcap", 0.0))
    if cap > 0:
        scores = e.op("Mul", [e.op("Tanh", [e.op("Div", [scores, e.const(cap)])]), e.const(cap)])
    if _in(node, 3):
        mask = node.input[3]
        if e.elem_type.get(mask) == 9:  # boolean: True attends
            mask = e.op("Where", [mask, e.const(0.0), e.const(-np.inf)])
        scores = e.op("Add", [scores, mask])
    if int(_attr(node, "is_causal", 0)):
        s = e.op("Gather", [shape_q, e.const(2, np.int64)])
        t = e.op("Gather", [shape_k, e.const(2, np.int64)])
        i = e.op("Range", [e.const(0, np.int64), s, e.const(1, np.int64)])
        j = e.op("Range", [e.const(0, np.int64), t, e.const(1, np.int64)])
        later = e.op("Greater", [e.op("Unsqueeze", [j, e.const([0], np.int64)]),
                                 e.op("Unsqueeze", [i, e.const([1], np.int64)])])
        scores = e.op("Add", [scores, e.op("Where", [later, e.const(-np.inf), e.const(0.0)])])
    y = e.op("MatMul", [e.op("Softmax", [scores], axis=-1), v])
    if rank == 3:
        y = e.op("Reshape", [e.op("Transpose", [y], perm=[0, 2, 1, 3]), e.const([0, 0, -1], np.int64)])
    e.op("Identity", [y], node.output[0])


def _onnx_rotary(e, node, ranks: dict):
    """ONNX's ``RotaryEmbedding`` (opset 23; torch.onnx's dynamo exporter writes HF decoders'
    RoPE as it at opset 23), written as the exporters' own spelling so canonicalization
    finds its ``qcompile.rope``: ``x * cos + rotate_half(x) * sin`` with the tables repeated
    over both halves (``interleaved``: GPT-J's rotate-every-two with the tables repeated per
    pair), over the first ``rotary_embedding_dim`` channels and the rest passed through.
    ``x`` is ``[B, N, S, H]`` or ``[B, S, N * H]`` (``num_heads``); the tables ``[B, S,
    R/2]``, or ``[positions, R/2]`` gathered at ``position_ids``."""
    rank = ranks.get(node.input[0])
    if rank not in (3, 4) or (rank == 3 and not int(_attr(node, "num_heads", 0))):
        return False
    cos, sin = node.input[1], node.input[2]
    if _in(node, 3):
        cos, sin = (e.op("Gather", [t, node.input[3]]) for t in (cos, sin))
    split = [0, 0, int(_attr(node, "num_heads", 0)), -1]
    y = _rope(e, node.input[0], rank, cos, sin, split, int(_attr(node, "interleaved", 0)),
              int(_attr(node, "rotary_embedding_dim", 0)))
    e.op("Identity", [y], node.output[0])


def _rope(e, x_in, rank, cos, sin, split, interleaved: int, rd: int):
    """RoPE of ``x_in`` (``[B, N, S, H]``, or ``[B, S, N * H]`` reshaped to ``split``, i.e.
    ``[0, 0, N, -1]`` or ``[0, 0, -1, H]``) with ``[B, S, R/2]`` angle tables, in the
    exporters' spelling: rotate-half, or rotate-every-two where ``interleaved``, over the first
    ``rd`` channels (0: all). Returns the output name."""
    x = x_in
    if rank == 3:
        x = e.op("Reshape", [x, e.const(split, np.int64)])  # [B, S, N, H]
    axis = 1 if rank == 4 else 2  # the heads axis the [B, S, R/2] tables broadcast over
    cos, sin = (e.op("Unsqueeze", [t, e.const([axis], np.int64)]) for t in (cos, sin))
    if rd:
        rot_in = e.op("Slice", [x, e.const([0], np.int64), e.const([rd], np.int64), e.const([-1], np.int64)])
        rest = e.op("Slice", [x, e.const([rd], np.int64), e.const([1 << 62], np.int64), e.const([-1], np.int64)])
    else:
        rot_in, rest = x, None
    if interleaved:
        x1 = e.op("Slice", [rot_in, e.const([0], np.int64), e.const([1 << 62], np.int64), e.const([-1], np.int64),
                            e.const([2], np.int64)])
        x2 = e.op("Slice", [rot_in, e.const([1], np.int64), e.const([1 << 62], np.int64), e.const([-1], np.int64),
                            e.const([2], np.int64)])
        pair = e.op("Concat", [e.op("Unsqueeze", [e.op("Neg", [x2]), e.const([-1], np.int64)]),
                               e.op("Unsqueeze", [x1, e.const([-1], np.int64)])], axis=-1)
        shape_r = e.op("Shape", [rot_in])
        rotated = e.op("Reshape", [pair, shape_r])

        def full(t):  # each angle for both channels of its pair ([B, 1, S, R/2] -> [B, 1, S, R])
            two = e.op("Concat", [e.op("Shape", [t]), e.const([2], np.int64)], axis=0)
            pairs = e.op("Expand", [e.op("Unsqueeze", [t, e.const([-1], np.int64)]), two])
            return e.op("Reshape", [pairs, e.const([0, 0, 0, -1], np.int64)])
    else:
        half = e.op("Div", [e.op("Gather", [e.op("Shape", [rot_in]), e.const(-1, np.int64)]), e.const(2, np.int64)])
        half1 = e.op("Unsqueeze", [half, e.const([0], np.int64)])
        x1 = e.op("Slice", [rot_in, e.const([0], np.int64), half1, e.const([-1], np.int64)])
        x2 = e.op("Slice", [rot_in, half1, e.const([1 << 62], np.int64), e.const([-1], np.int64)])
        rotated = e.op("Concat", [e.op("Neg", [x2]), x1], axis=-1)

        def full(t):
            return e.op("Concat", [t, t], axis=-1)
    y = e.op("Add", [e.op("Mul", [rot_in, full(cos)]), e.op("Mul", [rotated, full(sin)])])
    if rest is not None:
        y = e.op("Concat", [y, rest], axis=-1)
    if rank == 3:
        y = e.op("Reshape", [y, e.op("Slice", [e.op("Shape", [x_in]), e.const([0], np.int64),
                                               e.const([3], np.int64)])])
    return y


def _ms_rotary(e, node, ranks: dict):
    """onnxruntime's contrib ``RotaryEmbedding`` (its transformer optimizer's fused LLaMA
    graphs, onnxruntime-genai models built without rotary inside the attention): inputs
    ``(x, position_ids, cos_cache, sin_cache)``; ``position_ids`` ``[B, S]``, or ``[1]``: an
    offset, positions ``offset + i``. ``x`` ``[B, N, S, H]`` or ``[B, S, N * H]`` (heads from
    ``num_heads``, else from the tables' width). ``scale`` other than 1 and packed batching
    are not decomposed."""
    rank = ranks.get(node.input[0])
    if rank not in (3, 4) or float(_attr(node, "scale", 1.0)) != 1.0 or int(_attr(node, "is_packed_batching", 0)):
        return False
    heads, rd = int(_attr(node, "num_heads", 0)), int(_attr(node, "rotary_embedding_dim", 0))
    split = [0, 0, heads, -1]
    if rank == 3 and not heads:
        half = (e.dims.get(node.input[2]) or [None, None])[-1]
        if rd or not half:
            return False
        split = [0, 0, -1, 2 * half]
    pos = node.input[1]
    if ranks.get(pos) not in (0, 1, 2):
        return "position_ids of unknown rank are not decomposed"
    if ranks.get(pos) in (0, 1):  # an offset: positions offset + [0, S)
        s = e.op("Gather", [e.op("Shape", [node.input[0]]), e.const(2 if rank == 4 else 1, np.int64)])
        i = e.op("Range", [e.const(0, np.int64), s, e.const(1, np.int64)])
        pos = e.op("Unsqueeze", [e.op("Add", [i, e.op("Cast", [pos], to=7)]), e.const([0], np.int64)])
    cos, sin = (e.op("Gather", [t, pos]) for t in (node.input[2], node.input[3]))
    y = _rope(e, node.input[0], rank, cos, sin, split, int(_attr(node, "interleaved", 0)), rd)
    e.op("Identity", [y], node.output[0])


_GQA_ATTRS = {"num_heads", "kv_num_heads", "scale", "local_window_size", "softcap", "do_rotary",
              "rotary_interleaved", "smooth_softmax", "qk_output", "mask_filter_value"}


def _group_query_attention(e, node, ranks: dict):
    """onnxruntime's ``GroupQueryAttention`` (onnxruntime-genai's decoders: Llama, Qwen,
    Phi, Mistral, Gemma... as published and as its model builder writes them), as onnxruntime
    computes it on the CPU. Query, key and value packed in one ``[B, S, (N + 2 kvN) H]`` input
    or separate; RoPE inside (``do_rotary``, at each row's positions from its length) in the
    exporters' spelling; the past ``[B, kvN, P, H]`` and row ``b``'s valid
    length ``seqlens_k[b] + 1`` (so the past may be a buffer longer than its valid part, the
    shared buffer onnxruntime-genai binds: row ``b``'s new keys go at its own ``past_b =
    seqlens_k[b] + 1 - S``);
    causal (and ``local_window_size``) masking per row; ``softcap``; ``attention_bias`` (its
    key axis is the present's ``P + S``: a buffer longer than the valid part fails to import);
    a per-head sink logit (``head_sink``, or 0 with ``smooth_softmax``). The present is the
    concatenated cache gathered into its row positions (an identity gather when every row's
    past fills the buffer). One difference from onnxruntime, in shape only: the present always
    has ``P + S`` positions (onnxruntime's has ``max(total_sequence_length, P)``, a length that
    depends on an input's value, which no static shape can carry); row ``b``'s valid part,
    its first ``seqlens_k[b] + 1`` positions, is the same, and fed back as the next past it
    gives the same outputs."""
    unknown = sorted(a.name for a in node.attribute if a.name not in _GQA_ATTRS)
    if unknown:  # sliding_window_cache: a ring buffer of the window's size, not a growing cache
        return f"attribute {', '.join(unknown)} is not decomposed"
    if int(_attr(node, "qk_output", 0)) or _out(node, 3):
        return "its attention-probabilities output (qk_output) is not decomposed"
    if ranks.get(node.input[0]) != 3:
        return "a query that is not [batch, sequence, hidden] is not decomposed"
    if any(_in(node, i) for i in range(12, len(node.input))):  # q/k norm weights and later inputs
        return f"inputs beyond head_sink ({', '.join(x for x in node.input[12:] if x)}) are not decomposed"
    if _in(node, 9):  # onnxruntime reads them as one offset in a first prompt, per row after it
        return "position_ids are not decomposed (onnxruntime reads them differently in the first prompt)"
    if int(_attr(node, "local_window_size", -1)) == 0:
        return "local_window_size 0 is not decomposed"
    i64 = np.int64
    n, kvn = int(_attr(node, "num_heads")), int(_attr(node, "kv_num_heads"))
    q = node.input[0]
    width = (e.dims.get(q) or [None] * 3)[2]
    packed = not _in(node, 1)
    d = width // (n + 2 * kvn if packed else n) if width else None

    def heads(t, count):  # [B, S, count * H] -> [B, count, S, H]
        return e.op("Transpose", [e.op("Reshape", [t, e.const([0, 0, count, -1], i64)])], perm=[0, 2, 1, 3])

    def part(t, a, b):  # heads [a, b) of [B, heads, S, H]
        return e.op("Slice", [t, e.const([a], i64), e.const([b], i64), e.const([1], i64)])

    if packed:
        qkv = heads(q, n + 2 * kvn)
        qh, kh, vh = part(qkv, 0, n), part(qkv, n, n + kvn), part(qkv, n + kvn, n + 2 * kvn)
    else:
        qh, kh, vh = heads(q, n), heads(node.input[1], kvn), heads(node.input[2], kvn)
    seq = e.op("Gather", [e.op("Shape", [q]), e.const(1, i64)])  # S (scalar)
    lens = e.op("Add", [e.op("Cast", [node.input[5]], to=7), e.const(1, i64)])  # [B] valid lengths
    # row b's past: seqlens_k[b] + 1 - S, and 0 in the first prompt (S == total_sequence_length),
    # where a right-padded row is shorter than S: for every valid input that is max(len - S, 0),
    # with no comparison of dims (which TVM's importer cannot make a tensor of)
    past_len = e.op("Max", [e.op("Sub", [lens, seq]), e.const(0, i64)])  # [B]
    steps = e.op("Range", [e.const(0, i64), seq, e.const(1, i64)])
    qpos = e.op("Add", [e.op("Unsqueeze", [past_len, e.const([1], i64)]),
                        e.op("Unsqueeze", [steps, e.const([0], i64)])])  # [B, S] each query's position
    if int(_attr(node, "do_rotary", 0)):
        half = (e.dims.get(node.input[7]) or [None])[-1]
        if not half:
            return "rotary tables of unknown width are not decomposed"
        rd = 0 if (d and 2 * half == d) else 2 * half
        if not rd and not d:
            return "a head size unknown before import is not decomposed"
        pos = qpos
        cos, sin = (e.op("Gather", [t, pos]) for t in (node.input[7], node.input[8]))
        inter = int(_attr(node, "rotary_interleaved", 0))
        qh, kh = (_rope(e, t, 4, cos, sin, None, inter, rd) for t in (qh, kh))
    if _in(node, 3):
        past = e.op("Gather", [e.op("Shape", [node.input[3]]), e.const(2, i64)])
        full_k, full_v = (e.op("Concat", [node.input[i], t], axis=2) for i, t in ((3, kh), (4, vh)))
        sh = e.op("Shape", [full_k])
        keys = e.op("Gather", [sh, e.const(2, i64)])  # P + S: the present's length
        j = e.op("Unsqueeze", [e.op("Range", [e.const(0, i64), keys, e.const(1, i64)]), e.const([0], i64)])
        pl = e.op("Unsqueeze", [past_len, e.const([1], i64)])
        new_at = e.op("Add", [past, e.op("Sub", [j, pl])])  # position j holds new token j - past_b
        src = e.op("Where", [e.op("Less", [j, pl]), j,
                             e.op("Where", [e.op("Less", [j, e.op("Add", [pl, seq])]), new_at,
                                            e.op("Where", [e.op("Less", [j, past]), j, e.const(0, i64)])])])
        idx = e.op("Expand", [e.op("Unsqueeze", [src, e.const([1, 3], i64)]), sh])
        kh, vh = (e.op("GatherElements", [t, idx], axis=2) for t in (full_k, full_v))
    else:
        keys = seq
    for i, t in ((1, kh), (2, vh)):
        if _out(node, i):
            e.op("Identity", [t], node.output[i])
    nq = e.const([n], i64)
    kr, vr = _repeat_kv(e, kh, nq), _repeat_kv(e, vh, nq)
    scale = _attr(node, "scale", 0.0)
    if scale:
        scale = e.const(float(scale))
    elif d:
        scale = e.const(1 / math.sqrt(d))
    else:
        dd = e.op("Cast", [e.op("Gather", [e.op("Shape", [qh]), e.const(3, i64)])], to=1)
        scale = e.op("Div", [e.const(1.0), e.op("Sqrt", [dd])])
    scores = e.op("Mul", [e.op("MatMul", [qh, e.op("Transpose", [kr], perm=[0, 1, 3, 2])]), scale])
    cap = float(_attr(node, "softcap", 0.0))
    if cap > 0:
        scores = e.op("Mul", [e.op("Tanh", [e.op("Div", [scores, e.const(cap)])]), e.const(cap)])
    if _in(node, 10):
        scores = e.op("Add", [scores, node.input[10]])
    jj = e.op("Unsqueeze", [e.op("Range", [e.const(0, i64), keys, e.const(1, i64)]), e.const([0, 1], i64)])
    qp = e.op("Unsqueeze", [qpos, e.const([2], i64)])  # [B, S, 1]
    ok = e.op("And", [e.op("LessOrEqual", [jj, qp]),
                      e.op("Less", [jj, e.op("Unsqueeze", [lens, e.const([1, 2], i64)])])])
    window = int(_attr(node, "local_window_size", -1))
    if window > 0:  # the last `window` keys, the query's own included (as onnxruntime 1.32 computes it)
        ok = e.op("And", [ok, e.op("Greater", [jj, e.op("Sub", [qp, e.const(window, i64)])])])
    lowest = float(np.finfo(np.float32).min)
    scores = e.op("Where", [e.op("Unsqueeze", [ok, e.const([1], i64)]), scores, e.const(lowest)])
    sink = _in(node, 11) or (int(_attr(node, "smooth_softmax", 0)) and e.const([0.0] * n))
    if sink:  # one more logit per head in the softmax's sum, then dropped
        sh = e.op("Shape", [scores])
        col = e.op("Concat", [e.op("Slice", [sh, e.const([0], i64), e.const([3], i64)]), e.const([1], i64)], axis=0)
        sink = e.op("Expand", [e.op("Reshape", [e.op("Cast", [sink], to=1), e.const([1, n, 1, 1], i64)]), col])
        probs = e.op("Softmax", [e.op("Concat", [scores, sink], axis=-1)], axis=-1)
        probs = e.op("Slice", [probs, e.const([0], i64), e.op("Unsqueeze", [keys, e.const([0], i64)]),
                               e.const([-1], i64)])
    else:
        probs = e.op("Softmax", [scores], axis=-1)
    y = e.op("Transpose", [e.op("MatMul", [probs, vr])], perm=[0, 2, 1, 3])
    e.op("Reshape", [y, e.const([0, 0, -1], i64)], node.output[0])


def _dft(e, node, ranks: dict):
    """ONNX's ``DFT`` (torch.fft through either exporter: FNet mixes tokens with a 2-D FFT)
    as two matrix products with the cosine and sine tables of the transformed axis, built in
    the graph from its length (``k n mod N`` in integers, so the angle stays exact for long
    axes), symbolic lengths included. ``X[k] = sum_n x[n] e^(-2 pi i k n / N)``; ``inverse``
    conjugates and divides by ``N``; ``onesided`` keeps ``N//2 + 1`` bins. A ``dft_length``
    (zero-padding or truncating the signal) stays for the loader to refuse."""
    i64 = np.int64
    rank = ranks.get(node.input[0])
    if rank is None or rank < 3:
        return "DFT: the input's rank is unknown"
    if _in(node, 1):
        return "DFT with dft_length (a padded or truncated signal) is not decomposed"
    if e.elem_type.get(node.input[0], 1) != 1:
        return "DFT of other than float32 is not decomposed"
    if _in(node, 2):  # opset 20: the axis is an input (default -2), before: an attribute (default 1)
        a = e.graph_init.get(node.input[2])
        if a is None:
            return "DFT: its axis is not a constant"
        from onnx import numpy_helper

        axis = int(numpy_helper.to_array(a).reshape(()))
    else:
        axis = int(_attr(node, "axis", 1 if e.opset < 20 else -2))
    axis %= rank
    if axis == rank - 1:
        return "DFT along the complex axis"
    inverse, onesided = int(_attr(node, "inverse", 0)), int(_attr(node, "onesided", 0))
    if inverse and onesided:
        return "DFT: inverse with onesided is not decomposed"
    x = node.input[0]
    last = rank - 2  # the signal's last axis, once the complex axis is split off
    perm = list(range(rank - 1))
    perm[axis], perm[last] = perm[last], perm[axis]
    width = (e.dims.get(x) or [None] * rank)[-1]

    def part(i):
        t = e.op("Squeeze", [e.op("Slice", [x, e.const([i], i64), e.const([i + 1], i64), e.const([-1], i64)]),
                             e.const([-1], i64)])
        return e.op("Transpose", [t], perm=perm) if axis != last else t

    re = part(0)
    im = part(1) if width == 2 else None
    if width not in (1, 2):
        return "DFT: the complex axis is not static (1 or 2)"
    n_len = e.op("Gather", [e.op("Shape", [x]), e.const(axis, i64)])  # a scalar
    k_len = e.op("Add", [e.op("Div", [n_len, e.const(2, i64)]), e.const(1, i64)]) if onesided else n_len
    n = e.op("Range", [e.const(0, i64), n_len, e.const(1, i64)])
    k = e.op("Range", [e.const(0, i64), k_len, e.const(1, i64)])
    kn = e.op("Mod", [e.op("Mul", [e.op("Unsqueeze", [n, e.const([1], i64)]), e.op("Unsqueeze", [k, e.const([0], i64)])]),
                      n_len])  # [N, K]
    nf = e.op("Cast", [n_len], to=1)
    ang = e.op("Div", [e.op("Mul", [e.op("Cast", [kn], to=1), e.const(2 * math.pi)]), nf])
    c, sn = e.op("Cos", [ang]), e.op("Sin", [ang])
    sign = 1.0 if inverse else -1.0  # e^(sign i theta) = cos + sign i sin
    # (a + ib)(cos + s i sin) = a cos - s b sin + i (s a sin + b cos)
    y_re = e.op("MatMul", [re, c])
    y_im = e.op("Mul", [e.op("MatMul", [re, sn]), e.const(sign)])
    if im is not None:
        y_re = e.op("Sub", [y_re, e.op("Mul", [e.op("MatMul", [im, sn]), e.const(sign)])])
        y_im = e.op("Add", [y_im, e.op("MatMul", [im, c])])
    if inverse:
        y_re, y_im = (e.op("Div", [t, nf]) for t in (y_re, y_im))
    if axis != last:
        y_re, y_im = (e.op("Transpose", [t], perm=perm) for t in (y_re, y_im))
    e.op("Concat", [e.op("Unsqueeze", [t, e.const([-1], i64)]) for t in (y_re, y_im)], node.output[0], axis=-1)


def _col2im(e, node):
    """ONNX's ``Col2Im`` (``torch.nn.functional.fold``: MobileViT-v2 folds its patches back
    into a feature map) with non-overlapping blocks (strides equal to the block, no padding or
    dilation), where it only moves values: ``[N, C kh kw, (H/kh)(W/kw)]`` reshaped to ``[N, C,
    kh, kw, H/kh, W/kw]``, transposed and merged into ``[N, C, H, W]``. Overlapping blocks (a sum
    where they meet) stay for the loader to refuse."""
    from onnx import numpy_helper

    i64 = np.int64
    consts = [e.graph_init.get(node.input[i]) for i in (1, 2)]
    if any(c is None for c in consts):
        return "Col2Im: image_shape and block_shape are not constants"
    shape, block = (tuple(int(v) for v in numpy_helper.to_array(c).reshape(-1)) for c in consts)
    if len(shape) != 2 or len(block) != 2:
        return "Col2Im over other than two spatial dims is not decomposed"
    (h, w), (kh, kw) = shape, block
    strides = list(_attr(node, "strides", [1, 1]))
    if list(_attr(node, "dilations", [1, 1])) != [1, 1] or any(_attr(node, "pads", [0, 0, 0, 0])) \
            or strides != [kh, kw] or h % kh or w % kw:
        return "Col2Im with overlapping blocks, padding or dilation is not decomposed"
    t = e.op("Reshape", [node.input[0], e.const([0, -1, kh, kw, h // kh, w // kw], i64)])
    t = e.op("Transpose", [t], perm=[0, 1, 4, 2, 5, 3])
    e.op("Reshape", [t, e.const([0, -1, h, w], i64)], node.output[0])


_RULES = {(MS, "SkipLayerNormalization"): _skip_layer_norm,
          (MS, "SkipSimplifiedLayerNormalization"): _skip_simplified_layer_norm,
          ("", "SimplifiedLayerNormalization"): _simplified_layer_norm,
          (MS, "SimplifiedLayerNormalization"): _simplified_layer_norm,
          (MS, "BiasGelu"): _bias_gelu, (MS, "Gelu"): _gelu, (MS, "FastGelu"): _fast_gelu,
          (MS, "QuickGelu"): _quick_gelu, (MS, "EmbedLayerNormalization"): _embed_layer_norm,
          (MS, "Attention"): _attention, (MS, "MultiHeadAttention"): _multi_head_attention,
          (MS, "MatMulNBits"): _matmul_nbits, ("", "Attention"): _onnx_attention,
          ("", "RotaryEmbedding"): _onnx_rotary, (MS, "RotaryEmbedding"): _ms_rotary,
          (MS, "GroupQueryAttention"): _group_query_attention, (MS, "FusedMatMul"): _fused_matmul,
          ("", "DFT"): _dft, ("", "Col2Im"): _col2im}


NOT_DECOMPOSED = "qcompile.not_decomposed:"  # metadata key prefix: node name -> why it stays


def decompose_ops(proto):
    """Return ``(model, decomposed)``: ``proto`` with every op of :data:`_RULES` (onnxruntime's
    fused ops, ONNX's ``Attention`` and ``RotaryEmbedding``) replaced by standard ops (``proto`` itself when there is none), and how
    many were. Optional outputs a rule cannot give (``mean``, ``inv_std_var``) must be
    unused; otherwise the node stays for the loader to refuse (with the rule's reason,
    where it gives one, under the metadata key ``NOT_DECOMPOSED + node name``)."""
    import onnx

    if not any((n.domain or "", n.op_type) in _RULES for n in proto.graph.node):
        return proto, 0
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    ranks, elem_types, dims = _ranks(model)
    inits = {i.name: i for i in graph.initializer}
    for n in graph.node:  # Constant nodes' tensors too (the TorchScript exporter's shapes and axes)
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            inits.setdefault(n.output[0], n.attribute[0].t)
    nodes, done = [], 0
    for node in graph.node:
        rule = _RULES.get((node.domain or "", node.op_type))
        norm = node.op_type.endswith("LayerNormalization") and node.op_type != "EmbedLayerNormalization"
        if rule is None or (norm and (_out(node, 1) or _out(node, 2))):
            nodes.append(node)
            continue
        e = _Emitter(node, graph, inits, elem_types)
        e.dims = dims
        e.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
        takes_ranks = rule in (_attention, _multi_head_attention, _onnx_attention, _onnx_rotary, _ms_rotary,
                               _group_query_attention, _fused_matmul, _dft)
        got = rule(e, node, ranks) if takes_ranks else rule(e, node)
        if got is False or isinstance(got, str):
            if isinstance(got, str) and node.name:  # why, for the loader's refusal
                model.metadata_props.add(key=NOT_DECOMPOSED + node.name, value=got)
            nodes.append(node)
            continue
        nodes.extend(e.nodes)
        done += 1
    del graph.node[:]
    graph.node.extend(nodes)
    if done and not any(o.domain == "" for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("", 17))
    return model, done


def _ranks(model) -> tuple[dict, dict, dict]:
    """Each tensor's rank, element type and static dims (``None`` where symbolic) as ONNX's
    shape inference sees them (contrib ops included, where onnx knows their schema: it does
    not, so a mask produced by one is looked up by its producer below)."""
    import onnx

    out, types, dims = {}, {}, {}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            t = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
            if t is not None:
                types[vi.name] = t.elem_type
            if t is not None and t.HasField("shape"):
                out[vi.name] = len(t.shape.dim)
                dims[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    except Exception:  # noqa: BLE001 - ranks are a hint; a mask of unknown rank is left alone
        pass
    for n in model.graph.node:  # EmbedLayerNormalization's mask_index: [B] lengths
        if (n.domain, n.op_type) == (MS, "EmbedLayerNormalization") and _out(n, 1):
            out.setdefault(n.output[1], 1)
    for i in model.graph.initializer:
        out.setdefault(i.name, len(i.dims))
        types.setdefault(i.name, i.data_type)
        dims.setdefault(i.name, list(i.dims))
    return out, types, dims
