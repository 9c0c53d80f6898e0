"""Data creation and movement: iota, broadcast, reshape, transpose, slices, pad, gather, scatter.

Start indices of dynamic_slice/dynamic_update_slice/gather are clamped as XLA does; scatter
skips an update window that would leave the operand (XLA's out-of-bounds rule).
"""

from __future__ import annotations

import math
from typing import Any

import mlx.core as mx
import numpy as np

from ...errors import UnimplementedError
from ...runtime import dtypes as _dtypes
from ..importer import GatherDims, ScatterDims
from ..ir import Op, Operation, TensorType
from .regions import combiner
from .registry import lowering, register_check, single


def out_type(op: Operation, i: int = 0) -> TensorType:
    t = op.results[i].type
    assert isinstance(t, TensorType)
    return t


def permuted(x: mx.array, perm: list[int]) -> mx.array:
    """mx.transpose, but no node for the identity permutation (MLX makes one: a graph node
    costs host time in every evaluation)."""
    return x if list(perm) == list(range(x.ndim)) else mx.transpose(x, perm)


def broadcast_in_dim(x: mx.array, shape: tuple[int, ...], dims: tuple[int, ...]) -> mx.array:
    x = permuted(x, sorted(range(len(dims)), key=lambda i: dims[i]))
    sdims = sorted(dims)
    # MLX's broadcast adds leading dims itself; a reshape is a node mx.compile does not fuse
    # through (it ends the fused elementwise kernel before it), so it is made only when the
    # new dims are not all leading.
    if sdims == list(range(len(shape) - len(dims), len(shape))):
        return x if tuple(x.shape) == tuple(shape) else mx.broadcast_to(x, shape)
    full = [1] * len(shape)
    for i, d in enumerate(sdims):
        full[d] = x.shape[i]
    return mx.broadcast_to(x.reshape(full), shape)


def counting(n: int, step: int = 1, dtype: Any = mx.int32) -> mx.array:
    """0, step, 2*step, ... (n values) as a constant made now, from numpy: traced into an
    mx.compile'd program it is data the graph holds, where mx.arange would be a kernel
    launched on every call."""
    wide = np.int64 if dtype in (mx.int64, mx.uint64) else np.int32
    return mx.array(np.arange(n, dtype=wide) * step).astype(dtype)


@lowering(Op.IOTA)
@single
def _iota(ctx, op: Operation) -> mx.array:
    t = out_type(op)
    dim = int(op.attrs["iota_dimension"])
    return broadcast_in_dim(counting(t.shape[dim], 1, _dtypes.mlx_dtype(t.dtype)), t.shape,
                            (dim,))


@lowering(Op.BROADCAST_IN_DIM)
@single
def _broadcast(ctx, op: Operation, x: mx.array) -> mx.array:
    return broadcast_in_dim(x, out_type(op).shape, tuple(op.attrs["broadcast_dimensions"]))


@lowering(Op.RESHAPE)
@single
def _reshape(ctx, op: Operation, x: mx.array) -> mx.array:
    return x.reshape(out_type(op).shape)


@lowering(Op.TRANSPOSE)
@single
def _transpose(ctx, op: Operation, x: mx.array) -> mx.array:
    return permuted(x, list(op.attrs["permutation"]))


@lowering(Op.SLICE)
@single
def _slice(ctx, op: Operation, x: mx.array) -> mx.array:
    start, limit = op.attrs["start_indices"], op.attrs["limit_indices"]
    strides = op.attrs.get("strides") or (1,) * len(start)
    return x[tuple(slice(s, e, k) for s, e, k in zip(start, limit, strides, strict=True))]


# MLX makes one Split node for fewer bounds than this, and a Slice node per piece otherwise.
_SPLIT_NODE_BOUNDS = 10


def split_pieces(x: mx.array, bounds: list[int], axis: int) -> list[mx.array]:
    """mx.split(x, bounds, axis), as a tree of Split nodes when there are many pieces."""
    if len(bounds) < _SPLIT_NODE_BOUNDS:
        return list(mx.split(x, bounds, axis=axis))
    starts, fan = [0, *bounds], _SPLIT_NODE_BOUNDS
    groups = split_pieces(x, starts[fan::fan], axis)  # piece i lies in group i // fan
    return [piece for g, group in enumerate(groups)
            for piece in mx.split(group, [b - starts[g * fan] for b in
                                          starts[g * fan + 1:(g + 1) * fan]], axis=axis)]


