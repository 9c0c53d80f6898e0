"""LAPACK's unblocked Householder algorithms written with MLX array ops (geqr2/org2r for QR,
laqp2 for pivoted QR, gehd2 for Hessenberg, sytd2/hetd2 for tridiagonal forms) and its gtsv
tridiagonal solve, with LAPACK's sign and scaling conventions so packed outputs match JAX's
CPU backend. Loops over columns are unrolled into the graph: no host round trip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlx.core as mx

from ...runtime.dtypes import mlx_dtype
from ..ir import Operation
from .linalg_base import (
    _abs2,
    _attr_bool,
    _backend_config,
    _cabs1,
    _conj,
    _eye,
    _has_empty,
    _is_complex,
    _magnitude,
    _mH,
    _nan_unless,
    _real_dtype,
    _result_type,
)

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
