"""sort (stable, any comparator) and chlo.top_k.

Fast path: when the comparator is `compare(f(lhs_k), f(rhs_k))` for one operand k (JAX's
forms: plain LT/GT, or its float canonicalization followed by a TOTALORDER LT), the keys f(x)
are computed by running that part of the comparator once, turned into order-preserving
unsigned integers, combined with the position (stability) and argsorted. Any other
comparator (several keys, custom ones) runs a stable bottom-up merge sort that evaluates the
comparator element-wise on whole arrays, with a binary search for each element's rank.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import mlx.core as mx

from ..ir import Block, Op, Operation, Value
from .elementwise import _total_order_key
from .registry import lowering

if TYPE_CHECKING:
    from ..plan import BlockPlan

_FLOATS = (mx.float16, mx.bfloat16, mx.float32, mx.float64)
_UNSIGNED = {8: mx.uint8, 16: mx.uint16, 32: mx.uint32, 64: mx.uint64}


def _depends(block: Block, value: Value) -> set[int]:
    """Indices of the block args that `value` depends on (through ops of the block)."""
    producer = {id(r): o for o in block.ops for r in o.results}
    args = {id(a): i for i, a in enumerate(block.args)}
    seen: set[int] = set()
    out: set[int] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if id(v) in args:
            out.add(args[id(v)])
        elif id(v) in producer:
            o = producer[id(v)]
            if o.regions:
                out.add(-1)  # nested regions: not analysed
            stack.extend(o.operands)
    return out


def _key_form(block: Block) -> tuple[int, str, str, Value] | None:
    """(operand k, direction, compare type, lhs key value) for the single-key form."""
    ret = block.terminator
    if len(ret.operands) != 1:
        return None
    producer = {id(r): o for o in block.ops for r in o.results}
    cmp = producer.get(id(ret.operands[0]))
    if cmp is None or cmp.op is not Op.COMPARE:
        return None
    direction = cmp.attrs["comparison_direction"]
    if direction not in ("LT", "GT"):
        return None
    lhs, rhs = cmp.operands
    dl, dr = _depends(block, lhs), _depends(block, rhs)
    if len(dl) != 1 or len(dr) != 1:
        return None
    (a,), (b,) = dl, dr
    if a % 2 != 0 or b != a + 1:
        return None
    if not _same_chain(block, lhs, rhs, block.args[a], block.args[b]):
        return None
    return a // 2, direction, cmp.attrs.get("compare_type", ""), lhs


def _same_chain(block: Block, x: Value, y: Value, ax: Value, ay: Value) -> bool:
    """x is computed from ax exactly as y is from ay (the same ops and attributes)."""
    producer = {id(r): o for o in block.ops for r in o.results}
    return _same_values(x, y, block, ax, ay, producer)


def _same_values(u: Value, v: Value, block: Block, ax: Value, ay: Value,
                 producer: dict[int, Operation]) -> bool:
    # (a module-level function: a nested one calling itself would be a reference cycle)
    if u is ax and v is ay:
        return True
    if u is v:
        return id(u) not in producer or not _depends(block, u)
    pu, pv = producer.get(id(u)), producer.get(id(v))
    if pu is None or pv is None or pu.op is not pv.op or pu.regions or pv.regions:
        return False
    if pu.op is Op.CONSTANT:
        return bool((pu.attrs["value"] == pv.attrs["value"]).all()) if hasattr(
            pu.attrs["value"], "all") else pu.attrs["value"] == pv.attrs["value"]
    if {k: v for k, v in pu.attrs.items() if k != "value"} != \
            {k: v for k, v in pv.attrs.items() if k != "value"}:
        return False
    if pu.results.index(u) != pv.results.index(v):
        return False
    return all(_same_values(a, b, block, ax, ay, producer)
               for a, b in zip(pu.operands, pv.operands, strict=True))


_KEY_PLANS: weakref.WeakKeyDictionary[Operation, tuple[BlockPlan, list[int]]] = \
    weakref.WeakKeyDictionary()


def _key_function(ctx, op: Operation, key_value: Value) -> Callable[..., mx.array]:
    """Runs the comparator up to its lhs key: f(block args) -> the key array."""
    cached = _KEY_PLANS.get(op)
    region = op.regions[0]
    original = ctx.region_plan(0)
    if cached is None:
        from ..plan import BlockPlan

        ret = Operation(Op.REGION_RETURN, [key_value], [])
        block = Block(list(region.args), [o for o in region.ops[:-1]] + [ret])
        plan = BlockPlan(ctx.program, block)
        where = {id(v): i for i, v in enumerate(original.captures)}
        cached = (plan, [where[id(v)] for v in plan.captures])
        _KEY_PLANS[op] = cached
    plan, picks = cached
    captured = ctx.captures[0]
    return lambda *args: plan.run([captured[i] for i in picks], args)[0]


def orderable(key: mx.array, compare_type: str) -> mx.array | None:
    """Unsigned ints (uint32, or uint64 for 64-bit keys) ordered like `key`."""
    w = key.dtype.size * 8
    if w == 64:
        if key.dtype == mx.float64 and compare_type != "TOTALORDER":
            key = mx.where(mx.isnan(key), mx.array(float("nan"), dtype=key.dtype),
                           mx.where(key == 0, mx.zeros_like(key), key))
        if key.dtype == mx.float64:
            key = _total_order_key(key)
        if key.dtype == mx.uint64:
            return key
        return key.view(mx.uint64) ^ mx.array(-(2 ** 63), dtype=mx.int64).view(mx.uint64)
    if key.dtype == mx.bool_:
        return key.astype(mx.uint32)
    if key.dtype in _FLOATS:
        if key.dtype == mx.float64:
            return None
        if compare_type != "TOTALORDER":  # IEEE order; NaNs are unordered: place them last
            key = mx.where(mx.isnan(key), mx.array(float("nan"), dtype=key.dtype),
                           mx.where(key == 0, mx.zeros_like(key), key))
        k = _total_order_key(key)
        return (k.view(_UNSIGNED[w]) ^ mx.array(1 << (w - 1), dtype=_UNSIGNED[w])).astype(
            mx.uint32)
    if key.dtype in _UNSIGNED.values():
        return key.astype(mx.uint32)
    sign = mx.array(1 << (w - 1), dtype=_UNSIGNED[w])
    return (key.view(_UNSIGNED[w]) ^ sign).astype(mx.uint32)


def stable_argsort(u: mx.array, descending: bool) -> mx.array:
    """Stable argsort along the last axis of uint32 or uint64 keys.

    A uint32 key and the position make one uint64 key with no ties; a uint64 key is sorted in
    two such passes (low word, then high word with the first pass's order as the tie-break).
    """
    n = u.shape[-1]
    if descending:
        u = mx.bitwise_invert(u)
    pos = mx.broadcast_to(mx.arange(n, dtype=mx.uint32), u.shape).astype(mx.uint64)
    shift = mx.array(32, dtype=mx.uint64)
    if u.dtype != mx.uint64:
        return mx.argsort((u.astype(mx.uint64) << shift) | pos, axis=-1)
    low = u & mx.array(0xFFFFFFFF, dtype=mx.uint64)
    first = mx.argsort((low << shift) | pos, axis=-1)
    high = mx.take_along_axis(u >> shift, first, axis=-1)
    second = mx.argsort((high << shift) | pos, axis=-1)
    return mx.take_along_axis(first, second, axis=-1)


def _rank(lt: Callable[[list[mx.array], list[mx.array]], mx.array], run: int,
          items: list[mx.array], others: list[mx.array], strict: bool) -> mx.array:
    """How many of the sorted run `others` go before each item (binary search)."""
    lo = mx.zeros(items[0].shape, dtype=mx.int32)
    hi = mx.full(items[0].shape, run, dtype=mx.int32)
    for _ in range(run.bit_length()):
        mid = (lo + hi) // 2
        safe = mx.minimum(mid, run - 1)
        probe = [mx.take_along_axis(o, safe, axis=-1) for o in others]
        before = lt(probe, items) if strict else mx.logical_not(lt(items, probe))
        before = before & (mid < hi)
        lo = mx.where(before, mid + 1, lo)
        hi = mx.where(before, hi, mid)
    return lo


def merge_sort(less: Callable[[list[mx.array], list[mx.array]], mx.array],
               xs: list[mx.array]) -> list[mx.array]:
    """Stable sort of arrays along their last axis by a strict-weak-order `less`."""
    n = xs[0].shape[-1]
    lead = xs[0].shape[:-1]
    p = 1
    while p < n:
        p *= 2
    valid = mx.concatenate([mx.ones((*lead, n), dtype=mx.bool_),
                            mx.zeros((*lead, p - n), dtype=mx.bool_)], axis=-1)
    vals = [mx.concatenate([x, mx.broadcast_to(x[..., :1], (*lead, p - n))], axis=-1)
            if p > n else x for x in xs]
    vals.append(valid)

    def lt(a: list[mx.array], b: list[mx.array]) -> mx.array:
        # padding sorts after everything
        return a[-1] & (mx.logical_not(b[-1]) | less(a[:-1], b[:-1]))

    run = 1
    while run < p:
        blocks = p // (2 * run)
        shaped = [v.reshape((*lead, blocks, 2, run)) for v in vals]
        left = [s[..., 0, :] for s in shaped]
        right = [s[..., 1, :] for s in shaped]
        local = mx.broadcast_to(mx.arange(run, dtype=mx.int32), left[0].shape)

        pos_left = local + _rank(lt, run, left, right, True)
        pos_right = local + _rank(lt, run, right, left, False)
        positions = mx.concatenate([pos_left, pos_right], axis=-1)
        merged = []
        for s_l, s_r in zip(left, right, strict=True):
            both = mx.concatenate([s_l, s_r], axis=-1)
            target = mx.zeros(both.shape, dtype=both.dtype)
            merged.append(mx.put_along_axis(target, positions, both, axis=-1))
        vals = [m.reshape((*lead, p)) for m in merged]
        run *= 2
    return [v[..., :n] for v in vals[:-1]]


def _moved(xs: Sequence[mx.array], dim: int) -> list[mx.array]:
    return [mx.moveaxis(x, dim, -1) for x in xs]


@lowering(Op.SORT)
def _sort(ctx, op: Operation, *xs: mx.array) -> Sequence[Any]:
    dim = int(op.attrs.get("dimension", -1))
    if dim < 0:
        dim += xs[0].ndim
    if xs[0].ndim == 0 or xs[0].shape[dim] <= 1:
        return list(xs)
    moved = _moved(xs, dim)
    form = _key_form(op.regions[0])
    if form is not None:
        k, direction, ctype, key_value = form
        key_fn = _key_function(ctx, op, key_value)
        args = [a for x in moved for a in (x, x)]
        keys = mx.broadcast_to(key_fn(*args), moved[k].shape)
        u = orderable(keys, ctype)
        if u is not None:
            order = stable_argsort(u, descending=direction == "GT")
            out = [mx.take_along_axis(x, order, axis=-1) for x in moved]
            return [mx.moveaxis(o, -1, dim) for o in out]
    body = ctx.region(0)

    def less(a: list[mx.array], b: list[mx.array]) -> mx.array:
        args = [v for pair in zip(a, b, strict=True) for v in pair]
        return body(*args)[0]

    out = merge_sort(less, moved)
    return [mx.moveaxis(o, -1, dim) for o in out]


@lowering(Op.CHLO_TOP_K)
def _top_k(ctx, op: Operation, x: mx.array) -> Sequence[Any]:
    k = int(op.attrs["k"])
    u = orderable(x, "TOTALORDER")
    if u is not None:
        order = stable_argsort(u, descending=True)
    else:
        order = mx.argsort(-x, axis=-1)
    order = order[..., :k]
    values = mx.take_along_axis(x, order, axis=-1)
    return [values, order.astype(mx.int32)]
