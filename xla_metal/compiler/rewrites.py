"""Rewrites of exact StableHLO patterns into cheaper ones, and loop analysis (one pass).

- transpose(dot_general(a, b)) that only swaps the two free parts is dot_general(b, a): JAX
  writes a weight gradient that way, and MLX's matmul reads a transposed operand in place
  while a transposed result must be copied before the next element-wise op.
- convolution(x, reverse(w)) over kernel spatial dimensions is convolution(x, w) with those
  dimensions in attrs["window_reversal"]: JAX writes the input gradient of a convolution
  that way, and MLX's GPU convolution flips a kernel itself (its backward-input kernel),
  where a reversed copy sends it down a slower path.
- A while loop that counts an integer from a constant to a constant bound by one is marked
  with its trip count (attrs["trip_count"]), so the lowering runs it without reading its
  condition back; when count x body size is small it is marked attrs["unroll"] and traced
  straight into the enclosing mx.compile, as a native MLX loop would be; otherwise
  attrs["chunk"] says how many iterations one compiled call runs.
- A reduce whose init is its combiner's identity (JAX's sums start from +0.0, its maxima from
  -inf) is marked attrs["init_is_identity"]: combining the init would cost an Add and a
  Broadcast node per reduce, and change no value (MLX's own sums start from +0.0).
- A reduce read only by reshapes, and by broadcast_in_dims that put its kept dims back where
  they were, keeps its reduced dims as size 1 (attrs["keepdims"]): MLX's reduction then needs
  no Squeeze node and the broadcast no Reshape (softmax, norms and their gradients are full of
  this pair).
- maximum(x, -inf) and minimum(x, +inf) (the type's bound for integers) are x: jnp.max's
  initial=-inf puts one after the max of every jax.nn.softmax, a kernel of its own on MLX.
- A broadcast_in_dim of a broadcast_in_dim is one broadcast_in_dim of the first's operand:
  JAX broadcasts a norm's scale [d] to [1, 1, d] and that to [b, s, d]; the middle one is a
  Broadcast node of its own, which, read by two kernels, is fused into neither.
- Slices of one value that cut it along one axis into disjoint pieces (jnp.split, a q / k / v
  projection cut in three) become one split op (Op.SPLIT): one MLX Split node with a result
  per piece, where each Slice was a node of its own that the host evaluates.
- A dynamic_slice / dynamic_update_slice start index known at compile time (a constant, or
  integer arithmetic on constants) is clamped now, as the op would clamp it
  (attrs["static_starts"]: the clamped int, or None for a computed one). A scan's slices
  have one computed index and zeros: clamping each on the device cost four nodes and a
  Concatenate per op, and with one computed start a GPU gathers or scatters the row in one
  kernel where a dynamic slice launches two.
"""

from __future__ import annotations

import operator

import numpy as np

from ..runtime.dtypes import MLX_DTYPE, PAIRS
from .importer import DotDims
from .ir import Block, Module, Op, Operation, TensorType, Value, blocks, operand_orders, walk
from .lowering.regions import combiner

# Operations a loop may put into one mx.compile trace when unrolled (trip count x body ops).
UNROLL_LIMIT = 10_000
# A counted loop not unrolled runs this many body operations (a whole number of iterations,
# at least one) per compiled call: fewer calls, and MLX fuses across iterations.
CHUNK_OPS = 2_000


def _users(module: Module) -> dict[int, list[Operation]]:
    """Value id -> the operations that read it (one entry per operand slot)."""
    users: dict[int, list[Operation]] = {}
    for fn in module.functions.values():
        for operation in walk(fn.body):
            for v in operation.operands:
                users.setdefault(id(v), []).append(operation)
    return users


def definitions(module: Module) -> dict[int, Operation]:
    return {id(r): o for fn in module.functions.values() for o in walk(fn.body)
            for r in o.results}


def fold_dot_transpose(module: Module) -> Module:
    defs, users = definitions(module), _users(module)
    for fn in module.functions.values():
        for operation in walk(fn.body):
            if operation.op is not Op.TRANSPOSE:
                continue
            dot = defs.get(id(operation.operands[0]))
            if dot is None or dot.op is not Op.DOT_GENERAL or \
                    len(users.get(id(dot.results[0]), [])) != 1:
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
            users[id(dot.results[0])] = []  # now dead: eliminate_dead_code drops it
    return module