@lowering(Op.SPLIT)
def _split(ctx, op: Operation, x: mx.array) -> list[mx.array]:
    parts = split_pieces(x, list(op.attrs["bounds"]), int(op.attrs["axis"]))
    return [parts[i] for i in op.attrs["pieces"]]


@lowering(Op.CONCATENATE)
@single
def _concatenate(ctx, op: Operation, *xs: mx.array) -> mx.array:
    return mx.concatenate(list(xs), axis=int(op.attrs["dimension"]))


@lowering(Op.REVERSE)
@single
def _reverse(ctx, op: Operation, x: mx.array) -> mx.array:
    dims = set(op.attrs["dimensions"])
    return x[tuple(slice(None, None, -1) if d in dims else slice(None) for d in range(x.ndim))]


def pad(x: mx.array, value: mx.array, low, high, interior) -> mx.array:
    value = value.astype(x.dtype)
    for d in range(x.ndim):
        k = interior[d]
        if k > 0 and x.shape[d] > 1:
            n = x.shape[d]
            moved = mx.moveaxis(x, d, -1)
            fill = mx.broadcast_to(value, (*moved.shape, k))
            woven = mx.concatenate([moved[..., None], fill], axis=-1)
            woven = woven.reshape((*moved.shape[:-1], n * (k + 1)))[..., : n + (n - 1) * k]
            x = mx.moveaxis(woven, -1, d)
        lo, hi = low[d], high[d]
        if lo < 0 or hi < 0:
            n = x.shape[d]
            idx = [slice(None)] * x.ndim
            idx[d] = slice(max(-lo, 0), n - max(-hi, 0))
            x = x[tuple(idx)]
        if lo > 0 or hi > 0:
            parts = []
            if lo > 0:
                parts.append(mx.broadcast_to(value, (*x.shape[:d], lo, *x.shape[d + 1:])))
            parts.append(x)
            if hi > 0:
                parts.append(mx.broadcast_to(value, (*x.shape[:d], hi, *x.shape[d + 1:])))
            x = mx.concatenate(parts, axis=d)
    return x


@lowering(Op.PAD)
@single
def _pad(ctx, op: Operation, x: mx.array, value: mx.array) -> mx.array:
    return pad(x, value, op.attrs["edge_padding_low"], op.attrs["edge_padding_high"],
               op.attrs["interior_padding"])


def _clamped(s: mx.array, limit: int) -> mx.array:
    """One start index clamped to [0, limit] as XLA clamps it, as an int32 vector [1]."""
    return _clamp(s, limit).reshape(1)


def _clamp(s: mx.array, limit: int) -> mx.array:
    """Start indices clamped to [0, limit] as XLA clamps them, as int32."""
    if s.dtype not in _UNSIGNED:
        s = mx.maximum(s, 0)
    limit = max(limit, 0)
    if _below_type_max(s, limit):
        s = mx.minimum(s, limit)
    return s if s.dtype == mx.int32 else s.astype(mx.int32)


def _below_type_max(s: mx.array, limit: int) -> bool:
    """Can an index of s's type exceed `limit`? (If not, comparing with it is moot, and MLX
    refuses `limit` as an operand of that type.)"""
    return limit < np.iinfo(_dtypes.NAME_OF_MLX_DTYPE[s.dtype]).max


_UNSIGNED = (mx.uint8, mx.uint16, mx.uint32, mx.uint64)


def _starts(op: Operation, starts: tuple[mx.array, ...], limits: list[int]
            ) -> tuple[mx.array | None, list[int]]:
    """The start indices, clamped, as (int32 vector, the axes it indexes); axes starting at a
    constant 0 are left out (None: every axis starts at 0). Constant starts come clamped from
    compiler/rewrites.py (attrs["static_starts"])."""
    static = op.attrs.get("static_starts") or (None,) * len(starts)
    in_range = op.attrs.get("starts_in_range", False)  # compiler/loop_slabs.py proved it
    parts, axes = [], []
    for d, (s, known, limit) in enumerate(zip(starts, static, limits, strict=True)):
        if known != 0:
            axes.append(d)
            parts.append(mx.array([known], dtype=mx.int32) if known is not None else
                         s.astype(mx.int32).reshape(1) if in_range else _clamped(s, limit))
    if not parts:
        return None, []
    return (parts[0] if len(parts) == 1 else mx.concatenate(parts)), axes


