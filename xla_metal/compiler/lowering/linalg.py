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
no complex128 (refused by name at compile time by the dtype check); float64 runs where MLX has
it (its CPU stream).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import mlx.core as mx

from ...errors import UnimplementedError
from ...runtime.dtypes import mlx_dtype
from ..ir import Op, Operation, TensorType
from .registry import lowering, register_check
from .structure import CUSTOM_CALLS, CustomCallRule

CPU = mx.cpu  # the only stream MLX's linalg functions run on

LINALG_DTYPES = ("float32", "float64", "complex64", "complex128")

# Block size of the blocked triangular solve: columns inside a block are eliminated one by one,
# blocks are combined with one matrix product each.
_TRSM_BLOCK = 64


# ------------------------------------------------------------------------------ helpers


def _is_complex(x: mx.array) -> bool:
    return x.dtype == mx.complex64


def _real_dtype(x: mx.array) -> mx.Dtype:
    return mx.float32 if x.dtype == mx.complex64 else x.dtype


def _conj(x: mx.array) -> mx.array:
    return mx.conj(x) if _is_complex(x) else x


def _mT(x: mx.array) -> mx.array:
    return mx.swapaxes(x, -1, -2)


def _mH(x: mx.array) -> mx.array:
    return _conj(_mT(x))


def _zeros(t: Any) -> mx.array:
    assert isinstance(t, TensorType)
    return mx.zeros(t.shape, dtype=mlx_dtype(t.dtype))


def _result_type(op: Operation, index: int) -> TensorType:
    t = op.results[index].type
    assert isinstance(t, TensorType)
    return t


def _empty_results(op: Operation) -> list[mx.array]:
    return [_zeros(r.type) for r in op.results]


def _has_empty(*arrays: mx.array) -> bool:
    return any(a.size == 0 for a in arrays)


def _all_finite(a: mx.array) -> mx.array:
    """Per matrix of a batch (..., m, n): are all its entries finite?"""
    return mx.all(mx.isfinite(a), axis=(-2, -1))


def _sanitize(a: mx.array, ok: mx.array) -> mx.array:
    """Matrices that are not all finite replaced by zeros (LAPACK never sees NaN/inf)."""
    return mx.where(ok[..., None, None], a, mx.zeros_like(a))


def _nan_unless(ok: mx.array, x: mx.array, matrix_dims: int) -> mx.array:
    """x where ok, NaN elsewhere; ok has x's batch dims, x has `matrix_dims` more."""
    mask = ok.reshape(ok.shape + (1,) * matrix_dims)
    # A complex NaN scalar breaks MLX's fused CPU kernels (it prints `complex64_t(nan, 0)`
    # into C++), so complex NaN is made from a real one inside the graph.
    nan = mx.array(math.nan, dtype=_real_dtype(x))
    return mx.where(mask, x, nan.astype(x.dtype) if _is_complex(x) else nan)


def _eye(m: int, n: int, batch: Sequence[int], dtype: mx.Dtype) -> mx.array:
    # (made real, then cast: MLX's complex eye is a scatter, which MLX-CUDA lacks for complex)
    eye = mx.eye(m, n, dtype=mx.float32 if dtype == mx.complex64 else dtype).astype(dtype)
    return mx.broadcast_to(eye, (*batch, m, n))


def _magnitude(x: mx.array) -> mx.array:
    return mx.sqrt(_abs2(x)) if _is_complex(x) else mx.abs(x)


def _cabs1(x: mx.array) -> mx.array:
    """LAPACK's CABS1 (|re| + |im|), its pivot size for complex matrices; |x| for real."""
    return mx.abs(mx.real(x)) + mx.abs(mx.imag(x)) if _is_complex(x) else mx.abs(x)


def _abs2(x: mx.array) -> mx.array:
    """|x|^2, real (for complex: re^2 + im^2; MLX-CUDA cannot fuse abs of complex with
    arithmetic on the result)."""
    if _is_complex(x):
        re, im = mx.real(x), mx.imag(x)
        return re * re + im * im
    return x * x


def _backend_config(op: Operation) -> dict[str, Any]:
    config = op.attrs.get("mhlo.backend_config")
    return config if isinstance(config, dict) else {}


def _attr_bool(config: dict[str, Any], name: str, default: bool = False) -> bool:
    return bool(config.get(name, default))


