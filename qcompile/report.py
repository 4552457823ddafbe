"""report.json (machine-readable) and report.md (for people), plus the console summary."""
from __future__ import annotations

import json

import tvm
from tvm import relax


def weight_bytes(mod) -> int:
    """Bytes of distinct tensor constants in the module's Relax functions."""
    seen = {}

    def visit(e):
        if isinstance(e, tvm.ir.GenericConst):
            seen.setdefault(e, e.value.numpy().nbytes)  # objects hash by identity

    for _, f in mod.functions.items():
        if isinstance(f, relax.Function):
            relax.analysis.post_order_visit(f.body, visit)
    return int(sum(seen.values()))


def _fmt_ops(delta: dict) -> str:
    return ", ".join(f"{k} {v:+d}" for k, v in delta.items()) or "no op-count change"


def write(out_dir, rep: dict) -> None:
    (out_dir / "report.json").write_text(json.dumps(rep, indent=2, sort_keys=False) + "\n")
    md = markdown(rep)
    (out_dir / "report.md").write_text(md)
    (out_dir / "report.html").write_text(html(md, rep))


def markdown(rep: dict) -> str:
    m, b = rep["model"], rep["build"]
    lines = [f"# qcompile report: {m['name']}", "",
             f"* pipeline `{rep['pipeline']}`, target `{b['target']}` ({', '.join(f'{k} {len(v) if isinstance(v, list) else v}' for k, v in b['info'].items())})",
             f"* inputs: " + ", ".join(f"`{i['name']}` {i['dtype']}{list(i['shape'])}" for i in m["inputs"]),
             *([f"* {m['quantized']} (`--quantized keep|float`)"] if m.get("quantized") else []),
             f"* weights: {rep['memory']['weight_bytes_before']:,} B before, {rep['memory']['weight_bytes_after']:,} B after",
             f"* artifact: {', '.join(b['files'])} ({b['artifact_bytes']:,} B), built in {rep['seconds']['build']:.1f} s",
             "", "## Passes", "", "| # | pass | time (s) | op changes | IR |", "|---|---|---|---|---|"]
    for p in rep["passes"]:
        lines.append(f"| {p['index']} | {p['name']} | {_pass_seconds(rep, p):.2f} | {_fmt_ops(p['op_changes'])} | "
                     f"`ir/{p['ir_file']}` |")
    if rep["passes"]:
        lines += ["", "Ops after the pipeline: " + ", ".join(f"{k} {v}" for k, v in rep["ops_after"].items())]
    for p in rep["passes"]:
        ops = p["notes"].get("ops")
        if ops:
            why = []  # what the float ops are there for
            if ops["float"] and not p["notes"].get("int_io"):
                why.append("quantizing the model's input and dequantizing its output (`--int-io` moves them "
                           "to the host)")
            if p["notes"].get("float_islands"):
                why.append("the float islands below (`float_islands=true`)")
            lines += ["", f"## Integer-only ({p['name']})", "",
                      f"* {ops['integer']} ops integer, {len(ops['float'])} float"
                      + (f": {', '.join(ops['float'])}" if ops["float"] else "")
                      + (f"; float for {' and '.join(why)}" if why else ""),
                      f"* integer I/O: {p['notes'].get('int_io')}; scales: `{json.dumps(p['notes'].get('io'))}`",
                      f"* overflow bounds checked: {p['notes']['overflow']['checked']}, tightest: "
                      f"`{json.dumps(p['notes']['overflow']['tightest'])}`"]
    for p in rep["passes"]:
        for title, rows in technique_lines(p["notes"]):
            lines += ["", f"## {title} ({p['name']})", ""] + [f"* {r}" for r in rows]
    ev = rep.get("evaluation")
    if ev:
        lines += ["", f"## Against the float reference ({ev['reference']}, {ev['samples']} samples, batch {ev['batch']})",
                  "", "| output | max abs err | cosine | top-1 agreement | top-1 accuracy (artifact / reference) |",
                  "|---|---|---|---|---|"]
        for name, o in ev["outputs"].items():
            t1 = f"{o['top1_agreement'] * 100:.2f} %" if "top1_agreement" in o else "-"
            acc = (f"{o['top1_accuracy'] * 100:.2f} % / {o['reference_top1_accuracy'] * 100:.2f} %"
                   if "top1_accuracy" in o else "-")
            lines.append(f"| {name} | {o['max_abs_err']:.3g} | {o['cosine']:.7f} | {t1} | {acc} |")
        lines += _layer_lines(ev.get("layers"))
        if ev.get("layers_skipped"):
            lines += ["", f"Error per block not measured: {ev['layers_skipped']}."]
    if rep.get("evaluation_skipped"):
        lines += ["", f"Evaluation skipped: {rep['evaluation_skipped']}."]
    lines += ["", "Times (s): " + ", ".join(f"{k} {v:.2f}" for k, v in rep["seconds"].items() if k != "each_pass"), ""]
    return "\n".join(lines)


