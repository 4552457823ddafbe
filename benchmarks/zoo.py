"""The architecture zoo matrix: every applicable pipeline on every tiny zoo model (Optimum
exports committed under tests/zoo, symbolic dims, decoders also from an empty past),
compiled for llvm and compared with onnxruntime on the float model; and a torch.export
column (the live transformers model through qc.load, `none`, compared with torch).

    python benchmarks/zoo.py [--models llama,bert] [--pipelines none,rotate]
        -> benchmarks/results/zoo.json, and the README matrix printed as Markdown
    python benchmarks/zoo.py --markdown     # the matrix of the existing zoo.json

A cell is "pass" (within the tolerance of qcompile.models.zoo.TOLERANCE), "refused" (the
model cannot take the technique: zoo.REFUSED), "gap" (it should pass and does not yet:
zoo.GAPS), or "fail"; refusals and gaps carry the one-line message the user sees.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, write_json  # noqa: E402

from qcompile.models import zoo  # noqa: E402

ORDER = ["none", "rotate", "k-sort", "kv-prerope", "bfp", "rotate+kv-prerope", "int-only"]
#: the torch.export column: the `none` pipeline on the live transformers model through qc.load
TORCH = "torch.export"
ALL = sorted({p for ps in zoo.PIPELINES.values() for p in ps}, key=ORDER.index) + [TORCH]


def _gap(name, p):
    return zoo.TORCH_GAPS.get(name) if p == TORCH else zoo.GAPS.get((name, p))


def markdown(results: dict) -> str:
    pipes = [p for p in ALL if any(p in r for r in results.values())]
    lines = ["| model | " + " | ".join(pipes) + " |", "|---|" + "---|" * len(pipes)]
    notes = []
    for name, row in results.items():
        cells = []
        for p in pipes:
            r = row.get(p)
            if r is None:
                cells.append("n/a")
            elif r["status"] == "pass":
                cells.append(f"pass ({r['cosine']:.6f})")
            else:
                # a refusal the model does not deserve (not in zoo.REFUSED) is a failure
                kind = "refused" if r["status"] == "refused" and (name, p) in zoo.REFUSED else \
                    "gap" if _gap(name, p) else "fail"
                why = zoo.REFUSED[(name, p)][1] if kind == "refused" else (_gap(name, p) or "")
                notes.append(f"{name} / {p} ({kind}): {why}. Message: `{r['reason']}`")
                cells.append(f"{kind} [{len(notes)}]")
        lines.append(f"| {name} ({zoo.ZOO[name].kind}) | " + " | ".join(cells) + " |")
    lines += [""] + [f"{i}. {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(zoo.ZOO))
    ap.add_argument("--pipelines", default=",".join(ALL))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "zoo.json"))
    ap.add_argument("--markdown", action="store_true", help="print the matrix of an existing --out file and exit")
    a = ap.parse_args()
    if a.markdown:
        import json

        print(markdown(json.loads(Path(a.out).read_text())["models"]))
        return 0
    out = header("zoo.py")
    out["tolerance"] = zoo.TOLERANCE
    models = a.models.split(",")
    results, runs = {}, []
    if set(models) < set(zoo.ZOO) and Path(a.out).exists():  # a subset: merged into the existing file
        import json

        old = json.loads(Path(a.out).read_text())
        results, runs = old["models"], old.get("runs", [{"command": old.get("command"), "models": "all"}])
    runs.append({"command": out["command"], "models": "all" if len(models) == len(zoo.ZOO) else models})
    out["runs"] = runs
    for name in models:
        arch = zoo.ZOO[name]
        row = results.setdefault(name, {})
        for p in a.pipelines.split(","):
            if p != TORCH and p not in zoo.PIPELINES[arch.kind]:
                continue
            if p == TORCH and arch.held_out:  # the third wave: the Optimum exports only
                continue
            r = zoo.check_torch(name) if p == TORCH else zoo.check(arch.onnx, p, arch.kind)
            row[p] = r
            print(f"{name:<11} {p:<18} {r['status']:<8} {r.get('cosine', '')} {r.get('reason') or ''}", flush=True)
    out["models"] = {n: results[n] for n in zoo.ZOO if n in results}
    write_json(a.out, out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
