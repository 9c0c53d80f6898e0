"""Host memory kinds ('pinned_host', 'unpinned_host') on metal, each compared with JAX's CPU
backend doing the same: the memories listed, device_put between kinds, jit with host-kind
inputs and outputs, and host offload inside jit (annotate_device_placement, compute_on).

MLX has one pool of memory, so a move between kinds is the value itself; what must match the
CPU backend is the values and the memory kind JAX reports (xla_metal/memory_kinds.py).
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.ad_checkpoint import checkpoint_name
from jax.experimental.compute_on import compute_on
from jax.sharding import SingleDeviceSharding

from xla_metal.compiler import compile_program
from xla_metal.errors import UnimplementedError
from xla_metal.memory_kinds import result_memory_ids

KINDS = ["device", "pinned_host", "unpinned_host"]
HOST_KINDS = ["pinned_host", "unpinned_host"]


def _on_both(metal, cpu, run):
    """run(device) on metal and on cpu; the results as (values, memory kind) pairs."""
    results = []
    for device in (metal, cpu):
        out = run(device)
        results.append([(np.asarray(o), o.sharding.memory_kind) for o in
                        jax.tree_util.tree_leaves(out)])
    (got, want) = results
    assert len(got) == len(want)
    for (got_value, got_kind), (want_value, want_kind) in zip(got, want, strict=True):
        assert got_kind == want_kind
        assert got_value.dtype == want_value.dtype and got_value.shape == want_value.shape
        np.testing.assert_allclose(got_value, want_value, rtol=1e-5, atol=1e-7)
    return got


def test_memories_match_the_cpu_backend(metal, cpu) -> None:
    assert [m.kind for m in metal.addressable_memories()] == \
        [m.kind for m in cpu.addressable_memories()] == KINDS
    assert metal.default_memory().kind == cpu.default_memory().kind == "device"
    for memory in metal.addressable_memories():
        assert memory.addressable_by_devices() == [metal]
        assert memory.kind in str(memory)


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.float16, jnp.bfloat16, np.float32,
                                   np.complex64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", KINDS)
def test_device_put_to_a_kind_and_back(metal, cpu, kind, dtype) -> None:
    host = (np.arange(12).reshape(3, 4) % 3).astype(dtype)

    def run(device):
        there = jax.device_put(host, SingleDeviceSharding(device, memory_kind=kind))
        back = jax.device_put(there, SingleDeviceSharding(device, memory_kind="device"))
        moved = jax.device_put(back, SingleDeviceSharding(device, memory_kind=kind))
        return there, back, moved

    got = _on_both(metal, cpu, run)
    assert [k for _, k in got] == [kind, "device", kind]
    for value, _ in got:
        np.testing.assert_array_equal(value, host)


@pytest.mark.parametrize("kind", HOST_KINDS)
def test_jit_of_a_host_array_reports_what_the_cpu_backend_does(metal, cpu, kind) -> None:
    # The CPU backend keeps 'pinned_host' through an unannotated jit and turns 'unpinned_host'
    # into 'device': JAX decides, through the result's mhlo.memory_kind.
    x = np.arange(6.0, dtype=np.float32)
    _on_both(metal, cpu, lambda d: jax.jit(lambda a: a * 2 + 1)(
        jax.device_put(x, SingleDeviceSharding(d, memory_kind=kind))))


@pytest.mark.parametrize("kind", HOST_KINDS)
def test_jit_with_host_kind_outputs_and_inputs(metal, cpu, kind) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)

    def run(device):
        s = SingleDeviceSharding(device)
        host = s.with_memory_kind(kind)
        to_host = jax.jit(lambda a: (jnp.sin(a), a * 2), out_shardings=(host, s))(
            jax.device_put(x, device))
        from_host = jax.jit(lambda a: a.sum(0), in_shardings=host, out_shardings=s)(
            jax.device_put(x, host))
        return to_host, from_host

    _on_both(metal, cpu, run)


def test_device_put_to_host_inside_jit(metal, cpu) -> None:
    x = np.arange(6, dtype=np.float32)

    def run(device):
        host = SingleDeviceSharding(device, memory_kind="pinned_host")
        dev = SingleDeviceSharding(device, memory_kind="device")

        @jax.jit
        def f(a):
            offloaded = jax.device_put(a * 3, host)  # annotate_device_placement
            return jax.device_put(offloaded, dev) + 1, offloaded

        return f(jax.device_put(x, device))

    got = _on_both(metal, cpu, run)
    assert [k for _, k in got] == ["device", "pinned_host"]


def _on_device_host(fn):
    """compute_on("device_host") in jax 0.10; jax 0.11 also asks where the results live."""
    if "out_memory_spaces" in inspect.signature(compute_on).parameters:
        return compute_on(compute_type="device_host",
                          out_memory_spaces=jax.memory.Space.Device)(fn)  # type: ignore[call-arg]
    return compute_on("device_host")(fn)


def test_compute_on_host_inside_jit(metal, cpu) -> None:
    @_on_device_host
    @jax.jit
    def on_host(a):
        return a * 3

    x = np.arange(6, dtype=np.float32)
    _on_both(metal, cpu, lambda d: jax.jit(lambda a: on_host(a) + 1)(jax.device_put(x, d)))


def test_grad_with_residuals_offloaded_to_the_host(metal, cpu) -> None:
    # Remat's offload policy: the named residual is saved to pinned_host for the backward pass.
    policy = jax.checkpoint_policies.save_and_offload_only_these_names(
        names_which_can_be_saved=[], names_which_can_be_offloaded=["h"],
        offload_src="device", offload_dst="pinned_host")

    def layer(w, a):
        h = checkpoint_name(jnp.sin(a @ w), "h")
        return jnp.sum(jnp.tanh(h) ** 2)

    grad = jax.jit(jax.grad(jax.checkpoint(layer, policy=policy)))
    x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4)
    _on_both(metal, cpu, lambda d: grad(jax.device_put(x, d), jax.device_put(x * 0.5, d)))


def test_placement_to_a_kind_metal_lacks_is_a_compile_error() -> None:
    text = """
    func.func @main(%a: tensor<4xf32>) -> tensor<4xf32> {
      %0 = stablehlo.custom_call @annotate_device_placement(%a) {has_side_effect = true,
          mhlo.frontend_attributes = {_xla_buffer_placement = "pinned_device"}}
          : (tensor<4xf32>) -> tensor<4xf32>
      return %0 : tensor<4xf32>
    }"""
    with pytest.raises(UnimplementedError, match=r"\[memory\] annotate_device_placement .*"
                                                 r"'pinned_device'"):
        compile_program(text.encode())


def test_result_memory_kinds_come_from_the_program() -> None:
    # What jit(out_shardings=(host, device)) writes on the entry function's results.
    text = """
    func.func public @main(%a: tensor<3xf32>) -> (tensor<3xf32> {mhlo.memory_kind = "pinned_host"},
                                                 tensor<3xf32> {mhlo.memory_kind = "device"},
                                                 tensor<3xf32>) {
      return %a, %a, %a : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>
    }"""
    main = compile_program(text.encode()).module.main
    assert result_memory_ids(main.result_attrs, 3) == [1, 0, 0]
    assert result_memory_ids([], 2) == [0, 0]
    with pytest.raises(UnimplementedError, match=r"\[memory\] result 0 .*'pinned_device'"):
        result_memory_ids([{"mhlo.memory_kind": "pinned_device"}], 1)
