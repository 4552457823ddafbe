"""``rotate``: Hadamard constructions, the FWHT kernel, the residual-stream analysis, and
equivalence of rotated float artifacts (tiny LLaMA, the bundled ViT), plus refusals."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from tvm import relax

import qcompile as qc
import qcompile.pipelines  # noqa: F401 - qc.pipelines.PASSES below
from qcompile import lm
from qcompile.passes.rotate import hadamard
from qcompile.analysis import residual
from qcompile.errors import QCompileError
from qcompile.ir import script
from qcompile.models.llama import LlamaConfig, LlamaDecoder, export_onnx
from qcompile.passes.qdq_sim import qdq_act_ref, qdq_weight

from test_golden import GOLDEN, check_golden

# ----------------------------------------------------------------------------- Hadamard


@pytest.mark.parametrize("n", [1, 2, 4, 12, 20, 28, 36, 44, 48, 60, 96, 128, 576, 768, 1536])
def test_hadamard_orders_are_hadamard(n):
    h = hadamard.hadamard(n)
    assert h is not None and set(np.unique(h)) <= {-1, 1}
    np.testing.assert_array_equal(h @ h.T, n * np.eye(n, dtype=np.int64))


def test_paley_constructions_and_refusals():
    for q in (3, 7, 11, 19, 23, 31, 43):
        h = hadamard.paley1(q)
        np.testing.assert_array_equal(h @ h.T, (q + 1) * np.eye(q + 1, dtype=np.int64))
    for q in (5, 13, 17, 29):
        h = hadamard.paley2(q)
        np.testing.assert_array_equal(h @ h.T, 2 * (q + 1) * np.eye(2 * (q + 1), dtype=np.int64))
    with pytest.raises(ValueError):
        hadamard.paley1(5)
    with pytest.raises(ValueError):
        hadamard.paley2(7)
    assert hadamard.recipe(576) is not None and hadamard.recipe(100) is None  # 100 = 4 * 25: none known here


@pytest.mark.parametrize("n", [576, 100, 1536])
def test_random_rotation_is_orthogonal_block_diagonal_when_needed(n):
    q, desc = hadamard.random_orthogonal_hadamard(n, seed=3)
    np.testing.assert_allclose(q @ q.T, np.eye(n), atol=1e-12)
    if n == 100:
        assert "block-diagonal" in desc and hadamard.block_size(100) == 20
        assert np.all(q[:20, 20:] == 0)
    else:
        assert "block" not in desc
    q2, _ = hadamard.random_orthogonal_hadamard(n, seed=3)
    np.testing.assert_array_equal(q, q2)  # seeded


def _fwht_module(shape, n):
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, "float32"))
    k, _ = hadamard.split(n)
    with bb.function("main", [x]):
        with bb.dataflow():
            args = [x] + ([relax.const(hadamard.hadamard(k).astype("float32"))] if k > 1 else [])
            y = bb.emit_output(bb.emit_te(hadamard.fwht_te, *args, primfunc_name_hint="fwht"))
        bb.emit_func_output(y)
    return bb.get()


@pytest.mark.parametrize("n", [64, 80, 96, 1536])
def test_fwht_kernel_matches_dense_matmul(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((3, 5, n)).astype(np.float32)
    dense = x.astype(np.float64) @ hadamard.online_matrix(n)
    np.testing.assert_allclose(hadamard.fwht_ref(x), dense, atol=1e-12)
    art = qc.build(_fwht_module((3, 5, n), n), "llvm")
    got = art.run(x)[0]
    np.testing.assert_allclose(got, dense, atol=2e-5 * math.sqrt(math.log2(n)) * np.abs(x).max())
    m = hadamard.online_matrix(n)
    np.testing.assert_allclose(m @ m.T, np.eye(n), atol=1e-12)


# ----------------------------------------------------------------------------- models


def tiny_llama(tmp_path, layers=2, intermediate=80, chunk=4):
    torch.manual_seed(0)
    c = LlamaConfig(vocab=97, hidden=48, intermediate=intermediate, layers=layers, heads=6, kv_heads=2, head_dim=8,
                    rope_theta=1000.0, rms_eps=1e-5, tied=True)
    m = LlamaDecoder(c).eval()
    with torch.no_grad():  # non-trivial norm scales, so folding them is tested
        for p in m.parameters():
            if p.dim() == 1:
                p.copy_(1 + 0.3 * torch.randn_like(p))
    return m, export_onnx(m, tmp_path / f"llama_t{chunk}.onnx", chunk=chunk)


def test_analysis_finds_llama_regions(tmp_path):
    _, path = tiny_llama(tmp_path)
    mod = qc.PassManager(qc.pipeline("none")).run(qc.load(path).mod)
    g = residual.Graph(mod)
    (r,) = residual.regions(g)
    kinds = sorted(w.kind for w in r.writers)
    assert r.d == 48 and not r.centered
    assert kinds == ["embedding"] + ["matmul"] * 4  # embedding, 2 x (o_proj, down_proj)
    assert sorted(len(n.readers) for n in r.norms) == [1, 2, 2, 3, 3]  # final head, 2 x (gate/up), 2 x (q/k/v)
    assert len(residual.down_projections(g, r)) == 2
    paths, notes = residual.value_paths(g)
    assert len(paths) == 2 and notes == []
    p = paths[0]
    np.testing.assert_array_equal(p.v_columns, np.arange(16).reshape(2, 8))  # 2 KV heads of 8
    np.testing.assert_array_equal(p.o_rows, np.arange(48).reshape(6, 8))    # 6 query heads
    assert p.cache_is_output


def test_rotated_llama_is_equivalent(tmp_path):
    m, path = tiny_llama(tmp_path)
    model = qc.load(path)
    pm = qc.PassManager(qc.pipeline("rotate"))
    rot = pm.run(model.mod)
    notes = pm.records[-1].notes
    assert notes["online_hadamard"]["down_projections"] == 2 and notes["online_hadamard"]["sizes"] == {"80": "20 x 4"}
    assert notes["value_rotation"]["applied"] == 2 and notes["value_rotation"]["value_cache_rotated"]
    hist = qc.ir.op_histogram(rot)
    assert hist["nn.rms_norm"] == 5 and hist["call_tir"] == 2
    a = qc.build(qc.PassManager(qc.pipeline("none")).run(model.mod), "llvm")
    b = qc.build(rot, "llvm")
    tokens = np.random.default_rng(2).integers(2, 97, 200)
    proto = lm.Protocol(window=16, chunk=4, tokens=48, bos=1)
    cache = lm.empty_cache(2, 2, 8)
    pa = lm.perplexity(lm.artifact_step(a), tokens, cache, proto, progress=False)
    pb = lm.perplexity(lm.artifact_step(b), tokens, cache, proto, progress=False)
    assert abs(pa["perplexity"] / pb["perplexity"] - 1) < 1e-5
    ids = tokens[None, :4]
    la, ca = lm.artifact_step(a)(ids, *lm.step_feed(ids, 0), cache)
    lb, cb = lm.artifact_step(b)(ids, *lm.step_feed(ids, 0), cache)
    assert np.abs(la - lb).max() <= 1e-5 * np.ptp(la)
    np.testing.assert_allclose(ca[0], cb[0], atol=1e-5)           # keys: untouched (RoPE)
    assert np.abs(ca[1] - cb[1]).max() > 1e-2                      # values: stored rotated
    np.testing.assert_allclose(np.linalg.norm(ca[1], axis=-1), np.linalg.norm(cb[1], axis=-1), rtol=1e-4)


def test_rotated_vit_is_equivalent_and_centred():
    from qcompile.models import ASSETS, DEFAULT_MODEL

    d = np.load(ASSETS / "fmnist_test256.npz")
    model = qc.load(DEFAULT_MODEL)
    pm = qc.PassManager(qc.pipeline("rotate"))
    rot = pm.run(model.mod)
    (region,) = pm.records[-1].notes["regions"]
    assert region["centered"] and region["norm_kind"] == ["layer_norm"]
    assert region["writers"] == {"const": 11, "conv2d": 1, "matmul": 8}  # pos, cls, 9 biases; patches; o, fc2
    hist = qc.ir.op_histogram(rot)
    assert "nn.layer_norm" not in hist and hist["nn.rms_norm"] == 9
    za = qc.build(qc.PassManager(qc.pipeline("none")).run(model.mod), "llvm").run(d["pixels"])[0]
    zb = qc.build(rot, "llvm").run(d["pixels"])[0]
    cos = (za * zb).sum(-1) / np.linalg.norm(za, axis=-1) / np.linalg.norm(zb, axis=-1)
    assert cos.min() >= 0.99999
    np.testing.assert_array_equal(za.argmax(-1), zb.argmax(-1))


# ----------------------------------------------------------------------------- refusals


def test_post_norm_encoder_is_refused(tiny_encoder_onnx):
    with pytest.raises(QCompileError, match=r"binding '.*' \(nn.layer_norm\) normalizes the residual stream "
                                            r"in place \(its output is added to another branch at '.*': "
                                            r"a post-norm block"):
        qc.PassManager(qc.pipeline("rotate")).run(qc.load(tiny_encoder_onnx).mod)


class _Tanh(nn.Module):
    """Pre-norm block whose residual stream goes through tanh: not rotation-invariant."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 16)
        self.norm = nn.LayerNorm(16)
        self.lin = nn.Linear(16, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, ids):
        x = self.emb(ids)
        x = torch.tanh(x + self.lin(self.norm(x)))
        return self.head(self.norm(x))


