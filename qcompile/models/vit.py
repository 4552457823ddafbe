"""A DeiT-style Vision Transformer for 28x28 grayscale images.

Patch embedding (a 4x4 stride-4 convolution), a class token, learned positional
embeddings, pre-norm blocks (LayerNorm -> multi-head softmax attention -> residual,
LayerNorm -> GELU MLP -> residual), a final LayerNorm and a linear head on the class token.
Attention is written out (QK^T * scale -> softmax -> V) so exported graphs show the idiom.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn


@dataclass(frozen=True)
class ViTConfig:
    image: int = 28
    patch: int = 4
    channels: int = 1
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp: int = 256
    classes: int = 10

    @property
    def tokens(self) -> int:
        return (self.image // self.patch) ** 2 + 1


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, 1.0 / math.sqrt(dim // heads)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, mlp), nn.Linear(mlp, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, cfg: ViTConfig = ViTConfig()):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Conv2d(cfg.channels, cfg.dim, cfg.patch, stride=cfg.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.tokens, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.classes)

    def forward(self, pixels):
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])


def save_checkpoint(model: ViT, path, **meta) -> None:
    torch.save({"config": asdict(model.cfg), "state_dict": model.state_dict(), **meta}, path)


def load_checkpoint(path) -> tuple[ViT, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    model = ViT(ViTConfig(**ck["config"]))
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck


def export_onnx(model: ViT, path, batch: int | None = None) -> None:
    """Export to ONNX (opset 18) with input ``pixels`` [N,1,28,28] and output ``logits``.
    ``batch=None`` keeps the batch dimension symbolic (``N``)."""
    x = torch.zeros(batch or 2, model.cfg.channels, model.cfg.image, model.cfg.image)
    dyn = None if batch else {"pixels": {0: torch.export.Dim("N", min=1, max=1024)}}
    torch.onnx.export(model, (x,), str(path), input_names=["pixels"], output_names=["logits"],
                      dynamic_shapes=dyn, dynamo=True, opset_version=18, external_data=False, verbose=False)
