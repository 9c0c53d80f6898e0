"""Rows of a stacked array read and written through one flat view of it.

A scan reads row r of a stacked array S as a one-row slice and a reshape that drops the unit
axis, and stacks the rows it writes as a broadcast_in_dim (or reshape) adding a unit axis to
each, then one concatenate (compiler/loop_slabs.py makes both, a slab of rows at a time): a
view node per row and per step, which MLX's host evaluates one by one (on a host-bound GPU
step a view costs host time like a small kernel). In row-major order, row r along axis d of
S is the r-th block of S[d+1] rows of S with axes d and d+1 merged, and a stack of k arrays
along axis d is their concatenation along d with that axis then split in (k, size), so
- the row reads of one value become one reshape merging the two axes and one split of it
  into the rows (Op.SPLIT, one MLX Split node), each piece already of the row's shape;
- a concatenate of rows that were each given a unit axis at the concatenated one becomes
  the concatenate of the rows themselves and one reshape.
Native dtypes only: a carrier dtype's storage has another shape (rewrites.is_native).
"""

from __future__ import annotations

from .ir import Block, Module, Op, Operation, TensorType, Value, blocks
from .rewrites import axis_cut, definitions, is_native, replace_in, split_of


def flatten_row_views(module: Module) -> Module:
    defs = definitions(module)
    for fn in module.functions.values():
        for block in list(blocks(fn.body)):
            _reads_in(block, defs)
            block.ops = [x for o in block.ops
                         for x in (_stacked(o, defs) if o.op is Op.CONCATENATE else [o])]
    return module


def _shape(v: Value) -> tuple[int, ...]:
    assert isinstance(v.type, TensorType)
    return v.type.shape


def _row_read(reshape: Operation, defs: dict[int, Operation]) -> tuple[Value, int, int] | None:
    """(S, axis, row) when `reshape` drops the unit axis of one row of S: a one-row slice,
    or a one-row piece of a split (rewrites.split_sibling_slices makes those). Not along S's
    last axis, which has no next axis to merge with."""
    v = reshape.operands[0]
    source = defs.get(id(v))
    if source is None or not is_native(reshape.results[0].type):
        return None
    if source.op is Op.SLICE:
        cut = axis_cut(source)
        if cut is None:
            return None
        axis, start, limit = cut
    elif source.op is Op.SPLIT:
        axis = int(source.attrs["axis"])
        starts = [0, *source.attrs["bounds"], _shape(source.operands[0])[axis]]
        piece = source.attrs["pieces"][[id(r) for r in source.results].index(id(v))]
        start, limit = starts[piece], starts[piece + 1]
    else:
        return None
    s = source.operands[0]
    shape = _shape(s)
    if limit != start + 1 or axis + 1 >= len(shape) or \
            _shape(reshape.results[0]) != shape[:axis] + shape[axis + 1:]:
        return None
    return s, axis, start


def _reads_in(block: Block, defs: dict[int, Operation]) -> None:
    groups: dict[tuple[int, int], list[tuple[Operation, int]]] = {}  # (S, axis) -> reads
    for o in block.ops:
        read = _row_read(o, defs) if o.op is Op.RESHAPE else None
        if read is not None:
            s, axis, row = read
            groups.setdefault((id(s), axis), []).append((o, row))
    placed: dict[int, list[Operation]] = {}  # reshape id -> what replaces it ([]: dropped)
    for (_, axis), reads in groups.items():
        if len(reads) < 2:
            continue  # one read gains nothing (a row read twice: both get the one piece)
        first = reads[0][0]
        s = defs[id(first.operands[0])].operands[0]  # (a split or slice's only operand)
        assert isinstance(s.type, TensorType)
        shape, size = s.type.shape, s.type.shape[axis + 1]
        flat = Value(TensorType(shape[:axis] + (shape[axis] * size,) + shape[axis + 2:],
                                s.type.dtype))
        # In the first read's place: S is defined before it, and every row is read after
        placed[id(first)] = [
            Operation(Op.RESHAPE, [s], [flat], {}, [], first.loc),
            split_of(flat, axis, [(row * size, (row + 1) * size) for _, row in reads],
                     [o.results[0] for o, _ in reads], first.loc)]
        placed.update((id(o), []) for o, _ in reads[1:])
    replace_in(block, placed)


def _unit_axis_added(v: Value, axis: int, defs: dict[int, Operation]) -> Value | None:
    """x when v is x given a unit axis at `axis` (a broadcast_in_dim or a reshape), x having
    an axis there to concatenate along."""
    o = defs.get(id(v))
    if o is None or o.op not in (Op.BROADCAST_IN_DIM, Op.RESHAPE):
        return None
    x = o.operands[0]
    if not (is_native(x.type) and is_native(v.type)):
        return None
    shape = _shape(x)
    if axis >= len(shape) or _shape(v) != shape[:axis] + (1,) + shape[axis:]:
        return None
    if o.op is Op.BROADCAST_IN_DIM and tuple(o.attrs["broadcast_dimensions"]) != \
            tuple(d + (d >= axis) for d in range(len(shape))):
        return None  # it also moves axes
    return x


def _stacked(concat: Operation, defs: dict[int, Operation]) -> list[Operation]:
    axis = int(concat.attrs["dimension"])
    found = [_unit_axis_added(v, axis, defs) for v in concat.operands]
    rows = [x for x in found if x is not None]
    if len(rows) < 2 or len(rows) != len(found):
        return [concat]
    shape, out = _shape(rows[0]), concat.results[0]  # (a concatenate's rows are alike)
    assert isinstance(out.type, TensorType)
    joined = Value(TensorType(shape[:axis] + (len(rows) * shape[axis],) + shape[axis + 1:],
                              out.type.dtype))
    return [Operation(Op.CONCATENATE, rows, [joined], {"dimension": axis}, [], concat.loc),
            Operation(Op.RESHAPE, [joined], [out], {}, [], concat.loc)]
