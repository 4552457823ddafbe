"""The packed AVX2 int8 matmul (``vpmaddwd``): weight packing, the Relax rewrite, and the
tensorized kernel bit-exact against NumPy with the requantization epilogue fused in."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from tvm import relax, tirx
from tvm.relax import op as O

import qcompile as qc
from qcompile.backends import cpu_schedule, llvm, x86_packed
from qcompile.backends.common import legalize_stage
from test_cpu_schedule import top_loops

MULT, SHIFT = 1234567, 38
AVX2 = x86_packed.supported(llvm.make_target())
needs_avx2 = pytest.mark.skipif(not AVX2, reason="this machine has no AVX2")


def _module(shape, w, b=None):
    """``x int8 @ w (const int8) -> int32``, then (with ``b``) bias and dyadic requantization."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, "int8"))
    with bb.function("main", [x]):
        with bb.dataflow():
            acc = bb.emit(O.matmul(x, relax.const(w), out_dtype="int32"))
            if b is not None:
                acc = bb.emit(O.add(acc, relax.const(b)))
                wide = bb.emit(O.multiply(O.astype(acc, "int64"), relax.const(MULT, "int64")))
                r = bb.emit(O.right_shift(O.add(wide, relax.const(1 << (SHIFT - 1), "int64")),
                                          relax.const(SHIFT, "int64")))
                acc = bb.emit(O.astype(O.clip(r, -128, 127), "int8"))
            out = bb.emit_output(acc)
        bb.emit_func_output(out)
    return bb.get()


def _reference(x, w, b=None):
    acc = x.astype(np.int64) @ w.astype(np.int64)
    if b is None:
        return acc.astype(np.int32)
    return np.clip(((acc + b) * MULT + (1 << (SHIFT - 1))) >> SHIFT, -128, 127).astype(np.int8)


def _has(asm: str, instr: str) -> bool:
    """``instr`` in the code, or its VNNI fusion: on a CPU with AVX-512 VNNI (znver4) LLVM
    folds ``vpmaddwd`` and the following ``vpaddd`` into one ``vpdpwssd``."""
    return instr in asm or (instr == "vpmaddwd" and "vpdpwssd" in asm)


def _asm(art) -> str:
    mod = art.executable.mod
    return "".join(m.inspect_source("asm") for m in [mod, *mod.imports] if m.kind == "llvm")


