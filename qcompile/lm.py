"""Decoder evaluation through the KV cache: perplexity and greedy generation.

Everything here drives a *step* — one call of a decoder graph in the exported-HF layout
(``input_ids``, ``attention_mask``, ``position_ids``, ``past_key_values.*`` in; ``logits``,
``present.*`` out). Steps exist for a compiled artifact, onnxruntime and torch, so the
same protocol measures all three.

Perplexity protocol (:class:`Protocol`, defaults written into every result):

* text: the evaluation split of the corpus, tokenized once, no special tokens;
* windows of ``window`` positions, ``[BOS] + (window - 1)`` text tokens, each scoring
  ``window`` text tokens: position ``i`` predicts text token ``i`` of the window (BOS
  predicts the first). Consecutive windows score consecutive, non-overlapping text
  (stride ``window``); only whole windows are used;
* every window starts from an empty cache and is fed in steps of ``chunk`` tokens, each
  step attending to the cache of the steps before it — the cache is read exactly as in
  generation; (``chunk`` is the compiled step length);
* every text token is scored once, predicted from BOS and all text before it in its
  window: ``ppl = exp(mean NLL)`` over ``windows * window`` tokens, log-softmax in
  float64.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from qcompile.errors import QCompileError

Step = Callable[[np.ndarray, np.ndarray, np.ndarray, list], tuple[np.ndarray, list]]


@dataclasses.dataclass(frozen=True)
class Protocol:
    window: int = 512
    chunk: int = 64
    tokens: int = 8192   # scored tokens: 16 windows of 512
    bos: int = 1         # SmolLM2's tokenizer BOS (<|im_start|>)

    def windows(self) -> int:
        return self.tokens // self.window

    def check(self) -> None:
        if self.window % self.chunk:
            raise QCompileError(f"window {self.window} is not a multiple of the step length {self.chunk}")
        if self.windows() < 1:
            raise QCompileError(f"{self.tokens} tokens do not fill one window of {self.window}")


def step_feed(ids: np.ndarray, past_len: int) -> tuple[np.ndarray, np.ndarray]:
    b, t = ids.shape
    mask = np.ones((b, past_len + t), np.int64)
    pos = np.broadcast_to(np.arange(past_len, past_len + t, dtype=np.int64), (b, t)).copy()
    return mask, pos


def empty_cache(layers: int, kv_heads: int, head_dim: int, batch: int = 1) -> list[np.ndarray]:
    return [np.zeros((batch, kv_heads, 0, head_dim), np.float32) for _ in range(2 * layers)]


def window_sequence(tokens: np.ndarray, w: int, window: int, bos: int | None) -> np.ndarray:
    """The input of window ``w``: its ``window`` tokens, shifted right behind ``bos`` if given."""
    seq = np.asarray(tokens[w * window:(w + 1) * window], np.int64)
    return seq.copy() if bos is None else np.concatenate([[bos], seq[:-1]])


def empty_cache_for(func, batch: int = 1, past: int = 0) -> list[np.ndarray]:
    """The cache of any step function (``main``, float or packed) holding ``past`` tokens
    (default: empty): zeros for every parameter after ``input_ids, attention_mask,
    position_ids``, with its symbolic dims evaluated at ``past`` cached tokens and its batch
    dim set to ``batch``."""
    return [np.zeros(dims, dt) for dims, dt in cache_shapes(func, batch, past)]


def cache_shapes(func, batch: int = 1, past: int = 0) -> list[tuple[list[int], str]]:
    """``(shape, dtype)`` of each cache parameter of ``func`` with ``past`` cached tokens (a
    packed cache's dims may be expressions of the token count)."""
    from tvm.sym import Analyzer
    from tvm.tirx.analysis import undefined_vars

    out = []
    for p in list(func.params)[3:]:
        dims = []
        for d in p.ty.shape:
            if not hasattr(d, "value"):
                ana = Analyzer()
                for v in undefined_vars(d):
                    ana.bind(v, past)
                d = ana.simplify(d)
            dims.append(int(d))
        dims[0] = batch
        out.append((dims, str(p.ty.dtype)))
    return out


def decoder_feeds(tokens: np.ndarray, func, window: int = 512, bos: int | None = None):
    """Calibration of a decoder step on a token stream: windows of ``window`` tokens fed in
    steps of the compiled chunk, each window from an empty cache, exactly like
    :func:`perplexity` (the generator receives each step's outputs through ``send`` and
    feeds their present cache back). Returns ``(generator of feeds, number of steps)``."""
    names = [p.name for p in func.params]
    chunk = int(func.params[0].ty.shape[-1])
    window = max(chunk, window - window % chunk)
    tokens = np.asarray(tokens, np.int64)
    n_win = len(tokens) // window
    if n_win < 1:
        raise QCompileError(f"the calibration text has {len(tokens)} tokens, one window needs {window}")

    def gen():
        for w in range(n_win):
            seq = window_sequence(tokens, w, window, bos)
            past = empty_cache_for(func)
            for s in range(0, window, chunk):
                ids = seq[None, s:s + chunk]
                mask, pos = step_feed(ids, s)
                outs = yield dict(zip(names, [ids, mask, pos, *past]))
                past = [o.numpy() for o in list(outs)[1:]]
    return gen(), n_win * (window // chunk)


# ----------------------------------------------------------------------------- steps

def artifact_step(artifact) -> Step:
    def step(ids, mask, pos, past):
        out = artifact.run(ids, mask, pos, *past)
        return out[0], out[1:]
    return step


def ort_step(onnx_path, threads: int | None = None) -> Step:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]

    def step(ids, mask, pos, past):
        out = sess.run(None, dict(zip(names, [ids, mask, pos, *past])))
        return out[0], out[1:]
    return step


def torch_step(module) -> Step:
    import torch

    def step(ids, mask, pos, past):
        with torch.no_grad():
            out = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (ids, mask, pos, *past)))
        return out[0].numpy(), [o.numpy() for o in out[1:]]
    return step


