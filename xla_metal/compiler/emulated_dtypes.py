"""Emulated element types: the float8 and float4 families and 2/4-bit integers, on MLX.

MLX has none of them. A buffer holds their bit codes, one per byte (runtime/dtypes.py); a
program decodes its arguments into *carriers* on entry (float16 for float8/float4, float32 for
float8_e8m0fnu, int8/uint8 for the narrow integers: each holds every value exactly) and encodes
its results on exit. In between, the semantics are XLA:CPU's, measured against JAX's CPU backend:

- every op on these float types is computed in float16 (float32 for e8m0) and its result is
  rounded back to the type: `adapt` wraps the rule of each op that makes new values with
  `rounder`; ops that only move values skip it, so moves keep every bit, NaN payloads included;
- convert rounds once, from the source's own precision (float64 included), to nearest even
  (e8m0: ties away from zero); overflow gives inf (e5m2, e4m3, e3m4), NaN (the fn, fnuz and
  e8m0 types) or the largest value (e2m1); NaN becomes the type's NaN (e2m1 has none: -0.0);
  fnuz types have no -0;
- 2/4-bit integers wrap modulo 2^bits; float -> narrow int saturates at the type's bounds;
  shifts and clz work at the type's width.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import mlx.core as mx
import numpy as np

from ..element_types import bit_width, numpy_dtype
from ..runtime.dtypes import CARRIER, NAME_OF_MLX_DTYPE, to_mlx
from .ir import Op, Operation, TensorType, Value

NARROW_INTS = ("int4", "uint4", "int2", "uint2")

# Ops that only move values and keep their bits on XLA:CPU, NaN payloads included: their
# results need no rounding. (XLA:CPU moves concatenate, pad, dynamic_update_slice, select
# and sort through float16 like arithmetic, so those give the type's canonical NaN.)
MOVES = frozenset({
    Op.RESHAPE, Op.TRANSPOSE, Op.BROADCAST_IN_DIM, Op.SLICE, Op.DYNAMIC_SLICE, Op.REVERSE,
    Op.GATHER, Op.WHILE, Op.IF, Op.CASE, Op.CALL, Op.COMPOSITE, Op.OPTIMIZATION_BARRIER,
    Op.SHARDING_CONSTRAINT, Op.TUPLE, Op.GET_TUPLE_ELEMENT, Op.CONSTANT,
})


@dataclass(frozen=True)
class FloatFormat:
    name: str
    mbits: int           # mantissa bits
    bias: int            # exponent bias; the smallest normal exponent is 1 - bias
    max: float           # largest finite value
    overflow: str        # "inf", "nan" or "saturate"
    nan: tuple[int, int]       # code of the NaN an op makes from a (+, -) NaN
    wide_nan: tuple[int, int]  # ... and a convert from float32/float64 makes
    signed_zero: bool = True


def _format(name: str, overflow: str, nan: tuple[int, int],
            wide_nan: tuple[int, int] | None = None) -> FloatFormat:
    info = ml_dtypes.finfo(numpy_dtype(name))
    return FloatFormat(name, int(info.nmant), 1 - int(info.minexp), float(info.max), overflow,
                       nan, wide_nan or nan, signed_zero="fnuz" not in name)


FORMATS = {f.name: f for f in [
    _format("float8_e4m3fn", "nan", (0x7F, 0xFF)),
    # XLA narrows everything but float32/float64 to e5m2 through float16, which makes 0x7F
    _format("float8_e5m2", "inf", (0x7F, 0x7F), (0x7E, 0xFE)),
    _format("float8_e4m3", "inf", (0x7C, 0xFC)),
    _format("float8_e3m4", "inf", (0x78, 0xF8)),
    _format("float8_e4m3fnuz", "nan", (0x80, 0x80)),
    _format("float8_e4m3b11fnuz", "nan", (0x80, 0x80)),
    _format("float8_e5m2fnuz", "nan", (0x80, 0x80)),
    _format("float4_e2m1fn", "saturate", (0x8, 0x8)),  # no NaN: XLA gives -0.0
]}
E8M0 = "float8_e8m0fnu"


def is_emulated(name: str) -> bool:
    return name in CARRIER


def carrier_name(name: str) -> str:
    return NAME_OF_MLX_DTYPE[CARRIER[name]]


# ----------------------------------------------------------------------- code tables


def _nan_bits16(codes: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """float16 NaNs that keep a NaN code's sign and mantissa (so that moves keep its bits)."""
    if "fnuz" in fmt.name:
        return np.full(codes.shape, 0x7E00, np.uint16)
    c = codes.astype(np.uint16)
    mantissa = c & ((1 << fmt.mbits) - 1)
    return ((c >> 7) << 15) | 0x7C00 | (mantissa << (10 - fmt.mbits))


