"""MLX's fused kernels, for the ops compiler/fusions.py makes from exact StableHLO patterns,
compiler/fusion_grads.py from normalizations with their gradients and
compiler/fusion_attention.py from attention."""

from __future__ import annotations

import math
from typing import Any

import mlx.core as mx

from ...runtime.dtypes import MLX_DTYPE
from ..ir import Op, Operation
from .registry import lowering, single
from .shape import permuted


@lowering(Op.SOFTMAX)
@single
def _softmax(ctx, op: Operation, x: mx.array) -> mx.array:
    # precise: float16/bfloat16 rows are summed in float32, as XLA:CPU computes them
    return mx.softmax(x, axis=list(op.attrs["axes"]), precise=op.attrs["precise"])


@lowering(Op.SOFTMAX_GRAD)
@single
def _softmax_grad(ctx, op: Operation, y: mx.array, cotangent: mx.array) -> mx.array:
    # y = softmax(x): dx = y g - y sum(y g), as MLX differentiates its own softmax
    yg = y * cotangent
    return yg - y * mx.sum(yg, axis=list(op.attrs["axes"]), keepdims=True)


def _scale_bias(op: Operation, rest: tuple[Any, ...]) -> tuple[Any, Any]:
    rest_list = list(rest)
    scale = rest_list.pop(0) if op.attrs["scale"] else None
    bias = rest_list.pop(0) if op.attrs["bias"] else None
    return scale, bias


@lowering(Op.LAYER_NORM)
@single
def _layer_norm(ctx, op: Operation, x: mx.array, *rest: mx.array) -> mx.array:
    scale, bias = _scale_bias(op, rest)
    return mx.fast.layer_norm(x, scale, bias, op.attrs["eps"])


@lowering(Op.RMS_NORM)
@single
def _rms_norm(ctx, op: Operation, x: mx.array, *rest: mx.array) -> mx.array:
    scale, _ = _scale_bias(op, rest)
    return mx.fast.rms_norm(x, scale, op.attrs["eps"])


def _vjp_of(norm: Any, x: mx.array, cotangent: mx.array) -> mx.array:
    # on a GPU, MLX differentiates its fused norms with one fused kernel (LayerNormVJP,
    # RMSNormVJP); on the CPU, through the norm's op-by-op form
    return mx.vjp(norm, [x], [cotangent])[1][0]


@lowering(Op.LAYER_NORM_GRAD)
@single
def _layer_norm_grad(ctx, op: Operation, x: mx.array, cotangent: mx.array) -> mx.array:
    eps = op.attrs["eps"]
    return _vjp_of(lambda a: mx.fast.layer_norm(a, None, None, eps), x, cotangent)


@lowering(Op.RMS_NORM_GRAD)
@single
def _rms_norm_grad(ctx, op: Operation, x: mx.array, cotangent: mx.array) -> mx.array:
    eps = op.attrs["eps"]
    return _vjp_of(lambda a: mx.fast.rms_norm(a, None, eps), x, cotangent)


def _term(u: mx.array, layout: tuple[Any, ...], op: Operation) -> mx.array:
    """A bias or mask source lined up with the kernel's (batch, heads, queries, keys)."""
    perm, slots = layout
    x = permuted(u, list(perm)).reshape(slots)
    full, shape, at = op.attrs["full_slots"], [], 0
    for count in op.attrs["groups"]:
        group = range(at, at + count)
        at += count
        if count > 1 and any(x.shape[i] != full[i] for i in group) and \
                any(x.shape[i] != 1 for i in group):
            # a group of dims the kernel takes as one, partly broadcast: spell it out
            x = mx.broadcast_to(x, [full[i] if i in group else n for i, n in enumerate(x.shape)])
        shape.append(math.prod(x.shape[i] for i in group))
    return x.reshape(shape)


@lowering(Op.ATTENTION)
@single
def _attention(ctx, op: Operation, q: mx.array, k: mx.array, v: mx.array,
               *terms: mx.array) -> mx.array:
    a = op.attrs
    compute = MLX_DTYPE[a["compute"]]
    # the program's scores are float32: so are the kernel's (it takes one type for all)
    q4, k4, v4 = (permuted(x, list(a[f"{n}_perm"])).reshape(a[f"{n}_shape"]).astype(compute)
                  for x, n in ((q, "q"), (k, "k"), (v, "v")))
    rest = list(terms)
    mask = _term(rest.pop(0), a["bias"], op).astype(compute) if a["bias"] else None
    if a["mask"]:
        pred = _term(rest.pop(0), a["mask"], op)
        fill = mx.array(a["fill"], compute)
        kept = mask if mask is not None else mx.array(0.0, compute)
        mask = mx.where(pred, fill, kept) if a["fill_if"] else mx.where(pred, kept, fill)
    out = mx.fast.scaled_dot_product_attention(q4, k4, v4, scale=a["scale"],
                                               mask="causal" if a["causal"] else mask)
    out = permuted(out.reshape(a["out_full"]), list(a["out_perm"]))
    return out.reshape(op.results[0].type.shape).astype(q.dtype)  # type: ignore[union-attr]
