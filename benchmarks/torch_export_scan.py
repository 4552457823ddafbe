"""Architectures of the installed ``transformers`` (5.x) outside the zoo (most have no
Optimum export), through the Python API's torch.export path: tiny seeded configurations
(hidden 64, 2 layers, 4 heads of 16; decoders: 2 KV heads, vocab 256, MoE 4 experts top-2,
logits without cache; encoders: a left-padded row; vision: 32x32 images),
``qc.load(module, example_inputs)`` -> pipeline -> llvm build -> compared with torch.
Decoders run ``none`` and ``rotate``; encoders and vision models also ``int-only``
(calibrated on 16 copies of the example batch, cosine >= 0.95).

    python benchmarks/torch_export_scan.py [--models Mixtral,Canine] [--pipelines none,rotate]
        -> benchmarks/results/torch_export_scan.json (a subset of models is merged into it)

Each model runs in a process of its own (a TVM crash or a hang is a failed cell, not a
failed scan). A cell is "pass" (cosine against torch within TOLERANCE), "refused"
(qcompile's one-line error, quoted) or "fail" (a wrong result, an internal error or a timeout). These
architectures are held out from the zoo (``qcompile/models/zoo.py``) and from its fixes;
``tests/test_torch_hf.py::test_hf_decoders_outside_the_zoo`` runs four of them.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, write_json  # noqa: E402

BASE = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=256, tie_word_embeddings=False,
            pad_token_id=0)
MOE = dict(num_experts=4, num_local_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
           shared_expert_intermediate_size=32, n_routed_experts=4, n_shared_experts=1)
#: config class prefix -> extra kwargs
MODELS = {
    "Mixtral": MOE, "Qwen2Moe": MOE, "Olmoe": MOE, "GraniteMoe": MOE, "Phimoe": MOE,
    "JetMoe": dict(MOE, kv_channels=16, num_key_value_heads=4), "Dots1": dict(MOE, first_k_dense_replace=1),
    "Glm4Moe": dict(MOE, first_k_dense_replace=1),
    "Starcoder2": {}, "Persimmon": dict(num_key_value_heads=4), "Cohere2": {}, "Exaone4": {}, "Glm4": {},
    "Ernie4_5": {}, "SeedOss": {}, "BitNet": {}, "Doge": {}, "HunYuanDenseV1": {}, "Apertus": {}, "Olmo3": {},
    "VaultGemma": {}, "Ministral3": {}, "DiffLlama": {}, "ModernBertDecoder": {}, "NanoChat": {}, "Lfm2": {},
    "MiniMax": {},
    # the fourteenth wave: more of transformers 5.x's decoders (MoE, latent attention)
    "Cohere2Moe": MOE, "Ernie4_5_Moe": MOE, "FlexOlmo": MOE, "HunYuanMoEV1": MOE, "GraniteMoeShared": MOE,
    "Afmoe": MOE, "ExaoneMoe": MOE, "Glm4MoeLite": dict(MOE, first_k_dense_replace=1, num_key_value_heads=4, kv_lora_rank=16,
                                                  q_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,
                                                  head_dim=8),
    "DeepseekV2": dict(MOE, num_key_value_heads=4, kv_lora_rank=16, q_lora_rank=None, qk_rope_head_dim=8, qk_nope_head_dim=8,
                       v_head_dim=16, first_k_dense_replace=1),
    "MiniCPM3": dict(num_key_value_heads=4, kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16),
    "Jais2": {}, "Mellum": {},
    "Youtu": dict(num_key_value_heads=4, kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8,
                  v_head_dim=16, head_dim=8), "SolarOpen": {}, "Laguna": {}, "Cwm": {}, "Zaya": {}, "Kolibri1": {},
    "AriaText": MOE, "Llama4Text": dict(MOE, interleave_moe_layer_step=1, intermediate_size_mlp=128),
}
ENC = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
           max_position_embeddings=128, pad_token_id=0)
IMG = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=64, intermediate_size=128,
           num_hidden_layers=2, num_attention_heads=4)
#: encoders and vision models: config class prefix -> (kind, kwargs)
ENCODERS = {
    "Camembert": ("encoder", ENC), "Ernie": ("encoder", ENC), "Mra": ("encoder", ENC), "Yoso": ("encoder", ENC),
    "ModernBert": ("encoder", ENC), "EuroBert": ("encoder", ENC),
    "Canine": ("encoder", dict(ENC, downsampling_rate=2, num_hash_buckets=64, num_hash_functions=2,
                               local_transformer_stride=4)),
    "FocalNet": ("vision", dict(IMG, embed_dim=16, depths=[1, 1], hidden_sizes=[16, 32], patch_size=4)),
    "Dinov2WithRegisters": ("vision", dict(IMG, num_register_tokens=2, mlp_ratio=2)),
    "PvtV2": ("vision", dict(IMG, hidden_sizes=[16, 32], depths=[1, 1], num_encoder_blocks=2,
                             num_attention_heads=[1, 2], sr_ratios=[2, 1], patch_sizes=[7, 3], strides=[4, 2],
                             mlp_ratios=[2, 2])),
    # the fourteenth wave
    "RobertaPreLayerNorm": ("encoder", ENC), "XLMRobertaXL": ("encoder", ENC), "RoCBert": ("encoder", ENC),
    "VitDet": ("vision", dict(IMG, pretrain_image_size=32, out_features=["stage2"], mlp_ratio=2,
                              window_block_indices=[0], residual_block_indices=[1], use_relative_position_embeddings=True,
                              window_size=2)),
    "Aimv2Vision": ("vision", dict(IMG, num_key_value_heads=4)),
}
TOLERANCE = {"none": 0.99999, "rotate": 0.99999, "int-only": 0.95}


def one(name: str, pipelines: list[str]) -> dict:
    """Run in the child process: every pipeline on one model."""
    import warnings

    warnings.simplefilter("ignore")
    import numpy as np
    import torch
    import transformers

    import qcompile as qc
    from qcompile.errors import QCompileError

    kind, kw = ENCODERS.get(name, ("decoder", {**BASE, **MODELS.get(name, {})}))
    cfg = getattr(transformers, name + "Config")(**kw)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    auto = transformers.AutoModelForCausalLM if kind == "decoder" else transformers.AutoModel
    hf = auto.from_config(cfg).eval()
    with torch.no_grad():  # norms away from 1/0, so that folding them is tested; weights that
        # start at zero (AFMoE's router) random, since a top-k over tied scores picks experts by
        # tie-breaking, which torch and TVM do differently
        for n, p in hf.named_parameters():
            if "norm" in n.lower() or "ln" in n.lower():
                p.add_(0.1 * torch.randn_like(p))
            elif p.ndim >= 2 and not p.any():
                p.normal_(0.0, 0.02)

    class First(torch.nn.Module):  # the first output: logits or hidden states
        def __init__(self):
            super().__init__()
            self.m = hf

        def forward(self, *a):
            if kind == "vision":
                return self.m(pixel_values=a[0])[0]
            extra = {"use_cache": False} if kind == "decoder" else {}
            return self.m(input_ids=a[0], attention_mask=a[1], **extra)[0]

    m = First().eval()
    g = torch.Generator().manual_seed(7)
    if kind == "vision":
        ex = (torch.randn(2, 3, 32, 32, generator=g),)
    else:
        mask = torch.ones(2, 6, dtype=torch.int64)
        if kind == "encoder":
            mask[1, :2] = 0
        ex = (torch.randint(1, 256, (2, 6), generator=g), mask)
    with torch.no_grad():
        ref = m(*ex).numpy().astype(np.float64)
    out = {}
    for p in pipelines:
        if p == "int-only" and kind == "decoder":
            continue
        t0 = time.perf_counter()
        try:
            model = qc.load(m, example_inputs=ex)
            calib = None
            if p == "int-only":
                import tempfile

                path = Path(tempfile.mkdtemp(prefix="qc_scan_")) / "calib.npz"
                np.savez(path, **{s.name: np.concatenate([x.numpy()] * 8) for s, x in zip(model.inputs, ex)})
                calib = qc.Calibration(str(path), batch=2, progress=False)
            mod = qc.PassManager(qc.pipeline(p), calibration=calib).run(model.mod)
            got = qc.build(mod, "llvm").run(*[x.numpy() for x in ex])[0]
            got = np.asarray(got, np.float64)
            cos = float((got * ref).sum() / max(np.sqrt((got * got).sum() * (ref * ref).sum()), 1e-30))
            out[p] = {"status": "pass" if cos >= TOLERANCE[p] else "fail", "cosine": cos}
        except QCompileError as e:
            out[p] = {"status": "refused", "reason": str(e)}
        except Exception as e:  # noqa: BLE001 - an internal error is a failed cell
            out[p] = {"status": "fail", "reason": f"internal error: {type(e).__name__}: "
                                                  f"{(str(e).strip().splitlines() or [''])[-1][:300]}"}
        out[p]["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join([*MODELS, *ENCODERS]))
    ap.add_argument("--pipelines", default="none,rotate,int-only")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "torch_export_scan.json"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per model")
    a = ap.parse_args()
    pipelines = a.pipelines.split(",")
    if a.child:
        print("RESULT " + json.dumps(one(a.child, pipelines)), flush=True)
        return 0
    out = header("torch_export_scan.py")
    out["tolerance"] = TOLERANCE
    results, runs = {}, []
    models = a.models.split(",")
    every = [*MODELS, *ENCODERS]
    if set(models) < set(every) and Path(a.out).exists():  # a subset: merged into the existing file
        old = json.loads(Path(a.out).read_text())
        results, runs = old["models"], old.get("runs", [])
    out["runs"] = runs + [{"command": out["command"], "models": "all" if set(models) == set(every) else models}]
    for name in models:
        try:
            r = subprocess.run([sys.executable, __file__, "--child", name, "--pipelines", a.pipelines],
                               capture_output=True, text=True, timeout=a.timeout)
            line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
            results[name] = json.loads(line[7:]) if line else {
                p: {"status": "fail", "reason": f"crashed (exit {r.returncode}): "
                                                 f"{(r.stderr.strip().splitlines() or [''])[-1][:300]}"} for p in pipelines}
        except subprocess.TimeoutExpired:
            results[name] = {p: {"status": "fail", "reason": f"timeout after {a.timeout} s"} for p in pipelines}
        print(f"{name:<18} " + "  ".join(f"{p}: {c['status']}" for p, c in results[name].items()), flush=True)
    out["models"] = {n: results[n] for n in every if n in results}
    write_json(a.out, out)
    for name, row in out["models"].items():
        print(f"| {name} | " + " | ".join(
            f"{c['status']} ({c['cosine']:.6f})" if "cosine" in c else f"{c['status']}: {c.get('reason', '')[:90]}"
            for c in row.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
