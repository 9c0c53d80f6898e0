"""Attention written out in StableHLO rewritten onto mx.fast.scaled_dot_product_attention.

JAX has no attention op: jax.nn.dot_product_attention, Flax and hand-written models lower
to scores = dot_general(q, k), a constant scale, an optional bias and boolean mask, a
softmax over the key axis (the SOFTMAX op compiler/fusions.py made) and out =
dot_general(probabilities, v). MLX runs the whole as one op (on Metal and, for float16 and
bfloat16, on CUDA's cuDNN a kernel that never holds the scores in memory; on the CPU its
own composition of the same steps). The rule matches from the second dot_general back to
the first and fires only when

- every dim plays one part: a batch dim of both dot_generals, a free dim of q, the one
  free dim of k (the softmax's axis, contracted by the second dot_general), a contracted
  dim of q and k, a free dim of v; transposes and size-1 reshapes between them only move
  the parts around, and are undone exactly after the kernel;
- the scale (a multiply or divide by a constant) comes before the bias and the mask, and
  a mask's fill is -inf or below -1e30, so a row with every key masked averages v as the
  program computes it (the fill, added to a score, leaves the fill);
- every interior value is read by the pattern alone: a training step's backward pass reads
  the probabilities, so there the program keeps its op-by-op form.

q, k, v and the result share one element type. Where the program takes the scores in a
wider type (bfloat16 inputs, float32 scores), the kernel runs in that type too, so no
value is rounded more than the program rounds it. A mask computed from iotas and
constants alone (jnp.tril, iota comparisons) is evaluated here; when it is MLX's causal
triangle the kernel runs in its causal mode and reads no mask. Not followed: a group dim of
size > 1 moved between the scores and the softmax (jax.nn's grouped-query form), and
attention inside a loop body whose mask is a function call.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import fusions
from .fusions import FUSED_DTYPES, Fused, Graph, _dtype, _shape, reshaped
from .ir import Module, Op, Operation, Value, walk
from .loop_slabs import inline_calls

# The parts a dim of the scores plays: ("b", j) the j-th batch dim of the first
# dot_general, ("t", j) the j-th free dim of q, ("s", 0) the free dim of k (the keys),
# ("v", j) the j-th free dim of v; None for a dim of size 1 (it plays no part).
Role = tuple[str, int] | None
_MOVES = (Op.TRANSPOSE, Op.RESHAPE, Op.CONVERT)
_MASK_FILL = -1e30  # a finite fill at most this, added to any score, rounds to itself
# XLA_METAL_FUSE_ATTENTION=0 turns this rule off (XLA_METAL_FUSE=0 turns off every fusion);
# tools/bench_attention.py sets ENABLED itself to compile both forms in one process.
ENABLED = os.environ.get("XLA_METAL_FUSE_ATTENTION", "1") != "0"


@dataclass
class Scores:
    """The ops between the first dot_general and the softmax, read forward."""

    dot: Operation
    q_side: int = 0                 # which operand of `dot` is q
    scale: float = 1.0
    bias: tuple[Value, list[Role]] | None = None         # added to the scores
    mask: tuple[Value, list[Role], float, bool] | None = None  # (pred, roles, fill, fill_if)
    roles: list[Role] = field(default_factory=list)      # of the softmax's input
    interior: list[Operation] = field(default_factory=list)


def _moved(o: Operation, roles: list[Role]) -> list[Role] | None:
    """The roles of o's result, o a transpose, a convert or a reshape that keeps the
    sequence of dims of size > 1."""
    if o.op is Op.TRANSPOSE:
        return [roles[p] for p in o.attrs["permutation"]]
    if o.op is Op.CONVERT:
        return list(roles)
    return reshaped(_shape(o.operands[0]), _shape(o.results[0]), roles)


def _float_convert(o: Operation) -> bool:
    return _dtype(o.operands[0]) in FUSED_DTYPES and _dtype(o.results[0]) in FUSED_DTYPES


def _walk_back(g: Graph, x: Value, steps: list[Operation], depth: int = 0
               ) -> tuple[Operation, list[Operation]] | None:
    """(dot, ops from dot to x) when x comes from a dot_general through moves, scaling,
    an added value and a select against a constant."""
    o = g.defs.get(id(x))
    if o is None or depth > 12:
        return None
    if o.op is Op.DOT_GENERAL:
        return o, steps[::-1]
    if o.op in _MOVES:
        if o.op is Op.CONVERT and not _float_convert(o):
            return None
        return _walk_back(g, o.operands[0], [*steps, o], depth + 1)
    if o.op is Op.MULTIPLY:
        for s, c in ((0, 1), (1, 0)):
            if g.splat(o.operands[c]) is not None:
                return _walk_back(g, o.operands[s], [*steps, o], depth + 1)
    if o.op is Op.DIVIDE and g.splat(o.operands[1]) is not None:
        return _walk_back(g, o.operands[0], [*steps, o], depth + 1)
    if o.op is Op.ADD:
        for s in (0, 1):
            if (found := _walk_back(g, o.operands[s], [*steps, o], depth + 1)) is not None:
                return found
    if o.op is Op.SELECT:
        for s, c in ((1, 2), (2, 1)):
            if g.splat(o.operands[c]) is not None:
                return _walk_back(g, o.operands[s], [*steps, o], depth + 1)
    return None


def _scores(g: Graph, x: Value, axis: int) -> Scores | None:
    """How the softmax's input x was made from q and k, or None."""
    found = _walk_back(g, x, [])
    if found is None:
        return None
    dot, steps = found
    dims = dot.attrs["dot_dimension_numbers"]
    shape = _shape(dot.results[0])
    lhs, rhs = (_shape(v) for v in dot.operands)
    free = [[d for d in range(len(s)) if d not in (*b, *c)]
            for s, b, c in ((lhs, dims.lhs_batch, dims.lhs_contract),
                            (rhs, dims.rhs_batch, dims.rhs_contract))]
    # labels first: ("L", j) / ("R", j) for the operands' free dims; which one is k shows
    # at the softmax's axis
    roles: list[Role] = [("b", j) for j in range(len(dims.lhs_batch))]
    roles += [("L", j) for j in range(len(free[0]))] + [("R", j) for j in range(len(free[1]))]
    roles = [r if n != 1 else None for r, n in zip(roles, shape, strict=True)]
    found_scores = Scores(dot)
    inner = dot.results[0]  # the scores as the step reads them
    for o in steps:
        other = [v for v in o.operands if v is not inner]
        if o.op in _MOVES:
            moved = _moved(o, roles)
            if moved is None:
                return None
            roles = moved
        elif o.op in (Op.MULTIPLY, Op.DIVIDE):
            c = g.splat(other[0]) if len(other) == 1 else None
            if found_scores.bias is not None or found_scores.mask is not None or c is None \
                    or (o.op is Op.DIVIDE and o.operands[0] is not inner):
                return None  # a scale after the bias or mask would scale them too
            if c == 0 or not math.isfinite(c):
                return None
            found_scores.scale *= c if o.op is Op.MULTIPLY else 1.0 / c
        elif o.op is Op.ADD:
            if found_scores.bias is not None or found_scores.mask is not None or \
                    len(other) != 1:
                return None
            found_scores.bias = (other[0], list(roles))
        else:  # SELECT
            fill_if = o.operands[2] is inner  # the fill where the predicate holds
            fill = g.splat(o.operands[1 if fill_if else 2])
            if found_scores.mask is not None or o.operands[0] is inner or fill is None or \
                    not (fill == -math.inf or fill <= _MASK_FILL):
                return None
            found_scores.mask = (o.operands[0], list(roles), fill, fill_if)
        found_scores.interior.append(o)
        inner = o.results[0]
    key = roles[axis] if 0 <= axis < len(roles) else None
    if key is None or key[0] not in ("L", "R"):
        return None
    k_side = 0 if key[0] == "L" else 1
    if sum(1 for d in free[k_side] if (lhs, rhs)[k_side][d] != 1) != 1:
        return None  # k must have one free dim: the keys
    found_scores.q_side = 1 - k_side

    def rename(r: Role) -> Role:
        if r is None or r[0] == "b":
            return r
        return ("s", 0) if r[0] == "LR"[k_side] else ("t", r[1])

    found_scores.roles = [rename(r) for r in roles]
    if found_scores.bias is not None:
        found_scores.bias = (found_scores.bias[0], [rename(r) for r in found_scores.bias[1]])
    if found_scores.mask is not None:
        pred, at, fill, fill_if = found_scores.mask
        found_scores.mask = (pred, [rename(r) for r in at], fill, fill_if)
    found_scores.interior.append(dot)
    return found_scores


