"""ONNX models that arrive already quantized: kept as written, or lifted back to float.

Many published ONNX files are quantized before anyone compiles them: onnxruntime's
``quantize_dynamic`` (Optimum's ``optimum-cli onnxruntime quantize``, the
``model_quantized.onnx`` of transformers.js repositories) writes
``DynamicQuantizeLinear -> MatMulInteger / ConvInteger -> Cast -> Mul(scale)``;
``quantize_static`` in its default QDQ format writes ``QuantizeLinear -> DequantizeLinear``
pairs on activations and int8 (or blocked int4) weights behind ``DequantizeLinear``; in its
QOperator format (the ONNX model zoo's int8 models) ``QLinearMatMul``, ``QLinearConv`` and
onnxruntime's contrib ``QLinear*``/``QGemm`` (:data:`_QLINEAR`: written out here as
``DequantizeLinear -> op -> QuantizeLinear``); onnxruntime's optimizer fuses the dynamic form
into ``DynamicQuantizeMatMul``/``MatMulIntegerToFloat`` (written back as the ops they fuse).

Two ways to read such a file (:func:`prepare`):

* ``"keep"``: compute what the file computes (onnxruntime's numerics): TVM's converters take
  ``DynamicQuantizeLinear``, ``MatMulInteger``, ``QuantizeLinear``, ``DequantizeLinear``;
  ``ConvInteger`` (no TVM converter) is decomposed here exactly (integer products summed in
  float64, exact below 2^53, then int32); ``DequantizeLinear`` of constant weights is folded
  to float weights here (TVM 0.27 cannot import the blocked form of opset 21).
* ``"float"``: lift the graph back to the float model it approximates, so that qcompile's
  pipelines see linear layers with constant float weights and quantize them their own way:
  a dynamically quantized matmul or convolution becomes ``MatMul``/``Conv`` of the float
  activation with the dequantized weight ``(W_q - z_w) * s_w`` (its output scale folded in),
  a ``QuantizeLinear -> DequantizeLinear`` pair on an activation is the activation itself
  (also when data movement moved the codes in between), except where the quantizer deleted a
  ReLU and let the pair's grid, starting at 0, compute it (:func:`_removed_activation`).
  What the file's quantization rounded away in the weights stays rounded (those weights are
  all the file has); the activation rounding is gone.

The CLI keeps a quantized file as written for ``--pipeline none`` and lifts it for every
pipeline that quantizes (``--quantized keep|float`` chooses); the model's metadata and
``report.json`` say which and how many nodes.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

QUANT_OPS = ("DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QuantizeLinear", "DequantizeLinear",
             "QLinearMatMul", "QLinearConv")
MS = "com.microsoft"
#: onnxruntime's quantized operators (QOperator format): each is ``DequantizeLinear`` of its
#: inputs, the float op, ``QuantizeLinear`` of its output; ``inputs``: the positions of the
#: (codes, scale, zero point) triples, ``out``: the output's (scale, zero point) positions
#: (``None``: a float output)
_QLINEAR = {("", "QLinearMatMul"): ("MatMul", [(0, 1, 2), (3, 4, 5)], (6, 7)),
            ("", "QLinearConv"): ("Conv", [(0, 1, 2), (3, 4, 5)], (6, 7)),
            (MS, "QLinearAdd"): ("Add", [(0, 1, 2), (3, 4, 5)], (6, 7)),
            (MS, "QLinearMul"): ("Mul", [(0, 1, 2), (3, 4, 5)], (6, 7)),
            (MS, "QLinearSigmoid"): ("Sigmoid", [(0, 1, 2)], (3, 4)),
            (MS, "QLinearLeakyRelu"): ("LeakyRelu", [(0, 1, 2)], (3, 4)),
            (MS, "QLinearSoftmax"): ("Softmax", [(0, 1, 2)], (3, 4)),
            (MS, "QLinearGlobalAveragePool"): ("GlobalAveragePool", [(0, 1, 2)], (3, 4)),
            (MS, "QLinearAveragePool"): ("AveragePool", [(0, 1, 2)], (3, 4)),
            (MS, "QLinearWhere"): ("Where", [(1, 2, 3), (4, 5, 6)], (7, 8)),  # the condition (0) as is
            (MS, "QLinearConcat"): ("Concat", None, (0, 1)),
            (MS, "QGemm"): ("Gemm", [(0, 1, 2), (3, 4, 5)], (7, 8))}
#: ops that only move, select or repeat values: the same on codes as on what they encode
#: (with one scale and zero point for the whole tensor)
_MOVES = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Gather", "Slice", "Expand",
          "Tile", "MaxPool", "DepthToSpace", "SpaceToDepth", "Split"}
#: lower bounds of ops' outputs whatever their inputs (a grid starting at 0 after an op whose
#: output is never negative clamps nothing)
_FLOOR = {"Relu": 0.0, "Softmax": 0.0, "Sigmoid": 0.0, "Exp": 0.0, "Abs": 0.0, "Sqrt": 0.0, "HardSigmoid": 0.0,
          "Softplus": 0.0, "Tanh": -1.0, "Erf": -1.0, "Cos": -1.0, "Sin": -1.0,
          # booleans, as numbers once cast
          "Greater": 0.0, "Less": 0.0, "Equal": 0.0, "GreaterOrEqual": 0.0, "LessOrEqual": 0.0, "Not": 0.0,
          "And": 0.0, "Or": 0.0, "Xor": 0.0, "IsNaN": 0.0, "IsInf": 0.0}
_FLOAT, _INT32, _DOUBLE = 1, 6, 11


#: onnxruntime's fusions of a dynamically quantized matmul (its optimizer's output, and the
#: optimized model a session saves): written back as the standard ops they fuse
_INTEGER_MATMULS = ("DynamicQuantizeMatMul", "MatMulIntegerToFloat")


def quantized_ops(proto) -> Counter:
    """How many nodes of each quantization op type ``proto`` has (empty: a float model)."""
    return Counter(n.op_type for n in proto.graph.node
                   if (n.domain in ("", "ai.onnx") and n.op_type in QUANT_OPS) or (MS, n.op_type) in _QLINEAR
                   or (n.domain == MS and n.op_type in _INTEGER_MATMULS))


def _attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


class _Constants(dict):
    """Initializers and ``Constant`` outputs by name, as numpy arrays, each decoded on first
    use (a large model's weights are not all copied for every rewrite that asks about one);
    values set here (the lift's folded constants) count as constants too."""

    def __init__(self, graph):
        super().__init__()
        self.protos = {i.name: i for i in graph.initializer}
        for n in graph.node:
            if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and _attr(n, "value") is not None:
                self.protos[n.output[0]] = _attr(n, "value")

    def __contains__(self, name) -> bool:
        return dict.__contains__(self, name) or name in self.protos

    def __missing__(self, name):
        from onnx import numpy_helper

        if name not in self.protos:
            raise KeyError(name)
        self[name] = numpy_helper.to_array(self.protos[name])
        return self[name]

    def get(self, name, default=None):
        return self[name] if name in self else default


def _constants(graph) -> _Constants:
    return _Constants(graph)


def dequantize(q, scale, zero, axis: int = 1, block_size: int = 0) -> np.ndarray:
    """``(q - zero) * scale`` as ONNX's ``DequantizeLinear`` defines it: per tensor (a scalar
    scale), per axis (a 1-D scale along ``axis``) or blocked (``block_size`` along ``axis``,
    opset 21); in the scale's float type."""
    q = np.asarray(q).astype(np.float64)
    scale = np.asarray(scale)
    dtype = scale.dtype
    zero = np.zeros((), np.float64) if zero is None else np.asarray(zero).astype(np.float64)
    s = scale.astype(np.float64)
    if s.size > 1 or block_size:
        axis = axis % q.ndim
        if block_size:
            s = np.repeat(s, block_size, axis=axis).take(np.arange(q.shape[axis]), axis=axis)
            zero = zero if zero.size == 1 else np.repeat(zero, block_size, axis=axis).take(
                np.arange(q.shape[axis]), axis=axis)
        else:
            shape = [1] * q.ndim
            shape[axis] = -1
            s = s.reshape(shape)
            zero = zero.reshape(shape) if zero.size > 1 else zero
    return ((q - zero) * s).astype(dtype)


def prepare(proto, mode: str = "keep"):
    """Return ``(model, summary)``: ``proto`` ready for import in ``mode`` (``"keep"`` or
    ``"float"``, see the module's docstring) and a one-line summary of what was done (``""``
    for a float model, which is returned as it is)."""
    import onnx

    ops = quantized_ops(proto)
    if not ops:
        return proto, ""
    if mode not in ("keep", "float"):
        raise ValueError(f"quantized mode {mode!r}: 'keep' or 'float'")
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    found = ", ".join(f"{n} {op}" for op, n in sorted(ops.items()))
    _qlinear_as_qdq(model.graph)
    _integer_matmuls_as_standard_ops(model.graph)
    folded = _fold_weight_dequantization(model.graph)
    if mode == "float":
        lifted = _lift(model.graph)
        left = quantized_ops(model)
        parts = [f"{k} {what}" for k, what in ((lifted["linear"], "matmul/conv(s) on dequantized weights"),
                                                (lifted["embeddings"], "dequantized embedding table(s)"),
                                                (lifted["pairs"], "quantize-dequantize pair(s) removed"),
                                                (lifted["relus"], "activation(s) the quantizer removed restored (Relu, Clip 0..6)"),
                                                (folded, "weight dequantization(s) folded")) if k]
        what = f"lifted to float ({', '.join(parts) or 'nothing to lift'})"
        if left:
            what += "; left as written: " + ", ".join(f"{n} {op}" for op, n in sorted(left.items()))
        _conv_integer_exact(model.graph)
        return model, f"quantized model ({found}): {what}"
    _refuse_degenerate_scales(model.graph)
    convs = _conv_integer_exact(model.graph)
    parts = [f"{k} {what}" for k, what in ((folded, "weight dequantization(s) folded"),
                                            (convs, "ConvInteger computed exactly in float64")) if k]
    what = "kept as written" + (f" ({', '.join(parts)})" if parts else "")
    return model, f"quantized model ({found}): {what}"


def _rewrite_nodes(graph, rule) -> int:
    """Each node of ``graph`` for which ``rule(node)`` gives a list of nodes replaced by them,
    in place; how many were."""
    nodes, done = [], 0
    for n in graph.node:
        got = rule(n)
        nodes.extend([n] if got is None else got)
        done += got is not None
    if done:
        del graph.node[:]
        graph.node.extend(nodes)
    return done


def _qlinear_as_qdq(graph) -> int:
    """Every operator of :data:`_QLINEAR` as ``DequantizeLinear`` of its inputs, the float op
    and ``QuantizeLinear`` of its output (the QOperator format written out as QDQ). onnxruntime
    computes some of them in integers (``QLinearMatMul``'s requantization, ``QLinearSoftmax``'s
    table), so kept as written the result may differ from onnxruntime's by one code where a
    value falls near a rounding boundary."""
    from onnx import helper, numpy_helper

    const = _constants(graph)

    def rule(n):
        nodes = []
        spec = _QLINEAR.get((n.domain if n.domain != "ai.onnx" else "", n.op_type))
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "QLinearSoftmax":  # its default axis follows its own opset attribute
            attrs["axis"] = attrs.get("axis", -1 if attrs.get("opset", 13) >= 13 else 1)
        if spec is None or (n.op_type.endswith("AveragePool") and attrs.get("channels_last", 0)) \
                or (n.op_type == "QLinearSoftmax" and attrs.get("opset", 13) < 13 and attrs["axis"] != -1):
            return None
        op, triples, out = spec
        ins = list(n.input) + [""] * 12
        base = n.name or n.output[0]
        if triples is None:  # QLinearConcat: (y scale, y zero point, then a triple per input)
            triples = [(k, k + 1, k + 2) for k in range(2, len(n.input), 3)]
        bias = ins[8] if op == "Conv" else ins[6] if op == "Gemm" else ""
        if bias and not (ins[triples[0][1]] in const and ins[triples[1][1]] in const):
            return None  # an int32 bias whose scale (x_scale * w_scale) is not a constant
        floats = []
        for j, (q, sc, zp) in enumerate(triples):
            axis = {}
            if const.get(ins[sc]) is not None and const[ins[sc]].size > 1:  # per channel: weights
                rank = len(const[ins[q]].shape) if ins[q] in const else 2
                axis = {"axis": 0 if op == "Conv" or (op == "Gemm" and attrs.get("transB", 0)) else rank - 1}
            f = f"{base}/dq{j}"
            nodes.append(helper.make_node("DequantizeLinear", [ins[q], ins[sc]] + ([ins[zp]] if ins[zp] else []),
                                          [f], name=f"{base}/DequantizeLinear{j}", **axis))
            floats.append(f)
        if bias:  # int32 with scale x_scale * w_scale (* alpha for QGemm) and zero point 0
            scale = (const[ins[triples[0][1]]].astype(np.float32) * const[ins[triples[1][1]]].astype(np.float32)
                     * np.float32(attrs.get("alpha", 1.0) if op == "Gemm" else 1.0)).reshape(-1)
            graph.initializer.append(numpy_helper.from_array(scale if scale.size > 1 else scale.reshape(()),
                                                             f"{base}/bias_scale"))
            nodes.append(helper.make_node("DequantizeLinear", [bias, f"{base}/bias_scale"], [f"{base}/bias"],
                                          name=f"{base}/DequantizeLinear_bias",
                                          **({"axis": 0} if scale.size > 1 else {})))
            floats.append(f"{base}/bias")
        extra = {k: v for k, v in attrs.items() if k not in ("opset", "channels_last")}
        if op == "Where":
            floats.insert(0, ins[0])
        quantized_out = out is not None and ins[out[0]]
        y = f"{base}/y" if quantized_out else n.output[0]
        nodes.append(helper.make_node(op, floats, [y], name=f"{base}/{op}", **extra))
        if quantized_out:
            nodes.append(helper.make_node("QuantizeLinear", [y, ins[out[0]]] + ([ins[out[1]]] if ins[out[1]] else []),
                                          [n.output[0]], name=f"{base}/QuantizeLinear"))
        return nodes

    return _rewrite_nodes(graph, rule)


def _integer_matmuls_as_standard_ops(graph) -> int:
    """onnxruntime's ``DynamicQuantizeMatMul(A, B, b_scale, b_zero, bias)`` and
    ``MatMulIntegerToFloat(A, B, a_scale, b_scale, a_zero, b_zero, bias)`` as the ops they
    fuse: ``[DynamicQuantizeLinear(A) ->] MatMulInteger -> Cast -> Mul(a_scale * b_scale)
    [-> Add(bias)]`` (onnxruntime's kernels compute the int32 product and scale it by the
    product of the scales in float, as written here)."""
    from onnx import helper

    def rule(n):
        nodes = []
        if n.domain != MS or n.op_type not in _INTEGER_MATMULS:
            return None
        ins = list(n.input) + [""] * 8
        base = n.name or n.output[0]
        if n.op_type == "DynamicQuantizeMatMul":
            a, a_zero, a_scale = f"{base}/a_q", f"{base}/a_zero", f"{base}/a_scale"
            nodes.append(helper.make_node("DynamicQuantizeLinear", [ins[0]], [a, a_scale, a_zero],
                                          name=f"{base}/DynamicQuantizeLinear"))
            b, b_scale, b_zero, bias = ins[1], ins[2], ins[3], ins[4]
        else:
            a, b, a_scale, b_scale, a_zero, b_zero, bias = ins[:7]
        zeros = [a_zero, b_zero] if b_zero else [a_zero] if a_zero else []  # "": an omitted a_zero
        nodes.append(helper.make_node("MatMulInteger", [a, b] + zeros, [f"{base}/int32"], name=f"{base}/MatMulInteger"))
        nodes.append(helper.make_node("Cast", [f"{base}/int32"], [f"{base}/float"], to=_FLOAT, name=f"{base}/Cast"))
        nodes.append(helper.make_node("Mul", [a_scale, b_scale], [f"{base}/scale"], name=f"{base}/scales"))
        y = f"{base}/scaled" if bias else n.output[0]
        nodes.append(helper.make_node("Mul", [f"{base}/float", f"{base}/scale"], [y], name=f"{base}/Mul"))
        if bias:
            nodes.append(helper.make_node("Add", [y, bias], [n.output[0]], name=f"{base}/Add"))
        return nodes

    return _rewrite_nodes(graph, rule)


def _refuse_degenerate_scales(graph) -> None:
    """A scale that is 0, inf or NaN makes ``QuantizeLinear``/``DequantizeLinear`` compute NaN
    or garbage, and engines disagree on which (onnxruntime's static quantization writes an inf
    scale where it calibrated an attention mask's ``finfo.min``)."""
    from qcompile.errors import QCompileError

    const = _constants(graph)
    for n in graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 1 and n.input[1] in const:
            s = const[n.input[1]].astype(np.float64)
            if not np.isfinite(s).all() or (s == 0).any():
                bad = s[~np.isfinite(s) | (s == 0)].ravel()[0]
                raise QCompileError(f"{n.op_type} node '{n.name or n.output[0]}' has scale {bad}: its output is "
                                    "not a number, so the model cannot be kept as written",
                                    hint="--quantized float lifts the model back to float (the pipeline "
                                         "quantizes it again)")


def _fold_weight_dequantization(graph) -> int:
    """Every ``DequantizeLinear`` of constants becomes a float initializer."""
    from onnx import helper, numpy_helper

    const = _constants(graph)

    def rule(n):
        ins = list(n.input) + [""] * (3 - len(n.input))
        if n.op_type != "DequantizeLinear" or not all(i in const for i in ins[:2]) \
                or (ins[2] and ins[2] not in const):
            return None
        w = dequantize(const[ins[0]], const[ins[1]], const.get(ins[2]) if ins[2] else None,
                       _attr(n, "axis", 1), _attr(n, "block_size", 0) or 0)
        if _attr(n, "output_dtype", 0):  # opset 23: the output's type, not the scale's
            w = w.astype(helper.tensor_dtype_to_np_dtype(_attr(n, "output_dtype")))
        graph.initializer.append(numpy_helper.from_array(w, n.output[0]))
        const[n.output[0]] = w
        return []

    return _rewrite_nodes(graph, rule)


def _conv_integer_exact(graph) -> int:
    """``ConvInteger(x, w, x_zero, w_zero)`` as ``int32(Conv(double(x) - x_zero, double(w) -
    w_zero))``: every product and sum of int8 codes is exact in float64."""
    from onnx import helper, numpy_helper

    const = _constants(graph)

    def rule(n):
        nodes = []
        if n.op_type != "ConvInteger":
            return None
        ins = list(n.input) + [""] * (4 - len(n.input))
        base = n.name or n.output[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        x = f"{base}/x_f64"
        nodes.append(helper.make_node("Cast", [ins[0]], [x], to=_DOUBLE, name=f"{base}/cast_x"))
        if ins[2]:
            nodes.append(helper.make_node("Cast", [ins[2]], [f"{base}/xz_f64"], to=_DOUBLE, name=f"{base}/cast_xz"))
            nodes.append(helper.make_node("Sub", [x, f"{base}/xz_f64"], [f"{base}/x_centered"], name=f"{base}/sub_xz"))
            x = f"{base}/x_centered"
        if ins[1] in const and (not ins[3] or ins[3] in const):
            w = const[ins[1]].astype(np.float64)
            if ins[3]:
                z = const[ins[3]].astype(np.float64)
                w = w - (z.reshape(-1, *[1] * (w.ndim - 1)) if z.size > 1 else z)
            wname = f"{base}/w_f64"
            graph.initializer.append(numpy_helper.from_array(w, wname))
        else:
            wname = f"{base}/w_f64"
            nodes.append(helper.make_node("Cast", [ins[1]], [wname + "_raw"], to=_DOUBLE, name=f"{base}/cast_w"))
            if ins[3]:  # a scalar, or one per output channel: [M] -> [M, 1, 1, ...] (rank 4 here)
                nodes.append(helper.make_node("Cast", [ins[3]], [f"{base}/wz_f64"], to=_DOUBLE, name=f"{base}/cast_wz"))
                shape = f"{base}/wz_shape"
                graph.initializer.append(numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), shape))
                nodes.append(helper.make_node("Reshape", [f"{base}/wz_f64", shape], [f"{base}/wz_col"],
                                              name=f"{base}/reshape_wz"))
                nodes.append(helper.make_node("Sub", [wname + "_raw", f"{base}/wz_col"], [wname], name=f"{base}/sub_wz"))
            else:
                wname += "_raw"
        nodes.append(helper.make_node("Conv", [x, wname], [f"{base}/y_f64"], name=f"{base}/conv", **attrs))
        nodes.append(helper.make_node("Cast", [f"{base}/y_f64"], [n.output[0]], to=_INT32, name=f"{base}/cast_y"))
        return nodes

    return _rewrite_nodes(graph, rule)


def _lift(graph) -> dict:
    """The float rewrite of :func:`prepare` (``mode="float"``) on ``graph``, in place."""
    import onnx
    from onnx import helper, numpy_helper

    from qcompile.frontend.onnx_prepare import _keep_live

    const = _constants(graph)
    # the graph as it was: the loop below renames the inputs of the nodes it keeps in place
    producer = {}
    for n in graph.node:
        original = onnx.NodeProto()
        original.CopyFrom(n)
        producer.update({o: original for o in n.output})
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}

    def operand_ok(node, k):  # operand k of a MatMulInteger/ConvInteger: a constant, or a liftable code
        name = node.input[k] if len(node.input) > k else ""
        zero = node.input[k + 2] if len(node.input) > k + 2 else ""
        if name in const:
            return not zero or zero in const
        p = producer.get(name)  # its own zero point, or the lift would drop the centring term
        return p is not None and p.op_type == "DynamicQuantizeLinear" and zero == p.output[2]

    def liftable(dql) -> bool:  # every use of its codes is an operand the lift rewrites
        uses = consumers.get(dql.output[0], [])
        if not uses or dql.output[0] in outputs:
            return False
        for u in uses:
            if u.output[0] in outputs:  # an int32 model output stays one
                return False
            if u.op_type == "MatMulInteger" and operand_ok(u, 0) and operand_ok(u, 1):
                continue
            if u.op_type == "ConvInteger" and list(u.input).index(dql.output[0]) == 0 and operand_ok(u, 0) \
                    and operand_ok(u, 1):
                continue
            return False
        return True

    lifted_dql = {n.output[0]: n for n in graph.node if n.op_type == "DynamicQuantizeLinear" and liftable(n)}
    # lifting one code that meets another in a matmul needs both lifted
    changed = True
    while changed:
        changed = False
        for y, n in list(lifted_dql.items()):
            for u in consumers[y]:
                other = [i for i in u.input[:2] if i != y and i not in const]
                if any(o not in lifted_dql for o in other):
                    lifted_dql.pop(y)
                    changed = True
                    break

    rename: dict[str, str] = {}
    weights: dict[str, np.ndarray] = {}  # initializers the lift makes
    linear: dict[str, dict] = {}  # float output of a lifted matmul/conv -> its node, weight, kind
    new, pairs, count, embeddings, relus = [], 0, 0, 0, 0
    for n in graph.node:
        ins = [rename.get(i, i) for i in n.input]
        op = n.op_type
        if op == "DynamicQuantizeLinear" and n.output[0] in lifted_dql:
            rename[n.output[0]] = ins[0]
            const[n.output[1]] = np.ones((), np.float32)
            const[n.output[2]] = np.zeros((), np.uint8)
            continue
        if op in ("MatMulInteger", "ConvInteger") and (n.input[0] in lifted_dql or n.input[1] in lifted_dql):
            operands = []
            for k in (0, 1):
                if n.input[k] in lifted_dql:
                    operands.append(ins[k])
                    continue
                w = const[n.input[k]].astype(np.float32)
                zero = n.input[k + 2] if len(n.input) > k + 2 else ""
                if zero:
                    z = const[zero].astype(np.float32)
                    if z.size > 1:  # MatMulInteger: b per column, a per row; ConvInteger: w per output channel
                        z = z.reshape(-1, *[1] * (w.ndim - 1)) if op == "ConvInteger" or k == 0 else z
                    w = w - z
                wname = f"{n.name or n.output[0]}/dequantized_{k}"
                weights[wname] = w
                operands.append(wname)
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            node = helper.make_node("MatMul" if op == "MatMulInteger" else "Conv", operands, [n.output[0]],
                                    name=(n.name or n.output[0]) + "/float", **attrs)
            new.append(node)
            wk = [k for k in (0, 1) if operands[k] in weights]
            linear[n.output[0]] = {"node": node, "weight": operands[1] if wk == [1] else None, "kind": op,
                                   "single": len(consumers.get(n.output[0], [])) == 1 and n.output[0] not in outputs}
            count += 1
            continue
        if op == "Cast" and ins[0] in linear and _attr(n, "to") == _FLOAT:
            rename[n.output[0]] = ins[0]
            linear[ins[0]]["single"] &= len(consumers.get(n.output[0], [])) == 1 and n.output[0] not in outputs
            continue
        if op == "Mul" and all(i in const for i in ins):  # the scale products, now constants
            a, b = const[ins[0]], const[ins[1]]
            const[n.output[0]] = np.asarray(a * b).astype(np.result_type(a, b))
            continue
        if op == "Mul" and any(i in linear for i in ins) and any(i in const for i in ins):
            lin = linear.get(ins[0]) or linear.get(ins[1])
            src = ins[0] if ins[0] in linear else ins[1]
            s = const[ins[1] if src == ins[0] else ins[0]].astype(np.float32)
            if lin["single"] and lin["weight"] is not None and _fold_scale(weights, lin, s):
                lin["node"].output[0] = n.output[0]
                linear[n.output[0]] = linear.pop(src)
                linear[n.output[0]]["single"] = len(consumers.get(n.output[0], [])) <= 1
                continue
        if op == "DequantizeLinear" and _gathered_table(n, producer, const):
            g = producer[n.input[0]]  # DQ(Gather(W_q, ids)) = Gather(DQ(W_q), ids): a quantized embedding
            ins3 = list(n.input) + [""] * (3 - len(n.input))
            tname = f"{g.input[0]}/dequantized"
            weights[tname] = dequantize(const[g.input[0]], const[ins3[1]], const.get(ins3[2]) if ins3[2] else None)
            attrs = {a.name: helper.get_attribute_value(a) for a in g.attribute}
            new.append(helper.make_node("Gather", [tname, rename.get(g.input[1], g.input[1])], [n.output[0]],
                                        name=(n.name or n.output[0]) + "/float", **attrs))
            embeddings += 1
            continue
        if op == "DequantizeLinear":
            chain, t = [], n.input[0]  # codes moved between Q and DQ: (node, which output)
            q = producer.get(t)
            while q is not None and q.op_type in _MOVES:
                chain.append((q, list(q.output).index(t)))
                t = q.input[0]
                q = producer.get(t)
            if q is not None and q.op_type == "QuantizeLinear" and _same_quantizer(q, n, const) \
                    and (not chain or _per_tensor(q, const)):
                x = rename.get(q.input[0], q.input[0])
                clamp = _removed_activation(q, producer, const)
                if clamp is not None:
                    # onnxruntime's quantizer removed the ReLU (ReLU6) after this op and let the
                    # clamp to the grid compute it; the lift keeps it
                    relu = f"{q.output[0]}/relu"
                    if relu not in rename:
                        bounds = [] if clamp == "Relu" else [_scalar_init(graph, f"{relu}/lo", 0.0, const),
                                                             _scalar_init(graph, f"{relu}/hi", 6.0, const)]
                        new.append(helper.make_node(clamp, [x] + bounds, [relu], name=f"{q.name or q.output[0]}/relu"))
                        rename[relu] = relu
                        relus += 1
                    x = relu
                for m, k in reversed(chain):  # the same moves on the float values
                    attrs = {a.name: helper.get_attribute_value(a) for a in m.attribute}
                    outs = [f"{o}/float" for o in m.output]
                    if outs[0] not in rename:
                        new.append(helper.make_node(m.op_type, [x] + [rename.get(i, i) for i in m.input[1:]],
                                                    outs, name=f"{m.name or m.output[0]}/float", **attrs))
                        rename.update({o: o for o in outs})
                    x = outs[k]
                rename[n.output[0]] = x
                pairs += 1
                continue
        n.input[:] = ins
        new.append(n)
    used = {i for n in new for i in n.input}
    made = {o for n in new for o in n.output} | {i.name for i in graph.initializer}
    for name in sorted(used - made):  # constants the lift computed (dequantized weights, folded scales)
        if name in weights or name in const:
            graph.initializer.append(numpy_helper.from_array(weights[name] if name in weights else const[name], name))
    for o in graph.output:
        if o.name in rename:  # a graph output the lift renamed keeps its name
            new.append(helper.make_node("Identity", [rename[o.name]], [o.name], name=f"{o.name}/lifted"))
    changed_types = set(linear) | set(lifted_dql) | {n.output[0] for n in lifted_dql.values()}
    keep_vi = [v for v in graph.value_info if v.name not in changed_types and v.name not in rename]
    del graph.value_info[:]
    graph.value_info.extend(keep_vi)
    _keep_live(graph, new)
    return {"linear": count, "pairs": pairs, "embeddings": embeddings, "relus": relus}


