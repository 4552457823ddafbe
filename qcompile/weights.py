"""Weight rounding shared by the quantizing passes (``qdq-sim`` today, the real low-bit
weights of ``w8a8`` next): symmetric per-channel scales, optionally clipped
(:func:`weight_scales`), and GPTQ (:func:`gptq`). NumPy only, below the passes, so that no
technique imports another.

GPTQ (Frantar et al., ICLR 2023): round the weights of a linear layer one input channel at
a time, each rounding error spread onto the input channels not yet rounded, weighted by the
inverse Hessian of the layer's squared output error ``H = 2 X^T X / n`` (``X`` the layer's
calibration inputs). The weights stay on the same grid (one symmetric scale per output
channel, fixed before the sweep, as round-to-nearest would use); only which level each
weight takes changes.

The algorithm of the paper's Algorithm 1 with lazy batch updates (blocks of 128 input
channels), 1 % dampening of ``H``'s diagonal, input channels never seen (``H_ii = 0``) set
to zero, no activation reordering. NumPy, float64. QuaRot runs it after rotating: the
Hessian is then the rotated inputs'.
"""
from __future__ import annotations

import numpy as np

from qcompile.errors import QCompileError

BLOCK, DAMP = 128, 0.01


#: the clipping search of GPTQ's ``Quantizer.find_params(mse=True)``: ratios 1 - i / GRID for
#: i < MAX_SHRINK * GRID, error measured as the NORM-th power
CLIP_GRID, CLIP_MAX_SHRINK, CLIP_NORM = 100, 0.8, 2.4


def weight_scales(w: np.ndarray, bits: int, clip: str = "none") -> np.ndarray:
    """One symmetric scale per output channel (columns of ``[in, out]``), shape ``[1, out]``:
    the channel's maximum over ``2^(b-1) - 1``, or with ``clip="mse"`` the shrunk maximum
    with the least ``sum |Q(w) - w|^2.4`` (ties: the larger range)."""
    if clip not in ("none", "mse"):
        raise QCompileError(f"w_clip={clip!r}: choose 'none' or 'mse'")
    qmax = 2 ** (bits - 1) - 1
    top = np.abs(w).max(axis=0, keepdims=True)
    top = np.where(top == 0, 1.0, top)
    if clip == "none":
        return top / qmax
    best_s, best_err = top / qmax, np.full(top.shape, np.inf)
    for i in range(int(CLIP_MAX_SHRINK * CLIP_GRID)):
        s = (1 - i / CLIP_GRID) * top / qmax
        err = (np.abs(np.clip(np.rint(w / s), -qmax, qmax) * s - w) ** CLIP_NORM).sum(axis=0, keepdims=True)
        better = err < best_err
        best_s, best_err = np.where(better, s, best_s), np.where(better, err, best_err)
    return best_s


def gptq(w: np.ndarray, xtx: np.ndarray, rows: int, scales: np.ndarray, bits: int) -> np.ndarray:
    """``w`` ``[in, out]`` (``x @ w``) rounded by GPTQ onto ``clip(round(w / s)) * s`` levels
    with ``scales`` ``[1, out]``; ``xtx`` (``[in, in]``) and ``rows`` from a
    :class:`~qcompile.collectors.Gram` of the layer's input. Returns the dequantized weights."""
    n_in = w.shape[0]
    if xtx.shape != (n_in, n_in) or rows <= 0:
        raise QCompileError(f"gptq: calibration Gram matrix of shape {xtx.shape} over {rows} rows does not fit "
                            f"a weight with {n_in} inputs")
    qmax = 2 ** (bits - 1) - 1
    W = np.array(w, np.float64).T.copy()            # [out, in]: rows rounded independently
    s = np.asarray(scales, np.float64).reshape(-1, 1)
    H = 2.0 * np.asarray(xtx, np.float64) / rows
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H[np.diag_indices(n_in)] += DAMP * float(np.mean(np.diag(H)))
    # the upper Cholesky factor of H^-1: row i holds the update weights of channel i's error
    try:
        Hinv = np.linalg.cholesky(np.linalg.inv(H)).T
    except np.linalg.LinAlgError as e:
        raise QCompileError(f"gptq: the calibration Hessian is not positive definite ({e})",
                            hint="more calibration data, or larger dampening") from None
    Q = np.zeros_like(W)
    for i1 in range(0, n_in, BLOCK):
        i2 = min(i1 + BLOCK, n_in)
        W1, E1, Hb = W[:, i1:i2].copy(), np.zeros((W.shape[0], i2 - i1)), Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = W1[:, i]
            q = np.clip(np.rint(col / s[:, 0]), -qmax, qmax) * s[:, 0]
            Q[:, i1 + i] = q
            err = (col - q) / Hb[i, i]
            W1[:, i:] -= np.outer(err, Hb[i, i:])
            E1[:, i] = err
        W[:, i2:] -= E1 @ Hinv[i1:i2, i2:]
    return Q.T.astype(w.dtype)