def _one_row(op: Operation, sizes: list[int]) -> int | None:
    """The axis of a slice whose only computed start is on an axis it takes one row of, the
    other starts being constant 0s (a scan's slice of its stacked inputs or outputs)."""
    static = op.attrs.get("static_starts")
    if static is None:
        return None
    computed = [d for d, k in enumerate(static) if k is None]
    if len(computed) != 1 or sizes[computed[0]] != 1 or any(k for k in static if k):
        return None
    return computed[0]


@lowering(Op.DYNAMIC_SLICE)
@single
def _dynamic_slice(ctx, op: Operation, x: mx.array, *starts: mx.array) -> mx.array:
    sizes = list(op.attrs["slice_sizes"])
    if x.ndim == 0:
        return x
    limits = [n - k for n, k in zip(x.shape, sizes, strict=True)]
    d = _one_row(op, sizes)
    if d is not None:  # one Gather kernel, where DynamicSlice launches two
        x = x[tuple(slice(None) if a == d else slice(0, k) for a, k in enumerate(sizes))]
        return mx.take(x, _clamped(starts[d], limits[d]), axis=d)
    s, axes = _starts(op, starts, limits)
    if s is None:
        return x if list(x.shape) == sizes else x[tuple(slice(0, k) for k in sizes)]
    return mx.slice(x, s, axes, sizes)


@lowering(Op.DYNAMIC_UPDATE_SLICE)
@single
def _dynamic_update_slice(ctx, op: Operation, x: mx.array, update: mx.array,
                          *starts: mx.array) -> mx.array:
    if x.ndim == 0:
        return update
    update = update.astype(x.dtype)
    limits = [n - k for n, k in zip(x.shape, update.shape, strict=True)]
    d = _one_row(op, list(update.shape))
    if d is not None and ctx.program.platform == "gpu":
        # one Scatter kernel on a GPU, where DynamicSliceUpdate launches two (on MLX's CPU
        # its scatter loop is slower than the copy)
        where = mx.broadcast_to(_clamped(starts[d], limits[d]).reshape(
            [1] * update.ndim), update.shape)
        return mx.put_along_axis(x, where, update, axis=d)
    s, axes = _starts(op, starts, limits)
    if s is None:
        s, axes = mx.zeros((1,), dtype=mx.int32), [0]
    return mx.slice_update(x, update, s, axes)


# ------------------------------------------------------------------------------- gather


def _index_vectors(indices: mx.array, index_vector_dim: int) -> mx.array:
    """Indices with the index vector as the last dim."""
    if index_vector_dim == indices.ndim:
        return indices[..., None]
    return mx.moveaxis(indices, index_vector_dim, -1)


def _strides(shape: tuple[int, ...]) -> list[int]:
    out = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        out[d] = out[d + 1] * shape[d + 1]
    return out


def _row_axis(index_map: tuple[int, ...], dropped: tuple[int, ...],
              batching: tuple[int, ...], sizes: list[int], shape: tuple[int, ...]) -> int | None:
    """The operand axis a gather or scatter takes whole rows along (one index per row, every
    other axis whole: an embedding lookup and its gradient), or None."""
    if len(index_map) != 1 or batching:
        return None
    d = index_map[0]
    if not set(dropped) <= {d} or sizes[d] != 1 or shape[d] == 0 or \
            any(k != n for e, (k, n) in enumerate(zip(sizes, shape, strict=True)) if e != d):
        return None
    return d


def _batch_coords(batch_shape: tuple[int, ...], axis: int, stride: int) -> mx.array:
    """stride x the coordinate along `axis` of every batch position, shape batch_shape."""
    return broadcast_in_dim(counting(batch_shape[axis], stride), batch_shape, (axis,))


def _window_offsets(starts: mx.array, sizes: list[int], strides: list[int]) -> mx.array:
    """The linear index of every element of the windows at these linear starts (shape
    [*batch, 1, ...], one 1 per window dim): a sum of broadcast constants, which mx.compile
    fuses into one kernel."""
    full = starts
    for d, (n, stride) in enumerate(zip(sizes, strides, strict=True)):
        if n > 1:
            full = full + broadcast_in_dim(counting(n, stride), tuple(sizes), (d,))
    return full


def _add(total: mx.array | None, term: mx.array) -> mx.array:
    return term if total is None else total + term


