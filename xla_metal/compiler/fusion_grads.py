"""Normalizations and softmax fused together with their backward pass (mx.fast.layer_norm /
rms_norm and MLX's VJPs of them: on a GPU one kernel forward, one backward; mx.softmax and the
three ops of its VJP).

In a training step JAX spells out a normalization's gradient, and that gradient reads the
forward pass's interior (the centered input, the inverse deviation), so compiler/fusions.py
leaves such a forward alone. This pass takes each normalization x̂ = norm(x) that fusions.py
matched but could not fuse and finds its backward region: the ops that read the interior,
then the ops fed only by them, the interior and one outside value e. When the region yields
one value of x's shape, nothing else reads the interior, and a probe shows the region is
the normalization's VJP, x̂ becomes NORM(x) and the region's value NORM_GRAD(x, e) (e is x̂'s
cotangent, g · scale); the interior and the region are then dead.

Softmax likewise: jax.nn.softmax's default gradient (jax_softmax_custom_jvp off) differentiates
exp(x - max) / sum through the division, so its backward reads the unnormalized exponentials
and their sum, and fusions.py leaves the forward as four kernels (max, exp, sum, divide). Here
y = softmax(x) becomes SOFTMAX(x) and the region SOFTMAX_GRAD(y, e) = y e - y sum(y e), the
form of MLX's own softmax VJP.

Why a probe and not a pattern: JAX's autodiff spells the backward one way per spelling of the
forward (jnp.var, a mean of squares, ** 2, keepdims or not), each of which would need its own
pattern. The probe evaluates the interior and the region in float64 on random rows (_Rows) and
compares them with the closed forms (_reference). Both may hold only ROW_OPS: sums over the
normalized axis, broadcasts back along it, + - * / rsqrt sqrt, float converts and splat
constants (and, for softmax, exp and the row's maximum, on which softmax's value does not
depend), so both sides are real-analytic functions of (x, e); the difference of two such
functions is zero everywhere or zero on a set of measure zero, which a random probe misses.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import fusions
from .fusions import Graph, _dtype, _norm, _shape
from .ir import Module, Op, Operation, TensorType, Value, blocks
from .lowering.regions import combiner

# float32 only: JAX's float16/bfloat16 normalizations widen and narrow along the way, and
# MLX's backward kernels accumulate differently from those spellings.
GRAD_DTYPES = frozenset({"float32"})
GRAD_OF = {Op.LAYER_NORM: Op.LAYER_NORM_GRAD, Op.RMS_NORM: Op.RMS_NORM_GRAD,
           Op.SOFTMAX: Op.SOFTMAX_GRAD}
ROW_OPS = frozenset({Op.ADD, Op.SUBTRACT, Op.MULTIPLY, Op.DIVIDE, Op.NEGATE, Op.RSQRT,
                     Op.SQRT, Op.CONVERT, Op.BROADCAST_IN_DIM, Op.RESHAPE, Op.REDUCE})
# softmax's interior also holds exp(x - max(x)), the max clipped at -inf (jnp.max's initial)
SOFTMAX_ROW_OPS = ROW_OPS | {Op.EXP, Op.MAXIMUM}
_ARITHMETIC: dict[Op, Callable[..., Any]] = {
    Op.ADD: lambda a, b: a + b,
    Op.SUBTRACT: lambda a, b: a - b,
    Op.MULTIPLY: lambda a, b: a * b,
    Op.DIVIDE: lambda a, b: a / b,
    Op.NEGATE: lambda a: -a,
    Op.RSQRT: lambda a: 1.0 / np.sqrt(a),
    Op.SQRT: np.sqrt,
    Op.CONVERT: lambda a: a,
    Op.EXP: np.exp,
    Op.MAXIMUM: np.maximum,
}
# The row reductions a probe evaluates: (combiner, initial value) -> numpy's reduction
_ROW_REDUCTIONS: dict[tuple[str | None, float], Callable[..., Any]] = {
    ("ADD", 0.0): np.sum, ("MAX", -math.inf): np.max}
_PROBE_ROWS = 3
# How many ends of a backward region a fusion tries (each costs a probe), the last first.
_MAX_ENDS = 4


class _Rows:
    """Row-local values as float64: a value laid out as x (its leading dims, then the
    normalized axis; size-1 dims anywhere) is a (rows, n) matrix, one laid out as x's leading
    dims alone a (rows, 1) column, a splat constant a float. run() refuses (returns False)
    any op that is not one of ROW_OPS on such values, or that would mix rows."""

    def __init__(self, g: Graph, x_shape: tuple[int, ...], ops: frozenset[Op] = ROW_OPS
                 ) -> None:
        self.g = g
        self.ops = ops
        self.lead = tuple(d for d in x_shape[:-1] if d != 1)
        self.n = x_shape[-1]

    def labels(self, shape: tuple[int, ...]) -> tuple[str | None, list[Any]]:
        """('full' | 'row' | None, per dim: the leading dim it is, 'N', or None if size 1)."""
        kept = tuple(d for d in shape if d != 1)
        kind = "full" if kept == (*self.lead, self.n) else "row" if kept == self.lead else None
        if kind is None:
            return None, []
        names: Iterator[Any] = iter([*range(len(self.lead)), "N"])
        return kind, [next(names) if d != 1 else None for d in shape]

    def run(self, o: Operation, env: dict[int, Any]) -> bool:
        if o.op not in self.ops or len(o.results) != 1 or not _float32(o.results[0]):
            return False
        args: list[Any] = [env[id(v)] if id(v) in env else self.g.splat(v) for v in o.operands]
        kind, out = self.labels(_shape(o.results[0]))
        if kind is None or any(a is None for a in args) or \
                not all(_float32(v) for v in o.operands):
            return False
        if o.op in _ARITHMETIC:
            with np.errstate(all="ignore"):
                env[id(o.results[0])] = _ARITHMETIC[o.op](*args)
            return True
        a = args[0]
        if isinstance(a, float):  # a splat stays one (a reduce of it is not row-local)
            env[id(o.results[0])] = a
            return o.op is not Op.REDUCE
        source_kind, source = self.labels(_shape(o.operands[0]))
        if source_kind is None:
            return False
        if o.op is Op.RESHAPE:
            value = a if source_kind == kind else None
        elif o.op is Op.BROADCAST_IN_DIM:
            dims = o.attrs["broadcast_dimensions"]
            if any(source[i] is not None and source[i] != out[d] for i, d in enumerate(dims)):
                return False
            added = {label for label in out if label is not None} - set(source)
            value = (np.broadcast_to(a, (a.shape[0], self.n)) if kind == "full" else a) \
                if added <= {"N"} else None
        else:  # a sum (or max) over the normalized axis, or over size-1 dims only
            summed = {source[d] for d in o.attrs["dimensions"]} - {None}
            reduction = _ROW_REDUCTIONS.get((combiner(o.regions[0]), args[1])) \
                if isinstance(args[1], float) else None
            if reduction is None or (reduction is np.max and Op.MAXIMUM not in self.ops):
                return False
            value = reduction(a, axis=1, keepdims=True) if summed == {"N"} and kind == "row" \
                else a if not summed and kind == source_kind else None
        if value is None:
            return False
        env[id(o.results[0])] = value
        return True


def _float32(v: Value) -> bool:
    # GRAD_DTYPES throughout: a convert is then an identity, so float64 evaluates it exactly
    return _dtype(v) in GRAD_DTYPES


def _reference(kind: Op, x: np.ndarray, e: np.ndarray, eps: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """(norm(x) or softmax(x), its VJP for cotangent e) in closed form, over the last axis."""
    if kind is Op.SOFTMAX:
        exp = np.exp(x - x.max(axis=1, keepdims=True))
        y = exp / exp.sum(axis=1, keepdims=True)
        return y, y * e - y * (y * e).sum(axis=1, keepdims=True)
    c = x - x.mean(axis=1, keepdims=True) if kind is Op.LAYER_NORM else x
    r = 1.0 / np.sqrt((c * c).mean(axis=1, keepdims=True) + eps)
    normed = c * r
    grad = r * (e - normed * (e * normed).mean(axis=1, keepdims=True))
    if kind is Op.LAYER_NORM:
        grad -= r * e.mean(axis=1, keepdims=True)
    return normed, grad


def _probe(g: Graph, kind: Op, eps: float, x: Value, e: Value, ops: list[Operation],
           normed: Value, grads: list[Value]) -> bool:
    """Do `ops` compute norm(x) (or softmax(x)) as `normed` and its VJP for cotangent e as
    the sum of `grads`?"""
    rng = np.random.default_rng(0)
    rows, n = _PROBE_ROWS, _shape(x)[-1]
    xs = rng.standard_normal((rows, n)) * rng.uniform(0.5, 2.0, (rows, 1)) \
        + rng.uniform(-1.0, 1.0, (rows, 1))
    es = rng.standard_normal((rows, n))
    env: dict[int, Any] = {id(x): xs, id(e): es}
    probe = _Rows(g, _shape(x), SOFTMAX_ROW_OPS if kind is Op.SOFTMAX else ROW_OPS)
    if not all(probe.run(o, env) for o in ops):
        return False
    want = _reference(kind, xs, es, eps)
    parts: list[Any] = [env.get(id(v)) for v in grads]
    if not all(isinstance(p, np.ndarray) for p in parts):
        return False
    got = (env.get(id(normed)), np.sum(parts, axis=0))
    return all(isinstance(a, np.ndarray) and a.shape == b.shape
               and np.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(got, want, strict=True))


def _backward(g: Graph, ops: list[Operation], start: int, x: Value, interior: set[int],
              taken: set[int], e: Value | None = None
              ) -> tuple[list[Operation], Value | None]:
    """(the region, e): from ops[start:], the ops that read an interior or region value (or
    e), whose other operands are x, splat constants, or e: the one outside value the region
    reads, the first one met unless given. Run once to find e, then again with e given, so
    that ops reading only x and e before the first region op that reads e are taken too."""
    region: list[Operation] = []
    made = set(interior)
    for o in ops[start:]:
        if id(o) in taken or not o.results or not any(
                id(v) in made or (v is e and e is not None) for v in o.operands):
            continue
        unknown = {id(v): v for v in o.operands if id(v) not in made and v is not x
                   and v is not e and g.splat(v) is None}
        if len(unknown) > (1 if e is None else 0):
            continue
        if unknown:
            (e,) = unknown.values()
        region.append(o)
        made.update(id(r) for r in o.results)
    return region, e


def _forward(g: Graph, m: Operation) -> tuple[Op, Value, float, list[Operation]] | None:
    """(kind, x, eps, interior) when m is the last op of norm(x) (a multiply) or of softmax(x)
    over the last axis (a divide), in float32; interior: the other ops of the pattern."""
    if _dtype(m.results[0]) not in GRAD_DTYPES:
        return None
    if m.op is Op.MULTIPLY:
        trial: list[Operation] = []
        found = _norm(g, m.results[0], trial)
        return (found[0], found[1], found[2], trial) if found is not None else None
    fused = fusions.softmax(g, m) if m.op is Op.DIVIDE and SOFTMAX else None
    if fused is None or fused.attrs["axes"] != (len(_shape(fused.operands[0])) - 1,):
        return None
    return Op.SOFTMAX, fused.operands[0], 0.0, fused.interior


def _vjp_outputs(g: Graph, ops: list[Operation], kind: Op, eps: float, x: Value, e: Value,
                 interior: list[Operation], m: Operation, region: list[Operation]
                 ) -> list[Value] | None:
    """The values of `region` the rest of the program reads, when they are the VJP of the
    normalization or softmax whose interior and last op are `interior` and m (read as their
    sum where there are several); None otherwise."""
    inner = {id(r) for o in interior for r in o.results}
    reads = Counter(id(v) for o in [*interior, m, *region] for v in o.operands)
    outs = [r for o in region for r in o.results if reads[id(r)] != g.uses.get(id(r), 0)]
    if any(reads[i] != g.uses.get(i, 0) for i in inner) or not outs:
        return None
    if any(_shape(v) != _shape(x) or _dtype(v) != _dtype(x) for v in (e, *outs)) or \
            (len(outs) > 1 and not _summed(g, ops, region, outs, reads)) or \
            not _probe(g, kind, eps, x, e, [*interior, m, *region], m.results[0], outs):
        return None
    return outs


def _fuse_at(g: Graph, ops: list[Operation], position: dict[int, int], m: Operation) -> bool:
    """Fuse the normalization or softmax whose last op is m with its backward region (ops:
    m's block, position: each op's index there)."""
    found = _forward(g, m)
    if found is None:
        return False
    kind, x, eps, trial = found
    if _shape(x)[-1] < 2:
        return False
    axes = (len(_shape(x)) - 1,)
    unique = {id(o): o for o in trial if o is not m}
    if not all(i in position for i in unique) or _dtype(x) != _dtype(m.results[0]):
        return False
    interior = sorted(unique.values(), key=lambda o: position[id(o)])
    inner = {id(r) for o in interior for r in o.results}
    start, taken = position[id(interior[0])], {*unique, id(m)}
    region, e = _backward(g, ops, start, x, inner, taken)
    if e is None:
        return False
    region, _ = _backward(g, ops, start, x, inner, taken, e)
    # The region may run on past the VJP (a splat scale's gradient, x * c, multiplies it by c
    # next): the whole region is tried first, then shorter ones, each ending at a value of
    # x's shape.
    ends = [i + 1 for i, o in enumerate(region) if _shape(o.results[0]) == _shape(x)]
    for end in reversed(ends[-_MAX_ENDS:]):
        outs = _vjp_outputs(g, ops, kind, eps, x, e, interior, m, region[:end])
        if outs is not None:
            region = region[:end]
            break
    else:
        return False
    # the gradient goes where its last part was made (e is defined by then: checked, as a
    # part need not read e itself); the other parts become zeros, their sum being the VJP
    makers = sorted((next(o for o in region if r in o.results) for r in outs),
                    key=lambda o: position[id(o)])
    e_def = g.defs.get(id(e))
    if e_def is not None and position.get(id(e_def), -1) > position[id(makers[-1])] or \
            position[id(m)] > position[id(makers[-1])]:
        return False
    last = makers[-1]
    if kind is Op.SOFTMAX:  # its gradient reads softmax(x), m's result
        m.op, m.operands, m.attrs, m.regions = kind, [x], {"axes": axes, "precise": False}, []
        last.op, last.operands, last.attrs, last.regions = \
            GRAD_OF[kind], [m.results[0], e], {"axes": axes}, []
    else:
        m.op, m.operands, m.attrs, m.regions = kind, [x], {"eps": eps, "scale": False,
                                                            "bias": False}, []
        last.op, last.operands, last.attrs, last.regions = \
            GRAD_OF[kind], [x, e], {"eps": eps}, []
    if len(makers) > 1:
        zero = Operation(Op.CONSTANT, [], [Value(TensorType((), _dtype(x)))],
                         {"value": np.zeros((), _dtype(x))})
        ops.insert(0, zero)
        for o in makers[:-1]:
            o.op, o.operands, o.attrs, o.regions = \
                Op.BROADCAST_IN_DIM, zero.results, {"broadcast_dimensions": ()}, []
    for v in (x, last.operands[0], e):
        g.uses[id(v)] = g.uses.get(id(v), 0) + 1
    return True


def _summed(g: Graph, ops: list[Operation], region: list[Operation], outs: list[Value],
            reads: Counter) -> bool:
    """Does the program read the region's `outs` only through their sum? (JAX adds a
    gradient's parts into the running total one by one: outside the region each part, and
    each partial sum, is read once, by the next add, up to one total.)"""
    inside = {id(o) for o in region}
    readers: dict[int, list[Operation]] = {}
    for o in ops:
        for v in o.operands:
            if id(o) not in inside:
                readers.setdefault(id(v), []).append(o)
    totals = set()
    for v in outs:
        if g.uses.get(id(v), 0) - reads[id(v)] != 1:
            return False
        while g.uses.get(id(v), 0) - reads[id(v)] == 1 and \
                len(after := readers.get(id(v), [])) == 1 and after[0].op is Op.ADD:
            v = after[0].results[0]
        totals.add(id(v))
    return len(totals) == 1


# XLA_METAL_FUSE_GRADS=0 turns this pass off (XLA_METAL_FUSE=0 turns off both); SOFTMAX=False
# its softmax part alone (tools/profile_graph.py --off softmax_grads).
_ENABLED = os.environ.get("XLA_METAL_FUSE_GRADS", "1") != "0"
SOFTMAX = True


def fuse_gradients(module: Module) -> Module:
    if not (_ENABLED and fusions.ENABLED):
        return module
    g = Graph(module)
    for fn in module.functions.values():
        for block in list(blocks(fn.body)):
            position = {id(o): i for i, o in enumerate(block.ops)}
            for o in list(block.ops):
                if o.op in (Op.MULTIPLY, Op.DIVIDE) and _fuse_at(g, block.ops, position, o):
                    position = {id(o): i for i, o in enumerate(block.ops)}
    return module

