"""Op test records, shared by every runner (tests/test_ops_direct.py; a plugin runner later).

A Case names a JAX function, an input maker `make(rng, dtype) -> tuple of numpy arrays`, the
dtypes to instantiate it for, tolerances and whether its gradient (of the sum of its real
output, with respect to float inputs) should be checked too. `expand()` yields one Param per
(case, dtype). `check(expected, got, dtype_name, tol)` compares shape, dtype, then values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from jax import lax

BOOL = ("bool",)
SINTS = ("int8", "int16", "int32", "int64")
UINTS = ("uint8", "uint16", "uint32", "uint64")
INTS = SINTS + UINTS
FLOATS = ("float32", "float16", "bfloat16")
REALS = INTS + FLOATS
ALL = BOOL + INTS + FLOATS + ("complex64",)
X64 = ("int64", "uint64", "float64")  # run with jax.enable_x64

# (rtol, atol) per dtype; ints and bools are exact
TOL = {"float32": (2e-5, 1e-6), "float16": (2e-3, 1e-3), "bfloat16": (2e-2, 1e-2),
       "complex64": (2e-5, 1e-6), "float64": (1e-11, 1e-12)}


def np_dtype(name: str) -> np.dtype:
    return np.dtype(getattr(ml_dtypes, name)) if hasattr(ml_dtypes, name) else np.dtype(name)


@dataclass(frozen=True)
class Case:
    name: str
    fn: Callable[..., Any]
    make: Callable[[np.random.Generator, str], tuple[Any, ...]]
    dtypes: tuple[str, ...] = ("float32",)
    tol: tuple[float, float] | None = None  # overrides TOL for float dtypes (rtol, atol)
    grad: bool = False  # check jax.grad too (float32 and float64)
    tags: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Param:
    case: Case
    dtype: str

    @property
    def id(self) -> str:
        return f"{self.case.name}-{self.dtype}"


def expand(cases: list[Case]) -> Iterator[Param]:
    for c in cases:
        for d in c.dtypes:
            yield Param(c, d)


def tolerance(case: Case, dtype: str) -> tuple[float, float]:
    if dtype in ("bool",) + INTS:
        return (0.0, 0.0)
    base = TOL.get(dtype, (2e-5, 1e-6))
    if case.tol is None or dtype == "float64":  # (a case's tol is for float32's rounding)
        return base
    if dtype in ("float32", "complex64"):
        return case.tol
    return (max(base[0], case.tol[0]), max(base[1], case.tol[1]))


def check(expected: Any, got: Any, tol: tuple[float, float], what: str = "") -> None:
    expected = np.asarray(expected)
    got = np.asarray(got)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != {expected.dtype}"
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(got, expected, err_msg=what)
        return
    if expected.dtype.kind == "c":
        e, g = expected.astype(np.complex128), got.astype(np.complex128)
    else:
        e, g = expected.astype(np.float64), got.astype(np.float64)
    np.testing.assert_allclose(g, e, rtol=tol[0], atol=tol[1], equal_nan=True, err_msg=what)


# ------------------------------------------------------------------------- input makers


def values(rng: np.random.Generator, dtype: str, shape: tuple[int, ...] = (3, 4),
           lo: float = -4.0, hi: float = 4.0, specials: bool = False) -> np.ndarray:
    """Random values of `dtype`: uniform in [lo, hi) for floats, the full range for ints."""
    dt = np_dtype(dtype)
    n = int(np.prod(shape))
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        v = rng.integers(int(info.min), int(info.max), n, dtype=dt, endpoint=True)
        edge = np.array([info.min, info.max, 0, 1, -1 if dt.kind == "i" else 2], dtype=dt)
        v[: min(n, 5)] = edge[: min(n, 5)]
        return v.reshape(shape)
    if dt.kind == "c":
        return (rng.uniform(lo, hi, n) + 1j * rng.uniform(lo, hi, n)).astype(dt).reshape(shape)
    v = rng.uniform(lo, hi, n).astype(np.float32)
    if specials:
        sp = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 0.5, -2.5], np.float32)
        v[: min(n, len(sp))] = sp[: min(n, len(sp))]
    return v.astype(dt).reshape(shape)


def small_ints(rng: np.random.Generator, dtype: str, shape=(3, 4), lo=-20, hi=20) -> np.ndarray:
    dt = np_dtype(dtype)
    if dt.kind == "u":
        lo = 0
    return rng.integers(lo, hi, shape).astype(dt)


def unary(lo=-4.0, hi=4.0, specials=False, shape=(3, 4)):
    return lambda rng, d: (values(rng, d, shape, lo, hi, specials),)


def binary(lo=-4.0, hi=4.0, specials=False, shape=(3, 4)):
    return lambda rng, d: (values(rng, d, shape, lo, hi, specials),
                           values(rng, d, shape, lo, hi, specials))


def arrays(*specs: tuple[tuple[int, ...], str]):
    """Inputs of fixed shapes and dtypes ('*' = the case's dtype)."""
    return lambda rng, d: tuple(values(rng, d if t == "*" else t, s) for s, t in specs)


# ------------------------------------------------------------------------- element-wise


def _int_divisors(rng, d):
    x = values(rng, d, (4, 6))
    y = small_ints(rng, d, (4, 6), -4, 4)
    dt = np_dtype(d)
    y[0, :3] = 0
    if dt.kind == "i":
        x[1, 0] = np.iinfo(dt).min
        y[1, 0] = -1
        y[1, 1] = -1
    return x, y


def _shift_amounts(rng, d):
    x = values(rng, d, (4, 6))
    w = np_dtype(d).itemsize * 8
    y = rng.integers(0, w + 3, (4, 6)).astype(np_dtype(d))
    if np_dtype(d).kind == "i":
        y[0, 0] = -1
    return x, y


def _compare_inputs(rng, d):
    x = values(rng, d, (4, 6), specials=True)
    y = values(rng, d, (4, 6), specials=True)
    y[:2] = x[:2]  # some equal pairs
    if np_dtype(d).kind == "f":
        y[2, :6] = np.array([np.nan, np.inf, 0.0, -0.0, 0.5, -np.nan], np.float32)
    return x, y


def _total_order_inputs(rng, d):
    v = np.array([-np.nan, -np.inf, -3.0, -0.0, 0.0, 2.0, np.inf, np.nan], np.float32)
    x = np.repeat(v, len(v)).astype(np_dtype(d))
    y = np.tile(v, len(v)).astype(np_dtype(d))
    return x, y


def _convert_inputs(rng, d):
    v = np.array([np.nan, 1e20, -1e20, 3.7, -3.7, np.inf, -np.inf, 300.0, -1.0, 0.0, -0.0,
                  65504.0, -129.0, 255.9, 2.0 ** 31, -(2.0 ** 31), 2.0 ** 32, 1e10,
                  2.0 ** 63, -(2.0 ** 63)], np.float32)
    with np.errstate(over="ignore"):  # 1e20 -> inf in float16 is intended
        return (v.astype(np_dtype(d)),)


def _converts(label: str, sources: tuple[str, ...], targets: tuple[str, ...],
              make) -> list[Case]:
    """One case converting each source dtype to every target (64-bit targets need x64)."""
    fn = lambda x: tuple(lax.convert_element_type(x, np_dtype(t)) for t in targets)
    return [Case(f"convert_{label}_to_{'_'.join(targets) if len(targets) < 4 else 'all'}",
                 fn, make, sources, tags=("x64",) if set(targets) & set(X64) else ())]


def _bitcast(target: str) -> Callable[..., Any]:
    return lambda x: lax.bitcast_convert_type(x, np_dtype(target))


def _float_pairs(rng, d):
    x = values(rng, d, (3, 5), specials=True)
    y = values(rng, d, (3, 5))
    y[0, :3] = [0.0, 2.0, -0.0]
    return x, y


ELEMENTWISE: list[Case] = [
    Case("add", lax.add, binary(), REALS + ("complex64",), grad=True),
    Case("add_bool", jnp.add, binary(), BOOL),
    Case("subtract", lax.sub, binary(), REALS + ("complex64",), grad=True),
    Case("multiply", lax.mul, binary(), REALS + ("complex64",), grad=True),
    Case("multiply_bool", jnp.multiply, binary(), BOOL),
    Case("divide_float", lax.div, binary(0.5, 4.0), FLOATS + ("complex64",), grad=True),
    Case("divide_float_specials", lax.div, _float_pairs, FLOATS),
    Case("divide_int", lax.div, _int_divisors, INTS),
    Case("remainder_int", lax.rem, _int_divisors, INTS),
    Case("remainder_float", lax.rem, _float_pairs, FLOATS),
    Case("remainder_float_small", lax.rem, lambda r, d: (np.array([-1e-8, 1e-8, 7.5, -7.5],
                                                                  np.float32),
                                                         np.array([1.0, -1.0, -2.0, 2.0],
                                                                  np.float32))),
    Case("power_float", lax.pow, lambda r, d: (values(r, d, lo=0.1), values(r, d)), FLOATS,
         tol=(1e-4, 1e-5), grad=True),
    Case("max", lax.max, _compare_inputs, REALS, grad=True),
    Case("min", lax.min, _compare_inputs, REALS, grad=True),
    Case("max_bool", jnp.maximum, binary(), BOOL),
    Case("min_bool", jnp.minimum, binary(), BOOL),
    Case("atan2", lax.atan2, binary(specials=True), FLOATS, grad=True),
    Case("and", lax.bitwise_and, binary(), BOOL + INTS),
    Case("or", lax.bitwise_or, binary(), BOOL + INTS),
    Case("xor", lax.bitwise_xor, binary(), BOOL + INTS),
    Case("not", lax.bitwise_not, unary(), BOOL + INTS),
    Case("shift_left", lax.shift_left, _shift_amounts, INTS),
    Case("shift_right_arithmetic", lax.shift_right_arithmetic, _shift_amounts, INTS),
    Case("shift_right_logical", lax.shift_right_logical, _shift_amounts, INTS),
    Case("popcnt", lax.population_count, unary(), INTS),
    Case("clz", lax.clz, unary(), INTS),
    Case("abs", lax.abs, unary(specials=True), SINTS + FLOATS + ("complex64",), grad=True),
    Case("negate", lax.neg, unary(specials=True), SINTS + FLOATS + ("complex64",), grad=True),
    Case("sign", lax.sign, unary(specials=True), SINTS + FLOATS, grad=True),
    Case("sign_complex", lax.sign, unary(), ("complex64",)),
    Case("exp", lax.exp, unary(), FLOATS + ("complex64",), grad=True),
    Case("expm1", lax.expm1, lambda r, d: (np.array([1e-7, -1e-6, 1e-3, 0.5, -2.0, 3.0],
                                                    np_dtype(d)),), FLOATS, grad=True),
    Case("log", lax.log, unary(0.01, 10.0), FLOATS, grad=True),
    Case("log_complex", lax.log, unary(), ("complex64",)),
    Case("log1p", lax.log1p, lambda r, d: (np.array([1e-7, -1e-6, 1e-3, 0.5, -0.9, 3.0],
                                                    np_dtype(d)),), FLOATS, grad=True),
    Case("logistic", lax.logistic, unary(-20.0, 20.0), FLOATS, grad=True),
    Case("sqrt", lax.sqrt, unary(0.0, 10.0), FLOATS, grad=True),
    Case("rsqrt", lax.rsqrt, unary(0.1, 10.0), FLOATS, grad=True),
    Case("cbrt", lax.cbrt, unary(specials=True), FLOATS, grad=False),
    Case("cbrt_grad", lax.cbrt, unary(0.5, 8.0), ("float32",), grad=True),
    Case("sin", lax.sin, unary(), FLOATS, grad=True),
    Case("cos", lax.cos, unary(), FLOATS, grad=True),
    Case("tan", lax.tan, unary(-1.4, 1.4), FLOATS, tol=(1e-4, 1e-5), grad=True),
    Case("tanh", lax.tanh, unary(), FLOATS, grad=True),
    Case("floor", lax.floor, unary(specials=True), FLOATS),
    Case("ceil", lax.ceil, unary(specials=True), FLOATS),
    Case("round_afz", lambda x: lax.round(x, lax.RoundingMethod.AWAY_FROM_ZERO),
         lambda r, d: (np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997, -0.0, np.nan, 3.2],
                                np_dtype(d)),), FLOATS),
    Case("round_even", lambda x: lax.round(x, lax.RoundingMethod.TO_NEAREST_EVEN),
         lambda r, d: (np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997, -0.0, np.nan, 3.7],
                                np_dtype(d)),), FLOATS),
    Case("is_finite", lax.is_finite, unary(specials=True), FLOATS),
    Case("erf", lax.erf, unary(), FLOATS, grad=True),
    Case("erfc", lax.erfc, unary(-3.0, 9.0), FLOATS, tol=(1e-5, 1e-30), grad=True),
    Case("erf_inv", lax.erf_inv, unary(-0.99, 0.99), FLOATS, tol=(1e-4, 1e-5), grad=True),
    Case("lgamma", lax.lgamma, unary(-4.5, 10.0), FLOATS, tol=(1e-4, 1e-4), grad=True),
    Case("digamma", lax.digamma, unary(-4.5, 10.0), FLOATS, tol=(1e-4, 1e-4)),
    Case("asin", lax.asin, unary(-0.99, 0.99), FLOATS, grad=True),
    Case("acos", lax.acos, unary(-0.99, 0.99), FLOATS, grad=True),
    Case("atan", lax.atan, unary(), FLOATS, grad=True),
    Case("sinh", lax.sinh, unary(), FLOATS, grad=True),
    Case("cosh", lax.cosh, unary(), FLOATS, grad=True),
    Case("asinh", lax.asinh, unary(), FLOATS, grad=True),
    Case("acosh", lax.acosh, unary(1.01, 8.0), FLOATS, grad=True),
    Case("atanh", lax.atanh, unary(-0.95, 0.95), FLOATS, grad=True),
    Case("square", lax.square, unary(), FLOATS + SINTS, grad=True),
    Case("integer_pow", lambda x: lax.integer_pow(x, 3), unary(), FLOATS, grad=True),
    Case("isinf", jnp.isinf, unary(specials=True), FLOATS),
    Case("isposinf", jnp.isposinf, unary(specials=True), FLOATS),
    Case("isneginf", jnp.isneginf, unary(specials=True), FLOATS),
    Case("isnan", jnp.isnan, unary(specials=True), FLOATS),
    Case("nextafter", lax.nextafter, _float_pairs, ("float32", "float16")),
    Case("reduce_precision_bf16", lambda x: lax.reduce_precision(x, 8, 7),
         unary(-1e3, 1e3, specials=True)),
    Case("reduce_precision_f16", lambda x: lax.reduce_precision(x, 5, 10),
         lambda r, d: (np.array([1e-8, 7e4, -7e4, 1.0001, np.nan, -np.inf, 3e-5, 65519.0],
                                np.float32),)),
    Case("reduce_precision_e4m3", lambda x: lax.reduce_precision(x, 4, 3),
         unary(-300.0, 300.0, specials=True)),
    Case("real", lax.real, unary(), ("complex64",)),
    Case("imag", lax.imag, unary(), ("complex64",)),
    Case("conj", lax.conj, unary(), ("complex64",)),
    Case("complex", lax.complex, binary(), ("float32",)),
    Case("compare_eq", lax.eq, _compare_inputs, ALL),
    Case("compare_ne", lax.ne, _compare_inputs, ALL),
    Case("compare_lt", lax.lt, _compare_inputs, BOOL + REALS),
    Case("compare_le", lax.le, _compare_inputs, BOOL + REALS),
    Case("compare_gt", lax.gt, _compare_inputs, BOOL + REALS),
    Case("compare_ge", lax.ge, _compare_inputs, BOOL + REALS),
    Case("select", lambda p, x, y: lax.select(p, x, y),
         lambda r, d: (values(r, "bool"), values(r, d), values(r, d)), ALL),
    Case("select_scalar_pred", lambda p, x, y: jnp.where(p, x, y),
         lambda r, d: (np.array(True), values(r, d), values(r, d)), ("float32", "int32")),
    Case("clamp", lambda x: lax.clamp(np.asarray(-1.5, x.dtype), x, np.asarray(2.0, x.dtype)),
         unary(specials=True), FLOATS, grad=True),
    Case("clamp_int", lambda lo, x, hi: lax.clamp(lo, x, hi),
         lambda r, d: (values(r, d, ()), values(r, d), values(r, d, ())), INTS),
    Case("logaddexp", jnp.logaddexp, binary(), ("float32",), grad=True),
    Case("softplus", jax.nn.softplus, unary(-30.0, 30.0), ("float32",), grad=True),
    Case("gelu", jax.nn.gelu, unary(), ("float32",), grad=True),
    *_converts("float", FLOATS, SINTS + UINTS + ("bool",), _convert_inputs),
    *_converts("float", FLOATS, FLOATS, unary(-1e4, 1e4, specials=True)),
    *_converts("int", INTS + BOOL, ("float32", "float16", "bfloat16", "bool") + INTS, unary()),
    Case("convert_to_complex", lambda x: x.astype(jnp.complex64), unary(), REALS + BOOL),
    Case("convert_complex_to_real", lambda x: lax.real(x).astype(jnp.float16), unary(),
         ("complex64",)),
    Case("bitcast_same", _bitcast("int32"), unary(specials=True), ("float32", "uint32")),
    Case("bitcast_f16", _bitcast("uint16"), unary(specials=True), ("float16", "bfloat16")),
    Case("bitcast_narrow", _bitcast("uint8"), unary(), ("float32", "int16")),
    Case("bitcast_wide", _bitcast("float32"), lambda r, d: (values(r, d, (3, 4)),), ("uint8",)),
]