def test_non_invariant_op_in_the_stream_is_named():
    torch.manual_seed(0)
    model = qc.load(_Tanh().eval(), example_inputs=(torch.zeros(1, 4, dtype=torch.int64),))
    with pytest.raises(QCompileError, match=r"rotate: binding '\w+' \(tanh\) .*not rotation-invariant"):
        qc.PassManager(qc.pipeline("rotate")).run(model.mod)


class _DepthwiseStem(nn.Module):
    """A conv stem whose last layer, a depthwise conv, writes the residual stream."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 16, 4, stride=4)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.norm, self.lin = nn.LayerNorm(16), nn.Linear(16, 16)
        self.out_norm, self.head = nn.LayerNorm(16), nn.Linear(16, 3)

    def forward(self, x):
        t = self.dw(self.patch(x)).flatten(2).transpose(1, 2)
        t = t + self.lin(self.norm(t))
        return self.head(self.out_norm(t).mean(1))


def test_depthwise_conv_writing_the_stream_is_refused():
    """A grouped convolution's output channel reads only its group, so rotating its output
    channels is no weight edit (before, its weight was rotated like a dense conv's: wrong
    numbers, no error)."""
    torch.manual_seed(0)
    model = qc.load(_DepthwiseStem().eval(), example_inputs=(torch.randn(2, 3, 16, 16),))
    with pytest.raises(QCompileError, match=r"\(nn.conv2d\) is a grouped \(or depthwise\) convolution"):
        qc.PassManager(qc.pipeline("rotate")).run(model.mod)


class _FeatureStemThenGroupedPositions(nn.Module):
    """wav2vec2's shape: a feature extractor whose LayerNorm normalizes a GELU's output (a
    region of one norm, written by a nonlinearity), then the encoder's stream, read by a
    grouped conv (the positional embedding) and normalized by every block."""

    def __init__(self):
        super().__init__()
        self.feat, self.feat_norm, self.proj = nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 16)
        self.pos = nn.Conv1d(16, 16, 3, padding=1, groups=4)
        self.norms = nn.ModuleList(nn.LayerNorm(16) for _ in range(3))
        self.lins = nn.ModuleList(nn.Linear(16, 16) for _ in range(3))
        self.out_norm, self.head = nn.LayerNorm(16), nn.Linear(16, 3)

    def forward(self, x):
        t = self.proj(self.feat_norm(torch.nn.functional.gelu(self.feat(x))))
        t = t + self.pos(t.transpose(1, 2)).transpose(1, 2)
        for n, lin in zip(self.norms, self.lins):
            t = t + lin(n(t))
        return self.head(self.out_norm(t))


def test_the_refusal_names_the_main_streams_cause():
    """When most regions fail, the refusal names the failure most norms met (the encoder's
    stream, read by a grouped conv), not the first region's (before: wav2vec2 and HuBERT were
    refused naming the feature extractor's first conv or GELU)."""
    torch.manual_seed(0)
    model = qc.load(_FeatureStemThenGroupedPositions().eval(), example_inputs=(torch.randn(2, 6, 8),))
    with pytest.raises(QCompileError, match=r"\(nn.conv1d\) reads the residual stream and is not rotation-invariant"):
        qc.PassManager(qc.pipeline("rotate")).run(model.mod)


