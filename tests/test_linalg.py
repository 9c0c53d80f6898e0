"""Linear algebra on 'metal' through the plugin, against JAX's CPU backend: every primitive
(cholesky, triangular_solve, qr/geqrf/householder_product, lu, eigh, eig, svd, schur,
hessenberg, tridiagonal, tridiagonal_solve, geqp3) and what is built on them, by value and
gradient, for float32 and complex64 (float64 under x64), batched, under vmap and inside scan.

Where a decomposition is unique only up to signs or phases (eigenvectors, singular vectors,
Schur vectors), the cases compare what is unique: reconstructions, magnitudes, projectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest
from jax import lax
from jax._src.lax import linalg as lax_linalg

F32, C64, F64 = "float32", "complex64", "float64"


def _rand(rng: np.random.Generator, shape, dtype: str) -> np.ndarray:
    a = rng.standard_normal(shape)
    if dtype.startswith("complex"):
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


def _spd(rng, shape, dtype):
    a = _rand(rng, shape, dtype)
    n = shape[-1]
    return (a @ np.conj(np.swapaxes(a, -1, -2)) + n * np.eye(n)).astype(dtype)


def _herm(rng, shape, dtype):
    a = _rand(rng, shape, dtype)
    return ((a + np.conj(np.swapaxes(a, -1, -2))) / 2).astype(dtype)


def _well(rng, shape, dtype):
    """A well-conditioned general matrix."""
    n = shape[-1]
    return (_rand(rng, shape, dtype) + 2 * np.sqrt(n) * np.eye(n)).astype(dtype)


def _mH(x):
    return jnp.conj(jnp.swapaxes(x, -1, -2))


def _eigh_invariants(a):
    w, v = jnp.linalg.eigh(a)
    return w, jnp.abs(v), (v * w[..., None, :].astype(v.dtype)) @ _mH(v)


def _svd_invariants(a):
    u, s, vt = jnp.linalg.svd(a, full_matrices=False)
    return s, jnp.abs(u), jnp.abs(vt), (u * s[..., None, :].astype(u.dtype)) @ vt


def _eig_invariants(a):
    w, v = jnp.linalg.eig(a)
    residual = a.astype(v.dtype) @ v - v * w[..., None, :]
    order = jnp.argsort(jnp.real(w) + 1e-3 * jnp.imag(w), axis=-1)
    return (jnp.take_along_axis(w, order, axis=-1), jnp.abs(residual).max(axis=(-2, -1)),
            jnp.linalg.norm(v, axis=-2))


def _eig_left_invariants(a):
    w, vl, vr = lax.linalg.eig(a, compute_left_eigenvectors=True)
    residual = _mH(vl) @ a.astype(vl.dtype) - w[..., :, None] * _mH(vl)
    # (eigenvalue order may differ between LAPACK builds: only order-free quantities)
    return (jnp.abs(residual).max(axis=(-2, -1)), jnp.linalg.norm(vl, axis=-2),
            jnp.linalg.norm(vr, axis=-2))


def _qr_invariants(a):
    q, r = jnp.linalg.qr(a)
    return q, r, q @ r


def _schur_invariants(a):
    t, z = jsl.schur(a)
    n = a.shape[-1]
    below = jnp.tril(t, -2 if not jnp.iscomplexobj(a) else -1)
    return (z @ t @ _mH(z), _mH(z) @ z - jnp.eye(n), below,
            jnp.sort(jnp.abs(jnp.diagonal(t, axis1=-2, axis2=-1)), axis=-1))


def _grad_loss(fn):
    def loss(*args):
        leaves = jax.tree_util.tree_leaves(fn(*args))
        return sum(jnp.sum(jnp.real(x) * (jnp.arange(x.size).reshape(x.shape) % 7 - 3))
                   + jnp.sum(jnp.imag(x)) for x in leaves
                   if jnp.issubdtype(x.dtype, jnp.inexact))
    return loss


@dataclass
class Case:
    name: str
    fn: Callable[..., Any]
    make: Callable[[np.random.Generator, str], list[np.ndarray]]
    dtypes: tuple[str, ...] = (F32, C64, F64)
    grad: bool = True
    rtol: float = 2e-4
    atol: float = 2e-4
    tags: tuple[str, ...] = field(default_factory=tuple)


def _tri(lower=True, unit=False):
    def make(rng, dtype):
        a = _well(rng, (3, 6, 6), dtype)
        return [np.tril(a) if lower else np.triu(a), _rand(rng, (3, 6, 2), dtype)]
    return make


CASES = [
    Case("cholesky", jnp.linalg.cholesky, lambda r, d: [_spd(r, (2, 5, 5), d)]),
    Case("cholesky_upper", lambda a: lax.linalg.cholesky(a, symmetrize_input=False),
         lambda r, d: [_spd(r, (5, 5), d)], grad=False),
    Case("cholesky_70", jnp.linalg.cholesky, lambda r, d: [_spd(r, (70, 70), d)],
         dtypes=(F32,), grad=False, rtol=1e-3, atol=1e-3),
    Case("triangular_solve_left_lower",
         lambda a, b: lax.linalg.triangular_solve(a, b, left_side=True, lower=True),
         _tri(True)),
    Case("triangular_solve_right_upper_adjoint",
         lambda a, b: lax.linalg.triangular_solve(
             a, jnp.swapaxes(b, -1, -2), left_side=False, lower=False, transpose_a=True,
             conjugate_a=True), _tri(False)),
    Case("triangular_solve_unit_transpose",
         lambda a, b: lax.linalg.triangular_solve(a, b, left_side=True, lower=True,
                                                  transpose_a=True, unit_diagonal=True),
         lambda r, d: [0.2 * _rand(r, (6, 6), d), _rand(r, (6, 3), d)]),
    Case("triangular_solve_blocked_150",
         lambda a, b: lax.linalg.triangular_solve(a, b, left_side=True, lower=False),
         lambda r, d: [np.triu(_well(r, (150, 150), d)), _rand(r, (150, 4), d)],
         dtypes=(F32, C64), grad=False, rtol=1e-3, atol=1e-4),
    Case("solve", jnp.linalg.solve, lambda r, d: [_well(r, (2, 5, 5), d), _rand(r, (2, 5, 3), d)]),
    Case("inv", jnp.linalg.inv, lambda r, d: [_well(r, (4, 4), d)]),
    # (not float64: jnp.linalg.det goes through exp, and MLX's float64 exp is only
    # float32-accurate, a numeric-semantics matter outside linear algebra)
    Case("det", jnp.linalg.det, lambda r, d: [_well(r, (3, 4, 4), d)], dtypes=(F32, C64)),
    Case("slogdet", jnp.linalg.slogdet, lambda r, d: [_well(r, (4, 4), d)]),
    Case("matrix_power", lambda a: jnp.linalg.matrix_power(a, -2),
         lambda r, d: [_well(r, (4, 4), d)]),
    Case("lu", lax.linalg.lu, lambda r, d: [_rand(r, (2, 5, 5), d)]),
    Case("lu_wide", jsl.lu, lambda r, d: [_rand(r, (3, 5), d)]),
    Case("lu_tall", jsl.lu, lambda r, d: [_rand(r, (6, 4), d)]),
    Case("lu_solve", lambda a, b: jsl.lu_solve(jsl.lu_factor(a), b),
         lambda r, d: [_well(r, (4, 4), d), _rand(r, (4, 2), d)]),
    Case("lu_pivots_to_permutation",
         lambda p: lax.linalg.lu_pivots_to_permutation(p, 6),
         lambda r, d: [np.array([[3, 1, 5, 3], [0, 4, 2, 5]], np.int32)],
         dtypes=(F32,), grad=False),
    Case("cho_solve", lambda a, b: jsl.cho_solve(jsl.cho_factor(a), b),
         lambda r, d: [_spd(r, (4, 4), d), _rand(r, (4, 2), d)]),
    Case("solve_triangular", lambda a, b: jsl.solve_triangular(a, b, lower=True, trans=1),
         lambda r, d: [np.tril(_well(r, (4, 4), d)), _rand(r, (4,), d)]),
    Case("qr", _qr_invariants, lambda r, d: [_rand(r, (2, 5, 3), d)]),
    Case("qr_wide", _qr_invariants, lambda r, d: [_rand(r, (3, 5), d)]),
    Case("qr_complete", lambda a: jnp.linalg.qr(a, mode="complete"),
         lambda r, d: [_rand(r, (5, 3), d)]),
    Case("geqrf", lax_linalg.geqrf, lambda r, d: [_rand(r, (2, 5, 4), d)], grad=False),
    Case("householder_product", lax.linalg.householder_product,
         lambda r, d: [_rand(r, (6, 4), d), _rand(r, (3,), d)], grad=False),
    Case("ormqr", lambda a, c: lax_linalg.ormqr(*lax_linalg.geqrf(a), c, left=True,
                                                transpose=True),
         lambda r, d: [_rand(r, (5, 4), d), _rand(r, (5, 2), d)], grad=False),
    Case("qr_pivoting", lambda a: jsl.qr(a, pivoting=True),
         lambda r, d: [_rand(r, (5, 4), d)], grad=False),
    Case("eigh", _eigh_invariants, lambda r, d: [_herm(r, (2, 5, 5), d)], rtol=1e-3,
         atol=1e-3),
    Case("eigvalsh_upper", lambda a: lax.linalg.eigh(a, lower=False,
                                                     symmetrize_input=False)[1],
         lambda r, d: [_herm(r, (5, 5), d)], grad=False),
    Case("svd", _svd_invariants, lambda r, d: [_rand(r, (2, 5, 3), d)], rtol=1e-3,
         atol=1e-3),
    Case("svd_wide_full", lambda a: [jnp.abs(x) for x in jnp.linalg.svd(a)],
         lambda r, d: [_rand(r, (3, 5), d)], grad=False, rtol=1e-3, atol=1e-3),
    Case("svdvals", lambda a: jnp.linalg.svd(a, compute_uv=False),
         lambda r, d: [_rand(r, (4, 6), d)]),
    Case("pinv", jnp.linalg.pinv, lambda r, d: [_rand(r, (4, 6), d)], rtol=1e-3, atol=1e-3),
    Case("lstsq", lambda a, b: jnp.linalg.lstsq(a, b)[0],
         lambda r, d: [_rand(r, (6, 4), d), _rand(r, (6, 2), d)], grad=False, rtol=1e-3,
         atol=1e-3),
    Case("norm_2_nuc", lambda a: (jnp.linalg.norm(a, 2), jnp.linalg.norm(a, "nuc")),
         lambda r, d: [_rand(r, (4, 5), d)]),
    Case("matrix_rank_cond", lambda a: (jnp.linalg.matrix_rank(a), jnp.linalg.cond(a)),
         lambda r, d: [_well(r, (4, 4), d)], grad=False),
    Case("eig", _eig_invariants, lambda r, d: [_rand(r, (2, 4, 4), d)], dtypes=(F32, C64),
         grad=False, rtol=1e-3, atol=1e-3),
    Case("eig_left", _eig_left_invariants, lambda r, d: [_rand(r, (4, 4), d)],
         dtypes=(F32, C64), grad=False, rtol=1e-3, atol=1e-3),
    Case("eigvals_grad", lambda a: jnp.sum(jnp.abs(jnp.linalg.eigvals(a))),
         lambda r, d: [_rand(r, (4, 4), d)], dtypes=(F32,), rtol=1e-3, atol=1e-3),
    Case("schur", _schur_invariants, lambda r, d: [_rand(r, (2, 6, 6), d)], grad=False,
         rtol=1e-3, atol=1e-4),
    Case("sqrtm", jsl.sqrtm, lambda r, d: [_spd(r, (4, 4), d)], dtypes=(F32, C64),
         grad=False, rtol=1e-3, atol=1e-3),
    Case("hessenberg", lax.linalg.hessenberg, lambda r, d: [_rand(r, (2, 5, 5), d)],
         grad=False),
    Case("hessenberg_q", lambda a: jsl.hessenberg(a, calc_q=True),
         lambda r, d: [_rand(r, (5, 5), d)], grad=False),
    Case("tridiagonal_lower", lambda a: lax.linalg.tridiagonal(a, lower=True),
         lambda r, d: [_rand(r, (2, 5, 5), d)], grad=False),
    Case("tridiagonal_upper", lambda a: lax.linalg.tridiagonal(a, lower=False),
         lambda r, d: [_rand(r, (5, 5), d)], grad=False),
    Case("tridiagonal_solve", lax.linalg.tridiagonal_solve,
         lambda r, d: [_rand(r, (2, 6), d), 3 + _rand(r, (2, 6), d).real.astype(d),
                       _rand(r, (2, 6), d), _rand(r, (2, 6, 3), d)]),
    Case("tridiagonal_solve_pivoting", lax.linalg.tridiagonal_solve,
         lambda r, d: [np.array([0, 2, -2, 3], d), np.array([1, 4, 1, -1], d),
                       np.array([2, -1, 1, 0], d), np.array([[1], [2], [3], [4]], d)],
         grad=False),
    Case("expm", jsl.expm, lambda r, d: [_rand(r, (4, 4), d)]),
    Case("polar", lambda a: jsl.polar(a)[0], lambda r, d: [_well(r, (4, 4), d)],
         grad=False, rtol=1e-3, atol=1e-3),
]


# float64 (MLX's CPU stream) for the primitives themselves; compositions of them run in
# float32/complex64 only, to keep the suite's first run (MLX compiles each new fused CPU
# kernel with the C++ compiler) short.
COMPOSITIONS = {"solve", "inv", "det", "slogdet", "matrix_power", "lu_solve", "cho_solve",
                "solve_triangular", "pinv", "lstsq", "norm_2_nuc", "matrix_rank_cond", "expm",
                "polar", "qr_complete", "lu_wide", "svd_wide_full", "eigvalsh_upper",
                "cholesky_upper", "hessenberg_q", "tridiagonal_upper", "ormqr"}


def _params():
    for case in CASES:
        for dtype in case.dtypes:
            if dtype == F64 and case.name in COMPOSITIONS:
                continue
            yield pytest.param(case, dtype, id=f"{case.name}-{dtype}")


def _run(fn, args, device):
    placed = [jax.device_put(a, device) for a in args]
    out = jax.jit(fn)(*placed)
    leaves = jax.tree_util.tree_leaves(out)
    for leaf in leaves:
        assert leaf.devices() == {device}
    return [np.asarray(x) for x in leaves]


def _check(expected, got, rtol, atol, what):
    assert len(expected) == len(got), what
    for i, (e, g) in enumerate(zip(expected, got, strict=True)):
        assert e.shape == g.shape and e.dtype == g.dtype, (what, i, e.shape, g.shape, e.dtype,
                                                           g.dtype)
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=f"{what} result {i}")


def _compare(case: Case, dtype: str, metal, cpu) -> None:
    args = case.make(np.random.default_rng(0), dtype)
    scale = 1e-6 if dtype == F64 else 1.0
    rtol, atol = max(case.rtol * scale, 1e-9), max(case.atol * scale, 1e-9)
    _check(_run(case.fn, args, cpu), _run(case.fn, args, metal), rtol, atol, case.name)
    if case.grad and dtype != F64:
        inexact = tuple(i for i, a in enumerate(args) if a.dtype.kind in "fc")
        grad = jax.grad(_grad_loss(case.fn), argnums=inexact)
        _check(_run(grad, args, cpu), _run(grad, args, metal), max(rtol, 1e-3 * scale),
               max(atol, 1e-3 * scale), f"{case.name} grad")


@pytest.mark.parametrize("case, dtype", list(_params()))
def test_linalg(case: Case, dtype: str, metal, cpu) -> None:
    if dtype == F64:
        with jax.enable_x64(True):
            _compare(case, dtype, metal, cpu)
    else:
        _compare(case, dtype, metal, cpu)


def test_vmap_and_scan(metal, cpu) -> None:
    rng = np.random.default_rng(1)
    a = _spd(rng, (4, 5, 5), F32)
    b = _rand(rng, (4, 5, 2), F32)

    def body(carry, ab):
        a, b = ab
        x = jsl.cho_solve(jsl.cho_factor(a), b + carry)
        w = jnp.linalg.eigvalsh(a)
        q, r = jnp.linalg.qr(a)
        s = jnp.linalg.svd(a, compute_uv=False)
        return carry + 0.1 * x, (x, w, jnp.abs(jnp.diagonal(r)), s)

    def scanned(a, b):
        return lax.scan(body, jnp.zeros((5, 2), a.dtype), (a, b))

    def vmapped(a, b):
        return jax.vmap(lambda a, b: (jnp.linalg.solve(a, b), jnp.linalg.eigh(a)[0],
                                      jnp.linalg.det(a)))(a, b)

    for fn in (scanned, vmapped):
        _check(_run(fn, (a, b), cpu), _run(fn, (a, b), metal), 1e-4, 1e-4, fn.__name__)


def test_loops_of_linalg_are_not_retraced(metal, cpu) -> None:
    """A fori_loop whose body factors a matrix: the body runs many times as one compiled
    function (linalg ops inside mx.compile'd regions)."""
    rng = np.random.default_rng(2)
    a = _spd(rng, (5, 5), F32)

    def fn(a):
        def body(i, x):
            return jnp.linalg.solve(a, x) + jnp.linalg.cholesky(a)[:, :1]
        return lax.fori_loop(0, 8, body, jnp.ones((5, 1), a.dtype))

    _check(_run(fn, (a,), cpu), _run(fn, (a,), metal), 1e-4, 1e-4, "fori_loop")


def test_failures_are_nan_not_errors(metal, cpu) -> None:
    """LAPACK reports failures through info, which JAX's CPU backend turns into NaN; MLX does
    not report them (and geev aborts the process on NaN input), so the same NaN must come
    from our rules."""
    bad = np.array([[1.0, 2.0], [2.0, 1.0]], np.float32)  # not positive definite
    nan = np.array([[np.nan, 1.0], [1.0, 2.0]], np.float32)
    fns = {
        "cholesky": (jnp.linalg.cholesky, bad),
        "eigh": (jnp.linalg.eigh, nan),
        "svd": (jnp.linalg.svd, nan),
        "eig": (jnp.linalg.eig, nan),
        "eigvals": (jnp.linalg.eigvals, nan),
    }
    for name, (fn, a) in fns.items():
        got = _run(fn, (a,), metal)
        for g in got:
            assert np.isnan(g).any(), name  # (LAPACK's eigh returns garbage there, info 0)
    expected = _run(jnp.linalg.cholesky, (bad,), cpu)
    got = _run(jnp.linalg.cholesky, (bad,), metal)
    np.testing.assert_array_equal(np.isnan(got[0]), np.isnan(expected[0]))
    singular = np.array([[1.0, 2.0], [2.0, 4.0]], np.float32)
    got = _run(lambda a, b: lax.linalg.triangular_solve(a, b, left_side=True, lower=True),
               (np.tril(np.zeros((2, 2), np.float32)), np.ones((2, 1), np.float32)), metal)
    assert not np.isfinite(got[0]).any()
    got = _run(jnp.linalg.solve, (singular, np.ones((2, 1), np.float32)), metal)
    assert not np.isfinite(got[0]).all()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_unsupported_dtypes_are_refused_by_name(metal, dtype) -> None:
    # our rule's error, or (jax >= 0.11, which checks qr's dtypes while tracing) JAX's own
    refused = f"(Unsupported dtype|does not accept dtype) {dtype}"
    a = jax.device_put(np.eye(3, dtype=np.float32).astype(dtype), metal)
    with pytest.raises(Exception, match=refused):
        jax.block_until_ready(jax.jit(lambda x: jnp.linalg.qr(x)[1])(a))
    with pytest.raises(Exception, match=refused):
        jax.block_until_ready(jax.jit(lax.linalg.cholesky)(a))


def test_complex128_is_refused_by_name(metal) -> None:
    with jax.enable_x64(True):
        a = np.eye(3, dtype=np.complex128)
        with pytest.raises(Exception, match="complex128"):
            jax.block_until_ready(jax.jit(jnp.linalg.eigh, device=metal)(a))


@pytest.mark.parametrize("shape", [(2, 5000), (4100, 3), (2, 3, 2100)])
@pytest.mark.parametrize("dtype", ["float32", "complex64"])
def test_reduced_svd_of_a_long_matrix(shape, dtype, metal, cpu) -> None:
    """MLX computes both square SVD factors (2 x 400,000 in JAX's own pinv test: 640 GB, and
    MLX's CPU SVD crashed the process); a reduced SVD of a long matrix goes through QR."""
    a = _rand(np.random.default_rng(7), shape, dtype)
    fn = jax.jit(lambda x: jnp.linalg.svd(x, full_matrices=False))
    u, s, vt = (np.asarray(t) for t in fn(jax.device_put(a, metal)))
    k = min(shape[-2:])
    assert u.shape == (*shape[:-1], k) and vt.shape == (*shape[:-2], k, shape[-1])
    np.testing.assert_allclose(s, np.asarray(fn(jax.device_put(a, cpu))[1]), rtol=1e-4)
    np.testing.assert_allclose((u * s[..., None, :]) @ vt, a, atol=1e-4)
    np.testing.assert_allclose(_mH(u) @ u, np.broadcast_to(np.eye(k), (*shape[:-2], k, k)),
                               atol=1e-5)
    np.testing.assert_allclose(_run(jnp.linalg.pinv, [a], metal), _run(jnp.linalg.pinv, [a], cpu),
                               rtol=1e-3, atol=1e-5)


def test_complex_nan_constant_in_a_fused_kernel(metal, cpu) -> None:
    """MLX's fused CPU kernels print one-element constants as C++ literals, and a complex
    NaN/infinity as one that does not compile (JAX's hermitian pinv holds such a constant)."""
    def f(x):
        return jnp.where(jnp.abs(x) > 2, x, jnp.complex64(complex(np.nan, 0.0))) + 1

    x = np.array([1 + 1j, 3 + 0j], np.complex64)
    np.testing.assert_array_equal(_run(f, [x], metal), _run(f, [x], cpu))
