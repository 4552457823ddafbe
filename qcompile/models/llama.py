"""A LLaMA-family decoder with the KV cache as explicit inputs and outputs.

One forward step takes ``input_ids [B, T]``, ``attention_mask [B, P+T]`` (1 = attend),
``position_ids [B, T]`` and, per layer, ``past_key_values.N.key/value [B, KV, P, D]``; it
returns ``logits [B, T, V]`` and ``present.N.key/value [B, KV, P+T, D]`` — the layout of
exported Hugging Face decoders. Prefill is a step with ``P = 0``; decode is ``T = 1``;
chunked prefill is anything between.

The graph is written so that every reshape has a static shape (``B`` and ``T`` fixed at
export, only the past length symbolic), which TVM's ONNX importer needs:

* GQA groups the *queries* (``[B, H, T, D] -> [B, KV, G*T, D]``) instead of repeating the
  keys, so attention is one ``softmax(q kᵀ · s + mask) v`` per KV head;
* the causal mask comes from positions, not from a ``range`` over the sequence: key ``j``
  is visible to query ``i`` iff ``attention_mask[j] = 1`` and
  ``cumsum(attention_mask)[j] - 1 <= position_ids[i]``;
* RoPE's angles come from ``position_ids``; the rotate-half form (HF LLaMA);
* RMSNorm is HF's decomposed form, which canonicalization recognizes.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import torch
import torch.nn as nn


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    vocab: int = 49152
    hidden: int = 576
    intermediate: int = 1536
    layers: int = 30
    heads: int = 9
    kv_heads: int = 3
    head_dim: int = 64
    rope_theta: float = 100000.0
    rms_eps: float = 1e-5
    tied: bool = True
    # variants other decoders use (tests of the KV-cache analysis): RoPE form, partial rotary,
    # q/k/v projection bias (Qwen2), per-head q/k RMSNorm before RoPE (Qwen3)
    rope: str = "half"        # "half" (rotate_half) or "interleaved" (pairs 2i, 2i+1)
    rotary_dim: int = 0       # 0: the whole head_dim
    qkv_bias: bool = False
    qk_norm: bool = False

    @classmethod
    def from_hf(cls, c) -> "LlamaConfig":
        rope = getattr(c, "rope_parameters", None) or {}
        return cls(vocab=c.vocab_size, hidden=c.hidden_size, intermediate=c.intermediate_size,
                   layers=c.num_hidden_layers, heads=c.num_attention_heads, kv_heads=c.num_key_value_heads,
                   head_dim=getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
                   rope_theta=float(rope.get("rope_theta", getattr(c, "rope_theta", 10000.0))),
                   rms_eps=float(c.rms_norm_eps), tied=bool(c.tie_word_embeddings))


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rope(x, cos, sin, c: LlamaConfig):
    r = c.rotary_dim or c.head_dim
    if r == c.head_dim and c.rope == "half":
        return x * cos + rotate_half(x) * sin
    xr = x[..., :r]
    if c.rope == "half":
        rot = rotate_half(xr)
    else:
        rot = torch.stack((-xr[..., 1::2], xr[..., 0::2]), dim=-1).reshape(xr.shape)
    out = xr * cos + rot * sin
    return out if r == c.head_dim else torch.cat([out, x[..., r:]], dim=-1)


class Attention(nn.Module):
    def __init__(self, c: LlamaConfig):
        super().__init__()
        self.c = c
        self.q_proj = nn.Linear(c.hidden, c.heads * c.head_dim, bias=c.qkv_bias)
        self.k_proj = nn.Linear(c.hidden, c.kv_heads * c.head_dim, bias=c.qkv_bias)
        self.v_proj = nn.Linear(c.hidden, c.kv_heads * c.head_dim, bias=c.qkv_bias)
        self.o_proj = nn.Linear(c.heads * c.head_dim, c.hidden, bias=False)
        if c.qk_norm:
            self.q_norm = RMSNorm(c.head_dim, c.rms_eps)
            self.k_norm = RMSNorm(c.head_dim, c.rms_eps)

    def forward(self, x, cos, sin, bias, past_k, past_v):
        c = self.c
        b, t, _ = x.shape
        g = c.heads // c.kv_heads
        q = self.q_proj(x).view(b, t, c.heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, c.kv_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, c.kv_heads, c.head_dim).transpose(1, 2)
        if c.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q = apply_rope(q, cos, sin, c)
        k = apply_rope(k, cos, sin, c)
        k_all = torch.cat([past_k, k], dim=2)
        v_all = torch.cat([past_v, v], dim=2)
        qg = q.reshape(b, c.kv_heads, g * t, c.head_dim)
        scores = torch.matmul(qg, k_all.transpose(-1, -2)) * (1.0 / math.sqrt(c.head_dim))
        p = torch.softmax(scores + bias, dim=-1)
        o = torch.matmul(p, v_all).reshape(b, c.heads, t, c.head_dim).transpose(1, 2)
        return self.o_proj(o.reshape(b, t, c.heads * c.head_dim)), k_all, v_all


class MLP(nn.Module):
    def __init__(self, c: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden, c.intermediate, bias=False)
        self.up_proj = nn.Linear(c.hidden, c.intermediate, bias=False)
        self.down_proj = nn.Linear(c.intermediate, c.hidden, bias=False)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c: LlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden, c.rms_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden, c.rms_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, bias, past_k, past_v):
        a, k, v = self.self_attn(self.input_layernorm(x), cos, sin, bias, past_k, past_v)
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x)), k, v


class LlamaDecoder(nn.Module):
    """``forward(input_ids, attention_mask, position_ids, *past) -> (logits, *present)``
    with ``past``/``present`` ordered key0, value0, key1, value1, ..."""

    def __init__(self, c: LlamaConfig):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c.vocab, c.hidden)
        self.layers = nn.ModuleList(Layer(c) for _ in range(c.layers))
        self.norm = RMSNorm(c.hidden, c.rms_eps)
        self.lm_head = None if c.tied else nn.Linear(c.hidden, c.vocab, bias=False)
        r = c.rotary_dim or c.head_dim
        inv = 1.0 / (c.rope_theta ** (torch.arange(0, r, 2, dtype=torch.float32) / r))
        self.register_buffer("inv_freq", inv, persistent=False)

    def forward(self, input_ids, attention_mask, position_ids, *past):
        c = self.c
        g = c.heads // c.kv_heads
        x = self.embed_tokens(input_ids)
        ang = position_ids.to(torch.float32)[..., None] * self.inv_freq  # [B, T, D/2]
        ang = torch.cat([ang, ang], dim=-1) if c.rope == "half" else ang.repeat_interleave(2, dim=-1)
        cos, sin = torch.cos(ang)[:, None], torch.sin(ang)[:, None]  # [B, 1, T, D]
        key_pos = torch.cumsum(attention_mask, dim=-1) - 1  # [B, S]
        visible = (key_pos[:, None, :] <= position_ids[:, :, None]) & (attention_mask[:, None, :] > 0)
        bias = torch.where(visible, 0.0, torch.finfo(torch.float32).min)  # [B, T, S]
        bias = torch.cat([bias] * g, dim=1)[:, None]  # [B, 1, G*T, S], query rows grouped per KV head
        present = []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, cos, sin, bias, past[2 * i], past[2 * i + 1])
            present += [k, v]
        x = self.norm(x)
        w = self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return (torch.matmul(x, w.t()), *present)

    # ------------------------------------------------------------------ helpers

    def empty_cache(self, batch: int = 1) -> list[torch.Tensor]:
        c = self.c
        return [torch.zeros(batch, c.kv_heads, 0, c.head_dim) for _ in range(2 * c.layers)]

    def input_names(self) -> list[str]:
        names = ["input_ids", "attention_mask", "position_ids"]
        for i in range(self.c.layers):
            names += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        return names

    def output_names(self) -> list[str]:
        names = ["logits"]
        for i in range(self.c.layers):
            names += [f"present.{i}.key", f"present.{i}.value"]
        return names

    @classmethod
    def from_hf(cls, hf) -> "LlamaDecoder":
        """Copy the weights of a transformers ``LlamaForCausalLM``."""
        m = cls(LlamaConfig.from_hf(hf.config))
        sd = {k.removeprefix("model."): v for k, v in hf.state_dict().items()}
        if m.c.tied:
            sd.pop("lm_head.weight", None)
        missing, unexpected = m.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise ValueError(f"weights do not fit: missing {missing[:4]}, unexpected {unexpected[:4]}")
        return m.eval()


def step_inputs(ids: torch.Tensor, past_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``attention_mask`` and ``position_ids`` for a step of ``ids [B, T]`` after ``past_len``
    cached tokens (no padding)."""
    b, t = ids.shape
    mask = torch.ones(b, past_len + t, dtype=torch.int64)
    pos = torch.arange(past_len, past_len + t, dtype=torch.int64)[None].expand(b, t).contiguous()
    return mask, pos


