"""ResNet-18 training step: lower and compile cold, then from JAX's persistent cache.

    python tools/bench_compile_cache.py [--platforms metal,cpu] [--hits 2]

The steps of tools/bench_workloads.py::compile_times without native MLX's (slow) first step,
with lowering and compiling timed apart and the cache hit repeated, per platform.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import types

import bench_jax_models as jm
import bench_workloads as wl
import jax


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--platforms", default="metal,cpu")
    parser.add_argument("--hits", type=int, default=2)
    parser.add_argument("--resnet-batch", type=int, default=8)
    args = parser.parse_args()
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="xla-metal-cache-"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    params, strides, batch = wl._resnet_inputs(types.SimpleNamespace(
        resnet_batch=args.resnet_batch))
    for platform in args.platforms.split(","):
        device = jax.devices(platform)[0]
        p, b = jax.device_put(params, device), jax.device_put(batch, device)
        for attempt in range(1 + args.hits):
            jax.clear_caches()
            start = time.perf_counter()
            lowered = jm.resnet_step_jit.lower(p, *b, strides)
            lowered_at = time.perf_counter()
            lowered.compile()
            done = time.perf_counter()
            what = "cold" if attempt == 0 else "cache hit"
            print(f"{platform:5s} {what:9s} lower {lowered_at - start:5.2f} s   "
                  f"compile {done - lowered_at:5.2f} s")


if __name__ == "__main__":
    main()
