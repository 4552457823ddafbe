"""bfp / k-sort: the block formats bit-exact against NumPy on llvm and the C target, the
permutation algebra (signed permutations, RoPE commutation, GQA), K-sort leaving the float
model unchanged while permuting its cache, the bfp cache rewrite against the float model,
golden IR of a reordered attention layer, refusals, and the CLI."""
import sys
from pathlib import Path

import numpy as np
import pytest
import tvm
from hypothesis import given, settings, strategies as st
from tvm import relax
from tvm.relax.backend.cpu_generic import pipeline as cpu_pipeline

import qcompile as qc
from qcompile.passes.kvcache import bfp_format as bfp
from qcompile.passes.ksort import sort as ks
from qcompile.errors import QCompileError
from qcompile.ir import script
from qcompile.passes.kvcache.bfp import Bfp
from qcompile.passes.ksort import KSort

sys.path.insert(0, str(Path(__file__).parent))
from test_golden import GOLDEN, check_golden  # noqa: E402
from test_kv_prerope import _calib, _canon, _logits, tiny_decoder  # noqa: E402

# ----------------------------------------------------------------------------- the format


def test_format_worked_example():
    """MXINT8 (m 8, B 32): the block's largest magnitude 1.5 has exponent 0 (field 127), so
    values are multiples of 2^-6; 1.5 -> 96, 0.01 -> rint(0.64) = 1, -2^-7 -> rint(-0.5) = 0
    (half to even), 1.999 -> 127.9 saturates at 127."""
    bits, block = bfp.format_bits("mxint8", 0)
    assert (bits, block) == (8, 32)
    x = np.zeros((1, 32), np.float32)
    x[0, :4] = [1.5, 0.01, -2.0 ** -7, 1.0]
    e = bfp.exponents_ref(x, bits, block)
    assert e.tolist() == [[127]]
    q = bfp.significands_ref(x, e, bits, block)
    assert q[0, :4].tolist() == [96, 1, 0, 64]
    x[0, 4] = 1.999
    assert bfp.significands_ref(x, bfp.exponents_ref(x, bits, block), bits, block)[0, 4] == 127
    assert bfp.dequantize_ref(*bfp.quantize_ref(x, bits, block), bits, block)[0, 1] == 2.0 ** -6
    # BFP12 at block 16: 4-bit significands in [-7, 7], largest magnitude in [4, 8)
    y = np.linspace(-3, 3, 16, dtype=np.float32)[None]
    q4 = bfp.significands_ref(y, bfp.exponents_ref(y, 4, 16), 4, 16)
    assert q4.min() == -6 and q4.max() == 6
    assert bfp.bytes_per_vector(64, 4, 32) == 34 and bfp.bytes_per_vector(64, 8, 16) == 68