def _attr_int(config: dict[str, Any], name: str, default: int = 0) -> int:
    value = config.get(name, default)
    return int(value)


def _complex_to_real_embedding(a: mx.array) -> mx.array:
    """(..., n, n) complex -> (..., 2n, 2n) real with 2x2 blocks [[re, -im], [im, re]]."""
    re, im = mx.real(a), mx.imag(a)
    top = mx.stack([re, -im], axis=-1)      # (..., n, n, 2)
    bottom = mx.stack([im, re], axis=-1)    # (..., n, n, 2)
    blocks = mx.stack([top, bottom], axis=-3)  # (..., n, 2, n, 2)
    n = a.shape[-1]
    return blocks.reshape(*a.shape[:-2], 2 * n, 2 * n)


def _real_embedding_to_complex(m: mx.array) -> mx.array:
    """Inverse of _complex_to_real_embedding (reads the first column of each 2x2 block)."""
    re = m[..., ::2, ::2]
    im = m[..., 1::2, ::2]
    return re + 1j * im.astype(mx.complex64)


# ----------------------------------------------------------------------------- dtype check


def _check_dtypes(op: Operation) -> None:
    for v in [*op.operands, *op.results]:
        t = v.type
        if isinstance(t, TensorType) and t.dtype.startswith(("float", "complex", "bfloat")) \
                and t.dtype not in LINALG_DTYPES:
            name = op.attrs.get("call_target_name") or op.op.value
            raise UnimplementedError(f"[linalg] Unsupported dtype {t.dtype} for {name} on "
                                     f"metal (float32, float64 and complex64 only){op.where()}")


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
    n = a.shape[-1]
    tri = mx.tril(a) if lower else _mH(mx.triu(a))  # the triangle LAPACK reads, as lower
    strict = mx.tril(tri, k=-1)
    diag = mx.real(mx.diagonal(tri, axis1=-2, axis2=-1)).astype(mx.complex64)
    hermitian = strict + _mH(strict) + diag[..., None] * _eye(n, n, (), mx.complex64)
    factor = mx.linalg.cholesky(_complex_to_real_embedding(hermitian), stream=CPU)
    ok = mx.all(mx.diagonal(factor, axis1=-2, axis2=-1) > 0, axis=-1)
    result = _real_embedding_to_complex(mx.tril(factor))
    result = result if lower else _mH(result)
    return _nan_unless(ok, result, 2)


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


def triangular_solve(a: mx.array, b: mx.array, *, left_side: bool, lower: bool,
                     unit_diagonal: bool, transpose_a: str) -> mx.array:
    """StableHLO triangular_solve: op(A) X = B (left_side) or X op(A) = B, op(A) one of A,
    A^T, A^H; only the `lower` (or upper) triangle of A is read."""
    if _has_empty(a, b):
        return b
    if transpose_a in ("TRANSPOSE", "ADJOINT"):
        a = _mT(a)
        if transpose_a == "ADJOINT":
            a = _conj(a)
        lower = not lower
    if not left_side:  # X A = B  <=>  A^T X^T = B^T
        a, b, lower = _mT(a), _mT(b), not lower
    if not lower:  # reverse the order of the unknowns: upper becomes lower
        a, b = a[..., ::-1, ::-1], b[..., ::-1, :]
    if a.dtype != b.dtype:
        a = a.astype(b.dtype)
    x = _forward_substitution(a, b, unit_diagonal)
    if not lower:
        x = x[..., ::-1, :]
    if not left_side:
        x = _mT(x)
    return x


@lowering(Op.TRIANGULAR_SOLVE)
def _triangular_solve_rule(ctx, op: Operation, a: mx.array, b: mx.array) -> Sequence[mx.array]:
    return (triangular_solve(a, b, left_side=bool(op.attrs.get("left_side", False)),
                             lower=bool(op.attrs.get("lower", False)),
                             unit_diagonal=bool(op.attrs.get("unit_diagonal", False)),
                             transpose_a=str(op.attrs.get("transpose_a", "NO_TRANSPOSE"))),)


# ------------------------------------------------------------------ Householder reflectors