def export_onnx(model: LlamaDecoder, path, chunk: int, batch: int = 1) -> Path:
    """ONNX export with static ``batch`` and step length ``chunk``, symbolic past length
    ``past_sequence_length`` (``attention_mask`` and ``present.*`` have
    ``total_sequence_length``)."""
    path = Path(path)
    c = model.c
    ids = torch.zeros(batch, chunk, dtype=torch.int64)
    past_len = 3
    mask, pos = step_inputs(ids, past_len)
    past = [torch.zeros(batch, c.kv_heads, past_len, c.head_dim) for _ in range(2 * c.layers)]
    p = torch.export.Dim("past_sequence_length", min=0, max=8192)
    dyn = {"input_ids": None, "attention_mask": {1: p + chunk}, "position_ids": None}
    names = model.input_names()
    for n in names[3:]:
        dyn[n] = {2: p}
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, mask, pos, *past), str(tmp), input_names=names,
                          output_names=model.output_names(), dynamo=True, opset_version=18,
                          dynamic_shapes=(dyn["input_ids"], dyn["attention_mask"], dyn["position_ids"],
                                          tuple(dyn[n] for n in names[3:])),
                          external_data=True, verbose=False)
    data = Path(str(tmp) + ".data")
    if data.exists():  # keep the external-data file name the graph refers to
        import onnx

        m = onnx.load(str(tmp), load_external_data=True)
        onnx.save(m, str(path), save_as_external_data=True, location=path.name + ".data")
        tmp.unlink()
        data.unlink()
    else:
        tmp.replace(path)
    return path
