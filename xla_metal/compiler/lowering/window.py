"""reduce_window (pooling, cumulative ops) and select_and_scatter (max-pool gradients).

reduce_window pads with the init values (base dilation = interior padding), then combines one
strided slice per window position. A window that spans a whole axis with stride 1 and
padding (n-1, 0) or (0, n-1) is a cumulative op and uses MLX's cumsum/cumprod/cummax/cummin.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import mlx.core as mx
import numpy as np

from ...errors import UnimplementedError
from ..ir import Op, Operation
from .reduction import monoid
from .regions import combiner
from .registry import lowering, register_check
from .shape import pad

_CUMULATIVE = {"ADD": mx.cumsum, "MUL": mx.cumprod, "MAX": mx.cummax, "MIN": mx.cummin}


def _window_attrs(op: Operation, rank: int):
    dims = tuple(int(d) for d in op.attrs["window_dimensions"])
    strides = tuple(op.attrs.get("window_strides") or (1,) * rank)
    base = tuple(op.attrs.get("base_dilations") or (1,) * rank)
    wdil = tuple(op.attrs.get("window_dilations") or (1,) * rank)
    padding = op.attrs.get("padding")
    pads = [(0, 0)] * rank if padding is None else \
        [(int(lo), int(hi)) for lo, hi in np.asarray(padding).reshape(rank, 2)]
    return dims, strides, base, wdil, pads


def _cumulative_axis(x: mx.array, dims, strides, base, wdil, pads) -> tuple[int, bool] | None:
    """(axis, reverse) when the window is a cumulative scan along one axis."""
    axis = None
    for d in range(x.ndim):
        if base[d] != 1 or wdil[d] != 1 or strides[d] != 1:
            return None
        if dims[d] == 1 and pads[d] == (0, 0):
            continue
        n = x.shape[d]
        if axis is not None or dims[d] != n or n < 2:
            return None
        if pads[d] == (n - 1, 0):
            axis = (d, False)
        elif pads[d] == (0, n - 1):
            axis = (d, True)
        else:
            return None
    return axis


def _window_slices(x: mx.array, dims, strides, wdil):
    out_shape = [(x.shape[d] - (dims[d] - 1) * wdil[d] - 1) // strides[d] + 1
                 for d in range(x.ndim)]
    for offset in itertools.product(*[range(w) for w in dims]):
        idx = tuple(slice(k * wdil[d], k * wdil[d] + (out_shape[d] - 1) * strides[d] + 1,
                          strides[d]) for d, k in enumerate(offset))
        yield offset, x[idx]


@lowering(Op.REDUCE_WINDOW)
def _reduce_window(ctx, op: Operation, *args: mx.array) -> Sequence[Any]:
    n = len(op.results)
    xs, inits = list(args[:n]), list(args[n:])
    rank = xs[0].ndim
    dims, strides, base, wdil, pads = _window_attrs(op, rank)
    kind = combiner(op.regions[0]) if n == 1 else None
    if kind in _CUMULATIVE:
        found = _cumulative_axis(xs[0], dims, strides, base, wdil, pads)
        if found is not None and xs[0].dtype != mx.bool_:
            axis, reverse = found
            x, init = xs[0], inits[0].astype(xs[0].dtype)
            r = _CUMULATIVE[kind](x, axis=axis, reverse=reverse)
            return (monoid(kind, x.dtype)(r.astype(x.dtype), init),)
    padded = [pad(x, init, [p[0] for p in pads], [p[1] for p in pads], [b - 1 for b in base])
              for x, init in zip(xs, inits, strict=True)]
    windows = [list(_window_slices(p, dims, strides, wdil)) for p in padded]
    out_shape = windows[0][0][1].shape
    accs = [mx.broadcast_to(init.astype(x.dtype), out_shape)
            for x, init in zip(xs, inits, strict=True)]
    if kind is not None and kind != "SET":
        fn = monoid(kind, xs[0].dtype)
        for _, s in windows[0]:
            accs[0] = fn(accs[0], s)
        return accs
    body = ctx.region(0)
    for j in range(len(windows[0])):
        outs = body(*accs, *[w[j][1] for w in windows])
        accs = [mx.broadcast_to(o, out_shape).astype(a.dtype) for o, a in zip(outs, accs,
                                                                               strict=True)]
    return accs


def _check_select_and_scatter(op: Operation) -> None:
    if combiner(op.regions[1]) != "ADD":
        raise UnimplementedError(f"[stablehlo.select_and_scatter] only an add scatter body is "
                                 f"supported{op.where()}")


register_check(Op.SELECT_AND_SCATTER, _check_select_and_scatter)


@lowering(Op.SELECT_AND_SCATTER)
def _select_and_scatter(ctx, op: Operation, x: mx.array, source: mx.array,
                        init: mx.array) -> Sequence[Any]:
    rank = x.ndim
    dims = tuple(int(d) for d in op.attrs["window_dimensions"])
    strides = tuple(op.attrs.get("window_strides") or (1,) * rank)
    padding = op.attrs.get("padding")
    pads = [(0, 0)] * rank if padding is None else \
        [(int(lo), int(hi)) for lo, hi in np.asarray(padding).reshape(rank, 2)]
    if combiner(op.regions[1]) != "ADD":
        raise UnimplementedError(f"[stablehlo.select_and_scatter] only an add scatter body is "
                                 f"supported{op.where()}")
    select = ctx.region(0)
    padded_shape = [x.shape[d] + pads[d][0] + pads[d][1] for d in range(rank)]
    # padding is never selected: mark it invalid
    valid = pad(mx.ones(x.shape, dtype=mx.bool_), mx.array(False), [p[0] for p in pads],
                [p[1] for p in pads], [0] * rank)
    xp = pad(x, mx.zeros((), dtype=x.dtype), [p[0] for p in pads], [p[1] for p in pads],
             [0] * rank)
    ones = (1,) * rank
    vwin = dict(_window_slices(valid, dims, strides, ones))
    slices = list(_window_slices(xp, dims, strides, ones))
    first_offset, best = slices[0]
    best_ok = vwin[first_offset]
    best_k = mx.zeros(best.shape, dtype=mx.int32)
    for k, (offset, cand) in enumerate(slices[1:], start=1):
        ok = vwin[offset]
        keep = select(best, cand)[0]
        take = ok & (mx.logical_not(best_ok) | mx.logical_not(keep))
        best = mx.where(take, cand, best)
        best_ok = best_ok | ok
        best_k = mx.where(take, mx.array(k, dtype=mx.int32), best_k)
    # the padded-array position of every window's selected element
    pstrides = [math.prod(padded_shape[d + 1:]) for d in range(rank)]
    out_shape = best_k.shape
    linear = mx.zeros(out_shape, dtype=mx.int32)
    rem = best_k
    for d in range(rank - 1, -1, -1):
        off = rem % dims[d]
        rem = rem // dims[d]
        pos = mx.arange(out_shape[d], dtype=mx.int32).reshape(
            tuple(out_shape[d] if e == d else 1 for e in range(rank))) * strides[d]
        linear = linear + (pos + off) * pstrides[d]
    total = math.prod(padded_shape)
    linear = mx.where(best_ok, linear, mx.array(total, dtype=mx.int32))
    flat = mx.zeros((total + 1,), dtype=source.dtype)
    flat = flat.at[linear.reshape(-1)].add(source.reshape(-1))
    scattered = flat[:total].reshape(tuple(padded_shape))
    crop = tuple(slice(pads[d][0], pads[d][0] + x.shape[d]) for d in range(rank))
    return (scattered[crop] + init.astype(source.dtype),)
