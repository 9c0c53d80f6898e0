"""reduce, reduce_window, select_and_scatter.

reduce with a recognized monoid body (add/mul/max/min/and/or) uses MLX's reductions and then
combines with the init value; any other body (the variadic argmax/argmin form, ...) runs the
body element-wise over whole arrays in a pairwise tree over the reduced axes, padded with the
init values to a power of two.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import mlx.core as mx

from ..ir import Op, Operation
from .regions import combiner
from .registry import register_lowering
from .shape import out_type, permuted

_MONOID: dict[str, Callable[[mx.array, mx.array], mx.array]] = {
    "ADD": mx.add, "MUL": mx.multiply, "MAX": mx.maximum, "MIN": mx.minimum,
    "AND": mx.bitwise_and, "OR": mx.bitwise_or,
}


def monoid(kind: str, dtype: mx.Dtype) -> Callable[[mx.array, mx.array], mx.array]:
    if dtype == mx.bool_:
        return {"ADD": mx.logical_or, "MUL": mx.logical_and, "MAX": mx.logical_or,
                "MIN": mx.logical_and, "AND": mx.logical_and, "OR": mx.logical_or}[kind]
    return _MONOID[kind]


# MLX's CPU sum adds in order, so its float32 error grows with the count (a mean of 1M
# values was off in the 4th digit against XLA:CPU); long float sums are taken in blocks of
# this many, then the block sums are added: the error grows with count / block + block.
_SUM_BLOCK = 1024
_FLOAT_SUMS = (mx.float16, mx.bfloat16, mx.float32, mx.complex64)


def _blocked_sum(x: mx.array, axes: list[int]) -> mx.array:
    keep = [d for d in range(x.ndim) if d not in axes]
    kept_shape = [x.shape[d] for d in keep]
    m = math.prod(x.shape[d] for d in axes)
    flat = permuted(x, keep + axes).reshape(*kept_shape, m)
    blocks = -(-m // _SUM_BLOCK)
    if blocks * _SUM_BLOCK != m:
        flat = mx.concatenate(
            [flat, mx.zeros((*kept_shape, blocks * _SUM_BLOCK - m), x.dtype)], axis=-1)
    return flat.reshape(*kept_shape, blocks, _SUM_BLOCK).sum(-1).sum(-1)


def _fast_reduce(kind: str, x: mx.array, axes: list[int], keep: bool) -> mx.array | None:
    if x.dtype == mx.bool_:
        if kind in ("ADD", "MAX", "OR"):
            return mx.any(x, axis=axes, keepdims=keep)
        return mx.all(x, axis=axes, keepdims=keep)
    if kind == "ADD" and x.dtype in _FLOAT_SUMS and \
            math.prod(x.shape[d] for d in axes) > 4 * _SUM_BLOCK:
        r = _blocked_sum(x, axes).astype(x.dtype)
        return mx.expand_dims(r, axes) if keep else r
    if kind == "ADD":
        return mx.sum(x, axis=axes, keepdims=keep).astype(x.dtype)
    if kind == "MUL":
        return mx.prod(x, axis=axes, keepdims=keep).astype(x.dtype)
    if kind == "MAX":
        return mx.max(x, axis=axes, keepdims=keep)
    if kind == "MIN":
        return mx.min(x, axis=axes, keepdims=keep)
    return None  # bitwise and/or over ints: the tree path


def tree_reduce(body: Callable[..., list[Any]], xs: Sequence[mx.array],
                inits: Sequence[mx.array], axes: list[int]) -> list[mx.array]:
    """Reduce `axes` of every x with a (pairwise, element-wise) body, starting from inits."""
    rank = xs[0].ndim
    keep = [d for d in range(rank) if d not in axes]
    kept_shape = [xs[0].shape[d] for d in keep]
    m = math.prod(xs[0].shape[d] for d in axes)
    flat = [permuted(x, keep + axes).reshape((*kept_shape, m)) for x in xs]
    size = 1
    while size < m + 1:
        size *= 2
    vals = []
    for x, init in zip(flat, inits, strict=True):
        fill = mx.broadcast_to(init.astype(x.dtype), (*kept_shape, size - m))
        vals.append(mx.concatenate([x, fill], axis=-1))
    while size > 1:
        h = size // 2
        out = body(*[v[..., :h] for v in vals], *[v[..., h:] for v in vals])
        vals = [mx.broadcast_to(o, (*kept_shape, h)).astype(v.dtype)
                for o, v in zip(out, vals, strict=True)]
        size = h
    return [v[..., 0] for v in vals]


def _reduce(ctx, op: Operation, *args: mx.array) -> Sequence[mx.array]:
    n = len(op.results)
    xs, inits = args[:n], args[n:]
    axes = sorted(int(d) for d in op.attrs["dimensions"])
    if not axes:  # XLA returns the operands unchanged (the init is not applied)
        return list(xs)
    # keepdims and init_is_identity: set by rewrites.simplify_reductions (single results only)
    keep = bool(op.attrs.get("keepdims"))
    kind = combiner(op.regions[0]) if n == 1 else None
    if kind is not None and kind != "SET":
        x, init = xs[0], inits[0]
        if any(x.shape[d] == 0 for d in axes):
            return (mx.broadcast_to(init.astype(x.dtype), out_type(op).shape),)
        r = _fast_reduce(kind, x, axes, keep)
        if r is not None and op.attrs.get("init_is_identity"):
            return (r,)
        if r is not None:
            return (monoid(kind, x.dtype)(r, init.astype(x.dtype)),)
    results = tree_reduce(ctx.region(0), xs, inits, axes)
    return [r.reshape(out_type(op).shape) for r in results] if keep else results


register_lowering(Op.REDUCE, _reduce)
