"""dot_general (any batch/contracting dims) and convolution.

Float dots transpose to [batch, free, contract] and use mx.matmul in the result type;
integer and bool dots (MLX matmul takes inexact types only) multiply and sum exactly, in
chunks of the contracting dim so the broadcast product stays small.
"""

from __future__ import annotations

import math

import mlx.core as mx

from ...runtime import dtypes as _dtypes
from ..importer import DotDims
from ..ir import Op, Operation
from .registry import lowering, single
from .shape import out_type

_INEXACT = (mx.float16, mx.bfloat16, mx.float32, mx.float64, mx.complex64)
_CHUNK_ELEMENTS = 1 << 24


def _int_matmul(a: mx.array, b: mx.array) -> mx.array:
    """[B, M, K] x [B, K, N] for integers/bools, exactly (wrapping like XLA)."""
    bsz, m, k = a.shape
    n = b.shape[2]
    step = max(1, _CHUNK_ELEMENTS // max(1, bsz * m * n))
    acc = None
    for s in range(0, k, step):
        e = min(k, s + step)
        prod = a[:, :, s:e, None] * b[:, None, s:e, :]
        part = mx.sum(prod, axis=2).astype(a.dtype) if a.dtype != mx.bool_ else \
            mx.any(prod, axis=2)
        acc = part if acc is None else (acc | part if a.dtype == mx.bool_ else acc + part)
    if acc is None:
        acc = mx.zeros((bsz, m, n), dtype=a.dtype)
    return acc


def dot_general(lhs: mx.array, rhs: mx.array, dims: DotDims, out_dtype: mx.Dtype) -> mx.array:
    lb, rb = list(dims.lhs_batch), list(dims.rhs_batch)
    lc, rc = list(dims.lhs_contract), list(dims.rhs_contract)
    lf = [d for d in range(lhs.ndim) if d not in lb and d not in lc]
    rf = [d for d in range(rhs.ndim) if d not in rb and d not in rc]
    batch_shape = [lhs.shape[d] for d in lb]
    lf_shape = [lhs.shape[d] for d in lf]
    rf_shape = [rhs.shape[d] for d in rf]
    bsz = math.prod(batch_shape)
    k = math.prod(lhs.shape[d] for d in lc)
    a = mx.transpose(lhs, lb + lf + lc).reshape(bsz, math.prod(lf_shape), k)
    b = mx.transpose(rhs, rb + rc + rf).reshape(bsz, k, math.prod(rf_shape))
    a = a.astype(out_dtype)
    b = b.astype(out_dtype)
    if out_dtype in _INEXACT:
        out = mx.matmul(a, b) if k > 0 else mx.zeros((bsz, a.shape[1], b.shape[2]), out_dtype)
    else:
        out = _int_matmul(a, b)
    return out.reshape((*batch_shape, *lf_shape, *rf_shape))


@lowering(Op.DOT_GENERAL)
@single
def _dot_general(ctx, op: Operation, lhs: mx.array, rhs: mx.array) -> mx.array:
    return dot_general(lhs, rhs, op.attrs["dot_dimension_numbers"],
                       _dtypes.mlx_dtype(out_type(op).dtype))