# ------------------------------------------------------------------------------ shape


def _one(shape, dt="*"):
    return arrays((shape, dt))


def _idx(*vals):
    return np.array(vals, np.int32)


SHAPE: list[Case] = [
    Case("iota", lambda x: x + lax.broadcasted_iota(x.dtype, x.shape, 1), _one((3, 4)),
         ("float32", "int32", "uint8", "bfloat16")),
    Case("broadcast", lambda x: jnp.broadcast_to(x[:, None, :], (3, 2, 4)), _one((3, 4)), ALL,
         grad=True),
    Case("broadcast_in_dim_perm", lambda x: lax.broadcast_in_dim(x, (4, 2, 3), (2, 0)),
         _one((3, 4)), ("float32", "int8")),
    Case("reshape", lambda x: x.reshape(2, 6), _one((3, 4)), ALL, grad=True),
    Case("transpose", lambda x: jnp.transpose(x, (2, 0, 1)), _one((2, 3, 4)), ALL, grad=True),
    Case("slice", lambda x: x[1:3, ::2], _one((4, 5)), ALL, grad=True),
    Case("slice_strided", lambda x: lax.slice(x, (0, 1), (5, 5), (2, 3)), _one((5, 6)),
         ("float32", "int8"), grad=True),
    Case("concatenate", lambda x, y: jnp.concatenate([x, y, x], axis=1),
         arrays(((2, 3), "*"), ((2, 2), "*")), ALL, grad=True),
    Case("pad", lambda x: lax.pad(x, np.asarray(1, x.dtype), ((1, 2, 0), (0, 1, 2))),
         _one((3, 4)), ALL, grad=True),
    Case("pad_negative", lambda x: lax.pad(x, np.asarray(7, x.dtype), ((-1, 2, 1), (2, -3, 0))),
         _one((3, 5)), ("float32", "int32"), grad=True),
    Case("pad_interior_neg", lambda x: lax.pad(x, np.asarray(0, x.dtype), ((-2, -1, 3),)),
         _one((4,)), ("float32",), grad=True),
    Case("reverse", lambda x: lax.rev(x, (0, 2)), _one((2, 3, 4)), ALL, grad=True),
    Case("dynamic_slice", lambda x, i, j: lax.dynamic_slice(x, (i, j), (2, 3)),
         lambda r, d: (values(r, d, (4, 5)), np.int32(1), np.int32(4)), ALL, grad=True),
    Case("dynamic_slice_clamp", lambda x, i: lax.dynamic_slice(x, (i, i), (2, 3)),
         lambda r, d: (values(r, d, (4, 5)), np.int32(-7)), ("float32",)),
    Case("dynamic_update_slice", lambda x, u, i: lax.dynamic_update_slice(x, u, (i, np.int32(1))),
         lambda r, d: (values(r, d, (4, 5)), values(r, d, (2, 3)), np.int32(3)), ALL,
         grad=True),
    Case("dynamic_update_slice_neg", lambda x, u, i: lax.dynamic_update_slice(x, u, (i, i)),
         lambda r, d: (values(r, d, (4, 5)), values(r, d, (2, 3)), np.int32(-3)),
         ("int32",)),
    Case("index_take", lambda x, i: x[i], lambda r, d: (values(r, d, (5, 3)), _idx(4, 0, 2, 2)),
         ALL, grad=True),
    Case("index_negative", lambda x, i: x[i], lambda r, d: (values(r, d, (5, 3)),
                                                            _idx(-1, -5, 3)), ("float32",)),
    Case("index_col", lambda x, i: x[:, i], lambda r, d: (values(r, d, (3, 5)), _idx(4, 0, 1)),
         ("float32", "int16"), grad=True),
    Case("index_2d", lambda x, i, j: x[i, j],
         lambda r, d: (values(r, d, (4, 5)), _idx(0, 3, 1), _idx(4, 2, 0)), ("float32",),
         grad=True),
    Case("index_scalar", lambda x, i: x[i, 1:], lambda r, d: (values(r, d, (4, 5)),
                                                              np.int32(2)), ("float32",)),
    Case("take_along_axis", lambda x, i: jnp.take_along_axis(x, i, axis=1),
         lambda r, d: (values(r, d, (3, 4)), r.integers(0, 4, (3, 2)).astype(np.int32)),
         ("float32",), grad=True),
    Case("take_clip", lambda x, i: jnp.take(x, i, axis=0, mode="clip"),
         lambda r, d: (values(r, d, (4, 2)), _idx(-3, 7, 1)), ("float32",)),
    Case("take_fill", lambda x, i: jnp.take(x, i, axis=0, mode="fill", fill_value=-9.0),
         lambda r, d: (values(r, d, (4, 2)), _idx(-3, 7, 1, -1)), ("float32",)),
    Case("vmap_index", jax.vmap(lambda x, i: x[i]),
         lambda r, d: (values(r, d, (3, 5)), _idx(4, 0, 2)), ("float32",), grad=True),
    Case("scatter_set", lambda x, i, u: x.at[i].set(u),
         lambda r, d: (values(r, d, (5, 3)), _idx(4, 0), values(r, d, (2, 3))), ALL, grad=True),
    Case("scatter_add", lambda x, i, u: x.at[i].add(u),
         lambda r, d: (values(r, d, (5, 3)), _idx(4, 0, 4, 1), values(r, d, (4, 3))),
         REALS + ("complex64",), grad=True),
    Case("scatter_mul", lambda x, i, u: x.at[i].multiply(u),
         lambda r, d: (values(r, d, (5,)), _idx(4, 0, 4), values(r, d, (3,))),
         ("float32", "int32")),
    Case("scatter_max", lambda x, i, u: x.at[i].max(u),
         lambda r, d: (values(r, d, (5,)), _idx(4, 0, 4), values(r, d, (3,))),
         ("float32", "int8", "uint16")),
    Case("scatter_min", lambda x, i, u: x.at[i].min(u),
         lambda r, d: (values(r, d, (5,)), _idx(4, 0, 4), values(r, d, (3,))), ("float32",)),
    Case("scatter_oob", lambda x, i, u: x.at[i].add(u, mode="drop"),
         lambda r, d: (values(r, d, (5, 2)), _idx(7, -9, 1), values(r, d, (3, 2))),
         ("float32",)),
    Case("scatter_2d", lambda x, i, j, u: x.at[i, j].add(u),
         lambda r, d: (values(r, d, (4, 5)), _idx(0, 3, 0), _idx(4, 2, 4), values(r, d, (3,))),
         ("float32",), grad=True),
    Case("scatter_col", lambda x, i, u: x.at[:, i].set(u),
         lambda r, d: (values(r, d, (3, 5)), _idx(4, 1), values(r, d, (3, 2))), ("float32",),
         grad=True),
    Case("vmap_scatter", jax.vmap(lambda x, i, u: x.at[i].add(u)),
         lambda r, d: (values(r, d, (3, 5)), _idx(4, 0, 2), values(r, d, (3,))), ("float32",),
         grad=True),
    Case("scatter_apply", lambda x, i: x.at[i].apply(jnp.sin),
         lambda r, d: (values(r, d, (5, 2)), _idx(4, 0, 4, 9)), ("float32",)),
    Case("scatter_max_complex", lambda x, i, u: x.at[i].max(u),
         lambda r, d: (values(r, d, (5,)), _idx(4, 0, 4), values(r, d, (3,))), ("complex64",)),
    # whole rows (one gather / scatter of rows): an embedding lookup and its gradient, and
    # a column scatter with unsigned indices, one out of range (dropped)
    Case("embedding_rows", lambda w, i: w[i] * 2.0,
         lambda r, d: (values(r, d, (6, 4)), r.integers(0, 6, (2, 3)).astype(np.int32)),
         ("float32", "bfloat16", "float16"), grad=True),
    Case("scatter_col_add_unsigned", lambda x, i, u: x.at[:, i].add(u, mode="drop"),
         lambda r, d: (values(r, d, (3, 5)), np.array([4, 9, 4, 0], np.uint32),
                       values(r, d, (3, 4))), ("float32", "int32")),
    Case("segment_sum", lambda x, s: jax.ops.segment_sum(x, s, num_segments=3),
         lambda r, d: (values(r, d, (6, 2)), _idx(0, 2, 2, 1, 0, 0)), ("float32", "int32"),
         grad=True),
]