LAYER_TITLE = "## Error per block"


def _layer_lines(layers: dict | None) -> list[str]:
    if not layers:
        return []
    out = ["", f"{LAYER_TITLE} (`{layers['pass']}` against the float model before it, same samples)", "",
           f"Each block's output (a residual add: bindings of `ir/{layers['ir_file']}`), dequantized, against the "
           "same tensor of the float model: the error that has accumulated by that block.", "",
           "| # | block | binding | cosine | relative error |", "|---|---|---|---|---|"]
    for i, b in enumerate(layers["blocks"], start=1):
        out.append(f"| {i} | {b['label'].split(' ', 1)[1]} | `{b['binding']}` | {b['cosine']:.6f} | "
                   f"{b['relative_error'] * 100:.3g} % |")
    return out


def _pass_seconds(rep: dict, p: dict) -> float:
    return rep["seconds"]["each_pass"][f"{p['index']:02d}_{p['name']}"]


def summary(rep: dict, out_dir) -> str:
    b = rep["build"]
    rows = [f"qcompile: {rep['model']['name']}  pipeline={rep['pipeline']}  target={b['target']}"]
    for p in rep["passes"]:
        rows.append(f"  {p['index']:>2} {p['name']:<16} {_pass_seconds(rep, p):7.2f} s  {_fmt_ops(p['op_changes'])}")
    for p in rep["passes"]:
        ops = p["notes"].get("ops")
        if ops:
            fl = f" (float: {', '.join(ops['float'])})" if ops["float"] else ""
            rows.append(f"  {p['name']}: {ops['integer']} integer ops, {len(ops['float'])} float{fl}; "
                        f"integer I/O {'on' if p['notes'].get('int_io') else 'off'}")
        for _, lines in technique_lines(p["notes"]):
            rows += [f"  {p['name']}: {r}" for r in lines]
    if b["info"].get("verified_integer_only"):
        rows.append("  int-accel verifier: no floating point in the lowered code")
    rows.append(f"  build {rep['seconds']['build']:.1f} s -> {out_dir}/{{{','.join(b['files'])}}} ({b['artifact_bytes'] / 1e6:.1f} MB)")
    ev = rep.get("evaluation")
    if ev:
        for name, o in ev["outputs"].items():
            t1 = f", top-1 agreement {o['top1_agreement'] * 100:.2f} %" if "top1_agreement" in o else ""
            if "top1_accuracy" in o:
                t1 += (f", top-1 accuracy {o['top1_accuracy'] * 100:.2f} % "
                       f"(reference {o['reference_top1_accuracy'] * 100:.2f} %)")
            rows.append(f"  vs {ev['reference']} on {ev['samples']} samples: {name} cosine {o['cosine']:.7f}, "
                        f"max |err| {o['max_abs_err']:.3g}{t1}")
        layers = ev.get("layers")
        if layers:
            worst = min(layers["blocks"], key=lambda b: b["cosine"])
            rows.append(f"  error per block ({len(layers['blocks'])} blocks, {layers['pass']} against the float model): "
                        f"cosine {layers['blocks'][0]['cosine']:.6f} after block 1, lowest {worst['cosine']:.6f} at "
                        f"block {worst['label']} (plot: {out_dir}/report.html)")
        elif ev.get("layers_skipped"):
            rows.append(f"  error per block not measured: {ev['layers_skipped']}")
    if rep.get("evaluation_skipped"):  # said, not silent: --eval-data was given and not used
        rows.append(f"  evaluation skipped: {rep['evaluation_skipped']}")
    rows.append(f"  report: {out_dir}/report.md")
    return "\n".join(rows)