def _householder(alpha: mx.array, x: mx.array) -> tuple[mx.array, mx.array, mx.array]:
    """LAPACK's xLARFG: for alpha (...) and x (..., r), (beta, tau, v) with
    H^H [alpha; x] = [beta; 0], H = I - tau [1; v] [1; v]^H, beta real. When x is zero and
    alpha real, H = I (tau = 0, v = x, beta = alpha)."""
    complex_ = _is_complex(alpha)
    xnorm2 = mx.sum(_abs2(x), axis=-1) if x.shape[-1] else \
        mx.zeros(alpha.shape, dtype=_real_dtype(alpha))
    ar = mx.real(alpha) if complex_ else alpha
    ai = mx.imag(alpha) if complex_ else mx.zeros_like(alpha)
    norm = mx.sqrt(ar * ar + ai * ai + xnorm2)
    beta = mx.where(ar >= 0, -norm, norm)
    trivial = (xnorm2 == 0) & (ai == 0)
    safe_beta = mx.where(trivial, mx.ones_like(beta), beta)
    if complex_:
        tau = ((safe_beta - ar) / safe_beta).astype(mx.complex64) \
            - 1j * (ai / safe_beta).astype(mx.complex64)
        beta_c = safe_beta.astype(mx.complex64)
    else:
        tau = (safe_beta - ar) / safe_beta
        beta_c = safe_beta
    denom = alpha - beta_c
    denom = mx.where(trivial, mx.ones_like(denom), denom)
    v = mx.where(trivial[..., None], x, x / denom[..., None])
    tau = mx.where(trivial, mx.zeros_like(tau), tau)
    beta_out = mx.where(trivial, alpha, beta_c)
    return beta_out, tau, v


def _reflector(i: int, m: int, v_tail: mx.array) -> mx.array:
    """[0]*i + [1] + v_tail, batched: the full-length Householder vector of column i."""
    batch = v_tail.shape[:-1]
    parts = []
    if i:
        parts.append(mx.zeros((*batch, i), dtype=v_tail.dtype))
    parts.append(mx.ones((*batch, 1), dtype=v_tail.dtype))
    if m - i - 1:
        parts.append(v_tail)
    return mx.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]


def _apply_left(c: mx.array, v: mx.array, tau: mx.array) -> mx.array:
    """(I - tau v v^H) C for C (..., m, n), v (..., m), tau (...)."""
    w = mx.matmul(_conj(v)[..., None, :], c)  # (..., 1, n)
    return c - (tau[..., None, None] * v[..., :, None]) * w


def _apply_right(c: mx.array, v: mx.array, tau: mx.array) -> mx.array:
    """C (I - tau v v^H) for C (..., m, n), v (..., n), tau (...)."""
    w = mx.matmul(c, v[..., :, None])  # (..., m, 1)
    return c - (tau[..., None, None] * w) * _conj(v)[..., None, :]


def _set_column(a: mx.array, j: int, column: mx.array) -> mx.array:
    n = a.shape[-1]
    mask = mx.arange(n) == j
    return mx.where(mask, column[..., :, None], a)


def geqrf(a: mx.array) -> tuple[mx.array, mx.array]:
    """LAPACK's geqrf/geqr2: R in the upper triangle, reflectors below it, and their taus."""
    m, n = a.shape[-2:]
    k = min(m, n)
    batch = a.shape[:-2]
    if k == 0 or _has_empty(a):
        return a, mx.zeros((*batch, k), dtype=a.dtype)
    cols = mx.arange(n)
    taus = []
    for i in range(k):
        column = a[..., :, i]
        beta, tau, v_tail = _householder(column[..., i], column[..., i + 1:])
        v = _reflector(i, m, v_tail)
        if i + 1 < n:
            updated = _apply_left(a, v, _conj(tau))
            a = mx.where(cols > i, updated, a)
        parts = [column[..., :i]] if i else []
        parts += [beta[..., None]] + ([v_tail] if i + 1 < m else [])
        a = _set_column(a, i, mx.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0])
        taus.append(tau)
    return a, mx.stack(taus, axis=-1)


def householder_product(a: mx.array, taus: mx.array) -> mx.array:
    """LAPACK's orgqr/ungqr: the first n columns of H(0) H(1) ... H(k-1)."""
    m, n = a.shape[-2:]
    k = taus.shape[-1]
    batch = a.shape[:-2]
    if _has_empty(a):
        return a
    q = _eye(m, n, batch, a.dtype)
    taus = taus.astype(a.dtype)
    for i in reversed(range(k)):
        v = _reflector(i, m, a[..., i + 1:, i])
        q = _apply_left(q, v, taus[..., i])
    return q


