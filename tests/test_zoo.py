"""The architecture zoo: every applicable pipeline on tiny seeded HF models exported by
Optimum (tests/zoo, made by `python -m qcompile.models.zoo export` in the `zoo` extra's
environment), with symbolic batch / sequence / past dims, decoders run as a prefill from an
empty cache plus a decode step, compared with onnxruntime (qcompile.models.zoo.check).

A cell either passes within its stated tolerance, is refused with the one-line reason the
model deserves (zoo.REFUSED), or is a known gap (zoo.GAPS: xfail, strict)."""
import pytest

from qcompile.models import zoo

#: the composed pipeline is run in the suite on these (one per RoPE spelling: rotate-half with
#: GQA, in-graph positions, partial rotary, heads on axis 2 at RoPE); benchmarks/zoo.py runs
#: it on every decoder. On these its cell checks kv-prerope (the same cache and RoPE analysis,
#: on the rotated weights, at kv-prerope's tolerance), so kv-prerope alone runs on the other
#: decoders and on Llama only (whose graph Mistral's cache cells stand on). (Keeps `make test`
#: < 30 min.)
COMPOSED = {"llama", "gemma", "gpt_neox", "gptj"}
#: held-out cells that a fix turned from a gap into a pass: run in the suite too
FIXED = {("qwen3_moe", "rotate"), ("roformer", "int-only"), ("segformer", "int-only"), ("levit", "int-only"),
         ("modernbert", "int-only"), ("esm", "int-only"), ("mpnet", "int-only"), ("mobilebert", "int-only"),
         ("gpt_oss", "rotate"), ("deepseek_v3", "rotate"), ("hiera", "int-only"), ("cvt", "int-only"),
         # the seventh wave: integer conv1d / RMSNorm / summed masks, a head left unrotated,
         # a depthwise conv writing the stream refused (it used to be rotated wrongly)
         ("squeezebert", "int-only"), ("imagegpt", "int-only"), ("hubert", "int-only"),
         ("audio-spectrogram-transformer", "rotate"), ("convnextv2", "rotate"),
         # the eighth wave: Clip and SAME padding as Relax ops, integer average pools, a
         # coarsened accumulator; Swin's shifted-window mask moved onto the unsplit scores
         # (MobileNetV2's and Donut-Swin's int-only cells, the same constructs as EfficientNet's and
         # Swin's, run in benchmarks/zoo.py only: keeps `make test` < 30 min)
         ("efficientnet", "int-only"), ("poolformer", "int-only"),
         # the ninth wave: a -inf causal mask read as a mask, RoPE composites over compound
         # lengths, a conformer's GLU / depthwise conv / BatchNorm in integers
         ("whisper", "int-only"), ("wav2vec2-conformer", "int-only"), ("lilt", "int-only"),
         # (Swin's and Swin-V2's int-only cells, shifted-window masks and cosine attention, run in
         # benchmarks/zoo.py; the suite builds Swin-V2's int-only through test_zoo_int_accel_cell,
         # which compares it with onnxruntime and with the llvm build: keeps `make test` < 30 min)
         # the tenth: attention sinks and RoPE on the two halves apart (gpt-oss)
         ("gpt_oss", "kv-prerope"),
         # the twelfth: masks built per sample over a symbolic batch, proved uniform and folded
         # (T5's, M2M-100's and DETR's int-only cells, the same construct, run in benchmarks/zoo.py)
         ("bart", "int-only"),
         # the fifteenth: elementwise functions as tables over int8 codes, a masked fill of logits
         ("owlvit", "int-only")}
#: cells run in benchmarks/zoo.py only (keeps `make test` < 30 min): MobileViT's `none` (a minute
#: of build; the constructs it needed are tests/test_frontend.py's float-size and concat tests);
#: the `none` cells of held-out image models whose `int-only` cell runs in the suite (the same
#: graph at a fixed image size, 20-45 s each for a symbolic one): CvT, PoolFormer, Hiera, LeViT,
#: EfficientNet; Donut-Swin (Swin's graph: swin/none runs) and Swin-V2 (its float graph is
#: tests/test_canonicalize.py's cosine-attention test, its int-only build test_zoo_int_accel_cell);
#: RT-DETR's `none` (a minute: the largest graph of the zoo, its constructs TVM's own ops)
BENCHMARK_ONLY = {("mobilevit", "none"), *((m, "none") for m in ("cvt", "poolformer", "hiera", "levit",
                                                                  "efficientnet", "donut-swin", "swinv2",
                                                                  # the same ONNX graph as roberta's / beit's
                                                                  "xlm-roberta", "data2vec-vision",
                                                                  # a minute of build; its grid_sample and topk
                                                                  # import as TVM's ops (no rule of ours)
                                                                  "rt_detr",
                                                                  # the same graph as another cell's: RoBERTa's
                                                                  # (data2vec-text, I-BERT), BERT's (Splinter),
                                                                  # wav2vec2's (UniSpeech, UniSpeech-SAT),
                                                                  # OWL-ViT's plus a head (OWLv2), DETR's with
                                                                  # pre-norm (Table Transformer), Swin's backbone
                                                                  # and DETR's decoder (MaskFormer)
                                                                  "data2vec-text", "ibert", "splinter", "unispeech",
                                                                  "unispeech-sat", "owlv2", "table-transformer",
                                                                  "maskformer")),
                  # Mistral's Optimum export is Llama's graph: its cache pipelines run on llama
                  *(("mistral", p) for p in ("k-sort", "kv-prerope", "bfp")),
                  # OWL-ViT's int-only constructs (tables over int8 codes, a masked fill of logits)
                  # are tests/test_int_only.py's test_elementwise_functions_as_tables_and_a_masked_fill;
                  # its `none` cell stays (20 s)
                  ("owlvit", "int-only")}