def _rotation_lines(n: dict) -> list[str]:
    out = []
    for r in n["regions"]:
        norm = "LayerNorm: stream centred, LayerNorm -> scale-free RMSNorm" if r["centered"] else "RMSNorm"
        out.append(f"residual stream {r['width']}: {r['rotation']}; {norm}, {r['norms_folded']} norms folded into "
                   f"{r['readers']} readers; writers {', '.join(f'{k} {v}' for k, v in r['writers'].items())}")
    oh = n["online_hadamard"]
    out.append(f"online Hadamard before {oh['down_projections']} down projections"
               + (f" (sizes {', '.join(f'{k} = {v}' for k, v in oh['sizes'].items())})" if oh["sizes"] else ""))
    v = n.get("value_rotation", {})
    if v:
        out.append(f"head-wise V rotation in {v['applied']} attentions"
                   + (" (the value cache is stored rotated)" if v.get("value_cache_rotated") else "")
                   + (f"; skipped: {'; '.join(v['skipped'])}" if v.get("skipped") else ""))
    out += [f"left unrotated (the model there is unchanged): {why}" for why in n.get("streams_left_unrotated", [])]
    out.append(f"not done: {n['not_done']}")
    return out


def _cache_bytes_line(n: dict, fixed_what: str) -> str:
    return (f"bytes per token, all layers: {n['float16_bytes_per_token']} float16 ({n['float32_bytes_per_token']} as "
            f"exported, float32) -> {n['bytes_per_token']} + {n['fixed_bytes']} fixed ({fixed_what}); "
            f"{n['bytes_per_token_at_512']:.1f} at 512 tokens = 1/{n['ratio_to_float16_at_512']:.2f} of float16")


def _recent(n: dict) -> str:
    return f"; float16 recent window: the last {n['recent']} position(s)" if n.get("recent") else ""


def _kv_lines(n: dict) -> list[str]:
    if "block" in n:  # the bfp pass
        fmt = lambda f: "float (kept)" if f == "none" else f.upper()  # noqa: E731
        return [f"{n['layers']} layers x {n['kv_heads']} KV heads x head_dim {n['head_dim']}: keys {fmt(n['keys'])}"
                + (" before RoPE (RoPE applied after decoding)" if n["pre_rope"] else "")
                + f", values {fmt(n['values'])}; blocks of {n['block']} along head_dim, packed significands "
                  f"+ one exponent byte per block",
                (f"float16 sinks: the first {n['sinks']} cache position(s)" if n["sinks"] else "no float sinks")
                + _recent(n),
                _cache_bytes_line(n, "sinks" + (", recent window" if n.get("recent") else ""))]
    keys = {"pre-rope": "keys per channel before RoPE (RoPE applied after dequantization)",
            "post-rope": "keys per channel after RoPE", "per-token": "keys per token after RoPE"}[n["keys"]]
    out = [f"{n['layers']} layers x {n['kv_heads']} KV heads x head_dim {n['head_dim']}: {keys}, {n['bits']}-bit; "
           f"values per token, {n['value_bits']}-bit; packed codes"
           + (f"; per-channel range: {n['clip_percentile']}" + (" percentile" if isinstance(n["clip_percentile"], float) else "")
              if n["clip_percentile"] else ""),
           f"float16 sinks: the first {n['sinks']} cache position(s){_recent(n)}; outliers kept exactly: "
           + (f"{n['outliers_per_token_row']} per token row ({n['outliers'] * 100:g} %)" if n["outliers_per_token_row"]
              else "none"),
           _cache_bytes_line(n, "sinks, " + ("recent window, " if n.get("recent") else "") + "per-channel constants")]
    return out


def _ksort_lines(n: dict) -> list[str]:
    what = " and ".join(w for w, on in (("keys (W_q, W_k, RoPE tables)", n["keys"]), ("values (W_v, W_o)", n["values"])) if on)
    return [f"channels of {n['layers']} layers x {n['kv_heads']} KV heads reordered from {n['source']} statistics, "
            f"keys by {n['criterion']}, values by {n.get('value_criterion', 'value')}: {what}; "
            f"{n['channels_moved']} channels moved",
            f"RoPE ({n['rope']}): {n['rope_handling']}"]


def _weight_lines(n: dict) -> list[str]:
    return [f"{n['linear_layers']} linear layers: weights {n['weights']}, matmul inputs {n['activations']} "
            f"(blocks of {n['block']} along input channels); weight bytes {n['float32_weight_bytes']:,} float32 -> "
            f"{n['stored_weight_bytes']:,}" + (f"; skipped: {'; '.join(n['skipped'])}" if n["skipped"] else "")]


