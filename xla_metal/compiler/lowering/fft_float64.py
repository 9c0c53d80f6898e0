"""FFTs of complex128 (and float64's real FFTs), in float64: MLX's FFT computes complex64 only.

Values are complex128 as compiler/complex128.py holds them: float64 arrays with a trailing
axis of 2 (real, imaginary). A transform along one axis of length n is a product with the DFT
matrix W[j, k] = w^(jk), w = exp(sign * 2 pi i / n): four float64 matmuls of the parts.
- Axes up to DIRECT_MAX long are one such product.
- Longer axes split as n = n1 * n2, the Cooley-Tukey four-step form (n2-point transforms,
  twiddles, n1-point transforms, each recursively): O(n (n1 + n2)) work, and rounding that
  grows with n1 + n2 rather than n.
- A long prime axis goes through Bluestein's chirp: a circular convolution of a power-of-two
  length, done with such transforms.
Every twiddle is computed in numpy from its angle reduced exactly (j * k mod n), so each is a
correctly rounded cos and sin rather than a power accumulated in floating point.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import mlx.core as mx
import numpy as np

from ..ir import Operation, TensorType
from .pairs import Parts, multiply, pair, parts

DIRECT_MAX = 64  # axes at most this long: one DFT matmul (the split saves nothing below)

PartsOrReal = tuple[mx.array, mx.array | None]  # Parts; None: an imaginary part of 0


def _wide(values: np.ndarray) -> mx.array:
    return mx.array(values, dtype=mx.float64)  # (mx.array alone makes float32 of float64)


def _turns(numerators: np.ndarray, n: int, sign: int) -> Parts:
    """cos and sin of sign * 2 pi * m / n for integers m (reduced mod n first: exact)."""
    angle = sign * 2 * np.pi * (np.asarray(numerators, np.int64) % n) / n
    return _wide(np.cos(angle)), _wide(np.sin(angle))


# Constants are made once per length: a plan that is not mx.compile'd runs its rules on every
# call.
@functools.lru_cache(maxsize=64)
def _dft_matrix(n: int, sign: int) -> Parts:
    return _turns(np.outer(np.arange(n), np.arange(n)), n, sign)


@functools.lru_cache(maxsize=64)
def _twiddles(n1: int, n2: int, sign: int) -> Parts:
    return _turns(np.outer(np.arange(n1), np.arange(n2)), n1 * n2, sign)


def _times(x: PartsOrReal, c: mx.array, s: mx.array) -> Parts:
    """x * (c + i s)."""
    a, b = x
    return (a * c, a * s) if b is None else multiply((a, b), (c, s))


def _direct(x: PartsOrReal, sign: int) -> Parts:
    c, s = _dft_matrix(x[0].shape[-1], sign)
    a, b = x
    if b is None:
        return a @ c, a @ s
    return a @ c - b @ s, a @ s + b @ c


def _split(n: int) -> int:
    """The divisor of n nearest sqrt(n) from below (1 when n is prime)."""
    for d in range(math.isqrt(n), 1, -1):
        if n % d == 0:
            return d
    return 1


def _t(a: mx.array) -> mx.array:
    return mx.swapaxes(a, -1, -2)


def _four_step(x: PartsOrReal, n1: int, sign: int) -> Parts:
    """x[j1 + n1 j2] -> X[k2 + n2 k1], as [.., j2, j1] -> (n2-point) -> twiddles -> (n1-point)."""
    (a, b), lead, n = x, x[0].shape[:-1], x[0].shape[-1]
    n2 = n // n1
    rows = (_t(a.reshape(*lead, n2, n1)), None if b is None else _t(b.reshape(*lead, n2, n1)))
    re, im = _last_axis(rows, sign)  # [.., j1, k2]
    y = _times((re, im), *_twiddles(n1, n2, sign))
    re, im = _last_axis((_t(y[0]), _t(y[1])), sign)  # [.., k2, k1]
    return _t(re).reshape(*lead, n), _t(im).reshape(*lead, n)  # row-major k = k2 + n2 k1


@functools.lru_cache(maxsize=64)
def _chirp(n: int, sign: int) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """Bluestein's chirp c[m] = exp(sign pi i m^2 / n), and the spectrum of its conjugate
    laid out circularly at M >= 2n - 1 (offsets -(n-1) .. n-1), as float64 parts."""
    m = 1 << (2 * n - 2).bit_length()
    angle = sign * np.pi * (np.arange(n, dtype=np.int64) ** 2 % (2 * n)) / n  # exact
    kernel = np.zeros(m, np.complex128)
    kernel[:n] = np.exp(-1j * angle)
    kernel[m - n + 1:] = kernel[1:n][::-1]
    spectrum = np.fft.fft(kernel)  # a constant: numpy computes it once, here
    return (_wide(np.cos(angle)), _wide(np.sin(angle)), _wide(spectrum.real),
            _wide(spectrum.imag))


def _bluestein(x: PartsOrReal, sign: int) -> Parts:
    """jk = (j^2 + k^2 - (k - j)^2) / 2, so X[k] = c[k] sum_j x[j] c[j] conj(c[k - j]) with
    the chirp c: a circular convolution at a power-of-two length M >= 2n - 1."""
    n = x[0].shape[-1]
    chirp_c, chirp_s, spectrum_re, spectrum_im = _chirp(n, sign)
    m = spectrum_re.shape[0]
    pad = [(0, 0)] * (x[0].ndim - 1) + [(0, m - n)]
    u = tuple(mx.pad(p, pad) for p in _times(x, chirp_c, chirp_s))
    v = _times(_last_axis((u[0], u[1]), -1), spectrum_re, spectrum_im)
    re, im = _last_axis(v, 1)
    return _times((re[..., :n] / m, im[..., :n] / m), chirp_c, chirp_s)


def _last_axis(x: PartsOrReal, sign: int) -> Parts:
    """The unnormalized DFT of x along its last axis (sign -1: forward, +1: inverse)."""
    n = x[0].shape[-1]
    if n <= DIRECT_MAX:
        return _direct(x, sign)
    n1 = _split(n)
    return _four_step(x, n1, sign) if n1 > 1 else _bluestein(x, sign)


def _along(x: PartsOrReal, axis: int, sign: int) -> Parts:
    a, b = x
    moved = mx.moveaxis(a, axis, -1), None if b is None else mx.moveaxis(b, axis, -1)
    re, im = _last_axis(moved, sign)
    return mx.moveaxis(re, -1, axis), mx.moveaxis(im, -1, axis)


def fft(ctx: Any, op: Operation, x: mx.array) -> list[mx.array]:
    """stablehlo.fft when complex128 is involved: FFT, IFFT (complex128 both ways), RFFT
    (float64 -> complex128), IRFFT (complex128 -> float64), over the trailing axes."""
    kind, lengths = op.attrs["fft_type"], [int(n) for n in op.attrs["fft_length"]]
    result = op.results[0].type
    assert isinstance(result, TensorType)
    wide = result.shape + ((2,) if result.dtype == "complex128" else ())
    if math.prod(result.shape) == 0:
        return [mx.zeros(wide, dtype=mx.float64)]
    rank = len(result.shape)
    axes = list(range(rank - len(lengths), rank))
    if kind == "RFFT":
        re, im = _along((x, None), axes[-1], -1)
        keep = lengths[-1] // 2 + 1
        y = re[..., :keep], im[..., :keep]
        for axis in axes[:-1]:
            y = _along(y, axis, -1)
        return [pair(*y)]
    z = parts(x)
    sign = -1 if kind == "FFT" else 1
    for axis in axes if kind != "IRFFT" else axes[:-1]:
        z = _along(z, axis, sign)
    if kind == "IRFFT":  # the Hermitian spectrum's missing half, then an inverse DFT
        n = lengths[-1]
        re, im = z
        tail = slice(n - re.shape[-1], 0, -1)
        full = (mx.concatenate([re, re[..., tail]], axis=-1),
                mx.concatenate([im, -im[..., tail]], axis=-1))
        return [_along(full, axes[-1], 1)[0] / math.prod(lengths)]
    re, im = z
    if kind == "IFFT":
        scale = math.prod(lengths)
        re, im = re / scale, im / scale
    return [pair(re, im)]


__all__ = ["fft"]