def _qr_rule(ctx, op: Operation, a: mx.array) -> Sequence[mx.array]:
    return geqrf(a)


def _householder_product_rule(ctx, op: Operation, a: mx.array,
                              taus: mx.array) -> Sequence[mx.array]:
    return (householder_product(a, taus),)


# ------------------------------------------------------------ pivoted QR (LAPACK's geqp3)


def geqp3(a: mx.array, jpvt: mx.array) -> tuple[mx.array, mx.array, mx.array]:
    """Householder QR with column pivoting (xLAQP2 with exact column norms): (a, jpvt, taus).
    jpvt on input: nonzero marks a column to be moved to the front (LAPACK's convention,
    1-based indices as JAX passes them); on output the 1-based permutation."""
    m, n = a.shape[-2:]
    k = min(m, n)
    batch = a.shape[:-2]
    jpvt = jpvt.astype(mx.int32)
    perm = mx.broadcast_to(mx.arange(n, dtype=mx.int32), (*batch, n))
    cols = mx.arange(n)
    if _has_empty(a):
        return a, perm + 1, mx.zeros((*batch, k), dtype=a.dtype)
    # Columns with jpvt != 0 go first, in their order (a stable sort on "free").
    free = (jpvt == 0).astype(mx.int32)
    order = mx.argsort(free * n + mx.arange(n, dtype=mx.int32), axis=-1).astype(mx.int32)
    a = mx.take_along_axis(a, order[..., None, :], axis=-1)
    perm = order
    nfixed = mx.sum(1 - free, axis=-1)  # (...,)
    taus = []
    for i in range(k):
        # Pivot: among the free columns >= i, the one with the largest norm of rows i:.
        norms = mx.sum(_abs2(a[..., i:, :]), axis=-2)  # (..., n)
        norms = mx.where(cols >= i, norms, -1)
        pivot = mx.argmax(norms, axis=-1).astype(mx.int32)  # first largest
        pivot = mx.where(i < nfixed, mx.array(i, dtype=mx.int32), pivot)
        # Swap columns i and pivot (in a and in perm).
        idx = mx.broadcast_to(mx.arange(n, dtype=mx.int32), (*batch, n))
        p = pivot[..., None]
        swap = mx.where(idx == i, p, mx.where(idx == p, mx.array(i, dtype=mx.int32), idx))
        a = mx.take_along_axis(a, swap[..., None, :], axis=-1)
        perm = mx.take_along_axis(perm, swap, axis=-1)
        column = a[..., :, i]
        beta, tau, v_tail = _householder(column[..., i], column[..., i + 1:])
        v = _reflector(i, m, v_tail)
        if i + 1 < n:
            a = mx.where(cols > i, _apply_left(a, v, _conj(tau)), a)
        parts = [column[..., :i]] if i else []
        parts += [beta[..., None]] + ([v_tail] if i + 1 < m else [])
        a = _set_column(a, i, mx.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0])
        taus.append(tau)
    return a, perm + 1, mx.stack(taus, axis=-1)


def _geqp3_rule(ctx, op: Operation, a: mx.array, jpvt: mx.array) -> Sequence[mx.array]:
    out, perm, taus = geqp3(a, jpvt)
    return out, perm.astype(mlx_dtype(_result_type(op, 1).dtype)), taus


# ----------------------------------------------------- Hessenberg and tridiagonal forms


def hessenberg(a: mx.array) -> tuple[mx.array, mx.array]:
    """LAPACK's gehrd/gehd2 (ilo=1, ihi=n): H in the upper Hessenberg part, reflectors below
    the first subdiagonal, taus of length n-1 (the last one 0 for real matrices)."""
    n = a.shape[-1]
    batch = a.shape[:-2]
    if _has_empty(a) or n < 2:
        return a, mx.zeros((*batch, max(n - 1, 0)), dtype=a.dtype)
    cols = mx.arange(n)
    taus = []
    for i in range(n - 1):  # the last step makes a complex subdiagonal entry real
        column = a[..., :, i]
        beta, tau, v_tail = _householder(column[..., i + 1], column[..., i + 2:])
        v = _reflector(i + 1, n, v_tail)
        # A := H A H^H restricted as in gehd2: right to A(0:n, i+1:n), left to A(i+1:n, i+1:n)
        a = mx.where(cols > i, _apply_right(a, v, tau), a)
        a = mx.where(cols > i, _apply_left(a, v, _conj(tau)), a)
        parts = [column[..., :i + 1], beta[..., None]]
        if i + 2 < n:
            parts.append(v_tail)
        a = _set_column(a, i, mx.concatenate(parts, axis=-1))
        taus.append(tau)
    return a, mx.stack(taus, axis=-1)