# ---------------------------------------------------------------- reductions and sorting


def _all_ones(dtype):
    return np.asarray(np.iinfo(dtype).max if dtype.kind == "u" else -1, dtype)


def _with_nan(rng, d):
    x = values(rng, d, (3, 5))
    x[1, 2] = np.nan
    return (x,)


REDUCE: list[Case] = [
    Case("sum", lambda x: jnp.sum(x, axis=1), _one((3, 5)), REALS + ("complex64",),
         tol=(1e-4, 1e-4), grad=True),
    Case("sum_all", jnp.sum, _one((3, 5)), ("float32", "int32", "uint8"), grad=True),
    Case("sum_bool", lambda x: lax.reduce(x, False, lax.bitwise_or, (0,)), _one((3, 5)), BOOL),
    Case("prod", lambda x: jnp.prod(x, axis=0), _one((3, 5)), ("float32", "int32", "int8"),
         grad=True),
    Case("max_reduce", lambda x: jnp.max(x, axis=(0, 2)), _one((2, 3, 4)), REALS, grad=True),
    Case("min_reduce", lambda x: jnp.min(x, axis=1), _one((2, 3, 4)), REALS, grad=True),
    Case("max_nan", lambda x: jnp.max(x, axis=1), _with_nan, ("float32",)),
    Case("all", lambda x: jnp.all(x, axis=1), _one((3, 5)), BOOL),
    Case("any", lambda x: jnp.any(x, axis=0), _one((3, 5)), BOOL),
    Case("reduce_and_int", lambda x: lax.reduce(x, _all_ones(x.dtype), lax.bitwise_and, (1,)),
         _one((3, 5)), ("int32", "uint8")),
    Case("reduce_or_int", lambda x: lax.reduce(x, np.asarray(0, x.dtype), lax.bitwise_or,
                                               (0,)), _one((3, 5)), ("int32", "uint16")),
    Case("reduce_xor_int", lambda x: lax.reduce(x, np.asarray(0, x.dtype), lax.bitwise_xor,
                                                (0,)), _one((5, 3)), ("int32",)),
    Case("argmax", lambda x: jnp.argmax(x, axis=1), _with_nan, ("float32",)),
    Case("argmax_ties", lambda x: jnp.argmax(x, axis=0),
         lambda r, d: (np.array([[1, 3, 3], [3, 3, 1], [3, 0, 3]], np_dtype(d)),),
         ("float32", "int32", "uint8", "bfloat16")),
    Case("argmin", lambda x: jnp.argmin(x, axis=0), _one((7, 3)), REALS),
    Case("mean_var", lambda x: (jnp.mean(x, axis=0), jnp.var(x, axis=1)), _one((4, 6)),
         ("float32",), grad=True),
    Case("logsumexp", lambda x: jax.nn.logsumexp(x, axis=1), _one((3, 7)), ("float32",),
         grad=True),
    Case("softmax", lambda x: jax.nn.softmax(x, axis=-1), _one((3, 7)), ("float32",),
         grad=True),
    Case("cumsum", lambda x: jnp.cumsum(x, axis=1), _one((3, 6)), ("float32", "int32"),
         grad=True),
    Case("cummax", lambda x: lax.cummax(x, axis=0), _one((5, 3)), ("float32",), grad=True),
    Case("sort", lambda x: jnp.sort(x, axis=-1), _one((3, 9)), REALS + BOOL, grad=True),
    Case("sort_axis0", lambda x: jnp.sort(x, axis=0), _one((6, 3)), ("float32", "int64")),
    Case("sort_64bit", lambda x: (jnp.sort(x), jnp.argsort(x), jnp.argsort(x, descending=True)),
         lambda r, d: (np.concatenate([values(r, d, (12,)),
                                       (small_ints(r, d, (12,), -3, 3).astype(np.int64)
                                        * (2 ** 33 + 1)).astype(np_dtype(d))]),),
         ("int64", "uint64")),
    Case("sort_specials", jnp.sort,
         lambda r, d: (np.array([np.nan, 1.0, -0.0, 0.0, -np.inf, np.inf, -np.nan, -1.0, 0.0],
                                np_dtype(d)),), FLOATS),
    Case("sort_descending", lambda x: jnp.sort(x, descending=True), _one((2, 9)),
         ("float32", "int32", "uint32")),
    Case("argsort", lambda x: jnp.argsort(x, axis=-1),
         lambda r, d: (small_ints(r, d, (3, 9), -3, 3).astype(np_dtype(d)),),
         ("float32", "int32", "uint8", "int64")),
    Case("argsort_desc", lambda x: jnp.argsort(x, descending=True),
         lambda r, d: (small_ints(r, d, (2, 9), -3, 3).astype(np_dtype(d)),),
         ("float32", "int32")),
    Case("sort_multi_operand", lambda k, v: lax.sort((k, v), num_keys=1),
         lambda r, d: (small_ints(r, d, (11,), -3, 3), values(r, "float32", (11,))),
         ("float32", "int32")),
    Case("sort_two_keys", lambda k1, k2, v: lax.sort((k1, k2, v), num_keys=2),
         lambda r, d: (small_ints(r, d, (13,), -2, 2), small_ints(r, d, (13,), -2, 2),
                       values(r, "int32", (13,))), ("float32", "int32")),
    Case("lexsort", lambda a, b: jnp.lexsort((a, b)),
         lambda r, d: (small_ints(r, d, (10,), -2, 2), small_ints(r, d, (10,), -2, 2)),
         ("int32",)),
    Case("top_k", lambda x: lax.top_k(x, 3), _one((2, 7)), ("float32", "int32")),
    Case("top_k_ties", lambda x: lax.top_k(x, 4),
         lambda r, d: (small_ints(r, d, (2, 9), -2, 2),), ("float32", "int32")),
    Case("median", lambda x: jnp.median(x, axis=1), _one((3, 7)), ("float32",)),
]

