"""Exact StableHLO patterns rewritten onto MLX's fused kernels (mx.softmax, mx.fast.*).

JAX lowers softmax and the normalizations users write to chains of reduce, broadcast and
element-wise ops; MLX has one kernel for each (on a GPU a single pass over the row). A rule
matches its pattern from the root op backward and fires only when

- every axis, dtype and constant is the one the kernel computes (epsilon is read from the
  program's constant, a mean divides by exactly the reduced size, max starts from -inf), and
- every interior value is read by the pattern alone: where the backward pass of a training
  step reuses an intermediate (JAX's default softmax gradient reads exp(x - max) and its
  sum), fusing would compute the kernel on top of the pieces, so the pattern is left alone.

The root op is rewritten in place (its result values keep their identity); the interior
becomes dead and eliminate_dead_code removes it. Patterns are tried from the last op
backward so the largest one (norm * scale + bias) wins over its core (the norm alone).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..element_types import numpy_dtype
from .ir import Module, Op, Operation, TensorType, Value, operand_orders, walk
from .lowering.regions import combiner

# XLA_METAL_FUSE=0 turns the pass off (tools/bench_fusions.py measures with and without it).
ENABLED = os.environ.get("XLA_METAL_FUSE", "1") != "0"
# Element types the fused kernels take (others keep their op-by-op lowering).
FUSED_DTYPES = frozenset({"float32", "float16", "bfloat16"})
_BROADCASTS = (Op.BROADCAST_IN_DIM, Op.RESHAPE)


@dataclass
class Fused:
    """What a rule found: the fused op, its operands and attributes, and the interior ops."""

    op: Op
    operands: list[Value]
    attrs: dict
    interior: list[Operation] = field(default_factory=list)


class Graph:
    """Definitions and use counts of every value in a module (counts only grow stale upward:
    a rewrite may leave a value counted as used by dead ops, which only makes later matches
    more cautious)."""

    def __init__(self, module: Module) -> None:
        self.defs: dict[int, Operation] = {}
        self.uses: dict[int, int] = {}
        for fn in module.functions.values():
            for o in walk(fn.body):
                for r in o.results:
                    self.defs[id(r)] = o
                for v in o.operands:
                    self.uses[id(v)] = self.uses.get(id(v), 0) + 1

    def op(self, v: Value, *kinds: Op) -> Operation | None:
        o = self.defs.get(id(v))
        return o if o is not None and o.op in kinds else None

    def source(self, v: Value) -> tuple[Value, list[int | None], list[Operation]] | None:
        """(u, labels, chain): v is u passed through the broadcast_in_dim/reshape ops (and
        identity converts, transposes of size-1 dims) of `chain`, which only insert or
        broadcast size-1 dims; labels[j]
        is the dim of u that v's dim j reads (None for a broadcast or size-1 dim)."""
        chain: list[Operation] = []
        while (o := self.op(v, *_BROADCASTS, Op.CONVERT, Op.TRANSPOSE)) is not None:
            if o.op is Op.CONVERT and _dtype(o.operands[0]) != _dtype(v):
                break  # a convert to the same type is an identity (JAX leaves a few)
            if o.op is Op.TRANSPOSE and not _moves_ones(o):
                break
            chain.append(o)
            v = o.operands[0]
        if not isinstance(v.type, TensorType):
            return None
        labels: list[int | None] = [i if n != 1 else None for i, n in enumerate(v.type.shape)]
        for o in reversed(chain):
            src, out = _shape(o.operands[0]), _shape(o.results[0])
            new: list[int | None] = [None] * len(out)
            if o.op is Op.CONVERT:
                continue
            if o.op is Op.BROADCAST_IN_DIM:
                for i, d in enumerate(o.attrs["broadcast_dimensions"]):
                    if src[i] == out[d]:
                        new[d] = labels[i]
            else:  # a reshape (or transpose of size-1 dims): keeps the non-1 dims' order
                carried = reshaped(src, out, labels)
                if carried is None:
                    return None
                new = carried
            labels = new
        return v, labels, chain

    def rows(self, v: Value, axes: tuple[int, ...], seen: list[Operation]) -> Value | None:
        """u when v is u's values repeated along `axes` (of v's rank; u holds exactly v's
        other non-1 dims, in order): a reduction result broadcast back over its axes."""
        shape = _shape(v)
        found = self.source(v)
        if found is None or any(a >= len(shape) for a in axes):
            return None
        u, labels, chain = found
        kept = [labels[j] for j in range(len(shape)) if j not in axes and shape[j] != 1]
        if any(labels[j] is not None for j in axes) or \
                kept != [i for i, n in enumerate(_shape(u)) if n != 1]:
            return None
        seen.extend(chain)
        return u

    def splat(self, v: Value) -> float | None:
        """The value of a constant with all elements equal, possibly broadcast (constants
        are not interior: another user may keep them, at no cost)."""
        found = self.source(v)
        if found is None:
            return None
        to = None
        if (cv := self.op(found[0], Op.CONVERT)) is not None:  # a constant in another type
            to, found = _dtype(found[0]), self.source(cv.operands[0])
        if found is None or (c := self.op(found[0], Op.CONSTANT)) is None:
            return None
        value = np.asarray(c.attrs["value"])
        if to is not None:
            if value.dtype.kind not in "fiu" or to not in FUSED_DTYPES:
                return None
            with np.errstate(over="ignore"):
                value = value.astype(numpy_dtype(to))
        if value.size == 0 or not np.all(value == value.flat[0]):
            return None
        return float(value.flat[0])

    def reduce(self, v: Value, kind: str, init: float, seen: list[Operation]
               ) -> tuple[Value, tuple[int, ...]] | None:
        """(x, axes) when v = reduce(x) over axes with the monoid `kind` from `init`."""
        o = self.op(v, Op.REDUCE)
        if o is None or len(o.results) != 1 or combiner(o.regions[0]) != kind:
            return None
        axes = tuple(sorted(int(d) for d in o.attrs["dimensions"]))
        if not axes or self.splat(o.operands[1]) != init:
            return None
        seen.append(o)
        return o.operands[0], axes

    def mean(self, v: Value, axes: tuple[int, ...], seen: list[Operation]) -> Value | None:
        """x when v = sum(x over axes) / N, N exactly the number of elements summed (v of
        x's rank, keepdims, or of the reduced rank)."""
        trial: list[Operation] = []
        v, narrow = self.narrowed(v, trial)  # float16/bfloat16: JAX averages in float32
        d = self.op(v, Op.DIVIDE)
        if d is None:
            return None
        total: Value | None = d.operands[0]  # the sum, or (keepdims) broadcast back
        if total is not None and self.op(total, Op.REDUCE) is None:
            total = self.rows(total, axes, trial)
        found = self.reduce(total, "ADD", 0.0, trial) if total is not None else None
        if found is None or found[1] != axes:
            return None
        x: Value | None = found[0]
        if self.splat(d.operands[1]) != math.prod(_shape(found[0])[a] for a in axes):
            return None
        if narrow is not None:
            x = self.widened(found[0], narrow, trial)
        if x is None:
            return None
        seen += [*trial, d]
        return x

    def narrowed(self, v: Value, seen: list[Operation]) -> tuple[Value, str | None]:
        """(w, dtype) when v = convert(w) from float32 to float16/bfloat16 (how JAX returns a
        sum or mean it took in float32); else (v, None)."""
        c = self.op(v, Op.CONVERT)
        if c is None or _dtype(v) not in ("float16", "bfloat16") or \
                _dtype(c.operands[0]) != "float32":
            return v, None
        seen.append(c)
        return c.operands[0], _dtype(v)

    def widened(self, v: Value, dtype: str, seen: list[Operation]) -> Value | None:
        """w when v = convert(w) from `dtype` to float32 (the input of that sum)."""
        c = self.op(v, Op.CONVERT)
        if c is None or _dtype(c.operands[0]) != dtype:
            return None
        seen.append(c)
        return c.operands[0]

    def vector(self, v: Value, seen: list[Operation]) -> Value | None:
        """w when v is a vector w broadcast along every dim but the last (a scale, a bias)."""
        shape = _shape(v)
        found = self.source(v)
        if found is None or not shape:
            return None
        w, labels, chain = found
        if _shape(w) != shape[-1:] or labels[-1] != (0 if shape[-1] != 1 else None) or \
                any(x is not None for x in labels[:-1]):
            return None
        seen.extend(chain)
        return w

    def replace(self, root: Operation, fused: Fused, consumed: set[int]) -> None:
        """Rewrite root in place as the fused op (its results keep their identity); the
        interior, now dead, is added to `consumed` so no later match reuses it."""
        consumed.update(id(o) for o in fused.interior)
        for v in fused.operands:
            self.uses[id(v)] = self.uses.get(id(v), 0) + 1
        root.op, root.operands, root.attrs = fused.op, fused.operands, fused.attrs
        root.regions = []

    def exclusive(self, root: Operation, interior: list[Operation]) -> bool:
        """Is every interior result read only by the interior ops and the root?"""
        ops = {id(o): o for o in interior if o is not root}
        reads: dict[int, int] = {}
        for o in [*ops.values(), root]:
            for v in o.operands:
                reads[id(v)] = reads.get(id(v), 0) + 1
        return all(reads.get(id(r), 0) == self.uses.get(id(r), 0)
                   for o in ops.values() for r in o.results)