def _gathered_table(dq, producer, const) -> bool:
    """``DequantizeLinear(Gather(W_q, ids))`` with one scale and zero point for the whole
    table (onnxruntime's quantized embeddings)."""
    g = producer.get(dq.input[0])
    if g is None or g.op_type != "Gather" or g.input[0] not in const:
        return False
    rest = [i for i in dq.input[1:] if i]
    return all(i in const and const[i].size == 1 for i in rest) and len(rest) >= 1


def _fold_scale(weights: dict, lin: dict, s: np.ndarray) -> bool:
    """Fold an output scale ``s`` into a lifted matmul's or convolution's weight, where it
    scales whole output channels (a scalar, or one value per output column/channel)."""
    w = weights[lin["weight"]]
    if s.size == 1:
        weights[lin["weight"]] = w * s.reshape(())
        return True
    n = w.shape[-1] if lin["kind"] == "MatMulInteger" else w.shape[0]
    # the output's channel axis: the last of a matmul's, the first after the batch of a conv's
    # ([N] or [1, N]; [M, 1, .., 1] or [1, M, 1, .., 1]): a scale of more dims would broadcast
    # the output to more dims than the matmul alone gives
    axis = -1 if lin["kind"] == "MatMulInteger" else -(w.ndim - 1)
    dims = list(s.shape)
    most = 2 if lin["kind"] == "MatMulInteger" else w.ndim
    if not -axis <= len(dims) <= most or dims[axis] != n \
            or any(d != 1 for i, d in enumerate(dims) if i != len(dims) + axis):
        return False
    s = s.reshape(-1)
    weights[lin["weight"]] = w * s if lin["kind"] == "MatMulInteger" else w * s.reshape(-1, *[1] * (w.ndim - 1))
    return True