# ----------------------------------------------------------------------- contractions

DOT: list[Case] = [
    Case("matmul", jnp.matmul, arrays(((3, 4), "*"), ((4, 5), "*")),
         ("float32", "float16", "bfloat16", "complex64"), tol=(1e-4, 1e-4), grad=True),
    Case("matmul_int", jnp.matmul, lambda r, d: (small_ints(r, d, (3, 4)),
                                                 small_ints(r, d, (4, 5))),
         INTS),
    Case("matmul_int_wrap", jnp.matmul, arrays(((3, 4), "*"), ((4, 5), "*")),
         ("int8", "int32", "uint16")),
    Case("matmul_bool", lambda a, b: lax.dot(a, b), arrays(((3, 4), "*"), ((4, 5), "*")),
         BOOL),
    Case("matvec", jnp.dot, arrays(((3, 4), "*"), ((4,), "*")), ("float32",), grad=True),
    Case("vecdot", jnp.dot, arrays(((4,), "*"), ((4,), "*")), ("float32", "int32"),
         grad=True),
    Case("einsum_batch", lambda a, b: jnp.einsum("bij,bjk->bik", a, b),
         arrays(((2, 3, 4), "*"), ((2, 4, 5), "*")), ("float32",), tol=(1e-4, 1e-4),
         grad=True),
    Case("einsum_general", lambda a, b: jnp.einsum("ikjb,bkl->bilj", a, b),
         arrays(((2, 3, 4, 5), "*"), ((5, 3, 2), "*")), ("float32", "int16"),
         tol=(1e-4, 1e-4), grad=True),
    Case("dot_preferred", lambda a, b: lax.dot(a, b, preferred_element_type=jnp.float32),
         arrays(((3, 4), "*"), ((4, 2), "*")), ("bfloat16", "float16"), tol=(1e-4, 1e-4)),
    Case("dot_preferred_int", lambda a, b: lax.dot(a, b, preferred_element_type=jnp.int32),
         arrays(((3, 4), "*"), ((4, 2), "*")), ("int8", "uint8")),
    Case("outer", jnp.outer, arrays(((3,), "*"), ((4,), "*")), ("float32",), grad=True),
    # several contracting or free axes in a run: merged by a reshape before the transpose
    Case("dot_weight_grad", lambda a, b: jnp.einsum("bsi,bso->io", a, b),
         arrays(((2, 3, 4), "*"), ((2, 3, 5), "*")), ("float32", "int32"), tol=(1e-4, 1e-4),
         grad=True),
    Case("dot_batch_two_contracting", lambda a, b: jnp.einsum("hqsd,hsdk->hqk", a, b),
         arrays(((2, 3, 4, 5), "*"), ((2, 4, 5, 3), "*")), ("float32",), tol=(1e-4, 1e-4),
         grad=True),
    Case("dot_free_run", lambda a, b: jnp.einsum("bijk,bkl->bijl", a, b),
         arrays(((2, 3, 4, 5), "*"), ((2, 5, 6), "*")), ("float32",), tol=(1e-4, 1e-4),
         grad=True),
]