def technique_lines(notes: dict) -> list[tuple[str, list[str]]]:
    """(section title, lines) of the technique notes a pass left."""
    out = []
    if "regions" in notes:
        out.append(("Rotation", _rotation_lines(notes)))
    if "k_sort" in notes:
        out.append(("Channel reordering", _ksort_lines(notes["k_sort"])))
    if "kv_cache" in notes:
        out.append(("KV cache", _kv_lines(notes["kv_cache"])))
    if "weights" in notes:
        out.append(("Block formats for weights and matmul inputs", _weight_lines(notes["weights"])))
    if notes.get("float_islands"):
        out.append(("Float islands", _island_lines(notes["float_islands"])))
    if "linears_int8" in notes:
        out.append(("Int8 linear layers", _w8a8_lines(notes)))
    return out


def _w8a8_lines(n: dict) -> list[str]:
    kept = [f"{what} {n[key]}" for what, key in (("output head", "kept_float_head"),
                                                 ("int32 overflow risk", "kept_float_overflow")) if n[key]]
    return [f"{n['linears_int8']} linear layers as int8 x int8 -> int32 matmuls (W{n['w_bits']}A{n['a_bits']}, weights per "
            f"output channel, {n['activation_quantizations']} activations quantized per token at run time); weight bytes "
            f"{n['weight_bytes_float']:,} float32 -> {n['weight_bytes_int8']:,}"
            + (f"; left float: {', '.join(kept)}" if kept else "")]


def _island_lines(islands: list[dict]) -> list[str]:
    total = sum(i.get("flops_share", 0) for i in islands)
    return [f"{len(islands)} float island(s), {total * 100:.3g} % of the model's FLOPs, dequantized in and "
            "requantized (int16) out"] + [f"float island `{i['op']}` at `{i['binding']}` "
                                          f"({i.get('flops_share', 0) * 100:.3g} % of FLOPs): {i['why']}" for i in islands]


# ----------------------------------------------------------------------------- report.html


def layer_plot_png(layers: dict) -> bytes | None:
    """The per-block error as a PNG (relative error and cosine against the block), or None
    without matplotlib (``pip install 'qcompile[plots]'``)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import io

    blocks = layers["blocks"]
    x = list(range(1, len(blocks) + 1))
    fig, (a, b) = plt.subplots(2, 1, figsize=(max(6.0, 0.35 * len(x)), 5.5), sharex=True)
    a.plot(x, [r["relative_error"] * 100 for r in blocks], "o-", color="tab:red")
    a.set_ylabel("relative error (%)")
    a.set_title(f"{layers['pass']}: error per block against the float model")
    b.plot(x, [r["cosine"] for r in blocks], "o-", color="tab:blue")
    b.set_ylabel("cosine similarity")
    b.set_xticks(x, [r["label"] for r in blocks], rotation=60, ha="right", fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _inline(text: str) -> str:
    import html as h
    import re

    parts = re.split(r"(`[^`]*`)", text)
    return "".join(f"<code>{h.escape(p[1:-1])}</code>" if p.startswith("`") and p.endswith("`") and len(p) > 1
                   else h.escape(p) for p in parts)


def html(md: str, rep: dict) -> str:
    """report.md as one self-contained HTML page, with the per-block plot embedded (PNG)."""
    import base64

    layers = (rep.get("evaluation") or {}).get("layers")
    plot = layer_plot_png(layers) if layers else None
    body, table, bullets = [], False, False

    def close():
        nonlocal table, bullets
        if table:
            body.append("</table>")
        if bullets:
            body.append("</ul>")
        table = bullets = False

    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-: ") for c in cells):
                continue
            if not table:
                close()
                body.append("<table>")
                table = True
                body.append("<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in cells) + "</tr>")
            else:
                body.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in cells) + "</tr>")
            continue
        if line.startswith("* "):
            if not bullets:
                close()
                body.append("<ul>")
                bullets = True
            body.append(f"<li>{_inline(line[2:])}</li>")
            continue
        close()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            if line.startswith(LAYER_TITLE):
                body.append(f'<p><img alt="error per block" src="data:image/png;base64,'
                            f'{base64.b64encode(plot).decode()}"></p>' if plot else
                            "<p>(no plot: matplotlib is not installed; <code>pip install 'qcompile[plots]'</code>)</p>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    close()
    title = _inline(md.splitlines()[0].lstrip("# ")) if md else "qcompile report"
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
             "code{background:#f4f4f4}img{max-width:100%}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title><style>{style}</style>"
            f"</head><body>\n" + "\n".join(body) + "\n</body></html>\n")
