"""DLPack both ways, each compared with JAX's CPU backend doing the same.

Export (`np.from_dlpack(x)`, `x.__dlpack__()`) goes through xla_metal/jax_plugin/dlpack.py:
a kDLCPU tensor over the metal buffer's own memory, no copy. Import
(`jax.dlpack.from_dlpack(a, device=metal)`) is JAX's own: through the CPU, then onto metal.
"""

from __future__ import annotations

import ctypes as C
import gc

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

# NumPy has no DLPack code for bfloat16 (it refuses bfloat16 from JAX's CPU backend too):
# bfloat16 is checked through JAX's importer instead.
NUMPY_DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                np.uint32, np.uint64, np.float16, np.float32, np.float64, np.complex64]
ALL_DTYPES = [*NUMPY_DTYPES, ml_dtypes.bfloat16]


def _sample(dtype, shape) -> np.ndarray:
    values = np.arange(int(np.prod(shape))).reshape(shape) - 3
    if np.dtype(dtype) == np.bool_:
        return values % 2 == 1
    if np.dtype(dtype).kind == "u":
        values = values + 3
    if np.dtype(dtype).kind == "c":
        return (values + 0.5j * values).astype(dtype)
    return values.astype(dtype)


def _name(dtype) -> str:
    return np.dtype(dtype).name


@pytest.mark.parametrize("dtype", NUMPY_DTYPES, ids=_name)
def test_numpy_from_dlpack_of_a_metal_array_matches_the_cpu_backend(metal, cpu, dtype) -> None:
    host = _sample(dtype, (3, 4))
    with jax.enable_x64(np.dtype(dtype).itemsize == 8):
        on_metal = jax.device_put(host, metal)
        on_cpu = jax.device_put(host, cpu)
        assert on_metal.__dlpack_device__() == on_cpu.__dlpack_device__()
        got = np.from_dlpack(on_metal)
        want = np.from_dlpack(on_cpu)
    assert got.dtype == want.dtype == np.dtype(dtype)
    assert got.shape == want.shape == (3, 4)
    np.testing.assert_array_equal(got, want)
    assert not got.flags.writeable  # NumPy asks for DLPack 1.0, which can say read-only


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=_name)
def test_jax_from_dlpack_of_a_metal_array_matches_the_cpu_backend(metal, cpu, dtype) -> None:
    # JAX's importer asks for the pre-1.0 capsule, and takes bfloat16.
    host = _sample(dtype, (2, 5))
    with jax.enable_x64(np.dtype(dtype).itemsize == 8):
        from_metal = jax.dlpack.from_dlpack(jax.device_put(host, metal))
        from_cpu = jax.dlpack.from_dlpack(jax.device_put(host, cpu))
        back_on_metal = jax.dlpack.from_dlpack(jax.device_put(host, metal), device=metal)
        assert from_metal.devices() == {cpu}  # the capsule is a CPU tensor
        assert back_on_metal.devices() == {metal}
        for result in (from_metal, back_on_metal):
            assert result.dtype == from_cpu.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(np.asarray(result), np.asarray(from_cpu))


def test_the_export_is_a_view_of_the_buffer_memory(metal) -> None:
    x = jax.device_put(np.arange(6, dtype=np.float32), metal)
    view = np.from_dlpack(x)
    assert view.ctypes.data == x.unsafe_buffer_pointer()
    assert np.shares_memory(view, np.from_dlpack(x))
    copied = np.from_dlpack(x, copy=True)
    assert not np.shares_memory(copied, view)
    np.testing.assert_array_equal(copied, view)


@pytest.mark.parametrize("end", ["delete", "donate", "drop"])
def test_the_view_outlives_the_jax_array(metal, end) -> None:
    host = np.arange(1000, dtype=np.float32)
    x = jax.jit(lambda v: v * 3)(jax.device_put(host, metal))
    view = np.from_dlpack(x)
    if end == "delete":
        x.delete()
    elif end == "donate":
        jax.jit(lambda v: v + 1, donate_argnums=0)(x)
    del x
    gc.collect()
    # New arrays of the same size must not land in the memory the view still reads.
    others = [jax.jit(lambda v: v - 7)(jax.device_put(host, metal)) for _ in range(4)]
    np.testing.assert_array_equal(view, host * 3)
    np.testing.assert_array_equal(np.asarray(others[0]), host - 7)


def test_an_unconsumed_capsule_frees_nothing_early(metal) -> None:
    x = jax.device_put(np.arange(4, dtype=np.int32), metal)
    capsule = x.__dlpack__()
    del capsule
    gc.collect()
    np.testing.assert_array_equal(np.asarray(x), np.arange(4, dtype=np.int32))


def test_a_strided_metal_result_is_exported_dense(metal, cpu) -> None:
    host = np.arange(12, dtype=np.float32).reshape(3, 4)
    transposed = jax.jit(lambda v: v.T[::2])(jax.device_put(host, metal))  # MLX: a strided view
    want = np.from_dlpack(jax.jit(lambda v: v.T[::2])(jax.device_put(host, cpu)))
    got = np.from_dlpack(transposed)
    assert got.shape == want.shape == (2, 3)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(0,), (3, 0)])