@lowering(Op.GATHER)
@single
def _gather(ctx, op: Operation, x: mx.array, indices: mx.array) -> mx.array:
    dn: GatherDims = op.attrs["dimension_numbers"]
    sizes = tuple(op.attrs["slice_sizes"])
    idx = _index_vectors(indices, dn.index_vector_dim)
    batch_shape = tuple(idx.shape[:-1])
    # the batch dims of `indices` after the index vector dim moved last
    dropped = set(dn.collapsed_slice_dims) | set(dn.operand_batching_dims)
    keep = [d for d in range(len(sizes)) if d not in dropped]
    row = _row_axis(dn.start_index_map, dn.collapsed_slice_dims, dn.operand_batching_dims,
                    list(sizes), tuple(x.shape))
    if row is not None:  # one gather of rows, not of every element
        rows = _clamp(idx[..., 0], x.shape[row] - 1)
        vals = mx.take(x, rows, axis=0) if row == 0 else \
            mx.take(mx.moveaxis(x, row, 0), rows, axis=0)
        return _placed(vals.reshape((*batch_shape, *[sizes[d] for d in keep])),
                       len(batch_shape), dn.offset_dims)
    ind_dims = [d for d in range(indices.ndim) if d != dn.index_vector_dim]
    strides = _strides(tuple(x.shape))
    linear: mx.array | None = None
    for k, d in enumerate(dn.start_index_map):
        linear = _add(linear, _clamp(idx[..., k], x.shape[d] - sizes[d]) * strides[d])
    for od, idim in zip(dn.operand_batching_dims, dn.start_indices_batching_dims, strict=True):
        linear = _add(linear, _batch_coords(batch_shape, ind_dims.index(idim), strides[od]))
    if linear is None:
        linear = mx.zeros(batch_shape, dtype=mx.int32)
    full = _window_offsets(linear.reshape((*batch_shape, *([1] * len(sizes)))), list(sizes),
                           strides)
    vals = mx.take(x.reshape(-1), full.reshape(-1)).reshape((*batch_shape, *sizes))
    return _placed(vals.reshape((*batch_shape, *[sizes[d] for d in keep])), len(batch_shape),
                   dn.offset_dims)


def _placed(vals: mx.array, nb: int, offset_dims: tuple[int, ...]) -> mx.array:
    """Gathered [*batch, *offsets] values with the offset dims moved to `offset_dims` in the
    output and the batch dims elsewhere, in order."""
    rank = vals.ndim
    perm: list[int] = []
    b = 0
    o = 0
    for p in range(rank):
        if p in offset_dims:
            perm.append(nb + o)
            o += 1
        else:
            perm.append(b)
            b += 1
    if perm != list(range(rank)):
        vals = permuted(vals, perm)
    return vals


# ------------------------------------------------------------------------------ scatter


_SCATTER_METHODS = {"ADD": "add", "MUL": "multiply", "MAX": "maximum", "MIN": "minimum"}


_SERIAL_LIMIT = 4096  # index vectors a scatter with a general body may apply one by one


def _scatter_kind(op: Operation) -> str | None:
    """The fast-path monoid of a scatter ('SET', 'ADD', ...), or None: apply it serially."""
    n = len(op.results)
    body = op.regions[0]
    kinds = [combiner(_single_pair_body(body, i, n), 0, 1) if n > 1 else combiner(body)
             for i in range(n)]
    if n > 1 and any(k != "SET" for k in kinds):
        return None
    kind = kinds[0]
    t = op.results[0].type
    assert isinstance(t, TensorType)
    if kind in ("AND", "OR") and t.dtype != "bool":
        return None
    if kind in ("MAX", "MIN") and t.dtype == "complex64":
        return None
    return kind


def _scatter_count(op: Operation) -> int:
    dn: ScatterDims = op.attrs["scatter_dimension_numbers"]
    t = op.operands[len(op.results)].type
    assert isinstance(t, TensorType)
    return math.prod(n for d, n in enumerate(t.shape) if d != dn.index_vector_dim)


def _check_scatter(op: Operation) -> None:
    if _scatter_kind(op) is None and _scatter_count(op) > _SERIAL_LIMIT:
        raise UnimplementedError(f"[stablehlo.scatter] this update computation is only "
                                 f"supported for up to {_SERIAL_LIMIT} indices (it is applied "
                                 f"one index at a time){op.where()}")


register_check(Op.SCATTER, _check_scatter)


