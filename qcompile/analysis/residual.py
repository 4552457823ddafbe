"""Residual-stream analysis for rotation (QuaRot / SpinQuant): which tensors carry the
stream, who writes into it and who reads it. Analysis only; :mod:`qcompile.passes.rotate`
rewrites.

The dataflow of ``main`` is viewed as a networkx ``DiGraph`` (:class:`Graph`): one node
per binding (its Relax var), an edge from each var to the bindings that use it.

A **region** (:func:`regions`) is a set of tensors with one channel axis each, grown from
the inputs of the normalizations (RMSNorm / LayerNorm over the last axis):

* backwards through residual adds, data movement that keeps the channel axis whole
  (reshape, permute, concat and take along other axes) down to the **writers**: a linear
  layer ``x @ W`` (+ bias), a convolution's output channels, an embedding lookup
  ``take(E, ids)``, and constants added or concatenated into the stream (positional
  embeddings, a cls token); a mixture of experts in transformers' ``batched_mm`` form
  (each token's experts gathered from a constant ``[E, out, in]`` stack, ``W[e] @ x``, or
  ``x @ W[e]`` over ``[E, in, out]`` with a bias per expert), whose stacks take the edit
  before the gather;
* forwards through the same ops to the **readers**: norms whose output feeds only linear
  layers (``γ``, ``β`` and ``Qᵀ`` fold into those), gathered expert stacks included.

Anything else that touches the stream is not rotation-invariant and stops the analysis
with an error naming its binding and op. A norm on the residual path itself (post-norm,
BERT) is refused the same way: its affine cannot move across the rotation.

:func:`down_projections` finds writers whose input is computed elementwise (the MLP's
down projection after GELU / SwiGLU): rotation cannot pass the nonlinearity, so an online
Hadamard goes there. :func:`value_paths` finds, per attention, the linear producing ``V``
and the linear consuming the attention output, and which columns / rows belong to which
head (by pushing column ids through the data movement in NumPy), for the head-wise
rotation of ``V`` into ``O``.
"""
from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np
import tvm
from tvm import relax

from qcompile.errors import QCompileError
from qcompile.analysis import moves
from qcompile.analysis.graph import NORMS, Graph, _dims, _norm_axis, _reshape_axis, linear_at
from qcompile.analysis.moves import MOVES, op_name
from qcompile.ir import attention_roles, const_value

# ----------------------------------------------------------------------------- regions


@dataclasses.dataclass
class Writer:
    kind: str        # matmul | conv2d | embedding | const | norm (an embedding norm's output, rotated by a matmul)
    var: relax.Var   # the binding that writes (for 'const': the binding whose argument it is)
    arg: int = 1     # which argument of ``var``'s call holds the constant to rotate
    axis: int = -1   # the constant's channel axis


@dataclasses.dataclass
class Reader:
    matmul: relax.Var            # x @ W, W const [d, out]
    bias: relax.Var | None       # the add of a constant bias after it, if any
    path: list                   # the data-movement bindings from the norm to the matmul
    #: an expert's weight gathered per token (transformers' ``batched_mm`` experts): the gather
    #: binding, whose constant stack takes the edit along its input axis ``gathered_axis``
    #: (2 for ``W[e] @ x`` with ``x`` a column, ``[E, out, d]``; 1 for ``x @ W[e]``, ``[E, d, out]``)
    gathered: relax.Var | None = None
    gathered_axis: int = 2


@dataclasses.dataclass
class NormRead:
    var: relax.Var
    kind: str                    # rms_norm | layer_norm
    readers: list
    # the normalized stream is also a model output or read by something other than a linear
    # layer (DINOv2's last_hidden_state): the norm re-materializes its original output with
    # one explicit un-rotation (y = n(xR) Rᵀ diag(γ) + β) and its readers stay as they are
    unrotate: bool = False


@dataclasses.dataclass
class Region:
    d: int
    axes: dict                   # var -> channel axis
    writers: list
    norms: list

    @property
    def centered(self) -> bool:
        return any(n.kind == "layer_norm" for n in self.norms)


def _err(g: Graph, var, value, why: str) -> QCompileError:
    op = op_name(value) or g.composite(value) or type(value).__name__
    return QCompileError(f"rotate: binding '{var.name}' ({op}) {why}")


