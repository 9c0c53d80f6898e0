"""Recognizing the common region bodies (reduce, scatter, reduce_window, select_and_scatter).

`combiner(block)` names the monoid a two-argument body computes (ADD, MUL, MAX, MIN, AND, OR
on the pair of block arguments), "SET" when it returns its second argument, or None.
"""

from __future__ import annotations

from ..ir import Block, Op

_BINARY = {Op.ADD: "ADD", Op.MULTIPLY: "MUL", Op.MAXIMUM: "MAX", Op.MINIMUM: "MIN",
           Op.AND: "AND", Op.OR: "OR"}


def combiner(block: Block, lhs: int = 0, rhs: int = 1) -> str | None:
    """The monoid of a body combining block args `lhs` and `rhs` into its single result."""
    ret = block.terminator
    if len(ret.operands) != 1:
        return None
    out = ret.operands[0]
    a, b = block.args[lhs], block.args[rhs]
    if out is b:
        return "SET"
    if len(block.ops) != 2:
        return None
    op = block.ops[0]
    if op.results[0] is not out or op.op not in _BINARY:
        return None
    if {id(v) for v in op.operands} != {id(a), id(b)} or len(op.operands) != 2:
        return None
    return _BINARY[op.op]


def compare_body(block: Block) -> tuple[str, str] | None:
    """(direction, compare_type) when the body is one compare of its two args in order."""
    ret = block.terminator
    if len(block.ops) != 2 or len(ret.operands) != 1:
        return None
    op = block.ops[0]
    if op.op is not Op.COMPARE or op.results[0] is not ret.operands[0]:
        return None
    if op.operands[0] is not block.args[0] or op.operands[1] is not block.args[1]:
        return None
    return op.attrs["comparison_direction"], op.attrs.get("compare_type", "")
