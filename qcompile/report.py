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
    (out_dir / "report.md").write_text(markdown(rep))


def markdown(rep: dict) -> str:
    m, b = rep["model"], rep["build"]
    lines = [f"# qcompile report: {m['name']}", "",
             f"* pipeline `{rep['pipeline']}`, target `{b['target']}` ({', '.join(f'{k} {len(v) if isinstance(v, list) else v}' for k, v in b['info'].items())})",
             f"* inputs: " + ", ".join(f"`{i['name']}` {i['dtype']}{list(i['shape'])}" for i in m["inputs"]),
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
            lines += ["", f"## Integer-only ({p['name']})", "",
                      f"* {ops['integer']} ops integer, {len(ops['float'])} float"
                      + (f": {', '.join(ops['float'])}" if ops["float"] else ""),
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
    if rep.get("evaluation_skipped"):
        lines += ["", f"Evaluation skipped: {rep['evaluation_skipped']}."]
    lines += ["", "Times (s): " + ", ".join(f"{k} {v:.2f}" for k, v in rep["seconds"].items() if k != "each_pass"), ""]
    return "\n".join(lines)


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


def _kv_lines(n: dict) -> list[str]:
    if "block" in n:  # the bfp pass
        fmt = lambda f: "float (kept)" if f == "none" else f.upper()  # noqa: E731
        return [f"{n['layers']} layers x {n['kv_heads']} KV heads x head_dim {n['head_dim']}: keys {fmt(n['keys'])}"
                + (" before RoPE (RoPE applied after decoding)" if n["pre_rope"] else "")
                + f", values {fmt(n['values'])}; blocks of {n['block']} along head_dim, packed significands "
                  f"+ one exponent byte per block",
                f"float16 sinks: the first {n['sinks']} cache position(s)" if n["sinks"] else "no float sinks",
                _cache_bytes_line(n, "sinks")]
    keys = {"pre-rope": "keys per channel before RoPE (RoPE applied after dequantization)",
            "post-rope": "keys per channel after RoPE", "per-token": "keys per token after RoPE"}[n["keys"]]
    out = [f"{n['layers']} layers x {n['kv_heads']} KV heads x head_dim {n['head_dim']}: {keys}, {n['bits']}-bit; "
           f"values per token, {n['value_bits']}-bit; packed codes"
           + (f"; per-channel range: {n['clip_percentile']}" + (" percentile" if isinstance(n["clip_percentile"], float) else "")
              if n["clip_percentile"] else ""),
           f"float16 sinks: the first {n['sinks']} cache position(s); outliers kept exactly: "
           + (f"{n['outliers_per_token_row']} per token row ({n['outliers'] * 100:g} %)" if n["outliers_per_token_row"]
              else "none"),
           _cache_bytes_line(n, "sinks, per-channel constants")]
    return out


def _ksort_lines(n: dict) -> list[str]:
    what = " and ".join(w for w, on in (("keys (W_q, W_k, RoPE tables)", n["keys"]), ("values (W_v, W_o)", n["values"])) if on)
    return [f"channels of {n['layers']} layers x {n['kv_heads']} KV heads reordered from {n['source']} statistics, "
            f"keys by {n['criterion']}: {what}; {n['channels_moved']} channels moved",
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
    return out


def _island_lines(islands: list[dict]) -> list[str]:
    total = sum(i.get("flops_share", 0) for i in islands)
    return [f"{len(islands)} float island(s), {total * 100:.3g} % of the model's FLOPs, dequantized in and "
            "requantized (int16) out"] + [f"float island `{i['op']}` at `{i['binding']}` "
                                          f"({i.get('flops_share', 0) * 100:.3g} % of FLOPs): {i['why']}" for i in islands]
