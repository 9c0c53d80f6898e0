"""complex128, emulated: MLX has no complex128, so a complex128 value is a float64 array with
one more, trailing axis of 2 (real part, imaginary part): the bytes of numpy's complex128, so
buffers transfer bit-exact (runtime/dtypes.py) and run on MLX's CPU stream like float64.

`adapt(operation, rule)` gives the rule an op runs with when complex128 is involved:
- ops that move values, or treat the two parts alike (reshape, slice, gather, pad, select,
  a sum, ...), run their own rule twice, once per part, on a float64 copy of the operation;
- control flow and calls pass the pairs through untouched; iota is its float64 self, paired
  with zeros;
- arithmetic and the elementary functions have rules here, in float64 (exp, sin and cos
  from lowering/float64_math.py: MLX's own are only float32-accurate in float64);
- dots and convolutions are four real ones (float64's rules), products (a reduce by
  multiplication) are halved pairwise;
- FFTs, Cholesky and triangular solves have their own, in float64 (lowering/fft_float64.py,
  lowering/linalg_complex128.py);
- anything else (other linear algebra, sort, bitcast, ...) is an error naming the op and
  complex128.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import mlx.core as mx
import numpy as np

from ..errors import UnimplementedError
from .ir import Op, Operation, TensorType, Value
from .lowering.fft_float64 import fft as _fft
from .lowering.float64_math import exp as _exp_real
from .lowering.float64_math import sin_cos as _sin_cos
from .lowering.linalg_complex128 import cholesky as _cholesky
from .lowering.linalg_complex128 import triangular_solve as _triangular_solve
from .lowering.pairs import Parts, pair, parts
from .lowering.pairs import multiply as _mul
from .lowering.regions import combiner

NAME = "complex128"
Rule = Callable[..., Any]


def involves(operation: Operation) -> bool:
    return any(_is_pair(v) for v in (*operation.operands, *operation.results))


def _is_pair(v: Value) -> bool:
    return isinstance(v.type, TensorType) and v.type.dtype == NAME


# ------------------------------------------------------------------------------ values
# (pair and parts: lowering/pairs.py)


def _real_copy(operation: Operation) -> Operation:
    """The operation with float64 where it has complex128: what a part's rule runs on."""
    def real(v: Value) -> Value:
        if not _is_pair(v):
            return v
        assert isinstance(v.type, TensorType)
        return Value(TensorType(v.type.shape, "float64"), v.name)

    return Operation(operation.op, [real(v) for v in operation.operands],
                     [real(v) for v in operation.results], operation.attrs,
                     operation.regions, operation.loc)


# ------------------------------------------------------------------ part by part


def _partwise(operation: Operation, rule: Rule) -> Rule:
    """`rule` run once on the real parts and once on the imaginary parts."""
    real_op = _real_copy(operation)
    in_pair = [_is_pair(v) for v in operation.operands]
    out_pair = [_is_pair(v) for v in operation.results]

    def run(ctx: Any, op: Operation, *args: Any) -> list[Any]:
        re = rule(ctx, real_op, *[a[..., 0] if p else a for a, p in zip(args, in_pair,
                                                                          strict=True)])
        im = rule(ctx, real_op, *[a[..., 1] if p else a for a, p in zip(args, in_pair,
                                                                          strict=True)])
        return [mx.stack([r, i], axis=-1) if p else r
                for r, i, p in zip(re, im, out_pair, strict=True)]

    return run