@lowering(Op.SCATTER)
def _scatter(ctx, op: Operation, *args: mx.array) -> list[mx.array]:
    n = len(op.results)
    inputs, indices, updates = args[:n], args[n], args[n + 1:]
    dn: ScatterDims = op.attrs["scatter_dimension_numbers"]
    kind = _scatter_kind(op)
    x0 = inputs[0]
    idx = _index_vectors(indices, dn.index_vector_dim)
    batch_shape = tuple(idx.shape[:-1])
    ind_dims = [d for d in range(indices.ndim) if d != dn.index_vector_dim]
    oshape = tuple(x0.shape)
    strides = _strides(oshape)
    u = updates[0]
    window_dims_ops = [d for d in range(len(oshape))
                       if d not in dn.inserted_window_dims and d not in dn.input_batching_dims]
    window_sizes = [1] * len(oshape)
    for uw, d in zip(dn.update_window_dims, window_dims_ops, strict=True):
        window_sizes[d] = u.shape[uw]
    scatter_dims_u = [d for d in range(u.ndim) if d not in dn.update_window_dims]
    perm = scatter_dims_u + list(dn.update_window_dims)
    row = _row_axis(dn.scatter_dims_to_operand_dims, dn.inserted_window_dims,
                    dn.input_batching_dims, window_sizes, oshape)
    if row is not None and n == 1 and kind in _SCATTER_METHODS and x0.dtype != mx.bool_:
        return [_scatter_rows(kind, x0, idx[..., 0], permuted(u, perm), row, batch_shape)]
    linear: mx.array | None = None
    valid: mx.array | None = None
    for k, d in enumerate(dn.scatter_dims_to_operand_dims):
        s, limit = idx[..., k], oshape[d] - window_sizes[d]
        in_range = _in_range(s, limit)
        valid = in_range if valid is None else valid & in_range
        linear = _add(linear, _clamp(s, limit) * strides[d])
    for od, idim in zip(dn.input_batching_dims, dn.scatter_indices_batching_dims, strict=True):
        linear = _add(linear, _batch_coords(batch_shape, ind_dims.index(idim), strides[od]))
    if linear is None:
        linear = mx.zeros(batch_shape, dtype=mx.int32)
    total = math.prod(oshape)
    # updates: scatter dims (in order) then window dims (in operand order)
    window_shape = [window_sizes[d] for d in window_dims_ops]
    ones = [1] * len(window_shape)
    full = _window_offsets(linear.reshape((*batch_shape, *ones)), window_shape,
                           [strides[d] for d in window_dims_ops])
    inside = None if valid is None else valid.reshape((*batch_shape, *ones))
    neutral = _neutral(kind, x0.dtype) if n == 1 else None
    vals = [permuted(upd, perm).astype(x.dtype) for x, upd in zip(inputs, updates, strict=True)]
    if inside is None:  # no scattered index: every window is inside
        flats = [x.reshape(-1) for x in inputs]
    elif neutral is not None:
        # an invalid window adds the identity where its clamped copy lands: no spare slot
        vals = [mx.where(inside, vals[0], neutral)]
        flats = [x0.reshape(-1)]
    else:
        # an invalid window goes entirely to the spare slot past the end
        full = mx.where(inside, full, mx.array(total, dtype=mx.int32))
        flats = [mx.concatenate([x.reshape(-1), mx.zeros((1,), dtype=x.dtype)])
                 for x in inputs]
    flat_idx = full.reshape(-1)
    vals = [v.reshape(-1) for v in vals]
    if kind is None:
        flats = _scatter_serial(ctx.region(0), flats, vals, flat_idx, math.prod(batch_shape))
    else:
        flats = [_scatter_fast(kind, f, flat_idx, v) for f, v in zip(flats, vals, strict=True)]
    return [(f if f.size == total else f[:total]).reshape(oshape) for f in flats]


def _scatter_rows(kind: str, x: mx.array, starts: mx.array, updates: mx.array, row: int,
                  batch_shape: tuple[int, ...]) -> mx.array:
    """A scatter of whole rows along axis `row` (an embedding's gradient): one scatter of
    rows, not of every element. As XLA does, a row whose index is out of range is skipped:
    its update becomes the identity of `kind` (applied to the row its index clamps to), or,
    where MLX applies no identity exactly, it goes to a spare row past the end, dropped
    after."""
    n = x.shape[row]
    valid = _in_range(starts, n - 1)
    moved = x if row == 0 else mx.moveaxis(x, row, 0)
    updates = updates.reshape((*batch_shape, *moved.shape[1:])).astype(x.dtype)
    neutral = _neutral(kind, x.dtype)
    if neutral is not None:  # no spare row: the whole operand is not copied to make one
        rows = _clamp(starts, n - 1)
        updates = mx.where(valid.reshape((*batch_shape, *[1] * (moved.ndim - 1))), updates,
                           neutral)
        out = getattr(moved.at[rows], _SCATTER_METHODS[kind])(updates)
    else:
        rows = mx.where(valid, _clamp(starts, n - 1), n)
        padded = mx.concatenate([moved, mx.zeros((1, *moved.shape[1:]), dtype=x.dtype)])
        out = getattr(padded.at[rows], _SCATTER_METHODS[kind])(updates)[:n]
    return out if row == 0 else mx.moveaxis(out, 0, row)


