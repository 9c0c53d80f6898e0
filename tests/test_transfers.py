"""Buffers between places: copies on the device (PJRT_Buffer_CopyToDevice/CopyToMemory), raw
addresses (unsafe_buffer_pointer: PJRT_Buffer_UnsafePointer). DLPack: tests/test_dlpack.py."""

from __future__ import annotations

import ctypes as C

import jax
import ml_dtypes
import numpy as np
import pytest

DTYPES = [np.bool_, np.int8, np.int32, np.uint16, np.float16, ml_dtypes.bfloat16, np.float32,
          np.complex64]


def _sample(dtype, shape) -> np.ndarray:
    values = np.arange(int(np.prod(shape))).reshape(shape)
    return (values % 2 == 1) if np.dtype(dtype) == np.bool_ else values.astype(dtype)


def _read(address: int, like: np.ndarray) -> np.ndarray:
    """The bytes at `address`, read as a dense row-major array shaped like `like`."""
    raw = (C.c_char * like.nbytes).from_address(address)
    return np.frombuffer(bytes(raw), like.dtype).reshape(like.shape)


def test_memories_the_client_exposes(metal: jax.Device) -> None:
    # As XLA's CPU backend: the device memory, then the host kinds (tests/test_memory_kinds.py).
    assert [m.kind for m in metal.addressable_memories()] == ["device", "pinned_host",
                                                             "unpinned_host"]
    assert metal.default_memory().kind == "device"


def test_device_put_without_aliasing_makes_an_independent_copy(metal: jax.Device) -> None:
    x = jax.device_put(np.arange(6, dtype=np.float32), metal)
    y = jax.device_put(x, may_alias=False)
    z = jax.device_put(x, jax.sharding.SingleDeviceSharding(metal, memory_kind="device"),
                       may_alias=False)
    assert y is not x and z is not x
    x.delete()
    for copy in (y, z):
        assert copy.devices() == {metal}
        back = np.asarray(copy)
        assert back.shape == (6,)
        assert back.dtype == np.float32
        np.testing.assert_array_equal(back, np.arange(6, dtype=np.float32))


def test_device_put_to_a_memory_kind_we_do_not_have_is_an_error(metal: jax.Device) -> None:
    x = jax.device_put(np.ones(3, np.float32), metal)
    with pytest.raises(Exception, match="pinned_device"):
        jax.device_put(x, jax.sharding.SingleDeviceSharding(metal, memory_kind="pinned_device"))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_unsafe_buffer_pointer_addresses_the_row_major_data(metal: jax.Device, dtype) -> None:
    host = _sample(dtype, (3, 4))
    x = jax.device_put(host, metal)
    transposed = jax.jit(lambda v: v.T)(x)  # MLX's result is a strided view of x's memory
    for array, expected in ((x, host), (transposed, host.T)):
        address = array.unsafe_buffer_pointer()
        assert address == array.unsafe_buffer_pointer()  # stable
        read = _read(address, np.ascontiguousarray(expected))
        assert read.shape == expected.shape
        assert read.dtype == expected.dtype
        np.testing.assert_array_equal(read, expected)


def test_every_buffer_has_memory_of_its_own(metal: jax.Device) -> None:
    x = jax.device_put(np.arange(4, dtype=np.float32), metal)
    y = jax.jit(lambda v: v)(x)  # MLX hands back the argument itself
    z1, z2 = jax.jit(lambda v: (v, v))(x)
    r = jax.jit(lambda v: v.reshape(2, 2))(x)  # MLX shares memory with a reshape
    addresses = [a.unsafe_buffer_pointer() for a in (x, y, z1, z2, r)]
    assert len(set(addresses)) == len(addresses)
    for array in (x, y, z1, z2):
        np.testing.assert_array_equal(np.asarray(array), np.arange(4, dtype=np.float32))
    # Asking again changes nothing: an address once handed out stays the buffer's.
    assert [a.unsafe_buffer_pointer() for a in (x, y, z1, z2, r)] == addresses


def test_convert_to_the_same_type_keeps_the_buffer(metal: jax.Device) -> None:
    x = jax.device_put(np.zeros(5, np.float32), metal)
    same = jax.lax.convert_element_type(x, np.float32)
    other = jax.lax.convert_element_type(x, np.int32)
    assert same.unsafe_buffer_pointer() == x.unsafe_buffer_pointer()
    assert other.unsafe_buffer_pointer() != x.unsafe_buffer_pointer()


def test_unsafe_buffer_pointer_of_an_empty_buffer(metal: jax.Device) -> None:
    empty = jax.device_put(np.zeros((0, 3), np.float32), metal)
    assert empty.unsafe_buffer_pointer() == 0  # no data to point at
    assert np.asarray(empty).shape == (0, 3)


def test_unsafe_buffer_pointer_of_a_deleted_buffer_is_an_error(metal: jax.Device) -> None:
    x = jax.device_put(np.ones(3, np.float32), metal)
    x.delete()
    with pytest.raises(RuntimeError, match="deleted"):
        x.unsafe_buffer_pointer()
