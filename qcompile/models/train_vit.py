"""Train the Fashion-MNIST ViT on CPU and write the checkpoint and its ONNX export.

    python -m qcompile.models.train_vit [--epochs 10] [--out qcompile/models/assets]

Trains on train[0:55000] (AdamW, cosine schedule, light augmentation), evaluates on the
10k test set, and records the test top-1 inside the checkpoint and in ``vit_fmnist.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from qcompile.models import ASSETS
from qcompile.models.data import fashion_mnist
from qcompile.models.vit import ViT, ViTConfig, export_onnx, save_checkpoint


def evaluate(model, x, y, batch=500) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(torch.from_numpy(x[i:i + batch])).argmax(-1).numpy() == y[i:i + batch]).sum()
    return float(correct) / len(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shift", type=int, default=0, help="random +-N pixel shift augmentation (0: off)")
    ap.add_argument("--no-flip", action="store_true", help="disable random horizontal flips")
    ap.add_argument("--out", type=Path, default=ASSETS)
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    xtr, ytr = fashion_mnist("train")
    xte, yte = fashion_mnist("test")
    model = ViT(ViTConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.05)
    steps = a.epochs * math.ceil(len(xtr) / a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps, pct_start=0.1)
    t0 = time.time()
    for ep in range(a.epochs):
        model.train()
        perm = rng.permutation(len(xtr))
        bar = tqdm(range(0, len(xtr), a.batch), desc=f"epoch {ep + 1}/{a.epochs}", leave=False)
        for i in bar:
            idx = perm[i:i + a.batch]
            xb = torch.from_numpy(xtr[idx])
            if not a.no_flip:
                flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
                xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            if a.shift:
                dx, dy = (int(v) for v in rng.integers(-a.shift, a.shift + 1, size=2))
                xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(model(xb), torch.from_numpy(ytr[idx]), label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        acc = evaluate(model, xte, yte)
        print(f"epoch {ep + 1}: test top-1 {acc * 100:.2f}%  ({time.time() - t0:.0f} s)", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    meta = {"test_top1": acc, "epochs": a.epochs, "seed": a.seed, "train_seconds": round(time.time() - t0),
            "command": " ".join(["python -m qcompile.models.train_vit", *(sys.argv[1:] if argv is None else argv)])}
    save_checkpoint(model, a.out / "vit_fmnist.pt", **meta)
    export_onnx(model, a.out / "vit_fmnist.onnx")
    (a.out / "vit_fmnist.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
