"""``benchmarks/plots.py`` draws the committed benchmark JSON: the series it plots are the
JSON's numbers, and each PNG is written."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import plots  # noqa: E402 - benchmarks/ is not a package
RESULTS = ROOT / "benchmarks" / "results"


def test_series_are_the_json_numbers():
    kv = json.loads((RESULTS / "kv_cache.json").read_text())
    series = plots.kv_series(kv)
    assert dict(series["pre-rope"])[4] == kv["results"]["pre-rope_4bit"]["perplexity"]
    assert dict(series["pre-rope + 1 % outliers"])[3] == kv["results"]["pre-rope_3bit_1pct_outliers"]["perplexity"]
    assert [b for b, _ in series["per-token"]] == [2, 3, 4]
    speed = json.loads((RESULTS / "speed.json").read_text())
    ratio = plots.speed_series(speed)["vit_b1"]["qcompile_int_only"]
    assert ratio == speed["models"]["vit_b1"]["ms"]["qcompile_int_only"] / speed["models"]["vit_b1"]["ms"]["ort_fp32"]
    bfp = json.loads((RESULTS / "bfp.json").read_text())
    want = {k: f for k, f in bfp["gap_closed"]["keys b32"]["fraction_closed_by"].items() if "recent" not in k}
    assert plots.bfp_series(bfp)["keys b32"] == want and "rotate" in want


def test_pngs_are_written(tmp_path):
    assert plots.main(["--out", str(tmp_path)]) == 0
    for name in plots.PLOTS:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
