"""A counted loop's row reads and writes, done a slab of rows at a time.

A scan reads row i of each stacked input (dynamic_slice at the counter) and writes row i of
each stacked output (dynamic_update_slice) every iteration: two small kernels per array per
iteration, where a native MLX loop keeps Python lists and never makes them (a 256-step GRU
trained on an H100: 10 row writes forward and 10 row reads backward per iteration, each a
kernel launch costing more host time than the row's arithmetic).

A counted loop already runs attrs["chunk"] iterations per compiled call (rewrites.py). This
pass makes the chunk explicit: the body becomes `chunk` chained copies of itself (the loop
then runs trip_count // chunk times; a copy of the original loop runs the rest), and in that
longer body
- the reads of one loop-invariant array whose row index is the counter plus a constant, or a
  constant minus the counter (a reverse scan), become one dynamic_slice of the rows they span
  and a static slice of it per read (a view, no kernel);
- a chain of writes to one loop-carried array, each at such an index, the rows distinct and
  adjacent, becomes one concatenate of the rows and one dynamic_update_slice.
Both only where every index is inside the array on every trip (checked from the counter's
constant start and trip count), so no clamping can differ from the row-at-a-time program;
such slices are marked attrs["starts_in_range"] and their starts are not clamped.
Loops with no such read or write are left as they are.
"""

from __future__ import annotations

import os

import numpy as np

from .ir import Block, Module, Op, Operation, TensorType, Value, walk
from .rewrites import counted_loop, definitions, known_int

# XLA_METAL_LOOP_SLABS=0 turns this pass off (read when the pass runs, so tools can flip it).
ENABLED = os.environ.get("XLA_METAL_LOOP_SLABS", "1") != "0"


def _clone(ops: list[Operation], mapping: dict[int, Value]) -> list[Operation]:
    """Copies of `ops` reading mapping[v] for each mapped value v, with fresh results (added
    to the mapping)."""
    copies = []
    for o in ops:
        regions = [_clone_block(region, mapping) for region in o.regions]
        results = [Value(r.type) for r in o.results]
        mapping.update((id(r), n) for r, n in zip(o.results, results, strict=True))
        copies.append(Operation(o.op, [mapping.get(id(v), v) for v in o.operands], results,
                                dict(o.attrs), regions, o.loc))
    return copies


def _clone_block(block: Block, mapping: dict[int, Value]) -> Block:
    """A copy of a block with fresh arguments (what _clone does for its operations)."""
    args = [Value(a.type) for a in block.args]
    mapping.update((id(a), b) for a, b in zip(block.args, args, strict=True))
    return Block(args, _clone(block.ops, mapping))


def inline_calls(block: Block, module: Module) -> None:
    """Calls to functions with no regions, replaced by their operations (JAX puts a scan's
    row reads and writes, and a fori_loop's step, each in a function of its own)."""
    ops: list[Operation] = []
    for o in block.ops:
        fn = module.functions.get(o.attrs.get("callee", "")) if o.op is Op.CALL else None
        body = fn.body if fn is not None else None
        if body is None or any(x.regions for x in body.ops):
            ops.append(o)
            continue
        mapping = {id(a): v for a, v in zip(body.args, o.operands, strict=True)}
        copies = _clone(body.ops[:-1], mapping)
        returned = [mapping.get(id(v)) for v in body.terminator.operands]
        defined = {id(r) for c in copies for r in c.results}
        if len({id(v) for v in returned}) != len(returned) or \
                any(v is None or id(v) not in defined for v in returned):
            ops.append(o)  # returns an argument or one value twice: left a call
            continue
        # the call's result values, now defined by the copies
        renamed = {id(v): r for v, r in zip(returned, o.results, strict=True)}
        for c in copies:
            c.results = [renamed.get(id(r), r) for r in c.results]
            c.operands = [renamed.get(id(v), v) for v in c.operands]
        ops.extend(copies)
    block.ops = ops


def _unrolled(body: Block, times: int) -> Block:
    """`times` copies of the body, each copy's results the next one's arguments."""
    values = list(body.args)
    ops: list[Operation] = []
    for _ in range(times):
        mapping = {id(a): v for a, v in zip(body.args, values, strict=True)}
        ops.extend(_clone(body.ops[:-1], mapping))
        values = [mapping.get(id(v), v) for v in body.terminator.operands]
    end = Operation(body.terminator.op, values, [], dict(body.terminator.attrs), [],
                    body.terminator.loc)
    return Block(list(body.args), [*ops, end])


class _Rows:
    """The row access of one dynamic_slice / dynamic_update_slice: the axis, and its index
    as a * counter + b."""

    def __init__(self, axis: int, a: int, b: int) -> None:
        self.axis, self.a, self.b = axis, a, b