def _format_module(bits, block, shape):
    x = relax.Var("x", relax.TensorType(shape, "float32"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            t = bb.emit_te(bfp.quant_te(bits, block), x)
            p, e = bb.emit(relax.TupleGetItem(t, 0)), bb.emit(relax.TupleGetItem(t, 1))
            d = bb.emit_te(bfp.dequant_te(bits, block), p, e)
            q = bb.emit_te(bfp.qdq_te(bits, block), x)
            gv = bb.emit_output(relax.Tuple([p, e, d, q]))
        bb.emit_func_output(gv)
    return bb.get()


def _run(mod, target, x):
    if target == "llvm":
        return qc.build(mod, "llvm").run(x)
    t = tvm.target.Target({"kind": "c"})  # the C backend (int-accel would refuse the float kernels)
    ex = tvm.compile(mod, target=t, relax_pipeline=cpu_pipeline.get_default_pipeline(t))
    return [o.numpy() for o in relax.VirtualMachine(ex, tvm.cpu())["main"](tvm.runtime.tensor(x))]


_builds: dict = {}


@settings(max_examples=12, deadline=None)
@given(bits=st.sampled_from([3, 4, 8]), block=st.sampled_from([8, 16, 32, 64]), seed=st.integers(0, 2**31 - 1),
       target=st.sampled_from(["llvm", "c"]))
def test_kernels_bit_exact(bits, block, seed, target):
    """Heavy-tailed data over a wide range of channel scales, plus zeros, subnormals, ties and
    an infinity: packed significands, exponents and both decodes equal the NumPy reference."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_t(3, (2, 3, 5, 64)) * np.exp(rng.normal(0, 4, (1, 1, 1, 64)))).astype(np.float32)
    x[0, 0, 0] = 0
    x[0, 0, 1, :3] = 1e-40
    x[0, 1, 2, :8] = np.float32(2.0 ** -3) * np.arange(-4, 4) + np.float32(2.0 ** -4)  # ties at level halves
    x[1, 2, 3, 7] = np.inf
    key = (bits, block, target)
    if key not in _builds:
        _builds[key] = _format_module(bits, block, x.shape)
    p, e, d, q = _run(_builds[key], target, x)
    rp, re = bfp.quantize_ref(x, bits, block)
    np.testing.assert_array_equal(p, rp)
    np.testing.assert_array_equal(e, re)
    ref = bfp.dequantize_ref(rp, re, bits, block)
    np.testing.assert_array_equal(d, ref)
    np.testing.assert_array_equal(q, ref)
    assert p.shape[-1] == 64 * bits // 8 and e.shape[-1] == 64 // block  # really packed


@settings(max_examples=30, deadline=None)
@given(bits=st.sampled_from(bfp.BITS), block=st.sampled_from([8, 16, 32]), seed=st.integers(0, 2**31 - 1))
def test_error_bound(bits, block, seed):
    """Every value is within half a step of its block (``2^(E-m+1)``) or saturated at the top."""
    x = np.random.default_rng(seed).normal(0, 1, (7, 64)).astype(np.float32) * 10.0 ** np.random.default_rng(seed).integers(-20, 20)
    e = bfp.exponents_ref(x, bits, block).astype(np.int64)
    step = np.repeat(2.0 ** (e - 127 - bits + 2), block, -1)
    err = np.abs(bfp.qdq_ref(x, bits, block) - x)
    top = np.abs(x) >= (2 ** (bits - 1) - 1.5) * step
    assert np.all((err <= step / 2 + 1e-30) | (top & (err <= 2 * step)))


def test_format_refusals():
    with pytest.raises(QCompileError, match="unknown format"):
        bfp.format_bits("bfp10", 16)
    with pytest.raises(QCompileError, match="does not divide"):
        bfp.check_layout(48, 4, 32)
    with pytest.raises(QCompileError, match="not supported"):
        bfp.check_layout(64, 2, 16)


# ----------------------------------------------------------------------------- permutation algebra


@settings(max_examples=40, deadline=None)
@given(d=st.sampled_from([8, 16, 64]), seed=st.integers(0, 2**31 - 1))
def test_signed_perm_algebra(d, seed):
    rng = np.random.default_rng(seed)
    p = ks.SignedPerm(rng.permutation(d), rng.choice([-1.0, 1.0], d))
    r = ks.SignedPerm(rng.permutation(d), rng.choice([-1.0, 1.0], d))
    x, y = rng.normal(size=(3, d)), rng.normal(size=(3, d))
    np.testing.assert_allclose(p.inverse().apply(p.apply(x)), x)
    np.testing.assert_allclose(p.then(r).apply(x), r.apply(p.apply(x)))
    np.testing.assert_allclose(p.apply(x), x @ p.matrix().T)
    np.testing.assert_allclose(p.matrix() @ p.matrix().T, np.eye(d), atol=1e-12)
    np.testing.assert_allclose((p.apply(x) * p.apply(y)).sum(-1), (x * y).sum(-1))  # q'.k' = q.k
    assert p.then(p.inverse()).is_identity
    with pytest.raises(ValueError):
        ks.SignedPerm(np.zeros(d, int), np.ones(d))


@settings(max_examples=40, deadline=None)
@given(form=st.sampled_from(["half", "interleaved"]), seed=st.integers(0, 2**31 - 1))
def test_pair_moves_commute_with_rope(form, seed):
    """Pair permutations with in-pair swaps (``(a, b) -> (-b, a)``) commute with RoPE once the
    tables are permuted the same way; a free permutation does not."""
    rng = np.random.default_rng(seed)
    d, t = 16, 5
    p = ks.pair_perm(rng.permutation(d // 2), rng.random(d // 2) < 0.5, d, form)
    theta = rng.uniform(0.1, 3, d // 2)
    ang = np.arange(t)[:, None] * (np.concatenate([theta, theta]) if form == "half" else np.repeat(theta, 2))
    cos, sin = np.cos(ang), np.sin(ang)
    x = rng.normal(size=(t, d))
    tables = ks.SignedPerm(p.perm, np.ones(d))  # tables follow the channels, without signs
    lhs = ks.rope_ref(p.apply(x), tables.apply(cos), tables.apply(sin), form)
    np.testing.assert_allclose(lhs, p.apply(ks.rope_ref(x, cos, sin, form)), atol=1e-12)
    free = ks.SignedPerm(np.roll(np.arange(d), 1), np.ones(d))
    assert not np.allclose(ks.rope_ref(free.apply(x), free.apply(cos), free.apply(sin), form),
                           free.apply(ks.rope_ref(x, cos, sin, form)))


def test_sort_keys_keeps_pairs_and_orders_them():
    n = np.array([1, 9, 2, 8, 5, 0.5, 3, 7], float)  # half form: pairs (0,4) (1,5) (2,6) (3,7)
    p = ks.sort_keys(n, "half")
    pairs = ks.rotary_pairs(8, "half")
    moved = n[p.perm]
    pair_norms = np.hypot(moved[pairs[:, 0]], moved[pairs[:, 1]])
    assert np.all(np.diff(pair_norms) <= 0)                       # pairs by norm, descending
    assert np.all(moved[pairs[:, 0]] >= moved[pairs[:, 1]])        # larger member first
    assert {frozenset(p.perm[list(q)]) for q in pairs} == {frozenset(q) for q in pairs.tolist()}
    swapped = p.perm[pairs[:, 0]] >= 4  # a first-role channel taken from a second-role one
    assert swapped.any() and np.all(p.sign[pairs[:, 0]][swapped] == -1) and np.all(p.sign[pairs[:, 1]] == 1)
    # a block of D/2 under rotate-half holds one member of every pair, whatever the order
    assert sorted(p.perm[:4] % 4) == [0, 1, 2, 3]
    # partial rotary (RoPE on the first 4 of 8): pairs sorted among the rotary channels,
    # the pass-through channels freely among themselves; RoPE's tables follow the leading part
    part = ks.sort_keys(n, "half", rotary=4)
    assert sorted(part.perm[:4]) == [0, 1, 2, 3] and sorted(part.perm[4:]) == [4, 5, 6, 7]
    assert np.all(np.diff(n[part.perm[4:]]) <= 0) and np.all(part.sign[4:] == 1)
    assert part.leading(4).perm.tolist() == part.perm[:4].tolist()
    v = ks.sort_values(n)
    assert np.all(np.diff(n[v.perm]) <= 0) and np.all(v.sign == 1)
    np.testing.assert_allclose(ks.key_statistic(n, 2 * n, "key/query"), 0.5)


# ----------------------------------------------------------------------------- k-sort on decoders

DECODERS = {"gqa_half": dict(), "mha_interleaved": dict(kv_heads=6, rope="interleaved"),
            "gqa_qkv_bias": dict(qkv_bias=True), "gqa_partial_rotary": dict(rotary_dim=4),
            "gqa_qk_norm": dict(qkv_bias=True, qk_norm=True)}


#: each decoder spelling under one of the two statistics (both on every spelling was 12 builds
#: where 5 cover the same code: the statistic only chooses the permutation; keeps `make test` < 30 min)
KSORT_CASES = [("gqa_half", "weights", "key", "value"), ("gqa_qkv_bias", "weights", "key", "value"),
               ("gqa_partial_rotary", "weights", "key", "value*out"),
               ("gqa_qk_norm", "calibrated", "key/query", "value*out"),
               ("mha_interleaved", "calibrated", "key/query", "value")]
assert {v for v, *_ in KSORT_CASES} == set(DECODERS)


@pytest.mark.parametrize("variant, source, criterion, value_criterion", KSORT_CASES)
def test_ksort_float_model_unchanged(variant, source, criterion, value_criterion, tmp_path):
    """Reordering alone (KV heads, and the MLP down projections' input channels): logits equal
    the float model's up to round-off, and the cache it returns is the original cache with
    each head's channels signed-permuted. (``value*out`` orders the values otherwise than
    ``value``: the case is not the plain order again.)"""
    _, path = tiny_decoder(tmp_path, **DECODERS[variant])
    mod0 = _canon(path)
    ids = np.random.default_rng(2).integers(0, 97, (1, 16))
    ref, ref_cache = _logits(qc.build(mod0, "llvm"), mod0, ids, 4)
    ksort = KSort(source=source, criterion=criterion, mlp=True, value_criterion=value_criterion)
    pm = qc.PassManager([ksort], calibration=_calib())
    mod = pm.run(mod0)
    stats = _stats(mod0, source, criterion)  # the permutations K-sort chose, from the same statistics
    if value_criterion != "value":
        plain = KSort(source=source, criterion=criterion).permutations(mod0, stats)[1]
        ours = ksort.permutations(mod0, stats)[1]
        assert any(not np.array_equal(a.perm, b.perm) for (_, va), (_, vb) in zip(plain, ours) for a, b in zip(va, vb))
    out, cache = _logits(qc.build(mod, "llvm"), mod, ids, 4)
    assert np.abs(out - ref).max() < 1e-5 * np.abs(ref).max()
    assert (out.argmax(-1) == ref.argmax(-1)).all()
    notes = pm.records[-1].notes["k_sort"]
    assert notes["mlp_down_projections"] == 2  # SwiGLU: W_down rows with the gate and up columns
    assert notes["channels_moved"] > 0 and notes["rope"] == ("interleaved" if "interleaved" in variant else "half")
    _, perms = ksort.permutations(mod0, stats)
    for i, (kp, vp) in enumerate(perms):
        for c, heads in ((0, kp), (1, vp)):
            want = np.stack([p.apply(ref_cache[2 * i + c][0, h]) for h, p in enumerate(heads)])[None]
            np.testing.assert_allclose(cache[2 * i + c], want, rtol=1e-4, atol=1e-5)


def test_value_statistic_reads_w_o_rows():
    """``value*out``: a value channel's magnitude times the norm of the ``W_o`` row (input
    channel) it feeds, the largest over the query heads of its KV head; ``W_o`` not square."""
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    kv_heads, d, heads = 2, 4, 4
    w_o = rng.normal(size=(heads * d, 6)) * rng.uniform(0.1, 5, (heads * d, 1))
    o_rows = np.arange(heads * d).reshape(heads, d)[::-1].copy()  # head 3's rows first, say
    att = SimpleNamespace(o_rows=o_rows, o_group=np.array([0, 0, 1, 1]), kv_heads=kv_heads)
    nv = rng.uniform(0.5, 2, (kv_heads, d))
    want = np.array([[nv[g, c] * max(np.linalg.norm(w_o[o_rows[qh, c]]) for qh in range(heads) if qh // 2 == g)
                      for c in range(d)] for g in range(kv_heads)])
    np.testing.assert_allclose(ks.value_statistic(nv, att, w_o), want)


def _stats(mod, source, criterion):
    if source != "calibrated":
        return None
    return _calib().collect(mod, KSort(source=source, criterion=criterion).calibration_requests(mod))


def test_ksort_missing_calibration(tmp_path):
    _, path = tiny_decoder(tmp_path)
    with pytest.raises(QCompileError, match="needs calibration data"):
        qc.PassManager([KSort(source="calibrated")]).run(_canon(path))
    with pytest.raises(QCompileError, match="criterion"):
        KSort(criterion="norm")


# ----------------------------------------------------------------------------- the bfp cache


@pytest.mark.parametrize("opts", [dict(keys="bfp16", values="bfp16", block=8, sinks=16),
                                  dict(keys="bfp16", values="bfp16", block=8, sinks=16, pre_rope=True),
                                  dict(keys="bfp12", values="bfp12", block=8, recent=16, pre_rope=True,
                                       rotate="both")])
def test_bfp_cache_with_sinks_everywhere_is_float16(opts, tmp_path):
    """Every cached position a float16 sink (or in the float16 recent window, which also
    holds the keys and values rotated by a Hadamard matrix): the BFP cache path (encode,
    append, decode, RoPE re-run before it for pre-RoPE keys, the rotation undone) after
    K-sort equals the float model up to float16 storage."""
    _, path = tiny_decoder(tmp_path)
    mod0 = _canon(path)
    ids = np.random.default_rng(3).integers(0, 97, (1, 16))
    ref, _ = _logits(qc.build(mod0, "llvm"), mod0, ids, 4)
    mod = qc.PassManager([KSort(), Bfp(**opts)]).run(mod0)
    out, present = _logits(qc.build(mod, "llvm"), mod, ids, 4)
    assert np.abs(out - ref).max() < 2e-3 * np.abs(ref).max()
    assert present[0].dtype == np.uint8 and present[0].shape == (1, 2, 16, 8 if opts["keys"] == "bfp16" else 4)


def test_bfp_pre_rope_keys_on_nope_layers_and_no_rope(monkeypatch):
    """Keys stored before RoPE on a model this repository did not export: SmolLM3's NoPE
    layers (every fourth has no RoPE) store their keys as they are, as kv-prerope does,
    against onnxruntime from an empty past with symbolic dims; a model with no RoPE at all
    (OPT's learned positions) is refused, naming this pass."""
    from qcompile.models import zoo

    monkeypatch.setitem(zoo.OPTIONS, "bfp", {"bfp": {"block": 16, "pre_rope": True, "sinks": 1}})
    cell = zoo.check(zoo.FIXTURES / "smollm3.onnx", "bfp", "decoder")
    assert cell["status"] == "pass", cell
    opt = qc.PassManager(qc.pipeline("none")).run(qc.load(str(zoo.FIXTURES / "opt.onnx")).mod)
    with pytest.raises(QCompileError, match="^bfp: layer 0: no RoPE"):
        qc.PassManager([Bfp(pre_rope=True)]).run(opt)


@pytest.mark.parametrize("keys, values, block", [("bfp12", "none", 8), ("bfp12", "bfp12", 8), ("bfp16", "bfp12", 8)])
def test_bfp_cache_bytes_and_accuracy(keys, values, block, tmp_path):
    """The arrays the artifact returns are the packed layout the pass accounts for, and the
    logits stay near the float model's."""
    _, path = tiny_decoder(tmp_path)
    mod0 = _canon(path)
    ids = np.random.default_rng(4).integers(0, 97, (1, 16))
    ref, _ = _logits(qc.build(mod0, "llvm"), mod0, ids, 4)
    pm = qc.PassManager([KSort(), Bfp(keys=keys, values=values, block=block)])
    mod = pm.run(mod0)
    out, present = _logits(qc.build(mod, "llvm"), mod, ids, 4)
    lay = pm.records[-1].notes["kv_cache"]
    assert sum(p.nbytes for p in present) == 16 * (lay["bytes_per_token"]
                                                   + (values == "none") * lay["float16_bytes_per_token"] / 2)
    assert np.abs(out - ref).max() < 0.05 * np.abs(ref).max()
    assert (out.argmax(-1) == ref.argmax(-1)).mean() >= 0.8


def test_bfp_weights_and_activations(tmp_path):
    _, path = tiny_decoder(tmp_path)
    mod0 = _canon(path)
    ids = np.random.default_rng(5).integers(0, 97, (1, 16))
    ref, _ = _logits(qc.build(mod0, "llvm"), mod0, ids, 4)
    pm = qc.PassManager([Bfp(keys="none", values="none", weights="bfp16", activations="bfp16", block=16)])
    mod = pm.run(mod0)
    w = pm.records[-1].notes["weights"]
    assert w["linear_layers"] >= 14 and w["stored_weight_bytes"] < 0.3 * w["float32_weight_bytes"]
    out, _ = _logits(qc.build(mod, "llvm"), mod, ids, 4)
    assert np.abs(out - ref).max() < 0.02 * np.abs(ref).max()


@pytest.mark.parametrize("opts, match", [(dict(keys="bfp10"), "unknown format"), (dict(block=24), "block 24"),
                                         (dict(sinks=-1), "sinks")])
def test_bfp_bad_options(opts, match):
    with pytest.raises(QCompileError, match=match):
        Bfp(**opts)


def test_bfp_block_must_divide_head_dim(tmp_path):
    _, path = tiny_decoder(tmp_path)
    with pytest.raises(QCompileError, match="block size 16 does not divide the layer 0 head_dim length 8"):
        qc.PassManager([Bfp(block=16)]).run(_canon(path))


def test_golden_reordered_layer(tmp_path, update_golden):
    _, path = tiny_decoder(tmp_path, layers=1)
    mod = qc.PassManager([KSort(), Bfp(keys="bfp12", values="bfp16", block=8, sinks=1)]).run(_canon(path))
    check_golden(script(mod), GOLDEN / "bfp_llama_layer.py", update_golden)


def test_pipeline_and_cli(tmp_path):
    assert [p.name for p in qc.pipeline("bfp")] == ["canonicalize", "k-sort", "bfp"]
    _, path = tiny_decoder(tmp_path)
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[pass]]\nname = "k-sort"\n\n[[pass]]\nname = "bfp"\nblock = 8\n')
    from qcompile.cli import main

    out = tmp_path / "out"
    assert main([str(path), "--pipeline", str(recipe), "--target", "llvm", "-o", str(out), "-q"]) == 0
    report = (out / "report.md").read_text()
    assert "Channel reordering (k-sort)" in report and "KV cache (bfp)" in report and "BFP12" in report
    bad = tmp_path / "bad"  # the default block (32) does not fit head_dim 8: one line, nothing written
    assert main([str(path), "--pipeline", "bfp", "--target", "llvm", "-o", str(bad), "-q"]) != 0
    assert not bad.exists()