CELLS = [(m, p) for m, arch in zoo.ZOO.items() for p in zoo.PIPELINES[arch.kind]
         if (p != "rotate+kv-prerope" or m in COMPOSED) and (p != "kv-prerope" or m not in COMPOSED - {"llama"}) and (p == "none" or not arch.held_out or (m, p) in FIXED)
         and (m, p) not in BENCHMARK_ONLY]


#: a model whose `rotate` cell runs here and passes has its import checked by it: the rotated
#: artifact is compared with onnxruntime on every output (logits and the present caches,
#: prefill and a decode step) at 1e-5, so its `none` cell (the same import at 1e-6) runs in
#: benchmarks/zoo.py only (21 cells). (Not `int-only`: its 0.95 would let a small import
#: error through.)
CELLS = [(m, p) for m, p in CELLS
         if not (p == "none" and (m, "rotate") in CELLS and (m, "rotate") not in zoo.REFUSED
                 and (m, "rotate") not in zoo.GAPS)]


def _marks(m, p):
    marks = [] if p in ("none", "rotate") else [pytest.mark.slow]
    if (m, p) in zoo.GAPS:
        marks.append(pytest.mark.xfail(reason=zoo.GAPS[(m, p)], strict=True))
    return marks


@pytest.mark.parametrize("model,pipeline", [pytest.param(m, p, marks=_marks(m, p), id=f"{m}-{p}")
                                            for m, p in CELLS])
def test_zoo_cell(model, pipeline):
    arch = zoo.ZOO[model]
    r = zoo.check(arch.onnx, pipeline, arch.kind)
    if (model, pipeline) in zoo.REFUSED:
        needle, _why = zoo.REFUSED[(model, pipeline)]
        assert r["status"] == "refused" and needle in r["reason"], r
        assert len(r["reason"].splitlines()) == 1
        return
    assert r["status"] == "pass", r
    assert r["cosine"] >= zoo.TOLERANCE[pipeline]


#: timm's own exports (tests/zoo/timm: ``onnx_export``, the TorchScript exporter, opset 20,
#: ``input0`` over a symbolic batch): the suite checks the import of one model per construct
#: (timm's traced fused attention and LayerScale, a post-norm windowed model, BatchNorm-based
#: attention, the hybrid's TF-"same" padding, CrossViT's two branches) by its `rotate` cell where
#: rotate applies (equivalence at 1e-5, see CELLS above), else by `none`, and int-only on the
#: constructs the eighteenth round made integer (bicubic resize, TF-"same" max-pool padding);
#: benchmarks/zoo.py --exporter timm runs every cell of all 18 (keeps `make test` < 30 min)
TIMM_CELLS = [("deit3", "rotate"), ("swinv2", "none"), ("levit", "none"), ("vit_hybrid", "rotate"),
              ("crossvit", "rotate"), ("crossvit", "int-only"), ("vit_hybrid", "int-only")]


@pytest.mark.parametrize("name,pipeline", [pytest.param(n, p, id=f"{n}-{p}",
                                                        marks=[] if p != "int-only" else [pytest.mark.slow])
                                           for n, p in TIMM_CELLS])
def test_timm_cell(name, pipeline):
    r = zoo.check(zoo.TIMM_FIXTURES / f"timm_{name}.onnx", pipeline, "vision")
    assert r["status"] == "pass", r
    assert r["cosine"] >= zoo.TOLERANCE[pipeline]


def test_fixtures_are_the_optimum_exports():
    """The committed exports are what the zoo generator makes (one per entry)."""
    import onnx

    for name, arch in zoo.ZOO.items():
        proto = onnx.load(str(arch.onnx), load_external_data=False)
        names = [i.name for i in proto.graph.input]
        if arch.kind == "decoder":
            assert "past_key_values.0.key" in names and any(o.name == "present.0.key" for o in proto.graph.output)
        dims = proto.graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param, f"{name}: batch is not symbolic"