class _TwoTokenHead(nn.Module):
    """Pre-norm blocks, then AST's head: the mean of the first two tokens of the final
    norm's output, normalized again (a region of its own that is not rotation-invariant:
    its input is a norm's output) and classified."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Linear(8, 16)
        self.norms = nn.ModuleList(nn.LayerNorm(16) for _ in range(2))
        self.lins = nn.ModuleList(nn.Linear(16, 16) for _ in range(2))
        self.out_norm, self.head_norm, self.head = nn.LayerNorm(16), nn.LayerNorm(16), nn.Linear(16, 3)
        for n in [*self.norms, self.out_norm, self.head_norm]:
            nn.init.normal_(n.weight, 1, 0.2), nn.init.normal_(n.bias, 0, 0.2)

    def forward(self, x):
        t = self.emb(x)
        for n, lin in zip(self.norms, self.lins):
            t = t + lin(n(t))
        y = self.out_norm(t)
        return self.head(self.head_norm((y[:, 0] + y[:, 1]) / 2))


def test_a_small_region_that_cannot_rotate_is_left_unrotated():
    """A region that is not rotation-invariant (AST's head) stays unrotated, and says so,
    when the rotated regions hold most of the norms (before: the whole model was refused,
    "(divide) writes the residual stream ..."); the model is unchanged in float."""
    torch.manual_seed(0)
    m = _TwoTokenHead().eval()
    x = torch.randn(2, 6, 8)
    model = qc.load(m, example_inputs=(x,))
    pm = qc.PassManager(qc.pipeline("rotate"))
    got = qc.build(pm.run(model.mod), "llvm").run(x.numpy())[0]
    np.testing.assert_allclose(got, m(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    notes = pm.records[-1].notes
    assert sum(r["norms_folded"] for r in notes["regions"]) == 3
    (left,) = notes["streams_left_unrotated"]
    assert "rotate: binding" in left
    from qcompile.report import technique_lines

    (_, lines), = technique_lines(notes)  # in the CLI summary and report.md
    assert any(line.startswith("left unrotated") and left in line for line in lines)


def test_stream_that_is_the_model_input_is_refused():
    from qcompile.models.tiny import TinyDecoder, decoder_inputs

    torch.manual_seed(0)
    model = qc.load(TinyDecoder().eval(), example_inputs=decoder_inputs())
    with pytest.raises(QCompileError, match="residual stream is the model input"):
        qc.PassManager(qc.pipeline("rotate")).run(model.mod)


# ----------------------------------------------------------------------------- golden, qdq-sim


def test_rotated_block_golden(tmp_path, update_golden):
    _, path = tiny_llama(tmp_path, layers=1, intermediate=24, chunk=2)
    mod = qc.PassManager(qc.pipeline("rotate")).run(qc.load(path).mod)
    check_golden(script(mod), GOLDEN / "rotate_llama_block.py", update_golden)


def test_weight_clipping_search():
    """``w_clip="mse"``: per channel, no worse than the full range in the searched norm, on the
    same number of levels; a channel with one outlier gets a range well inside its maximum
    (the outlier clipped), a channel already on its maximum's grid keeps it (zero error)."""
    from qcompile.weights import CLIP_NORM, weight_scales

    rng = np.random.default_rng(1)
    w = rng.standard_normal((256, 3))
    w[0, 1] = 12.0                                   # one outlier in channel 1
    for bits in (3, 4):
        qmax = 2 ** (bits - 1) - 1
        w[:, 2] = np.resize(np.arange(-qmax, qmax + 1), 256) * 0.1   # on the grid of its maximum
        full, clipped = qdq_weight(w, bits), qdq_weight(w, bits, "mse")
        err = lambda q: (np.abs(q - w) ** CLIP_NORM).sum(0)  # noqa: E731
        assert np.all(err(clipped) <= err(full) + 1e-12)
        ratio = weight_scales(w, bits, "mse")[0] / weight_scales(w, bits)[0]
        assert ratio[1] < 0.9 and 0.2 <= ratio.min() and ratio[2] == 1.0  # the outlier clipped
        assert all(len(np.unique(clipped[:, j])) <= 2 ** bits - 1 for j in range(3))
    with pytest.raises(QCompileError, match="w_clip='max'"):
        weight_scales(w, 4, "max")


def test_qdq_sim_weights_and_activations():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 5))
    for bits in (4, 8):
        q = qdq_weight(w, bits)
        s = np.abs(w).max(0) / (2 ** (bits - 1) - 1)
        assert np.all(np.abs(q - w) <= s / 2 + 1e-12)
        assert all(len(np.unique(q[:, j])) <= 2 ** bits - 1 for j in range(5))
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((4, 64), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.matmul(x, relax.const(np.eye(64, dtype=np.float32))))
            gv = bb.emit_output(relax.op.add(y, relax.const(np.zeros(64, np.float32))))
        bb.emit_func_output(gv)
    mod = bb.get()
    with pytest.raises(QCompileError, match="bit width 1"):
        qc.PassManager([qc.pipelines.PASSES["qdq-sim"](w_bits=1)]).run(mod)
    # the head (a matmul whose result + bias is the output) stays float; route through a
    # second linear to test the activation quantizer
    xv = rng.standard_normal((4, 64)).astype(np.float32)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((4, 64), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.matmul(x, relax.const(np.eye(64, dtype=np.float32))))
            gv = bb.emit_output(relax.op.multiply(y, relax.const(1.0, "float32")))
        bb.emit_func_output(gv)
    pm = qc.PassManager([qc.pipelines.PASSES["qdq-sim"](w_bits=8, a_bits=4)])
    out = qc.build(pm.run(bb.get()), "llvm").run(xv)[0]
    assert pm.records[-1].notes["linears_quantized"] == 1
    np.testing.assert_allclose(out, qdq_act_ref(xv, 4), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dinov2", "beit"])
def test_rotate_layerscale_pooling_and_output_norm(name):
    """Optimum exports of DINOv2 and BEiT (the zoo's tiny seeded ones, image size fixed):
    LayerScale folds into the branch's last linear layer, the stream is sliced and
    mean-pooled over tokens (rotation-invariant), and a final norm whose output is a model
    output is un-rotated explicitly (before: DINOv2's last_hidden_state came out rotated,
    cosine -0.03, with no error)."""
    import onnxruntime as ort

    from qcompile.models import zoo

    path = str(zoo.ZOO[name].onnx)
    model = qc.load(path, input_shapes={"pixel_values": (None, 3, 32, 32)})
    pm = qc.PassManager(qc.pipeline("rotate"))
    art = qc.build(pm.run(model.mod), "llvm")
    feed = zoo.onnx_feed(path, seed=7)
    got = art.run(*[feed[s.name] for s in model.inputs])
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feed)
    for g, r in zip(got, ref):
        assert zoo._cosine(g, r) >= 0.99999
    regions = pm.records[-1].notes["regions"]
    if name == "dinov2":
        assert any(r["unrotated_norms"] for r in regions)


