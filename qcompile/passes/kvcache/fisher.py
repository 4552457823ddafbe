"""KVQuant's sensitivity weights: the diagonal Fisher information of the cached keys and values.

KVQuant (Hooper et al. 2024, sec. 3.4) fits its non-uniform datatype by k-means weighted by
the diagonal Fisher information ``F_i = sum over calibration tokens of g_i^2``, ``g`` the
gradient of the language-model loss with respect to the activation: levels go where the
entries that move the loss are, not where most entries are. The gradients are computed
here **with torch on the float model** (autograd of the next-token cross-entropy on the
calibration text), not by a Relax gradient: the compiled graph is an inference step and
the float model it was exported from is what the user has.

:func:`collect` runs a torch causal LM (``model(input_ids=...)`` returning ``.logits`` or a
tensor: transformers' decoders) over consecutive calibration windows of ``[BOS] + window - 1``
text tokens (the evaluation windows' layout),
hooks each attention's pre-RoPE keys (the output of ``k_norm`` where the model normalizes
keys per head, else of ``k_proj``) and values (``v_proj``), and keeps, for a random subset
of token positions, the entries and their squared gradients. The first ``skip`` positions of
a window (the BOS, which the float16 sink holds and the codes never do) and its last (no
later token reads it, its gradient is zero) are not sampled. :func:`save` / :func:`load`
keep them in an ``.npz`` (``k{i}``, ``gk{i}``, ``v{i}``, ``gv{i}``: ``[tokens, heads *
head_dim]`` float32, layer ``i`` in the model's order), which ``KvPrerope(nuq=True,
fisher=PATH)`` reads.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from qcompile.errors import QCompileError


def _attention_taps(model) -> list[tuple]:
    """Per attention module, in order: ``(key module, value module)``."""
    taps = []
    for _, m in model.named_modules():
        kids = dict(m.named_children())
        if "k_proj" in kids and "v_proj" in kids:
            taps.append((kids.get("k_norm", kids["k_proj"]), kids["v_proj"]))
    if not taps:
        raise QCompileError("fisher: no attention module with k_proj and v_proj children in the model")
    return taps


def collect(model, tokens, window: int = 512, bos: int | None = None, samples: int = 1024, seed: int = 0,
            forward=None, skip: int = 1, progress: bool = True) -> dict:
    """``{"k{i}", "gk{i}", "v{i}", "gv{i}": [n, C] float32}`` for each attention ``i``: the
    pre-RoPE keys and values at ``samples`` random token positions of the calibration
    windows (spread evenly over the windows, the first ``skip`` and the last position of
    each left out) and their squared loss gradients. ``forward``
    (``ids [1, T] -> logits [1, T, V]``) replaces ``model(input_ids=ids)`` for a model
    called otherwise."""
    import torch
    from tqdm import tqdm

    tokens = np.asarray(tokens, np.int64).ravel()
    text = window - (bos is not None)
    n_win = len(tokens) // text
    if n_win < 1:
        raise QCompileError(f"fisher: the calibration text has {len(tokens)} tokens, one window needs {text}")
    taps = _attention_taps(model)
    rng = np.random.default_rng(seed)
    per_win = max(1, samples // n_win)
    if window - skip - 1 < per_win:
        raise QCompileError(f"fisher: {per_win} samples per window do not fit in a window of {window} "
                            f"(less {skip} skipped and the last)")
    acts: dict = {}
    grads: dict = {}
    handles = []

    def hook(name):
        def f(_module, _inputs, out):
            acts[name] = out.detach()
            out.register_hook(lambda g: grads.__setitem__(name, g.detach()))
        return f

    for i, (km, vm) in enumerate(taps):
        handles += [km.register_forward_hook(hook(f"k{i}")), vm.register_forward_hook(hook(f"v{i}"))]
    out: dict = {}
    was_training = model.training
    model.eval()
    grad_was = torch.is_grad_enabled()
    torch.set_grad_enabled(True)  # also under a caller's no_grad
    try:
        for w in tqdm(range(n_win), desc="fisher", unit="window", disable=not progress):
            ids = tokens[w * text:(w + 1) * text]
            if bos is not None:
                ids = np.concatenate([[bos], ids])
            x = torch.from_numpy(ids)[None]
            model.zero_grad(set_to_none=True)
            res = model(input_ids=x) if forward is None else forward(x)
            logits = res.logits if hasattr(res, "logits") else (res[0] if isinstance(res, tuple) else res)
            loss = torch.nn.functional.cross_entropy(logits[0, :-1].float(), x[0, 1:], reduction="sum")
            loss.backward()
            pos = skip + np.sort(rng.choice(len(ids) - skip - 1, size=per_win, replace=False))
            for name, a in acts.items():
                if name not in grads:
                    raise QCompileError(f"fisher: no gradient reached {name} (is the model's output detached?)")
                a_, g_ = (_rows(t, len(ids))[pos].float().numpy() for t in (a, grads[name]))  # [tokens, C]
                out.setdefault(name, []).append(a_)
                out.setdefault("g" + name, []).append(g_.astype(np.float64) ** 2)
            acts.clear()
            grads.clear()
    finally:
        torch.set_grad_enabled(grad_was)
        for h in handles:
            h.remove()
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}


def _rows(t, n: int):
    """``[n, C]``: a ``[1, n, C]``, ``[1, n, H, D]`` or (a norm after the head transpose)
    ``[1, H, n, D]`` activation as one row of channels per token."""
    if t.dim() == 4 and t.shape[1] != n and t.shape[2] == n:
        t = t.transpose(1, 2)
    if t.shape[0] != 1 or t.shape[1] != n:
        raise QCompileError(f"fisher: an attention activation of shape {list(t.shape)} has no token axis of {n}")
    return t.reshape(n, -1)


def save(stats: dict, path) -> Path:
    path = Path(path)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **stats)
    tmp.replace(path)
    return path


def load(path) -> dict:
    """The samples of an ``.npz`` written by :func:`save` (read once per file version: a sweep
    of configurations compiles with the same file many times; do not modify the arrays)."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
        return _read(str(p.resolve()), st.st_mtime_ns, st.st_size)
    except (OSError, ValueError) as e:
        raise QCompileError(f"fisher: cannot read {path}: {e}",
                            hint="make it with qcompile.passes.kvcache.fisher.collect and save") from None


@functools.lru_cache(maxsize=2)
def _read(path: str, _mtime_ns: int, _size: int) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def layer_samples(stats: dict, index: int, role: str, heads: int, head_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, f)`` of layer ``index``'s ``role`` (``"k"`` or ``"v"``): entries ``[n, heads,
    head_dim]`` and their Fisher weights (squared gradients), checked against the cache."""
    name = f"{role}{index}"
    if name not in stats or "g" + name not in stats:
        raise QCompileError(f"fisher: no samples for layer {index} ({name}): the file holds "
                            f"{sum(k.startswith('k') for k in stats)} layers")
    x, f = stats[name], stats["g" + name]
    if x.shape != f.shape or x.shape[-1] != heads * head_dim:
        raise QCompileError(f"fisher: layer {index} {role} samples have {x.shape[-1]} channels, the cache "
                            f"{heads} x {head_dim}: the file was made on another model")
    return x.reshape(-1, heads, head_dim), f.reshape(-1, heads, head_dim)
