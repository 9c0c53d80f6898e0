"""Element-wise ops: one rule factory per family, one line per op.

XLA's semantics where they differ from MLX's C-like ones: integer division truncates and never
traps (x/0 = -1 signed, all ones unsigned; x%0 = x; INT_MIN/-1 = INT_MIN), shifts by at least
the bit width give 0 (or the sign fill), float->int conversion saturates (NaN -> 0), max/min
propagate NaN, sign keeps -0.0 and NaN.
"""

from __future__ import annotations

import functools
import math
from functools import partial
from typing import Any

import mlx.core as mx

from ...element_types import kind as element_kind
from ...element_types import numpy_dtype
from ...errors import UnimplementedError
from ...runtime import dtypes as _dtypes
from ..ir import Op, Operation, TensorType
from . import float64_math
from .float64_math import exact_in_float64
from .registry import register_check, register_lowering
from .special import digamma, erf_inv, erfc, lgamma

# ------------------------------------------------------------------------------ helpers


def result_dtype(op: Operation, i: int = 0) -> str:
    t = op.results[i].type
    assert isinstance(t, TensorType)
    return t.dtype


def operand_dtype(op: Operation, i: int = 0) -> str:
    t = op.operands[i].type
    assert isinstance(t, TensorType)
    return t.dtype


@functools.cache
def kind(name: str) -> str:
    """'b' bool, 'i' signed, 'u' unsigned, 'f' float, 'c' complex."""
    return element_kind(name)


@functools.cache
def bits(name: str) -> int:
    return numpy_dtype(name).itemsize * 8


def const(value: Any, dtype: Any) -> mx.array:
    if isinstance(value, int) and value >= 2 ** 63:  # beyond what the binding converts
        return mx.array(value - 2 ** 64, dtype=mx.int64).view(dtype)
    return mx.array(value, dtype=dtype)


_UINT = {8: mx.uint8, 16: mx.uint16, 32: mx.uint32, 64: mx.uint64}
_SINT = {8: mx.int8, 16: mx.int16, 32: mx.int32, 64: mx.int64}


def _nary(fn, ctx, op: Operation, *args: Any) -> tuple[Any]:
    return (fn(*args),)


def _by_kind(table: dict[str, Any], ctx, op: Operation, *args: Any) -> tuple[Any]:
    """Dispatch on the first operand's kind ('b', 'i', 'u', 'f', 'c'); '*' is the default."""
    k = kind(operand_dtype(op))
    fn = table.get(k) or table.get("i" if k == "u" else "") or table.get("*")
    if fn is None:
        raise UnimplementedError(f"[{op.op.value}] element type {operand_dtype(op)} is not "
                                 f"supported{op.where()}")
    return (fn(*args),)


def family(**table: Any):
    return partial(_by_kind, table)


def _check_family(operation: Operation) -> None:
    """Refuse at compile time an element type a family rule has no entry for."""
    rule = get_rule_table(operation.op)
    if rule is None or not operation.operands:
        return
    k = kind(operand_dtype(operation))
    if not (rule.get(k) or rule.get("i" if k == "u" else "") or rule.get("*")):
        raise UnimplementedError(f"[{operation.op.value}] element type "
                                 f"{operand_dtype(operation)} is not supported on metal"
                                 f"{operation.where()}")


_FAMILIES: dict[Op, dict[str, Any]] = {}


def get_rule_table(op: Op) -> dict[str, Any] | None:
    return _FAMILIES.get(op)


def register_family(op: Op, **table: Any) -> None:
    _FAMILIES[op] = table
    register_lowering(op, family(**table))
    register_check(op, _check_family)


# ------------------------------------------------------------------------------- unary


def _sign(x: mx.array) -> mx.array:
    one = mx.ones_like(x)
    return mx.where(x > 0, one, mx.where(x < 0, -one, x))  # 0, -0.0 and NaN pass through