def regions(g: Graph) -> list[Region]:
    """Every residual-stream region of ``main`` (see the module docstring)."""
    for var in g.order:
        value = g.defs[var]
        if op_name(value) in NORMS and not _uniform_rms(value) and not opens_stream(g, var):
            for u, _ in g.users.get(var, []):
                uval = g.defs[u]
                if op_name(uval) == "add" and all(isinstance(a, relax.Var) for a in uval.args):
                    raise _err(g, var, value, "normalizes the residual stream in place (its output is added to "
                                              f"another branch at '{u.name}': a post-norm block, an embedding "
                                              "LayerNorm, or a sandwich norm on a branch output as in Gemma2); its "
                                              "scale and shift sit on the residual path, so no rotation fuses "
                                              "across it")
    seen: dict = {}
    out, left, failed = [], [], []
    n_seeds = 0
    for var in g.order:
        value = g.defs[var]
        if op_name(value) in NORMS:
            x = value.args[0]
            nd = len(x.ty.shape)
            if _norm_axis(value) != nd - 1 or not isinstance(x, relax.Var) or _per_head(g, x) or opens_stream(g, var):
                continue  # (a norm opening the stream writes it: its input is no stream)
            n_seeds += 1
            if x in seen:
                continue
            trial = dict(seen)  # a region that fails leaves nothing marked
            try:
                out.append(_grow(g, x, nd - 1, trial))
                seen = trial
            except StreamIsOutput as e:
                # a stream that is itself a model output (SigLIP's attention-pooling head, whose
                # residual sum is pooler_output): left unrotated; each region has its own
                # rotation, so the others are unaffected
                left.append(e)
            except QCompileError as e:
                failed.append(e)
    # a region that is not rotation-invariant (a classifier head's norm over pooled tokens,
    # AST's mean of its two CLS tokens) stays unrotated when the rotated regions hold most of
    # the model's norms; otherwise the model's main stream is what failed: refuse, naming it
    # (the failure most norms met: every norm of a stream that fails meets the same binding,
    # so a feature extractor's norms do not hide the encoder's stream, as in wav2vec2)
    rotated = sum(len(r.norms) for r in out)
    if failed and rotated * 2 <= n_seeds:
        counts = collections.Counter(str(e) for e in failed)
        raise max(failed, key=lambda e: counts[str(e)])
    if left and not out:
        raise left[0]
    g.unrotated = [str(e) for e in left + failed]
    return out


class StreamIsOutput(QCompileError):
    """A residual stream that is a model output: rotating it would change the output."""


def _per_head(g: Graph, x) -> bool:
    """``x`` is a projection split into heads (Qwen3's and OLMo-2's q/k norms normalize each
    head): through permutes and RoPE, a reshape that splits the last axis; or a slice of a
    projection's channels (DeepSeek-V3's kv_a_layernorm normalizes the latent part of
    ``kv_a_proj``'s output, the rest being the RoPE key). Such a norm reads no residual
    stream; the rotation leaves it alone."""
    while isinstance(x, relax.Var) and x in g.defs:
        val = g.defs[x]
        op = op_name(val)
        if op == "permute_dims" or g.composite(val) == "qcompile.rope":  # (NanoChat: q/k norms after RoPE)
            x = val.args[0]
            continue
        if op == "reshape":
            src, dst = _dims(val.args[0]), _dims(x)
            return len(dst) > len(src) and isinstance(src[-1], int) and isinstance(dst[-1], int) and dst[-1] < src[-1]
        if op == "strided_slice":
            nd = len(_dims(x))
            axes = [int(getattr(a, "value", a)) for a in val.args[1].fields]  # the bounds may be symbolic
            return any(a % nd == nd - 1 for a in axes)
        return False
    return False


def opens_stream(g: Graph, var) -> bool:
    """``var`` is a norm over the last axis with no norm before it: the embeddings' own norm
    (CLIP's and Pixtral's pre-norm, BLOOM's embedding LayerNorm, RoBERTa-PreLN, AIMv2's patch
    norm), whose output opens the residual stream. Its scale and shift cannot move across a
    rotation, so it is a stream *writer* whose output the rotation multiplies once (one
    ``d x d`` matmul per token for the whole model), not a refusal. A norm on the residual
    path later (post-norm, sandwich norms) has one before it and is still refused."""
    val = g.defs.get(var)
    if val is None or op_name(val) not in NORMS or _norm_axis(val) != len(var.ty.shape) - 1:
        return False
    cache = g.__dict__.setdefault("_opens_stream", {})
    if var not in cache:
        import networkx as nx

        before = nx.ancestors(g.g, var)

        def residual(a):  # x + f(x): a stream already (the first block of a post-norm model)
            v = g.defs.get(a)
            if op_name(v) != "add" or not all(isinstance(x, relax.Var) for x in v.args):
                return False
            x, y = v.args
            return x in nx.ancestors(g.g, y) or y in nx.ancestors(g.g, x)

        cache[var] = any(op_name(g.defs[u]) == "add" for u, _ in g.users.get(var, [])) \
            and not any(a in g.defs and op_name(g.defs[a]) in NORMS for a in before) \
            and not any(residual(a) for a in before)
    return cache[var]