@functools.cache
def decode_table_np(name: str) -> np.ndarray:
    """Code (0..255) -> carrier value, as a numpy array of the carrier's dtype."""
    codes = np.arange(256, dtype=np.uint8)
    if name in NARROW_INTS:
        w = bit_width(name)
        v = codes.astype(np.int64) & ((1 << w) - 1)
        if name.startswith("int"):
            v = np.where(v >= 1 << (w - 1), v - (1 << w), v)
        return v.astype(np.int8 if name.startswith("int") else np.uint8)
    if name == E8M0:
        return codes.view(numpy_dtype(name)).astype(np.float32)
    fmt = FORMATS[name]
    if bit_width(name) == 4:
        codes = (codes & 0xF).astype(np.uint8)
    values = codes.view(numpy_dtype(name)).astype(np.float16)
    bits = values.view(np.uint16).copy()
    nan = np.isnan(values)
    bits[nan] = _nan_bits16(codes[nan], fmt)
    return bits.view(np.float16)


@functools.cache
def encode_table_np(name: str) -> np.ndarray:
    """float16 bits (0..65535) -> code, for the float16-carried formats: XLA's conversion for
    numbers, and for NaNs the inverse of the decode table (so decode-encode keeps any code)."""
    fmt = FORMATS[name]
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    values = bits.view(np.float16)
    with np.errstate(all="ignore"):
        codes = values.astype(numpy_dtype(name)).view(np.uint8).copy()
    nan = np.isnan(values)
    if "fnuz" in name or fmt.overflow == "saturate":
        codes[nan] = fmt.nan[0]
    elif fmt.overflow == "nan":  # e4m3fn: one NaN per sign
        codes[nan] = np.where(bits[nan] >> 15 != 0, fmt.nan[1], fmt.nan[0])
    else:
        mant = (bits[nan] >> (10 - fmt.mbits)) & ((1 << fmt.mbits) - 1)
        mant = np.where(mant == 0, 1 << (fmt.mbits - 1), mant)
        exp_ones = ((1 << (7 - fmt.mbits)) - 1) << fmt.mbits
        codes[nan] = ((bits[nan] >> 15) << 7) | exp_ones | mant
    n = 1 << bit_width(name)
    back = codes[decode_table_np(name)[:n].view(np.uint16)]
    assert (back == np.arange(n)).all(), f"{name}: decode/encode do not invert"
    return codes


def _evaluated(array: np.ndarray) -> mx.array:
    # evaluated now: a lazy array built on the compiling thread cannot run on another
    out = mx.array(array.view(np.uint16)).view(mx.float16) if array.dtype == np.float16 \
        else mx.array(array)
    mx.eval(out)
    return out


@functools.cache
def _decode_table(name: str) -> mx.array:
    return _evaluated(decode_table_np(name))


@functools.cache
def _encode_table(name: str) -> mx.array:
    return _evaluated(encode_table_np(name))


def _nan_bits(name: str, code: int) -> mx.array:
    """The float16 bits that carry `code` (a NaN code, or e2m1's -0.0)."""
    return mx.array(int(decode_table_np(name).view(np.uint16)[code]), mx.uint16)


