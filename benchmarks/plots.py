"""Plots of the committed benchmark JSON (``benchmarks/results/*.json``) as PNGs.

    python benchmarks/plots.py            # -> benchmarks/results/plots/*.png

* ``kv_ppl_vs_bits.png``: SmolLM2-135M perplexity on *Emma* against the KV-cache bit width,
  one line per key mode (``kv_cache.json``), the float model and the +1 % / +3 % goals;
* ``bfp_gap_closed.png``: the share of the BFP12 -> BFP16 perplexity gap each K-sort variant
  closes, per cache and block size (``bfp.json`` -> ``gap_closed``), the goal at one half;
* ``speed_ratios.png``: each engine's latency over onnxruntime float32's, per model and
  batch (``speed.json``; below 1 is faster).

Each plot is drawn from the numbers in the JSON only: rerunning a benchmark and then this
script redraws it. Needs matplotlib (``pip install -e '.[plots]'``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def kv_series(data: dict) -> dict[str, list[tuple[int, float]]]:
    """``{key mode: [(bits, perplexity), ...]}`` for the plain configurations (2, 3, 4 bits,
    values at the same width, one sink), and pre-RoPE with 1 % outliers."""
    out: dict[str, list[tuple[int, float]]] = {}
    for name, r in data["results"].items():
        c = r.get("config") or {}
        if not c or set(c) - {"bits", "keys", "outliers"}:
            continue
        mode = c["keys"] + (" + 1 % outliers" if c.get("outliers") else "")
        out.setdefault(mode, []).append((int(c["bits"]), float(r["perplexity"])))
    return {k: sorted(v) for k, v in out.items()}


def bfp_series(data: dict) -> dict[str, dict[str, float]]:
    """``{"keys b16": {variant: fraction closed}, ...}``: the variants at BFP12's bytes (a float16
    window of recent positions costs bytes of its own and is left out)."""
    return {cell: {k: f for k, f in v["fraction_closed_by"].items() if "recent" not in k}
            for cell, v in data["gap_closed"].items()}


def speed_series(data: dict) -> dict[str, dict[str, float]]:
    """``{model_batch: {engine: latency / onnxruntime float32 latency}}``."""
    return {m: {e: ms / v["ms"]["ort_fp32"] for e, ms in v["ms"].items() if e != "ort_fp32"}
            for m, v in data["models"].items() if "ort_fp32" in v.get("ms", {})}


def plot_kv(data: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    base = float(data["results"]["float"]["perplexity"])
    top = base * 2.0  # the per-token 2-bit point is far above: marked at the edge with its value
    for mode, pts in kv_series(data).items():
        line, = ax.plot([b for b, _ in pts], [min(p, top) for _, p in pts], marker="o", label=mode)
        for b, p in pts:
            if p > top:
                ax.annotate(f"{p:.0f} (off scale)", (b, top), textcoords="offset points", xytext=(8, -4),
                            fontsize=7, color=line.get_color())
    ax.axhline(base, color="k", lw=1, label=f"float ({base:.2f})")
    for frac, ls in ((0.01, ":"), (0.03, "--")):
        ax.axhline(base * (1 + frac), color="grey", lw=0.8, ls=ls, label=f"float + {frac:.0%}")
    ax.set_ylim(base * 0.98, top * 1.02)
    ax.set_xticks([2, 3, 4])
    ax.set_xlabel("KV-cache bits (keys and values)")
    ax.set_ylabel("perplexity")
    ax.set_title(f"{data['model'].split(' (')[0]}: KV-cache quantization ({data['metric']})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _grouped_bars(groups: dict[str, dict[str, float]], ylabel: str, title: str, line: tuple, path: Path,
                  width_in: float = 7.2, legend_outside: bool = False) -> None:
    """One bar per (group, series) from ``{group: {series: value}}``, a horizontal reference
    ``line = (y, label, style)``."""
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(groups)
    series = sorted({k for g in groups.values() for k in g})
    fig, ax = plt.subplots(figsize=(width_in, 4.2))
    width = 0.8 / len(series)
    colors = plt.get_cmap("tab20").colors  # distinct colours for up to 20 series (the default cycle has 10)
    for i, k in enumerate(series):
        ax.bar(np.arange(len(names)) + i * width, [groups[n].get(k, np.nan) for n in names], width, label=k,
               color=colors[i % len(colors)])
    ax.axhline(line[0], color="k", lw=1, ls=line[2], label=line[1])
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if legend_outside:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_bfp(data: dict, path: Path) -> None:
    _grouped_bars(bfp_series(data), "fraction of the BFP12 -> BFP16 gap closed",
                  "K-sort or a Hadamard rotation before BFP12 (SmolLM2-135M perplexity)", (0.5, "goal: half the gap", "--"), path,
                  width_in=9.0, legend_outside=True)


def plot_speed(data: dict, path: Path) -> None:
    _grouped_bars(speed_series(data), "latency / onnxruntime float32 (lower is faster)",
                  f"CPU latency, {data['threads']} threads (speed.json)", (1.0, "onnxruntime float32", "-"), path)


PLOTS = {"kv_ppl_vs_bits.png": ("kv_cache.json", plot_kv),
         "bfp_gap_closed.png": ("bfp.json", plot_bfp),
         "speed_ratios.png": ("speed.json", plot_speed)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--out", default=str(RESULTS / "plots"))
    a = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for png, (src, draw) in PLOTS.items():
        draw(json.loads((Path(a.results) / src).read_text()), out / png)
        print(out / png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
