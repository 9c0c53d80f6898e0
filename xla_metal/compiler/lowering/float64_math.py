"""exp, sin, cos and logistic exact to float64. MLX's own float64 exp, sin, cos and sigmoid
(on its CPU device) are only float32-accurate (relative errors up to 1e-6, and 1e-2 for
cos), while its expm1 and tan are exact to the last bit or two: these are built from those.
(MLX's float64 erf is float32-accurate too; it is not replaced here.)

Measured against numpy over [-30, 30]: relative error below 5e-16 for exp and sin/cos away
from their zeros; near a zero of cos (or of sin at large arguments) the error is about 1e-16
absolute, as tan's argument is rounded.
"""

from __future__ import annotations

import mlx.core as mx


def exp(x: mx.array) -> mx.array:
    # e^x = expm1(x) + 1 for x >= 0 and 1 / (expm1(-x) + 1) below: no cancellation either way.
    # Below -700 expm1(-x) overflows before e^x underflows: e^x = (e^(x/2))^2 there.
    positive = x >= 0
    deep = x < -700.0
    a = mx.where(positive, x, -x)
    a = mx.where(deep, a * 0.5, a)
    e = mx.expm1(a) + 1.0
    e = mx.where(positive, e, 1.0 / e)
    return mx.where(deep, e * e, e)


def sin_cos(x: mx.array) -> tuple[mx.array, mx.array]:
    # With t = tan(x/2): sin x = 2t / (1 + t^2) and cos x = (1 - t)(1 + t) / (1 + t^2)
    # ((1 - t) is exact where it cancels). Past 1e154 t^2 overflows: 2 / (t + 1/t) and
    # (1/t - t) / (1/t + t) instead; t = +-inf at odd multiples of pi: sin 0, cos -1.
    t = mx.tan(x * 0.5)
    d = 1.0 + t * t
    big = mx.abs(t) > 1e150
    safe = mx.where(big, t, mx.ones_like(t))
    inv = 1.0 / safe
    sin = mx.where(big, 2.0 / (safe + inv), 2.0 * t / d)
    cos = mx.where(big, (inv - safe) / (inv + safe), (1.0 - t) * (1.0 + t) / d)
    # sin(-0.0) is -0.0; NaN and inf arguments give NaN through tan
    sin = mx.where(x == 0, x, sin)
    return sin, cos


def sin(x: mx.array) -> mx.array:
    return sin_cos(x)[0]


def cos(x: mx.array) -> mx.array:
    return sin_cos(x)[1]


def logistic(x: mx.array) -> mx.array:
    # (MLX's float64 sigmoid has exp's float32 accuracy)
    return 1.0 / (1.0 + exp(-x))


def exact_in_float64(mlx_fn, exact_fn):  # type: ignore[no-untyped-def]
    """mlx_fn, except for float64 arrays: exact_fn."""
    def fn(x: mx.array) -> mx.array:
        return exact_fn(x) if x.dtype == mx.float64 else mlx_fn(x)
    fn.__name__ = getattr(mlx_fn, "__name__", "fn")
    return fn
