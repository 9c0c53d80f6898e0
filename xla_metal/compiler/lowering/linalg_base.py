"""What the linear-algebra rules share: dtype checks, small array helpers, attribute reading,
the exact real embedding of complex matrices (see lowering/linalg.py for the design)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import mlx.core as mx

from ...errors import UnimplementedError
from ...runtime.dtypes import mlx_dtype
from ..ir import Operation, TensorType

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


def _embed_parts(re: mx.array, im: mx.array) -> mx.array:
    """The real embedding of the complex matrix re + i im: (..., n, n) parts -> (..., 2n, 2n)
    real with 2x2 blocks [[re, -im], [im, re]]."""
    top = mx.stack([re, -im], axis=-1)      # (..., n, n, 2)
    bottom = mx.stack([im, re], axis=-1)    # (..., n, n, 2)
    blocks = mx.stack([top, bottom], axis=-3)  # (..., n, 2, n, 2)
    n = re.shape[-1]
    return blocks.reshape(*re.shape[:-2], 2 * n, 2 * n)


# ----------------------------------------------------------------------------- dtype check


def _check_dtypes(op: Operation) -> None:
    for v in [*op.operands, *op.results]:
        t = v.type
        if isinstance(t, TensorType) and t.dtype.startswith(("float", "complex", "bfloat")) \
                and t.dtype not in LINALG_DTYPES:
            name = op.attrs.get("call_target_name") or op.op.value
            raise UnimplementedError(f"[linalg] Unsupported dtype {t.dtype} for {name} on "
                                     f"metal (float32, float64 and complex64 only){op.where()}")