#: ops after which onnxruntime's quantizer removes a ReLU or Clip (it folds the activation into
#: the range of the op's output when the op is quantized and the activation its only consumer)
_ACTIVATION_HOSTS = {"Conv", "ConvTranspose", "MatMul", "Gemm", "Add", "Mul", "BatchNormalization"}


def _removed_activation(q, producer, const):
    """``"Relu"`` or ``"Clip"`` (0 to 6) where ``q``'s grid starts at 0 after an op whose
    output the graph does not prove non-negative and after which onnxruntime's quantizer
    removes activations; ``None`` where the pair ``DQ(Q(x))`` clamps nothing structural (its
    range is calibration's, which the lift drops with the rounding). A ``Clip`` to bounds
    other than 0 and 6 is not recognized (its grid's ends are indistinguishable from a
    calibrated range)."""
    grid = _grid(q, const)
    host = producer.get(q.input[0])
    if grid is None or grid[0] != 0.0 or host is None or host.op_type not in _ACTIVATION_HOSTS:
        return None
    low = _lower_bound(q.input[0], producer, const)
    if low is not None and low >= 0:
        return None
    return "Clip" if abs(grid[1] - 6.0) <= 1e-5 else "Relu"


def _scalar_init(graph, name, value, const) -> str:
    from onnx import numpy_helper

    if name not in const:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        const[name] = np.asarray(value, np.float32)
    return name


