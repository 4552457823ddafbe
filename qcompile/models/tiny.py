"""Tiny random-weight transformer blocks for unit and golden-IR tests (never for accuracy claims).

They exist to produce every graph idiom canonicalization must recognise, from both frontends:
GELU (erf / tanh, fused op or decomposed), LayerNorm (fused or decomposed mean/variance),
RMSNorm (decomposed, as HF LLaMA writes it), softmax attention with and without a mask,
RoPE (rotate-half or interleaved, full or partial), MHA and GQA.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn as nn


def gelu(x, form: str):
    if form == "erf":
        return nn.functional.gelu(x)
    if form == "tanh":
        return nn.functional.gelu(x, approximate="tanh")
    if form == "erf_decomposed":
        return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if form == "tanh_decomposed":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    raise ValueError(form)


class DecomposedLayerNorm(nn.LayerNorm):
    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        var = (x - mu).pow(2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias


class RMSNorm(nn.Module):
    """HF LLaMA's RMSNorm, decomposed."""

    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(1 + 0.1 * torch.randn(d)), eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


class TinyEncoder(nn.Module):
    """One post-norm BERT layer on hidden states ``x`` [B,T,D] with a 0/1 ``mask`` [B,T]."""

    def __init__(self, d=32, heads=4, gelu_form="erf", ln="fused", masked=True):
        super().__init__()
        norm = nn.LayerNorm if ln == "fused" else DecomposedLayerNorm
        self.h, self.gelu_form, self.masked = heads, gelu_form, masked
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1, self.ln2 = norm(d), norm(d)
        self.f1, self.f2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        for p in self.parameters():
            nn.init.normal_(p, std=0.2) if p.dim() > 1 else nn.init.normal_(p, mean=float(p.shape[0] == d) * 0, std=0.1)

    def forward(self, x, mask):
        b, t, d = x.shape
        split = lambda y: y.reshape(b, t, self.h, d // self.h).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        s = q @ k.transpose(-1, -2) / math.sqrt(d // self.h)
        if self.masked:
            s = s + (1.0 - mask[:, None, None, :]) * -10000.0
        a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(b, t, d)
        x = self.ln1(x + self.o(a))
        return self.ln2(x + self.f2(gelu(self.f1(x), self.gelu_form)))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rotate_interleaved(x):
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


class TinyDecoder(nn.Module):
    """One LLaMA layer on hidden states ``x`` [B,T,D] at ``positions`` [B,T] (causal, no cache)."""

    def __init__(self, d=32, heads=4, kv_heads=2, rope="half", rotary_frac=1.0, theta=10000.0):
        super().__init__()
        self.h, self.kvh, self.hd = heads, kv_heads, d // heads
        self.rope, self.rot = rope, int(self.hd * rotary_frac)
        self.q, self.k = nn.Linear(d, d, bias=False), nn.Linear(d, kv_heads * self.hd, bias=False)
        self.v, self.o = nn.Linear(d, kv_heads * self.hd, bias=False), nn.Linear(d, d, bias=False)
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)
        self.gate, self.up, self.down = nn.Linear(d, 2 * d, bias=False), nn.Linear(d, 2 * d, bias=False), nn.Linear(2 * d, d, bias=False)
        self.register_buffer("inv_freq", 1.0 / theta ** (torch.arange(0, self.rot, 2).float() / self.rot), persistent=False)

    def apply_rope(self, x, cos, sin):
        xr, xp = x[..., :self.rot], x[..., self.rot:]
        if self.rope == "half":
            xr = xr * cos + rotate_half(xr) * sin
        else:
            xr = xr * cos + rotate_interleaved(xr) * sin
        return torch.cat((xr, xp), dim=-1) if self.rot < self.hd else xr

    def forward(self, x, positions):
        b, t, d = x.shape
        f = positions[..., None].float() * self.inv_freq  # [B,T,rot/2]
        emb = torch.cat((f, f), -1) if self.rope == "half" else torch.repeat_interleave(f, 2, -1)
        cos, sin = emb.cos()[:, None], emb.sin()[:, None]
        h = self.n1(x)
        q = self.q(h).reshape(b, t, self.h, self.hd).transpose(1, 2)
        k = self.k(h).reshape(b, t, self.kvh, self.hd).transpose(1, 2)
        v = self.v(h).reshape(b, t, self.kvh, self.hd).transpose(1, 2)
        q, k = self.apply_rope(q, cos, sin), self.apply_rope(k, cos, sin)
        rep = self.h // self.kvh
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        causal = torch.triu(torch.full((t, t), float("-inf")), 1)
        a = (torch.softmax(s + causal, -1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.o(a)
        h = self.n2(x)
        return x + self.down(nn.functional.silu(self.gate(h)) * self.up(h))


def encoder_inputs(b=1, t=8, d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, t)
    mask[:, t - 2:] = 0
    return torch.randn(b, t, d, generator=g), mask


def decoder_inputs(b=1, t=8, d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, d, generator=g), torch.arange(t)[None].repeat(b, 1)


def export_onnx(module, inputs, path, names, dynamic_batch=False):
    """ONNX export (dynamo, opset 18) with named inputs, output ``y``, optionally symbolic batch."""
    kw = {}
    if dynamic_batch:
        n = torch.export.Dim("N", max=64)
        kw["dynamic_shapes"] = {k: {0: n} for k in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs, str(path), input_names=names, output_names=["y"], dynamo=True,
                          opset_version=18, verbose=False, **kw)
    return path
