"""The architecture zoo: tiny, seeded Hugging Face models built from their config classes
(no downloads), exported the ways users export them.

Each entry is a real ``transformers`` architecture with a tiny configuration; weights are
random (seeded), so the zoo tests graph *generality* (every exporter's spelling of an idiom,
symbolic dims, an empty KV cache), never accuracy.

Two export paths:

* **Optimum** (``optimum-cli export onnx``, the most common ONNX a user brings):
  ``python -m qcompile.models.zoo export DIR`` writes ``DIR/<name>.onnx``. Optimum pins
  ``transformers<5`` while the rest of the project uses 5.x, so it runs in a separate
  environment (the ``zoo`` extra, ``pip install -e .[zoo]`` in a venv of its own); the
  tiny exports are committed under ``tests/zoo/`` so that the tests need no exporter.
* **torch.export** through :func:`qcompile.load` (the Python API) on the live
  ``transformers`` model, with whichever ``transformers`` is installed.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "zoo"

# shared tiny sizes: hidden 64, 4 heads of 16, 2 KV heads (GQA), 2 layers, vocab 256
_DEC = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=256, tie_word_embeddings=False)
_ENC = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=128)
_IMG = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4, num_labels=10)


@dataclass(frozen=True)
class Arch:
    name: str
    config: str          # transformers config class
    model: str           # transformers model class
    kind: str            # "decoder" | "encoder" | "vision"
    task: str            # Optimum task
    kwargs: dict = field(default_factory=dict)
    notes: str = ""

    @property
    def onnx(self) -> Path:
        return FIXTURES / f"{self.name}.onnx"


ZOO = {a.name: a for a in [
    Arch("llama", "LlamaConfig", "LlamaForCausalLM", "decoder", "text-generation-with-past",
         dict(_DEC, num_key_value_heads=2), "RMSNorm, rotate-half RoPE, SwiGLU, GQA"),
    Arch("mistral", "MistralConfig", "MistralForCausalLM", "decoder", "text-generation-with-past",
         dict(_DEC, num_key_value_heads=2, sliding_window=None), "Llama layout, GQA"),
    Arch("qwen2", "Qwen2Config", "Qwen2ForCausalLM", "decoder", "text-generation-with-past",
         dict(_DEC, num_key_value_heads=2), "biased q/k/v projections, GQA"),
    Arch("phi3", "Phi3Config", "Phi3ForCausalLM", "decoder", "text-generation-with-past",
         dict(_DEC, num_key_value_heads=2, pad_token_id=0), "fused qkv_proj and gate_up_proj"),
    Arch("gemma", "GemmaConfig", "GemmaForCausalLM", "decoder", "text-generation-with-past",
         dict(_DEC, num_key_value_heads=2, head_dim=32, hidden_activation="gelu_pytorch_tanh"),
         "RMSNorm (1 + w), tanh GELU, head_dim 32 != hidden/heads, scaled embeddings"),
    Arch("gpt_neox", "GPTNeoXConfig", "GPTNeoXForCausalLM", "decoder", "text-generation-with-past",
         dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, max_position_embeddings=256, rotary_pct=0.25,
              use_parallel_residual=True), "partial rotary (25 %), parallel residual, LayerNorm"),
    Arch("opt", "OPTConfig", "OPTForCausalLM", "decoder", "text-generation-with-past",
         dict(vocab_size=256, hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=256, word_embed_proj_dim=64), "learned positions, no RoPE"),
    Arch("bert", "BertConfig", "BertModel", "encoder", "feature-extraction", dict(_ENC),
         "post-norm, erf GELU, additive mask from attention_mask"),
    Arch("distilbert", "DistilBertConfig", "DistilBertModel", "encoder", "feature-extraction",
         dict(vocab_size=256, dim=64, hidden_dim=128, n_layers=2, n_heads=4, max_position_embeddings=128),
         "post-norm, boolean mask filled with the dtype's min"),
    Arch("vit", "ViTConfig", "ViTForImageClassification", "vision", "image-classification", dict(_IMG),
         "pre-norm, CLS token"),
    Arch("deit", "DeiTConfig", "DeiTForImageClassification", "vision", "image-classification", dict(_IMG),
         "pre-norm, CLS token"),
]}


def hf_model(name: str, seed: int = 0):
    """The tiny seeded ``transformers`` model of a zoo entry (float32, eval mode)."""
    import torch
    import transformers

    arch = ZOO[name]
    cfg = getattr(transformers, arch.config)(**arch.kwargs)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = getattr(transformers, arch.model)(cfg).eval()
    with torch.no_grad():  # random init leaves norms at 1/0; perturb them so folding is tested
        for n, p in model.named_parameters():
            if "norm" in n.lower() or "ln" in n.lower():
                p.add_(0.1 * torch.randn_like(p))
    return model


def onnx_feed(path, batch: int = 2, seq: int = 5, past: int = 0, seed: int = 0) -> dict:
    """Inputs for any exported model, from its ONNX signature: token ids, a mask over
    ``past + seq`` positions (the last row left-padded), positions, zero token types,
    pixels, and ``past`` cached positions of random keys/values (``past=0``: an empty cache,
    as every prefill has)."""
    import numpy as np
    import onnx

    rng = np.random.default_rng(seed)
    proto = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in proto.graph.initializer}
    feed = {}
    pad = min(seq // 3, seq - 1)
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        name = vi.name
        if "past" in name or name.startswith("past_key_values"):
            shape = [batch if i == 0 else (past if d is None else d) for i, d in enumerate(dims)]
            feed[name] = rng.standard_normal(shape).astype(np.float32)
        elif name == "input_ids":
            feed[name] = rng.integers(0, 256, (batch, seq)).astype(np.int64)
        elif name == "attention_mask":
            mask = np.ones((batch, past + seq), np.int64)
            if batch > 1:
                mask[-1, :pad] = 0 if past == 0 else 1
            feed[name] = mask
        elif name == "position_ids":
            feed[name] = np.broadcast_to(np.arange(past, past + seq, dtype=np.int64), (batch, seq)).copy()
        elif name == "token_type_ids":
            feed[name] = np.zeros((batch, seq), np.int64)
        elif name == "pixel_values":
            shape = [batch] + [d if d is not None else 32 for d in dims[1:]]
            shape[1] = shape[1] if dims[1] is not None else 3
            feed[name] = rng.standard_normal(shape).astype(np.float32)
        else:
            raise ValueError(f"no rule to make zoo input '{name}'")
    return feed


def export_optimum(name: str, out_dir: Path) -> Path:
    """Export one zoo entry with Optimum (needs the ``zoo`` extra: optimum-onnx, transformers<5)."""
    import tempfile

    from optimum.exporters.onnx import main_export

    arch = ZOO[name]
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "hf"
        hf_model(name).save_pretrained(src)
        if arch.kind == "vision":
            from transformers import ViTImageProcessor

            ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(src)
        exp = Path(tmp) / "onnx"
        main_export(str(src), output=str(exp), task=arch.task, no_post_process=True, do_validation=False)
        onnx_file = exp / "model.onnx"
        out_dir.mkdir(parents=True, exist_ok=True)
        dest = out_dir / f"{name}.onnx"
        import onnx

        proto = onnx.load(str(onnx_file), load_external_data=True)
        onnx.save(proto, str(dest))  # one self-contained file
    return dest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qcompile.models.zoo",
                                 description="Export the tiny zoo models with Optimum (zoo extra).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("out", nargs="?", default=str(FIXTURES))
    e.add_argument("--only", nargs="*", default=None)
    sub.add_parser("list")
    a = ap.parse_args(argv)
    if a.cmd == "list":
        for arch in ZOO.values():
            print(f"{arch.name:<12} {arch.kind:<8} {arch.model:<30} {arch.notes}")
        return 0
    import transformers
    import optimum

    versions = {"transformers": transformers.__version__,
                "optimum": getattr(optimum, "__version__", "?")}
    for name in a.only or list(ZOO):
        print(f"exporting {name} ...", flush=True)
        export_optimum(name, Path(a.out))
    (Path(a.out) / "VERSIONS.json").write_text(json.dumps(versions, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