PARTWISE = frozenset({
    Op.RESHAPE, Op.TRANSPOSE, Op.BROADCAST_IN_DIM, Op.SLICE, Op.DYNAMIC_SLICE, Op.REVERSE,
    Op.GATHER, Op.CONCATENATE, Op.PAD, Op.DYNAMIC_UPDATE_SLICE, Op.SELECT, Op.ADD,
    Op.SUBTRACT, Op.NEGATE,
})
PASS_THROUGH = frozenset({
    Op.WHILE, Op.IF, Op.CASE, Op.CALL, Op.COMPOSITE, Op.OPTIMIZATION_BARRIER,
    Op.SHARDING_CONSTRAINT, Op.TUPLE, Op.GET_TUPLE_ELEMENT,
})
# Ops with a region, run part by part when the region is one of these bodies (their rules
# then use a fast path and never run the region on a part).
SUMMING = {Op.REDUCE: ("ADD",), Op.REDUCE_WINDOW: ("ADD",), Op.SCATTER: ("ADD", "SET")}


# ------------------------------------------------------------------ float64 helpers


def _sinh_cosh(x: mx.array) -> tuple[mx.array, mx.array]:
    return mx.sinh(x), mx.cosh(x)


def _hypot(a: mx.array, b: mx.array) -> mx.array:
    a, b = mx.abs(a), mx.abs(b)
    big, small = mx.maximum(a, b), mx.minimum(a, b)
    safe = mx.where(big == 0, mx.ones_like(big), big)
    r = small / safe
    h = big * mx.sqrt(1.0 + r * r)
    h = mx.where(big == 0, mx.zeros_like(big), h)
    return mx.where(mx.isinf(a) | mx.isinf(b), mx.full(h.shape, np.inf, mx.float64), h)


def _log_abs(a: mx.array, b: mx.array) -> mx.array:
    """log |a + bi| without overflow: log(big) + log1p((small/big)^2) / 2."""
    a, b = mx.abs(a), mx.abs(b)
    big, small = mx.maximum(a, b), mx.minimum(a, b)
    safe = mx.where(big == 0, mx.ones_like(big), big)
    r = small / safe
    out = mx.log(big) + 0.5 * mx.log1p(r * r)
    return mx.where(mx.isinf(a) | mx.isinf(b), mx.full(out.shape, np.inf, mx.float64), out)


# ------------------------------------------------------------------ complex functions
# Each takes and gives (re, im) pairs of float64 arrays (_mul: pairs.multiply).


def _div(x: Parts, y: Parts) -> Parts:
    # Smith's algorithm: scale by the larger part of the divisor, so nothing overflows early
    (a, b), (c, d) = x, y
    c_big = mx.abs(c) >= mx.abs(d)
    safe_c = mx.where(c == 0, mx.ones_like(c), c)
    safe_d = mx.where(d == 0, mx.ones_like(d), d)
    r1 = d / safe_c
    den1 = c + d * r1
    r2 = c / safe_d
    den2 = c * r2 + d
    re = mx.where(c_big, (a + b * r1) / den1, (a * r2 + b) / den2)
    im = mx.where(c_big, (b - a * r1) / den1, (b * r2 - a) / den2)
    zero = (c == 0) & (d == 0)  # XLA: the parts divided by zero one by one
    re = mx.where(zero, a / c, re)
    im = mx.where(zero, b / c, im)
    return re, im


def _exp(x: Parts) -> Parts:
    a, b = x
    e = _exp_real(a)
    s, c = _sin_cos(b)
    im = mx.where(b == 0, b, e * s)  # exp(a + 0i) keeps a zero imaginary part
    return e * c, im


def _log(x: Parts) -> Parts:
    a, b = x
    return _log_abs(a, b), mx.arctan2(b, a)


def _log1p(x: Parts) -> Parts:
    a, b = x
    small = (mx.abs(a) < 0.5) & (mx.abs(b) < 0.5)
    # near zero: log|1 + z| = log1p(2a + a^2 + b^2) / 2, exact to the last bits
    re_small = 0.5 * mx.log1p(a * (2.0 + a) + b * b)
    re = mx.where(small, re_small, _log_abs(1.0 + a, b))
    return re, mx.arctan2(b, 1.0 + a)


