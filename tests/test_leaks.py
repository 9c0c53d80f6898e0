"""No leaks over long runs: host RSS and MLX's active memory stay flat.

Each workload runs in a fresh process: warm up, measure, run 10,000 more iterations, measure
again. The bounds are far below what any per-iteration leak would add (even 100 bytes per
iteration is 1 MB over 10,000) yet above the noise of the allocators; the measured growth is
in docs/robustness.md.

No reference cycles either: compiling, running and dropping a jitted function leaves nothing
for Python's cyclic garbage collector, which JAX's own tests check on every backend
(tests/core_test.py, test_reference_cycles*). A cycle holding an executable keeps its
constants and compiled graphs alive until a collection happens to run.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import io_callback

ITERATIONS = int(os.environ.get("XLA_METAL_LEAK_ITERATIONS", "10000"))
RSS_BOUND = 4 * 2**20          # bytes of host RSS growth allowed over the measured run
ACTIVE_BOUND = 16 * 2**10      # bytes of MLX active memory growth allowed

WORKLOAD = r"""
import json, resource, sys
import jax, jax.numpy as jnp, numpy as np, mlx.core as mx

kind, iterations = sys.argv[1], int(sys.argv[2])
metal = jax.devices("metal")[0]


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


if kind == "train":
    def loss(params, x, y):
        hidden = jnp.tanh(x @ params["w1"] + params["b1"])
        return jnp.mean((hidden @ params["w2"] - y) ** 2)

    @jax.jit
    def step(params, x, y):
        grads = jax.grad(loss)(params, x, y)
        return jax.tree.map(lambda p, g: p - 0.01 * g, params, grads)

    rng = np.random.default_rng(0)
    params = jax.device_put({"w1": rng.standard_normal((8, 16)).astype(np.float32) * 0.1,
                             "b1": np.zeros(16, np.float32),
                             "w2": rng.standard_normal((16, 1)).astype(np.float32) * 0.1},
                            metal)
    x = jax.device_put(rng.standard_normal((32, 8)).astype(np.float32), metal)
    y = jax.device_put(rng.standard_normal((32, 1)).astype(np.float32), metal)

    def one():
        global params
        params = step(params, x, y)
else:
    host = np.arange(256, dtype=np.float32)

    def one():
        back = np.asarray(jax.device_put(host, metal))
        assert back[255] == 255.0


for _ in range(1000):  # warm-up: compiles, caches, allocator pools
    one()
jax.block_until_ready(params if kind == "train" else None)
before = (rss(), mx.get_active_memory())
for _ in range(iterations):
    one()
if kind == "train":
    jax.block_until_ready(params)
    assert np.isfinite(np.asarray(params["w1"])).all()
after = (rss(), mx.get_active_memory())
print(json.dumps(dict(rss_before=before[0], rss_after=after[0],
                      active_before=before[1], active_after=after[1])))
"""


@pytest.mark.parametrize("kind", ["train", "round_trip"])
def test_memory_stays_flat(kind: str) -> None:
    env = dict(os.environ, JAX_PLATFORMS="metal,cpu")
    run = subprocess.run([sys.executable, "-c", WORKLOAD, kind, str(ITERATIONS)],
                         capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-5000:]
    m = json.loads(run.stdout.strip().splitlines()[-1])
    rss_growth = m["rss_after"] - m["rss_before"]
    active_growth = m["active_after"] - m["active_before"]
    print(f"\n{kind}: {ITERATIONS} iterations, RSS {m['rss_before'] / 2**20:.1f} -> "
          f"{m['rss_after'] / 2**20:.1f} MiB ({rss_growth / 2**10:+.0f} KiB), MLX active "
          f"{m['active_before']} -> {m['active_after']} bytes")
    assert rss_growth < RSS_BOUND, m
    assert active_growth < ACTIVE_BOUND, m


def _cycles_left_by(run: Callable[[], Any]) -> tuple[int, collections.Counter[str]]:
    """Objects in reference cycles that `run()` leaves behind, and their types."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run()
        count = gc.collect()
        kinds = collections.Counter(type(o).__name__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return count, kinds


CYCLE_PROGRAMS: dict[str, Callable[[Any], Any]] = {
    "reduce": lambda a: a.sum(),
    "gradient": jax.grad(lambda a: jnp.tanh(a @ a.T).sum()),
    "scan": lambda a: jax.lax.scan(lambda c, r: (c + r, c * r), a[0], a)[1],
    "while": lambda a: jax.lax.while_loop(lambda c: c.sum() < 100, lambda c: c * 2, a),
    "cond": lambda a: jax.lax.cond(a.sum() > 0, jnp.sin, jnp.cos, a),
    "softmax gradient": jax.grad(lambda a: (jax.nn.softmax(a) * a).sum()),
    "sort": lambda a: jnp.sort(a, axis=0),
    "pure_callback": lambda a: jax.pure_callback(lambda h: h * 2,
                                                 jax.ShapeDtypeStruct(a.shape, a.dtype), a),
    "ordered io_callback": lambda a: io_callback(
        lambda h: h + 1, jax.ShapeDtypeStruct(a.shape, a.dtype), a, ordered=True),
}


@pytest.mark.parametrize("name", list(CYCLE_PROGRAMS))
def test_jit_compile_run_and_drop_leave_no_reference_cycles(metal: jax.Device, name: str) -> None:
    x = jax.device_put(np.arange(32, dtype=np.float32).reshape(4, 8) / 32, metal)
    program = CYCLE_PROGRAMS[name]
    # a new function: it compiles, runs, and is dropped with its executable (jitting
    # `program` itself would leave the executable in JAX's cache, keyed by that function)
    count, kinds = _cycles_left_by(
        lambda: jax.block_until_ready(jax.jit(lambda a: program(a))(x)))
    assert count == 0, f"{count} objects in reference cycles: {dict(kinds.most_common(8))}"


def test_transfers_introspection_and_eager_ops_leave_no_reference_cycles(
        metal: jax.Device) -> None:
    x = jax.device_put(np.ones((4, 8), np.float32), metal)
    compiled = jax.jit(lambda a: a * 3).lower(x).compile()
    runs = {
        "transfer": lambda: np.asarray(jax.device_put(np.ones((3, 5), np.float32), metal)),
        "as_text and cost_analysis": lambda: (compiled.as_text(), compiled.cost_analysis()),
        "eager op": lambda: np.asarray(jnp.sin(x) + 1),
    }
    for what, run in runs.items():
        count, kinds = _cycles_left_by(run)
        assert count == 0, f"{what}: {count} objects in cycles: {dict(kinds.most_common(8))}"