def _lower_bound(name, producer, const, depth: int = 8):
    """A lower bound of tensor ``name``'s values that the graph proves (``None``: none known):
    constants, :data:`_FLOOR`, sums, products of non-negatives, ``Where`` and data movement."""
    if name in const:
        c = const[name]
        return float(c.min()) if c.size and c.dtype.kind == "f" else None
    n = producer.get(name)
    if n is None or depth == 0:
        return None
    if n.op_type in _FLOOR:
        return _FLOOR[n.op_type]
    if n.op_type == "Where" and len(n.input) > 2:  # the lower of its two values'
        values = [_lower_bound(i, producer, const, depth - 1) for i in n.input[1:3]]
        return None if None in values else min(values)
    if n.op_type == "Pow" and n.input[1] in const and const[n.input[1]].size == 1:
        e = float(const[n.input[1]].reshape(()))
        if e == int(e) and int(e) % 2 == 0:
            return 0.0  # an even power
    if n.op_type == "DequantizeLinear":  # its grid's lowest value, (q_min - zero) * scale
        if n.input[0] in const and all(i in const for i in n.input[1:] if i):  # constant codes: their own
            ins = list(n.input) + [""] * 2
            return float(dequantize(const[ins[0]], const[ins[1]], const.get(ins[2]) if ins[2] else None,
                                    _attr(n, "axis", 1), _attr(n, "block_size", 0) or 0).min())
        q = producer.get(n.input[0])
        if q is None or q.op_type != "QuantizeLinear" or not _same_quantizer(q, n, const):
            return None
        # the lift removes this pair: the lifted graph's value here is x itself
        x = _lower_bound(q.input[0], producer, const, depth - 1)
        grid = _grid(q, const)
        return x if x is not None else None if grid is None else grid[0]
    if n.op_type == "Concat":
        low = [_lower_bound(i, producer, const, depth - 1) for i in n.input]
        return None if None in low else min(low)
    low = [_lower_bound(i, producer, const, depth - 1) for i in n.input[:2]]
    if n.op_type in _MOVES or n.op_type in ("Cast", "ReduceMean", "ReduceMax", "ReduceMin"):
        return low[0]
    if None in low:
        return None
    if n.op_type == "Add":
        return low[0] + low[1]
    if n.op_type in ("Mul", "MatMul") and min(low) >= 0:
        return low[0] * low[1] if n.op_type == "Mul" else 0.0
    if n.op_type == "Div" and min(low) >= 0:
        return 0.0
    if n.op_type == "ReduceSum" and low[0] >= 0:
        return 0.0
    return None