def _max_pool(x):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _avg_pool_same(x):
    return lax.reduce_window(x, 0.0, lax.add, (1, 3, 3, 1), (1, 2, 1, 1), "SAME") / 9.0


WINDOW: list[Case] = [
    Case("max_pool", _max_pool, _one((2, 4, 6, 3)), ("float32",), grad=True),
    Case("max_pool_ties", _max_pool, lambda r, d: (np.ones((1, 4, 4, 1), np.float32),),
         ("float32",), grad=True),
    Case("max_pool_same", lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (3, 3), (2, 2),
                                                      "SAME"), _one((5, 6)), ("float32",),
         grad=True),
    Case("avg_pool_same", _avg_pool_same, _one((1, 5, 4, 2)), ("float32",), grad=True),
    Case("reduce_window_dilated", lambda x: lax.reduce_window(
        x, 0.0, lax.add, (2, 2), (1, 2), ((1, 0), (2, 1)), base_dilation=(2, 1),
        window_dilation=(1, 2)), _one((4, 7)), ("float32",), grad=True),
    Case("reduce_window_int", lambda x: lax.reduce_window(
        x, np.asarray(np.iinfo(x.dtype).min, x.dtype), lax.max, (2, 3), (1, 1), "VALID"),
        _one((4, 5)), ("int32", "uint8")),
    Case("cumsum_reverse", lambda x: jnp.flip(jnp.cumsum(jnp.flip(x, 1), axis=1), 1),
         _one((3, 6)), ("float32",), grad=True),
    Case("cumprod", lambda x: jnp.cumprod(x, axis=0), unary(0.5, 1.5, shape=(5, 3)),
         ("float32",), grad=True),
    Case("cummin_int", lambda x: lax.cummin(x, axis=1), _one((3, 6)), ("int32", "int8")),
    Case("cumlogsumexp", lambda x: lax.cumlogsumexp(x, axis=1), _one((2, 5)), ("float32",),
         grad=True),
]