@given(k=st.integers(1, 40), n=st.integers(1, 40), seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_pack_weight_layout(k, n, seed):
    w = np.random.default_rng(seed).integers(-128, 128, (k, n), dtype=np.int8)
    wp = x86_packed.pack_weight(w)
    assert wp.shape == (-(-n // 16), -(-k // 2), 16, 2)
    kk, jj = np.meshgrid(np.arange(k), np.arange(n), indexing="ij")
    np.testing.assert_array_equal(wp[jj // 16, kk // 2, jj % 16, kk % 2], w)
    assert np.count_nonzero(wp) == np.count_nonzero(w)  # the padding is zeros


@pytest.mark.parametrize("m,tile,padded", [(1, 1, 1), (4, 4, 4), (6, 6, 6), (7, 6, 12), (12, 6, 12), (128, 6, 132),
                                            (197, 6, 198), (1024, 6, 1026)])
def test_row_tile(m, tile, padded):
    assert x86_packed.row_tile(m) == (tile, padded)


@pytest.mark.parametrize("panels,k_bytes,group", [
    (96, 384, 8),        # int8 K=384: eight 6 KB panels
    (24, 1536, 8),       # int8 K=1536: eight 24 KB panels = 192 KB
    (24, 1536 * 4, 2),   # float32 K=1536: two 96 KB panels
    (13, 64, 1),         # 197 columns: 13 panels, no group divides
    (6, 384, 2),
])
def test_panel_group(panels, k_bytes, group):
    """Weight panels a row tile runs over in turn: a divisor of the panel count whose
    panels fit the L2 budget."""
    assert x86_packed.panel_group(panels, k_bytes) == group
    assert panels % group == 0 and group * x86_packed.LANES * k_bytes <= x86_packed.PANEL_GROUP_BYTES


@needs_avx2
@pytest.mark.parametrize("shape,n,epilogue", [
    ((13, 32), 16, True),          # 13 rows: padded to a whole number of 6-row tiles
    ((2, 7, 33), 10, True),        # odd K (padded pair), N not a multiple of 16, a batch axis
    ((1, 197, 64), 48, True),      # DeiT's 197 tokens
    ((2, 128, 96), 64, False),     # no epilogue: the int32 accumulator is the output
    ((3, 1, 40), 24, False),       # one row per batch entry
])
@pytest.mark.parametrize("wmax", [128, x86_packed.U8_WEIGHT_MAX])
def test_packed_matmul_bit_exact(shape, n, epilogue, wmax):
    """Full int8 weights take the vpmaddwd kernel; weights within +-64 (``weight_bits=7``)
    the vpmaddubsw one, whose int16 pair sums are then exact: both bit-exact, extremes
    included (x = -128 is 0 after the +128 offset, x = 127 is 255, w = -64 and 64)."""
    rng = np.random.default_rng(sum(shape) + n)
    x = rng.integers(-128, 128, shape, dtype=np.int8)
    w = rng.integers(-wmax, wmax + (wmax < 128), (shape[-1], n)).astype(np.int8)
    w[0, :] = -wmax  # extremes: int16 products and pair sums stay exact
    w[min(1, shape[-1] - 1), ::2] = min(wmax, 127)
    x[..., 0] = -128
    x[..., -1] = 127
    b = rng.integers(-2**20, 2**20, n, dtype=np.int32) if epilogue else None
    art = qc.build(_module(shape, w, b), "llvm")
    u8 = wmax <= x86_packed.U8_WEIGHT_MAX
    assert (art.info["int8_matmuls_pmaddwd"], art.info["int8_matmuls_pmaddubsw"]) == ((0, 1) if u8 else (1, 0))
    np.testing.assert_array_equal(art.run(x)[0], _reference(x, w, b))
    assert _has(_asm(art), "vpmaddubsw" if u8 else "vpmaddwd")  # the tensorized kernel, not an unscheduled fallback


@needs_avx2
def test_requantization_is_fused_into_the_write_back():
    from qcompile.backends.common import legalize_stage
    from qcompile.backends.cpu_schedule import schedule_func

    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (64, 32), dtype=np.int8)
    mod, n = x86_packed.pack_int8_matmuls(_module((12, 64), w, rng.integers(-99, 99, 32, dtype=np.int32)))
    assert n == {"pmaddwd": 1, "pmaddubsw": 0}
    fused = [f for gv, f in legalize_stage(mod, llvm.make_target()).functions.items() if "pmaddwd" in gv.name_hint]
    assert len(fused) == 1  # matmul, bias and requantization in one kernel
    text = schedule_func(fused[0]).script()
    assert "llvm.x86.avx2.pmadd.wd" in text
    # the epilogue reads the register tile: no int32 accumulator buffer in memory
    assert 'sblock_alloc_buffer((T.int64(12), T.int64(32)), "int32")' not in text


def test_without_avx2_the_matmul_is_left_alone():
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (5, 16), dtype=np.int8)
    w = rng.integers(-128, 128, (16, 8), dtype=np.int8)
    art = llvm.build(_module((5, 16), w), mcpu="x86-64")  # baseline x86-64: SSE2 only
    assert "int8_matmuls_pmaddwd" not in art.info
    np.testing.assert_array_equal(art.run(x)[0], _reference(x, w))


def test_only_int8_matmuls_with_constant_weights_are_packed():
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((4, 8), "int8"))
    y = relax.Var("y", relax.TensorType((8, 4), "int8"))
    f = relax.Var("f", relax.TensorType((4, 8), "float32"))
    with bb.function("main", [x, y, f]):
        with bb.dataflow():
            a = bb.emit(O.matmul(x, y, out_dtype="int32"))                       # two activations
            c = bb.emit(O.matmul(f, relax.const(np.ones((8, 4), "float32"))))    # float
            d = bb.emit(O.matmul(x, relax.const(np.ones((8, 4), "int8")), out_dtype="int32"))
            out = bb.emit_output(relax.Tuple([a, c, d]))
        bb.emit_func_output(out)
    _, n = x86_packed.pack_int8_matmuls(bb.get())
    assert sum(n.values()) == 1


def _f32_module(shape, w, gelu):
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(O.matmul(x, relax.const(w)))
            if gelu:
                y = bb.emit(O.nn.gelu(O.add(y, relax.const(np.linspace(-1, 1, w.shape[1]).astype("float32")))))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    return bb.get()


@needs_avx2
@pytest.mark.parametrize("shape,n,gelu", [
    ((13, 32), 16, True),          # rows padded to whole 6-row tiles, a fused bias + GELU epilogue
    ((2, 7, 33), 10, False),       # odd K, N not a multiple of 16, a batch axis
    ((1, 197, 64), 48, True),      # DeiT's 197 tokens
])
def test_packed_f32_matmul_same_as_unpacked(shape, n, gelu, monkeypatch):
    """float32 takes the packed layout too: the summation order over k is the one the
    unpacked schedule uses, so the results are identical, not only close."""
    rng = np.random.default_rng(sum(shape) + n)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((shape[-1], n)).astype(np.float32)
    mod = _f32_module(shape, w, gelu)
    art = qc.build(mod, "llvm")
    assert art.info["f32_matmuls_packed"] == 1
    assert "vfmadd" in _asm(art)  # scheduled and vectorized, not an unscheduled fallback
    got = art.run(x)[0]
    monkeypatch.setattr(x86_packed, "pack_f32_matmuls", lambda m: (m, 0))
    plain = qc.build(mod, "llvm")
    assert plain.info["f32_matmuls_packed"] == 0
    np.testing.assert_array_equal(got, plain.run(x)[0])
    if not gelu:
        np.testing.assert_allclose(got, x @ w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lead,m,k,n,adt", [
    ((1, 4), 50, 32, 50, "int8"),     # ViT Q·Kᵀ: 50 rows padded to 54, 50 columns to 64
    ((1, 4), 50, 50, 32, "uint8"),    # ViT P·V: Shiftmax probabilities (uint8), odd K
    ((2, 3), 7, 5, 17, "uint8"),      # every extent ragged
    ((1, 2), 20, 24, 40, "int8"),     # two heads: fewer than MIN_PARALLEL_HEADS, tiles parallel instead
])
def test_runtime_int8_matmul_bit_exact(lead, m, k, n, adt):
    """Matmuls of two run-time int8 tensors (attention) packed inside the kernel: the build
    calls vpmaddwd and is bit-exact against NumPy over the full value ranges, extremes
    included (255 x -128 pairs are what a uint8 probability times an int8 value can give).
    With enough heads the kernel is one parallel loop over heads, each head's operands
    widened and packed inside it; otherwise the tiles are the parallel loop."""
    rng = np.random.default_rng(m * k + n)
    lo, hi = (0, 256) if adt == "uint8" else (-128, 128)
    a = rng.integers(lo, hi, (*lead, m, k)).astype(adt)
    b = rng.integers(-128, 128, (*lead, k, n)).astype(np.int8)
    a.flat[:4], b.flat[:4] = hi - 1, -128
    bb = relax.BlockBuilder()
    xa, xb = relax.Var("a", relax.TensorType(a.shape, adt)), relax.Var("b", relax.TensorType(b.shape, "int8"))
    with bb.function("main", [xa, xb]):
        with bb.dataflow():
            out = bb.emit_output(bb.emit(O.matmul(xa, xb, out_dtype="int32")))
        bb.emit_func_output(out)
    packed, _ = x86_packed.pack_runtime_int8_matmuls(bb.get())
    funcs = {gv.name_hint: f for gv, f in legalize_stage(packed, llvm.make_target()).functions.items()
             if isinstance(f, tirx.PrimFunc)}
    func = funcs.pop("qmatmul_pmaddwd_rt")
    out_cols = int(func.params[-1].ty.shape[-1])
    if n % x86_packed.LANES:  # ragged: the kernel writes whole panels and a crop cuts them back
        assert out_cols % x86_packed.LANES == 0 and list(funcs) == ["crop_columns"]
    else:
        assert out_cols == n and not funcs
    top = top_loops(cpu_schedule.schedule_func(func))
    parallel = [s for s in top if isinstance(s, tirx.For) and s.kind == tirx.ForKind.PARALLEL]
    if np.prod(lead) >= x86_packed.MIN_PARALLEL_HEADS:
        assert len(top) == 1 and len(parallel) == 1 and int(parallel[0].extent) == np.prod(lead)
    else:
        assert len(parallel) == 3  # widening, packing, tiles
    art = llvm.build(bb.get())
    assert art.info["int8_runtime_matmuls_pmaddwd"] == 1
    assert _has(_asm(art), "vpmaddwd")
    np.testing.assert_array_equal(art.run_raw(a, b)[0], a.astype(np.int64) @ b.astype(np.int64))


@needs_avx2
@pytest.mark.parametrize("keys", [50, 197, 64])
def test_ragged_attention_scores_padded_through_requantization_into_shiftmax(keys):
    """``Q·Kᵀ`` over a number of keys that is not a whole number of 16-column panels: the
    kernel writes the padded panels (no per-lane guard), the requantization after it runs
    on the padded columns, and Shiftmax reads only the real ones (no separate crop kernel).
    The artifact is bit-exact against the NumPy reference."""
    from qcompile.passes.int_only import intops

    rng = np.random.default_rng(keys)
    lead, m, k = (1, 4), 20, 32
    q = rng.integers(-128, 128, (*lead, m, k)).astype(np.int8)
    kt = rng.integers(-128, 128, (*lead, k, keys)).astype(np.int8)
    d, p = intops.Dyadic(np.int64(1380356684), 35), intops.ExpParams(K=8, n=15, B=8)
    bb = relax.BlockBuilder()
    xa, xb = relax.Var("q", relax.TensorType(q.shape, "int8")), relax.Var("kt", relax.TensorType(kt.shape, "int8"))
    with bb.function("main", [xa, xb]):
        with bb.dataflow():
            acc = bb.emit(O.matmul(xa, xb, out_dtype="int32"))
            wide = bb.emit(O.multiply(bb.emit(O.astype(acc, "int64")), relax.const(d.mult, "int64")))
            r = bb.emit(O.right_shift(bb.emit(O.add(wide, relax.const(1 << (d.shift - 1), "int64"))),
                                      relax.const(d.shift, "int64")))
            s = bb.emit(O.astype(bb.emit(O.clip(r, -(2 ** 20), 2 ** 20)), "int32"))
            out = bb.emit_output(bb.emit(bb.call_te(lambda x: intops.shiftmax_te(x, None, p), s,
                                                    primfunc_name_hint="shiftmax",
                                                    primfunc_attrs=intops.kernel_attrs("shiftmax", K=8, n=15, B=8))))
        bb.emit_func_output(out)
    mod = bb.get()
    packed, count = x86_packed.pack_runtime_int8_matmuls(mod)
    assert count == 1
    funcs = {gv.name_hint: f for gv, f in packed.functions.items() if isinstance(f, tirx.PrimFunc)}
    assert "crop_columns" not in funcs
    sm, = [f for name, f in funcs.items() if name.startswith("shiftmax")]
    cols = int(sm.params[0].ty.shape[-1])
    assert cols == -(-keys // x86_packed.LANES) * x86_packed.LANES  # Shiftmax reads the padded scores
    art = llvm.build(mod)
    scores = intops.requant_ref(q.astype(np.int64) @ kt.astype(np.int64), d, -(2 ** 20), 2 ** 20, np.int32)
    np.testing.assert_array_equal(art.run_raw(q, kt)[0], intops.shiftmax_ref(scores, None, p))
