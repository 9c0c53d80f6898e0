"""Element-wise ops: one rule factory per family, one line per op."""

from __future__ import annotations

from functools import partial
from typing import Any

import mlx.core as mx

from ..ir import Op, Operation
from .registry import register_lowering


def _nary(fn, ctx, op: Operation, *args: Any) -> tuple[Any]:
    return (fn(*args),)


register_lowering(Op.ADD, partial(_nary, mx.add))
register_lowering(Op.SUBTRACT, partial(_nary, mx.subtract))
register_lowering(Op.MULTIPLY, partial(_nary, mx.multiply))
register_lowering(Op.NEGATE, partial(_nary, mx.negative))
register_lowering(Op.EXP, partial(_nary, mx.exp))
register_lowering(Op.SIN, partial(_nary, mx.sin))