def _shape(v: Value) -> tuple[int, ...]:
    t = v.type
    return t.shape if isinstance(t, TensorType) else ()


def _dtype(v: Value) -> str:
    t = v.type
    return t.dtype if isinstance(t, TensorType) else ""


def reshaped(src: tuple[int, ...], out: tuple[int, ...], labels: list) -> list | None:
    """The labels of a reshape's result dims from its operand's (None for size-1 dims),
    when the reshape keeps the sequence of dims of size > 1; else None."""
    si = [i for i, n in enumerate(src) if n != 1]
    oi = [j for j, n in enumerate(out) if n != 1]
    if [src[i] for i in si] != [out[j] for j in oi]:
        return None
    new: list = [None] * len(out)
    for i, j in zip(si, oi, strict=True):
        new[j] = labels[i]
    return new


def _moves_ones(o: Operation) -> bool:
    """Does the transpose o move only dims of size 1 (then it is a reshape)?"""
    shape = _shape(o.operands[0])
    return [p for p in o.attrs["permutation"] if shape[p] != 1] == \
        [i for i, n in enumerate(shape) if n != 1]


def _same_rows(g: Graph, m: Value, m_axes: tuple[int, ...], x: Value,
               axes: tuple[int, ...]) -> bool:
    """Is m (reduced over m_axes) x itself, or x reshaped (size-1 dims moved; JAX's
    dot_product_attention takes the max before such a transpose) with axes lined up?"""
    if m is x:
        return m_axes == axes
    found = g.source(x)
    if found is None or found[0] is not m or math.prod(_shape(m)) != math.prod(_shape(x)):
        return False
    read = [found[1][a] for a in axes]
    return sorted(d for d in read if d is not None) == sorted(m_axes) and None not in read


