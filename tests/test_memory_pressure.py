"""Memory pressure: a program or buffer far beyond memory is a Python error, and the process
then runs the next program correctly. Nothing here allocates the huge sizes it asks for."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

HUGE = (1 << 22, 1 << 22)  # 2**44 float32 elements: 64 TiB


def _still_works(metal: jax.Device) -> None:
    x = jax.device_put(np.arange(6, dtype=np.float32), metal)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda a: a * 2 + 1)(x)),
                                  np.arange(6, dtype=np.float32) * 2 + 1)


def test_program_beyond_memory_is_an_error_that_names_the_value(metal: jax.Device) -> None:
    def f(x):
        return jnp.zeros(HUGE, jnp.float32) + x

    with pytest.raises(Exception, match=r"RESOURCE_EXHAUSTED: \[memory\] result of .* needs "
                                        r"65536\.0 GiB \(tensor<4194304x4194304xfloat32>\), "
                                        r"more than this machine's .* GiB "
                                        r"\(at .*test_memory_pressure\.py:\d+"):
        jax.jit(f)(jax.device_put(np.float32(1), metal))
    _still_works(metal)


def test_huge_broadcast_device_put_is_an_error(metal: jax.Device) -> None:
    # A zero-stride view of one number: numpy holds 4 bytes, the array it describes 64 TiB.
    view = np.broadcast_to(np.float32(1), HUGE)
    with pytest.raises(Exception, match=r"RESOURCE_EXHAUSTED: \[transfer\] a buffer of "
                                        r"17592186044416 elements of 4 bytes is larger than "
                                        r"this machine's memory"):
        jax.device_put(view, metal)
    _still_works(metal)


def test_huge_argument_shape_is_refused_before_running(metal: jax.Device) -> None:
    # Lowering for a 64 TiB argument: the compile refuses it by name.
    spec = jax.ShapeDtypeStruct(HUGE, jnp.float32,
                                sharding=jax.sharding.SingleDeviceSharding(metal))
    lowered = jax.jit(lambda a: a + 1).lower(spec)
    with pytest.raises(Exception, match=r"\[memory\] argument of @main needs 65536\.0 GiB"):
        lowered.compile()
    _still_works(metal)
