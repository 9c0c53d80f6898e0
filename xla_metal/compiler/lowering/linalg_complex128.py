"""Cholesky and triangular solves of complex128 (float64 pairs: compiler/complex128.py), in
float64, through the exact real embedding of a complex matrix (2x2 blocks [[x, -y], [y, x]]).

- Cholesky: a Hermitian positive-definite A embeds as a real symmetric positive-definite
  matrix whose Cholesky factor is the embedding of A's factor (lowering/linalg.py does the
  same for complex64); MLX's float64 LAPACK factors it, on the CPU stream.
- Triangular solve: once each row of tril(A) X = B is divided by A's diagonal entry, A's
  triangle has a unit diagonal and embeds as a real unit triangle (its 2x2 diagonal blocks
  are identities); X's and B's rows interleave as (real, imaginary) rows, and the float64
  blocked substitution of lowering/linalg.py solves that. A zero pivot gives inf/NaN, as
  LAPACK's trsm does. The transposed, adjoint, right-side and upper cases reduce to that one
  as for real matrices (linalg.solve_as_lower_left, on the pair's two parts).
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx

from ..ir import Operation
from .linalg import Pieces, _forward_substitution, cholesky_of_parts, solve_as_lower_left
from .linalg_base import _embed_parts, _eye, _nan_unless
from .pairs import multiply, pair, parts


def _diagonal(x: mx.array) -> mx.array:
    return mx.diagonal(x, axis1=-2, axis2=-1)


def cholesky(ctx: Any, op: Operation, a: mx.array) -> list[mx.array]:
    if a.size == 0:
        return [a]
    re, im, ok = cholesky_of_parts(*parts(a), bool(op.attrs.get("lower", False)))
    return [_nan_unless(ok, pair(re, im), 3)]  # NaN where not positive definite, as on CPU


def triangular_solve(ctx: Any, op: Operation, a: mx.array, b: mx.array) -> list[mx.array]:
    """op(A) X = B (left_side) or X op(A) = B, reading only A's `lower` (or upper) triangle."""
    if a.size == 0 or b.size == 0:
        return [b]
    unit_diagonal = bool(op.attrs.get("unit_diagonal", False))

    def solve(a: Pieces, b: Pieces) -> Pieces:  # tril(A) X = B
        (ar, ai), (br, bi) = a, b
        n, k = br.shape[-2:]
        ar, ai = mx.tril(ar), mx.tril(ai)
        if not unit_diagonal:  # divide each row by its pivot
            dr, di = _diagonal(ar)[..., None], _diagonal(ai)[..., None]
            size = dr * dr + di * di
            inv_r, inv_i = dr / size, -di / size
            ar, ai = multiply((ar, ai), (inv_r, inv_i))
            br, bi = multiply((br, bi), (inv_r, inv_i))
        # a unit diagonal: its imaginary part is read below the diagonal
        ai = ai * (1 - _eye(n, n, (), mx.float64))
        rows = mx.stack([br, bi], axis=-2).reshape(*br.shape[:-2], 2 * n, k)
        x = _forward_substitution(_embed_parts(ar, ai), rows, unit_diagonal=True)
        x = x.reshape(*br.shape[:-2], n, 2, k)
        return x[..., 0, :], x[..., 1, :]

    xr, xi = solve_as_lower_left(
        parts(a), parts(b), left_side=bool(op.attrs.get("left_side", False)),
        lower=bool(op.attrs.get("lower", False)),
        transpose_a=str(op.attrs.get("transpose_a", "NO_TRANSPOSE")),
        conjugate=lambda v: (v[0], -v[1]), solve=solve)
    return [pair(xr, xi)]


__all__ = ["cholesky", "triangular_solve"]