def fold_conv_reverse(module: Module) -> Module:
    defs = definitions(module)
    for fn in module.functions.values():
        for operation in walk(fn.body):
            if operation.op is not Op.CONVOLUTION:
                continue
            reverse = defs.get(id(operation.operands[1]))
            if reverse is None or reverse.op is not Op.REVERSE:
                continue
            spatial = operation.attrs["dimension_numbers"].kernel_spatial_dimensions
            reversed_dims = set(reverse.attrs["dimensions"])
            if not reversed_dims <= set(spatial):
                continue
            before = operation.attrs.get("window_reversal")
            if before is None:
                before = (False,) * len(spatial)
            operation.attrs["window_reversal"] = tuple(
                bool(r) != (d in reversed_dims) for r, d in zip(before, spatial, strict=True))
            operation.operands = [operation.operands[0], reverse.operands[0]]
    return module


def _constant_int(v: Value, defs: dict[int, Operation]) -> int | None:
    o = defs.get(id(v))
    if o is None or o.op is not Op.CONSTANT:
        return None
    t = v.type
    if not isinstance(t, TensorType) or t.shape != () or not t.dtype.startswith(("int", "uint")):
        return None
    return int(np.asarray(o.attrs["value"]).reshape(()))


# Integer scalar arithmetic folded by known_int (JAX writes a constant start index of
# dynamic_slice as select(false, 0 + n, 0)).
_ARITHMETIC = {Op.ADD: operator.add, Op.SUBTRACT: operator.sub, Op.MULTIPLY: operator.mul}
_ORDER = {"EQ": operator.eq, "NE": operator.ne, "LT": operator.lt, "LE": operator.le,
          "GT": operator.gt, "GE": operator.ge}


def known_int(v: Value, defs: dict[int, Operation], depth: int = 0) -> int | None:
    """The value of an integer or bool scalar computed from constants alone, if it is one
    (None where any input it needs is computed, or a step would leave its type's range)."""
    o, t = defs.get(id(v)), v.type
    if o is None or depth > 16 or not isinstance(t, TensorType) or t.shape != () or \
            not t.dtype.startswith(("int", "uint", "bool")):
        return None
    if o.op is Op.CONSTANT:
        return int(np.asarray(o.attrs["value"]).reshape(()))
    if o.op is Op.SELECT:
        pred = known_int(o.operands[0], defs, depth + 1)
        return None if pred is None else known_int(o.operands[1 if pred else 2], defs,
                                                    depth + 1)
    known = [known_int(a, defs, depth + 1) for a in o.operands]
    args = [a for a in known if a is not None]
    if len(args) != len(known):
        return None
    if o.op in _ARITHMETIC and len(args) == 2:
        result = _ARITHMETIC[o.op](*args)
    elif o.op is Op.COMPARE and o.attrs.get("comparison_direction") in _ORDER:
        result = int(_ORDER[o.attrs["comparison_direction"]](*args))
    elif o.op is Op.CONVERT:
        result = args[0]
    else:
        return None
    if t.dtype == "bool":
        return result if result in (0, 1) else None
    info = np.iinfo(np.dtype(t.dtype))
    return result if info.min <= result <= info.max else None


def trip_count(loop: Operation, defs: dict[int, Operation]) -> int | None:
    """Iterations of `while (i < bound) { ...; i = i + 1 }` with constant start and bound."""
    counted = counted_loop(loop, defs)
    return None if counted is None else counted[2]


