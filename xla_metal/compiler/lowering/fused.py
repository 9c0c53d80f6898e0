"""MLX's fused kernels, for the ops compiler/fusions.py makes from exact StableHLO patterns
and compiler/fusion_grads.py from normalizations with their gradients."""

from __future__ import annotations

from typing import Any

import mlx.core as mx

from ..ir import Op, Operation
from .registry import lowering, single


@lowering(Op.SOFTMAX)
@single
def _softmax(ctx, op: Operation, x: mx.array) -> mx.array:
    # precise: float16/bfloat16 rows are summed in float32, as XLA:CPU computes them
    return mx.softmax(x, axis=list(op.attrs["axes"]), precise=op.attrs["precise"])


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