def _term(g: Graph, value: Value, roles: list[Role], order: list[Role]
          ) -> tuple[Value, tuple[int, ...], tuple[int, ...]] | None:
    """(u, perm, slots): value (a bias or mask of the scores' shape) is u broadcast; u
    transposed by perm and reshaped to `slots` (one dim per entry of `order`, 1 where u
    has none) lines it up with the kernel's scores."""
    found = g.source(value)
    if found is None:
        return None
    u, labels, _ = found
    usize = _shape(u)
    part: dict[int, Role] = {}
    for i, d in enumerate(labels):
        if d is not None:
            if roles[i] is None:
                return None
            part[d] = roles[i]
    if any(n != 1 and d not in part for d, n in enumerate(usize)):
        return None
    placed = sorted(part, key=lambda d: order.index(part[d]))
    perm = tuple(placed + [d for d in range(len(usize)) if d not in part])
    slots = tuple(usize[next(d for d in placed if part[d] == r)] if r in part.values() else 1
                  for r in order)
    return u, perm, slots


def attention(g: Graph, root: Operation) -> Fused | None:
    """dot_general(softmax(scale * dot_general(q, k) [+ bias] [masked]), v)."""
    dims = root.attrs["dot_dimension_numbers"]
    for p_side in (0, 1):
        p, v = root.operands[p_side], root.operands[1 - p_side]
        after: list[Operation] = []  # from the softmax to p, last first
        u = p
        while (o := g.op(u, *_MOVES)) is not None and \
                (o.op is not Op.CONVERT or _float_convert(o)):
            after.append(o)
            u = o.operands[0]
        sm = g.op(u, Op.SOFTMAX)
        if sm is None or len(sm.attrs["axes"]) != 1:
            continue
        sc = _scores(g, sm.operands[0], sm.attrs["axes"][0])
        if sc is None:
            continue
        roles: list[Role] | None = sc.roles
        for o in reversed(after):
            roles = _moved(o, roles) if roles is not None else None
        if roles is None:
            continue
        fused = _assemble(g, root, dims, p_side, v, roles, sc)
        if fused is not None:
            fused.interior += [sm, *after]
            return fused
    return None