def _grow(g: Graph, seed, axis: int, seen: dict) -> Region:
    axes: dict = {}
    writers: list[Writer] = []
    norms: dict = {}
    work = [(seed, axis)]

    def push(v, ax):
        work.append((v, ax))

    def push_or_const(a, ax):  # the single operand of a channel-preserving op
        if isinstance(a, relax.Var):
            push(a, ax)
        else:
            writers.append(Writer("const", v, 0, ax))

    def aligned(src_var, ax, other) -> int | None:
        """Channel axis of ``other`` broadcast against ``src_var`` (aligned from the right)."""
        k = len(src_var.ty.shape) - 1 - ax
        nd = len(other.ty.shape)
        return None if k >= nd else nd - 1 - k

    while work:
        v, ax = work.pop()
        if v in axes:
            if axes[v] != ax:
                raise QCompileError(f"rotate: '{v.name}' carries the residual stream on two different axes")
            continue
        axes[v] = ax
        seen[v] = True
        if v in g.params:
            raise QCompileError(f"rotate: the residual stream is the model input '{v.name}'",
                                hint="rotation needs the stream to start at an embedding or a linear layer")
        if v in g.outputs:
            raise StreamIsOutput(f"rotate: the residual stream '{v.name}' is a model output",
                                 hint="a rotated stream would change the model's outputs")
        # ---- how v is written
        val = g.defs[v]
        op = op_name(val)
        nd = len(v.ty.shape)
        if op == "add":
            for i, a in enumerate(val.args):
                a_ax = aligned(v, ax, a)
                if a_ax is None or _dims(a)[a_ax] != _dims(v)[ax]:
                    raise _err(g, v, val, "broadcasts one value across the residual channels")
                if isinstance(a, relax.Var):
                    push(a, a_ax)
                else:
                    writers.append(Writer("const", v, i, a_ax))
        elif ax == nd - 1 and linear_at(g.defs, v, with_bias=False) is not None:
            writers.append(Writer("matmul", v))
        elif op == "matmul" and nd >= 3 and ax == nd - 2 and _gathered_weight(g, val.args[0], v) is not None:
            # W[e] @ x per token (an MoE's batched experts): the rotation goes into the output
            # rows of every expert's constant, before the gather picks them
            writers.append(Writer("const", val.args[0], 0, 1))
        elif op == "matmul" and nd >= 3 and ax == nd - 1 and _gathered_weight(g, val.args[1], v) is not None:
            writers.append(Writer("const", val.args[1], 0, 2))  # x @ W[e] (GPT-OSS's [E, in, out] stacks)
        elif op == "nn.conv2d" and ax == 1 and str(val.attrs.data_layout) == "NCHW" and int(val.attrs.groups) == 1 \
                and str(val.attrs.kernel_layout) == "OIHW" and const_value(val.args[1]) is not None:
            # (a grouped or depthwise conv's output channel reads only its group: no rotation
            # of its output channels is a weight edit)
            writers.append(Writer("conv2d", v, 1, 0))
        elif ax == nd - 1 and _row_gather(val) is not None:
            # an embedding table, or a bias per expert gathered per token (GPT-OSS's batched_mm)
            writers.append(Writer("embedding", v, 0, 1))
        elif op == "multiply" and isinstance(val.args[0], relax.Var) and const_value(val.args[1]) is not None \
                and const_value(val.args[1]).size == 1:
            push(val.args[0], ax)  # a scalar factor (Gemma's sqrt(d) on the embedding) commutes with R
        elif op == "broadcast_to" and _is_zero(val.args[0]):
            pass  # zeros (an MoE's scatter target): R 0 = 0, nothing to absorb
        elif op == "broadcast_to":
            a = val.args[0]
            a_ax = aligned(v, ax, a)
            if a_ax is None:
                raise _err(g, v, val, "broadcasts one value across the residual channels")
            if isinstance(a, relax.Var):
                push(a, a_ax)
            else:
                writers.append(Writer("const", v, 0, a_ax))
        elif op == "scatter_elements" and _scatters_rows(g, val, ax):
            # an MoE's expert outputs written to their tokens' rows: the same row for every
            # channel, so the scatter commutes with R (data and updates both carry the stream)
            push_or_const(val.args[0], ax)
            push_or_const(val.args[2], ax)
        elif op == "multiply" and (i := _row_factor(v, val, ax)) is not None:
            push(val.args[i], aligned(v, ax, val.args[i]))  # an MoE's routing weight: one factor per row
        elif op in ("mean", "sum") and _reduce_axis(val, ax, back=True) is not None:
            push(val.args[0], _reduce_axis(val, ax, back=True))  # pooling over tokens commutes with R
        elif op == "image.resize2d" and ax == str(val.attrs.layout).index("C"):
            # the same linear map over the spatial axes for every channel (DINOv2's
            # position table interpolated to the image size) commutes with R
            push_or_const(val.args[0], ax)
        elif op == "astype" and str(val.attrs.dtype) == str(val.args[0].ty.dtype):
            push_or_const(val.args[0], ax)
        elif op in MOVES:
            src_ax = _move_back(val, v, ax)
            if src_ax is None:
                raise _err(g, v, val, "splits or merges the residual channel axis")
            if op == "concat":
                for i, a in enumerate(val.args[0].fields):
                    if isinstance(a, relax.Var):
                        push(a, ax)
                    else:
                        writers.append(Writer("const", v, i, ax))
            else:
                a = val.args[0]
                if not isinstance(a, relax.Var):
                    writers.append(Writer("const", v, 0, src_ax))
                else:
                    push(a, src_ax)
        elif op in ("nn.conv1d", "nn.conv2d") and int(val.attrs.groups) != 1:
            raise _err(g, v, val, "is a grouped (or depthwise) convolution writing the residual stream: each output "
                                  "channel reads only its group, so it is not rotation-invariant")
        elif _uniform_rms(val) and ax == nd - 1 and _norm_axis(val) == ax and isinstance(val.args[0], relax.Var):
            push(val.args[0], ax)  # an RMSNorm without a gain keeps norms: rms(x R) = rms(x) R
        elif op in NORMS and ax == nd - 1 and _norm_axis(val) == ax and opens_stream(g, v):
            writers.append(Writer("norm", v))  # the embedding's norm: its output rotated by one matmul
        elif op in NORMS:
            raise _err(g, v, val, "normalizes the residual stream in place (a post-norm model): its scale "
                                  "and shift sit on the residual path, so no rotation fuses across it")
        else:
            raise _err(g, v, val, "writes the residual stream and is not a linear layer, embedding or "
                                  "constant the rotation can absorb")
        # ---- who reads v
        for u, i in g.users.get(v, []):
            uval = g.defs[u]
            uop = op_name(uval)
            if uop == "add":
                push(u, aligned(v, ax, u))
                other = uval.args[1 - i]
                if isinstance(other, relax.Var):
                    push(other, aligned(u, aligned(v, ax, u), other))
            elif uop in NORMS and i == 0 and _norm_axis(uval) == ax == nd - 1 and _uniform_rms(uval) \
                    and _in_place(g, u):
                push(u, ax)  # a gainless RMSNorm of the stream that stays on the stream (NanoChat)
            elif uop in NORMS and i == 0 and _norm_axis(uval) == ax == nd - 1:
                norms[u] = uop.removeprefix("nn.")
            elif uop == "multiply" and i == 0 and const_value(uval.args[1]) is not None \
                    and const_value(uval.args[1]).size == 1:
                push(u, ax)  # a scalar factor commutes with the rotation
            elif uop in ("mean", "sum") and _reduce_axis(uval, ax, back=False) is not None:
                push(u, _reduce_axis(uval, ax, back=False))
            elif uop == "scatter_elements" and i != 1 and _scatters_rows(g, uval, aligned(v, ax, u)):
                push(u, aligned(v, ax, u))
            elif uop == "multiply" and _row_factor(u, uval, aligned(v, ax, u)) == i:
                push(u, aligned(v, ax, u))
            elif uop in MOVES and (uop != "take" or i == 0):
                u_ax = _move_forward(uval, v, ax, u)
                if u_ax is None:
                    raise _err(g, u, uval, "splits or merges the residual channel axis")
                push(u, u_ax)
            else:
                raise _err(g, u, uval, "reads the residual stream and is not rotation-invariant")
    kinds = set(norms.values())
    if len(kinds) > 1:
        raise QCompileError("rotate: one residual stream is read by both LayerNorm and RMSNorm",
                            hint="centring the stream for LayerNorm would change the RMSNorms")
    d = _dims(seed)[axis]
    reads = []
    for n, k in norms.items():
        got = _readers(g, n)
        if got is not None and any(r.gathered is not None for r in got) and _shifts(g.defs[n]):
            got = None  # β would become a bias per gathered expert: this norm is un-rotated instead
        reads.append(NormRead(n, k, [], True) if got is None else NormRead(n, k, got))
    return Region(d, axes, writers, reads)