# --------------------------------------------------------------- codes <-> carriers


def decode(codes: mx.array, name: str) -> mx.array:
    """uint8 codes -> carrier values."""
    if name in NARROW_INTS:
        w = bit_width(name)
        c = codes & mx.array((1 << w) - 1, mx.uint8)
        if name.startswith("uint"):
            return c
        sign = 1 << (w - 1)
        return (c ^ mx.array(sign, mx.uint8)).astype(mx.int8) - mx.array(sign, mx.int8)
    return mx.take(_decode_table(name), codes.astype(mx.uint32))


def encode(x: mx.array, name: str) -> mx.array:
    """Carrier values (already of the type) -> uint8 codes."""
    if name in NARROW_INTS:
        return x.view(mx.uint8) & mx.array((1 << bit_width(name)) - 1, mx.uint8)
    if name == E8M0:  # the exponent field; 2^-127 (a float32 subnormal) gives 0, NaN 255
        return ((x.view(mx.uint32) >> mx.array(23, mx.uint32)) & mx.array(0xFF, mx.uint32)) \
            .astype(mx.uint8)
    return mx.take(_encode_table(name), x.view(mx.uint16).astype(mx.uint32))


def constant(value: np.ndarray, name: str) -> mx.array:
    """A constant of IR dtype `name` as the program computes it (the carrier, if emulated)."""
    if name not in CARRIER:
        return to_mlx(value, name)  # (complex128: as float64 pairs)
    codes = np.asarray(value).view(np.uint8)
    return _evaluated(np.asarray(decode_table_np(name)[codes], order="C"))  # (keeps 0-d)


# ------------------------------------------------------------------------- rounding


def _bits_of(dtype: mx.Dtype) -> tuple[mx.Dtype, int, int, int]:
    """(same-size unsigned dtype, mantissa bits, exponent bias, width) of float32/float64."""
    return (mx.uint64, 52, 1023, 64) if dtype == mx.float64 else (mx.uint32, 23, 127, 32)


def _pow2(k: mx.array, dtype: mx.Dtype) -> mx.array:
    """2.0**k for an int32 array k within the normal range of `dtype` (exact)."""
    uint, mant, bias, _ = _bits_of(dtype)
    return ((k + bias).astype(uint) << mx.array(mant, uint)).view(dtype)


def _sign_bit(f: mx.array) -> mx.array:
    """The sign bit, read from the value's own bits (NaNs included: a conversion to a wider
    float may drop a NaN's sign — CUDA's half-to-float gives its default, positive NaN)."""
    if f.dtype in (mx.float16, mx.bfloat16):
        return (f.view(mx.uint16) >> mx.array(15, mx.uint16)) != 0
    uint, _, _, width = _bits_of(f.dtype)
    return (f.view(uint) >> mx.array(width - 1, uint)) != 0


def widen_carrier(h: mx.array, dtype: mx.Dtype) -> mx.array:
    """A float16 carrier converted to float32/float64 keeping each NaN's sign and payload (as
    x86's conversion does, quiet bit set); plain astype on MLX-CUDA makes every NaN positive."""
    uint, mant, _, width = _bits_of(dtype)
    bits = h.view(mx.uint16).astype(uint)
    nan_bits = ((bits >> 15) << (width - 1)) | (((1 << (width - 1 - mant)) - 1) << mant) \
        | ((bits & 0x3FF) << (mant - 10)) | (1 << (mant - 1))
    return mx.where(mx.isnan(h), nan_bits.view(dtype), h.astype(dtype))