def _assemble(g: Graph, root: Operation, dims, p_side: int, v: Value, p_roles: list[Role],
              sc: Scores) -> Fused | None:
    """The ATTENTION op, when the second dot_general contracts p's keys with v and keeps
    every batch dim."""
    batch = (dims.lhs_batch, dims.rhs_batch)
    contract = (dims.lhs_contract, dims.rhs_contract)
    p_batch, v_batch = batch[p_side], batch[1 - p_side]
    p_con, v_con = contract[p_side], contract[1 - p_side]
    if [p_roles[d] for d in p_con] != [("s", 0)] or len(v_con) != 1:
        return None
    qk_dims = sc.dot.attrs["dot_dimension_numbers"]
    nb = len(qk_dims.lhs_batch)
    p_free = [d for d in range(len(p_roles)) if d not in (*p_batch, *p_con)]
    for dims_of_p, part in ((p_batch, "b"), (p_free, "t")):
        if any((r := p_roles[d]) is not None and r[0] != part for d in dims_of_p):
            return None
    kept = {p_roles[d] for d in p_batch}
    if any(r is not None and r[0] == "b" and r not in kept for r in sc.roles):
        return None  # a batch dim of the scores that the second dot_general sums over

    q_side = sc.q_side
    q, k = sc.dot.operands[q_side], sc.dot.operands[1 - q_side]
    q_batch, k_batch = (qk_dims.lhs_batch, qk_dims.rhs_batch)[::1 if q_side == 0 else -1]
    q_con, k_con = (qk_dims.lhs_contract, qk_dims.rhs_contract)[::1 if q_side == 0 else -1]
    q_free = [d for d in range(len(_shape(q))) if d not in (*q_batch, *q_con)]
    k_free = [d for d in range(len(_shape(k))) if d not in (*k_batch, *k_con)]
    v_free = [d for d in range(len(_shape(v))) if d not in (*v_batch, *v_con)]
    dtype = _dtype(q)
    if dtype not in FUSED_DTYPES or {_dtype(k), _dtype(v), _dtype(root.results[0])} != {dtype}:
        return None

    qs, ks, vs = _shape(q), _shape(k), _shape(v)
    bsz = [qs[d] for d in q_batch]
    tsz = [qs[d] for d in q_free]
    dsz = math.prod(qs[d] for d in q_con)
    keys = math.prod(ks[d] for d in k_free)
    dv = math.prod(vs[d] for d in v_free)
    b1, b2 = (math.prod(bsz[:-1]), bsz[-1]) if bsz else (1, 1)
    t = math.prod(tsz)
    # v's batch dims in the order of the first dot_general's (size-1 ones last)
    by_role = {p_roles[d]: v_batch[i] for i, d in enumerate(p_batch) if p_roles[d]}
    v_order = [by_role[("b", j)] for j in range(nb) if ("b", j) in by_role]
    v_perm = [*v_order, *v_con, *v_free, *[d for d in v_batch if d not in v_order]]

    # the result: the kernel's (b..., t..., v...) dims of size > 1, moved to the root's order
    names: list[Role] = [*(("b", j) for j in range(nb)), *(("t", j) for j in range(len(tsz))),
                         *(("v", j) for j in range(len(v_free)))]
    sizes = [*bsz, *tsz, *(vs[d] for d in v_free)]
    full = [(r, n) for r, n in zip(names, sizes, strict=True) if n != 1]
    v_roles: dict[int, Role] = {d: ("v", j) for j, d in enumerate(v_free)}
    free_roles = [[p_roles[d] for d in p_free], [v_roles[d] for d in v_free]]
    if p_side == 1:
        free_roles.reverse()
    out_roles = [*(p_roles[d] for d in p_batch), *free_roles[0], *free_roles[1]]
    out_shape = _shape(root.results[0])
    placed = [r for r, n in zip(out_roles, out_shape, strict=True) if n != 1]
    if sorted(placed, key=names.index) != [r for r, _ in full]:
        return None
    out_perm = [[r for r, _ in full].index(r) for r in placed]

    order: list[Role] = [*(("b", j) for j in range(nb)), *(("t", j) for j in range(len(tsz))),
                         ("s", 0)]
    operands = [q, k, v]
    attrs: dict = {
        "scale": sc.scale,
        "q_perm": (*q_batch, *q_free, *q_con), "q_shape": (b1, b2, t, dsz),
        "k_perm": (*k_batch, *k_free, *k_con), "k_shape": (b1, b2, keys, dsz),
        "v_perm": tuple(v_perm), "v_shape": (b1, b2, keys, dv),
        "out_full": tuple(n for _, n in full), "out_perm": tuple(out_perm),
        "groups": (max(nb - 1, 0), min(nb, 1), len(tsz), 1),
        "full_slots": (*bsz, *tsz, keys),
        "bias": (), "mask": (), "fill": 0.0, "fill_if": False, "causal": False,
        "compute": _compute_type(dtype, sc),
    }
    for name, term in (("bias", sc.bias), ("mask", sc.mask)):
        if term is None:
            continue
        found = _term(g, term[0], term[1], order)
        if found is None:
            return None
        operands.append(found[0])
        attrs[name] = (found[1], found[2])
    if sc.mask is not None:
        attrs["fill"], attrs["fill_if"] = sc.mask[2], sc.mask[3]
        causal = sc.bias is None and _is_causal(g, operands[3], attrs["mask"], sc.mask[3],
                                                t, keys, len(tsz))
        if causal:
            operands.pop()  # the kernel's causal mode reads no mask
            attrs["mask"], attrs["causal"] = (), True
    return Fused(Op.ATTENTION, operands, attrs, list(sc.interior))