def _shifts(val) -> bool:
    """A LayerNorm with a nonzero (or non-constant) shift ``β``."""
    if op_name(val) != "nn.layer_norm":
        return False
    beta = const_value(val.args[2])
    return beta is None or bool(np.any(beta != 0))


def _uniform_rms(val) -> bool:
    """An RMSNorm whose gain is one number for every channel (none, as ``F.rms_norm(x,
    (d,))``): it commutes with an orthogonal ``R`` (``rms(x R) = rms(x) R``, ``R`` keeps
    the norm), so it may sit on the residual path itself."""
    if op_name(val) != "nn.rms_norm":
        return False
    w = const_value(val.args[1])
    return w is not None and w.size >= 1 and bool((w == w.reshape(-1)[0]).all())


def _in_place(g: Graph, norm) -> bool:
    """``norm``'s output is added to another computed tensor (it stays on the residual
    path) rather than only read by layers."""
    return any(op_name(g.defs[u]) == "add" and all(isinstance(a, relax.Var) for a in g.defs[u].args)
               for u, _ in g.users.get(norm, []))


def _is_zero(e) -> bool:
    c = const_value(e)
    return c is not None and c.size >= 1 and not c.any()


def _scatters_rows(g: Graph, val, ax: int) -> bool:
    """``scatter_elements(data, idx, updates)`` along an axis other than the channel axis
    ``ax``, with ``idx`` the same along ``ax`` (a broadcast of a tensor of length 1 there):
    whole rows are written, each channel the same way."""
    if ax is None or int(val.attrs.axis) % len(val.ty.shape) == ax or str(val.attrs.reduction) not in ("update", "add"):
        return False  # (a product of rows would not be linear)
    idx = val.args[1]
    src = g.defs.get(idx) if isinstance(idx, relax.Var) else None
    if op_name(src) != "broadcast_to":
        return False
    inner = src.args[0]
    k = len(inner.ty.shape) - (len(idx.ty.shape) - ax)
    return k < 0 or _dims(inner)[k] == 1