def _conv(strides=(1, 1), padding="SAME", lhs_dil=None, rhs_dil=None, groups=1,
          dims=("NHWC", "HWIO", "NHWC")):
    return lambda x, w: lax.conv_general_dilated(
        x, w, strides, padding, lhs_dilation=lhs_dil, rhs_dilation=rhs_dil,
        dimension_numbers=dims, feature_group_count=groups)


CONV: list[Case] = [
    Case("conv2d_nhwc", _conv(), arrays(((2, 5, 6, 3), "*"), ((3, 3, 3, 4), "*")),
         ("float32", "float16", "bfloat16", "float64"), tol=(1e-4, 1e-4), grad=True),
    Case("conv2d_nchw_strided", _conv((2, 1), ((1, 0), (2, 1)), dims=("NCHW", "OIHW", "NCHW")),
         arrays(((2, 3, 7, 6), "*"), ((4, 3, 3, 2), "*")), ("float32", "float64"), tol=(1e-4, 1e-4),
         grad=True),
    Case("conv2d_dilated", _conv((1, 2), ((0, 0), (1, 0)), lhs_dil=(2, 1), rhs_dil=(1, 2)),
         arrays(((1, 5, 7, 2), "*"), ((2, 2, 2, 3), "*")), ("float32", "float64"), tol=(1e-4, 1e-4),
         grad=True),
    Case("conv2d_negative_padding", _conv((1, 1), ((-1, 1), (0, -2))),
         arrays(((1, 6, 6, 2), "*"), ((3, 2, 2, 2), "*")), ("float32", "float64"), tol=(1e-4, 1e-4),
         grad=True),
    Case("conv2d_grouped", _conv(groups=2), arrays(((2, 5, 5, 4), "*"), ((3, 3, 2, 6), "*")),
         ("float32", "float64"), tol=(1e-4, 1e-4), grad=True),
    Case("conv1d", lambda x, w: lax.conv_general_dilated(x, w, (1,), "SAME",
                                                         dimension_numbers=("NWC", "WIO", "NWC")),
         arrays(((2, 9, 3), "*"), ((4, 3, 5), "*")), ("float32", "float64"), tol=(1e-4, 1e-4),
         grad=True),
    Case("conv3d", lambda x, w: lax.conv_general_dilated(
        x, w, (1, 1, 1), "VALID", dimension_numbers=("NDHWC", "DHWIO", "NDHWC")),
        arrays(((1, 4, 4, 4, 2), "*"), ((2, 2, 2, 2, 3), "*")), ("float32", "float64"),
        tol=(1e-4, 1e-4), grad=True),
    # MLX groups only 1-D and 2-D convolutions: 3-D groups are split by our lowering
    Case("conv3d_grouped_strided", lambda x, w: lax.conv_general_dilated(
        x, w, (2, 1, 1), "SAME", rhs_dilation=(1, 2, 1), feature_group_count=3,
        dimension_numbers=("NDHWC", "DHWIO", "NDHWC")),
        arrays(((2, 5, 4, 4, 6), "*"), ((2, 2, 2, 2, 9), "*")), ("float32", "float16", "float64"),
        tol=(1e-3, 1e-3), grad=True),
]