# The ops a mask made of iotas and constants may use, evaluated here once to recognize it.
_NUMPY: dict[Op, Callable[..., np.ndarray]] = {
    Op.ADD: np.add, Op.SUBTRACT: np.subtract, Op.AND: np.logical_and, Op.OR: np.logical_or,
    Op.NOT: np.logical_not, Op.SELECT: np.where,
}
_ORDER = {"EQ": np.equal, "NE": np.not_equal, "LT": np.less, "LE": np.less_equal,
          "GT": np.greater, "GE": np.greater_equal}
_CAUSAL_LIMIT = 1 << 22  # elements of a mask worth evaluating while compiling


def _known(g: Graph, v: Value, memo: dict[int, np.ndarray | None], depth: int = 0
           ) -> np.ndarray | None:
    """The value of v when it is computed from iotas and constants alone, in at most 24
    steps (a causal mask spelled with jnp.tril, iota comparisons, broadcasts), else None."""
    if id(v) in memo:
        return memo[id(v)]
    o = g.defs.get(id(v))
    shape = _shape(v)
    out: np.ndarray | None = None
    if o is not None and math.prod(shape) <= _CAUSAL_LIMIT and depth < 24:
        found = [_known(g, a, memo, depth + 1) for a in o.operands]
        args = [a for a in found if a is not None]
        if len(args) == len(found):
            if o.op is Op.CONSTANT:
                out = np.broadcast_to(np.asarray(o.attrs["value"]), shape)
            elif o.op is Op.IOTA:
                axis = o.attrs["iota_dimension"]
                out = np.broadcast_to(np.arange(shape[axis]).reshape(
                    [-1 if i == axis else 1 for i in range(len(shape))]), shape)
            elif o.op is Op.BROADCAST_IN_DIM:
                dims = o.attrs["broadcast_dimensions"]
                x = np.transpose(args[0], np.argsort(dims))
                full = [1] * len(shape)
                for i, d in enumerate(sorted(dims)):
                    full[d] = x.shape[i]
                out = np.broadcast_to(x.reshape(full), shape)
            elif o.op is Op.RESHAPE:
                out = np.reshape(args[0], shape)
            elif o.op is Op.CONVERT and _dtype(v) in ("bool", "int32", "int64"):
                out = np.asarray(args[0]).astype(_dtype(v))
            elif o.op is Op.COMPARE:
                out = _ORDER[o.attrs["comparison_direction"]](*args)
            elif o.op in _NUMPY and (o.op in (Op.ADD, Op.SUBTRACT, Op.SELECT) or
                                     all(a.dtype == np.bool_ for a in args)):
                out = _NUMPY[o.op](*args)  # (and, or, not of integers are bitwise: not here)
    memo[id(v)] = out
    return out