def _row_factor(out, val, ax: int) -> int | None:
    """For ``multiply(a, b)`` writing ``out`` with channel axis ``ax``: the index of the
    operand that carries the channels when the other is one factor per row (length 1 along
    the channel axis, and not a constant: those are handled as scalars), else None."""
    if ax is None:
        return None
    nd = len(out.ty.shape)
    for i in (0, 1):
        a, o = val.args[i], val.args[1 - i]
        if not isinstance(a, relax.Var) or not isinstance(o, relax.Var):
            continue
        ka, ko = len(a.ty.shape) - (nd - ax), len(o.ty.shape) - (nd - ax)
        if ka >= 0 and _dims(a)[ka] == _dims(out)[ax] and (ko < 0 or _dims(o)[ko] == 1):
            return i
    return None


def _reduce_axis(val, ax: int, back: bool) -> int | None:
    """A mean/sum over axes other than the channel axis: the channel axis of its input
    (``back``, given the output's ``ax``) or of its output (given the input's); None when
    it reduces the channels."""
    nd = len(val.args[0].ty.shape)
    red = sorted(int(a) % nd for a in val.attrs.axis) if val.attrs.axis is not None else list(range(nd))
    keep = bool(val.attrs.keepdims)
    kept = list(range(nd)) if keep else [i for i in range(nd) if i not in red]
    if back:
        if ax >= len(kept):
            return None
        src = kept[ax]
        return None if src in red else src
    if ax in red:
        return None
    return kept.index(ax)


def _move_back(val, out_var, ax) -> int | None:
    """Channel axis of a data-movement op's (first) input given the output's."""
    if op_name(val) == "reshape":
        return _reshape_axis(_dims(out_var), _dims(val.args[0]), ax)
    return moves.axis_back(val, out_var.ty, ax)


def _move_forward(val, in_var, ax, out_var) -> int | None:
    if op_name(val) == "reshape":
        return _reshape_axis(_dims(in_var), _dims(out_var), ax)
    return moves.axis_forward(val, in_var.ty, ax, out_var.ty)