def _expm1(x: Parts) -> Parts:
    a, b = x
    s, c = _sin_cos(b)
    half_s, _ = _sin_cos(b * 0.5)
    em1 = mx.expm1(a)
    re = em1 * c - 2.0 * half_s * half_s  # e^a cos b - 1 without cancellation
    im = mx.where(b == 0, b, (em1 + 1.0) * s)
    return re, im


def _sqrt(x: Parts) -> Parts:
    a, b = x
    t = mx.sqrt((mx.abs(a) + _hypot(a, b)) * 0.5)
    safe_t = mx.where(t == 0, mx.ones_like(t), t)
    other = b / (2.0 * safe_t)
    re = mx.where(a >= 0, t, mx.abs(other))
    im = mx.where(a >= 0, other, mx.where(b < 0, -t, t))
    zero = t == 0
    return mx.where(zero, mx.zeros_like(a), re), mx.where(zero, b, im)


def _rsqrt(x: Parts) -> Parts:
    one = (mx.ones_like(x[0]), mx.zeros_like(x[0]))
    return _div(one, _sqrt(x))


def _sin(x: Parts) -> Parts:
    a, b = x
    s, c = _sin_cos(a)
    sh, ch = _sinh_cosh(b)
    return s * ch, c * sh


def _cos(x: Parts) -> Parts:
    a, b = x
    s, c = _sin_cos(a)
    sh, ch = _sinh_cosh(b)
    return c * ch, -(s * sh)


def _tanh(x: Parts) -> Parts:
    # Kahan's form: with t = tan(b), s = sinh(a), beta = 1 + t^2, rho = sqrt(1 + s^2),
    # tanh(a + bi) = (beta rho s + i t) / (1 + beta s^2). Past |a| = 22 the real part is +-1
    # to the last bit and the imaginary part 4 sin b cos b e^(-2|a|) (zero once it underflows)
    a, b = x
    t = mx.tan(b)
    s = mx.sinh(a)
    beta = 1.0 + t * t
    rho = mx.sqrt(1.0 + s * s)
    d = 1.0 + beta * s * s
    big = mx.abs(a) > 22.0
    sb, cb = _sin_cos(b)
    # at an infinite a, XLA gives +-1 + 0i even for a b that is not finite; at a finite a,
    # such a b gives NaN
    odd_b = ~mx.isfinite(b)
    inf_a = mx.isinf(a)
    nan = mx.full(a.shape, np.nan, mx.float64)
    re_big = mx.where(odd_b & ~inf_a, nan, mx.sign(a))
    im_big = mx.where(odd_b & inf_a, mx.zeros_like(a),
                      4.0 * sb * cb * _exp_real(-2.0 * mx.abs(a)))
    return (mx.where(big, re_big, beta * rho * s / d), mx.where(big, im_big, t / d))


def _tan(x: Parts) -> Parts:
    a, b = x  # tan(z) = -i tanh(iz)
    u, v = _tanh((-b, a))
    return v, -u


def _pow(x: Parts, y: Parts) -> Parts:
    a, b = x
    z = _exp(_mul(y, _log(x)))
    # x = 0: 1 for y = 0, 0 for y with a positive real part, as XLA
    zero = (a == 0) & (b == 0)
    y_zero = (y[0] == 0) & (y[1] == 0)
    one_or_zero = mx.where(y_zero, mx.ones_like(a), mx.zeros_like(a))
    return (mx.where(zero & (y_zero | (y[0] > 0)), one_or_zero, z[0]),
            mx.where(zero & (y_zero | (y[0] > 0)), mx.zeros_like(a), z[1]))


UNARY: dict[Op, Callable[[Parts], Parts]] = {
    Op.EXP: _exp, Op.LOG: _log, Op.LOG1P: _log1p, Op.EXPM1: _expm1, Op.SQRT: _sqrt,
    Op.RSQRT: _rsqrt, Op.SIN: _sin, Op.COS: _cos, Op.TAN: _tan, Op.TANH: _tanh,
}
BINARY: dict[Op, Callable[[Parts, Parts], Parts]] = {
    Op.MULTIPLY: _mul, Op.DIVIDE: _div, Op.POWER: _pow,
}


