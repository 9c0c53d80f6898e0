"""The lowering registry: one rule per IR op, the shape of JAX's own lowering rules.

A rule is `rule(ctx, op, *args) -> sequence of mx.array`, one array per result of `op`.
`args` are the MLX arrays of the op's operands; `ctx` gives access to regions (bodies of
reduce, sort, while, ...) and to other functions of the module. Rules are registered per
platform: None means every MLX device; "cpu" or "gpu" overrides for that device only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import UnimplementedError
from ..ir import Op, Operation

if TYPE_CHECKING:
    from ..plan import RuleContext

Rule = Callable[..., Sequence[Any]]

_RULES: dict[tuple[Op, str | None], Rule] = {}

# Compile-time checks: CHECKS[op](operation) raises UnimplementedError (naming the op and its
# location) for a form the rule cannot run; get_rule calls it when a plan resolves the rule.
Check = Callable[[Operation], None]
CHECKS: dict[Op, list[Check]] = {}


def register_check(op: Op, check: Check) -> Check:
    CHECKS.setdefault(op, []).append(check)
    return check


def register_lowering(op: Op, rule: Rule, platform: str | None = None) -> Rule:
    _RULES[(op, platform)] = rule
    return rule


def lowering(*ops: Op, platform: str | None = None) -> Callable[[Rule], Rule]:
    """Decorator form of register_lowering for one or more ops."""

    def register(rule: Rule) -> Rule:
        for op in ops:
            register_lowering(op, rule, platform)
        return rule

    return register


def get_rule(operation: Operation, platform: str) -> Rule:
    rule = _RULES.get((operation.op, platform)) or _RULES.get((operation.op, None))
    if rule is None:
        raise UnimplementedError(f"[lowering] no rule for '{operation.op.value}' on platform "
                                 f"'{platform}'{operation.where()}")
    for check in CHECKS.get(operation.op, ()):
        check(operation)
    return rule


def registered_ops() -> set[Op]:
    return {op for op, _ in _RULES}


def single(fn: Callable[..., Any]) -> Rule:
    """Wraps a rule that returns one array into the list form."""

    def rule(ctx: RuleContext, op: Operation, *args: Any) -> Sequence[Any]:
        return (fn(ctx, op, *args),)

    rule.__name__ = getattr(fn, "__name__", "rule")
    return rule