def _readers(g: Graph, norm) -> list[Reader] | None:
    """Linear layers reading a norm's output over its channels, through token-axis moves;
    None when something else reads it or it is a model output (see ``NormRead.unrotate``)."""
    if norm in g.outputs:
        return None
    out = []
    work = [(norm, [])]
    while work:
        v, path = work.pop()
        for u, i in g.users.get(v, []):
            val = g.defs[u]
            op = op_name(val)
            if op == "matmul" and i == 0 and _gathered_weight(g, val.args[1], u) is not None:
                out.append(Reader(u, None, path, gathered=val.args[1], gathered_axis=1))  # x @ W[e]
            elif op == "matmul" and i == 0 and const_value(val.args[1]) is not None:
                users = g.users.get(u, [])
                bias = None
                if len(users) == 1 and op_name(g.defs[users[0][0]]) == "add":
                    a = g.defs[users[0][0]]
                    if const_value(a.args[1]) is not None and len(a.args[1].ty.shape) <= 1:
                        bias = users[0][0]
                out.append(Reader(u, bias, path))
            elif op in ("take", "reshape", "expand_dims", "broadcast_to") and i == 0 \
                    and _move_forward(val, v, len(v.ty.shape) - 1, u) == len(u.ty.shape) - 1 and u not in g.outputs:
                work.append((u, path + [u]))
            elif op == "expand_dims" and i == 0 and u not in g.outputs and len(u.ty.shape) >= 3 \
                    and _move_forward(val, v, len(v.ty.shape) - 1, u) == len(u.ty.shape) - 2 \
                    and g.users.get(u) and all(op_name(g.defs[m]) == "matmul" and j == 1
                                               and _gathered_weight(g, g.defs[m].args[0], m) is not None
                                               for m, j in g.users[u]):
                # the channels made a column for each token's gathered experts, W[e] @ x
                out.extend(Reader(m, None, path + [u], gathered=g.defs[m].args[0]) for m, _ in g.users[u])
            else:
                return None
    return out


def _row_gather(val, ndim: int = 2):
    """The constant whose rows (first-axis slices) ``val`` picks, ``take`` on axis 0 or
    ``gather_nd`` with one index per row, when it has ``ndim`` axes: an embedding or a bias
    per expert (``[rows, d]``), an MoE's expert stack (``[E, out, in]``); else None."""
    op = op_name(val)
    if op == "take":
        ok = val.attrs.axis is not None and int(val.attrs.axis) == 0
    elif op == "gather_nd":
        ok = int(val.attrs.batch_dims) == 0 and len(_dims(val.args[1])) >= 1 and _dims(val.args[1])[-1] == 1
    else:
        return None
    w = const_value(val.args[0])
    return w if ok and w is not None and w.ndim == ndim else None


def _gathered_weight(g: Graph, x, matmul):
    """``x`` is a constant ``[E, out, in]`` stack gathered along its first axis per token
    (:func:`_row_gather`) and read by ``matmul`` alone (the edit goes into that gather's
    constant): an MoE's batched experts (transformers' ``batched_mm``, the form
    ``torch.onnx`` exports). The constant, or None."""
    val = g.defs.get(x) if isinstance(x, relax.Var) else None
    if val is None or [u for u, _ in g.users.get(x, [])] != [matmul]:
        return None
    return _row_gather(val, 3)


# ----------------------------------------------------------------------------- online points


def down_projections(g: Graph, region: Region) -> list[relax.Var]:
    """Matmul writers of ``region`` whose input is computed elementwise (after GELU/SwiGLU)."""
    out = []
    for w in region.writers:
        if w.kind != "matmul":
            continue
        x = g.defs[w.var].args[0]
        if isinstance(x, relax.Var) and x in g.defs:
            op = op_name(g.defs[x])
            if op is not None and op not in MOVES and op != "matmul":
                out.append(w.var)
    return out


# ----------------------------------------------------------------------------- V -> O


@dataclasses.dataclass
class ValuePath:
    producer: relax.Var          # x @ Wv (its matmul binding)
    bias: relax.Var | None
    v_columns: np.ndarray        # [groups, D] producer columns of each V head, in head-dim order
    consumer: relax.Var          # attention output ... @ Wo (its matmul binding)
    o_rows: np.ndarray           # [groups, D] rows of Wo fed by each output head, head-dim order
    head_dim: int
    cache_is_output: bool        # V (rotated) reaches a model output: the value cache
    v_heads: np.ndarray | None = None  # [rows of v_columns]: the attention's head (axis 1) each V head feeds
    o_heads: np.ndarray | None = None  # [rows of o_rows]: the attention output head (axis 1) each block comes from


def _one(d) -> int:
    """A symbolic dim's value with every shape variable set to 1."""
    names = {str(v): 1 for v in tvm.tirx.analysis.undefined_vars(d)}
    try:
        return int(eval(str(d).replace("T.int64", ""), {"__builtins__": {}}, names))  # noqa: S307 - shape arithmetic
    except Exception:  # noqa: BLE001
        return 1