def _complex_sign(x: mx.array) -> mx.array:
    # each part over |x| (a real divisor: sign(-inf + 0j) is nan + 0j, as XLA's)
    a = mx.abs(x)
    safe = mx.where(a == 0, 1, a)
    return mx.where(a == 0, x, make_complex(mx.real(x) / safe, mx.imag(x) / safe))


def _complex_cosh(x: mx.array) -> mx.array:
    # MLX follows C99's ccosh at an infinite real part (cosh(inf + inf j) = inf + nan j);
    # XLA (and the true limit) gives cosh(x) cos(y) + i sinh(x) sin(y) there: nan + nan j
    re, im = mx.real(x), mx.imag(x)
    edge = make_complex(mx.cosh(re) * mx.cos(im), mx.sinh(re) * mx.sin(im))
    return mx.where(mx.isinf(re), edge, mx.cosh(x))


def _complex_exp(x: mx.array) -> mx.array:
    # e^re (cos im + i sin im), as XLA: no C99 special cases at infinite parts (C99 and MLX
    # give exp(-inf + inf j) = 0, XLA nan), and im = 0 stays exactly real
    # e^re is applied in two halves, so e^re sin(im) is finite where only e^re overflows
    re, im = mx.real(x), mx.imag(x)
    h = mx.exp(re * 0.5)
    return make_complex(mx.where(im == 0, h * h, (h * mx.cos(im)) * h),
                        mx.where(im == 0, im, (h * mx.sin(im)) * h))


def _complex_tan(x: mx.array) -> mx.array:
    # tan(±inf + y j), y finite, has no limit: nan + nan j (MLX gives nan + 0j)
    re, im = mx.real(x), mx.imag(x)
    nan = make_complex(const(math.nan, mx.float32), const(math.nan, mx.float32))
    return mx.where(mx.isinf(re) & mx.isfinite(im), nan, mx.tan(x))


def _round_afz(x: mx.array) -> mx.array:
    t = mx.floor(mx.abs(x))
    t = mx.where(mx.abs(x) - t >= 0.5, t + 1, t)
    return mx.where(x < 0, -t, mx.where(x > 0, t, x))


def _cbrt(x: mx.array) -> mx.array:
    y = mx.power(mx.abs(x), const(1.0 / 3.0, x.dtype))
    # one Newton step: y -= (y^3 - |x|) / (3 y^2) makes the cube root correctly rounded-ish
    ax = mx.abs(x)
    y = mx.where((y > 0) & mx.isfinite(y), y - (y * y * y - ax) / (3 * y * y), y)
    return mx.where(x < 0, -y, mx.where(x > 0, y, x))


def _expm1(x: mx.array) -> mx.array:
    if x.dtype != mx.complex64:
        return mx.expm1(x)
    re, im = mx.real(x), mx.imag(x)  # e^re cos(im) - 1 without cancellation near 0
    s = mx.sin(im * 0.5)
    real = mx.expm1(re) * mx.cos(im) - 2 * s * s
    # on the real axis the imaginary part is exactly im (e^re sin(0) is nan once e^re is inf)
    h = mx.exp(re * 0.5)  # e^re in two halves, as in _complex_exp
    return make_complex(real, mx.where(im == 0, im, (h * mx.sin(im)) * h))


def _not_int(x: mx.array) -> mx.array:
    return mx.bitwise_invert(x)


def _unsigned(x: mx.array) -> mx.array:
    return x.view(_UINT[x.dtype.size * 8]) if x.dtype not in _UINT.values() else x


