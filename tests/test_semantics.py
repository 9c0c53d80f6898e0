"""Op semantics at the edges, through the plugin, against JAX's CPU backend: convolutions of
every element type and shape class (no spatial dims, integers exact, complex, batch groups,
dilations, 3-D), float remainder by zero, empty FFTs, narrow random bits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from tests.op_table import Case, check, np_dtype, tolerance


def _run(fn, args, device):
    placed = [jax.device_put(a, device) for a in args]
    out = jax.jit(fn)(*placed)
    return [np.asarray(o) for o in jax.tree_util.tree_leaves(out)]


def _same(fn, args, metal, cpu, dtype="float32", tol=None):
    expected = _run(fn, args, cpu)
    got = _run(fn, args, metal)
    assert len(got) == len(expected)
    tol = tol or tolerance(Case("x", fn, lambda r, d: ()), dtype)
    for e, g in zip(expected, got, strict=True):
        check(e, g, tol, f"{dtype}")
        if e.dtype.kind == "c":  # numpy counts inf + nan j as nan: compare the parts too
            check(e.real, g.real, tol, f"{dtype} real part")
            check(e.imag, g.imag, tol, f"{dtype} imaginary part")


def _values(rng, shape, dtype):
    dt = np_dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(dt)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
    if dt.kind == "c":
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dt)
    return rng.normal(size=shape).astype(dt)


CONV_DTYPES = ["float32", "float16", "int8", "int32", "uint16", "uint32", "bool", "complex64"]


@pytest.mark.parametrize("dtype", CONV_DTYPES)
def test_conv_2d_each_dtype(dtype, metal, cpu):
    # full-range integers: the exact result wraps, a float convolution would not
    rng = np.random.default_rng(0)
    x, w = _values(rng, (2, 3, 6, 5), dtype), _values(rng, (4, 3, 3, 2), dtype)
    fn = lambda x, w: lax.conv_general_dilated(x, w, (2, 1), [(1, 0), (0, 2)],
                                               rhs_dilation=(1, 2))
    _same(fn, (x, w), metal, cpu, dtype)


@pytest.mark.parametrize("dtype", ["float32", "int32", "complex64"])
def test_conv_no_spatial_dims(dtype, metal, cpu):
    rng = np.random.default_rng(1)
    x, w = _values(rng, (3, 4), dtype), _values(rng, (5, 4), dtype)
    fn = lambda x, w: lax.conv_general_dilated(x, w, (), [], dimension_numbers=("NC", "OI", "NC"))
    _same(fn, (x, w), metal, cpu, dtype)


def test_conv_no_spatial_dims_grad(metal, cpu):
    rng = np.random.default_rng(2)
    x, w = _values(rng, (3, 4), "float32"), _values(rng, (5, 4), "float32")
    conv = lambda x, w: lax.conv_general_dilated(x, w, (), [],
                                                 dimension_numbers=("NC", "OI", "NC"))
    fn = jax.grad(lambda x, w: jnp.sum(jnp.sin(conv(x, w))), argnums=(0, 1))
    _same(fn, (x, w), metal, cpu, tol=(1e-4, 1e-5))


@pytest.mark.parametrize("dtype", ["float32", "int16", "complex64"])
def test_conv_lhs_dilation_groups_negative_padding(dtype, metal, cpu):
    rng = np.random.default_rng(3)
    x, w = _values(rng, (2, 4, 7), dtype), _values(rng, (6, 2, 3), dtype)
    fn = lambda x, w: lax.conv_general_dilated(x, w, (1,), [(-1, 2)], lhs_dilation=(2,),
                                               feature_group_count=2)
    _same(fn, (x, w), metal, cpu, dtype)


@pytest.mark.parametrize("dtype", ["float32", "int32", "complex64"])
def test_conv_batch_group_count(dtype, metal, cpu):
    rng = np.random.default_rng(4)
    x, w = _values(rng, (4, 3, 5), dtype), _values(rng, (6, 3, 2), dtype)
    fn = lambda x, w: lax.conv_general_dilated(x, w, (1,), "VALID", batch_group_count=2)
    _same(fn, (x, w), metal, cpu, dtype)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_conv_3d(dtype, metal, cpu):
    rng = np.random.default_rng(5)
    x, w = _values(rng, (1, 2, 4, 5, 3), dtype), _values(rng, (3, 2, 2, 3, 2), dtype)
    fn = lambda x, w: lax.conv_general_dilated(x, w, (1, 2, 1), "SAME")
    _same(fn, (x, w), metal, cpu, dtype)


def test_conv_complex_grad(metal, cpu):
    rng = np.random.default_rng(6)
    x, w = _values(rng, (1, 2, 5), "complex64"), _values(rng, (3, 2, 2), "complex64")
    conv = lambda x, w: lax.conv_general_dilated(x, w, (1,), "SAME")
    fn = jax.grad(lambda x, w: jnp.sum(jnp.abs(conv(x, w)) ** 2), argnums=(0, 1))
    _same(fn, (x, w), metal, cpu, "complex64", tol=(1e-4, 1e-4))


def test_float_remainder_special_values(metal, cpu):
    # C fmod: x % 0 and x % nan are nan for every x, zeros included; the sign is x's
    v = np.array([0, -0.0, 1.5, -1.5, 7, -7, np.inf, -np.inf, np.nan, 1e30, -1e-30], np.float32)
    x, y = (a.ravel() for a in np.meshgrid(v, v))
    _same(lax.rem, (x, y), metal, cpu)
    _same(lambda x, y: jnp.divmod(x, y), (x, y), metal, cpu)
    x16 = np.array([0, -0.0, 1.5, -7, np.inf, np.nan], np.float16)
    _same(lax.rem, (x16, np.zeros_like(x16)), metal, cpu, "float16")


@pytest.mark.parametrize("shape,fn", [((0,), jnp.fft.fft), ((3, 0), jnp.fft.fft),
                                      ((0, 4), jnp.fft.ifft), ((0, 6), jnp.fft.rfft)])
def test_fft_of_nothing(shape, fn, metal, cpu):
    x = np.zeros(shape, np.float32 if fn is jnp.fft.rfft else np.complex64)
    _same(fn, (x,), metal, cpu, "complex64")


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64"])
def test_rng_bit_generator_widths(dtype, metal, cpu):
    with jax.enable_x64(True):
        key = np.array([0x1234567890ABCDEF, 5], np.uint64)
        fn = lambda k: lax.rng_bit_generator(k, (3, 5), dtype=np_dtype(dtype),
                                             algorithm=lax.RandomAlgorithm.RNG_PHILOX)
        _same(fn, (key,), metal, cpu, dtype)


# Shapes that take each layout of XLA's Threefry: a scalar, an even axis first, no even axis
# (the longest is halved), an empty one, and trivial axes.
@pytest.mark.parametrize("shape", [(), (5,), (5, 7), (6, 5), (3, 0), (2, 3, 4), (1, 1, 3)])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64"])
def test_rng_bit_generator_threefry_bit_for_bit(shape, dtype, metal, cpu):
    with jax.enable_x64(True):
        key = np.array([0x1234567890ABCDEF, 2**64 - 3], np.uint64)  # the counter wraps
        fn = lambda k: lax.rng_bit_generator(k, shape, dtype=np_dtype(dtype),
                                             algorithm=lax.RandomAlgorithm.RNG_THREE_FRY)
        for want, got in zip(_run(fn, (key,), cpu), _run(fn, (key,), metal), strict=True):
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


_INF = np.inf
_EDGE = np.array([complex(-_INF, 0), complex(-_INF, _INF), complex(-_INF, -_INF),
                  complex(_INF, 2), complex(1.7e23, 0), complex(88.5, 0), complex(0.5, -1.5),
                  complex(0, _INF), complex(-3, 0), complex(_INF, -_INF), complex(88.7, 0),
                  complex(-_INF, 1)], np.complex64)


@pytest.mark.parametrize("name", ["sign", "cosh", "sinh", "tan", "expm1", "conjugate",
                                  "arcsin", "arccos", "sqrt", "square", "exp"])
def test_complex_functions_at_infinities(name, metal, cpu):
    # JAX builds several of these from parts (lax.complex), where 1j * inf must not be nan
    # tiled: MLX's CPU kernels take another (vector) path on longer arrays
    _same(getattr(jnp, name), (np.tile(_EDGE, 8),), metal, cpu, "complex64")


def test_complex_from_infinite_parts(metal, cpu):
    re = np.array([_INF, -_INF, np.nan, 0, 1], np.float32)
    im = np.array([_INF, 0, 1, -_INF, np.nan], np.float32)
    _same(lax.complex, (re, im), metal, cpu, "complex64")



def test_collectives_over_one_device(metal, cpu):
    # pmap over one device: psum, pmax, all_gather, psum_scatter and axis_index have one
    # participant each
    def body(z):
        return (lax.psum(jnp.sin(z), "i"), lax.pmax(z, "i"), lax.all_gather(z, "i"),
                lax.psum_scatter(z, "i", tiled=True), lax.axis_index("i"))

    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    expected = jax.pmap(body, axis_name="i", devices=[cpu])(x)
    got = jax.pmap(body, axis_name="i", devices=[metal])(x)
    for e, g in zip(jax.tree_util.tree_leaves(expected), jax.tree_util.tree_leaves(got),
                    strict=True):
        check(np.asarray(e), np.asarray(g), (1e-6, 1e-6), "pmap")


def test_composite_with_a_dtype_attribute(metal, cpu):
    def fn(x):
        return lax.composite(lambda x, **_: lax.sin(x) / lax.cos(x), "my.tangent")(
            x, dtype=np.dtype(np.float32), int=1, str="bar")

    _same(fn, (np.array([0.0, 0.7, 2.0], np.float32),), metal, cpu)


def test_dce_sink(metal, cpu):
    def fn(x):
        lax.dce_sink(x + 1, prevent_mlir_dce=True)
        return x * 2

    _same(fn, (np.array([1.0, 2.0], np.float32),), metal, cpu)


@pytest.mark.parametrize("axis", [None, 1])
def test_long_float32_sums_are_accurate(metal, axis) -> None:
    # MLX's CPU sum adds in order; a million float32 values summed that way were off by 8e-6
    # (relative) against float64, XLA:CPU by 4e-8. Blocked sums keep us within 2e-6.
    x = np.random.default_rng(0).random((8, 1 << 17), dtype=np.float32)
    got = np.asarray(jax.jit(lambda a: a.sum(axis=axis))(jax.device_put(x, metal)))
    want = x.astype(np.float64).sum(axis=axis)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-6)


def _signs(fn, args, metal, cpu) -> None:
    """Values and the sign of every zero (np.signbit) equal on 'metal' and XLA:CPU."""
    for e, g in zip(_run(fn, args, cpu), _run(fn, args, metal), strict=True):
        parts = [(e.real, g.real), (e.imag, g.imag)] if e.dtype.kind == "c" else [(e, g)]
        for ep, gp in parts:
            ep, gp = ep.astype(np.float32), gp.astype(np.float32)
            np.testing.assert_array_equal(gp, ep)
            np.testing.assert_array_equal(np.signbit(gp), np.signbit(ep))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "complex64"])
def test_negative_zero_constants(dtype, metal, cpu):
    # mx.compile writes a one-element -0.0 into its kernels as the integer -0, i.e. +0.0
    dt = np_dtype(dtype)
    zero = np.array(complex(-0.0, -0.0) if dt.kind == "c" else -0.0).astype(dt)
    x = np.array([-1.0, 2.0, -0.0, 0.0]).astype(dt)
    _signs(lambda x: jnp.where(x.real > 0, x, zero), (x,), metal, cpu)
    _signs(lambda x: x + zero, (x,), metal, cpu)


@pytest.mark.parametrize("mode", ["rows", "elements"])
def test_dropped_scatter_add_keeps_negative_zeros(mode, metal, cpu):
    # an out-of-range update is dropped: the slot its clamped index names is left as it is
    x = np.full((5, 2), -0.0, np.float32)
    i = np.array([7, -9, 1], np.int32)
    if mode == "rows":
        fn = lambda x, i, u: x.at[i].add(u, mode="drop")
        u = np.ones((3, 2), np.float32)
    else:
        fn = lambda x, i, u: x.at[i, 1].add(u, mode="drop")
        u = np.ones((3,), np.float32)
    _signs(fn, (x, i, u), metal, cpu)


def test_narrow_indices_into_a_long_operand(metal, cpu):
    # int8 indices where the operand is longer than int8 reaches: nothing to clamp from above
    x = np.arange(600, dtype=np.float32).reshape(300, 2)
    i = np.array([5, -3, 127, -128], np.int8)
    rows = lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(0,),
                                      start_index_map=(0,))
    elems = lax.GatherDimensionNumbers(offset_dims=(), collapsed_slice_dims=(0, 1),
                                       start_index_map=(0,))
    _signs(lambda x, i: lax.gather(x, i[:, None], rows, (1, 2), mode="clip"), (x, i), metal,
           cpu)
    _signs(lambda x, i: lax.gather(x, i[:, None], elems, (1, 1), mode="clip"), (x, i), metal,
           cpu)
    scatter = lax.ScatterDimensionNumbers(update_window_dims=(1,), inserted_window_dims=(0,),
                                          scatter_dims_to_operand_dims=(0,))
    u = np.ones((4, 2), np.float32)
    _signs(lambda x, i, u: lax.scatter_add(x, i[:, None], u, scatter, mode="drop"), (x, i, u),
           metal, cpu)
    _signs(lambda x, i, u: lax.scatter_max(x.astype(np.int32), i[:, None],
                                           u.astype(np.int32) * 1000, scatter, mode="drop"),
           (x, i, u), metal, cpu)