def _induction(body: Block, loop: Operation, index: int, start: int,
               defs: dict[int, Operation]) -> dict[int, tuple[int, int]]:
    """The counter and every other loop value that starts at a constant and steps by 1 (JAX's
    fori_loop carries its own i beside the loop's counter), as a * counter + b at the top
    of the body."""
    found = {id(body.args[index]): (1, 0)}
    for j, (arg, init) in enumerate(zip(body.args, loop.operands, strict=True)):
        step = defs.get(id(body.terminator.operands[j]))
        c = known_int(init, defs)
        if c is None or step is None or step.op is not Op.ADD or arg.type != init.type:
            continue
        others = [v for v in step.operands if v is not arg]
        if len(others) == 1 and known_int(others[0], defs) == 1:
            found[id(arg)] = (1, c - start)
    return found


def _affine(block: Block, known: dict[int, tuple[int, int]], defs: dict[int, Operation],
            counters: tuple[int, int]) -> dict[int, tuple[int, int]]:
    """Integer scalars of the block that are a * counter + b, given `known` ones. The counter
    at the top of the block runs from counters[0] to counters[1]: a select JAX puts around
    an index (wrapping a negative one) is decided by it where it can be."""
    known = dict(known)

    def of(v: Value) -> tuple[int, int] | None:
        if id(v) in known:
            return known[id(v)]
        c = known_int(v, defs)
        return None if c is None else (0, c)

    def below(v: Value, bound: Value) -> bool | None:
        """Is v < bound on every trip (True), on none (False), or not known (None)?"""
        ab, k = of(v), known_int(bound, defs)
        if ab is None or k is None:
            return None
        lows = [ab[0] * c + ab[1] for c in counters]
        return True if max(lows) < k else False if min(lows) >= k else None

    for o in block.ops:
        t = o.results[0].type if len(o.results) == 1 else None
        if not isinstance(t, TensorType) or t.shape != () or not t.dtype.startswith("int"):
            continue
        args = [of(v) for v in o.operands]
        if o.op is Op.CONVERT and args[0] is not None and o.operands[0].type == t:
            known[id(o.results[0])] = args[0]
        elif o.op is Op.NEGATE and args[0] is not None:
            known[id(o.results[0])] = (-args[0][0], -args[0][1])
        elif o.op in (Op.ADD, Op.SUBTRACT) and None not in args:
            (a1, b1), (a2, b2) = args  # type: ignore[misc]
            sign = 1 if o.op is Op.ADD else -1
            known[id(o.results[0])] = (a1 + sign * a2, b1 + sign * b2)
        elif o.op is Op.SELECT:
            test = defs.get(id(o.operands[0]))
            if test is None or test.op is not Op.COMPARE or \
                    test.attrs.get("comparison_direction") != "LT":
                continue
            taken = below(*test.operands)
            chosen = None if taken is None else args[1] if taken else args[2]
            if chosen is not None:
                known[id(o.results[0])] = chosen
    return known


def _row_access(o: Operation, affine: dict[int, tuple[int, int]]) -> _Rows | None:
    """The row access of a slice or update whose starts are 0 but on one axis, where it
    takes one row at a * counter + b (a = +-1), the whole extent on every other axis."""
    first = 1 if o.op is Op.DYNAMIC_SLICE else 2
    x = o.operands[0].type
    static = o.attrs.get("static_starts")
    if not isinstance(x, TensorType) or static is None:
        return None
    sizes = o.attrs["slice_sizes"] if o.op is Op.DYNAMIC_SLICE else \
        getattr(o.operands[1].type, "shape", None)
    computed = [d for d, k in enumerate(static) if k is None]
    if sizes is None or len(computed) != 1 or any(static[d] for d in range(len(static))
                                                  if d != computed[0]):
        return None
    d = computed[0]
    if sizes[d] != 1 or any(k != n for e, (k, n) in enumerate(zip(sizes, x.shape, strict=True))
                            if e != d):
        return None
    ab = affine.get(id(o.operands[first + d]))
    return None if ab is None or ab[0] not in (1, -1) else _Rows(d, *ab)


def _in_range(rows: list[_Rows], extent: int, start: int, chunk: int, trips: int) -> bool:
    """Every row index inside [0, extent) on every trip (the counter is start + chunk * t
    at the start of trip t)."""
    firsts = (start, start + chunk * (trips - 1))
    return all(0 <= r.a * c + r.b < extent for r in rows for c in firsts)


def _start(counter: Value, a: int, b: int) -> tuple[list[Operation], Value]:
    """Operations computing a * counter + b (a = +-1), and that value."""
    if a == 1 and b == 0:
        return [], counter
    t = counter.type
    assert isinstance(t, TensorType)
    c = Operation(Op.CONSTANT, [], [Value(t)], {"value": np.array(b, t.dtype)})
    operands = [counter, c.results[0]] if a == 1 else [c.results[0], counter]
    result = Value(t)
    return [c, Operation(Op.ADD if a == 1 else Op.SUBTRACT, operands, [result])], result


