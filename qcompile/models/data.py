"""Datasets with fixed splits.

Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` package (IDX files under
``/usr/share/datasets/fashion-mnist``; ``qcompile assets fetch`` installs it).
Splits never overlap: the model trains on train[0:55000], calibration samples come from
train[55000:60000] (never seen in training), evaluation is the 10k test set.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from qcompile.errors import QCompileError

FMNIST_DIR = Path(os.environ.get("QCOMPILE_FMNIST_DIR", "/usr/share/datasets/fashion-mnist"))
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel statistics
TRAIN_END = 55000           # train[:55000] trains, train[55000:] calibrates


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images float32 [N,1,28,28] normalized, labels int64 [N])`` for
    ``split`` in ``train`` (55k), ``calib`` (5k held out of train) or ``test`` (10k)."""
    stem = {"train": "train", "calib": "train", "test": "t10k"}.get(split)
    if stem is None:
        raise QCompileError(f"unknown Fashion-MNIST split '{split}'", hint="use train, calib or test")
    img, lab = FMNIST_DIR / f"{stem}-images-idx3-ubyte.gz", FMNIST_DIR / f"{stem}-labels-idx1-ubyte.gz"
    if not img.exists():
        raise QCompileError(f"Fashion-MNIST not found in {FMNIST_DIR}",
                            hint="run `qcompile assets fetch` (installs Debian's dataset-fashion-mnist)")
    x = ((_idx(img).astype(np.float32) / 255.0 - MEAN) / STD)[:, None]
    y = _idx(lab).astype(np.int64)
    if split == "train":
        x, y = x[:TRAIN_END], y[:TRAIN_END]
    elif split == "calib":
        x, y = x[TRAIN_END:], y[TRAIN_END:]
    return np.ascontiguousarray(x), y
