"""Requantization shifts and clips taken in int32 lanes (llvm): which clips are rewritten,
bit-exactness at the int64 extremes, and no emulated 64-bit min/max in a matmul epilogue."""
import re

import numpy as np
import pytest
from tvm import relax
from tvm.relax import op as O

from qcompile.backends import llvm, shift32
from test_x86_packed import _asm, needs_avx2

I32, I64 = np.iinfo(np.int32), np.iinfo(np.int64)


def _shift_clip(s, lo: int, hi: int, out: str = "int32", shape=(4, 8)):
    """``astype(clip(right_shift(x, s), lo, hi), out)`` of an int64 ``x``."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, "int64"))
    with bb.function("main", [x]):
        with bb.dataflow():
            r = bb.emit(O.right_shift(x, relax.const(s, "int64")))
            y = bb.emit_output(bb.emit(O.astype(bb.emit(O.clip(r, lo, hi)), out)))
        bb.emit_func_output(y)
    return bb.get()


@pytest.mark.parametrize("s,lo,hi,expected", [
    (32, -128, 127, 1),
    (63, I32.min, I32.max, 1),
    (38, -127, 127, 1),
    (31, -128, 127, 0),                             # the low half matters
    (40, I32.min - 1, 0, 0),                        # a bound outside int32
    (np.array([38] * 8, np.int64), -128, 127, 0),   # per-channel shifts: not handled
])
def test_which_clips_are_narrowed(s, lo, hi, expected):
    mod = _shift_clip(s, lo, hi)
    assert len(shift32.find_shift_clips(mod["main"])) == expected
    _, count = shift32.narrow_requant_shifts(mod)
    assert count == expected


@pytest.mark.parametrize("s,lo,hi", [(32, I32.min, I32.max), (38, -127, 127), (45, -128, 127), (63, -1, 0)])
def test_bit_exact_at_the_int64_extremes(s, lo, hi):
    """The high half shifted by ``s - 32`` and clipped in int32 equals the int64 shift and
    clip, at the int64 extremes and on both sides of multiples of ``2^s``."""
    rng = np.random.default_rng(s)
    near = 1 << min(s + 9, 62)  # results a few hundred units either side of 0
    x = np.array([[I64.min, I64.max, -1, 0, 1, I64.min + 1, I64.max - 1, 1 << 62],
                  [(1 << s) - 1, 1 << s, -(1 << s), -(1 << s) - 1, (1 << s) + 1, -(1 << s) + 1, 2 << s, -(2 << s)]
                  if s < 62 else [-(1 << s), -(1 << s) + 1, (1 << s) - 1, -2, 2, I64.min >> 1, I64.max >> 1, 7],
                  list(rng.integers(I64.min, I64.max, 8, dtype=np.int64)),
                  list(rng.integers(-near, near, 8, dtype=np.int64))], np.int64)
    art = llvm.build(_shift_clip(s, lo, hi))
    assert art.info["requant_shift32"] == 1
    np.testing.assert_array_equal(art.run_raw(x)[0], np.clip(x >> s, lo, hi).astype(np.int32))


def _requant_matmul(rng, k: int = 64, n: int = 48):
    w = rng.integers(-127, 128, (k, n)).astype(np.int8)
    mult = rng.integers(2 ** 29, 2 ** 31 - 1, n).astype(np.int64)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 20, k), "int8"))
    with bb.function("main", [x]):
        with bb.dataflow():
            acc = bb.emit(O.matmul(x, relax.const(w), out_dtype="int32"))
            wide = bb.emit(O.multiply(bb.emit(O.astype(acc, "int64")), relax.const(mult, "int64")))
            r = bb.emit(O.right_shift(O.add(wide, relax.const(1 << 37, "int64")), relax.const(38, "int64")))
            out = bb.emit_output(bb.emit(O.astype(O.clip(r, -127, 127), "int8")))
        bb.emit_func_output(out)
    return bb.get(), w, mult


def _int64_minmax(asm: str) -> list[str]:
    """64-bit lane compares, mins and maxes: AVX2 emulates an int64 clip with vpcmpgtq and a
    blend; AVX-512 (znver4) has vpminsq / vpmaxsq / vpcmpq."""
    return re.findall(r"\bvp(?:cmpgtq|minsq|maxsq|cmpq)\b", asm)


@needs_avx2
def test_matmul_epilogue_clips_in_int32_lanes(monkeypatch):
    """A packed int8 matmul with a per-channel requantization: with the rewrite its epilogue
    has no 64-bit compare-and-blend (AVX2's emulation of an int64 min or max), without it
    it has, and the result is bit-exact."""
    rng = np.random.default_rng(2)
    mod, w, mult = _requant_matmul(rng)
    art = llvm.build(mod)
    assert art.info["requant_shift32"] == 1 and art.info["int8_matmuls_pmaddwd"] == 1
    assert not _int64_minmax(_asm(art))
    xv = rng.integers(-128, 128, (1, 20, 64)).astype(np.int8)
    acc = xv.astype(np.int64) @ w.astype(np.int64)
    expected = np.clip((acc * mult + (1 << 37)) >> 38, -127, 127).astype(np.int8)
    np.testing.assert_array_equal(art.run_raw(xv)[0], expected)
    monkeypatch.setattr(shift32, "narrow_requant_shifts", lambda m: (m, 0))
    plain = llvm.build(mod)
    assert _int64_minmax(_asm(plain))
    np.testing.assert_array_equal(plain.run_raw(xv)[0], expected)
