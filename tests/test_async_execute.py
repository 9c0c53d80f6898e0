"""Asynchronous execution: Execute returns once MLX has the work; results complete later.

Programs above the inline size (runtime/execution.py) return before MLX has computed them;
their buffers' ready events complete when it has, whether someone waits for them
(block_until_ready, np.asarray) or not (the background completion thread). Every value is
checked against JAX's CPU backend.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from tests.direct import artifact
from xla_metal.compiler import compile_program
from xla_metal.runtime import execution

SHAPE = (192, 192)  # 36864 elements: above the inline size, so these programs run async


def _step(a, b):
    return jnp.tanh(a * 0.5 + b) - 0.25 * a


def _host(rng: np.random.Generator, shape=SHAPE) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def test_the_inline_size_separates_small_and_large_programs() -> None:
    small = compile_program(artifact(_step, np.ones((4, 4), np.float32),
                                     np.ones((4, 4), np.float32)))
    large = compile_program(artifact(_step, np.ones(SHAPE, np.float32),
                                     np.ones(SHAPE, np.float32)))
    loop = compile_program(artifact(
        lambda a: jax.lax.fori_loop(0, 3, lambda i, v: v * 2.0, a), np.ones(4, np.float32)))
    assert execution.runs_inline(small.module)
    assert not execution.runs_inline(large.module)
    assert not execution.runs_inline(loop.module)  # a loop's cost is not known in advance


def test_a_chain_of_calls_not_waited_for_matches_cpu(metal, cpu) -> None:
    rng = np.random.default_rng(0)
    a, b = _host(rng), _host(rng)
    f = jax.jit(_step)
    results = {}
    for device in (metal, cpu):
        x, y = jax.device_put(a, device), jax.device_put(b, device)
        for _ in range(3 * execution.MAX_IN_FLIGHT):  # past the in-flight bound
            x = f(x, y)
        results[device.platform] = np.asarray(x)
    np.testing.assert_allclose(results["metal"], results["cpu"], rtol=1e-5, atol=1e-6)


def test_block_until_ready_waits_and_is_ready_follows(metal) -> None:
    rng = np.random.default_rng(1)
    a, b = _host(rng), _host(rng)
    x = jax.device_put(a, metal)
    y = jax.jit(_step)(x, jax.device_put(b, metal))
    y.block_until_ready()
    assert y.is_ready()
    np.testing.assert_allclose(np.asarray(y), np.asarray(_step(a, b)), rtol=1e-5, atol=1e-6)


def test_results_nobody_waits_for_still_complete(metal) -> None:
    # is_ready() never waits: only the background thread can complete these events.
    rng = np.random.default_rng(2)
    x = jax.device_put(_host(rng), metal)
    y = jax.jit(lambda v: jnp.sin(v) * 3.0)(x)
    deadline = time.monotonic() + 60
    while not y.is_ready():
        assert time.monotonic() < deadline, "the completion thread never completed the event"
        time.sleep(0.01)
    np.testing.assert_allclose(np.asarray(y), np.sin(np.asarray(x)) * 3.0, rtol=1e-6)


def test_inputs_deleted_while_their_consumer_runs(metal) -> None:
    rng = np.random.default_rng(3)
    a, b = _host(rng), _host(rng)
    x, y = jax.device_put(a, metal), jax.device_put(b, metal)
    z = jax.jit(_step)(x, y)
    x.delete()
    y.delete()
    np.testing.assert_allclose(np.asarray(z), np.asarray(_step(a, b)), rtol=1e-5, atol=1e-6)


def test_donated_arguments_in_an_async_loop(metal) -> None:
    rng = np.random.default_rng(4)
    a, b = _host(rng), _host(rng)
    f = jax.jit(_step, donate_argnums=0)
    x, y = jax.device_put(a, metal), jax.device_put(b, metal)
    want = a
    for _ in range(8):
        x = f(x, y)
        want = np.asarray(_step(want, b))
    np.testing.assert_allclose(np.asarray(x), want, rtol=1e-5, atol=1e-5)


def test_loops_run_async_and_match_cpu(metal, cpu) -> None:
    f = jax.jit(lambda v: jax.lax.fori_loop(0, 5, lambda i, w: jnp.cos(w) + i, v))
    host = np.linspace(-1, 1, 16, dtype=np.float32)
    np.testing.assert_allclose(np.asarray(f(jax.device_put(host, metal))),
                               np.asarray(f(jax.device_put(host, cpu))), rtol=1e-6, atol=1e-6)