def move_ids(val, arrays: list, out_var, defs: dict | None = None) -> np.ndarray | None:
    """Apply a data-movement op to NumPy id arrays (symbolic dims stood in by 1); ``defs``
    (main's bindings) lets a ``gather_elements`` show that it moves whole rows."""
    op = op_name(val)
    x = arrays[0]
    if op == "reshape":
        return x.reshape(shape1(out_var))
    if op == "permute_dims":
        return np.transpose(x, None if val.attrs.axes is None else [int(a) for a in val.attrs.axes])
    if op == "concat":
        return np.concatenate(arrays, axis=int(val.attrs.axis))
    if op == "take":
        idx = const_value(val.args[1])
        return None if idx is None else np.take(x, idx, axis=int(val.attrs.axis))
    if op == "expand_dims":
        return np.expand_dims(x, tuple(int(a) for a in val.attrs.axis))
    if op == "squeeze":
        return x.reshape(shape1(out_var))
    if op == "broadcast_to":  # GQA's repeat of K/V heads: each column id appears once per group
        return np.broadcast_to(x, shape1(out_var)).copy()
    if op == "strided_slice":  # a fused qkv projection split into q, k, v
        try:
            axes, begin, end, strides = moves.slice_params(val)
        except (TypeError, ValueError, AttributeError):  # symbolic bounds
            return None
        index = [slice(None)] * x.ndim
        for a, b, e, s in zip(axes, begin, end, strides):
            index[a] = slice(b, e, s)
        return x[tuple(index)]
    if op == "gather_elements":
        # a cache buffer's per-row slots (GroupQueryAttention): elements move along the gather
        # axis by a data-dependent index, every other axis keeps its coordinate. An index the
        # same along the last axis moves whole rows of it; the ids tracked are head columns on
        # that axis, so which row goes where does not change them
        axis = int(val.attrs.axis) % x.ndim
        rows = axis != x.ndim - 1 and _same_along_last(defs or {}, val.args[1], x.ndim)
        return x.copy() if rows and list(x.shape) == shape1(out_var) else None
    if op in ("tile", "repeat"):
        reps = [int(r) for r in val.attrs.repeats] if op == "tile" else None
        return np.tile(x, reps) if op == "tile" else np.repeat(x, int(val.attrs.repeats), axis=int(val.attrs.axis))
    return None


def _same_along_last(defs: dict, idx, nd: int) -> bool:
    """``idx`` is a ``broadcast_to`` of a tensor whose last axis is 1, or elementwise
    arithmetic of such tensors and scalars (TVM's importer wraps a gather index in
    ``where(idx < 0, idx + n, idx)``)."""
    todo, seen = [idx], set()
    while todo:
        v = todo.pop()
        ty = getattr(v, "ty", None)
        if isinstance(ty, relax.TensorType) and ty.shape is not None and len(ty.shape) == 0:
            continue  # a scalar: the same everywhere
        if not isinstance(v, relax.Var):
            c = const_value(v)
            if c is None or c.size != 1:
                return False
            continue
        if v in seen:
            continue
        seen.add(v)
        val = defs.get(v)
        op = op_name(val)
        if op == "broadcast_to" and len(val.args[0].ty.shape) == nd and shape1(val.args[0])[-1] == 1:
            continue
        if op not in ("where", "add", "subtract", "less", "multiply"):
            return False
        todo += list(val.args)
    return True


def shape1(expr) -> list[int]:
    return _dims(expr, _one)


def value_paths(g: Graph) -> tuple[list[ValuePath], list[str]]:
    """Head-wise V -> O paths of every attention in ``main``, and notes on those skipped."""
    paths, notes = [], []
    for var in g.order:
        val = g.defs[var]
        if g.composite(val) != "qcompile.attention":
            continue
        roles = attention_roles(g.funcs[val.op.name_hint])
        if roles is None:
            continue
        v_arg = val.args[roles["params"].index("v")]
        try:
            paths.append(_value_path(g, var, val, v_arg))
        except _Skip as e:
            notes.append(f"{var.name}: {e}")
    return paths, notes


class _Skip(Exception):
    pass


