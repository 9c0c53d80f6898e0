"""The PJRT plugin through JAX: registration, jit, eager ops, transfers, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

TRANSFER_DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                   np.uint32, np.uint64, np.float16, ml_dtypes.bfloat16, np.float32,
                   np.float64, np.complex64, np.complex128]


def _sample(dtype, shape) -> np.ndarray:
    rng = np.random.default_rng(0)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def test_device_is_registered(metal: jax.Device) -> None:
    assert metal.platform == "metal"
    assert metal.id == 0
    assert "MLX" in metal.device_kind
    # opt-in on Linux: the default backend stays JAX's own (cpu here, cuda on a GPU box)
    assert jax.default_backend() != "metal"


@pytest.mark.parametrize("dtype", TRANSFER_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(), (0,), (5,), (3, 4), (2, 0, 3), (2, 3, 4)])
def test_transfer_round_trip(metal: jax.Device, dtype, shape) -> None:
    host = _sample(dtype, shape)
    with jax.enable_x64(True):  # 64-bit types travel as themselves, not narrowed by JAX
        on_device = jax.device_put(host, metal)
        assert on_device.devices() == {metal}
        back = np.asarray(on_device)
    assert back.shape == host.shape
    assert back.dtype == host.dtype
    np.testing.assert_array_equal(back, host)


@pytest.mark.parametrize("dtype", [np.int8, np.float32, np.complex64, np.complex128,
                                   ml_dtypes.bfloat16],
                         ids=lambda d: np.dtype(d).name)
def test_transfer_honours_strides(metal: jax.Device, dtype) -> None:
    base = _sample(dtype, (6, 8))
    for view in (base[:, ::2], base.T, base[::-1, 1:7:3], np.asfortranarray(base)):
        with jax.enable_x64(True):  # (complex128 travels as itself)
            back = np.asarray(jax.device_put(view, metal))
        assert back.dtype == view.dtype
        np.testing.assert_array_equal(back, view)


def test_jit_runs_on_metal(metal: jax.Device) -> None:
    x = jax.device_put(np.arange(6, dtype=np.float32).reshape(2, 3), metal)
    y = jax.jit(lambda a: jnp.sin(a) * 2 + 1)(x)
    assert y.devices() == {metal}
    np.testing.assert_allclose(np.asarray(y), np.sin(np.asarray(x)) * 2 + 1, rtol=1e-6)


def test_eager_ops_run_on_metal(metal: jax.Device) -> None:
    with jax.default_device(metal):
        a = jnp.arange(12.0).reshape(3, 4)
        b = (a * 2 - 1).sum(axis=0)
    assert b.devices() == {metal}
    np.testing.assert_allclose(np.asarray(b), (np.arange(12.0).reshape(3, 4) * 2 - 1).sum(0))


def test_output_layout_and_multiple_results(metal: jax.Device) -> None:
    x = jax.device_put(np.arange(24, dtype=np.int32).reshape(2, 3, 4), metal)
    t, s = jax.jit(lambda a: (a.transpose(2, 0, 1), a.sum()))(x)
    np.testing.assert_array_equal(np.asarray(t), np.arange(24).reshape(2, 3, 4).transpose(2, 0, 1))
    assert int(s) == 276


def test_unsupported_custom_call_names_target_and_line(metal: jax.Device) -> None:
    def f(x):
        return jax.ffi.ffi_call("xla_metal_test_missing_target",
                                jax.ShapeDtypeStruct(x.shape, x.dtype))(x)

    x = jax.device_put(np.ones(3, np.float32), metal)
    with pytest.raises(Exception) as info:
        jax.jit(f)(x)
    message = str(info.value)
    assert "xla_metal_test_missing_target" in message
    assert "not supported on metal" in message
    assert "test_plugin.py" in message  # the user's source line


def test_an_op_complex128_cannot_run_is_refused_by_name(metal: jax.Device) -> None:
    host = np.ones(4, np.complex128)  # (emulated, but not for sorts: compiler/complex128.py)
    with jax.enable_x64(True), pytest.raises(Exception, match="complex128"):
        jax.jit(jnp.sort)(jax.device_put(host, metal)).block_until_ready()


def test_error_leaves_the_process_usable(metal: jax.Device) -> None:
    x = jax.device_put(np.ones(3, np.float32), metal)
    with pytest.raises(Exception, match="missing_target_2"):
        jax.jit(lambda a: jax.ffi.ffi_call("missing_target_2",
                                           jax.ShapeDtypeStruct(a.shape, a.dtype))(a))(x)
    np.testing.assert_allclose(np.asarray(jax.jit(lambda a: a + 1)(x)), [2, 2, 2])


def test_deleted_buffer_is_an_error(metal: jax.Device) -> None:
    x = jax.device_put(np.ones(3, np.float32), metal)
    x.delete()
    with pytest.raises(RuntimeError, match="deleted"):
        jax.jit(lambda a: a + 1)(x)


@pytest.mark.parametrize("dtype, shape, described", [
    (np.int32, (3,), r"s32\[3\]"),          # another element type
    (np.float32, (3, 1), r"f32\[3,1\]"),    # another shape, the same number of elements
    (np.float32, (), r"f32\[\]"),
    (np.complex128, (3,), r"c128\[3\]"),    # a type held in another form (float64 pairs)
])
def test_argument_of_another_type_is_refused_by_execute(metal: jax.Device, dtype, shape,
                                                        described) -> None:
    # JAX checks avals before it calls a plugin; a frontend driving the executable directly
    # (as here, or from C) reaches Execute's own check.
    x = jax.device_put(np.ones(3, np.float32), metal)
    executable = jax.jit(lambda a: a + 1).lower(x).compile()._executable.xla_executable
    with jax.enable_x64(True):  # (else complex128 would become complex64)
        wrong = jax.device_put(np.ones(shape, dtype), metal)
    with pytest.raises(RuntimeError, match=rf"\[execute\] argument 0 is {described}, the "
                                           r"program expects f32\[3\]"):
        executable.execute_sharded([wrong])
    (result,), = executable.execute_sharded([x]).disassemble_into_single_device_arrays()
    np.testing.assert_array_equal(np.asarray(result), [2, 2, 2])
    np.testing.assert_array_equal(np.asarray(wrong), np.ones(shape, dtype))  # kept intact

def test_deleted_buffers_are_released_in_a_batch(metal: jax.Device) -> None:
    # C++ queues buffer releases and hands them to Python before its next call into it
    # (pjrt/python_runtime.cc, ReleaseBuffer): the arrays are freed then, not lost.
    from xla_metal.runtime import api

    xs = [jax.device_put(np.full(1000, i, np.float32), metal) for i in range(10)]
    live = len(api._handles)
    for x in xs:
        x.delete()
    assert len(api._handles) == live  # queued
    metal.memory_stats()  # any call into Python hands the queue over first
    assert len(api._handles) == live - 10
    # past the batch size (256) the releasing thread hands them over itself
    ys = [jax.device_put(np.float32(i), metal) for i in range(300)]
    live = len(api._handles)
    del ys
    assert len(api._handles) <= live - 256


def _losses(platform: str) -> list[float]:
    env = dict(os.environ, JAX_PLATFORMS=platform)
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "train_mlp.py"),
                          "--steps", "40", "--every", "10"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"({platform})" in out.stdout
    return [float(line.split()[-1]) for line in out.stdout.splitlines()
            if line.startswith("step")]


def test_training_program_gives_the_same_losses_as_cpu() -> None:
    metal_losses = _losses("metal")
    cpu_losses = _losses("cpu")
    assert len(metal_losses) == len(cpu_losses) == 5
    np.testing.assert_allclose(metal_losses, cpu_losses, rtol=2e-4)
    assert metal_losses[-1] < metal_losses[0]


def test_compiled_as_text_is_the_stablehlo_program(metal: jax.Device) -> None:
    x = jax.device_put(np.ones(3, np.float32), metal)
    text = jax.jit(lambda a: jnp.cos(a) + 2).lower(x).compile().as_text()
    assert "cosine" in text  # JAX prints our StableHLO as HLO text


def test_serialize_executable_round_trip(metal: jax.Device) -> None:
    from jax.experimental.serialize_executable import deserialize_and_load, serialize

    x = jax.device_put(np.arange(4, dtype=np.float32), metal)
    compiled = jax.jit(lambda a: a * 3 - 1).lower(x).compile()
    payload, in_tree, out_tree = serialize(compiled)
    loaded = deserialize_and_load(payload, in_tree, out_tree, backend="metal")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.arange(4) * 3 - 1)


def test_program_far_beyond_memory_is_an_error(metal: jax.Device) -> None:
    x = jax.device_put(np.ones(3, np.float32), metal)
    with pytest.raises(Exception, match=r"RESOURCE_EXHAUSTED: \[memory\].*test_plugin.py"):
        jax.jit(lambda a: jnp.broadcast_to(a[0], (1 << 20, 1 << 20)) + 1)(x)
    np.testing.assert_allclose(np.asarray(jax.jit(lambda a: a * 2)(x)), [2, 2, 2])


def test_donation_gives_up_the_argument_and_stays_correct(metal: jax.Device) -> None:
    x = jax.device_put(np.arange(4, dtype=np.float32), metal)
    y = jax.device_put(np.ones(4, np.float32), metal)
    step = jax.jit(lambda a, b: a * 2 + b, donate_argnums=0)
    np.testing.assert_array_equal(np.asarray(step(x, y)), np.arange(4) * 2 + 1)
    assert x.is_deleted() and not y.is_deleted()


@pytest.mark.parametrize("size", [8, 1 << 20])  # run inline, and asynchronously
def test_donated_memory_holds_the_result(metal: jax.Device, size: int) -> None:
    # MLX writes a result into an input's memory only when nothing else holds that input:
    # Execute must not keep a reference of its own while MLX evaluates.
    made = jax.jit(lambda a: a + 0.5)(jax.device_put(np.ones(size, np.float32), metal))
    address = made.unsafe_buffer_pointer()
    step = jax.jit(lambda a: a * 2.0 + 1.0, donate_argnums=0)
    out = step(made)
    assert out.unsafe_buffer_pointer() == address
    again = step(out)
    assert again.unsafe_buffer_pointer() == address
    np.testing.assert_array_equal(np.asarray(again), np.full(size, 9.0, np.float32))


def test_donating_a_transferred_array_leaves_the_host_array_alone(metal: jax.Device) -> None:
    # A result may be written into a donated buffer's memory: that memory must be the
    # buffer's own, never the host array it was made from.
    host = np.ones(1 << 16, np.float32)
    out = jax.jit(lambda a: a * 5.0, donate_argnums=0)(jax.device_put(host, metal))
    np.testing.assert_array_equal(np.asarray(out), np.full(1 << 16, 5.0, np.float32))
    np.testing.assert_array_equal(host, np.ones(1 << 16, np.float32))


def test_donated_array_held_by_another_buffer_is_not_overwritten(metal: jax.Device) -> None:
    def twice(a: jax.Array) -> tuple[jax.Array, jax.Array]:
        b = a + 0.5
        return b, b  # two results that may hold the very same MLX array

    first, second = jax.jit(twice)(jax.device_put(np.arange(1 << 16, dtype=np.float32), metal))
    out = jax.jit(lambda a: a * 2.0, donate_argnums=0)(first)
    expected = np.arange(1 << 16, dtype=np.float32) + 0.5
    np.testing.assert_array_equal(np.asarray(out), expected * 2)
    np.testing.assert_array_equal(np.asarray(second), expected)


def test_same_array_donated_and_passed_again_is_refused(metal: jax.Device) -> None:
    # As on JAX's CPU backend: a donated buffer's memory may hold results, so it cannot also
    # be read as another argument of the same call. The buffer itself is left untouched.
    z = jax.device_put(np.arange(4, dtype=np.float32), metal)
    step = jax.jit(lambda a, b: a * 2 + b, donate_argnums=0)
    with pytest.raises(RuntimeError, match=r"arguments 0 and 1 .* same buffer, and it is donated"):
        step(z, z)
    assert not z.is_deleted()
    np.testing.assert_array_equal(np.asarray(z), np.arange(4))
    both = jax.jit(lambda a, b: a + b, donate_argnums=(0, 1))
    with pytest.raises(RuntimeError, match="same buffer, and it is donated"):
        both(z, z)
    kept = jax.jit(lambda a, b: a * 2 + b)  # no donation: the same buffer twice is fine
    np.testing.assert_array_equal(np.asarray(kept(z, z)), np.arange(4) * 3)


def test_array_donated_and_captured_stays_correct(metal: jax.Device) -> None:
    import warnings

    w = jax.device_put(np.arange(4, dtype=np.float32) + 1, metal)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # JAX may warn that it cannot donate
        out = jax.jit(lambda a: a * 3 + w, donate_argnums=0)(w)
    np.testing.assert_array_equal(np.asarray(out), (np.arange(4) + 1) * 4)


def test_donated_array_cannot_be_used_again(metal: jax.Device) -> None:
    x = jax.device_put(np.arange(4, dtype=np.float32), metal)
    jax.jit(lambda a: a + 1, donate_argnums=0)(x)
    with pytest.raises(RuntimeError, match="deleted"):
        np.asarray(x)


def test_memory_stats_come_from_mlx(metal: jax.Device) -> None:
    x = jax.device_put(np.ones((256, 1024), np.float32), metal)
    stats = metal.memory_stats()
    assert stats is not None
    assert stats["bytes_in_use"] >= x.nbytes
    assert stats["peak_bytes_in_use"] >= stats["bytes_in_use"]
    assert stats["bytes_limit"] > 0


def test_jitted_function_with_no_results(metal: jax.Device) -> None:
    x = jax.device_put(np.ones(3, np.float32), metal)
    assert jax.jit(lambda a: None)(x) is None
    with jax.default_device(metal):
        assert jax.jit(lambda: None)() is None
