"""Host-driven control flow: while, if, case (the condition is read with .item()), and
counted loops, whose trip count is known at compile time (no read).

A while loop's condition and body, when they hold no control flow themselves, are each run
as one mx.compile'd function (compiled once per op, the captured values passed as arguments),
so a loop of element-wise work is fused instead of dispatched op by op every iteration.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from .. import ir
from ..ir import Op, Operation
from ..placement import evaluate
from .registry import lowering

# Host reads of a loop condition or branch index, counted so benchmarks can show them
# (one list cell: incremented without a global statement on the hot path).
HOST_READS = [0]

_COMPILED: weakref.WeakKeyDictionary[Operation, dict[int, Callable[..., Any] | None]] = \
    weakref.WeakKeyDictionary()


def _host_free(ctx, block: ir.Block) -> bool:
    """No while/if/case or host callback inside the block, nor in any function it calls."""
    from ..plan import _has_control_flow

    for operation in ir.walk(block):
        if ir.runs_on_host(operation) and not operation.attrs.get("unroll"):
            return False
        callee = operation.attrs.get("callee") or operation.attrs.get("decomposition")
        if callee and _has_control_flow(ctx.program.module, callee):
            return False
    return True


def _region(ctx, op: Operation, index: int) -> Callable[..., list[Any]]:
    """Region `index` as a function of its block arguments, compiled when it can be."""
    from .. import plan as plan_module

    if not ctx.program.may_fuse:
        return ctx.region(index)
    cache = _COMPILED.setdefault(op, {})
    if index not in cache:
        block_plan = ctx.region_plan(index)
        if _host_free(ctx, op.regions[index]):
            n = len(block_plan.captures)
            cache[index] = plan_module.compiled(lambda *a: block_plan.run(a[:n], a[n:]))
        else:
            cache[index] = None
    compiled = cache[index]
    if compiled is None:
        return ctx.region(index)
    captured = list(ctx.captures[index])
    return lambda *args: compiled(*captured, *args)


# A counted loop run outside a trace is evaluated every this many iterations, to bound the
# lazy graph without waiting on every iteration.
_EVAL_EVERY = 64


@lowering(Op.WHILE)
def _while(ctx, op: Operation, *args: Any) -> Sequence[Any]:
    from ..plan import TRACING

    values = list(args)
    trips = op.attrs.get("trip_count")
    if trips is not None:  # counted (compiler/rewrites.py): the condition is never read
        # inside a trace the body is traced inline (unrolled), not as a nested compile
        body = ctx.region(1) if TRACING[0] else _region(ctx, op, 1)
        for i in range(trips):
            values = list(body(*values))
            if not TRACING[0] and i % _EVAL_EVERY == _EVAL_EVERY - 1:
                evaluate(values, asynchronous=True)
        return values
    cond, body = _region(ctx, op, 0), _region(ctx, op, 1)
    while bool(cond(*values)[0].item()):
        HOST_READS[0] += 1
        values = list(body(*values))
        evaluate(values)  # keep the lazy graph from growing with the trip count
    return values


@lowering(Op.IF)
def _if(ctx, op: Operation, pred: Any) -> Sequence[Any]:
    HOST_READS[0] += 1
    return ctx.region(0 if bool(pred.item()) else 1)()


@lowering(Op.CASE)
def _case(ctx, op: Operation, index: Any) -> Sequence[Any]:
    HOST_READS[0] += 1
    i = int(index.item())
    n = len(op.regions)
    if i < 0 or i >= n:
        i = n - 1
    return ctx.region(i)()
