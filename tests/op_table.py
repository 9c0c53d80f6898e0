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
X64 = ("int64", "uint64")

# (rtol, atol) per dtype; ints and bools are exact
TOL = {"float32": (2e-5, 1e-6), "float16": (2e-3, 1e-3), "bfloat16": (2e-2, 1e-2),
       "complex64": (2e-5, 1e-6)}


def np_dtype(name: str) -> np.dtype:
    return np.dtype(getattr(ml_dtypes, name)) if hasattr(ml_dtypes, name) else np.dtype(name)


@dataclass(frozen=True)
class Case:
    name: str
    fn: Callable[..., Any]
    make: Callable[[np.random.Generator, str], tuple[Any, ...]]
    dtypes: tuple[str, ...] = ("float32",)
    tol: tuple[float, float] | None = None  # overrides TOL for float dtypes (rtol, atol)
    grad: bool = False  # check jax.grad too (float32 only)
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
    if case.tol is None:
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
    return (v.astype(np_dtype(d)),)


def _converts(sources: tuple[str, ...], targets: tuple[str, ...], make) -> list[Case]:
    return [Case(f"convert_to_{t}", lambda x, t=t: lax.convert_element_type(x, np_dtype(t)),
                 make, sources) for t in targets]


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
    *_converts(FLOATS, SINTS + UINTS + ("bool",), _convert_inputs),
    *_converts(FLOATS, FLOATS, unary(-1e4, 1e4, specials=True)),
    *_converts(INTS + BOOL, ("float32", "float16", "bfloat16", "bool") + INTS, unary()),
    Case("convert_to_complex", lambda x: x.astype(jnp.complex64), unary(), FLOATS + SINTS),
    Case("convert_complex_to_real", lambda x: lax.real(x).astype(jnp.float16), unary(),
         ("complex64",)),
    Case("bitcast_same", _bitcast("int32"), unary(specials=True), ("float32", "uint32")),
    Case("bitcast_f16", _bitcast("uint16"), unary(specials=True), ("float16", "bfloat16")),
    Case("bitcast_narrow", _bitcast("uint8"), unary(), ("float32", "int16")),
    Case("bitcast_wide", _bitcast("float32"), lambda r, d: (values(r, d, (3, 4)),), ("uint8",)),
]

ALL_CASES: list[Case] = [*ELEMENTWISE]