def _span(rows: list[_Rows], x: Value) -> tuple[int, int, list[int]]:
    """(lowest b, number of rows spanned, the slab's shape) of accesses to x."""
    lo = min(r.b for r in rows)
    n = max(r.b for r in rows) - lo + 1
    assert isinstance(x.type, TensorType)
    shape = list(x.type.shape)
    shape[rows[0].axis] = n
    return lo, n, shape


def _slab_read(group: list[Operation], rows: list[_Rows], counter: Value) -> list[Operation]:
    """One dynamic_slice of the rows the group's reads span (row a * counter + lo on), each
    read a static slice of it that keeps the read's result value."""
    first, d = group[0], rows[0].axis
    lo, _, shape = _span(rows, first.operands[0])
    ops, start = _start(counter, rows[0].a, lo)
    operands = list(first.operands)
    operands[1 + d] = start
    slab = Value(TensorType(tuple(shape), first.results[0].type.dtype))  # type: ignore[union-attr]
    ops.append(Operation(Op.DYNAMIC_SLICE, operands, [slab],
                         {**first.attrs, "slice_sizes": tuple(shape), "starts_in_range": True},
                         [], first.loc))
    for o, r in zip(group, rows, strict=True):
        begin, limit = [0] * len(shape), list(shape)
        begin[d], limit[d] = r.b - lo, r.b - lo + 1
        ops.append(Operation(Op.SLICE, [slab], o.results,
                             {"start_indices": tuple(begin), "limit_indices": tuple(limit),
                              "strides": (1,) * len(shape)}, [], o.loc))
    return ops


def _slab_write(chain: list[Operation], rows: list[_Rows], counter: Value) -> list[Operation]:
    """One concatenate of the chain's rows in index order and one dynamic_update_slice of it
    at row a * counter + lo, defining the chain's last result."""
    first, last, d = chain[0], chain[-1], rows[0].axis
    lo, _, shape = _span(rows, first.operands[0])
    ops, start = _start(counter, rows[0].a, lo)
    by_row = sorted(zip(rows, chain, strict=True), key=lambda p: p[0].b)
    stacked = Value(TensorType(tuple(shape), first.operands[0].type.dtype))  # type: ignore[union-attr]
    ops.append(Operation(Op.CONCATENATE, [o.operands[1] for _, o in by_row], [stacked],
                         {"dimension": d}, [], last.loc))
    operands = [first.operands[0], stacked, *first.operands[2:]]
    operands[2 + d] = start
    ops.append(Operation(Op.DYNAMIC_UPDATE_SLICE, operands, last.results,
                         {**first.attrs, "starts_in_range": True}, [], last.loc))
    return ops


def _users(block: Block) -> dict[int, list[Operation]]:
    """Value id -> the top-level operations of the block that read it, directly or inside
    a region (one entry per read)."""
    users: dict[int, list[Operation]] = {}
    for o in block.ops:
        for inner in [o, *(x for r in o.regions for x in walk(r))]:
            for v in inner.operands:
                users.setdefault(id(v), []).append(o)
    return users


def _write_chains(body: Block, accesses: dict[int, _Rows]) -> list[list[Operation]]:
    """Per loop-carried value: the row writes that build its next value one on another,
    when nothing else reads it or the writes' intermediate values."""
    users, chains = _users(body), []
    end = body.terminator
    for j, y in enumerate(body.args):
        chain: list[Operation] = []
        v = y
        while True:
            readers = users.get(id(v), [])
            if len(readers) != 1:
                break
            o = readers[0]
            if o is end:
                if end.operands.index(v) == j and chain:
                    chains.append(chain)
                break
            if o.op is not Op.DYNAMIC_UPDATE_SLICE or o.operands[0] is not v or \
                    id(o) not in accesses:
                break
            chain.append(o)
            v = o.results[0]
    return chains


def _adjacent(rows: list[_Rows]) -> bool:
    """One axis, one direction, and (for writes) distinct rows with no gap."""
    bs = sorted(r.b for r in rows)
    return len({(r.axis, r.a) for r in rows}) == 1 and bs == list(range(bs[0], bs[0] + len(bs)))