class _EmbeddingNormEncoder(nn.Module):
    """A pre-norm encoder whose embeddings pass a norm before the stream (CLIP's and Pixtral's
    pre-norm, BLOOM's embedding LayerNorm, RoBERTa-PreLN), a final norm and a head."""

    def __init__(self, norm):
        super().__init__()
        self.emb, self.pos = nn.Embedding(32, 16), nn.Parameter(torch.randn(6, 16))
        make = (lambda: nn.LayerNorm(16)) if norm == "layer" else (lambda: nn.RMSNorm(16))
        self.n0, self.n1, self.n2, self.nf = make(), make(), make(), make()
        for n in (self.n0, self.n1, self.n2, self.nf):
            nn.init.normal_(n.weight, 1.0, 0.2)
            if getattr(n, "bias", None) is not None:
                nn.init.normal_(n.bias, 0.0, 0.2)
        self.attn = nn.Linear(16, 16)
        self.up, self.down, self.head = nn.Linear(16, 32), nn.Linear(32, 16), nn.Linear(16, 5)

    def forward(self, ids):
        h = self.n0(self.emb(ids) + self.pos)
        h = h + self.attn(self.n1(h))
        h = h + self.down(torch.relu(self.up(self.n2(h))))
        return self.head(self.nf(h))