# ----------------------------------------------------------------------------- metrics

def _nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    lse = np.log(np.exp(z).sum(-1))
    return lse - np.take_along_axis(z, targets[:, None], -1)[:, 0]


def perplexity(step: Step, tokens: Sequence[int], cache: list[np.ndarray], protocol: Protocol = Protocol(),
               desc: str = "perplexity", progress: bool = True) -> dict:
    """Perplexity of ``tokens`` (the tokenized evaluation text) under ``protocol``;
    ``cache`` is the empty cache to start each window from."""
    protocol.check()
    n_win, w_len = protocol.windows(), protocol.window
    if len(tokens) < n_win * w_len:
        raise QCompileError(f"the text has {len(tokens)} tokens, the protocol needs {n_win * w_len}")
    tokens = np.asarray(tokens, np.int64)
    nll_sum, count = 0.0, 0
    bar = tqdm(total=n_win * (protocol.window // protocol.chunk), desc=desc, unit="step", disable=not progress)
    for w in range(n_win):
        targets = tokens[w * w_len:(w + 1) * w_len]  # position i predicts targets[i]
        seq = window_sequence(tokens, w, w_len, protocol.bos)
        past = cache
        for s in range(0, protocol.window, protocol.chunk):
            ids = seq[None, s:s + protocol.chunk]
            mask, pos = step_feed(ids, s)
            logits, past = step(ids, mask, pos, past)
            nll = _nll(logits[0], targets[s:s + protocol.chunk])
            nll_sum += float(nll.sum())
            count += nll.size
            bar.update()
    bar.close()
    return {"perplexity": math.exp(nll_sum / count), "nll": nll_sum / count, "tokens": count,
            "protocol": dataclasses.asdict(protocol)}


def generate(prefill: Step, decode: Step, chunk: int, prompt: Sequence[int], new_tokens: int,
             cache: list[np.ndarray]) -> list[int]:
    """Greedy generation: whole ``chunk``s of the prompt through ``prefill``, the rest of
    the prompt and every new token through ``decode`` (one token per step)."""
    ids = list(prompt)
    past, n, logits = cache, 0, None
    while len(ids) - n >= chunk:
        x = np.asarray([ids[n:n + chunk]], np.int64)
        logits, past = prefill(x, *step_feed(x, n), past)
        n += chunk
    out = []
    while len(out) < new_tokens:
        if n < len(ids):
            x = np.asarray([[ids[n]]], np.int64)
            logits, past = decode(x, *step_feed(x, n), past)
            n += 1
            if n < len(ids):
                continue
        nxt = int(logits[0, -1].argmax())
        out.append(nxt)
        ids.append(nxt)
    return out