def _stage(loop: Operation, module: Module, defs: dict[int, Operation]) -> list[Operation]:
    """The loop, or (when it has slab-able reads or writes) the chunked loop and the loop of
    the remaining iterations."""
    counted = counted_loop(loop, defs)
    chunk, trips = int(loop.attrs.get("chunk", 1)), int(loop.attrs.get("trip_count", 0))
    if counted is None or chunk < 2 or trips < chunk:
        return [loop]
    index, start, _ = counted
    body = loop.regions[1]
    inline_calls(body, module)
    long_body = _unrolled(body, chunk)
    counter = long_body.args[index]
    local_defs = {**defs, **{id(r): o for o in long_body.ops for r in o.results}}
    body_defs = {**defs, **{id(r): o for o in body.ops for r in o.results}}
    main_trips = trips // chunk
    affine = _affine(long_body, _induction(body, loop, index, start, body_defs), local_defs,
                     (start, start + chunk * (main_trips - 1)))
    accesses = {id(o): r for o in long_body.ops
                if o.op in (Op.DYNAMIC_SLICE, Op.DYNAMIC_UPDATE_SLICE)
                and (r := _row_access(o, affine)) is not None}
    defined = {id(r) for o in long_body.ops for r in o.results}
    passed = {id(a) for j, a in enumerate(long_body.args)
              if long_body.terminator.operands[j] is a}

    def extent(o: Operation) -> int:
        return o.operands[0].type.shape[accesses[id(o)].axis]  # type: ignore[union-attr]

    def fits(ops: list[Operation]) -> bool:
        return _in_range([accesses[id(o)] for o in ops], extent(ops[0]), start, chunk,
                         main_trips)

    reads: dict[tuple[int, int, int], list[Operation]] = {}
    for o in long_body.ops:  # reads of a value the loop does not change
        x = o.operands[0] if o.op is Op.DYNAMIC_SLICE else None
        if x is not None and id(o) in accesses and id(x) not in defined and \
                (id(x) in passed or x not in long_body.args):
            r = accesses[id(o)]
            reads.setdefault((id(x), r.axis, r.a), []).append(o)
    # a slab spanning rows nobody reads is copied for nothing: at most twice the rows read
    read_groups = [g for g in reads.values() if len(g) > 1 and fits(g) and
                   _span([accesses[id(o)] for o in g], g[0].operands[0])[1] <= 2 * len(g)]
    chains = [c for c in _write_chains(long_body, accesses)
              if len(c) > 1 and _adjacent([accesses[id(o)] for o in c]) and fits(c)]
    if not read_groups and not chains:
        return [loop]
    replaced: dict[int, list[Operation]] = {}  # op -> what takes its place
    for g in read_groups:  # the slab where the first read was: what it reads is defined
        replaced.update((id(o), []) for o in g)
        replaced[id(g[0])] = _slab_read(g, [accesses[id(o)] for o in g], counter)
    for c in chains:
        replaced.update((id(o), []) for o in c[:-1])
        replaced[id(c[-1])] = _slab_write(c, [accesses[id(o)] for o in c], counter)
    long_body.ops = [n for o in long_body.ops for n in replaced.get(id(o), [o])]

    rest = trips - main_trips * chunk
    main_results = [Value(r.type) for r in loop.results] if rest else loop.results
    main = Operation(Op.WHILE, list(loop.operands), main_results,
                     {**loop.attrs, "trip_count": main_trips, "chunk": 1, "unrolled": chunk},
                     [_bounded(loop.regions[0], start + main_trips * chunk), long_body],
                     loop.loc)
    if not rest:
        return [main]
    mapping: dict[int, Value] = {}
    tail = Operation(Op.WHILE, main_results, loop.results,
                     {**loop.attrs, "trip_count": rest, "chunk": min(chunk, rest)},
                     [_clone_block(region, mapping) for region in loop.regions], loop.loc)
    return [main, tail]


def _bounded(cond: Block, bound: int) -> Block:
    """A copy of a counted loop's condition `i < n` testing `i < bound` instead."""
    copy = _clone_block(cond, {})
    test = next(o for o in copy.ops if o.op is Op.COMPARE)
    t = test.operands[1].type
    assert isinstance(t, TensorType)
    c = Operation(Op.CONSTANT, [], [Value(t)], {"value": np.array(bound, t.dtype)})
    test.operands = [test.operands[0], c.results[0]]
    copy.ops.insert(0, c)
    return copy


def stage_slabs(module: Module) -> Module:
    if not ENABLED:
        return module
    defs = definitions(module)
    for fn in list(module.functions.values()):
        _stage_block(fn.body, module, defs)
    return module


def _stage_block(block: Block, module: Module, defs: dict[int, Operation]) -> None:
    # (a module-level function: a nested one calling itself would be a reference cycle)
    ops: list[Operation] = []
    for o in block.ops:
        for region in o.regions:
            _stage_block(region, module, defs)
        ops.extend(_stage(o, module, defs) if o.op is Op.WHILE and
                   "trip_count" in o.attrs else [o])
    block.ops = ops