def tridiagonal(a: mx.array, lower: bool) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """LAPACK's sytrd/hetrd (unblocked sytd2/hetd2): (a, d, e, taus) with the reflectors in
    the `lower` (or upper) triangle of a."""
    n = a.shape[-1]
    batch = a.shape[:-2]
    rdt = _real_dtype(a)
    if _has_empty(a):
        return (a, mx.zeros((*batch, n), dtype=rdt), mx.zeros((*batch, max(n - 1, 0)), dtype=rdt),
                mx.zeros((*batch, max(n - 1, 0)), dtype=a.dtype))
    if not lower:
        # The upper variant on A is the lower variant on the reversed matrix P A P, with
        # rows/columns reversed (LAPACK's upper loop runs from the last column backwards).
        rev = a[..., ::-1, ::-1]
        out, d, e, taus = tridiagonal(rev, True)
        return out[..., ::-1, ::-1], d[..., ::-1], e[..., ::-1], taus[..., ::-1]
    complex_ = _is_complex(a)
    # Hermitian matrix from the lower triangle, with a real diagonal (as hetrd reads it).
    strict = mx.tril(a, k=-1)
    diag = mx.diagonal(a, axis1=-2, axis2=-1)
    if complex_:
        diag = mx.real(diag).astype(a.dtype)
    full = strict + _mH(strict) + diag[..., None] * _eye(n, n, (), a.dtype)
    tau_list: list[mx.array] = []
    es: list[mx.array] = []
    work = full
    for i in range(n - 1):
        column = work[..., :, i]
        beta, tau, v_tail = _householder(column[..., i + 1], column[..., i + 2:])
        v = _reflector(i + 1, n, v_tail)
        # work := H^H work H on the trailing block (H Hermitian-applied both sides)
        work = _apply_right(_apply_left(work, v, _conj(tau)), v, tau)
        es.append(mx.real(beta) if complex_ else beta)
        tau_list.append(tau)
        # keep the reflector in a's column i (below the subdiagonal), as sytd2 stores it
        parts = [a[..., :i + 1, i], beta[..., None]]
        if i + 2 < n:
            parts.append(v_tail)
        a = _set_column(a, i, mx.concatenate(parts, axis=-1))
    d = mx.diagonal(work, axis1=-2, axis2=-1)
    d = mx.real(d) if complex_ else d
    # a's subdiagonal already holds e (each beta); its diagonal gets d, as LAPACK leaves it
    if n > 1:
        e = mx.stack(es, axis=-1)
        tau_arr = mx.stack(tau_list, axis=-1)
    else:
        e = mx.zeros((*batch, 0), dtype=rdt)
        tau_arr = mx.zeros((*batch, 0), dtype=a.dtype)
    diagonal = mx.arange(n)[:, None] == mx.arange(n)[None, :]
    a = mx.where(diagonal, d.astype(a.dtype)[..., None, :], a)
    return a, d, e, tau_arr


def _hessenberg_rule(ctx, op: Operation, a: mx.array) -> Sequence[mx.array]:
    return hessenberg(a)


def _tridiagonal_rule(ctx, op: Operation, a: mx.array) -> Sequence[mx.array]:
    lower = _attr_bool(_backend_config(op), "lower", True)
    return tridiagonal(a, lower)


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
    factors: Any = mx.linalg.svd(clean, compute_uv=True, stream=CPU)
    u, s, vt = factors
    if not full_matrices:
        u, vt = u[..., :, :k], vt[..., :k, :]
    if (lo, hi) != (0, k):
        s, u, vt = s[..., lo:hi], u[..., :, lo:hi], vt[..., lo:hi, :]
    return [_nan_unless(ok, s, 1), _nan_unless(ok, u, 2), _nan_unless(ok, vt, 2)]


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