# ---------------------------------------------------------------------------- softmax


def softmax(g: Graph, root: Operation) -> Fused | None:
    """exp(x - max(x)) / sum(exp(x - max(x))) over the same axes, max from -inf."""
    seen: list[Operation] = []
    e, denominator = root.operands
    ex = g.op(e, Op.EXP)
    sub = g.op(ex.operands[0], Op.SUBTRACT) if ex is not None else None
    sum_source = g.source(denominator)
    if ex is None or sub is None or sum_source is None:
        return None
    row, narrow = g.narrowed(sum_source[0], seen)  # float16/bfloat16: summed in float32
    found_sum = g.source(row) if narrow is not None else (row, [], [])
    total = g.reduce(found_sum[0], "ADD", 0.0, seen) if found_sum is not None else None
    if found_sum is None or total is None:
        return None
    axes = total[1]
    summed = g.widened(total[0], narrow, seen) if narrow is not None else total[0]
    if summed is not e or g.rows(denominator, axes, seen) is not sum_source[0]:
        return None
    if narrow is not None and g.rows(row, axes, seen) is not found_sum[0]:
        return None
    x, shifted = sub.operands
    peak = g.rows(shifted, axes, seen)
    if peak is None:
        return None
    if (clip := g.op(peak, Op.MAXIMUM)) is not None:  # jnp.max(..., initial=-inf)
        inner = [p for q, p in operand_orders(clip) if g.splat(q) == -math.inf]
        if not inner:
            return None
        seen.append(clip)
        peak = inner[0]
    found = g.reduce(peak, "MAX", -math.inf, seen)
    if found is None or not _same_rows(g, found[0], found[1], x, axes):
        return None
    return Fused(Op.SOFTMAX, [x], {"axes": axes, "precise": _dtype(x) != "float32"},
                 [*seen, ex, sub])


# ---------------------------------------------------------------------- normalizations


def _inverse_rms(g: Graph, v: Value, last: tuple[int, ...], seen: list[Operation]
                 ) -> tuple[Value, Value, float] | None:
    """(a, b, eps) when v broadcasts rsqrt(mean(a * b over the last axis) + eps)."""
    trial: list[Operation] = []
    r = g.rows(v, last, trial)
    rs = g.op(r, Op.RSQRT) if r is not None else None
    add = g.op(rs.operands[0], Op.ADD) if rs is not None else None
    if rs is None or add is None:
        return None
    for m, c in operand_orders(add):
        eps = g.splat(c)
        x = g.mean(m, last, trial) if eps is not None else None
        square = g.op(x, Op.MULTIPLY) if x is not None else None
        if square is not None and eps is not None:
            seen += [*trial, rs, add, square]
            return square.operands[0], square.operands[1], eps
    return None


