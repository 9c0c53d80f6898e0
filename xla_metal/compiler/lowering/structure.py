"""Structural ops: calls, composites, barriers, custom_calls (a fixed table)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...errors import UnimplementedError
from ..ir import Op, Operation
from .registry import lowering, register_check


@lowering(Op.CALL)
def _call(ctx, op: Operation, *args: Any) -> Sequence[Any]:
    return ctx.call(op.attrs["callee"], *args)


@lowering(Op.COMPOSITE)
def _composite(ctx, op: Operation, *args: Any) -> Sequence[Any]:
    # The decomposition is exact StableHLO; pattern rewrites onto fused kernels come later.
    return ctx.call(op.attrs["decomposition"], *args)


@lowering(Op.OPTIMIZATION_BARRIER, Op.SHARDING_CONSTRAINT)
def _identity(ctx, op: Operation, *args: Any) -> Sequence[Any]:
    return args


# custom_call targets we run, by name. Anything else is refused when the program compiles.
CustomCallRule = Callable[..., Sequence[Any]]
CUSTOM_CALLS: dict[str, CustomCallRule] = {
    "Sharding": _identity,  # sharding annotations: one device, nothing to do
    "SPMDFullToShardShape": _identity,
    "SPMDShardToFullShape": _identity,
    # HLO exported by JAX carries Shardy's result shardings as this one-operand identity.
    "xla.sdy.FuncResultSharding": _identity,
    "dce_sink": lambda ctx, op, *args: [],  # lax.dce_sink: keeps its operand alive, no result
}


def custom_call_target(op: Operation) -> CustomCallRule:
    target = op.attrs.get("call_target_name", "")
    rule = CUSTOM_CALLS.get(target)
    if rule is None:
        raise UnimplementedError(f"[custom_call] target '{target}' is not supported on metal"
                                 f"{op.where()}")
    return rule


def _check_custom_call(op: Operation) -> None:
    custom_call_target(op)  # an unknown target fails the compile, not the first run


register_check(Op.CUSTOM_CALL, _check_custom_call)


@lowering(Op.CUSTOM_CALL)
def _custom_call(ctx, op: Operation, *args: Any) -> Sequence[Any]:
    return custom_call_target(op)(ctx, op, *args)