def test_zero_size(metal, cpu, shape) -> None:
    host = np.zeros(shape, np.float32)
    got = np.from_dlpack(jax.device_put(host, metal))
    want = np.from_dlpack(jax.device_put(host, cpu))
    assert got.shape == want.shape == shape
    assert got.dtype == want.dtype
    imported = jax.dlpack.from_dlpack(host, device=metal)
    assert imported.devices() == {metal} and imported.shape == shape


def test_import_of_a_non_contiguous_numpy_array_onto_metal(metal, cpu) -> None:
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    # A transposition and an offset into a row-major buffer: JAX's importer takes both.
    for strided in (base.T, base[1:], base.reshape(2, 3, 4).transpose(2, 0, 1)):
        on_metal = jax.dlpack.from_dlpack(strided, device=metal)
        on_cpu = jax.dlpack.from_dlpack(strided, device=cpu)
        assert on_metal.devices() == {metal}
        np.testing.assert_allclose(np.asarray(jnp.sin(on_metal)), np.asarray(jnp.sin(on_cpu)),
                                   rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(on_metal), strided)
    # Gaps between elements: JAX's importer refuses them whatever the device.
    for device in (cpu, metal):
        with pytest.raises(Exception, match="trivial \\(compact\\) striding"):
            jax.dlpack.from_dlpack(base[:, ::2], device=device)


def test_import_from_a_capsule_onto_metal(metal) -> None:
    host = np.arange(6, dtype=np.int16).reshape(2, 3)
    on_metal = jax.dlpack.from_dlpack(host, device=metal)
    again = jax.dlpack.from_dlpack(on_metal, device=metal)  # metal -> capsule -> metal
    assert again.devices() == {metal}
    np.testing.assert_array_equal(np.asarray(again), host)


def test_export_errors_name_the_problem(metal) -> None:
    x = jax.device_put(np.ones(3, np.float32), metal)
    with pytest.raises(BufferError, match=r"\[dlpack\].*kDLCPU"):
        x.__dlpack__(dl_device=(2, 0))  # kDLCUDA
    f8 = jax.device_put(np.ones(3, ml_dtypes.float8_e4m3fn), metal)
    with pytest.raises(BufferError, match=r"\[dlpack\] float8_e4m3fn"):
        np.from_dlpack(f8)
    x.delete()
    with pytest.raises(RuntimeError, match="deleted"):
        np.from_dlpack(x)
    np.testing.assert_array_equal(np.from_dlpack(f8.astype(np.float32)), np.ones(3, np.float32))


def test_cpu_arrays_keep_jax_s_own_export(cpu) -> None:
    x = jax.device_put(np.arange(3, dtype=np.float32), cpu)
    view = np.from_dlpack(x)
    assert view.ctypes.data == x.unsafe_buffer_pointer()
    np.testing.assert_array_equal(view, np.arange(3, dtype=np.float32))


class _DLTensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("device_type", C.c_int32), ("device_id", C.c_int32),
                ("ndim", C.c_int32), ("code", C.c_uint8), ("bits", C.c_uint8),
                ("lanes", C.c_uint16), ("shape", C.POINTER(C.c_int64)),
                ("strides", C.POINTER(C.c_int64)), ("byte_offset", C.c_uint64)]


class _DLManagedTensorVersioned(C.Structure):
    _fields_ = [("major", C.c_uint32), ("minor", C.c_uint32), ("manager_ctx", C.c_void_p),
                ("deleter", C.c_void_p), ("flags", C.c_uint64), ("dl_tensor", _DLTensor)]


def test_versioned_bfloat16_capsule_as_dlpack_spells_it(metal) -> None:
    # No consumer here takes a DLPack 1.0 bfloat16 tensor (NumPy has no bfloat16 code, jaxlib
    # takes only pre-1.0 capsules), so the capsule is read as the DLPack header lays it out.
    get_pointer = C.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = C.c_void_p
    get_pointer.argtypes = [C.py_object, C.c_char_p]
    x = jax.device_put(_sample(ml_dtypes.bfloat16, (2, 3)), metal)
    capsule = x.__dlpack__(max_version=(1, 0))
    managed = _DLManagedTensorVersioned.from_address(get_pointer(capsule, b"dltensor_versioned"))
    tensor = managed.dl_tensor
    assert (managed.major, managed.flags & 1) == (1, 1)  # read-only
    assert (tensor.device_type, tensor.device_id) == (1, 0)  # kDLCPU
    assert (tensor.code, tensor.bits, tensor.lanes) == (4, 16, 1)  # kDLBfloat
    assert [tensor.shape[i] for i in range(tensor.ndim)] == [2, 3]
    assert tensor.data + tensor.byte_offset == x.unsafe_buffer_pointer()