def _is_causal(g: Graph, pred: Value, layout: tuple, fill_if: bool, t: int, keys: int,
               query_slots: int) -> bool:
    """Does the mask keep exactly key j <= query i + (keys - t) in every batch and head
    (MLX's causal mode: the top-left lower triangle when queries and keys are as many)?"""
    value = _known(g, pred, {})
    perm, slots = layout
    if value is None or slots[-1] != keys or \
            math.prod(slots[len(slots) - 1 - query_slots:-1]) != t:
        return False
    keep = np.transpose(value, perm).reshape(-1, t, keys)
    keep = ~keep if fill_if else keep
    rows = np.arange(t)[:, None] + (keys - t)
    return bool(np.all(keep == (np.arange(keys)[None, :] <= rows)))


def _compute_type(dtype: str, sc: Scores) -> str:
    """float32 when the program holds the scores in float32 anywhere before the softmax."""
    # sc.interior holds every step and the dot_general itself
    return "float32" if any(_dtype(o.results[0]) == "float32" for o in sc.interior) else dtype


def fuse_attention(module: Module) -> Module:
    """Rewrite every exclusive attention pattern (after fuse_kernels made the softmaxes)."""
    if not (fusions.ENABLED and ENABLED):
        return module
    for fn in module.functions.values():
        if any(o.op is Op.SOFTMAX for o in fn.body.ops):
            # jnp.where and jnp.tril are functions of their own: the mask is seen inlined
            inline_calls(fn.body, module)
    g = Graph(module)
    consumed: set[int] = set()
    for fn in module.functions.values():
        for root in reversed(list(walk(fn.body))):
            if root.op is not Op.DOT_GENERAL or id(root) in consumed:
                continue
            fused = attention(g, root)
            if fused is None or not g.exclusive(root, fused.interior):
                continue
            g.replace(root, fused, consumed)
    return module
