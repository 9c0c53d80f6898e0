"""DLPack export straight out of 'metal' arrays (`np.from_dlpack(x)`, `x.__dlpack__()`).

jaxlib hands DLPack only to cpu/cuda/rocm devices: `ArrayImpl.__dlpack_device__` refuses any
other platform, and jaxlib's C++ exporter refuses a device it cannot map to a DLPack device
type. MLX memory is host memory where this runs (MLX's CPU device on Linux, unified memory on
Apple silicon), so a 'metal' array is exported as a kDLCPU tensor over its own memory, with no
copy: the capsule is made by NumPy's exporter from a NumPy view of the buffer's MLX array. The
view holds that array, so the memory stays valid while the consumer's tensor lives, even after
the JAX array is deleted or donated.

Read-only where DLPack can say so: a consumer asking for DLPack >= 1.0 (NumPy does) gets a
tensor flagged read-only. An older consumer (JAX's own `from_dlpack`) gets a plain capsule
over the same memory, as JAX's CPU backend gives: mutating it is undefined behaviour there too.
Arrays on other platforms go to JAX's own methods unchanged.
"""

from __future__ import annotations

import ctypes as C
from typing import Any

import ml_dtypes
import numpy as np

PLATFORM = "metal"
KDL_CPU = 1
KDL_BFLOAT = 4  # DLDataTypeCode
# The dtypes JAX's DLPack takes (jax._src.dlpack.SUPPORTED_DTYPES) less complex128, which
# 'metal' does not hold. NumPy exports all of them but bfloat16, which it has no DLPack code
# for: that one goes out as uint16 and its type code is rewritten (same bits, same size).
EXPORTABLE = frozenset(np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
    np.uint64, np.float16, ml_dtypes.bfloat16, np.float32, np.float64, np.complex64))
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


class _DLDataType(C.Structure):
    _fields_ = [("code", C.c_uint8), ("bits", C.c_uint8), ("lanes", C.c_uint16)]


class _DLTensorHead(C.Structure):
    """The leading fields of DLPack's DLTensor, up to its dtype (ABI-stable since 0.5)."""
    _fields_ = [("data", C.c_void_p), ("device_type", C.c_int32), ("device_id", C.c_int32),
                ("ndim", C.c_int32), ("dtype", _DLDataType)]


# Where DLTensor sits in each capsule's struct: first in DLManagedTensor; after version (8
# bytes), manager_ctx, deleter and flags (8 bytes each) in DLManagedTensorVersioned.
_TENSOR_OFFSET = {b"dltensor": 0, b"dltensor_versioned": 8 + 2 * C.sizeof(C.c_void_p) + 8}

_capsule_name = C.pythonapi.PyCapsule_GetName
_capsule_name.restype = C.c_char_p
_capsule_name.argtypes = [C.py_object]
_capsule_pointer = C.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = C.c_void_p
_capsule_pointer.argtypes = [C.py_object, C.c_char_p]


def _is_metal(x: Any) -> bool:
    devices = x.sharding.device_set
    return len(devices) == 1 and next(iter(devices)).platform == PLATFORM


def host_view(x: Any) -> np.ndarray:
    """A NumPy view of a single-device 'metal' array's memory, holding that memory alive."""
    from ..runtime import api

    dtype = np.dtype(x.dtype)
    if dtype not in EXPORTABLE:
        raise BufferError(f"[dlpack] {dtype.name} cannot be exported through DLPack from "
                          f"metal (DLPack takes bool, integers, float16/bfloat16/32/64 and "
                          f"complex64 here)")
    x.block_until_ready()
    nbytes = x.size * dtype.itemsize
    if nbytes == 0:
        return np.empty(x.shape, dtype)  # no memory to share
    address = x.unsafe_buffer_pointer()  # makes the buffer dense and its own (buffer_pointer)
    array = api.array_at(address, nbytes)
    if array is None:
        raise BufferError(f"[dlpack] internal error: no live MLX array at the address "
                          f"{address:#x} of this metal buffer")
    memory = memoryview(array).cast("B")  # type: ignore[arg-type]  # MLX arrays are buffers
    return np.frombuffer(memory, dtype).reshape(x.shape)


def _set_type_code(capsule: Any, code: int) -> None:
    name = _capsule_name(capsule)
    tensor = _DLTensorHead.from_address(_capsule_pointer(capsule, name) + _TENSOR_OFFSET[name])
    tensor.dtype.code = code


def metal_dlpack(x: Any, stream: Any = None, max_version: tuple[int, int] | None = None,
                 dl_device: tuple[Any, int] | None = None, copy: bool | None = None) -> Any:
    """`x.__dlpack__(...)` for a 'metal' array: a kDLCPU capsule over its memory."""
    del stream  # a metal buffer is complete once it exists; host_view waits for it anyway
    if dl_device is not None and (int(dl_device[0]), int(dl_device[1])) != (KDL_CPU, 0):
        raise BufferError(f"[dlpack] a metal array is exported as a CPU tensor (kDLCPU, 0), "
                          f"not to the DLPack device {tuple(dl_device)}")
    view = host_view(x)
    versioned = max_version is not None and tuple(max_version) >= (1, 0)
    view.flags.writeable = not versioned  # only DLPack >= 1.0 can say "read-only"
    bfloat16 = view.dtype == BFLOAT16
    if bfloat16:
        view = view.view(np.uint16)
    kwargs: dict[str, Any] = {"copy": copy}
    if max_version is not None:
        kwargs["max_version"] = tuple(max_version)
    capsule = view.__dlpack__(**kwargs)
    if bfloat16:
        _set_type_code(capsule, KDL_BFLOAT)
    return capsule


def install() -> None:
    """Routes `__dlpack__`/`__dlpack_device__` of 'metal' arrays here; others are untouched."""
    from jax._src.array import ArrayImpl

    original_dlpack = ArrayImpl.__dlpack__
    original_device = ArrayImpl.__dlpack_device__
    if getattr(original_dlpack, "_xla_metal", False):
        return

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None,  # type: ignore[no-untyped-def]
                   copy=None):
        if _is_metal(self):
            return metal_dlpack(self, stream, max_version, dl_device, copy)
        return original_dlpack(self, stream=stream, max_version=max_version,
                               dl_device=dl_device, copy=copy)

    def __dlpack_device__(self):  # type: ignore[no-untyped-def]
        if _is_metal(self):
            from jax._src.dlpack import DLDeviceType

            return DLDeviceType.kDLCPU, 0
        return original_device(self)

    __dlpack__._xla_metal = True  # type: ignore[attr-defined]
    __dlpack__.__doc__ = original_dlpack.__doc__
    __dlpack_device__.__doc__ = original_device.__doc__
    ArrayImpl.__dlpack__ = __dlpack__  # type: ignore[method-assign]
    ArrayImpl.__dlpack_device__ = __dlpack_device__  # type: ignore[method-assign]
