"""Float baselines of the three real models, measured three ways side by side:
(a) the qcompile ``none``-pipeline llvm artifact, (b) onnxruntime on the exported ONNX,
(c) torch eager.

    python benchmarks/baseline.py [--out benchmarks/results/baseline.json] [--tokens 8176]
                                  [--vit-samples 10000] [--sentences 64]

* ViT (bundled, Fashion-MNIST): top-1 accuracy on the first ``--vit-samples`` test images.
* all-MiniLM-L6-v2: sentence embeddings (mean pooling, L2 norm) of the first
  ``--sentences`` sentences of *Emma*; cosine to the torch float embeddings (min, mean).
* SmolLM2-135M: perplexity on *Emma* under :class:`qcompile.lm.Protocol` (windows of 512
  positions, BOS + 511 text tokens, each scoring 512 text tokens, non-overlapping, fed
  through the KV cache in steps of 64 tokens; ``--tokens`` scored tokens, default 8192).

Needs ``qcompile assets fetch`` (fashion-mnist, minilm, smollm2, austen).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import qcompile as qc  # noqa: E402
from benchmarks.common import header, write_json  # noqa: E402
from qcompile import lm  # noqa: E402


def compile_none(path, **load_kw):
    model = qc.load(path, **load_kw)
    mod = qc.PassManager(qc.pipeline("none")).run(model.mod)
    return qc.build(mod, target="llvm")


def timed(fn):
    t = time.perf_counter()
    r = fn()
    return r, round(time.perf_counter() - t, 2)


def vit(samples: int) -> dict:
    import onnxruntime as ort
    import torch

    from qcompile.models import ASSETS, DEFAULT_MODEL
    from qcompile.models.data import fashion_mnist
    from qcompile.models.vit import load_checkpoint

    x, y = fashion_mnist("test")
    x, y = x[:samples], y[:samples]
    bs = 50
    art = compile_none(DEFAULT_MODEL, input_shapes={"pixels": (bs, 1, 28, 28)})
    sess = ort.InferenceSession(str(DEFAULT_MODEL), providers=["CPUExecutionProvider"])
    model, _ = load_checkpoint(ASSETS / "vit_fmnist.pt")

    def run(f):
        return np.concatenate([f(x[i:i + bs]) for i in range(0, len(x), bs)]).argmax(-1)

    def torch_f(b):
        with torch.no_grad():
            return model(torch.from_numpy(b)).numpy()

    preds, secs = {}, {}
    preds["qcompile_llvm"], secs["qcompile_llvm"] = timed(lambda: run(lambda b: art.run(b)[0]))
    preds["onnxruntime"], secs["onnxruntime"] = timed(lambda: run(lambda b: sess.run(None, {"pixels": b})[0]))
    preds["torch"], secs["torch"] = timed(lambda: run(torch_f))
    return {"metric": "top-1 accuracy, Fashion-MNIST test", "samples": int(len(y)),
            "values": {k: float((p == y).mean()) for k, p in preds.items()},
            "agreement_with_torch": {k: float((p == preds["torch"]).mean()) for k, p in preds.items()},
            "seconds": secs}


def minilm(n: int) -> dict:
    import onnxruntime as ort
    import torch

    from qcompile.models import corpus
    from qcompile.models import minilm as M

    sents = corpus.sentences("eval", n)
    feed = M.tokenize(sents)
    path = M.export_onnx()
    art = compile_none(path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    hf, _ = M.load_torch()

    def run(f):
        hidden = np.concatenate([f(feed["input_ids"][i:i + 1], feed["attention_mask"][i:i + 1]) for i in range(n)])
        return M.embed(hidden, feed["attention_mask"])

    def torch_f(ids, mask):
        with torch.no_grad():
            return hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                      token_type_ids=torch.zeros_like(torch.from_numpy(ids))).last_hidden_state.numpy()

    emb, secs = {}, {}
    emb["qcompile_llvm"], secs["qcompile_llvm"] = timed(lambda: run(lambda i, m: art.run(i, m)[0]))
    emb["onnxruntime"], secs["onnxruntime"] = timed(
        lambda: run(lambda i, m: sess.run(None, {"input_ids": i, "attention_mask": m})[0]))
    emb["torch"], secs["torch"] = timed(lambda: run(torch_f))
    cos = {k: (e * emb["torch"]).sum(1) for k, e in emb.items()}
    return {"metric": "sentence-embedding cosine to torch float (min over sentences)", "sentences": n,
            "text": "Jane Austen, Emma (first sentences of 6-40 words)",
            "values": {k: float(c.min()) for k, c in cos.items()},
            "mean": {k: float(c.mean()) for k, c in cos.items()}, "seconds": secs}


def smollm2(tokens: int) -> dict:
    from qcompile.models import corpus, smollm2 as S

    proto = lm.Protocol(tokens=tokens)
    model, tok = S.load()
    ids = tok(corpus.text("eval")).input_ids
    path = S.export_onnx(proto.chunk)
    art = compile_none(path)
    c = model.c
    cache = lm.empty_cache(c.layers, c.kv_heads, c.head_dim)
    res, secs = {}, {}
    for name, step in [("qcompile_llvm", lm.artifact_step(art)), ("onnxruntime", lm.ort_step(path)),
                       ("torch", lm.torch_step(model))]:
        res[name], secs[name] = timed(lambda: lm.perplexity(step, ids, cache, proto, desc=name))
    return {"metric": "perplexity, Jane Austen's Emma", "protocol": res["torch"]["protocol"],
            "tokens": res["torch"]["tokens"], "values": {k: r["perplexity"] for k, r in res.items()},
            "seconds": secs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/baseline.json"))
    ap.add_argument("--tokens", type=int, default=lm.Protocol.tokens)
    ap.add_argument("--vit-samples", type=int, default=10000)
    ap.add_argument("--sentences", type=int, default=64)
    ap.add_argument("--only", choices=["vit", "minilm", "smollm2"], action="append")
    a = ap.parse_args()
    only = a.only or ["vit", "minilm", "smollm2"]
    out = header("baseline.py")
    jobs = {"vit": lambda: vit(a.vit_samples), "minilm": lambda: minilm(a.sentences),
            "smollm2": lambda: smollm2(a.tokens)}
    for name in only:
        print(f"== {name}", flush=True)
        out["models"][name] = jobs[name]()
        print(json.dumps(out["models"][name]["values"], indent=1), flush=True)
    p = Path(a.out)
    write_json(p, out)


if __name__ == "__main__":
    main()