def round_float(x: mx.array, name: str, wide_source: bool = False) -> mx.array:
    """Real values (float16/bfloat16/float32/float64) rounded to format `name`, as carrier.
    `wide_source`: x is a float32/float64 program value (decides e5m2's NaN code)."""
    if name == E8M0:
        return _round_e8m0(x)
    fmt = FORMATS[name]
    f = x if x.dtype in (mx.float32, mx.float64) else x.astype(mx.float32)
    dtype = f.dtype
    uint, mant, bias, _ = _bits_of(dtype)
    # Clamped first: anything at or beyond 2*max overflows, and the scaling below stays finite
    a = mx.minimum(mx.abs(f), mx.array(2 * fmt.max, dtype))
    exponent = (a.view(uint) >> mx.array(mant, uint)).astype(mx.int32) - bias
    exponent = mx.maximum(exponent, 1 - fmt.bias)  # subnormals share the smallest exponent
    quantum_bits = exponent - fmt.mbits
    r = mx.round(a * _pow2(-quantum_bits, dtype)) * _pow2(quantum_bits, dtype)  # half to even
    too_big = r > fmt.max
    r = r.astype(mx.float16)  # exact: every value of the format is a float16
    if fmt.overflow == "saturate":
        r = mx.where(too_big, mx.array(fmt.max, mx.float16), r)
    elif fmt.overflow == "inf":
        r = mx.where(too_big, mx.array(math.inf, mx.float16), r)
    # NaNs are made as bits: mx.compile writes float constants into its kernels as numbers,
    # which would lose a NaN's sign and payload
    bits = r.view(mx.uint16)
    if fmt.overflow == "nan":  # the type's own NaN (its sign is set below)
        bits = mx.where(too_big, _nan_bits(name, fmt.nan[0]), bits)
    negative = _sign_bit(x)
    flip = negative if fmt.signed_zero else negative & ((bits & 0x7FFF) != 0)
    bits = mx.where(flip, bits ^ mx.array(0x8000, mx.uint16), bits)
    plus, minus = fmt.wide_nan if wide_source else fmt.nan
    nan = mx.where(negative, _nan_bits(name, minus), _nan_bits(name, plus))
    return mx.where(mx.isnan(f), nan, bits).view(mx.float16)


def _round_e8m0(x: mx.array) -> mx.array:
    """To float8_e8m0fnu (powers of two 2^-127..2^127, and NaN) as XLA:CPU converts: ties
    away from zero; (2^-127, 2^-126) goes up to 2^-126; below 2^-127 a float32 (a subnormal)
    gives 2^-127, a float64 NaN; zero, negatives, inf and overflow give NaN."""
    f = x if x.dtype in (mx.float32, mx.float64) else x.astype(mx.float32)
    uint, mant, bias, _ = _bits_of(f.dtype)
    u = f.view(uint)
    biased = (u >> mx.array(mant, uint)).astype(mx.int32) & (2 * bias + 1)
    mantissa = u & mx.array((1 << mant) - 1, uint)
    half = mx.array(1 << (mant - 1), uint)
    code = biased - bias + 127 + (mantissa >= half).astype(mx.int32)
    bad = mx.isnan(f) | (f <= 0) | (code > 254)
    if f.dtype == mx.float32:  # its subnormals: 2^-127 and below -> 0, above -> 1
        code = mx.where(biased == 0, (mantissa > half).astype(mx.int32), code)
    else:
        bottom = biased - bias == -127
        code = mx.where(bottom, (mantissa != 0).astype(mx.int32), code)
        bad = bad | (biased - bias < -127)
    bits = mx.where(code == 0, mx.array(0x400000, mx.uint32),
                    code.astype(mx.uint32) << mx.array(23, mx.uint32))
    bits = mx.where(bad, mx.array(0x7FC00000, mx.uint32), bits)
    return bits.view(mx.float32)


# XLA:CPU's float32 arithmetic instructions flush subnormals to zero (operands and results);
# its library functions (tanh, sin, pow, ...) and bit operations (abs) do not. In e8m0's
# float32 carrier the one subnormal is its smallest value, 2^-127.
FLUSHING = frozenset({Op.ADD, Op.SUBTRACT, Op.MULTIPLY, Op.DIVIDE, Op.SQRT, Op.RSQRT,
                      Op.MAXIMUM, Op.MINIMUM, Op.ATAN2, Op.LOG1P})
