"""Op semantics at the edges, through the plugin, against JAX's CPU backend: convolutions of
every element type and shape class (no spatial dims, integers exact, complex, batch groups,
dilations, 3-D), float remainder by zero, empty FFTs, narrow random bits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from tests.op_table import check, np_dtype, tolerance, Case


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
