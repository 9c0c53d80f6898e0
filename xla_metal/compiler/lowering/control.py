"""Host-driven control flow: while, if, case (the condition is read with .item())."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlx.core as mx

from ..ir import Op, Operation
from .registry import lowering


@lowering(Op.WHILE)
def _while(ctx, op: Operation, *args: Any) -> Sequence[Any]:
    cond, body = ctx.region(0), ctx.region(1)
    values = list(args)
    while bool(cond(*values)[0].item()):
        values = list(body(*values))
        mx.eval(values)  # keep the lazy graph from growing with the trip count
    return values


@lowering(Op.IF)
def _if(ctx, op: Operation, pred: Any) -> Sequence[Any]:
    return ctx.region(0 if bool(pred.item()) else 1)()


@lowering(Op.CASE)
def _case(ctx, op: Operation, index: Any) -> Sequence[Any]:
    i = int(index.item())
    n = len(op.regions)
    if i < 0 or i >= n:
        i = n - 1
    return ctx.region(i)()
