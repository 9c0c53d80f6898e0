"""Emulated types (float8, float4, int4, uint4, int2, uint2) through the plugin, bit for bit
against JAX's CPU backend: transfers, converts, arithmetic, comparisons, reductions, dot,
bitcasts, loops. Inputs cover every bit pattern of each type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from jax import lax

FLOAT8 = ["float8_e4m3fn", "float8_e5m2", "float8_e4m3b11fnuz", "float8_e4m3fnuz",
          "float8_e5m2fnuz", "float8_e4m3", "float8_e3m4", "float8_e8m0fnu"]
FLOATS = [*FLOAT8, "float4_e2m1fn"]
INTS = ["int4", "uint4", "int2", "uint2"]
ALL = FLOATS + INTS
BITS = {"float4_e2m1fn": 4, "int4": 4, "uint4": 4, "int2": 2, "uint2": 2}


def dtype(name: str) -> np.dtype:
    return np.dtype(getattr(ml_dtypes, name, name))


def every_value(name: str) -> np.ndarray:
    """Every bit pattern of the type, one per element."""
    return np.arange(1 << BITS.get(name, 8), dtype=np.uint8).view(dtype(name))


def pairs(name: str) -> tuple[np.ndarray, np.ndarray]:
    v = every_value(name)
    return np.repeat(v, v.size), np.tile(v, v.size)


def on(device: jax.Device, fn: Callable[..., Any], *args: np.ndarray) -> list[np.ndarray]:
    out = jax.jit(fn)(*[jax.device_put(a, device) for a in args])
    return [np.asarray(o) for o in (out if isinstance(out, tuple | list) else [out])]


def bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.dtype(f"uint{a.dtype.itemsize * 8}")) if a.dtype.kind != "b" else a


def assert_same(got: np.ndarray, want: np.ndarray, nan_bits: bool = True) -> None:
    """Shape, dtype, then every bit. nan_bits=False: where CPU has a NaN, ours must be a NaN,
    of any sign and payload (those come from the hardware's arithmetic, not from the type)."""
    assert got.shape == want.shape
    assert got.dtype == want.dtype
    if not nan_bits and want.dtype.kind not in "biu" and want.dtype.name not in INTS:
        nan = np.isnan(want.astype(np.float32))
        np.testing.assert_array_equal(np.isnan(got.astype(np.float32)), nan)
        got, want = got[~nan], want[~nan]
    bad = np.nonzero(bits(got).ravel() != bits(want).ravel())[0]
    assert bad.size == 0, (f"{bad.size} of {want.size} differ; first at {bad[:8]}: "
                           f"got {got.ravel()[bad[:8]]}, want {want.ravel()[bad[:8]]}")


def compare(metal: jax.Device, cpu: jax.Device, fn: Callable[..., Any], *args: np.ndarray,
            nan_bits: bool = True) -> None:
    for g, w in zip(on(metal, fn, *args), on(cpu, fn, *args), strict=True):
        assert_same(g, w, nan_bits)


# ---------------------------------------------------------------------------- storage


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(), (0,), (3, 5)])
def test_host_round_trip_keeps_every_bit(metal: jax.Device, name: str, shape) -> None:
    values = every_value(name)
    host = np.resize(values, shape) if shape != (3, 5) else np.resize(values[::-1], shape)
    back = np.asarray(jax.device_put(host, metal))
    assert_same(back, host)
    assert_same(np.asarray(jax.device_put(values, metal)), values)


