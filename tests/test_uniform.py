"""Uniform tensors (qcompile.analysis.uniform) and their folding (fold_uniform): what is proved
uniform folds, and the folded graph computes what the original does at several batch sizes;
what is not uniform (a per-sample index read as a value, a sum over the batch, a merge of
the batch with another axis, a bound that moves with the batch) is left alone."""
import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.relax import op as O

from qcompile.analysis.uniform import TOP, UNIFORM, Iota, Uniform
from qcompile.passes.int_only.uniform import fold_uniform

B = tvm.tirx.Var("batch", "int64")
T = 4


def _module(body):
    """main(x: float32 [batch, 1, T, T]) -> x + body(bb, x) (float32, broadcastable)."""
    x = relax.Var("x", relax.TensorType([B, 1, T, T], "float32"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            extra = body(bb, x)
            out = bb.emit_output(O.add(x, extra))
        bb.emit_func_output(out)
    return bb.get()


def _run(mod, x):
    ex = tvm.compile(mod, target="llvm")
    return relax.VirtualMachine(ex, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()


def _values(mod) -> dict:
    u = Uniform(mod["main"])
    return {v.name: u.values[v] for v in u.defs}


def _per_sample_mask(bb, x):
    """A causal mask written per sample into a broadcast of the padding mask, as torch
    exports ``mask[:, :, :, :] = mask.masked_fill(...)`` (BART, T5, M2M-100): a ScatterND whose
    index tuples are (arange(batch), 0, i, j), with the importer's wrap of negative indices."""
    causal = np.triu(np.full((T, T), -1e9, "float32"), 1)[None, None]
    base = bb.emit(O.broadcast_to(relax.const(np.zeros((1, 1, T, T), "float32")), relax.ShapeExpr([B, 1, T, T])))
    upd = bb.emit(O.add(base, relax.const(causal)))
    b = bb.emit(O.arange(0, B, 1, dtype="int64"))
    b = bb.emit(O.broadcast_to(O.reshape(b, relax.ShapeExpr([B, 1, 1, 1])), relax.ShapeExpr([B, 1, T, T])))
    grid = np.stack(np.meshgrid(np.zeros(1, "int64"), np.arange(T), np.arange(T), indexing="ij"), -1)
    rest = bb.emit(O.broadcast_to(relax.const(grid[None], "int64"), relax.ShapeExpr([B, 1, T, T, 3])))
    idx = bb.emit(O.concat([bb.emit(O.expand_dims(b, [4])), rest], axis=-1))
    wrapped = bb.emit(O.add(idx, O.shape_to_tensor(O.shape_of(base))))
    idx = bb.emit(O.where(bb.emit(O.less(idx, relax.const(0, "int64"))), wrapped, idx))
    return bb.emit(O.scatter_nd(base, idx, upd))


def test_a_per_sample_scatter_folds_and_computes_the_same():
    mod = _module(_per_sample_mask)
    vals = _values(mod)
    assert any(isinstance(v, Iota) for v in vals.values())  # arange(batch) is a per-sample index
    folded, names = fold_uniform(mod)
    assert names, "the scattered mask was not proved uniform"
    text = folded.script()
    assert "scatter_nd" not in text and "arange" not in text
    for n in (1, 2, 3):
        x = np.random.default_rng(n).standard_normal((n, 1, T, T)).astype("float32")
        np.testing.assert_array_equal(_run(folded, x), _run(mod, x))


def test_an_index_read_as_a_value_is_not_uniform():
    """``float(arange(batch) < 2)``: equal at batch 1 and 2, not at 3 (evaluating at a few
    sizes would have folded it)."""
    def body(bb, x):
        b = bb.emit(O.arange(0, B, 1, dtype="int64"))
        m = bb.emit(O.astype(O.less(b, relax.const(2, "int64")), "float32"))
        return bb.emit(O.reshape(m, relax.ShapeExpr([B, 1, 1, 1])))

    mod = _module(body)
    assert _values(mod)["lv1"] is TOP
    assert fold_uniform(mod)[1] == []


def test_reductions_and_merges_over_the_batch():
    def body(bb, x):
        ones = bb.emit(O.broadcast_to(relax.const(1.0, "float32"), relax.ShapeExpr([B, 1, T, T])))
        bb.emit(O.sum(ones, axis=[0], keepdims=True))           # grows with the batch
        bb.emit(O.max(ones, axis=[0], keepdims=True))           # the same value
        bb.emit(O.reshape(ones, relax.ShapeExpr([B * T, T])))   # batch merged with a static axis
        bb.emit(O.cumsum(ones, axis=0))                         # a running count over samples
        bb.emit(O.cumsum(ones, axis=3))                         # within each sample
        bb.emit(O.strided_slice(relax.const(np.arange(8, dtype="float32")), [0], [B - 1], [B]))
        return ones

    vals = _values(_module(body))
    assert [vals[f"lv{i}"] for i in range(1, 7)] == [TOP, UNIFORM, TOP, TOP, UNIFORM, TOP]


def test_gathering_along_the_batch_ignores_the_indices():
    def body(bb, x):
        table = bb.emit(O.broadcast_to(relax.const(np.ones((1, 1, T, T), "float32")), relax.ShapeExpr([B, 1, T, T])))
        idx = bb.emit(O.astype(O.sum(x, axis=[1, 2, 3]), "int64"))   # values of the input: TOP
        return bb.emit(O.take(table, idx, axis=0))

    vals = _values(_module(body))
    assert vals["lv2"] is TOP and vals["lv3"] == UNIFORM


@pytest.mark.parametrize("src,dst,uniform", [(8, 8, True), (B, 8, True), (8, B, False)])
def test_resizing_a_uniform_tensor(src, dst, uniform):
    """A static extent resized to a symbolic one samples at positions that depend on it."""
    def body(bb, x):
        ones = bb.emit(O.broadcast_to(relax.const(np.ones((1, 1, 1, 8), "float32")), relax.ShapeExpr([B, 1, src, 8])))
        bb.emit(O.image.resize2d(ones, relax.ShapeExpr([dst, 8]), method="linear"))
        return relax.const(np.zeros((1, 1, 1, 1), "float32"))

    vals = _values(_module(body))
    assert (vals["lv1"] == UNIFORM) is uniform