# ------------------------------------------------------------------- tridiagonal solve


def tridiagonal_solve(dl: mx.array, d: mx.array, du: mx.array, b: mx.array,
                      perturb_singular: bool = False) -> mx.array:
    """LAPACK's gtsv: Gaussian elimination with partial pivoting (row interchanges) on the
    tridiagonal system with sub-diagonal dl (dl[0] ignored), diagonal d and super-diagonal du
    (du[n-1] ignored), for b (..., n, k). A system with an exactly zero pivot gives NaN (JAX's
    CPU backend turns gtsv's info into NaN). With perturb_singular, pivots smaller than
    eps * max|A| are moved to that size instead (their sign kept), so singular systems give
    large finite solutions."""
    n = d.shape[-1]
    if n == 0 or _has_empty(b):
        return b
    zero = mx.zeros_like(d[..., 0])
    sub = [dl[..., i] for i in range(n)]
    diag = [d[..., i] for i in range(n)]
    sup = [du[..., i] for i in range(n - 1)] + [zero]
    sup2 = [zero] * n
    rhs = [b[..., i, :] for i in range(n)]
    tiny = None
    if perturb_singular:
        none = _magnitude(zero)
        scale = mx.maximum(mx.maximum(mx.max(_magnitude(dl[..., 1:]), axis=-1) if n > 1 else
                                      none, mx.max(_magnitude(d), axis=-1)),
                           mx.max(_magnitude(du[..., :-1]), axis=-1) if n > 1 else none)
        eps = float(mx.finfo(_real_dtype(d)).eps)
        tiny = mx.maximum(scale, mx.ones_like(scale)) * eps

    def perturbed(p: mx.array) -> mx.array:
        if tiny is None:
            return p
        small = _magnitude(p) < tiny
        direction = mx.where(mx.real(p) < 0, -1, 1) if _is_complex(p) else \
            mx.where(p < 0, -1, 1)
        return mx.where(small, (tiny * direction).astype(p.dtype), p)

    pivots = []
    for i in range(n - 1):
        # rows i (diag, sup, 0) and i+1 (sub, diag, sup): the larger leading entry pivots
        swap = _cabs1(diag[i]) < _cabs1(sub[i + 1])  # LAPACK's gtsv test
        p_d = mx.where(swap, sub[i + 1], diag[i])
        p_sup = mx.where(swap, diag[i + 1], sup[i])
        p_sup2 = mx.where(swap, sup[i + 1], zero)
        o_lead = mx.where(swap, diag[i], sub[i + 1])
        o_d = mx.where(swap, sup[i], diag[i + 1])
        o_sup = mx.where(swap, zero, sup[i + 1])
        p_r = mx.where(swap[..., None], rhs[i + 1], rhs[i])
        o_r = mx.where(swap[..., None], rhs[i], rhs[i + 1])
        p_d = perturbed(p_d)
        fact = o_lead / p_d
        diag[i], sup[i], sup2[i], rhs[i] = p_d, p_sup, p_sup2, p_r
        diag[i + 1] = o_d - fact * p_sup
        sup[i + 1] = o_sup - fact * p_sup2
        rhs[i + 1] = o_r - fact[..., None] * p_r
        pivots.append(p_d)
    diag[n - 1] = perturbed(diag[n - 1])
    pivots.append(diag[n - 1])
    x: list[Any] = [None] * n
    x[n - 1] = rhs[n - 1] / diag[n - 1][..., None]
    if n > 1:
        x[n - 2] = (rhs[n - 2] - sup[n - 2][..., None] * x[n - 1]) / diag[n - 2][..., None]
    for i in range(n - 3, -1, -1):
        x[i] = (rhs[i] - sup[i][..., None] * x[i + 1] - sup2[i][..., None] * x[i + 2]) \
            / diag[i][..., None]
    out = mx.stack(x, axis=-2)
    ok = mx.all(mx.stack(pivots, axis=-1) != 0, axis=-1)
    return _nan_unless(ok, out, 2)


def _tridiagonal_solve_rule(ctx, op: Operation, dl: mx.array, d: mx.array, du: mx.array,
                            b: mx.array) -> Sequence[mx.array]:
    perturb = _attr_bool(_backend_config(op), "perturb_singular", False)
    return (tridiagonal_solve(dl, d, du, b, perturb),)


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