def _centered(g: Graph, v: Value, last: tuple[int, ...], seen: list[Operation]
              ) -> tuple[Value, Value] | None:
    """(x, mean value) when v = x - mean(x over the last axis), broadcast back."""
    sub = g.op(v, Op.SUBTRACT)
    if sub is None:
        return None
    trial: list[Operation] = []
    x, b = sub.operands
    m = g.rows(b, last, trial)
    if m is None or g.mean(m, last, trial) is not x:
        return None
    seen += [*trial, sub]
    return x, m


def _norm(g: Graph, v: Value, seen: list[Operation]) -> tuple[Op, Value, float] | None:
    """(LAYER_NORM or RMS_NORM, x, eps): v = (x - mean) * rsqrt(var + eps), var the mean of
    (x - mean)^2; or v = x * rsqrt(mean(x * x) + eps); every mean over the last axis."""
    mul = g.op(v, Op.MULTIPLY)
    if mul is None or not _shape(v):
        return None
    last = (len(_shape(v)) - 1,)
    for a, b in operand_orders(mul):
        trial: list[Operation] = [mul]
        found = _inverse_rms(g, b, last, trial)
        if found is None:
            continue
        p, q, eps = found
        centered = _centered(g, a, last, trial)
        if centered is not None and all(
                _centered(g, c, last, trial) == centered for c in (p, q)):
            seen += trial
            return Op.LAYER_NORM, centered[0], eps
        if p is a and q is a:  # rms: x * rsqrt(mean(x * x) + eps)
            seen += trial
            return Op.RMS_NORM, a, eps
    return None


def _scaled(g: Graph, y: Value, seen: list[Operation]
            ) -> tuple[Op, Value, float, Value | None] | None:
    """(kind, x, eps, scale) for y = norm(x) * scale, else (kind, x, eps, None) for
    y = norm(x)."""
    mul = g.op(y, Op.MULTIPLY)
    if mul is not None:
        for n, s in operand_orders(mul):
            trial: list[Operation] = [mul]
            scale = g.vector(s, trial)
            core = _norm(g, n, trial) if scale is not None else None
            if core is not None and scale is not None:
                seen += trial
                return core[0], core[1], core[2], scale
    trial = []
    core = _norm(g, y, trial)
    if core is None:
        return None
    seen += trial
    return core[0], core[1], core[2], None


def normalization(g: Graph, root: Operation) -> Fused | None:
    """norm(x) [* scale] [+ bias], scale and bias vectors along the last axis."""
    y = root.results[0]
    if not _shape(y):
        return None
    options: list[tuple[Value, Value | None]] = \
        list(operand_orders(root)) if root.op is Op.ADD else [(y, None)]
    for value, bias_value in options:
        seen: list[Operation] = []
        bias = g.vector(bias_value, seen) if bias_value is not None else None
        if bias_value is not None and bias is None:
            continue
        found = _scaled(g, value, seen)
        if found is None or (bias is not None and found[0] is Op.RMS_NORM):
            continue
        kind, x, eps, scale = found
        if _dtype(x) != _dtype(y) or _shape(x) != _shape(y):
            continue
        operands = [x, *([scale] if scale is not None else []),
                    *([bias] if bias is not None else [])]
        return Fused(kind, operands,
                     {"eps": eps, "scale": scale is not None, "bias": bias is not None}, seen)
    return None


# -------------------------------------------------------------------------------- pass

# Root op -> the rules that may fire there, tried in order.
RULES: dict[Op, list[Callable[[Graph, Operation], Fused | None]]] = {
    Op.DIVIDE: [softmax],         # exp(x - max) / sum(exp(x - max)) -> mx.softmax
    Op.ADD: [normalization],      # norm(x) * scale + bias -> mx.fast.layer_norm
    Op.MULTIPLY: [normalization],  # norm(x) [* scale] -> mx.fast.layer_norm / rms_norm
}


def fuse_kernels(module: Module) -> Module:
    if not ENABLED:
        return module
    g = Graph(module)
    consumed: set[int] = set()
    for fn in module.functions.values():
        for root in reversed(list(walk(fn.body))):
            if id(root) in consumed or root.op not in RULES or len(root.results) != 1:
                continue
            if _dtype(root.results[0]) not in FUSED_DTYPES:
                continue
            for rule in RULES[root.op]:
                fused = rule(g, root)
                if fused is None or not g.exclusive(root, fused.interior):
                    continue
                g.replace(root, fused, consumed)
                break
    return module
