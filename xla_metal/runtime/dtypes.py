"""Element types: IR names (numpy-style), PJRT_Buffer_Type codes and MLX dtypes.

MLX has no float8/float4 and no 2- or 4-bit integers. Those types are emulated
(compiler/emulated_dtypes.py): a buffer holds their bit codes, one per byte, in a uint8 array
(the bytes of ml_dtypes' numpy arrays, so transfers are plain copies); inside a program a value
lives in a *carrier* MLX dtype that holds every value of the type exactly.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from ..element_types import numpy_dtype
from ..errors import UnimplementedError

# PJRT_Buffer_Type enum values (our pjrt_c_api.h) for each IR dtype name.
PJRT_TYPE = {
    "bool": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5,
    "uint8": 6, "uint16": 7, "uint32": 8, "uint64": 9,
    "float16": 10, "float32": 11, "float64": 12, "bfloat16": 13,
    "complex64": 14, "complex128": 15,
    "float8_e5m2": 16, "float8_e4m3fn": 17, "float8_e4m3b11fnuz": 18, "float8_e5m2fnuz": 19,
    "float8_e4m3fnuz": 20, "int4": 21, "uint4": 22, "int2": 24, "uint2": 25,
    "float8_e4m3": 26, "float8_e3m4": 27, "float8_e8m0fnu": 28, "float4_e2m1fn": 29,
}
NAME_OF_PJRT_TYPE = {code: name for name, code in PJRT_TYPE.items()}

MLX_DTYPE = {
    "bool": mx.bool_, "int8": mx.int8, "int16": mx.int16, "int32": mx.int32,
    "int64": mx.int64, "uint8": mx.uint8, "uint16": mx.uint16, "uint32": mx.uint32,
    "uint64": mx.uint64, "float16": mx.float16, "bfloat16": mx.bfloat16,
    "float32": mx.float32, "float64": mx.float64, "complex64": mx.complex64,
}
NAME_OF_MLX_DTYPE = {v: k for k, v in MLX_DTYPE.items()}

# Emulated types -> their carrier: float16 holds every float8/float4 value (XLA:CPU computes
# these types in float16 too), float32 the exponents 2^-127..2^127 of float8_e8m0fnu.
CARRIER = {
    **dict.fromkeys(["float8_e4m3fn", "float8_e5m2", "float8_e4m3b11fnuz", "float8_e4m3fnuz",
                     "float8_e5m2fnuz", "float8_e4m3", "float8_e3m4", "float4_e2m1fn"],
                    mx.float16),
    "float8_e8m0fnu": mx.float32,
    "int4": mx.int8, "int2": mx.int8, "uint4": mx.uint8, "uint2": mx.uint8,
}
STORAGE = "uint8"  # what a buffer of an emulated type holds: one bit code per byte

# complex128 is held as float64 pairs: a float64 array with a trailing axis of 2 (real,
# imaginary), the same bytes as numpy's complex128 (compiler/complex128.py computes on them).
PAIRS = {"complex128": "float64"}


def mlx_dtype(name: str) -> mx.Dtype:
    """The MLX dtype a program computes `name` in (its carrier, for an emulated type)."""
    try:
        return MLX_DTYPE[name]
    except KeyError:
        pass
    try:
        return CARRIER[name]
    except KeyError:
        raise UnimplementedError(f"[dtype] {name} is not supported on metal "
                                 f"(MLX has no {name} type)") from None


def storage_name(name: str) -> str:
    """The IR dtype name of the MLX array a buffer of `name` is held in."""
    return STORAGE if name in CARRIER else PAIRS.get(name, name)


def storage_shape(name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of the MLX array a buffer of `name` and `shape` is held in."""
    return (*shape, 2) if name in PAIRS else shape


def name_of_pjrt_type(code: int) -> str:
    try:
        return NAME_OF_PJRT_TYPE[code]
    except KeyError:
        raise UnimplementedError(f"[dtype] PJRT buffer type {code} is not supported") from None


def to_mlx(array: np.ndarray, name: str) -> mx.array:
    """A host array of IR dtype `name` as a buffer's MLX array (bfloat16 and the emulated
    types travel as their bits)."""
    array = np.asarray(array, order="C")  # (np.ascontiguousarray would make scalars 1-d)
    if name in CARRIER:
        return mx.array(array.view(np.uint8))
    if name in PAIRS:  # (a trailing axis first: numpy views 0-d arrays as no other dtype)
        pairs = np.ascontiguousarray(array[..., None]).view(numpy_dtype(PAIRS[name]))
        return mx.array(pairs, dtype=MLX_DTYPE[PAIRS[name]])
    dtype = mlx_dtype(name)
    if name == "bfloat16":
        return mx.array(array.view(np.uint16)).view(dtype)
    return mx.array(array, dtype=dtype)


def to_numpy(array: mx.array) -> np.ndarray:
    """An MLX array as a numpy array of the matching IR dtype."""
    name = NAME_OF_MLX_DTYPE[array.dtype]
    if name == "bfloat16":
        return np.array(array.view(mx.uint16), copy=False).view(numpy_dtype(name))
    return np.array(array, copy=False)