def _torch_marks(m):
    return [pytest.mark.xfail(reason=zoo.TORCH_GAPS[m], strict=True)] if m in zoo.TORCH_GAPS else []


#: one architecture per construct the torch.export path meets (RoPE with GQA, GPT-2's Conv1D,
#: ALiBi, a post-norm encoder, a ViT, DINOv2's interpolated positions); benchmarks/zoo.py's
#: torch.export column runs every zoo model (keeps `make test` < 30 min)
TORCH_EXPORT = ("llama", "gpt2", "bloom", "bert", "vit", "dinov2")


@pytest.mark.parametrize("model", [pytest.param(m, marks=_torch_marks(m), id=m) for m in TORCH_EXPORT])
def test_zoo_torch_export(model):
    """Architectures through the Python API's torch.export path (the installed
    transformers, no cache, static shapes): loaded, canonicalized, built, equal to torch."""
    r = zoo.check_torch(model)
    assert r["status"] == "pass", r


@pytest.mark.parametrize("name", ["llama", "vit"])
def test_hf_checkpoint_folder_cli(name, tmp_path, capsys):
    """`qcompile path/to/hf_folder` (config.json + safetensors, as save_pretrained writes it)
    loads the model with transformers, traces it with torch.export, and evaluates against the
    same torch module."""
    import json

    import numpy as np

    from qcompile.cli import main

    folder = tmp_path / "hf"
    zoo.hf_model(name).save_pretrained(folder)
    rng = np.random.default_rng(0)
    data = {"pixel_values": rng.standard_normal((2, 3, 32, 32)).astype(np.float32)} if zoo.ZOO[name].kind == "vision" \
        else {"input_ids": rng.integers(0, 256, (2, 16)), "attention_mask": np.ones((2, 16), np.int64)}
    np.savez(tmp_path / "ev.npz", **data)
    out = tmp_path / "out"
    rc = main([str(folder), "--pipeline", "none", "-o", str(out), "--eval-data", str(tmp_path / "ev.npz"),
               "--batch", "1", "-q"])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text())
    assert rep["evaluation"]["reference"] == "torch" and rep["model"]["hf_folder"] == str(folder)
    (m,) = rep["evaluation"]["outputs"].values()
    assert m["cosine"] >= 0.999999


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_torch_export_dynamic_sequence(name):
    """torch.export with ``dynamic_shapes`` through ``qc.load``: the sequence stays symbolic
    in the module, and one artifact serves several lengths, equal to torch. (BERT does not
    import this way yet: slicing its 128-row position buffer to the sequence gives
    ``min(seq, 128)``, which TVM cannot prove equal to ``seq`` though torch.export's range
    says so, and the embedding sum loses its shape.)"""
    import torch
    from torch.export import Dim

    import qcompile as qc

    module, ex = zoo.torch_wrapper(name)
    seq = Dim("seq", min=2, max=64)
    model = qc.load(module, example_inputs=ex, dynamic_shapes=(({1: seq}, {1: seq}),))
    assert all(isinstance(s.shape[1], str) for s in model.inputs)
    art = qc.build(qc.PassManager(qc.pipeline("none")).run(model.mod), "llvm")
    for t in (3, 11):
        ids, mask = torch.randint(0, 256, (2, t)), torch.ones(2, t, dtype=torch.int64)
        with torch.no_grad():
            ref = module(ids, mask).numpy()
        assert zoo._cosine(art.run(ids.numpy(), mask.numpy())[0], ref) >= 0.999999


@pytest.mark.slow
def test_zoo_int_accel_cell():
    """An int-only zoo cell built for int-accel: through the integer-only verifier, within the
    int-only tolerance of onnxruntime, and bit-exact with the llvm build (benchmarks/zoo.py
    --target int-accel runs every int-only cell). SwinV2 over a symbolic batch: TVM's C
    codegen wrote a merged buffer's size (a nested max of batch extents) with a declaration
    inside the allocation call, and the C did not compile ("expected primary-expression")."""
    arch = zoo.ZOO["swinv2"]
    r = zoo.check(arch.onnx, "int-only", arch.kind, target="int-accel")
    assert r["status"] == "pass" and r["bit_exact_vs_llvm"], r


def test_unlisted_architectures_are_apart_from_the_zoo():
    """``zoo.UNLISTED`` (run only by ``benchmarks/zoo.py --exporter dynamo --unlisted``: no
    fixtures) names real transformers classes and no zoo entry, and ``zoo.entry`` finds both."""
    import transformers

    assert not set(zoo.UNLISTED) & set(zoo.ZOO)
    for name, a in zoo.UNLISTED.items():
        assert hasattr(transformers, a.config) and hasattr(transformers, a.model), name
        assert zoo.entry(name) is a
    assert zoo.entry("llama") is zoo.ZOO["llama"]