@pytest.mark.parametrize("norm", ["layer", "rms"])
def test_embedding_norm_opens_the_rotated_stream(norm):
    """A norm with no norm before it whose output opens the residual stream is a stream writer:
    its output is multiplied by the rotation once (one matmul), its scale and shift stay; the
    rotated float model equals the original. Before: refused ("normalizes the residual stream
    in place ... an embedding LayerNorm"). A post-norm block is still refused (below)."""
    torch.manual_seed(0)
    m = _EmbeddingNormEncoder(norm).eval()
    ids = torch.randint(0, 32, (2, 6))
    model = qc.load(m, example_inputs=(ids,))
    pm = qc.PassManager(qc.pipeline("rotate"))
    mod = pm.run(model.mod)
    (region,) = pm.records[-1].notes["regions"]
    assert region["writers"].get("norm") == 1 and region["norms_folded"] == 3
    got = qc.build(mod, "llvm").run(ids.numpy())[0]
    np.testing.assert_allclose(got, m(ids).detach().numpy(), rtol=1e-4, atol=1e-5)


class _BatchedExperts(nn.Module):
    """A pre-norm block whose MLP is a mixture of experts in transformers' ``batched_mm`` form
    (how ``torch.onnx`` exports Mixtral, Qwen2-MoE, PhiMoE, GLM-4-MoE...): each token's top-2
    experts' weights gathered from ``[E, out, in]`` stacks, ``W[e] @ x`` as a batched
    matrix-vector product, weighted by the router and summed."""

    def __init__(self, norm, transposed=False):
        super().__init__()
        make = (lambda: nn.LayerNorm(16)) if norm == "layer" else (lambda: nn.RMSNorm(16))
        self.emb, self.n1, self.n2, self.nf = nn.Embedding(32, 16), make(), make(), make()
        for n in (self.n1, self.n2, self.nf):
            nn.init.normal_(n.weight, 1.0, 0.2)
            if getattr(n, "bias", None) is not None:
                nn.init.normal_(n.bias, 0.0, 0.2)
        self.attn, self.router, self.head = nn.Linear(16, 16), nn.Linear(16, 4, bias=False), nn.Linear(16, 5)
        # [E, out, in] stacks read as W[e] @ x, or (GPT-OSS) [E, in, out] read as x @ W[e] plus a bias per expert
        self.transposed = transposed
        gu, dn = ((4, 16, 48), (4, 24, 16)) if transposed else ((4, 48, 16), (4, 16, 24))
        self.gate_up, self.down = nn.Parameter(0.2 * torch.randn(gu)), nn.Parameter(0.2 * torch.randn(dn))
        self.down_bias = nn.Parameter(0.2 * torch.randn(4, 16))

    def experts(self, x):  # x [tokens, 16]
        w, idx = self.router(x).softmax(-1).topk(2, dim=-1)
        w, ids = w / w.sum(-1, keepdim=True), idx.reshape(-1)
        xs = x.repeat_interleave(2, dim=0)
        if self.transposed:
            g, u = torch.bmm(xs.unsqueeze(1), self.gate_up[ids]).squeeze(1).chunk(2, dim=-1)
            h = (nn.functional.silu(g) * u).unsqueeze(1)
            y = torch.bmm(h, self.down[ids]).squeeze(1) + self.down_bias[ids]
        else:
            g, u = torch.bmm(self.gate_up[ids], xs.unsqueeze(-1)).squeeze(-1).chunk(2, dim=-1)
            y = torch.bmm(self.down[ids], (nn.functional.silu(g) * u).unsqueeze(-1)).squeeze(-1)
        return (y * w.reshape(-1, 1)).view(-1, 2, 16).sum(1)

    def forward(self, ids):
        b, t = ids.shape
        h = self.emb(ids)
        h = h + self.attn(self.n1(h))
        h = h + self.experts(self.n2(h).reshape(b * t, 16)).view(b, t, 16)
        return self.head(self.nf(h))


