"""Stream placement: which steps of a plan run on MLX's CPU stream.

On a GPU device (Metal on a Mac, MLX-CUDA on NVIDIA) MLX has no float64. Under
jax_enable_x64 programs compute in float64 all the same, so on the 'gpu' platform every op
that reads or produces a float64 value runs on MLX's CPU stream; everything else runs on the
stream the executable is run on (the device's). Decided once, when a plan is built.

Ops that only route values to other steps (control flow, calls) are not placed themselves:
the steps inside them are placed one by one. An op with a region that is placed (reduce, sort,
scatter over float64) runs its region on the CPU stream too, which is correct, only slower
for any float32 work inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import mlx.core as mx

from .ir import CONTROL_FLOW, Op, Operation, TensorType, TupleType

# Element types MLX's GPU streams cannot hold.
CPU_ONLY_DTYPES = frozenset({"float64", "complex128"})
# Ops MLX runs on its CPU stream only, whatever their types (linear algebra: mx.linalg has no
# GPU kernels). Rules that need it add their op here.
CPU_ONLY_OPS: set[Op] = set()
# Ops MLX's GPU kernels refuse for some element types (MLX-CUDA 0.32: "[scatter] GPU scatter
# does not yet support int64"; Metal has no 64-bit atomics either): placed by their types.
CPU_ONLY_OP_DTYPES: dict[Op, frozenset[str]] = {
    Op.SCATTER: frozenset({"int64", "uint64"}),
}
# Ops that hand values on to other steps and compute nothing themselves.
_ROUTING = CONTROL_FLOW | {Op.CALL, Op.COMPOSITE}


def dtypes_of(t: object) -> list[str]:
    """The element types in a value's type (a tuple's, flattened)."""
    if isinstance(t, TupleType):
        return [d for e in t.elements for d in dtypes_of(e)]
    return [t.dtype] if isinstance(t, TensorType) else []


def needs_cpu_stream(operation: Operation, platform: str) -> bool:
    """Whether `operation` must run on the CPU stream when compiled for `platform`."""
    if platform != "gpu" or operation.op in _ROUTING:
        return False
    if operation.op in CPU_ONLY_OPS:
        return True
    types = [v.type for v in (*operation.operands, *operation.results)]
    refused = CPU_ONLY_DTYPES | CPU_ONLY_OP_DTYPES.get(operation.op, frozenset())
    return any(d in refused for t in types for d in dtypes_of(t))


def on_cpu_stream(rule: Callable[..., Sequence[Any]]) -> Callable[..., Sequence[Any]]:
    """`rule`, run with MLX's CPU stream as the default stream."""

    def placed(ctx: Any, operation: Operation, *args: Any) -> Sequence[Any]:
        with mx.stream(mx.cpu):
            return rule(ctx, operation, *args)

    placed.__name__ = f"{getattr(rule, '__name__', 'rule')}_on_cpu"
    return placed




def evaluate(values: Sequence[Any], asynchronous: bool = False,
             marked: bool = False) -> mx.array | None:
    """mx.eval(values) (mx.async_eval when asked), safe when some are CPU-stream float64.

    On an H100 (MLX-CUDA 0.32) one mx.eval of a list mixing a GPU-stream result with a
    CPU-stream float64 result fails ("float64 is not supported on the GPU") although each
    evaluates alone: float64 arrays are evaluated one by one, after the others, at once.
    With `marked`, when the values were scheduled asynchronously, also schedules and returns
    a marker: an array of its own that depends on all of them (runtime/execution.py awaits
    it from any thread); None when everything was evaluated at once."""
    wide = [v for v in values if v.dtype == mx.float64]
    if not wide:
        if asynchronous and marked and values:
            marker = mx.depends(mx.array(False), list(values))
            mx.async_eval([*values, marker])
            return marker
        (mx.async_eval if asynchronous else mx.eval)(values)
        return None
    rest = [v for v in values if v.dtype != mx.float64]
    if rest:
        mx.eval(rest)
    for v in wide:
        mx.eval(v)
    return None
