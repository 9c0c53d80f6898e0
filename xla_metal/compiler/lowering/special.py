"""Special functions CHLO leaves in programs: erfc, lgamma, digamma, erf_inv (float32 math).

erf_inv follows XLA's formula and evaluation order; lgamma (Lanczos) and digamma (recurrence
plus asymptotic series) are accurate to a few float32 ulps away from their poles and zeros.
Inputs of other float types are computed in float32 and rounded back.
"""

from __future__ import annotations

import math

import mlx.core as mx

# float32 erfc with relative error < 1.2e-7 everywhere (Numerical Recipes' erfcc)
_ERFC_COEFFS = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
                -1.13520398, 1.48851587, -0.82215223, 0.17087277)


def erfc(x: mx.array) -> mx.array:
    z = mx.abs(x.astype(mx.float32))
    t = 1.0 / (1.0 + 0.5 * z)
    poly = mx.zeros_like(z) + _ERFC_COEFFS[-1]
    for c in _ERFC_COEFFS[-2::-1]:
        poly = poly * t + c
    ans = t * mx.exp(-z * z + poly)
    small = 1.0 - mx.erf(z)  # more accurate near 0
    ans = mx.where(z < 0.5, small, ans)
    return mx.where(x < 0, 2.0 - ans, ans).astype(x.dtype)


_LANCZOS = (0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
            -176.61502916214059, 12.507343278686905, -0.13857109526572012,
            9.9843695780195716e-6, 1.5056327351493116e-7)


def _lgamma_pos(x: mx.array) -> mx.array:
    """log|Gamma(x)| for x >= 0.5 (Lanczos, g=7)."""
    z = x - 1.0
    a = mx.zeros_like(z) + _LANCZOS[0]
    for k in range(1, 9):
        a = a + _LANCZOS[k] / (z + k)
    t = z + 7.5
    return 0.5 * math.log(2 * math.pi) + (z + 0.5) * mx.log(t) - t + mx.log(a)


def lgamma(x: mx.array) -> mx.array:
    f = x.astype(mx.float32)
    reflect = f < 0.5
    pos = _lgamma_pos(mx.where(reflect, 1.0 - f, f))
    s = mx.abs(mx.sin(math.pi * f))
    refl = math.log(math.pi) - mx.log(s) - pos
    y = mx.where(reflect, refl, pos)
    y = mx.where((f <= 0) & (f == mx.floor(f)), math.inf, y)
    y = mx.where(mx.isinf(f), math.inf, y)
    return y.astype(x.dtype)


def digamma(x: mx.array) -> mx.array:
    f = x.astype(mx.float32)
    reflect = f < 0.5
    y = mx.where(reflect, 1.0 - f, f)
    acc = mx.zeros_like(y)
    for k in range(6):
        acc = acc + 1.0 / (y + k)
    z = y + 6.0
    iz2 = 1.0 / (z * z)
    asym = mx.log(z) - 0.5 / z - iz2 * (1.0 / 12 - iz2 * (1.0 / 120 - iz2 * (1.0 / 252)))
    psi = asym - acc
    psi = mx.where(reflect, psi - math.pi / mx.tan(math.pi * f), psi)
    psi = mx.where((f <= 0) & (f == mx.floor(f)), math.nan, psi)
    return psi.astype(x.dtype)


# XLA's float32 erf_inv (M. Giles' approximation), in its evaluation order
_ERFINV_LT5 = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
               0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_GE5 = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
               0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def erf_inv(x: mx.array) -> mx.array:
    f = x.astype(mx.float32)
    w = -mx.log1p(-f * f)
    lt = w < 5.0
    w = mx.where(lt, w - 2.5, mx.sqrt(w) - 3.0)

    def coeff(i: int) -> mx.array:
        return mx.where(lt, mx.array(_ERFINV_LT5[i], mx.float32),
                        mx.array(_ERFINV_GE5[i], mx.float32))

    p = coeff(0)
    for i in range(1, 9):
        p = coeff(i) + p * w
    r = mx.where(mx.abs(f) == 1.0, f * mx.array(math.inf, mx.float32), p * f)
    return r.astype(x.dtype)