@pytest.mark.parametrize("norm,transposed", [("rms", False), ("layer", False), ("rms", True), ("layer", True)])
def test_batched_experts_take_the_rotation_in_their_stacks(tmp_path, norm, transposed):
    """Experts gathered per token (``W[e] @ x``) write the stream through their down stack and
    read it through their gate/up stack: the rotation goes into the ``[E, out, in]`` constants
    before the gather (before: "(matmul) writes the residual stream and is not a linear layer").
    The rotated float model equals the original, exported by torch.onnx (dynamo, a symbolic
    length). With LayerNorm, the shift cannot become a bias per gathered expert: that norm
    is un-rotated (one matmul), the rest rotated. GPT-OSS's form, ``x @ W[e]`` over ``[E, in,
    out]`` stacks plus a bias gathered per expert, takes it the same way."""
    import warnings

    torch.manual_seed(0)
    m = _BatchedExperts(norm, transposed).eval()
    ids = torch.randint(0, 32, (2, 6))
    path = tmp_path / "moe.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (ids,), str(path), input_names=["ids"], output_names=["y"], dynamo=True,
                          dynamic_shapes={"ids": {1: torch.export.Dim("seq", min=2, max=64)}}, verbose=False)
    pm = qc.PassManager(qc.pipeline("rotate"))
    mod = pm.run(qc.load(str(path)).mod)
    (region,) = pm.records[-1].notes["regions"]
    # the embedding (and the experts' gathered bias), the attention (its matmul and bias), the experts' down stack
    assert region["writers"] == {"embedding": 1 + transposed, "matmul": 1, "const": 2} and region["norms_folded"] == 3
    assert len(region["unrotated_norms"]) == (1 if norm == "layer" else 0)
    art = qc.build(mod, "llvm")
    for t in (3, 7):
        x = torch.randint(0, 32, (2, t))
        with torch.no_grad():
            np.testing.assert_allclose(art.run(x.numpy())[0], m(x).numpy(), rtol=1e-4, atol=1e-5)
