"""Cost of a tiny jitted call and of an eager jnp op, on 'metal' and on JAX's CPU backend.

    python tools/bench_dispatch.py [--calls 10000] [--repeats 5]

Prints the median microseconds per call for each platform, alternating the contenders, and
the ratio metal / cpu. Each `jit` and `eager` call waits for its result, so those rows are
dispatch plus completion. The `chain` row is a loop that does not wait: 256x256 steps
(tanh(x @ w) * 0.5 + x), each fed the last one's result, waited for once at the end (calls/10
steps per repeat); there asynchronous execution lets the next dispatch overlap MLX's work.
XLA_METAL_SYNC_EXECUTE=1 measures 'metal' with synchronous execution instead.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np


def _per_call_us(fn, x, calls: int) -> float:
    fn(x).block_until_ready()  # compile and warm up
    start = time.perf_counter()
    for _ in range(calls):
        fn(x).block_until_ready()
    return (time.perf_counter() - start) / calls * 1e6


def _chain_us(step, x, w, steps: int) -> float:
    step(x, w).block_until_ready()  # compile and warm up
    start = time.perf_counter()
    for _ in range(steps):
        x = step(x, w)
    x.block_until_ready()
    return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    tiny = jax.jit(lambda a: a * 2.0 + 1.0)
    eager = lambda a: jnp.sin(a)  # noqa: E731 - one eager op
    platforms = ["metal", "cpu"]
    inputs = {p: jax.device_put(np.ones(8, np.float32), jax.devices(p)[0]) for p in platforms}
    chain = jax.jit(lambda x, w: jnp.tanh(x @ w) * 0.5 + x)
    rng = np.random.default_rng(0)
    chain_inputs = {p: jax.device_put((rng.standard_normal((256, 256)).astype(np.float32),
                                       rng.standard_normal((256, 256)).astype(np.float32) / 16),
                                      jax.devices(p)[0]) for p in platforms}
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for platform in platforms:  # alternate contenders within each repeat
            for name, fn in (("jit", tiny), ("eager", eager)):
                results.setdefault((name, platform), []).append(
                    _per_call_us(fn, inputs[platform], args.calls))
            results.setdefault(("chain", platform), []).append(
                _chain_us(chain, *chain_inputs[platform], max(args.calls // 10, 1)))
    print(f"jax {jax.__version__}; {args.calls} calls x {args.repeats} repeats; median us/call")
    for name in ("jit", "eager", "chain"):
        metal = statistics.median(results[(name, "metal")])
        cpu = statistics.median(results[(name, "cpu")])
        print(f"{name:6s} metal {metal:8.1f} us   cpu {cpu:8.1f} us   metal/cpu {metal / cpu:5.2f}")


if __name__ == "__main__":
    main()
