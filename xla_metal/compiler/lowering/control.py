"""Host-driven control flow: while, if, case (the condition is read with .item()), and
counted loops, whose trip count is known at compile time (no read).

A while loop's condition and body, when they hold no control flow themselves, are each run
as one mx.compile'd function (compiled once per op, the captured values passed as arguments),
so a loop of element-wise work is fused instead of dispatched op by op every iteration. A
counted loop runs attrs["chunk"] iterations per compiled call (compiler/rewrites.py): each
call costs host time, and MLX fuses across the iterations of one call (a 256-step GRU on an
H100: 183 ms per training step one iteration per call, 145 ms at 16). Where
compiler/loop_slabs.py has unrolled the body by its chunk (attrs["unrolled"] iterations per
trip), each trip is one compiled call.
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

_COMPILED: weakref.WeakKeyDictionary[Operation, dict[Any, Callable[..., Any]]] = \
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


def _repeated(block_plan: Any, times: int) -> Callable[..., list[Any]]:
    """The block run `times` times in a row, each run's results the next one's arguments,
    as a function of (captures..., arguments...)."""
    n = len(block_plan.captures)

    def run(*a: Any) -> list[Any]:
        captured, values = a[:n], list(a[n:])
        for _ in range(times):
            values = block_plan.run(captured, values)
        return values
    return run


def _region(ctx, op: Operation, index: int, times: int = 1) -> Callable[..., list[Any]]:
    """Region `index` as a function of its block arguments (run `times` times over, for a
    loop body), compiled when it can be."""
    from .. import plan as plan_module

    cache = _COMPILED.setdefault(op, {})
    key = index if times == 1 else (index, times)
    if key not in cache:
        repeated = _repeated(ctx.region_plan(index), times)
        fuses = ctx.program.may_fuse and _host_free(ctx, op.regions[index])
        cache[key] = plan_module.compiled(repeated) if fuses else repeated
    run = cache[key]
    captured = list(ctx.captures[index])
    return lambda *args: run(*captured, *args)


# A counted loop run outside a trace is evaluated every this many iterations, to bound the
# lazy graph without waiting on every iteration.
_EVAL_EVERY = 64
# Iterations per compiled call of a counted loop too long to unroll whole, when set (a
# diagnostic override of attrs["chunk"], compiler/rewrites.py); the rest run one at a time.
CHUNK: int | None = None


@lowering(Op.WHILE)
def _while(ctx, op: Operation, *args: Any) -> Sequence[Any]:
    from ..plan import TRACING

    values = list(args)
    trips = op.attrs.get("trip_count")
    if trips is not None:  # counted (compiler/rewrites.py): the condition is never read
        if TRACING[0]:  # inside a trace the body is traced inline (unrolled)
            body = ctx.region(1)
            for _ in range(trips):
                values = list(body(*values))
            return values
        chunk = max(1, min(CHUNK or op.attrs.get("chunk", 1), trips))
        # a body unrolled by compiler/loop_slabs.py runs attrs["unrolled"] iterations
        steps = chunk * op.attrs.get("unrolled", 1)
        chunks, every = _region(ctx, op, 1, chunk), max(1, _EVAL_EVERY // steps)
        for i in range(trips // chunk):
            values = list(chunks(*values))
            if i % every == every - 1:
                evaluate(values, asynchronous=True)
        if trips % chunk:
            body = _region(ctx, op, 1)
            for _ in range(trips % chunk):
                values = list(body(*values))
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
