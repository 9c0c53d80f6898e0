"""complex128 (emulated as float64 pairs: compiler/complex128.py) against JAX's CPU backend:
values and gradients of every op we emulate, to float64 accuracy, transfers bit-exact, control
flow carrying complex values, and ops we cannot run refused by name."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

RTOL, ATOL = 2e-14, 1e-15  # float64 accuracy (a few ulps, plus ~1 ulp near zeros)


def _z(shape=(2, 3), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-2, 2, shape) + 1j * rng.uniform(-2, 2, shape)).astype(np.complex128)


def _w(shape=(2, 3)) -> np.ndarray:
    return _z(shape, seed=1)


def _both(f, *args, metal, cpu):
    with jax.enable_x64(True):
        got = jax.jit(f)(*[jax.device_put(a, metal) for a in args])
        want = jax.jit(f)(*[jax.device_put(a, cpu) for a in args])
        return jax.tree.map(np.asarray, got), jax.tree.map(np.asarray, want)


def _check(got, want) -> None:
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)


UNARY = {
    "neg": lambda z: -z, "exp": jnp.exp, "log": jnp.log, "log1p": jnp.log1p,
    "expm1": jnp.expm1, "sqrt": jnp.sqrt, "rsqrt": lax.rsqrt, "sin": jnp.sin, "cos": jnp.cos,
    "tan": jnp.tan, "tanh": jnp.tanh, "sinh": jnp.sinh, "cosh": jnp.cosh, "abs": jnp.abs,
    "sign": jnp.sign, "real": jnp.real, "imag": jnp.imag, "conj": jnp.conj,
    "square": jnp.square, "reciprocal": jnp.reciprocal, "angle": jnp.angle,
    "sum": jnp.sum, "sum_axis": lambda z: jnp.sum(z, axis=1), "mean": jnp.mean,
    "cumsum": lambda z: jnp.cumsum(z, axis=1), "prod": jnp.prod,
    "prod_axis": lambda z: jnp.prod(z, axis=0), "prod_none": lambda z: jnp.prod(z[:, :0], axis=1),
    "prod_of_empty_rows": lambda z: jnp.prod(z[:0], axis=1),
    "transpose": lambda z: z.T, "reshape": lambda z: z.reshape(3, 2),
    "broadcast": lambda z: jnp.broadcast_to(z, (4, 2, 3)), "slice": lambda z: z[:, 1:],
    "reverse": lambda z: z[:, ::-1], "pad": lambda z: jnp.pad(z, 1, constant_values=1 - 2j),
    "concat": lambda z: jnp.concatenate([z, 2 * z], axis=1),
    "gather": lambda z: z[jnp.array([1, 0, 1])],
    "dynamic_slice": lambda z: lax.dynamic_slice(z, (1, 1), (1, 2)),
    "update_slice": lambda z: lax.dynamic_update_slice(z, jnp.full((1, 2), 3j, z.dtype), (1, 0)),
    "scatter_add": lambda z: jnp.zeros(4, z.dtype).at[jnp.array([0, 2, 0])].add(z[0]),
    "scatter_set": lambda z: jnp.zeros(4, z.dtype).at[jnp.array([0, 2, 3])].set(z[1]),
    "where": lambda z: jnp.where(z.real > 0, z, -1j),
    "to_complex64": lambda z: z.astype(jnp.complex64).astype(jnp.complex128),
    "to_float64": lambda z: lax.convert_element_type(z, jnp.float64),
    "to_int32": lambda z: lax.convert_element_type(z * 10, jnp.int32),
    "to_float32": lambda z: lax.convert_element_type(z, jnp.float32),
    "eq": lambda z: z == jnp.where(z.real > 0, z, 0), "ne": lambda z: z != z[::-1],
    "matmul": lambda z: z @ z.T, "vecdot": lambda z: jnp.vdot(z, z),
    "while": lambda z: lax.fori_loop(0, 3, lambda i, c: c * (0.5 + 0.5j) + 1, z),
    "iota": lambda z: z + lax.broadcasted_iota(jnp.complex128, z.shape, 1),
    "cond": lambda z: lax.cond(z[0, 0].real > 0, lambda c: c * 1j, lambda c: c - 1, z),
}
BINARY = {
    "add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "div": jnp.divide,
    "pow": jnp.power, "complex": lambda x, y: lax.complex(x.real, y.imag),
    "mixed_dot": lambda x, y: x @ y.real.T, "real_by_complex": lambda x, y: x.real * y,
    "conv": lambda x, y: lax.conv(x[None, None], y[None, None, :, :2], (1, 1), "SAME"),
    "conv_dilated": lambda x, y: lax.conv_general_dilated(
        x[None, None], y[None, None, :, :2], (1, 2), ((1, 0), (0, 2)), lhs_dilation=(2, 1),
        rhs_dilation=(1, 2)),
}


@pytest.mark.parametrize("name", UNARY)
def test_unary_value(name, metal, cpu) -> None:
    _check(*_both(UNARY[name], _z(), metal=metal, cpu=cpu))


@pytest.mark.parametrize("name", BINARY)
def test_binary_value(name, metal, cpu) -> None:
    _check(*_both(BINARY[name], _z(), _w(), metal=metal, cpu=cpu))


NOT_DIFFERENTIABLE = {"eq", "ne", "to_int32", "sign", "to_float32"}


@pytest.mark.parametrize("name", [n for n in UNARY if n not in NOT_DIFFERENTIABLE])
def test_unary_gradient(name, metal, cpu) -> None:
    f = UNARY[name]

    def loss(z):
        return jnp.sum(jnp.real(f(z) * jnp.conj(f(z))))  # a real function of the result
    _check(*_both(jax.grad(loss), _z(), metal=metal, cpu=cpu))


@pytest.mark.parametrize("name", ["mul", "div", "pow", "add", "conv", "conv_dilated"])
def test_binary_gradient(name, metal, cpu) -> None:
    f = BINARY[name]

    def loss(x, y):
        return jnp.sum(jnp.abs(f(x, y)) ** 2)
    _check(*_both(jax.grad(loss, argnums=(0, 1)), _z(), _w(), metal=metal, cpu=cpu))


def test_wide_arguments_stay_float64_accurate(metal, cpu) -> None:
    # MLX's own float64 exp/sin/cos are float32-accurate: these go through float64_math
    rng = np.random.default_rng(3)
    z = (rng.uniform(-30, 30, 200) + 1j * rng.uniform(-30, 30, 200)).astype(np.complex128)
    for f in (jnp.exp, jnp.sin, jnp.cos, jnp.log, jnp.sqrt, jnp.tanh):
        got, want = _both(f, z, metal=metal, cpu=cpu)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)


@pytest.mark.parametrize("f", [jnp.exp, jnp.sin, jnp.cos, jax.nn.sigmoid])
def test_float64_exp_sin_cos_are_float64_accurate(f, metal, cpu) -> None:
    x = np.concatenate([np.linspace(-40, 40, 4001), [0.0, -0.0, 1e-300, -720.0, 1e6]])
    got, want = _both(f, x, metal=metal, cpu=cpu)
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=3e-16)


def test_transfers_are_bit_exact(metal) -> None:
    z = _z((3, 4))
    z[0, 0] = complex(np.nan, -0.0)
    z[0, 1] = complex(np.inf, -np.inf)
    z[1, :] = np.array([5e-324, -0.0, 1e308, -1e-308]) * (1 + 1j)
    with jax.enable_x64(True):
        for host in (z, z[0, 1], z.T, np.zeros((0, 3), np.complex128)):
            back = np.asarray(jax.device_put(host, metal))
            assert back.dtype == np.complex128 and back.shape == host.shape
            assert back.tobytes() == np.ascontiguousarray(host).tobytes()
        through = np.asarray(jax.jit(lambda a: a)(jax.device_put(z, metal)))
        assert through.tobytes() == z.tobytes()


def test_literals_and_constants(metal) -> None:
    with jax.enable_x64(True):
        x = jnp.array(1j, dtype=jnp.complex128, device=metal)
        assert x.dtype == jnp.complex128 and complex(x) == 1j
        y = jax.jit(lambda a: a + jnp.array([1 + 2j, 3 - 4j], jnp.complex128))(x)
        np.testing.assert_array_equal(np.asarray(y), [1 + 3j, 3 - 3j])


def test_ops_we_cannot_run_are_refused_by_name(metal) -> None:
    with jax.enable_x64(True):
        z = jax.device_put(_z(), metal)
        for f in (jnp.sort, lambda a: jnp.cumprod(a, axis=1),
                  lambda a: jnp.linalg.eigh(a[:, :2])):
            with pytest.raises(jax.errors.JaxRuntimeError, match="complex128 is not supported"):
                jax.jit(f)(z).block_until_ready()


# FFT lengths that take each path of lowering/fft_float64.py: one DFT product (<= 64), the
# four-step split (composite), Bluestein's chirp (a prime over 64), and the split over primes.
FFT_LENGTHS = [1, 2, 7, 64, 100, 128, 97, 1031, 2 * 67]
FFT_RTOL = 1e-13  # relative to the largest magnitude of the transform: rounding grows with n


def _spectrum_close(got, want) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
    np.testing.assert_allclose(got, want, rtol=0, atol=FFT_RTOL * scale)


@pytest.mark.parametrize("n", FFT_LENGTHS)
@pytest.mark.parametrize("kind", ["fft", "ifft", "rfft", "irfft"])
def test_fft_value(kind, n, metal, cpu) -> None:
    z = _z((3, n))
    f, arg = {"fft": (jnp.fft.fft, z), "ifft": (jnp.fft.ifft, z),
              "rfft": (jnp.fft.rfft, z.real),
              "irfft": (lambda a: jnp.fft.irfft(a, n=n), np.fft.rfft(z.real))}[kind]
    _spectrum_close(*_both(f, arg, metal=metal, cpu=cpu))


@pytest.mark.parametrize("f,shape,real", [
    (jnp.fft.fft2, (2, 6, 70), False), (jnp.fft.ifftn, (5, 4, 3), False),
    (jnp.fft.rfftn, (4, 6, 10), True), (lambda a: jnp.fft.irfftn(a, s=(6, 10)), (6, 6), False),
    (lambda a: jnp.fft.fft(a, axis=0), (67, 3), False), (jnp.fft.fft, (0, 8), False)])
def test_fft_over_several_axes(f, shape, real, metal, cpu) -> None:
    z = _z(shape)
    _spectrum_close(*_both(f, z.real if real else z, metal=metal, cpu=cpu))


@pytest.mark.parametrize("kind", ["fft", "rfft", "irfft"])
def test_fft_gradient(kind, metal, cpu) -> None:
    f = {"fft": jnp.fft.fft, "rfft": jnp.fft.rfft, "irfft": lambda a: jnp.fft.irfft(a, n=130)}
    weights = np.linspace(0.5, 2.0, 130)

    def loss(a):
        y = f[kind](a)
        return jnp.sum(jnp.abs(y) ** 2 * weights[:y.shape[-1]])
    arg = {"fft": _z((2, 97)), "rfft": _z((2, 130)).real, "irfft": _z((2, 66))}[kind]
    _spectrum_close(*_both(jax.grad(loss), arg, metal=metal, cpu=cpu))


def _hermitian_positive_definite(n: int, batch=(2,)) -> np.ndarray:
    m = _z((*batch, n, n))
    return m @ np.conj(np.swapaxes(m, -1, -2)) + n * np.eye(n)


# 3: one block of lowering/linalg.py's blocked substitution; 70: more than one (of 64 rows).
@pytest.mark.parametrize("n", [3, 70])
def test_cholesky_and_cho_solve(n, metal, cpu) -> None:
    a, b = _hermitian_positive_definite(n), _z((2, n, 3), seed=2)
    _spectrum_close(*_both(jnp.linalg.cholesky, a, metal=metal, cpu=cpu))
    _spectrum_close(*_both(lambda a, b: jax.scipy.linalg.cho_solve(
        jax.scipy.linalg.cho_factor(a), b), a, b, metal=metal, cpu=cpu))


def test_cholesky_of_a_matrix_not_positive_definite_is_nan(metal, cpu) -> None:
    a = np.stack([-np.eye(3), np.eye(3)]).astype(np.complex128)
    got, want = _both(jnp.linalg.cholesky, a, metal=metal, cpu=cpu)
    np.testing.assert_array_equal(got, want)  # NaN where CPU has NaN, the identity factored


@pytest.mark.parametrize("left_side", [True, False])
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("transpose_a,conjugate_a", [(False, False), (True, False),
                                                     (True, True), (False, True)])
@pytest.mark.parametrize("unit_diagonal", [False, True])
def test_triangular_solve(left_side, lower, transpose_a, conjugate_a, unit_diagonal, metal,
                          cpu) -> None:
    n = 70
    t = np.tril(_z((2, n, n))) + 4 * np.eye(n)
    a = t if lower else np.swapaxes(t, -1, -2)
    b = _z((2, n, 3) if left_side else (2, 3, n), seed=2)

    def solve(a, b):
        return lax.linalg.triangular_solve(a, b, left_side=left_side, lower=lower,
                                           transpose_a=transpose_a, conjugate_a=conjugate_a,
                                           unit_diagonal=unit_diagonal)
    _spectrum_close(*_both(solve, a, b, metal=metal, cpu=cpu))


def test_cholesky_and_triangular_solve_gradients(metal, cpu) -> None:
    def loss(m, b):
        a = m @ jnp.conj(m.T) + 6 * jnp.eye(6)
        x = jax.scipy.linalg.solve_triangular(jnp.linalg.cholesky(a), b, lower=True)
        return jnp.sum(jnp.abs(x) ** 2)
    got, want = _both(jax.grad(loss, argnums=(0, 1)), _z((6, 6)), _z((6, 2), seed=2),
                      metal=metal, cpu=cpu)
    for g, w in zip(got, want, strict=True):
        _spectrum_close(g, w)


@pytest.mark.parametrize("name", ["solve", "inv", "det", "slogdet"])
def test_solve_inverse_determinant(name, metal, cpu) -> None:
    # JAX's own LU on 'metal' (triangular solves, products and dots, all emulated here)
    f = {"solve": jnp.linalg.solve, "inv": lambda a, b: jnp.linalg.inv(a) @ b,
         "det": lambda a, b: jnp.linalg.det(a), "slogdet": lambda a, b: jnp.linalg.slogdet(a)}
    got, want = _both(f[name], _z((2, 40, 40)), _z((2, 40, 3), seed=2), metal=metal, cpu=cpu)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        _spectrum_close(g, w)