def _in_range(s: mx.array, limit: int) -> mx.array:
    """Which start indices lie in [0, limit]."""
    valid = s <= limit if _below_type_max(s, limit) else mx.ones(s.shape, dtype=mx.bool_)
    return valid if s.dtype in _UNSIGNED else valid & (s >= 0)


def _neutral(kind: str | None, dtype: mx.Dtype) -> mx.array | None:
    """An update that leaves any value as it is under `kind`, where MLX's scatter applies it
    exactly: -0.0 for a float sum (+0.0 would turn a -0.0 into +0.0), 1 for a real product,
    the type's bounds for an integer max / min. None otherwise (a float max / min, whose
    handling of NaN in MLX's atomics is not documented; complex products; booleans)."""
    if dtype == mx.bool_:
        return None
    name = _dtypes.NAME_OF_MLX_DTYPE[dtype]
    floating = mx.issubdtype(dtype, mx.inexact)
    value: Any = None
    if kind == "ADD" and floating:
        # negated here, not written -0.0: mx.compile prints a -0.0 literal as the integer -0
        return mx.negative(mx.array(0, dtype=dtype))
    if kind == "ADD":
        value = 0
    elif kind == "MUL" and dtype != mx.complex64:
        value = 1
    elif kind in ("MAX", "MIN") and not floating:
        info = np.iinfo(name)
        value = int(info.min) if kind == "MAX" else int(info.max)
    return None if value is None else mx.array(value, dtype=dtype)


def _scatter_fast(kind: str, flat: mx.array, idx: mx.array, vals: mx.array) -> mx.array:
    if kind == "SET":
        return mx.put_along_axis(flat, idx, vals, axis=0)
    if flat.dtype == mx.bool_:
        method = {"ADD": "maximum", "MAX": "maximum", "OR": "maximum", "MUL": "minimum",
                  "MIN": "minimum", "AND": "minimum"}[kind]
        as_int = flat.astype(mx.int32)
        return getattr(as_int.at[idx], method)(vals.astype(mx.int32)).astype(mx.bool_)
    return getattr(flat.at[idx], _SCATTER_METHODS[kind])(vals)


def _scatter_serial(body, flats: list[mx.array], vals: list[mx.array], idx: mx.array,
                    count: int) -> list[mx.array]:
    """Apply a general update body one index vector at a time, in order (XLA's semantics)."""
    if count == 0:
        return flats
    idx = idx.reshape(count, -1)
    vals = [v.reshape(count, -1) for v in vals]
    for k in range(count):
        at = idx[k]
        current = [mx.take(f, at) for f in flats]
        new = body(*current, *[v[k] for v in vals])
        flats = [mx.put_along_axis(f, at, mx.broadcast_to(r, at.shape).astype(f.dtype), axis=0)
                 for f, r in zip(flats, new, strict=True)]
    return flats


def _single_pair_body(body: Any, i: int, n: int) -> Any:
    """For a variadic body: a view whose args are (a_i, b_i) and result is result i."""
    from ..ir import Block
    from ..ir import Operation as IrOp

    ret = body.terminator
    fake_ret = IrOp(ret.op, [ret.operands[i]], [])
    ops = body.ops[:-1] + [fake_ret]
    return Block([body.args[i], body.args[n + i]], ops)


@lowering(Op.TUPLE)
@single
def _tuple(ctx, op: Operation, *xs: mx.array) -> Any:
    return tuple(xs)


@lowering(Op.GET_TUPLE_ELEMENT)
@single
def _get_tuple_element(ctx, op: Operation, t: Any) -> Any:
    return t[int(op.attrs["index"])]


@lowering(Op.CREATE_TOKEN, Op.AFTER_ALL)
@single
def _token(ctx, op: Operation, *xs: Any) -> Any:
    return mx.zeros((0,), dtype=mx.bool_)
