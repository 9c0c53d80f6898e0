"""Rules for ops whose meaning on an emulated type is not its carrier's (emulated_dtypes.py):
convert and bitcast_convert to or from one, and the width-dependent ops on 2/4-bit integers
(XLA:CPU shifts and counts leading zeros at the type's own width)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx

from ..element_types import bit_width, kind
from ..runtime.dtypes import CARRIER, mlx_dtype
from .emulated_dtypes import (
    NARROW_INTS,
    carrier_name,
    decode,
    encode,
    round_float,
    widen_carrier,
    wrap_int,
)
from .ir import Op, Operation, TensorType
from .lowering.elementwise import convert as carrier_convert
from .lowering.elementwise import operand_dtype, result_dtype

# ---------------------------------------------------------------------------- convert


def _convert(ctx: Any, op: Operation, x: mx.array) -> tuple[mx.array]:
    src, dst = operand_dtype(op), result_dtype(op)
    if src == dst:
        return (x,)
    ks = kind(src)
    if ks == "c":
        x = mx.real(x)
    if dst in NARROW_INTS:
        carrier = CARRIER[dst]
        if ks in "fc":  # saturates at the narrow type's bounds; NaN -> 0; truncates
            w = bit_width(dst)
            lo, hi = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if dst.startswith("int") \
                else (0, (1 << w) - 1)
            f = x if x.dtype in (mx.float32, mx.float64) else x.astype(mx.float32)
            f = mx.where(mx.isnan(f), mx.zeros_like(f), mx.clip(f, lo, hi))
            return (f.astype(carrier),)
        return (wrap_int(x.astype(carrier), dst),)
    if dst in CARRIER:  # a float8/float4 type: one rounding, from the source's precision
        if ks not in "fc":
            x = x.astype(mx.float32)
        return (round_float(x, dst, wide_source=src in ("float32", "float64", "complex64")),)
    if src in CARRIER and x.dtype == mx.float16 and dst in ("float32", "float64"):
        return (widen_carrier(x, mlx_dtype(dst)),)
    return (carrier_convert(x, carrier_name(src), dst),)


# ---------------------------------------------------------------------- bitcast_convert


def _regroup(units: mx.array, width: int, to_width: int) -> mx.array:
    """uint8 units of `width` bits along the last axis as units of `to_width` bits (both at
    most 8), the lowest bits first, as XLA packs sub-byte types."""
    if width == to_width:
        return units
    if units.ndim == 0:
        units = units.reshape(1)
    lead = units.shape[:-1]
    if width > to_width:
        k = width // to_width
        mask = mx.array((1 << to_width) - 1, mx.uint8)
        parts = [(units >> mx.array(to_width * i, mx.uint8)) & mask for i in range(k)]
        return mx.stack(parts, axis=-1).reshape(*lead, units.shape[-1] * k)
    k = to_width // width
    groups = units.reshape(*lead, units.shape[-1] // k, k)
    out = groups[..., 0]
    for i in range(1, k):
        out = out | (groups[..., i] << mx.array(width * i, mx.uint8))
    return out


def _bitcast(ctx: Any, op: Operation, x: mx.array) -> tuple[mx.array]:
    src, dst = operand_dtype(op), result_dtype(op)
    result = op.results[0].type
    assert isinstance(result, TensorType)
    shape = result.shape
    sw, dw = bit_width(src), bit_width(dst)
    units = encode(x, src) if src in CARRIER else x
    if src == "bool":
        units = units.astype(mx.uint8)
    storage = mx.uint8 if dst in CARRIER or dst == "bool" else mlx_dtype(dst)
    if units.ndim == 0:  # (MLX changes the element size of arrays, not of scalars)
        units = units.reshape(1)
    if sw >= 8 and dw >= 8:
        y = mx.contiguous(units).view(storage)
    else:
        if sw >= 8:
            units, sw = mx.contiguous(units).view(mx.uint8), 8
        y = _regroup(units, sw, min(dw, 8))
        if dw >= 8:
            y = mx.contiguous(y).view(storage)
    if dst in CARRIER:
        y = decode(y, dst)
    elif dst == "bool":
        y = y != 0
    return (y.reshape(shape),)


# ------------------------------------------------------------------ 2/4-bit integers


def _mask(name: str) -> mx.array:
    return mx.array((1 << bit_width(name)) - 1, mx.uint8)


def _shift_right_logical(ctx: Any, op: Operation, x: mx.array, y: mx.array) -> tuple[Any]:
    """A signed narrow type's bits shifted in zeros from its own top bit."""
    name = operand_dtype(op)
    w = bit_width(name)
    bits, amount = x.view(mx.uint8) & _mask(name), y.view(mx.uint8) & _mask(name)
    r = mx.where(amount >= w, mx.zeros_like(bits), bits >> amount)
    return (r.view(mx.int8),)


def _shift_right_arithmetic(ctx: Any, op: Operation, x: mx.array, y: mx.array) -> tuple[Any]:
    """An unsigned narrow type's bits shifted in copies of its own top bit."""
    name = operand_dtype(op)
    w = bit_width(name)
    sign = 1 << (w - 1)
    signed = ((x & _mask(name)) ^ mx.array(sign, mx.uint8)).astype(mx.int8) - sign
    amount = mx.minimum(y & _mask(name), mx.array(w - 1, mx.uint8)).astype(mx.int8)
    return (mx.right_shift(signed, amount).view(mx.uint8),)


def _significant_bits(name: str, x: mx.array) -> mx.array:
    bits = x.view(mx.uint8) & _mask(name)
    n = mx.zeros(bits.shape, mx.int32)
    for i in range(bit_width(name)):
        n = n + (bits >= (1 << i)).astype(mx.int32)
    return n


def _clz(ctx: Any, op: Operation, x: mx.array) -> tuple[Any]:
    name = operand_dtype(op)
    n = bit_width(name) - _significant_bits(name, x)
    return (n.astype(x.dtype),)


def _popcnt(ctx: Any, op: Operation, x: mx.array) -> tuple[Any]:
    name = operand_dtype(op)
    bits = x.view(mx.uint8) & _mask(name)
    n = mx.zeros(bits.shape, mx.uint8)
    for i in range(bit_width(name)):
        n = n + ((bits >> mx.array(i, mx.uint8)) & mx.array(1, mx.uint8))
    return (n.astype(x.dtype),)


OWN_RULES: dict[Op, Callable[..., Any]] = {Op.CONVERT: _convert, Op.BITCAST_CONVERT: _bitcast}


def narrow_int_rule(operation: Operation, rule: Callable[..., Any]) -> Callable[..., Any]:
    """The rule for `operation` on a 2/4-bit integer operand: XLA:CPU shifts and counts
    leading zeros at the type's width; it counts int4's bits in its int8 form (the carrier's
    rule) but int2's in its own width."""
    name = operand_dtype(operation)
    signed = name.startswith("int")
    if operation.op is Op.SHIFT_RIGHT_LOGICAL and signed:
        return _shift_right_logical
    if operation.op is Op.SHIFT_RIGHT_ARITHMETIC and not signed:
        return _shift_right_arithmetic
    if operation.op is Op.CLZ:
        return _clz
    if operation.op is Op.POPCNT and name == "int2":
        return _popcnt
    return rule