def _value_path(g: Graph, att, att_val, v_arg) -> ValuePath:
    # walk back from V to a linear layer through data movement
    v, chain = v_arg, []
    while True:
        if not isinstance(v, relax.Var) or v not in g.defs:
            raise _Skip("V does not come from a linear layer")
        val = g.defs[v]
        op = op_name(val)
        if op == "matmul" and const_value(val.args[1]) is not None:
            producer, bias, out = v, None, v
            break
        if op == "add" and isinstance(val.args[0], relax.Var) and const_value(val.args[1]) is not None \
                and val.args[0] in g.defs and op_name(g.defs[val.args[0]]) == "matmul" \
                and const_value(g.defs[val.args[0]].args[1]) is not None and len(val.args[1].ty.shape) <= 1:
            producer, bias, out = val.args[0], v, v
            break
        if op not in MOVES:
            raise _Skip(f"V passes through {op}")
        chain.append(v)
        if op == "concat":  # the cache: exactly one field comes from this step
            mine = [a for a in val.args[0].fields if isinstance(a, relax.Var) and g.input_of(a) is None]
            if len(mine) != 1:
                raise _Skip("V's concat has no single new-token operand")
            v = mine[0]
        else:
            v = val.args[0]
    # push producer column ids forward through every data-movement path
    n_cols = shape1(out)[-1]
    ids = {out: np.broadcast_to(np.arange(n_cols), shape1(out)).copy()}
    sinks_v, sinks_other = [], []
    cache_out = False
    work = [out]
    while work:
        x = work.pop()
        for u, i in g.users.get(x, []):
            uval = g.defs[u]
            if u in g.outputs:
                cache_out = True
            if (isinstance(uval, relax.Tuple) or op_name(uval) == "astype") and u in g.outputs:
                continue  # the value cache as a model output (or its cast): read back (rotated) by the next step
            if u == att:
                (sinks_v if uval.args[i].same_as(v_arg) else sinks_other).append(ids[x])
                continue
            if op_name(uval) == "shape_of":  # reads no value (an index's bounds)
                continue
            if op_name(uval) not in MOVES or u in ids:
                sinks_other.append(ids[x])
                continue
            if op_name(uval) == "concat" and any(a not in ids and g.input_of(a) is None
                                                 for a in uval.args[0].fields if isinstance(a, relax.Var)):
                # mixed with another computed tensor: not the V path (a fused qkv projection's
                # key, re-assembled around a partial RoPE); its columns count as read elsewhere
                sinks_other.append(ids[x])
                continue
            arrs = []
            for a in Graph.args(uval)[:len(uval.args[0].fields) if op_name(uval) == "concat" else 1]:
                arrs.append(ids[a] if a in ids else np.full(shape1(a), -1))
            r = move_ids(uval, arrs, u, g.defs)
            if r is None:
                raise _Skip(f"cannot follow {op_name(uval)}")
            ids[u] = r
            work.append(u)
    if len(sinks_v) != 1:
        raise _Skip("V reaches the attention more than once")
    va = sinks_v[0]
    d = va.shape[-1]
    groups = {tuple(row) for row in va.reshape(-1, d) if row[0] >= 0}
    if any(min(r) < 0 for r in groups):
        raise _Skip("V heads mix cached and new columns")
    used = set(np.concatenate([s.reshape(-1) for s in sinks_other])) if sinks_other else set()
    v_cols = np.array(sorted(groups))
    head_of = {tuple(row): np.unravel_index(r, va.shape[:-1])[1] for r, row in enumerate(va.reshape(-1, d))}
    v_heads = np.array([head_of[tuple(row)] for row in v_cols])
    if used & set(v_cols.reshape(-1).tolist()):
        raise _Skip("V's columns are also read elsewhere")
    # the attention output: head-dim d of output head slice h -> rows of Wo
    if not isinstance(att.ty, relax.TensorType):
        raise _Skip("the attention's result is not one tensor")
    a_shape = shape1(att)
    x, arr = att, np.arange(math.prod(a_shape)).reshape(a_shape)  # element ids; id % d = head-dim index
    while True:
        users = g.users.get(x, [])
        if len(users) != 1:
            raise _Skip("the attention output has more than one reader")
        u, i = users[0]
        uval = g.defs[u]
        op = op_name(uval)
        if op == "matmul" and i == 0 and const_value(uval.args[1]) is not None:
            consumer = u
            break
        if op not in MOVES:
            raise _Skip(f"the attention output passes through {op}")
        arr = move_ids(uval, [arr], u, g.defs)
        if arr is None:
            raise _Skip(f"cannot follow {op}")
        x = u
    if arr.size == 0:  # a dim such as height // 32, which is 0 with the shape variables stood in by 1
        raise _Skip("the attention output has no elements with its symbolic dims stood in by 1")
    rows = arr.reshape(-1, arr.shape[-1])
    key0 = rows[0] // d
    if not (rows % d == rows[0] % d).all():
        raise _Skip("the output projection's input columns differ between tokens")
    o_rows, o_heads = [], []
    for k in np.unique(key0):
        cols = np.nonzero(key0 == k)[0]
        if len(cols) != d or any(len(np.unique(r[cols] // d)) != 1 for r in rows):
            raise _Skip("an output head is not one block of the output projection's input")
        o_rows.append(cols[np.argsort(rows[0][cols] % d)])
        o_heads.append(np.unravel_index(rows[0][cols[0]], a_shape)[1])
    o_rows = np.array(o_rows)
    return ValuePath(producer, bias, v_cols, consumer, o_rows, d, cache_out, v_heads, np.array(o_heads))