# ----------------------------------------------- raw StableHLO ops JAX's API does not emit


def _raw_binary(name: str, emit: Callable[..., Any], out_dtype: Any = None):
    """A JAX function whose lowering is exactly one StableHLO op `emit(ctx, x, y)`."""
    from jax.extend.core import Primitive
    from jax.interpreters import mlir

    prim = Primitive(name)
    prim.def_impl(lambda *a: jax.jit(prim.bind)(*a))
    prim.def_abstract_eval(lambda x, y: jax.core.ShapedArray(
        x.shape, x.dtype if out_dtype is None else out_dtype))
    mlir.register_lowering(prim, lambda ctx, x, y: [emit(ctx, x, y)])
    return prim.bind


def _power_op(ctx, x, y):
    from jaxlib.mlir.dialects import stablehlo as hlo

    return hlo.power(x, y)


def _total_order(direction: str):
    def emit(ctx, x, y):
        from jaxlib.mlir.dialects import stablehlo as hlo

        return hlo.compare(x, y, hlo.ComparisonDirectionAttr.get(direction),
                           compare_type=hlo.ComparisonTypeAttr.get("TOTALORDER"))

    return emit


def _int_powers(rng, d):
    dt = np_dtype(d)
    base = np.array([2, -1, 1, 3, 0, 0, -2, 5, 7, -3, 2, 1], np.int64)
    exp = np.array([10, -3, -5, -1, 0, -1, 3, 20, 40, 5, 63, 0], np.int64)
    if dt.kind == "u":
        base, exp = np.abs(base), np.abs(exp)
    return base.astype(dt), exp.astype(dt)


