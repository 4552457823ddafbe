"""A fused QKV projection split by ``take``: each operand gets its own copy of the layout
chain, so that it fuses into one kernel per operand; results unchanged."""
import numpy as np
import pytest
from tvm import relax
from tvm.relax import op as O

from qcompile.backends import llvm, split_heads
from qcompile.backends.common import legalize_stage

SHAPE = (1, 50, 3 * 4 * 8)  # tokens, 3 x heads x head dim


def _qkv_split(index=None, readers: int = 3):
    """``reshape -> permute_dims -> take(i)`` for ``readers`` operands, each scaled
    (an elementwise op that fuses after it); ``index``: a run-time index instead."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    params = [x] + ([relax.Var("i", relax.TensorType((), "int64"))] if index == "runtime" else [])
    with bb.function("main", params):
        with bb.dataflow():
            r = bb.emit(O.reshape(x, (1, 50, 3, 4, 8)))
            p = bb.emit(O.permute_dims(r, [2, 0, 3, 1, 4]))
            outs = []
            for i in range(readers):
                idx = params[1] if index == "runtime" else relax.const(i, "int64")
                t = bb.emit(O.take(p, idx, axis=0, mode="clip"))
                outs.append(bb.emit(O.multiply(t, relax.const(float(i + 2), "float32"))))
            out = bb.emit_output(relax.Tuple(outs) if readers > 1 else outs[0])
        bb.emit_func_output(out)
    return bb.get()


def _reference(x):
    p = x.reshape(1, 50, 3, 4, 8).transpose(2, 0, 3, 1, 4)
    return [p[i] * (i + 2) for i in range(3)]


def test_each_operand_is_one_fused_kernel_and_results_are_unchanged():
    mod = _qkv_split()
    out, count = split_heads.split_heads(mod)
    assert count == 3
    ops = [b.value.op.name for blk in out["main"].body.blocks for b in blk.bindings
           if isinstance(b.value, relax.Call)]
    assert "relax.take" not in ops and ops.count("relax.permute_dims") == 3
    def fused(m):  # the kernel called by each call_tir of main
        leg = legalize_stage(m, llvm.make_target())
        return [b.value.args[0].name_hint for blk in leg["main"].body.blocks for b in blk.bindings
                if isinstance(b.value, relax.Call) and b.value.op.name == "relax.call_tir"]

    assert len(fused(mod)) == 7  # without it: the permutation, three takes, three products
    after = fused(out)
    assert len(after) == 3 and all("transpose" in n and "multiply" in n for n in after), after
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    art = llvm.build(mod)
    assert art.info["split_heads"] == 3
    for got, want in zip(art.run_raw(x), _reference(x)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("index,readers", [("runtime", 3), (None, 1)])
def test_left_alone(index, readers):
    """A run-time index, or a layout chain with one reader (it fuses already)."""
    _, count = split_heads.split_heads(_qkv_split(index, readers))
    assert count == 0