def _code_range(dtype):
    """``(min, max)`` of an integer code type (int4/uint4 through ml_dtypes), else ``None``."""
    try:
        info = np.iinfo(dtype)
    except (TypeError, ValueError):
        try:
            import ml_dtypes

            info = ml_dtypes.iinfo(dtype)
        except Exception:  # noqa: BLE001 - float8 and unknown types: no integer grid
            return None
    return int(info.min), int(info.max)


def _grid(q, const):
    """``(lowest, highest)`` value ``q``'s codes dequantize to, for a per-tensor quantizer with
    a finite positive scale and a known code type (its zero point's, or ``output_dtype``, or
    uint8 where neither is given), else ``None``."""
    from onnx import helper

    scale = const.get(q.input[1]) if len(q.input) > 1 else None
    if scale is None or scale.size != 1 or not np.isfinite(scale).all() or (scale <= 0).any():
        return None  # no grid at all (an inf scale: a calibrated attention mask)
    zero_name = q.input[2] if len(q.input) > 2 else ""
    zero = const.get(zero_name) if zero_name else None
    if zero_name and (zero is None or zero.size != 1):
        return None
    if zero is not None:
        dtype = zero.dtype
    elif _attr(q, "output_dtype", 0):
        dtype = helper.tensor_dtype_to_np_dtype(_attr(q, "output_dtype"))
    else:
        dtype = np.dtype(np.uint8)
    codes = _code_range(dtype)
    if codes is None:
        return None
    z = int(np.asarray(zero).astype(np.int64).reshape(())) if zero is not None else 0
    s = float(scale.reshape(()))
    return (codes[0] - z) * s, (codes[1] - z) * s


def _per_tensor(q, const) -> bool:
    """``q`` quantizes with one constant scale and zero point for the whole tensor."""
    return all(len(q.input) <= k or not q.input[k] or (q.input[k] in const and const[q.input[k]].size == 1)
               for k in (1, 2))


def _same_quantizer(q, dq, const) -> bool:
    """A ``QuantizeLinear`` and the ``DequantizeLinear`` after it use the same scale, zero
    point, axis and block size (so the pair rounds an activation onto its grid and back)."""
    def get(node, k):
        name = node.input[k] if len(node.input) > k else ""
        return None if not name else const.get(name, name)

    for k in (1, 2):
        a, b = get(q, k), get(dq, k)
        if isinstance(a, str) or isinstance(b, str):
            if a != b:
                return False
        elif (a is None) != (b is None) or (a is not None and not np.array_equal(a, b)):
            return False
    return _attr(q, "axis", 1) == _attr(dq, "axis", 1) and _attr(q, "block_size", 0) == _attr(dq, "block_size", 0)