FLUSHING_RESULTS = FLUSHING | {Op.POWER}  # (pow reads 2^-127 as itself, flushes results)


def flush_subnormal(x: mx.array) -> mx.array:
    return mx.where(mx.abs(x) < mx.array(2.0 ** -126, x.dtype), mx.zeros_like(x), x)


def wrap_int(x: mx.array, name: str) -> mx.array:
    """A carrier integer wrapped modulo 2^bits into the narrow type's range."""
    w = bit_width(name)
    c = x & mx.array((1 << w) - 1, x.dtype)
    if name.startswith("uint"):
        return c
    sign = mx.array(1 << (w - 1), x.dtype)
    return (c ^ sign) - sign


def _round_flushed_e8m0(x: mx.array) -> mx.array:
    return _round_e8m0(flush_subnormal(x))


def rounder(name: str, op: Op | None = None) -> Callable[[mx.array], mx.array]:
    """What makes a carrier value produced by `op` a value of the type again."""
    if name in NARROW_INTS:
        return functools.partial(wrap_int, name=name)
    if name == E8M0:
        return _round_flushed_e8m0 if op in FLUSHING_RESULTS else _round_e8m0
    return functools.partial(round_float, name=name)


# ---------------------------------------------------------------------------- rules


def _dtype(v: Value) -> str | None:
    return v.type.dtype if isinstance(v.type, TensorType) else None


def adapt(operation: Operation, rule: Callable[..., Sequence[Any]]) -> Callable[..., Any]:
    """`rule` made to compute operation's emulated types: its own rule where the carrier's
    semantics differ (convert, bitcast, narrow-int shifts and counts), then rounding of each
    emulated result. Returns `rule` itself when no emulated type is involved."""
    from . import complex128

    if complex128.involves(operation):
        return complex128.adapt(operation, rule)
    names = [_dtype(v) for v in (*operation.operands, *operation.results)]
    if not any(n in CARRIER for n in names if n):
        return rule
    from .emulated_rules import OWN_RULES, narrow_int_rule

    own = OWN_RULES.get(operation.op)
    if own is not None:
        return own
    if operation.operands and _dtype(operation.operands[0]) in NARROW_INTS:
        rule = narrow_int_rule(operation, rule)
    if operation.op in MOVES:
        return rule
    flushes = [_dtype(v) == E8M0 and operation.op in FLUSHING for v in operation.operands]
    rounders = [rounder(n, operation.op) if n in CARRIER else None
                for n in (_dtype(r) for r in operation.results)]
    if not any(rounders) and not any(flushes):
        return rule

    def rounded(ctx: Any, op: Operation, *args: Any) -> list[Any]:
        if any(flushes):
            args = tuple(flush_subnormal(a) if f else a for a, f in zip(args, flushes,
                                                                         strict=True))
        values = rule(ctx, op, *args)
        return [r(v) if r is not None else v for v, r in zip(values, rounders, strict=True)]

    return rounded


def at_boundary(fn: Callable[..., list[Any]], arg_types: Sequence[Any],
                result_types: Sequence[Any]) -> Callable[..., list[Any]]:
    """The entry function taking and giving buffers' codes for emulated types."""
    args = [t.dtype if isinstance(t, TensorType) and t.dtype in CARRIER else None
            for t in arg_types]
    results = [t.dtype if isinstance(t, TensorType) and t.dtype in CARRIER else None
               for t in result_types]
    if not any(args) and not any(results):
        return fn

    def run(*values: Any) -> list[Any]:
        inputs = [decode(v, n) if n else v for v, n in zip(values, args, strict=True)]
        outputs = fn(*inputs)
        return [encode(v, n) if n else v for v, n in zip(outputs, results, strict=True)]

    return run


__all__ = ["adapt", "at_boundary", "carrier_name", "constant", "decode", "encode",
           "is_emulated", "round_float", "wrap_int"]