def _popcnt(x: mx.array) -> mx.array:
    w = x.dtype.size * 8
    u = _unsigned(x)
    t = u.dtype

    def m(pattern: int) -> mx.array:
        return const(int.from_bytes(bytes([pattern]) * (w // 8), "little"), t)

    u = u - ((u >> const(1, t)) & m(0x55))
    u = (u & m(0x33)) + ((u >> const(2, t)) & m(0x33))
    u = (u + (u >> const(4, t))) & m(0x0F)
    s = 8
    while s < w:
        u = u + (u >> const(s, t))
        s *= 2
    return (u & const(0x7F, t)).view(x.dtype)


def _clz(x: mx.array) -> mx.array:
    w = x.dtype.size * 8
    u = _unsigned(x)
    t = u.dtype
    n = mx.zeros(u.shape, dtype=t)
    s = w // 2
    while s >= 1:
        top_zero = (u >> const(w - s, t)) == 0
        n = mx.where(top_zero, n + const(s, t), n)
        u = mx.where(top_zero, u << const(s, t), u)
        s //= 2
    n = mx.where((u >> const(w - 1, t)) == 0, n + const(1, t), n)
    return n.view(x.dtype)


def _total_order_key(x: mx.array) -> mx.array:
    """Float bits as a signed int whose order is XLA's total order (-NaN < -Inf < -0 < +0)."""
    w = x.dtype.size * 8
    t = _SINT[w]
    i = x.view(t)
    return i ^ ((i >> const(w - 1, t)) & const(2 ** (w - 1) - 1, t))


def _next_after(x: mx.array, y: mx.array) -> mx.array:
    w = x.dtype.size * 8
    t = _SINT[w]
    xi = x.view(t)
    smallest = mx.where(y < 0, const(-(2 ** (w - 1)) + 1, t), const(1, t)).view(x.dtype)
    up = (x < y) == (x > 0)
    step = mx.where(up, const(1, t), const(-1, t))
    moved = (xi + step).view(x.dtype)
    r = mx.where(x == 0, smallest, moved)
    r = mx.where(x == y, y, r)
    return mx.where(mx.isnan(x) | mx.isnan(y), const(math.nan, x.dtype), r)


def _reduce_precision(ctx, op: Operation, x: mx.array) -> tuple[Any]:
    ebits, mbits = int(op.attrs["exponent_bits"]), int(op.attrs["mantissa_bits"])
    original = x.dtype
    f = x.astype(mx.float32)
    u = f.view(mx.uint32)
    U = mx.uint32
    if mbits < 23:
        shift = 23 - mbits
        last = 1 << shift
        bias = (last >> 1) - 1
        last_bit = (u & const(last, U)) >> const(shift, U)
        u = (u + last_bit + const(bias, U)) & const((~(last - 1)) & 0xFFFFFFFF, U)
    if ebits < 8:
        sign_mask = const(1 << 31, U)
        exp_mask = const(((1 << 8) - 1) << 23, U)
        reduced_bias = (1 << (ebits - 1)) - 1
        max_exp = 127 + reduced_bias
        min_exp = 127 - reduced_bias
        e = u & exp_mask
        overflow = e > const(max_exp << 23, U)
        underflow = e <= const(min_exp << 23, U)
        signed_zero = u & sign_mask
        signed_inf = signed_zero | exp_mask
        u = mx.where(overflow, signed_inf, mx.where(underflow, signed_zero, u))
    r = u.view(mx.float32)
    if mbits > 0:
        r = mx.where(mx.isnan(f), f, r)
    return (r.astype(original),)


def _is_inf(sign: int, x: mx.array) -> mx.array:
    if sign > 0:
        return x == math.inf
    if sign < 0:
        return x == -math.inf
    return mx.isinf(x)


def _false_like(x: mx.array) -> mx.array:
    return mx.zeros(x.shape, dtype=mx.bool_)


def _imag_real(x: mx.array) -> mx.array:
    return mx.zeros_like(x)


def _abs_int(x: mx.array) -> mx.array:
    return mx.where(x < 0, -x, x)  # wraps for INT_MIN, as XLA does


for _op, _fn in [
    (Op.EXPM1, _expm1), (Op.LOG, mx.log), (Op.LOG1P, mx.log1p),
    (Op.LOGISTIC, exact_in_float64(mx.sigmoid, float64_math.logistic)),
    (Op.SQRT, mx.sqrt), (Op.RSQRT, mx.rsqrt), (Op.CBRT, _cbrt),
    (Op.SIN, exact_in_float64(mx.sin, float64_math.sin)),
    (Op.COS, exact_in_float64(mx.cos, float64_math.cos)), (Op.TANH, mx.tanh),
    (Op.FLOOR, mx.floor), (Op.CEIL, mx.ceil), (Op.ROUND_AFZ, _round_afz),
    (Op.ROUND_EVEN, mx.round), (Op.CHLO_ERF, mx.erf), (Op.CHLO_ERFC, erfc),
    (Op.CHLO_ERF_INV, erf_inv), (Op.CHLO_LGAMMA, lgamma), (Op.CHLO_DIGAMMA, digamma),
    (Op.CHLO_ASIN, mx.arcsin), (Op.CHLO_ACOS, mx.arccos), (Op.CHLO_ATAN, mx.arctan),
    (Op.CHLO_SINH, mx.sinh),
    (Op.CHLO_ASINH, mx.arcsinh), (Op.CHLO_ACOSH, mx.arccosh), (Op.CHLO_ATANH, mx.arctanh),
]:
    register_lowering(_op, partial(_nary, _fn))

register_family(Op.ABS, f=mx.abs, c=mx.abs, i=_abs_int)
register_family(Op.NEGATE, **{"*": mx.negative, "b": lambda x: x})
register_family(Op.SIGN, f=_sign, i=_sign, c=_complex_sign)
register_family(Op.CHLO_COSH, f=mx.cosh, c=_complex_cosh)
register_family(Op.TAN, f=mx.tan, c=_complex_tan)
register_family(Op.EXP, f=exact_in_float64(mx.exp, float64_math.exp), c=_complex_exp)
register_family(Op.CHLO_TAN, f=mx.tan, c=_complex_tan)
register_family(Op.NOT, b=mx.logical_not, i=_not_int)
register_lowering(Op.IS_FINITE, partial(_nary, mx.isfinite))
register_family(Op.POPCNT, i=_popcnt)
register_family(Op.CLZ, i=_clz)
register_family(Op.REAL, c=mx.real, f=lambda x: x)
register_family(Op.IMAG, c=mx.imag, f=_imag_real)
register_family(Op.CHLO_CONJ, c=mx.conjugate, **{"*": lambda x: x})
register_family(Op.CHLO_IS_INF, f=partial(_is_inf, 0), **{"*": _false_like})
register_family(Op.CHLO_IS_POS_INF, f=partial(_is_inf, 1), **{"*": _false_like})
register_family(Op.CHLO_IS_NEG_INF, f=partial(_is_inf, -1), **{"*": _false_like})
register_lowering(Op.CHLO_SQUARE, partial(_nary, lambda x: x * x))
register_lowering(Op.REDUCE_PRECISION, _reduce_precision)


# ----------------------------------------------------------------------------- convert


def convert(x: mx.array, src: str, dst: str) -> mx.array:
    """XLA's convert: saturating float->int (NaN -> 0), x != 0 for bool, real part of complex."""
    ks, kd = kind(src), kind(dst)
    target = _dtypes.mlx_dtype(dst)
    if src == dst:
        return x
    if kd == "b":
        return x != 0
    if ks == "c" and kd != "c":
        x = mx.real(x)
        ks = "f"
    if ks == "f" and kd in "iu":
        f = x.astype(mx.float32) if x.dtype in (mx.float16, mx.bfloat16) else x
        w = bits(dst)
        if kd == "i":
            lo_v, hi_v, hi_edge = -(2 ** (w - 1)), 2 ** (w - 1) - 1, float(2 ** (w - 1))
            too_low = f < -hi_edge
        else:
            lo_v, hi_v, hi_edge = 0, 2 ** w - 1, float(2 ** w)
            too_low = f <= -1.0
        too_high = f >= hi_edge
        bad = too_low | too_high | mx.isnan(f)
        r = mx.where(bad, mx.zeros_like(f), f).astype(target)
        r = mx.where(too_high, const(hi_v, target), r)
        r = mx.where(too_low, const(lo_v, target), r)
        return r
    return x.astype(target)


def _convert(ctx, op: Operation, x: mx.array) -> tuple[Any]:
    return (convert(x, operand_dtype(op), result_dtype(op)),)


def _bitcast(ctx, op: Operation, x: mx.array) -> tuple[Any]:
    t = op.results[0].type
    assert isinstance(t, TensorType)
    src = operand_dtype(op)
    if src == "bool" or t.dtype == "bool":
        x = x.astype(mx.uint8) if src == "bool" else x
        y = x.view(mx.uint8)
        y = y.astype(mx.bool_) if t.dtype == "bool" else y.view(_dtypes.mlx_dtype(t.dtype))
    else:
        if bits(src) < bits(t.dtype):
            x = mx.contiguous(x)
        if x.ndim == 0 and bits(src) != bits(t.dtype):
            x = x.reshape(1)  # (MLX changes the element size of arrays, not of scalars)
        y = x.view(_dtypes.mlx_dtype(t.dtype))
    return (y.reshape(t.shape),)


register_lowering(Op.CONVERT, _convert)
register_lowering(Op.BITCAST_CONVERT, _bitcast)


# ------------------------------------------------------------------------------ binary


def _int_div(x: mx.array, y: mx.array) -> mx.array:
    zero = y == 0
    if x.dtype in _UINT.values():
        safe = mx.where(zero, mx.ones_like(y), y)
        q = mx.floor_divide(x, safe)
        return mx.where(zero, const(2 ** (x.dtype.size * 8) - 1, x.dtype), q)
    minus_one = y == -1
    safe = mx.where(zero | minus_one, mx.ones_like(y), y)
    q = mx.floor_divide(x, safe)
    r = x - q * safe
    q = mx.where((r != 0) & ((x < 0) != (safe < 0)), q + 1, q)  # floor -> truncation
    q = mx.where(minus_one, -x, q)
    return mx.where(zero, const(-1, x.dtype), q)


def _int_rem(x: mx.array, y: mx.array) -> mx.array:
    zero = y == 0
    if x.dtype in _UINT.values():
        safe = mx.where(zero, mx.ones_like(y), y)
        return mx.where(zero, x, mx.remainder(x, safe))
    bad = zero | (y == -1)
    safe = mx.where(bad, mx.ones_like(y), y)
    r = mx.remainder(x, safe)  # sign of the divisor
    r = mx.where((r != 0) & ((r < 0) != (x < 0)), r - safe, r)
    return mx.where(zero, x, mx.where(y == -1, mx.zeros_like(x), r))


def _float_rem(x: mx.array, y: mx.array) -> mx.array:
    r = mx.remainder(mx.abs(x), mx.abs(y))  # both >= 0: floor mod == fmod, exactly
    r = mx.where(x < 0, -r, mx.where(x == 0, x, r))  # the sign of x, zeros included
    # after the zero case: 0 % 0 and 0 % nan are nan too
    return mx.where((y == 0) | mx.isnan(y), const(math.nan, x.dtype), r)


def _int_pow(x: mx.array, y: mx.array) -> mx.array:
    w = x.dtype.size * 8
    e = mx.where(y < 0, mx.zeros_like(y), y)
    acc = mx.ones_like(x)
    base = x
    for _ in range(w):
        acc = mx.where((e & 1) != 0, acc * base, acc)
        base = base * base
        e = e >> 1
    if x.dtype in _UINT.values():
        return acc
    neg = y < 0
    one = mx.ones_like(x)
    odd = (y & 1) != 0
    neg_result = mx.where(x == 1, one, mx.where(x == -1, mx.where(odd, -one, one),
                                                mx.zeros_like(x)))
    return mx.where(neg, neg_result, acc)


def _shift(direction: str, x: mx.array, y: mx.array) -> mx.array:
    w = x.dtype.size * 8
    over = (y >= w) if y.dtype in _UINT.values() else ((y < 0) | (y >= w))
    safe = mx.where(over, mx.zeros_like(y), y)
    if direction == "left":
        return mx.where(over, mx.zeros_like(x), mx.left_shift(x, safe))
    if direction == "arith":
        fill = mx.right_shift(x, const(w - 1, x.dtype))
        if x.dtype in _UINT.values():  # arithmetic shift of an unsigned type: use the bits
            sx = x.view(_SINT[w])
            r = mx.right_shift(sx, safe.view(_SINT[w]))
            fill_s = mx.right_shift(sx, const(w - 1, _SINT[w]))
            return mx.where(over, fill_s, r).view(x.dtype)
        return mx.where(over, fill, mx.right_shift(x, safe))
    u = _unsigned(x)
    r = mx.right_shift(u, _unsigned(safe))
    return mx.where(over, mx.zeros_like(u), r).view(x.dtype)


def make_complex(re: mx.array, im: mx.array) -> mx.array:
    """complex64 from its parts, bit-exact: the arithmetic `re + 1j * im` would turn an
    infinite part into a NaN (1j * inf = nan + inf j)."""
    re, im = mx.broadcast_arrays(re.astype(mx.float32), im.astype(mx.float32))
    return mx.stack([re, im], axis=-1).view(mx.complex64).squeeze(-1)


_complex = make_complex


register_family(Op.ADD, **{"*": mx.add, "b": mx.logical_or})
register_family(Op.SUBTRACT, **{"*": mx.subtract, "b": mx.bitwise_xor})
register_family(Op.MULTIPLY, **{"*": mx.multiply, "b": mx.logical_and})
register_family(Op.DIVIDE, f=mx.divide, c=mx.divide, i=_int_div)
register_family(Op.REMAINDER, f=_float_rem, i=_int_rem)
register_family(Op.POWER, f=mx.power, c=mx.power, i=_int_pow)
register_family(Op.MAXIMUM, f=mx.maximum, i=mx.maximum, b=mx.logical_or)
register_family(Op.MINIMUM, f=mx.minimum, i=mx.minimum, b=mx.logical_and)
register_lowering(Op.ATAN2, partial(_nary, mx.arctan2))
register_lowering(Op.AND, partial(_nary, mx.bitwise_and))
register_lowering(Op.OR, partial(_nary, mx.bitwise_or))
register_lowering(Op.XOR, partial(_nary, mx.bitwise_xor))
register_family(Op.SHIFT_LEFT, i=partial(_shift, "left"))
register_family(Op.SHIFT_RIGHT_ARITHMETIC, i=partial(_shift, "arith"))
register_family(Op.SHIFT_RIGHT_LOGICAL, i=partial(_shift, "logical"))
register_lowering(Op.COMPLEX, partial(_nary, _complex))
register_family(Op.CHLO_NEXT_AFTER, f=_next_after)


# ----------------------------------------------------------------------------- compare

_COMPARE = {"EQ": mx.equal, "NE": mx.not_equal, "LT": mx.less, "LE": mx.less_equal,
            "GT": mx.greater, "GE": mx.greater_equal}


def compare(direction: str, compare_type: str, x: mx.array, y: mx.array) -> mx.array:
    fn = _COMPARE[direction]
    if compare_type == "TOTALORDER" and x.dtype in (mx.float16, mx.bfloat16, mx.float32,
                                                    mx.float64):
        return fn(_total_order_key(x), _total_order_key(y))
    if x.dtype == mx.bool_ and direction not in ("EQ", "NE"):
        return fn(x.astype(mx.uint8), y.astype(mx.uint8))
    return fn(x, y)


def _compare(ctx, op: Operation, x: mx.array, y: mx.array) -> tuple[Any]:
    direction = op.attrs["comparison_direction"]
    ctype = op.attrs.get("compare_type", "")
    return (compare(direction, ctype, x, y),)


register_lowering(Op.COMPARE, _compare)


# ---------------------------------------------------------------------------- ternary


def _clamp(lo: mx.array, x: mx.array, hi: mx.array) -> mx.array:
    if x.dtype == mx.bool_:
        return mx.logical_and(mx.logical_or(x, lo), hi)
    return mx.minimum(mx.maximum(x, lo), hi)


register_lowering(Op.SELECT, partial(_nary, mx.where))
register_lowering(Op.CLAMP, partial(_nary, _clamp))
