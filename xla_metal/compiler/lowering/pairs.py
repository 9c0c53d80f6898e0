"""complex128 values as MLX holds them (compiler/complex128.py): float64 arrays with a trailing
axis of 2, (real part, imaginary part). Shared by complex128.py and the complex128 rules it
calls (fft_float64.py, linalg_complex128.py)."""

from __future__ import annotations

import mlx.core as mx

Parts = tuple[mx.array, mx.array]  # (real part, imaginary part), float64


def pair(re: mx.array, im: mx.array) -> mx.array:
    re, im = mx.broadcast_arrays(re.astype(mx.float64), im.astype(mx.float64))
    return mx.stack([re, im], axis=-1)


def parts(z: mx.array) -> Parts:
    return z[..., 0], z[..., 1]


def multiply(x: Parts, y: Parts) -> Parts:
    (a, b), (c, d) = x, y
    return a * c - b * d, a * d + b * c
