"""One Before/Expected pair per canonicalization form (and int-only's float preparation):
the rule applied to ``before`` is structurally equal (``tvm.ir.assert_structural_equal``)
to ``expected``, written by hand in TVMScript. A new exporter spelling of an idiom gets a
pair here."""
import math

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import relax as R

from qcompile.passes.canonicalize import rules
from qcompile.passes.int_only import lower

F32 = "float32"
G = np.linspace(0.5, 2.0, 8).astype(F32)
B = np.linspace(-1.0, 1.0, 8).astype(F32)
EPS = float(np.float32(1e-6))


def check(rule, before, expected):
    got = relax.analysis.remove_all_unused(rule(before))
    tvm.ir.assert_structural_equal(got, expected, map_free_vars=True)


# ----------------------------------------------------------------------------- RMSNorm


@R.function(private=True)
def rms_expected(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    with R.dataflow():
        g = R.reshape(R.const(G), R.shape([8]))
        y = R.nn.rms_norm(x, g, axes=[-1], epsilon=EPS)
        R.output(y)
    return y


@R.function(private=True)
def rms_gain_first(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    # ``w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)`` (issue #26's spelling).
    with R.dataflow():
        a = R.multiply(R.const(G), x)
        m = R.mean(R.power(x, R.const(2.0, F32)), axis=[-1], keepdims=True)
        y = R.multiply(a, R.rsqrt(R.add(m, R.const(1e-6, F32))))
        R.output(y)
    return y


@R.function(private=True)
def rms_gain_last(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    # HF Llama: ``weight * (x * torch.rsqrt(variance + eps))``, the square as ``x * x``.
    with R.dataflow():
        m = R.mean(R.multiply(x, x), axis=[-1], keepdims=True)
        n = R.multiply(x, R.rsqrt(R.add(R.const(1e-6, F32), m)))
        y = R.multiply(R.const(G), n)
        R.output(y)
    return y


@R.function(private=True)
def rms_divided(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    # ``x / sqrt(mean(x^2) + eps) * g``.
    with R.dataflow():
        m = R.mean(R.power(x, R.const(2.0, F32)), axis=[-1], keepdims=True)
        n = R.divide(x, R.sqrt(R.add(m, R.const(1e-6, F32))))
        y = R.multiply(n, R.const(G))
        R.output(y)
    return y


@pytest.mark.parametrize("before", [rms_gain_first, rms_gain_last, rms_divided], ids=lambda f: f.__name__ if hasattr(f, "__name__") else "")
def test_rmsnorm_forms(before):
    check(rules._norms, before, rms_expected)


@R.function(private=True)
def rms_other_axis(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    # Not a norm over the channels (the mean runs over the first axis): left alone.
    with R.dataflow():
        m = R.mean(R.power(x, R.const(2.0, F32)), axis=[0], keepdims=True)
        y = R.multiply(R.multiply(x, R.rsqrt(R.add(m, R.const(1e-6, F32)))), R.const(G))
        R.output(y)
    return y


def test_rmsnorm_over_another_axis_is_not_rewritten():
    check(rules._norms, rms_other_axis, rms_other_axis)


# ----------------------------------------------------------------------------- LayerNorm


@R.function(private=True)
def ln_decomposed(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    with R.dataflow():
        d = R.subtract(x, R.mean(x, axis=[-1], keepdims=True))
        v = R.mean(R.power(d, R.const(2.0, F32)), axis=[-1], keepdims=True)
        n = R.divide(d, R.sqrt(R.add(v, R.const(1e-6, F32))))
        y = R.add(R.multiply(n, R.const(G)), R.const(B))
        R.output(y)
    return y


@R.function(private=True)
def ln_expected(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    with R.dataflow():
        g = R.reshape(R.const(G), R.shape([8]))
        b = R.reshape(R.const(B), R.shape([8]))
        y = R.nn.layer_norm(x, g, b, axes=[-1], epsilon=EPS)
        R.output(y)
    return y


def test_layernorm_decomposed():
    check(rules._norms, ln_decomposed, ln_expected)


# ----------------------------------------------------------------------------- GELU


@R.function(private=True)
def gelu_erf(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    # ``x * 0.5 * (1 + erf(x / sqrt(2)))`` (torch.onnx's decomposition).
    with R.dataflow():
        e = R.add(R.erf(R.divide(x, R.const(math.sqrt(2), F32))), R.const(1.0, F32))
        y = R.multiply(R.multiply(x, R.const(0.5, F32)), e)
        R.output(y)
    return y


@R.function(private=True)
def gelu_tanh(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    # ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`` (GPT-2's NewGELU).
    with R.dataflow():
        c = R.multiply(R.power(x, R.const(3.0, F32)), R.const(0.044715, F32))
        t = R.tanh(R.multiply(R.add(x, c), R.const(math.sqrt(2 / math.pi), F32)))
        y = R.multiply(R.multiply(x, R.const(0.5, F32)), R.add(t, R.const(1.0, F32)))
        R.output(y)
    return y


@R.function(private=True)
def gelu_expected(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    with R.dataflow():
        y = R.nn.gelu(x)
        R.output(y)
    return y


@R.function(private=True)
def gelu_tanh_expected(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    with R.dataflow():
        y = R.nn.gelu_tanh(x)
        R.output(y)
    return y


def test_gelu_forms():
    check(rules._gelu, gelu_erf, gelu_expected)
    check(rules._gelu, gelu_tanh, gelu_tanh_expected)


@R.function(private=True)
def gelu_wrong_constant(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    # A factor 0.6, not 0.5: not GELU, left alone.
    with R.dataflow():
        e = R.add(R.erf(R.divide(x, R.const(math.sqrt(2), F32))), R.const(1.0, F32))
        y = R.multiply(R.multiply(x, R.const(0.6, F32)), e)
        R.output(y)
    return y


def test_gelu_with_another_constant_is_not_rewritten():
    check(rules._gelu, gelu_wrong_constant, gelu_wrong_constant)


# ----------------------------------------------------------------------------- softmax


@R.function(private=True)
def softmax_decomposed(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    with R.dataflow():
        e = R.exp(R.subtract(x, R.max(x, axis=[-1], keepdims=True)))
        y = R.divide(e, R.sum(e, axis=[-1], keepdims=True))
        R.output(y)
    return y


@R.function(private=True)
def softmax_expected(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    with R.dataflow():
        y = R.nn.softmax(x, axis=-1)
        R.output(y)
    return y


def test_softmax_decomposed():
    check(rules._softmax, softmax_decomposed, softmax_expected)


# ----------------------------------------------------------------------------- scalars and identities


@R.function(private=True)
def scaled_scores(q: R.Tensor((2, 4, 8), F32), k: R.Tensor((2, 8, 4), F32)) -> R.Tensor((2, 4, 4), F32):
    # torch SDPA's decomposition: q and k each scaled by d^-1/4.
    with R.dataflow():
        y = R.matmul(R.multiply(q, R.const(0.5, F32)), R.multiply(k, R.const(0.25, F32)))
        R.output(y)
    return y


@R.function(private=True)
def scaled_scores_expected(q: R.Tensor((2, 4, 8), F32), k: R.Tensor((2, 8, 4), F32)) -> R.Tensor((2, 4, 4), F32):
    with R.dataflow():
        y = R.multiply(R.matmul(q, k), R.const(0.125, F32))
        R.output(y)
    return y


def test_scalars_move_out_of_an_activation_matmul():
    got = relax.analysis.remove_all_unused(rules._scalars_out_of_matmul(scaled_scores))
    calls = [b.value for blk in got.body.blocks for b in blk.bindings]
    assert [c.op.name for c in calls] == ["relax.matmul", "relax.multiply"], got
    check(rules._scalars_out_of_matmul, scaled_scores, scaled_scores_expected)


@R.function(private=True)
def plus_zero(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    with R.dataflow():
        y = R.nn.relu(R.add(x, R.const(0.0, F32)))
        R.output(y)
    return y


@R.function(private=True)
def plus_zero_expected(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    with R.dataflow():
        y = R.nn.relu(x)
        R.output(y)
    return y


def test_adding_zero_is_dropped():
    check(rules._identity_rewrites, plus_zero, plus_zero_expected)


# ----------------------------------------------------------------------------- pools and resizes


@R.function(private=True)
def pad_then_pool(x: R.Tensor((1, 4, 9, 10), F32)) -> R.Tensor((1, 4, 5, 5), F32):
    # timm's MaxPool2dSame: the TF-"same" pad written out with -inf, a pool without padding
    with R.dataflow():
        p = R.nn.pad(x, [0, 0, 0, 0, 1, 1, 0, 1], "constant", -math.inf)
        y = R.nn.max_pool2d(p, [3, 3], [2, 2], [0, 0, 0, 0])
        R.output(y)
    return y


@R.function(private=True)
def pool_padded(x: R.Tensor((1, 4, 9, 10), F32)) -> R.Tensor((1, 4, 5, 5), F32):
    with R.dataflow():
        y = R.nn.max_pool2d(x, [3, 3], [2, 2], [1, 0, 1, 1])
        R.output(y)
    return y


@R.function(private=True)
def zero_pad_then_pool(x: R.Tensor((1, 4, 9, 10), F32)) -> R.Tensor((1, 4, 5, 5), F32):
    # padding with 0 can win a max over negative values: not the pool's padding
    with R.dataflow():
        p = R.nn.pad(x, [0, 0, 0, 0, 1, 1, 0, 1], "constant", 0.0)
        y = R.nn.max_pool2d(p, [3, 3], [2, 2], [0, 0, 0, 0])
        R.output(y)
    return y


@R.function(private=True)
def resize_same(x: R.Tensor((1, 3, 8, 8), F32)) -> R.Tensor((1, 3, 8, 8), F32):
    with R.dataflow():
        y = R.image.resize2d(x, R.shape([8, 8]), method="cubic", cubic_alpha=-0.75)
        R.output(y)
    return y


@R.function(private=True)
def resize_same_expected(x: R.Tensor((1, 3, 8, 8), F32)) -> R.Tensor((1, 3, 8, 8), F32):
    return x


@R.function(private=True)
def pad_then_ceil_pool(x: R.Tensor((1, 1, 4, 4), F32)) -> R.Tensor((1, 1, 3, 3), F32):
    # ceil_mode: with the pad moved into the pool, the last window would not exist (2 x 2)
    with R.dataflow():
        p = R.nn.pad(x, [0, 0, 0, 0, 0, 1, 0, 1], "constant", -math.inf)
        y = R.nn.max_pool2d(p, [2, 2], [2, 2], [0, 0, 0, 0], ceil_mode=True)
        R.output(y)
    return y


@R.function(private=True)
def pad_then_dilated_pool(x: R.Tensor((1, 1, 2, 2), F32)) -> R.Tensor((1, 1, 1, 1), F32):
    # dilation 3: the one window reads rows -1 and 2, both padding
    with R.dataflow():
        p = R.nn.pad(x, [0, 0, 0, 0, 1, 1, 1, 1], "constant", -math.inf)
        y = R.nn.max_pool2d(p, [2, 2], [1, 1], [0, 0, 0, 0], dilation=[3, 3])
        R.output(y)
    return y


@R.function(private=True)
def resize_same_tf_nn(x: R.Tensor((1, 3, 8, 8), F32)) -> R.Tensor((1, 3, 8, 8), F32):
    # tf_half_pixel_for_nn maps x to x + 0.5 at scale 1: a blend, not the identity
    with R.dataflow():
        y = R.image.resize2d(x, R.shape([8, 8]), method="linear", coordinate_transformation_mode="tf_half_pixel_for_nn")
        R.output(y)
    return y


def test_pad_with_minus_infinity_is_the_pools_padding():
    check(rules._pad_into_max_pool, pad_then_pool, pool_padded)
    for kept in (zero_pad_then_pool, pad_then_ceil_pool, pad_then_dilated_pool):
        check(rules._pad_into_max_pool, kept, kept)


def test_a_resize_to_its_own_size_is_dropped():
    check(rules._same_size_resize, resize_same, resize_same_expected)
    check(rules._same_size_resize, resize_same_tf_nn, resize_same_tf_nn)


# ----------------------------------------------------------------------------- int-only's preparation


@R.function(private=True)
def swish(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    with R.dataflow():
        y = R.multiply(x, R.sigmoid(x))
        R.output(y)
    return y


@R.function(private=True)
def silu_expected(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    with R.dataflow():
        y = R.nn.silu(x)
        R.output(y)
    return y


@R.function(private=True)
def quick_gelu(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    # CLIP's ``x * sigmoid(1.702 x)``.
    with R.dataflow():
        y = R.multiply(x, R.sigmoid(R.multiply(R.const(1.702, F32), x)))
        R.output(y)
    return y


@R.function(private=True)
def quick_gelu_expected(x: R.Tensor((2, 8), F32)) -> R.Tensor((2, 8), F32):
    with R.dataflow():
        y = R.multiply(R.nn.silu(R.multiply(x, R.const(1.702, F32))), R.const(1 / 1.702, F32))
        R.output(y)
    return y


def test_int_prepare_silu_forms():
    check(lower._silu, swish, silu_expected)
    check(lower._silu, quick_gelu, quick_gelu_expected)


def test_a_rewrite_upstream_of_a_shape_check_does_not_crash():
    """TVM 0.27's ``rewrite_call`` dies with SIGSEGV on a function where a binding it rewrites
    flows into a ``match_cast`` to dims already defined (a run-time check the importer adds:
    ``x`` of ``(b, h // 2 * 2, 4)`` asserted ``(b, h, 4)``). ``qcompile.rewrite.rewrite``
    hides such checks from it and puts them back: the rewrite applies and the check stays."""
    from tvm import relax
    from tvm.relax.dpl import is_op, wildcard
    from tvm.script import relax as R, tirx as T

    from qcompile.rewrite import rewrite

    @R.function
    def main(x: R.Tensor(("b", "h", 4), "float32")):
        b, h = T.int64(), T.int64()
        with R.dataflow():
            lv = R.reshape(x, R.shape([b, h // 2, 2, 4]))
            lv1 = R.reshape(lv, R.shape([b, h // 2 * 2, 4]))
            lv2 = R.match_cast(lv1, R.Tensor((b, h, 4), "float32"))
            lv3 = R.concat((x, lv2), axis=0)
            R.output(lv3)
        return lv3

    x = wildcard()
    twice = is_op("relax.reshape")(is_op("relax.reshape")(x, wildcard()), wildcard())
    out = rewrite(twice, lambda call, m: relax.op.reshape(m[x], call.ty.shape), main)
    text = out.script()
    assert text.count("R.reshape(") == 1 and "R.match_cast(" in text and "qcompile.match_cast" not in text
    assert [p.same_as(q) for p, q in zip(out.params, main.params)] == [True]
