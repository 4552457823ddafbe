"""The LLaMA-family decoder with an explicit KV cache: agrees with transformers, exports to
ONNX in the HF layout, compiles, and the perplexity/generation harness gives the same
answer through the compiled artifact as through torch."""
import numpy as np
import pytest
import torch

import qcompile as qc
from qcompile import assets, lm
from qcompile.models.llama import LlamaConfig, LlamaDecoder, export_onnx, step_inputs

transformers = pytest.importorskip("transformers", reason="transformers missing: run `qcompile assets fetch minilm`")

TINY = dict(vocab_size=97, hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=6,
            num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5, tie_word_embeddings=True, rope_theta=1000.0)


@pytest.fixture(scope="module")
def tiny_pair():
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY)).eval()
    return hf, LlamaDecoder.from_hf(hf)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory, tiny_pair):
    _, m = tiny_pair
    d = tmp_path_factory.mktemp("llm")
    return {t: export_onnx(m, d / f"tiny_t{t}.onnx", chunk=t) for t in (4, 1)}


def test_config_from_hf(tiny_pair):
    hf, m = tiny_pair
    assert m.c == LlamaConfig(vocab=97, hidden=48, intermediate=80, layers=2, heads=6, kv_heads=2, head_dim=8,
                              rope_theta=1000.0, rms_eps=1e-5, tied=True)


def test_agrees_with_transformers_full_and_chunked(tiny_pair):
    hf, m = tiny_pair
    ids = torch.randint(0, 97, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(ids).logits
        full = m(ids, *step_inputs(ids, 0), *m.empty_cache(2))
        a = m(ids[:, :4], *step_inputs(ids[:, :4], 0), *m.empty_cache(2))
        b = m(ids[:, 4:], *step_inputs(ids[:, 4:], 4), *a[1:])
    torch.testing.assert_close(full[0], ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([a[0], b[0]], 1), ref, atol=1e-5, rtol=1e-5)
    assert b[1].shape == (2, 2, 11, 8)


def test_onnx_layout_and_compiled_step(tiny_onnx, tiny_pair):
    model = qc.load(tiny_onnx[4])
    names = [s.name for s in model.inputs]
    assert names[:5] == ["input_ids", "attention_mask", "position_ids", "past_key_values.0.key",
                         "past_key_values.0.value"]
    assert model.outputs[:3] == ["logits", "present.0.key", "present.0.value"]
    mod = qc.PassManager(qc.pipeline("none")).run(model.mod)
    from qcompile.ir import op_histogram

    hist = op_histogram(mod)
    assert hist["composite:qcompile.attention"] == 2 and hist["composite:qcompile.rope"] == 4
    assert hist["nn.rms_norm"] == 5
    art = qc.build(mod, "llvm")
    ort = lm.ort_step(tiny_onnx[4])
    rng = np.random.default_rng(0)
    for past_len in (0, 8):  # the first step has an empty cache
        ids = rng.integers(0, 97, (1, 4))
        past = [rng.standard_normal((1, 2, past_len, 8)).astype(np.float32) for _ in range(4)]
        mask, pos = lm.step_feed(ids, past_len)
        got, got_past = lm.artifact_step(art)(ids, mask, pos, past)
        ref, ref_past = ort(ids, mask, pos, past)
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
        for g, r in zip(got_past, ref_past):
            assert g.shape == (1, 2, past_len + 4, 8)
            np.testing.assert_allclose(g, r, atol=1e-5, rtol=1e-5)


def test_perplexity_and_generation_through_artifact(tiny_onnx, tiny_pair):
    hf, m = tiny_pair
    arts = {t: qc.build(qc.PassManager(qc.pipeline("none")).run(qc.load(p).mod), "llvm") for t, p in tiny_onnx.items()}
    tokens = np.random.default_rng(2).integers(2, 97, 200)
    proto = lm.Protocol(window=16, chunk=4, tokens=50, bos=1)  # 3 whole windows
    cache = lm.empty_cache(2, 2, 8)
    got = lm.perplexity(lm.artifact_step(arts[4]), tokens, cache, proto, progress=False)
    ref = lm.perplexity(lm.torch_step(m), tokens, cache, proto, progress=False)
    assert got["tokens"] == ref["tokens"] == 48
    assert abs(got["perplexity"] / ref["perplexity"] - 1) < 1e-5
    # the protocol's NLL is the plain full-sequence NLL of each window (HF, no cache)
    nll = []
    for w in range(3):
        seq = torch.tensor(np.concatenate([[1], tokens[w * 16: w * 16 + 15]]))[None]
        with torch.no_grad():
            logp = torch.log_softmax(hf(seq).logits.double(), -1)[0]
        nll += [-logp[i, tokens[w * 16 + i]].item() for i in range(16)]
    assert abs(np.mean(nll) - ref["nll"]) < 1e-5
    # greedy generation: prefill chunks + decode steps == HF greedy generate
    prompt = [int(t) for t in tokens[:10]]
    out = lm.generate(lm.artifact_step(arts[4]), lm.artifact_step(arts[1]), 4, prompt, 6, cache)
    with torch.no_grad():
        want = hf.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False)[0, 10:].tolist()
    assert out == want


@pytest.mark.slow
@pytest.mark.asset
def test_smollm2_agrees_with_transformers():
    assets.require("smollm2")
    from qcompile.models import smollm2

    hf, tok = smollm2.load_hf()
    m = LlamaDecoder.from_hf(hf)
    assert (m.c.layers, m.c.heads, m.c.kv_heads, m.c.head_dim) == (30, 9, 3, 64)
    ids = torch.tensor([tok("It is a truth universally acknowledged, that a single man in possession").input_ids])
    with torch.no_grad():
        ref = hf(ids).logits
        a = m(ids[:, :7], *step_inputs(ids[:, :7], 0), *m.empty_cache())
        b = m(ids[:, 7:], *step_inputs(ids[:, 7:], 7), *a[1:])
    got = torch.cat([a[0], b[0]], 1)
    assert (got - ref).abs().max() < 1e-3 * (ref.max() - ref.min())
    assert torch.equal(got.argmax(-1), ref.argmax(-1))
