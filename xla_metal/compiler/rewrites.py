"""Rewrites of exact StableHLO patterns into cheaper ones, and loop analysis (one pass).

- transpose(dot_general(a, b)) that only swaps the two free parts is dot_general(b, a): JAX
  writes a weight gradient that way, and MLX's matmul reads a transposed operand in place
  while a transposed result must be copied before the next element-wise op.
- A while loop that counts an integer from a constant to a constant bound by one is marked
  with its trip count (attrs["trip_count"]), so the lowering runs it without reading its
  condition back; when count x body size is small it is marked attrs["unroll"] and traced
  straight into the enclosing mx.compile, as a native MLX loop would be.
"""

from __future__ import annotations

import numpy as np

from .importer import DotDims
from .ir import Block, Module, Op, Operation, TensorType, Value, walk

# Operations a loop may put into one mx.compile trace when unrolled (trip count x body ops).
UNROLL_LIMIT = 10_000


def _uses(module: Module) -> dict[int, int]:
    count: dict[int, int] = {}
    for fn in module.functions.values():
        for operation in walk(fn.body):
            for v in operation.operands:
                count[id(v)] = count.get(id(v), 0) + 1
    return count


def _definitions(module: Module) -> dict[int, Operation]:
    return {id(r): o for fn in module.functions.values() for o in walk(fn.body)
            for r in o.results}


def fold_dot_transpose(module: Module) -> Module:
    defs, uses = _definitions(module), _uses(module)
    for fn in module.functions.values():
        for operation in walk(fn.body):
            if operation.op is not Op.TRANSPOSE:
                continue
            dot = defs.get(id(operation.operands[0]))
            if dot is None or dot.op is not Op.DOT_GENERAL or uses.get(id(dot.results[0])) != 1:
                continue
            dims: DotDims = dot.attrs["dot_dimension_numbers"]
            lhs, rhs = dot.operands
            if not isinstance(lhs.type, TensorType) or not isinstance(rhs.type, TensorType):
                continue
            nb = len(dims.lhs_batch)
            nl = len(lhs.type.shape) - nb - len(dims.lhs_contract)
            nr = len(rhs.type.shape) - nb - len(dims.rhs_contract)
            swapped = [*range(nb), *range(nb + nl, nb + nl + nr), *range(nb, nb + nl)]
            if list(operation.attrs["permutation"]) != swapped:
                continue
            operation.op = Op.DOT_GENERAL
            operation.operands = [rhs, lhs]
            operation.attrs = {**dot.attrs, "dot_dimension_numbers": DotDims(
                dims.rhs_batch, dims.lhs_batch, dims.rhs_contract, dims.lhs_contract)}
            if "precision_config" in dot.attrs and dot.attrs["precision_config"]:
                operation.attrs["precision_config"] = tuple(dot.attrs["precision_config"])[::-1]
            uses[id(dot.results[0])] = 0  # now dead: eliminate_dead_code drops it
    return module


def _constant_int(v: Value, defs: dict[int, Operation]) -> int | None:
    o = defs.get(id(v))
    if o is None or o.op is not Op.CONSTANT:
        return None
    t = v.type
    if not isinstance(t, TensorType) or t.shape != () or not t.dtype.startswith(("int", "uint")):
        return None
    return int(np.asarray(o.attrs["value"]).reshape(()))


def trip_count(loop: Operation, defs: dict[int, Operation]) -> int | None:
    """Iterations of `while (i < bound) { ...; i = i + 1 }` with constant start and bound."""
    cond, body = loop.regions
    compare = [o for o in cond.ops[:-1] if o.op is not Op.CONSTANT]
    if len(compare) != 1 or compare[0].op is not Op.COMPARE:
        return None
    test = compare[0]
    if test.attrs.get("comparison_direction") != "LT" or \
            cond.terminator.operands[0] is not test.results[0]:
        return None
    counter, bound_value = test.operands
    if counter not in cond.args:
        return None
    i = cond.args.index(counter)
    start, bound = _constant_int(loop.operands[i], defs), _constant_int(bound_value, defs)
    step = defs.get(id(body.terminator.operands[i]))
    if start is None or bound is None or step is None or step.op is not Op.ADD:
        return None
    a, b = step.operands
    one = b if a is body.args[i] else a if b is body.args[i] else None
    if one is None or _constant_int(one, defs) != 1:
        return None
    return max(0, bound - start)


def _size(block: Block, module: Module, defs: dict[int, Operation],
          seen: frozenset[str] = frozenset()) -> int:
    """Operations one run of `block` traces: loops count once per iteration, calls inline."""
    n = 0
    for operation in block.ops:
        n += 1
        regions = [_size(r, module, defs, seen) for r in operation.regions]
        if operation.op is Op.WHILE:
            n += regions[0] + (trip_count(operation, defs) or 1) * regions[1]
        else:
            n += sum(regions)
        callee = operation.attrs.get("callee")
        if callee and callee in module.functions and callee not in seen:
            n += _size(module.functions[callee].body, module, defs, seen | {callee})
    return n


def mark_counted_loops(module: Module) -> Module:
    defs = _definitions(module)
    for fn in module.functions.values():
        for operation in walk(fn.body):
            if operation.op is not Op.WHILE:
                continue
            n = trip_count(operation, defs)
            if n is None:
                continue
            operation.attrs["trip_count"] = n
            size = n * _size(operation.regions[1], module, defs)
            operation.attrs["unroll"] = size <= UNROLL_LIMIT
    return module


def rewrite(module: Module) -> Module:
    return mark_counted_loops(fold_dot_transpose(module))
