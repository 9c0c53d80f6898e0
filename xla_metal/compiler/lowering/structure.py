"""Structural ops: calls, composites, barriers, custom_calls (a fixed table)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...errors import UnimplementedError
from ...memory_kinds import memory_id
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


# Memory placement: JAX marks a value moved between memory kinds (device_put to
# memory_kind='pinned_host' inside jit, out_shardings with a host kind, compute_on) with
# annotate_device_placement; XLA's host offloader names the moves MoveToHost/MoveToDevice.
# The memory kinds are one MLX pool (xla_metal/memory_kinds.py), so a move is the value itself;
# the kind it lands in reaches JAX through the result's mhlo.memory_kind.
PLACEMENT_ATTRIBUTE = "_xla_buffer_placement"


def _check_placement(op: Operation) -> None:
    kind = op.attrs.get("mhlo.frontend_attributes", {}).get(PLACEMENT_ATTRIBUTE)
    if kind is not None:
        memory_id(str(kind), f"annotate_device_placement{op.where()}")


# custom_call targets we run, by name. Anything else is refused when the program compiles.
CustomCallRule = Callable[..., Sequence[Any]]
CUSTOM_CALLS: dict[str, CustomCallRule] = {
    "Sharding": _identity,  # sharding annotations: one device, nothing to do
    "SPMDFullToShardShape": _identity,
    "SPMDShardToFullShape": _identity,
    # HLO exported by JAX carries Shardy's result shardings as this one-operand identity.
    "xla.sdy.FuncResultSharding": _identity,
    "dce_sink": lambda ctx, op, *args: [],  # lax.dce_sink: keeps its operand alive, no result
    "annotate_device_placement": _identity,
    "MoveToHost": _identity,
    "MoveToDevice": _identity,
}
# Checks a target needs beyond being known, run when the program compiles.
CUSTOM_CALL_CHECKS: dict[str, Callable[[Operation], None]] = {
    "annotate_device_placement": _check_placement,
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
    check = CUSTOM_CALL_CHECKS.get(op.attrs.get("call_target_name", ""))
    if check is not None:
        check(op)


register_check(Op.CUSTOM_CALL, _check_custom_call)


@lowering(Op.CUSTOM_CALL)
def _custom_call(ctx, op: Operation, *args: Any) -> Sequence[Any]:
    return custom_call_target(op)(ctx, op, *args)