def _unary(fn: Callable[[Parts], Parts]) -> Rule:
    return lambda ctx, op, z: [pair(*fn(parts(z)))]


def _binary(fn: Callable[[Parts, Parts], Parts]) -> Rule:
    return lambda ctx, op, x, y: [pair(*fn(parts(x), parts(y)))]


def _abs(ctx: Any, op: Operation, z: mx.array) -> list[mx.array]:
    return [_hypot(*parts(z))]


def _sign(ctx: Any, op: Operation, z: mx.array) -> list[mx.array]:
    a, b = parts(z)
    h = _hypot(a, b)
    safe = mx.where(h == 0, mx.ones_like(h), h)
    return [pair(mx.where(h == 0, a, a / safe), mx.where(h == 0, b, b / safe))]


def _real(ctx: Any, op: Operation, z: mx.array) -> list[mx.array]:
    return [z[..., 0]]


def _imag(ctx: Any, op: Operation, z: mx.array) -> list[mx.array]:
    return [z[..., 1]]


def _complex(ctx: Any, op: Operation, re: mx.array, im: mx.array) -> list[mx.array]:
    return [pair(re, im)]


def _compare(ctx: Any, op: Operation, x: mx.array, y: mx.array) -> list[mx.array]:
    direction = op.attrs.get("comparison_direction")
    (a, b), (c, d) = parts(x), parts(y)
    if direction == "EQ":
        return [(a == c) & (b == d)]
    if direction == "NE":
        return [(a != c) | (b != d)]
    raise UnimplementedError(f"[compare] {direction} is not defined on complex128"
                             f"{op.where()}")


def _convert(ctx: Any, op: Operation, x: mx.array) -> list[mx.array]:
    from .emulated_dtypes import adapt as adapt_emulated
    from .lowering import registry

    src = op.operands[0].type
    dst = op.results[0].type
    assert isinstance(src, TensorType) and isinstance(dst, TensorType)
    if src.dtype == dst.dtype:
        return [x]
    if dst.dtype == NAME:  # from a real or complex64 value
        if src.dtype == "complex64":
            return [pair(mx.real(x), mx.imag(x))]
        real_op = Operation(Op.CONVERT, [op.operands[0]],
                            [Value(TensorType(dst.shape, "float64"))], {}, [], op.loc)
        rule = adapt_emulated(real_op, registry.get_rule(real_op, "cpu"))
        (re,) = rule(ctx, real_op, x)
        return [pair(re, mx.zeros_like(re))]
    re, im = parts(x)
    if dst.dtype == "complex64":  # each part rounded to float32, joined without arithmetic
        joined = mx.stack([re.astype(mx.float32), im.astype(mx.float32)], axis=-1)
        return [mx.contiguous(joined).reshape(*joined.shape[:-1], 1, 2)
                .view(mx.complex64).reshape(dst.shape)]
    # to a real type: the real part, converted from float64
    real_op = Operation(Op.CONVERT, [Value(TensorType(src.shape, "float64"))],
                        [op.results[0]], {}, [], op.loc)
    rule = adapt_emulated(real_op, registry.get_rule(real_op, "cpu"))
    return list(rule(ctx, real_op, re))


OWN: dict[Op, Rule] = {
    **{o: _unary(f) for o, f in UNARY.items()},
    **{o: _binary(f) for o, f in BINARY.items()},
    Op.ABS: _abs, Op.SIGN: _sign, Op.REAL: _real, Op.IMAG: _imag, Op.COMPLEX: _complex,
    Op.COMPARE: _compare, Op.CONVERT: _convert, Op.FFT: _fft,
    Op.CHOLESKY: _cholesky, Op.TRIANGULAR_SOLVE: _triangular_solve,
}