@pytest.mark.parametrize("name", ALL)
def test_moves_keep_every_bit(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    def moves(a):
        m = a.reshape(-1, 2 if a.size % 2 == 0 else 1)
        return (a, a[::-1], m.T, jnp.concatenate([a, a[:3]]), jnp.where(a == a, a, a[0]),
                jnp.broadcast_to(a[:2], (3, 2)), a[jnp.array([2, 0, 1])])

    compare(metal, cpu, moves, every_value(name))


# ---------------------------------------------------------------------------- convert


def float32_probes(name: str) -> np.ndarray:
    """Each value of the type, the midpoints between neighbours (ties), one float32 and one
    float16 step either side of them, overflow, tiny values, infinities and NaNs."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _float32_probes(name)


def _float32_probes(name: str) -> np.ndarray:
    grid = np.unique(every_value(name).astype(np.float32))
    grid = grid[np.isfinite(grid)]
    mids = ((grid[:-1].astype(np.float64) + grid[1:]) / 2).astype(np.float32)
    near = [np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf))]
    m16 = mids.astype(np.float16)
    near += [np.nextafter(m16, np.float16(np.inf)).astype(np.float32),
             np.nextafter(m16, np.float16(-np.inf)).astype(np.float32)]
    top = grid.max()
    special = np.array([top * 1.01, top * 1.5, top * 2, top * 4, 1e30, 3e38, np.inf, 1e-30,
                        1e-40, 1e-45, 0.0, 2.0 ** -127, 1.4 * 2.0 ** -127, 2.0 ** -128],
                       np.float32)
    nans = np.array([0x7FC00000, 0x7F800001, 0x7FFFFFFF, 0x7FE00000], np.uint32)
    x = np.concatenate([grid, mids, *near, special])
    x = np.concatenate([x, -x, nans.view(np.float32), (nans | 0x80000000).view(np.float32)])
    return x.astype(np.float32)


@pytest.mark.parametrize("name", FLOATS)
def test_convert_from_float32(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    compare(metal, cpu, lambda x: x.astype(dtype(name)), float32_probes(name))


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("source", ["float16", "bfloat16"])
def test_convert_from_every_16_bit_float(metal: jax.Device, cpu: jax.Device, name: str,
                                         source: str) -> None:
    x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype(source))
    compare(metal, cpu, lambda a: a.astype(dtype(name)), x)


@pytest.mark.parametrize("name", FLOATS)
def test_convert_from_float64_rounds_once(metal: jax.Device, cpu: jax.Device,
                                          name: str) -> None:
    with np.errstate(invalid="ignore"):
        x = float32_probes(name).astype(np.float64)
    grid = every_value(name).astype(np.float64)
    grid = np.unique(grid[np.isfinite(grid)])
    mids = (grid[:-1] + grid[1:]) / 2
    x = np.concatenate([x, mids * (1 + 2.0 ** -40), mids * (1 - 2.0 ** -40)])
    with jax.enable_x64(True):
        compare(metal, cpu, lambda a: a.astype(dtype(name)), x)


@pytest.mark.parametrize("name", FLOATS)
def test_convert_from_integers(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    ints = np.concatenate([np.arange(-70000, 70000, 7), [2 ** 30 + 1, -(2 ** 31)]])
    compare(metal, cpu, lambda a: a.astype(dtype(name)), ints.astype(np.int32))
    compare(metal, cpu, lambda a: a.astype(dtype(name)), np.array([True, False]))


@pytest.mark.parametrize("name", FLOATS)
def test_convert_to_other_types(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    v = every_value(name)
    floats = [np.float32, np.float16, ml_dtypes.bfloat16, np.bool_]
    compare(metal, cpu, lambda a: tuple(a.astype(t) for t in floats), v, nan_bits=False)
    if name == "float4_e2m1fn":  # +-6.0: see the test below
        v = v[np.abs(v.astype(np.float32)) != 6]
    compare(metal, cpu, lambda a: (a.astype(np.int32), a.astype(np.uint8)), v)


def test_float4_largest_value_converts_to_integers_as_itself(metal: jax.Device) -> None:
    # XLA:CPU gives INT_MAX/INT_MIN here, as if e2m1's top exponent meant infinity (it has
    # none); the value is 6.0
    v = np.array([6, -6], dtype("float4_e2m1fn"))
    got = on(metal, lambda a: (a.astype(np.int32), a.astype(np.uint8)), v)
    assert [g.tolist() for g in got] == [[6, -6], [6, 0]]


@pytest.mark.parametrize("name", FLOATS)
def test_convert_between_formats(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    others = [o for o in FLOATS if o != name]
    if name == "float8_e8m0fnu" or "float8_e8m0fnu" in others:  # JAX goes through float32
        others = [o for o in others if o != "float8_e8m0fnu"]
        compare(metal, cpu, lambda a: a.astype(np.float32).astype(dtype("float8_e8m0fnu")),
                every_value(name))
    compare(metal, cpu, lambda a: tuple(a.astype(dtype(o)) for o in others), every_value(name))


# ------------------------------------------------------------------------- arithmetic

# (max, min, rem, sin and expm1 are left to tests/test_ops_*: their float16/float32 rules
# differ from XLA:CPU at signed zeros, fmod(0, 0) and one expm1 rounding, for every float
# type, not for these types alone)
BINARY = [lax.add, lax.sub, lax.mul, lax.div, lax.pow, lax.atan2]
UNARY = [lax.neg, lax.abs, lax.sign, lax.exp, lax.log, lax.sqrt, lax.rsqrt, lax.tanh,
         lax.floor, lax.ceil, lax.round, lax.logistic, lax.log1p, lax.cos]


def computed_inputs(name: str) -> tuple[np.ndarray, np.ndarray]:
    """All pairs of values (for e8m0 without its smallest value: see the test below)."""
    a, b = pairs(name)
    if name == "float8_e8m0fnu":
        keep = (a.view(np.uint8) != 0) & (b.view(np.uint8) != 0)
        a, b = a[keep], b[keep]
    return a, b


@pytest.mark.parametrize("name", FLOATS)
def test_binary_ops_on_every_pair(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    compare(metal, cpu, lambda a, b: tuple(f(a, b) for f in BINARY), *computed_inputs(name),
            nan_bits=False)


@pytest.mark.parametrize("name", FLOATS)
def test_unary_ops_on_every_value(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    compare(metal, cpu, lambda a: tuple(f(a) for f in UNARY), every_value(name),
            nan_bits=False)


def test_e8m0_smallest_value_in_arithmetic(metal: jax.Device, cpu: jax.Device) -> None:
    # 2^-127 is a float32 subnormal: XLA:CPU's arithmetic instructions flush it to zero
    # (e8m0 has no zero: NaN), its library functions and abs do not
    v = every_value("float8_e8m0fnu")
    tiny = np.zeros_like(v)
    ops = [lax.add, lax.sub, lax.mul, lax.div, lax.max, lax.min, lax.rem]
    compare(metal, cpu, lambda a, b: tuple(f(a, b) for f in ops) + tuple(f(b, a) for f in ops),
            tiny, v)
    unary = [lax.sqrt, lax.rsqrt, lax.abs, lax.sign, lax.tanh, lax.ceil, lax.log1p]
    compare(metal, cpu, lambda a: tuple(f(a) for f in unary), tiny[:1])


@pytest.mark.parametrize("name", FLOATS)
def test_comparisons_on_every_pair(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    ops = [lax.eq, lax.ne, lax.lt, lax.le, lax.gt, lax.ge]
    compare(metal, cpu, lambda a, b: tuple(f(a, b) for f in ops), *pairs(name))


def finite_sample(name: str, shape: tuple[int, ...], seed: int = 0, low: float = 0,
                  high: float = np.inf) -> np.ndarray:
    """Random finite values of the type with low <= |value| <= high."""
    v = every_value(name)
    f = np.abs(v.astype(np.float32))
    return np.random.default_rng(seed).choice(v[(f >= low) & (f <= high)], shape)


@pytest.mark.parametrize("name", FLOATS)
def test_reductions(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    # Values whose partial sums and products are all exact: XLA:CPU rounds each step of a
    # reduce to the type (in an order of its own: in sequence for short rows, in vector
    # lanes for long ones); we accumulate in the carrier and round once
    rng = np.random.default_rng(0)
    x = rng.choice(np.array([0.5, 1, 2], np.float32), (4, 3)).astype(dtype(name))
    ops = [lambda a: jnp.max(a, axis=0), jnp.min, lambda a: jnp.prod(a, axis=1),
           lambda a: jnp.argmax(a, axis=1)]
    if name != "float8_e8m0fnu":  # (e8m0 holds powers of two only: 0.5 + 1 is not one)
        x = (x.astype(np.float32) - 1).astype(dtype(name))
        ops += [lambda a: jnp.sum(a, axis=1), jnp.sum, lambda a: jnp.cumsum(a, axis=1),
                lambda a: lax.reduce(a, np.array(0, a.dtype), lax.add, (0,))]
    compare(metal, cpu, lambda a: tuple(f(a) for f in ops), x)


@pytest.mark.parametrize("name", FLOAT8)
def test_dot(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    a, b = finite_sample(name, (3, 5), 1), finite_sample(name, (5, 4), 2)

    def dots(x, y):
        return (jnp.dot(x, y), jnp.dot(x, y, preferred_element_type=jnp.float32),
                lax.dot_general(x, y, (((1,), (0,)), ((), ())),
                                preferred_element_type=jnp.bfloat16))

    compare(metal, cpu, dots, a, b)


def test_float4_dot(metal: jax.Device, cpu: jax.Device) -> None:
    # XLA:CPU cannot compile a float4 dot; it is a float16 dot rounded to float4
    a, b = finite_sample("float4_e2m1fn", (3, 5), 1), finite_sample("float4_e2m1fn", (5, 4), 2)
    (got,) = on(metal, jnp.dot, a, b)
    (want,) = on(cpu, lambda x, y: jnp.dot(x.astype(jnp.float16), y.astype(jnp.float16))
                 .astype(x.dtype), a, b)
    assert_same(got, want)


def test_mixed_float8_dot(metal: jax.Device, cpu: jax.Device) -> None:
    # magnitudes in [1/4, 4]: every product and sum is exact in float32, in any order
    a = finite_sample("float8_e4m3fn", (4, 8), 3, 0.25, 4)
    b = finite_sample("float8_e5m2", (8, 2), 4, 0.25, 4)
    compare(metal, cpu, lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32), a, b)


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2", "float4_e2m1fn"])
def test_loops_and_compiled_regions(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    x = finite_sample(name, (8,), 5)

    def loops(a):
        step = a[0] / 4 if "float4" not in name else a[0]
        total = lax.fori_loop(0, 5, lambda i, acc: acc * a + step, a)
        carry, ys = lax.scan(lambda c, v: (c + v, c * v), a[0], a)
        picked = lax.cond(a[1] > a[2], lambda: a * a, lambda: a - a)
        return total, carry, ys, picked

    compare(metal, cpu, loops, x)


# ---------------------------------------------------------------------------- bitcast


@pytest.mark.parametrize("name", FLOAT8)
def test_bitcast_8_bit(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    v = every_value(name)
    u = np.arange(256, dtype=np.uint8)

    def casts(a, b):
        return (lax.bitcast_convert_type(a, jnp.uint8), lax.bitcast_convert_type(a, jnp.int8),
                lax.bitcast_convert_type(b, a.dtype),
                lax.bitcast_convert_type(a.reshape(-1, 4), jnp.float32),
                lax.bitcast_convert_type(lax.bitcast_convert_type(a.reshape(-1, 4),
                                                                  jnp.uint32), a.dtype),
                lax.bitcast_convert_type(a, dtype("float8_e4m3fn")))

    compare(metal, cpu, casts, v, u)


def test_bitcast_4_bit(metal: jax.Device, cpu: jax.Device) -> None:
    i4, u4, f4 = every_value("int4"), every_value("uint4"), every_value("float4_e2m1fn")
    u8 = np.arange(256, dtype=np.uint8)

    def casts(a, b, c, d):
        return (lax.bitcast_convert_type(a, jnp.uint4), lax.bitcast_convert_type(b, jnp.int4),
                lax.bitcast_convert_type(c, jnp.uint4), lax.bitcast_convert_type(b, c.dtype),
                lax.bitcast_convert_type(d, jnp.int4), lax.bitcast_convert_type(d, c.dtype),
                lax.bitcast_convert_type(a.reshape(-1, 2), jnp.uint8),
                lax.bitcast_convert_type(b.reshape(-1, 2), jnp.int8),
                lax.bitcast_convert_type(c.reshape(-1, 8), jnp.float32))

    compare(metal, cpu, casts, i4, u4, f4, u8)


def test_bitcast_scalars(metal: jax.Device, cpu: jax.Device) -> None:
    x = np.array(-1.7e-3, np.float32)
    compare(metal, cpu, lambda a: (lax.bitcast_convert_type(a, jnp.float8_e5m2),
                                   lax.bitcast_convert_type(a, jnp.int4),
                                   lax.bitcast_convert_type(a.astype(jnp.bfloat16), jnp.int8)),
            x)


# ------------------------------------------------------------------- narrow integers

INT_BINARY = [lax.add, lax.sub, lax.mul, lax.div, lax.rem, lax.max, lax.min, lax.bitwise_and,
              lax.bitwise_or, lax.bitwise_xor, lax.shift_left, lax.shift_right_arithmetic,
              lax.shift_right_logical, lax.eq, lax.lt, lax.ge]


@pytest.mark.parametrize("name", INTS)
def test_integer_ops_on_every_pair(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    compare(metal, cpu, lambda a, b: tuple(f(a, b) for f in INT_BINARY), *pairs(name))


@pytest.mark.parametrize("name", INTS)
def test_integer_unary_ops(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    ops = [lax.neg, lax.bitwise_not, lax.clz, lax.population_count,
           lambda a: lax.integer_pow(a, 3), lambda a: a.astype(jnp.float32),
           lambda a: a.astype(jnp.int32), lambda a: a.astype(jnp.uint8)]
    compare(metal, cpu, lambda a: tuple(f(a) for f in ops), every_value(name))


@pytest.mark.parametrize("name", INTS)
def test_integer_converts(metal: jax.Device, cpu: jax.Device, name: str) -> None:
    f = np.array([-300, -9, -8.5, -8, -7.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 7.5, 8, 15.5,
                  16, 300, np.nan, np.inf, -np.inf], np.float32)
    i = np.array([-300, -129, -17, -9, -8, -3, -2, -1, 0, 1, 2, 3, 7, 8, 15, 16, 255, 1000],
                 np.int32)
    targets = [dtype(n) for n in INTS]
    compare(metal, cpu, lambda a, b: (a.astype(dtype(name)), b.astype(dtype(name)),
                                      jnp.arange(20, dtype=dtype(name))), f, i)
    compare(metal, cpu, lambda a: tuple(a.astype(t) for t in targets), every_value(name))


def test_int4_dot_and_sum(metal: jax.Device, cpu: jax.Device) -> None:
    rng = np.random.default_rng(6)
    a = rng.integers(-8, 8, (3, 4)).astype(dtype("int4"))
    b = rng.integers(-8, 8, (4, 2)).astype(dtype("int4"))
    dims = (((1,), (0,)), ((), ()))

    def f(x, y):  # (XLA:CPU cannot compile an int4 dot with a wider result type)
        return lax.dot_general(x, y, dims), lax.reduce(x, np.array(0, x.dtype), lax.add, (1,))

    compare(metal, cpu, f, a, b)


# ----------------------------------------------------------------------------- refused


def test_float8_convolution_is_refused_by_name(metal: jax.Device) -> None:
    x = np.ones((1, 1, 4, 4), dtype("float8_e4m3fn"))
    with pytest.raises(Exception, match=r"convolution.*float8_e4m3fn"):
        on(metal, lambda a: lax.conv(a, a[:, :, :2, :2], (1, 1), "VALID"), x)