def counted_loop(loop: Operation, defs: dict[int, Operation]) -> tuple[int, int, int] | None:
    """(the counter's position among the loop's values, its start, the trip count) of
    `while (i < bound) { ...; i = i + 1 }` with constant start and bound."""
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
    return i, start, max(0, bound - start)


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
    defs = definitions(module)
    for fn in module.functions.values():
        for operation in walk(fn.body):
            if operation.op is not Op.WHILE:
                continue
            n = trip_count(operation, defs)
            if n is None:
                continue
            operation.attrs["trip_count"] = n
            body = max(1, _size(operation.regions[1], module, defs))
            operation.attrs["unroll"] = n * body <= UNROLL_LIMIT
            operation.attrs["chunk"] = max(1, min(n, CHUNK_OPS // body))
    return module


def _is_identity(kind: str, value: object) -> bool:
    """Is `value` (a scalar) the identity of the monoid `kind` for its dtype?"""
    v = np.asarray(value).reshape(())
    dt = v.dtype
    if dt == np.bool_:
        return bool(v) == (kind in ("MUL", "MIN", "AND"))
    if dt.kind in "iu":
        info = np.iinfo(dt)
        want = {"ADD": 0, "OR": 0, "MUL": 1, "MAX": info.min, "MIN": info.max,
                "AND": -1 if dt.kind == "i" else info.max}
        return int(v) == want[kind]
    if dt.kind == "c":
        z = complex(v)
        return kind in ("ADD", "MUL") and z.imag == 0 and not np.signbit(z.imag) and \
            _is_identity(kind, np.float64(z.real))
    x = float(v)
    return {"ADD": x == 0 and not np.signbit(x), "MUL": x == 1.0,
            "MAX": x == -np.inf, "MIN": x == np.inf}.get(kind, False)


def is_native(t: object) -> bool:
    """A type MLX holds as it is (not a float8 carrier or a complex128 pair)."""
    return isinstance(t, TensorType) and t.dtype in MLX_DTYPE and t.dtype not in PAIRS


def simplify_reductions(module: Module) -> Module:
    defs, users = definitions(module), _users(module)
    for fn in module.functions.values():
        for operation in walk(fn.body):
            if operation.op is not Op.REDUCE or len(operation.results) != 1:
                continue
            kind = combiner(operation.regions[0])
            x, out = operation.operands[0], operation.results[0]
            if kind in (None, "SET") or not is_native(x.type) or not is_native(out.type):
                continue
            init = defs.get(id(operation.operands[1]))
            if init is not None and init.op is Op.CONSTANT and \
                    _is_identity(kind, init.attrs["value"]):
                operation.attrs["init_is_identity"] = True
            _keep_reduced_dims(operation, users.get(id(out), []))
    return module


def _keep_reduced_dims(reduce: Operation, readers: list[Operation]) -> None:
    x, out = reduce.operands[0].type, reduce.results[0].type
    assert isinstance(x, TensorType) and isinstance(out, TensorType)
    axes = {int(d) for d in reduce.attrs["dimensions"]}
    kept = [d for d in range(x.rank) if d not in axes]
    if not readers or not axes:
        return
    for reader in readers:
        if reader.op is Op.RESHAPE:
            continue
        target = reader.results[0].type if reader.op is Op.BROADCAST_IN_DIM else None
        if not isinstance(target, TensorType) or target.rank < x.rank:
            return
        offset = target.rank - x.rank
        if [int(d) for d in reader.attrs["broadcast_dimensions"]] != [d + offset for d in kept]:
            return
    reduce.attrs["keepdims"] = True
    reduce.results[0].type = TensorType(
        tuple(1 if d in axes else n for d, n in enumerate(x.shape)), out.dtype)
    for reader in readers:
        target = reader.results[0].type
        if reader.op is Op.BROADCAST_IN_DIM and isinstance(target, TensorType):
            # the kept value has x's rank: its dims go, in order, to the target's last ones
            reader.attrs["broadcast_dimensions"] = tuple(range(target.rank - x.rank, target.rank))


# The first start-index operand of the ops whose starts are clamped.
_FIRST_START = {Op.DYNAMIC_SLICE: 1, Op.DYNAMIC_UPDATE_SLICE: 2}


def mark_static_starts(module: Module) -> Module:
    defs = definitions(module)
    for fn in module.functions.values():
        for operation in walk(fn.body):
            first = _FIRST_START.get(operation.op)
            x = operation.operands[0].type if first else None
            if first is None or not isinstance(x, TensorType):
                continue
            sizes = operation.attrs["slice_sizes"] if operation.op is Op.DYNAMIC_SLICE \
                else getattr(operation.operands[1].type, "shape", None)
            if sizes is None:
                continue
            starts: list[int | None] = []
            for v, n, k in zip(operation.operands[first:], x.shape, sizes, strict=True):
                c = known_int(v, defs)
                starts.append(None if c is None else min(max(c, 0), max(n - int(k), 0)))
            operation.attrs["static_starts"] = tuple(starts)
    return module


_BOUND_KIND = {Op.MAXIMUM: "MAX", Op.MINIMUM: "MIN"}


def _splat_value(v: Value, defs: dict[int, Operation]) -> object | None:
    """The one value of a constant, read through broadcast_in_dims, or None."""
    o = defs.get(id(v))
    while o is not None and o.op is Op.BROADCAST_IN_DIM:
        o = defs.get(id(o.operands[0]))
    if o is None or o.op is not Op.CONSTANT:
        return None
    values = np.asarray(o.attrs["value"]).reshape(-1)
    return values[0] if values.size and (values == values[0]).all() else None


def drop_identity_bounds(module: Module) -> Module:
    defs = definitions(module)
    same: dict[int, Value] = {}  # a maximum / minimum's result id -> the operand it equals
    for fn in module.functions.values():
        for operation in walk(fn.body):
            kind = _BOUND_KIND.get(operation.op)
            if kind is None:
                continue
            out = operation.results[0]
            for x, bound in operand_orders(operation):
                value = _splat_value(bound, defs)
                if x.type == out.type and is_native(x.type) and value is not None and \
                        _is_identity(kind, value):
                    same[id(out)] = x
                    break
    if same:
        for fn in module.functions.values():
            _read_through(fn.body, same)
    return module


def compose_broadcasts(module: Module) -> Module:
    """A broadcast_in_dim of a broadcast_in_dim reads the first one's operand, with the two
    dimension maps composed (the first is then dead, for eliminate_dead_code)."""
    defs = definitions(module)
    for fn in module.functions.values():
        for operation in walk(fn.body):  # in program order: a chain composes from its start
            inner = defs.get(id(operation.operands[0])) \
                if operation.op is Op.BROADCAST_IN_DIM else None
            if inner is None or inner.op is not Op.BROADCAST_IN_DIM or \
                    not is_native(inner.operands[0].type):
                continue
            outer_dims = operation.attrs["broadcast_dimensions"]
            operation.attrs = {**operation.attrs, "broadcast_dimensions": tuple(
                outer_dims[d] for d in inner.attrs["broadcast_dimensions"])}
            operation.operands = [inner.operands[0]]
    return module


def _read_through(block: Block, same: dict[int, Value]) -> None:
    """Operands that are keys of `same` replaced by what they equal; a block's return keeps
    its operands (a program returning its argument, or one value twice, is not made here)."""
    for operation in block.ops[:-1]:
        for i, v in enumerate(operation.operands):
            while id(v) in same:
                v = same[id(v)]
            operation.operands[i] = v
        for region in operation.regions:
            _read_through(region, same)


def axis_cut(operation: Operation) -> tuple[int, int, int] | None:
    """(axis, start, limit) when a slice keeps every dim whole but one, with stride 1."""
    x, out = operation.operands[0].type, operation.results[0].type
    if not (is_native(x) and is_native(out)):
        return None
    assert isinstance(x, TensorType)
    start, limit = operation.attrs["start_indices"], operation.attrs["limit_indices"]
    strides = operation.attrs.get("strides") or (1,) * len(start)
    cut = [d for d, (s, e, n) in enumerate(zip(start, limit, x.shape, strict=True))
           if (s, e) != (0, n)]
    if len(cut) != 1 or any(k != 1 for k in strides):
        return None
    return cut[0], int(start[cut[0]]), int(limit[cut[0]])


def split_of(x: Value, axis: int, ranges: list[tuple[int, int]], results: list[Value],
             loc: str) -> Operation:
    """Op.SPLIT of x along `axis` defining results[i] as x's [start, limit) of ranges[i]
    (ranges that are disjoint, in any order; a range given twice names one piece twice)."""
    assert isinstance(x.type, TensorType)
    bounds = sorted({end for r in ranges for end in r} - {0, x.type.shape[axis]})
    starts = [0, *bounds]
    return Operation(Op.SPLIT, [x], results,
                     {"axis": axis, "bounds": tuple(bounds),
                      "pieces": tuple(starts.index(start) for start, _ in ranges)}, loc=loc)


def replace_in(block: Block, placed: dict[int, list[Operation]]) -> None:
    """Each operation of `block` whose id is a key of `placed` replaced by its list (empty:
    dropped)."""
    if placed:
        block.ops = [x for o in block.ops for x in placed.get(id(o), [o])]


def split_sibling_slices(module: Module) -> Module:
    """Each block's slices of one value along one axis, if disjoint, as one Op.SPLIT."""
    for fn in module.functions.values():
        for block in list(blocks(fn.body)):
            _split_in(block)
    return module


def _split_in(block: Block) -> None:
    groups: dict[tuple[int, int], list[tuple[Operation, int, int]]] = {}
    for operation in block.ops:
        cut = axis_cut(operation) if operation.op is Op.SLICE else None
        if cut is not None:
            axis, start, limit = cut
            groups.setdefault((id(operation.operands[0]), axis), []).append(
                (operation, start, limit))
    placed: dict[int, list[Operation]] = {}  # slice id -> the split in its place, or []
    for (_, axis), cuts in groups.items():
        ranges = sorted((start, limit) for _, start, limit in cuts)
        if len(cuts) < 2 or any(start >= limit for start, limit in ranges) or \
                any(a[1] > b[0] for a, b in zip(ranges, ranges[1:], strict=False)):
            continue  # one slice, an empty or overlapping one: kept as they are
        first = cuts[0][0]
        # In the first slice's place: x is defined before it, every result is read after
        placed[id(first)] = [split_of(first.operands[0], axis,
                                      [(start, limit) for _, start, limit in cuts],
                                      [o.results[0] for o, _, _ in cuts], first.loc)]
        placed.update((id(o), []) for o, _, _ in cuts[1:])
    replace_in(block, placed)


def rewrite(module: Module) -> Module:
    """Every rewrite above but drop_identity_bounds and compose_broadcasts, which run first,
    as pipeline stages of their own: the bounds and broadcasts they leave dead must be gone
    before simplify_reductions counts a reduce's readers (a softmax's max is read by one)."""
    return mark_counted_loops(mark_static_starts(simplify_reductions(split_sibling_slices(
        fold_conv_reverse(fold_dot_transpose(module))))))