RAW: list[Case] = [
    Case("power_int", _raw_binary("xm_power", _power_op), _int_powers, INTS),
    *[Case(f"compare_totalorder_{d.lower()}",
           _raw_binary(f"xm_total_{d}", _total_order(d), np.bool_), _total_order_inputs, FLOATS)
      for d in ("LT", "LE", "GT", "GE", "EQ", "NE")],
]

# --------------------------------------------------------------------------- edge cases

C64 = ("complex64",)

EDGE: list[Case] = [
    *[Case(f"{name}_complex", fn, unary(-2.0, 2.0), C64, tol=(1e-5, 1e-5))
      for name, fn in [("sqrt", lax.sqrt), ("rsqrt", lax.rsqrt), ("sin", lax.sin),
                       ("cos", lax.cos), ("tanh", lax.tanh), ("tan", lax.tan),
                       ("expm1", lax.expm1), ("log1p", lax.log1p), ("square", lax.square),
                       ("reciprocal", lambda x: 1 / x), ("pow", lambda x: x ** (0.5 + 1j)),
                       ("integer_pow", lambda x: lax.integer_pow(x, 3))]],
    Case("empty_elementwise", lambda x: jnp.exp(x) + 1, _one((0, 3)), ("float32", "int32")),
    Case("empty_reduce", lambda x: (jnp.sum(x, axis=0), jnp.max(x, axis=0, initial=-5)),
         _one((0, 3)),
         ("float32", "int32")),
    Case("empty_argmax_axis", lambda x: jnp.argmax(x, axis=1), _one((0, 3)), ("float32",)),
    Case("empty_dot", jnp.matmul, arrays(((2, 0), "*"), ((0, 3), "*")), ("float32", "int32")),
    Case("empty_concat", lambda x, y: jnp.concatenate([x, y]), arrays(((0, 3), "*"),
                                                                      ((2, 3), "*")),
         ("float32",)),
    Case("top_k_specials", lambda x: lax.top_k(x, 5),
         lambda r, d: (np.array([1.0, np.nan, -0.0, 0.0, np.inf, -np.inf, 1.0, 3.0],
                                np_dtype(d)),), FLOATS),
    Case("sort_complex", jnp.sort, lambda r, d: (np.array([1 + 2j, 1 - 1j, -3 + 0j, 1 + 2j,
                                                           0 + 5j, -3 - 1j], np.complex64),),
         C64),
    Case("argmax_bool", lambda x: jnp.argmax(x, axis=1), _one((3, 5)), BOOL),
    Case("variadic_reduce", lambda x, y: lax.reduce((x, y), (np.float32(0), np.int32(1)),
                                                    lambda a, b: (a[0] + b[0], a[1] * b[1]),
                                                    (0,)),
         lambda r, d: (values(r, "float32", (4, 3)), small_ints(r, "int32", (4, 3), 1, 4)),
         ("float32",)),
    Case("reduce_scalar_axes_none", lambda x: lax.reduce(x, np.float32(1), lax.add, ()),
         _one((2, 3)), ("float32",)),
    Case("cumsum_bool", lambda x: jnp.cumsum(x, axis=0), _one((4, 3)), BOOL),
    Case("where_broadcast", lambda c, x: jnp.where(c, x, 0),
         lambda r, d: (values(r, "bool", (3, 1)), values(r, d, (3, 4))), REALS),
    Case("clip", lambda x: jnp.clip(x, -1, 2), unary(specials=True), FLOATS + SINTS),
    Case("round_decimals", lambda x: jnp.round(x, 2), unary(), ("float32",)),
    Case("mod_floor", jnp.mod, _float_pairs, FLOATS),
    Case("floor_divide_int", jnp.floor_divide, _int_divisors, SINTS),
    Case("remainder_jnp_int", jnp.remainder, _int_divisors, SINTS + UINTS),
    Case("one_hot", lambda i: jax.nn.one_hot(i, 5), lambda r, d: (_idx(0, 4, 2, -1, 7),),
         ("int32",)),
    Case("fft", lambda x: jnp.fft.fft(x), unary(shape=(3, 8)), C64, tol=(1e-5, 1e-5)),
    Case("ifft2", lambda x: jnp.fft.ifft2(x), unary(shape=(2, 4, 6)), C64, tol=(1e-5, 1e-5)),
    Case("rfft", lambda x: jnp.fft.rfft(x), unary(shape=(3, 10)), ("float32",),
         tol=(1e-5, 1e-5), grad=True),
    Case("irfft", lambda x: jnp.fft.irfft(x, n=8), unary(shape=(2, 5)), C64, tol=(1e-5, 1e-5)),
    Case("rfftn", lambda x: jnp.fft.rfftn(x), unary(shape=(4, 6)), ("float32",),
         tol=(1e-5, 1e-5)),
    Case("astype_roundtrip", lambda x: x.astype(jnp.bfloat16).astype(jnp.float16).astype(
        jnp.float32), unary(-1e5, 1e5, specials=True), ("float32",)),
]

ALL_CASES: list[Case] = [*ELEMENTWISE, *SHAPE, *REDUCE, *DOT, *WINDOW, *CONV, *RAW, *EDGE]