def _product(ctx: Any, op: Operation, z: mx.array, init: mx.array) -> list[mx.array]:
    """A reduce by multiplication: the reduced axes flattened into one, halved by pairwise
    products (log2 of its length rounds, each one complex multiply), times the init."""
    axes = sorted(int(d) for d in op.attrs["dimensions"])
    kept = [d for d in range(z.ndim - 1) if d not in axes]
    z = mx.transpose(z, [*kept, *axes, z.ndim - 1])
    z = z.reshape(*z.shape[:len(kept)], math.prod(z.shape[len(kept):-1]), 2)
    while z.shape[-2] > 1:
        if z.shape[-2] % 2:  # one more factor of 1
            one = mx.broadcast_to(mx.array([1.0, 0.0], mx.float64), (*z.shape[:-2], 1, 2))
            z = mx.concatenate([z, one], axis=-2)
        half = z.shape[-2] // 2
        z = pair(*_mul(parts(z[..., :half, :]), parts(z[..., half:, :])))
    if z.shape[-2] == 0:  # nothing reduced: the init alone
        return [mx.broadcast_to(init, (*z.shape[:-2], 2))]
    return [pair(*_mul(parts(z[..., 0, :]), parts(init)))]


def _real_valued(operation: Operation, rule: Rule) -> Rule:
    """An op whose complex128 result has real values only (iota): its float64 rule, paired
    with zeros."""
    real_op = _real_copy(operation)

    def run(ctx: Any, op: Operation, *args: Any) -> list[mx.array]:
        return [pair(r, mx.zeros_like(r)) for r in rule(ctx, real_op, *args)]

    return run


def _bilinear(operation: Operation, rule: Rule) -> Rule:
    """Four real dots (or convolutions): (a + bi)(c + di) = (ac - bd) + (ad + bc)i."""
    real_op = _real_copy(operation)
    lhs_pair, rhs_pair = (_is_pair(v) for v in operation.operands[:2])

    def run(ctx: Any, op: Operation, x: mx.array, y: mx.array) -> list[mx.array]:
        def dot(u: mx.array, v: mx.array) -> mx.array:
            return rule(ctx, real_op, u, v)[0]

        if lhs_pair and rhs_pair:
            (a, b), (c, d) = parts(x), parts(y)
            return [pair(dot(a, c) - dot(b, d), dot(a, d) + dot(b, c))]
        if lhs_pair:
            a, b = parts(x)
            return [pair(dot(a, y), dot(b, y))]
        c, d = parts(y)
        return [pair(dot(x, c), dot(x, d))]

    return run


def adapt(operation: Operation, rule: Rule) -> Rule:
    """The rule `operation` runs with when it involves complex128 (see the module's doc)."""
    op = operation.op
    if op in PASS_THROUGH:
        return rule
    if op in OWN:
        return OWN[op]
    if op in PARTWISE:
        return _partwise(operation, rule)
    if op in SUMMING and len(operation.results) == 1 and operation.regions and \
            combiner(operation.regions[0]) in SUMMING[op]:
        return _partwise(operation, rule)
    if op is Op.REDUCE and len(operation.results) == 1 and operation.regions and \
            combiner(operation.regions[0]) == "MUL":
        return _product
    if op is Op.IOTA:
        return _real_valued(operation, rule)
    if op in (Op.DOT_GENERAL, Op.CONVOLUTION) and all(_is_pair(r) for r in operation.results):
        return _bilinear(operation, rule)
    raise UnimplementedError(f"[{op.value}] complex128 is not supported on metal for this op "
                             f"(MLX has no complex128; it is emulated for element-wise "
                             f"arithmetic, shape ops, dots, convolutions, sums, products, FFTs, "
                             f"Cholesky and triangular solves){operation.where()}")


__all__ = ["NAME", "adapt", "involves", "pair", "parts"]
