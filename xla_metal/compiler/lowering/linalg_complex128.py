"""Cholesky and triangular solves of complex128 (float64 pairs: compiler/complex128.py), in
float64, through the exact real embedding of a complex matrix (2x2 blocks [[x, -y], [y, x]]).

- Cholesky: a Hermitian positive-definite A embeds as a real symmetric positive-definite
  matrix whose Cholesky factor is the embedding of A's factor (lowering/linalg.py does the
  same for complex64); MLX's float64 LAPACK factors it, on the CPU stream.
- Triangular solve: once each row of tril(A) X = B is divided by A's diagonal entry, A's
  triangle has a unit diagonal and embeds as a real unit triangle (its 2x2 diagonal blocks
  are identities); X's and B's rows interleave as (real, imaginary) rows, and the float64
  blocked substitution of lowering/linalg.py solves that. A zero pivot gives inf/NaN, as
  LAPACK's trsm does.
"""

from __future__ import annotations

import math
from typing import Any

import mlx.core as mx

from ..ir import Operation
from .linalg import _forward_substitution
from .linalg_base import CPU, _embed_parts, _mT

Full = tuple[mx.array, mx.array]  # (real part, imaginary part), float64


def _parts(z: mx.array) -> Full:
    return z[..., 0], z[..., 1]


def _pair(re: mx.array, im: mx.array) -> mx.array:
    return mx.stack([re, im], axis=-1)


def _diagonal(x: mx.array) -> mx.array:
    return mx.diagonal(x, axis1=-2, axis2=-1)


def _eye(n: int) -> mx.array:
    return mx.eye(n, dtype=mx.float64)


def cholesky(ctx: Any, op: Operation, a: mx.array) -> list[mx.array]:
    if a.size == 0:
        return [a]
    lower = bool(op.attrs.get("lower", False))
    re, im = _parts(a)
    if not lower:  # the upper triangle LAPACK reads, as a lower one (conjugate transpose)
        re, im = _mT(re), -_mT(im)
    n = re.shape[-1]
    strict_re, strict_im = mx.tril(re, k=-1), mx.tril(im, k=-1)
    hermitian_re = strict_re + _mT(strict_re) + _diagonal(re)[..., None] * _eye(n)
    hermitian_im = strict_im - _mT(strict_im)  # a Hermitian diagonal is real
    factor = mx.tril(mx.linalg.cholesky(_embed_parts(hermitian_re, hermitian_im), stream=CPU))
    # every diagonal entry is a positive square root unless potrf stopped (not positive
    # definite): then the result is NaN, as on JAX's CPU backend
    ok = mx.all(_diagonal(factor) > 0, axis=-1)
    l_re, l_im = factor[..., ::2, ::2], factor[..., 1::2, ::2]
    if not lower:
        l_re, l_im = _mT(l_re), -_mT(l_im)
    nan = mx.array(math.nan, dtype=mx.float64)
    return [mx.where(ok[..., None, None, None], _pair(l_re, l_im), nan)]


def triangular_solve(ctx: Any, op: Operation, a: mx.array, b: mx.array) -> list[mx.array]:
    """op(A) X = B (left_side) or X op(A) = B, reading only A's `lower` (or upper) triangle."""
    if a.size == 0 or b.size == 0:
        return [b]
    left_side = bool(op.attrs.get("left_side", False))
    lower = bool(op.attrs.get("lower", False))
    transpose_a = str(op.attrs.get("transpose_a", "NO_TRANSPOSE"))
    (ar, ai), (br, bi) = _parts(a), _parts(b)
    if transpose_a in ("TRANSPOSE", "ADJOINT"):
        ar, ai, lower = _mT(ar), _mT(ai) if transpose_a == "TRANSPOSE" else -_mT(ai), not lower
    if not left_side:  # X A = B  <=>  A^T X^T = B^T
        ar, ai, br, bi, lower = _mT(ar), _mT(ai), _mT(br), _mT(bi), not lower
    if not lower:  # reverse the order of the unknowns: upper becomes lower
        ar, ai = ar[..., ::-1, ::-1], ai[..., ::-1, ::-1]
        br, bi = br[..., ::-1, :], bi[..., ::-1, :]
    n, k = br.shape[-2:]
    ar, ai = mx.tril(ar), mx.tril(ai)
    if not bool(op.attrs.get("unit_diagonal", False)):  # divide each row by its pivot
        dr, di = _diagonal(ar)[..., None], _diagonal(ai)[..., None]
        size = dr * dr + di * di
        inv_r, inv_i = dr / size, -di / size
        ar, ai = ar * inv_r - ai * inv_i, ar * inv_i + ai * inv_r
        br, bi = br * inv_r - bi * inv_i, br * inv_i + bi * inv_r
    ai = ai * (1 - _eye(n))  # a unit diagonal: its imaginary part is read below the diagonal
    rows = mx.stack([br, bi], axis=-2).reshape(*br.shape[:-2], 2 * n, k)
    x = _forward_substitution(_embed_parts(ar, ai), rows, unit_diagonal=True)
    x = x.reshape(*br.shape[:-2], n, 2, k)
    xr, xi = x[..., 0, :], x[..., 1, :]
    if not lower:
        xr, xi = xr[..., ::-1, :], xi[..., ::-1, :]
    if not left_side:
        xr, xi = _mT(xr), _mT(xi)
    return [_pair(xr, xi)]


__all__ = ["cholesky", "triangular_solve"]
