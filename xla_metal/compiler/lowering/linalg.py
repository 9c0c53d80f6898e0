"""Linear algebra: stablehlo.cholesky / triangular_solve, JAX's generic QR custom_calls ('Qr',
'ProductOfElementaryHouseholderReflectors') and our own `xla_metal.*` custom_calls, which the
'metal' lowering rules of xla_metal/jax_plugin/linalg.py emit for the primitives JAX lowers only
for cpu/gpu/tpu (eigh, eig, svd, lu, hessenberg, tridiagonal, schur, ...).

Two kinds of kernels:

- MLX's LAPACK-backed `mx.linalg` functions (cholesky, eigh, eig, svd, lu_factor). MLX runs them
  only on its CPU stream, so every call passes `stream=mx.cpu`; that makes them run there even
  when the plan executes on a GPU stream, inside loops and inside mx.compile'd functions alike.
  MLX does not report LAPACK's `info`, and some of its LAPACK paths abort the process on NaN
  input (geev) or raise while evaluating (gesdd), so inputs that are not finite are replaced
  before the call and the results of those matrices set to NaN afterwards, which is what
  JAX's CPU backend returns when LAPACK fails.
- Algorithms written with MLX array ops, run on the plan's own stream: blocked substitution for
  triangular solves (any dtype; a zero pivot gives inf/nan as LAPACK's trsm does, never an
  error), and LAPACK's unblocked Householder algorithms (geqr2, org2r, gehd2, sytd2/hetd2,
  laqp2) with LAPACK's sign and scaling conventions, so their packed outputs (reflectors and
  taus) match JAX's CPU backend. Loops over columns are unrolled into the graph: fine for
  mx.compile, and no host round trip.

complex64 goes where MLX's LAPACK calls take float32/float64 only through exact real forms:
a Hermitian positive-definite matrix A = X + iY factors as the real symmetric 2n x 2n matrix
with 2x2 blocks [[x, -y], [y, x]], whose Cholesky factor is the same embedding of A's. MLX has
no complex128: its Cholesky and triangular solves are lowering/linalg_complex128.py's (float64
pairs, through compiler/complex128.py), its other linear algebra is refused by name; float64
runs where MLX has it (its CPU stream).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import mlx.core as mx

from ...runtime.dtypes import mlx_dtype
from ..ir import Op, Operation
from .householder import (
    _geqp3_rule,
    _hessenberg_rule,
    _householder_product_rule,
    _qr_rule,
    _tridiagonal_rule,
    _tridiagonal_solve_rule,
    geqrf,
    householder_product,
)
from .linalg_base import (
    _TRSM_BLOCK,
    CPU,
    _all_finite,
    _attr_bool,
    _attr_int,
    _backend_config,
    _check_dtypes,
    _conj,
    _embed_parts,
    _empty_results,
    _eye,
    _has_empty,
    _is_complex,
    _mH,
    _mT,
    _nan_unless,
    _result_type,
    _sanitize,
)
from .registry import lowering, register_check
from .structure import CUSTOM_CALLS, CustomCallRule

# -------------------------------------------------------------------------------- cholesky


def cholesky(a: mx.array, lower: bool = True) -> mx.array:
    """The Cholesky factor read from the `lower` (or upper) triangle; NaN where the matrix is
    not positive definite (as JAX's CPU backend)."""
    if _has_empty(a):
        return a
    if _is_complex(a):
        return _cholesky_complex(a, lower)
    factor = mx.linalg.cholesky(a, upper=not lower, stream=CPU)
    # LAPACK's potrf stops at the first pivot that is not positive, leaving it in place; MLX
    # does not report it, but every computed diagonal entry is a positive square root.
    ok = mx.all(mx.diagonal(factor, axis1=-2, axis2=-1) > 0, axis=-1)
    return _nan_unless(ok, factor, 2)


def _cholesky_complex(a: mx.array, lower: bool) -> mx.array:
    re, im, ok = cholesky_of_parts(mx.real(a), mx.imag(a), lower)
    return _nan_unless(ok, re + 1j * im.astype(mx.complex64), 2)


def cholesky_of_parts(re: mx.array, im: mx.array,
                      lower: bool) -> tuple[mx.array, mx.array, mx.array]:
    """(real part, imaginary part, ok) of the Cholesky factor of the Hermitian matrix read from
    the `lower` (or upper) triangle of re + i im, through its real embedding (complex64's
    parts are float32, complex128's float64); ok is False where it is not positive definite."""
    if not lower:  # the upper triangle LAPACK reads, as a lower one (conjugate transpose)
        re, im = _mT(re), -_mT(im)
    n = re.shape[-1]
    strict_re, strict_im = mx.tril(re, k=-1), mx.tril(im, k=-1)
    diag = mx.diagonal(re, axis1=-2, axis2=-1)[..., None]  # a Hermitian diagonal is real
    hermitian_re = strict_re + _mT(strict_re) + diag * _eye(n, n, (), re.dtype)
    hermitian_im = strict_im - _mT(strict_im)
    factor = mx.tril(mx.linalg.cholesky(_embed_parts(hermitian_re, hermitian_im), stream=CPU))
    # every diagonal entry is a positive square root unless potrf stopped
    ok = mx.all(mx.diagonal(factor, axis1=-2, axis2=-1) > 0, axis=-1)
    l_re, l_im = factor[..., ::2, ::2], factor[..., 1::2, ::2]
    if not lower:
        l_re, l_im = _mT(l_re), -_mT(l_im)
    return l_re, l_im, ok


@lowering(Op.CHOLESKY)
def _cholesky_rule(ctx, op: Operation, a: mx.array) -> Sequence[mx.array]:
    return (cholesky(a, bool(op.attrs.get("lower", False))),)


# ------------------------------------------------------------------------ triangular solve


def _forward_substitution(a: mx.array, b: mx.array, unit_diagonal: bool) -> mx.array:
    """X with tril(A) X = B, A (..., n, n), B (..., n, k); reads only A's lower triangle
    (and not its diagonal when unit_diagonal)."""
    n = a.shape[-2]
    done: list[mx.array] = []  # solved row blocks, in order
    for k0 in range(0, n, _TRSM_BLOCK):
        k1 = min(n, k0 + _TRSM_BLOCK)
        rhs = b[..., k0:k1, :]
        if k0:
            rhs = rhs - mx.matmul(a[..., k0:k1, :k0], mx.concatenate(done, axis=-2))
        block = a[..., k0:k1, k0:k1]
        rows = []
        for j in range(k1 - k0):
            x = rhs[..., :1, :]
            if not unit_diagonal:
                x = x / block[..., j:j + 1, j:j + 1]
            rows.append(x)
            if j + 1 < k1 - k0:
                rhs = rhs[..., 1:, :] - block[..., j + 1:, j:j + 1] * x
        done.append(mx.concatenate(rows, axis=-2) if len(rows) > 1 else rows[0])
    return mx.concatenate(done, axis=-2) if len(done) > 1 else done[0]


Pieces = tuple[mx.array, ...]  # one array, or complex128's (real, imaginary) pair


def solve_as_lower_left(a: Pieces, b: Pieces, *, left_side: bool, lower: bool, transpose_a: str,
                        conjugate: Callable[[Pieces], Pieces],
                        solve: Callable[[Pieces, Pieces], Pieces]) -> Pieces:
    """StableHLO triangular_solve's X, from `solve`(A, B) of tril(A) X = B: op(A) X = B
    (left_side) or X op(A) = B, op(A) one of A, A^T, A^H, reading only A's `lower` (or upper)
    triangle. Each value is given as pieces, every step applied to each piece alike (except
    `conjugate`): one array, or complex128's pair (lowering/linalg_complex128.py)."""
    def each(f: Callable[[mx.array], mx.array], values: Pieces) -> Pieces:
        return tuple(map(f, values))

    if transpose_a in ("TRANSPOSE", "ADJOINT"):
        a, lower = each(_mT, a), not lower
        if transpose_a == "ADJOINT":
            a = conjugate(a)
    if not left_side:  # X A = B  <=>  A^T X^T = B^T
        a, b, lower = each(_mT, a), each(_mT, b), not lower
    if not lower:  # reverse the order of the unknowns: upper becomes lower
        a, b = each(lambda v: v[..., ::-1, ::-1], a), each(lambda v: v[..., ::-1, :], b)
    x = solve(a, b)
    if not lower:
        x = each(lambda v: v[..., ::-1, :], x)
    return x if left_side else each(_mT, x)


def triangular_solve(a: mx.array, b: mx.array, *, left_side: bool, lower: bool,
                     unit_diagonal: bool, transpose_a: str) -> mx.array:
    """StableHLO triangular_solve of a real or complex64 A (solve_as_lower_left)."""
    if _has_empty(a, b):
        return b

    def solve(a: Pieces, b: Pieces) -> Pieces:
        lhs = a[0] if a[0].dtype == b[0].dtype else a[0].astype(b[0].dtype)
        return (_forward_substitution(lhs, b[0], unit_diagonal),)

    (x,) = solve_as_lower_left((a,), (b,), left_side=left_side, lower=lower,
                               transpose_a=transpose_a, conjugate=lambda v: (_conj(v[0]),),
                               solve=solve)
    return x


@lowering(Op.TRIANGULAR_SOLVE)
def _triangular_solve_rule(ctx, op: Operation, a: mx.array, b: mx.array) -> Sequence[mx.array]:
    return (triangular_solve(a, b, left_side=bool(op.attrs.get("left_side", False)),
                             lower=bool(op.attrs.get("lower", False)),
                             unit_diagonal=bool(op.attrs.get("unit_diagonal", False)),
                             transpose_a=str(op.attrs.get("transpose_a", "NO_TRANSPOSE"))),)


# ------------------------------------------------------------------------ eigh, svd, eig


def eigh(a: mx.array, lower: bool, lo: int, hi: int) -> tuple[mx.array, mx.array]:
    """(v, w): eigenvectors (columns) and ascending eigenvalues lo:hi of the Hermitian matrix
    read from the `lower` (or upper) triangle."""
    ok = _all_finite(a)
    w, v = mx.linalg.eigh(_sanitize(a, ok), UPLO="L" if lower else "U", stream=CPU)
    w, v = w[..., lo:hi], v[..., :, lo:hi]
    return _nan_unless(ok, v, 2), _nan_unless(ok, w, 1)


def _eigh_rule(ctx, op: Operation, a: mx.array) -> Sequence[mx.array]:
    config = _backend_config(op)
    n = a.shape[-1]
    lo = _attr_int(config, "subset_lo", 0)
    hi = _attr_int(config, "subset_hi", n)
    if _has_empty(a):
        return _empty_results(op)
    return eigh(a, _attr_bool(config, "lower", True), lo, hi)


def svd(a: mx.array, full_matrices: bool, compute_uv: bool, lo: int,
        hi: int) -> list[mx.array]:
    """[s] or [s, u, vt] (LAPACK's gesdd conventions; s descending)."""
    m, n = a.shape[-2:]
    k = min(m, n)
    ok = _all_finite(a)
    clean = _sanitize(a, ok)
    if not compute_uv:
        values: Any = mx.linalg.svd(clean, compute_uv=False, stream=CPU)
        return [_nan_unless(ok, values[..., lo:hi], 1)]
    if not full_matrices and max(m, n) ** 2 > _FULL_FACTOR_ELEMENTS:
        u, s, vt = _reduced_svd(clean)
    else:
        factors: Any = mx.linalg.svd(clean, compute_uv=True, stream=CPU)
        u, s, vt = factors
        if not full_matrices:
            u, vt = u[..., :, :k], vt[..., :k, :]
    if (lo, hi) != (0, k):
        s, u, vt = s[..., lo:hi], u[..., :, lo:hi], vt[..., lo:hi, :]
    return [_nan_unless(ok, s, 1), _nan_unless(ok, u, 2), _nan_unless(ok, vt, 2)]


# MLX's SVD always computes both square factors: for a 2 x 400,000 matrix (jnp.linalg.pinv in
# JAX's linalg_test) V alone would be 640 GB, and MLX's CPU SVD crashes the process instead of
# raising. Past this many elements in the larger square factor, a reduced SVD goes through a QR
# factorization first, so that only k x k is decomposed (k = the smaller side).
_FULL_FACTOR_ELEMENTS = 1 << 22


def _reduced_svd(a: mx.array) -> tuple[mx.array, mx.array, mx.array]:
    """(u [.., m, k], s, vt [.., k, n]) of a, from the SVD of R in a = QR (tall) or
    a^H = QR (wide): a = Q R = (Q U') S V'^H, or a = R^H Q^H = U' S (V'^H Q^H)."""
    m, n = a.shape[-2:]
    tall = a if m >= n else _mH(a)
    k = tall.shape[-1]
    packed, taus = geqrf(tall)
    q = householder_product(packed, taus)  # [.., max, k]
    r = mx.triu(packed[..., :k, :])
    u, s, vt = mx.linalg.svd(r if m >= n else _mH(r), compute_uv=True, stream=CPU)
    if m >= n:
        return mx.matmul(q, u, stream=CPU), s, vt
    return u, s, mx.matmul(vt, _mH(q), stream=CPU)


def _svd_rule(ctx, op: Operation, a: mx.array) -> Sequence[mx.array]:
    config = _backend_config(op)
    k = min(a.shape[-2:])
    if _has_empty(a):
        return _empty_results(op)
    return svd(a, _attr_bool(config, "full_matrices", True),
               _attr_bool(config, "compute_uv", True),
               _attr_int(config, "subset_lo", 0), _attr_int(config, "subset_hi", k))


_EIG_CONJUGATES: bool | None = None


def _eig_conjugates_complex_vectors() -> bool:
    """Does mx.linalg.eig return the conjugates of the eigenvectors of a complex matrix?
    (MLX 0.32 does: A conj(v) = w conj(v).) Probed once, on a 2x2 matrix with known
    eigenvectors, so a fixed MLX needs no change here."""
    global _EIG_CONJUGATES
    if _EIG_CONJUGATES is None:
        a = mx.array([[1j, 1.0], [0.0, 2.0]], dtype=mx.complex64)  # A e0 = 1j e0
        with mx.stream(CPU):
            _, v = mx.linalg.eig(a, stream=CPU)
            mx.eval(v)
        w: Any = v.tolist()
        # the eigenvector of 1j is e0 scaled; of 2: (1, 2 - 1j) / |.|; check the second
        col = [w[0][0], w[1][0]] if abs(w[1][0]) > abs(w[1][1]) else [w[0][1], w[1][1]]
        ratio = col[1] / col[0]  # (2 - 1j) for the true vector, (2 + 1j) for its conjugate
        _EIG_CONJUGATES = abs(ratio - (2 + 1j)) < abs(ratio - (2 - 1j))
    return _EIG_CONJUGATES


def eig(a: mx.array) -> tuple[mx.array, mx.array]:
    """(w, vr): eigenvalues and right eigenvectors (complex; LAPACK geev's normalization:
    unit 2-norm, largest component real); NaN for matrices that are not finite."""
    ok = _all_finite(a)
    w, v = mx.linalg.eig(_sanitize(a, ok), stream=CPU)
    if _is_complex(a) and _eig_conjugates_complex_vectors():
        v = mx.conj(v)
    return _nan_unless(ok, w, 1), _nan_unless(ok, v, 2)


def _eig_rule(ctx, op: Operation, a: mx.array) -> Sequence[mx.array]:
    if _has_empty(a):
        return _empty_results(op)
    if not _attr_bool(_backend_config(op), "vectors", True):
        ok = _all_finite(a)
        return (_nan_unless(ok, mx.linalg.eigvals(_sanitize(a, ok), stream=CPU), 1),)
    return eig(a)


# ------------------------------------------------------------------------------------ LU


def lu_pivots_to_permutation(pivots: mx.array, size: int) -> mx.array:
    """The permutation that the row swaps i <-> pivots[i] (applied in order) make of
    range(size)."""
    batch = pivots.shape[:-1]
    k = pivots.shape[-1]
    perm = mx.broadcast_to(mx.arange(size, dtype=mx.int32), (*batch, size))
    idx = mx.arange(size, dtype=mx.int32)
    pivots = pivots.astype(mx.int32)
    for i in range(min(k, size)):
        p = pivots[..., i:i + 1]  # (..., 1)
        at_i = perm[..., i:i + 1]
        at_p = mx.take_along_axis(perm, p, axis=-1)
        perm = mx.where(idx == i, at_p, mx.where(idx == p, at_i, perm))
    return perm


def lu(a: mx.array) -> tuple[mx.array, mx.array, mx.array]:
    """LAPACK's getrf through MLX: (lu, 0-based pivots, permutation), float32/float64."""
    m, n = a.shape[-2:]
    batch = a.shape[:-2]
    k = min(m, n)
    if _has_empty(a):
        return (a, mx.zeros((*batch, k), dtype=mx.int32),
                mx.broadcast_to(mx.arange(m, dtype=mx.int32), (*batch, m)))
    factors, pivots = mx.linalg.lu_factor(a, stream=CPU)
    pivots = pivots.astype(mx.int32)
    return factors, pivots, lu_pivots_to_permutation(pivots, m)


def _lu_rule(ctx, op: Operation, a: mx.array) -> Sequence[mx.array]:
    factors, pivots, perm = lu(a)
    return (factors, pivots.astype(mlx_dtype(_result_type(op, 1).dtype)),
            perm.astype(mlx_dtype(_result_type(op, 2).dtype)))


def _lu_pivots_rule(ctx, op: Operation, pivots: mx.array) -> Sequence[mx.array]:
    size = _result_type(op, 0).shape[-1]
    if _has_empty(pivots) and pivots.shape[-1] != 0:
        return _empty_results(op)
    perm = lu_pivots_to_permutation(pivots, size)
    return (perm.astype(mlx_dtype(_result_type(op, 0).dtype)),)


# ---------------------------------------------------------------- the custom_call table

_CUSTOM_CALLS: dict[str, CustomCallRule] = {
    "Qr": _qr_rule,
    "ProductOfElementaryHouseholderReflectors": _householder_product_rule,
    "xla_metal.eigh": _eigh_rule,
    "xla_metal.svd": _svd_rule,
    "xla_metal.eig": _eig_rule,
    "xla_metal.lu": _lu_rule,
    "xla_metal.lu_pivots_to_permutation": _lu_pivots_rule,
    "xla_metal.geqp3": _geqp3_rule,
    "xla_metal.hessenberg": _hessenberg_rule,
    "xla_metal.tridiagonal": _tridiagonal_rule,
    "xla_metal.tridiagonal_solve": _tridiagonal_solve_rule,
}
_LINALG_TARGETS = frozenset(_CUSTOM_CALLS)
CUSTOM_CALLS.update(_CUSTOM_CALLS)


def _check_linalg_custom_call(op: Operation) -> None:
    if op.attrs.get("call_target_name") in _LINALG_TARGETS:
        _check_dtypes(op)


register_check(Op.CUSTOM_CALL, _check_linalg_custom_call)
register_check(Op.CHOLESKY, _check_dtypes)
register_check(Op.TRIANGULAR_SOLVE, _check_dtypes)
