"""The architecture zoo matrix: every applicable pipeline on every tiny zoo model (Optimum
exports committed under tests/zoo, symbolic dims, decoders also from an empty past),
compiled for llvm and compared with onnxruntime on the float model; and a torch.export
column (the live transformers model through qc.load, `none`, compared with torch).

    python benchmarks/zoo.py [--models llama,bert] [--pipelines none,rotate]
        -> benchmarks/results/zoo.json, and the README matrix printed as Markdown
    python benchmarks/zoo.py --markdown     # the matrix of the existing zoo.json
    python benchmarks/zoo.py --pipelines w8a8 --out benchmarks/results/zoo_w8a8.json
        -> a pipeline of EVERY_KIND (not a matrix column yet) on every model
    python benchmarks/zoo.py --target int-accel
        -> benchmarks/results/zoo_int_accel.json: the int-only cells built for int-accel
           (the integer-only verifier, TVM's C backend), compared with onnxruntime and bit
           for bit with the llvm build of the same module
    python benchmarks/zoo.py --target cuda
        -> benchmarks/results/zoo_cuda.json: the int-only cells built for cuda, their CUDA
           source compiled by nvcc; "generated" where no GPU is present (nothing ran), else
           run and compared with onnxruntime
    python benchmarks/zoo.py --exporter dynamo
        -> benchmarks/results/zoo_dynamo.json: the same models exported by
           torch.onnx.export(dynamo=True) (no cache: none, rotate and int-only, one batch)
    python benchmarks/zoo.py --exporter dynamo --unlisted
        -> benchmarks/results/zoo_unlisted.json: zoo.UNLISTED (architectures no issue, fixture
           or test names), exported now with torch.onnx.export(dynamo=True)
    python benchmarks/zoo.py --exporter genai [--pipelines ...,w8a8]
        -> benchmarks/results/zoo_genai.json: the decoders built by onnxruntime-genai's model
           builder (tests/zoo/genai/: GroupQueryAttention over a per-row cache buffer), every
           decoder pipeline

    python benchmarks/zoo.py --exporter ort-quantized [--models ...] [--formats dynamic,qdq,qoperator]
        -> benchmarks/results/zoo_quantized.json: each model quantized by onnxruntime's own
           quantizer (zoo.quantize_ort); `none` keeps the file as written (vs onnxruntime
           running it), every other pipeline lifts it to float (vs onnxruntime on the float
           model with the file's weights: zoo.float_with_stored_weights)

    python benchmarks/zoo.py --exporter timm [--models vit,crossvit]
        -> benchmarks/results/zoo_timm.json: timm's architectures exported by timm's own
           onnx_export (tests/zoo/timm, made by `python -m qcompile.models.zoo export-timm`),
           rows "timm_<name>": none, rotate and int-only
    python benchmarks/zoo.py --exporter timm --fixtures DIR --out benchmarks/results/zoo_timm_dynamo.json
        -> the same from another export of them, e.g. DIR made by
           `python -m qcompile.models.zoo export-timm DIR --dynamo` (timm's use_dynamo=True; a model
           torch cannot export is left out and has no row)

A cell is "pass" (within the tolerance of qcompile.models.zoo.TOLERANCE), "refused" (the
model cannot take the technique: zoo.REFUSED), "gap" (it should pass and does not yet:
zoo.GAPS), or "fail"; refusals and gaps carry the one-line message the user sees.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, write_json  # noqa: E402

from qcompile.models import zoo  # noqa: E402

ORDER = ["none", "rotate", "k-sort", "kv-prerope", "bfp", "rotate+kv-prerope", "int-only"]
#: the torch.export column: the `none` pipeline on the live transformers model through qc.load
TORCH = "torch.export"
ALL = sorted({p for ps in zoo.PIPELINES.values() for p in ps}, key=ORDER.index) + [TORCH]
#: pipelines that apply to every kind of model, run only when --pipelines names them (not
#: matrix columns yet: their cells would need their own zoo.GAPS and FIXED_SHAPES entries)
EVERY_KIND = ("w8a8",)
#: the pipelines of the dynamo column: the KV-cache ones need a cache in the signature
DYNAMO = ("none", "rotate", "int-only")


def _export_reason(e: Exception) -> str:
    """The exporter's error in one line: torch.onnx's own cause (its "Exception summary"),
    not the first line of its generic "Next steps" banner."""
    text = str(e).strip()
    if "Exception summary" in text:
        causes = [ln.strip() for ln in text.split("Exception summary", 1)[1].splitlines()
                  if ln.strip().startswith("<class")]
        if causes:
            return causes[0][:300]
    return f"{type(e).__name__}: {(text.splitlines() or [''])[0][:200]}"


def _kind(row: str) -> str:
    return "vision" if row.startswith("timm_") else zoo.entry(row).kind


def _gap(name, p):
    return zoo.TORCH_GAPS.get(name) if p == TORCH else zoo.GAPS.get((name, p))


def markdown(results: dict, exporter: str = "optimum") -> str:
    pipes = [p for p in ALL + list(EVERY_KIND) if any(p in r or ("export" in r and p in DYNAMO) for r in results.values())]
    lines = ["| model | " + " | ".join(pipes) + " |", "|---|" + "---|" * len(pipes)]
    notes = []
    for name, row in results.items():
        base = name.split("/")[0]  # ort-quantized rows: "<model>/<format>"
        cells = []
        for p in pipes:
            r = row.get(p)
            if r is None and "export" in row and (p in DYNAMO or exporter == "ort-quantized") \
                    and p in zoo.PIPELINES[_kind(base)]:
                if not cells or not cells[-1].startswith("no export"):
                    who = "onnxruntime's quantizer" if exporter == "ort-quantized" else "torch.onnx.export (dynamo)"
                    notes.append(f"{name}: {who} failed: `{row['export']['reason']}`")
                cells.append(f"no export [{len(notes)}]")
            elif r is None:
                cells.append("n/a")
            elif r["status"] == "pass":
                cells.append(f"pass ({r['cosine']:.6f})")
            elif r["status"] == "generated":  # cuda without a GPU: compiled by nvcc, not run
                cells.append(f"generated ({r['kernels']} kernels, {r['dp4a_matmuls']} dp4a)")
            else:
                # a refusal the model does not deserve (not in zoo.REFUSED) is a failure
                # the gap and refusal notes were written for the committed Optimum exports: on
                # another exporter's graph a refusal counts where its message says the same,
                # and a cell that does not pass is a "fail" with its message
                refused = r["status"] == "refused" and (base, p) in zoo.REFUSED and \
                    (exporter in ("optimum", "timm") or zoo.REFUSED[(base, p)][0] in (r["reason"] or ""))
                degenerate = exporter == "ort-quantized" and r["status"] == "refused" and "has scale inf" in \
                    (r["reason"] or "")
                if degenerate:  # the file, not qcompile: it computes garbage, and engines differ on which
                    notes.append(f"{name} / {p} (refused): onnxruntime's static quantizer calibrated the "
                                 "attention mask's finfo.min into an int8 range: an inf scale, NaN in the file's "
                                 f"own arithmetic; lifted to float the pipelines run. Message: `{r['reason']}`")
                    cells.append(f"refused [{len(notes)}]")
                    continue
                own = exporter in ("optimum", "timm")  # the exports the gap notes were written for
                kind = "refused" if refused else "gap" if _gap(base, p) and own else "fail"
                why = zoo.REFUSED[(base, p)][1] if kind == "refused" else \
                    (_gap(base, p) or "") if own else "not explained"
                notes.append(f"{name} / {p} ({kind}): {why}. Message: `{r['reason']}`")
                cells.append(f"{kind} [{len(notes)}]")
        lines.append(f"| {name} ({_kind(base)}) | " + " | ".join(cells) + " |")
    if exporter == "genai":  # every row a decoder
        lines = [line.replace(" (decoder) |", " |") for line in lines]
    lines += [""] + [f"{i}. {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None, help="default: every zoo model (with --exporter genai: zoo.GENAI)")
    ap.add_argument("--pipelines", default=",".join(ALL))
    ap.add_argument("--out", default=None, help="default: results/zoo.json (zoo_dynamo.json with --exporter dynamo)")
    ap.add_argument("--formats", default=",".join(zoo.ORT_QUANTIZED), help="--exporter ort-quantized: which")
    ap.add_argument("--exporter", choices=["optimum", "dynamo", "genai", "ort-quantized", "timm"], default="optimum",
                    help="optimum: the committed exports; dynamo: export each model now with torch.onnx (dynamo)")
    ap.add_argument("--fixtures", default=None, help="--exporter timm: the folder of timm_<name>.onnx files "
                                                     "(default tests/zoo/timm)")
    ap.add_argument("--unlisted", action="store_true",
                    help="zoo.UNLISTED's models (--exporter dynamo only: they have no committed fixtures)")
    ap.add_argument("--markdown", action="store_true", help="print the matrix of an existing --out file and exit")
    ap.add_argument("--target", choices=["llvm", "int-accel", "cuda"], default="llvm",
                    help="int-accel: the int-only cells only, through the integer-only verifier (zoo_int_accel.json); "
                         "cuda: the int-only cells only, CUDA generated and compiled by nvcc (zoo_cuda.json)")
    a = ap.parse_args()
    dynamo, genai, quant = a.exporter == "dynamo", a.exporter == "genai", a.exporter == "ort-quantized"
    timm = a.exporter == "timm"
    if a.unlisted and not dynamo:
        ap.error("--unlisted has no committed fixtures: it needs --exporter dynamo")
    everyone = list(zoo.GENAI if genai else zoo.TIMM if timm else zoo.UNLISTED if a.unlisted else zoo.ZOO)
    a.models = a.models or ",".join(everyone)
    accel = a.target != "llvm"  # int-accel or cuda: the int-only cells only
    if accel:
        a.pipelines = "int-only"
    a.out = a.out or str(Path(__file__).parent / "results" / ("zoo_unlisted.json" if a.unlisted else "zoo_dynamo.json" if dynamo else "zoo_genai.json"
                                                              if genai else "zoo_quantized.json" if quant else "zoo_timm.json" if timm else f"zoo_{a.target.replace('-', '_')}.json"
                                                              if accel else "zoo.json"))
    if a.markdown:
        import json

        print(markdown(json.loads(Path(a.out).read_text())["models"], a.exporter))
        return 0
    out = header("zoo.py")
    out["tolerance"] = zoo.TOLERANCE
    models = a.models.split(",")
    results, runs = {}, []
    subset = set(models) < set(everyone) or (set(a.pipelines.split(",")) < set(ALL) and not accel)
    if subset and Path(a.out).exists():  # some models or pipelines: merged into the existing file
        import json

        old = json.loads(Path(a.out).read_text())
        results, runs = old["models"], old.get("runs", [{"command": old.get("command"), "models": "all"}])
    runs.append({"command": out["command"], "models": "all" if len(models) == len(everyone) else models,
                 **({"pipelines": a.pipelines.split(",")} if set(a.pipelines.split(",")) < set(ALL) else {})})
    out["runs"] = runs
    tmp = tempfile.mkdtemp(prefix="qc_zoo_dynamo_")
    for name in models if quant else []:  # rows "<model>/<format>"
        arch = zoo.ZOO[name]
        for fmt in a.formats.split(","):
            row = results.setdefault(f"{name}/{fmt}", {})
            try:
                path = zoo.quantize_ort(name, fmt, tmp)
                row.pop("export", None)  # (a merged file: an earlier run's failure no longer holds)
            except Exception as e:  # noqa: BLE001 - onnxruntime's quantizer, not qcompile: said, not counted
                row["export"] = {"status": "export failed", "reason": f"{type(e).__name__}: "
                                 f"{(str(e).strip().splitlines() or [''])[0][:200]}"}
                print(f"{name}/{fmt} quantization failed: {row['export']['reason']}", flush=True)
                continue
            ref = Path(tmp) / fmt / f"{name}.float.onnx"
            zoo.float_with_stored_weights(arch.onnx, path, ref)
            for p in a.pipelines.split(","):
                if p == TORCH or (p not in zoo.PIPELINES[arch.kind] and p not in EVERY_KIND):
                    continue
                r = zoo.check(path, p, arch.kind, quantized="keep" if p == "none" else "float",
                              reference=None if p == "none" else ref)
                row[p] = r
                print(f"{name + '/' + fmt:<20} {p:<18} {r['status']:<8} {r.get('cosine', '')} {r.get('reason') or ''}",
                      flush=True)
    for name in models if timm else []:  # rows "timm_<name>"
        path = Path(a.fixtures or zoo.TIMM_FIXTURES) / f"timm_{name}.onnx"
        if not path.exists():
            print(f"timm_{name}: no export in {path.parent}", flush=True)
            continue
        row = results.setdefault(f"timm_{name}", {})
        for p in a.pipelines.split(","):
            if p not in zoo.PIPELINES["vision"]:
                continue
            r = zoo.check(path, p, "vision", target=a.target)
            row[p] = r
            print(f"timm_{name:<14} {p:<18} {r['status']:<8} {r.get('cosine', '')} {r.get('reason') or ''}", flush=True)
    for name in models if not (quant or timm) else []:
        arch = zoo.entry(name)
        row = results.setdefault(name, {})
        path, kind = arch.onnx, arch.kind
        if genai:
            path = zoo.GENAI_FIXTURES / f"{name}.onnx"
        if dynamo:
            if kind not in ("encoder", "decoder", "vision"):
                continue
            try:
                path, kind = zoo.export_dynamo(name, tmp), "encoder" if kind == "decoder" else kind
                row.pop("export", None)  # (a merged file: an earlier run's failure no longer holds)
            except Exception as e:  # noqa: BLE001 - torch's exporter, not qcompile: said, not counted
                row["export"] = {"status": "export failed", "reason": _export_reason(e)}
                for p in a.pipelines.split(","):
                    row.pop(p, None)  # nothing of this run compiled: no earlier cell stands for it
                print(f"{name:<11} export failed: {row['export']['reason']}", flush=True)
                continue
        for p in a.pipelines.split(","):
            if p != TORCH and p not in zoo.PIPELINES[arch.kind] and p not in EVERY_KIND:
                continue
            if (dynamo and p not in DYNAMO) or (genai and p == TORCH):
                continue
            if p == TORCH and (arch.held_out or a.unlisted):  # the third wave and the unlisted: one export each
                continue
            r = zoo.check_torch(name) if p == TORCH else zoo.check(path, p, kind, target=a.target)
            row[p] = r
            print(f"{name:<11} {p:<18} {r['status']:<8} {r.get('cosine', '')} {r.get('reason') or ''}", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    out["models"] = {n: results[n] for n in everyone if n in results} if not (quant or timm) else \
        {n: results[n] for n in sorted(results)}
    write_json(a.out, out)
    print(markdown(results, a.exporter))
    return 0


if __name__ == "__main__":
    sys.exit(main())
