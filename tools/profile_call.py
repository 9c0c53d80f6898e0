"""Where one JAX training step's wall time goes on 'metal': phase by phase, beside the graph.

    python tools/profile_call.py [--device cpu|gpu] [--only lm,gru] [--steps 20]

For each workload it times, per step (means over `--steps` after warm-up):
  native   the native MLX step with mx.eval (tools/bench_mlx_models.py)
  graph    our compiled entry function called on MLX arrays with mx.eval (no JAX, no PJRT)
  metal    the JAX step on 'metal' with block_until_ready, split into
             replay   our entry function called (mx.compile's replay: builds the graph)
             schedule mx.async_eval / mx.eval of its results (on a GPU: kernel launches)
             execute  the rest of our Execute (argument checks, handles)
             wait     block_until_ready (awaiting the job)
             jax      the rest: JAX's dispatch and buffer bookkeeping, our C++ entries
The metal row is measured with asynchronous execution (the default) and synchronous
(XLA_METAL_SYNC_EXECUTE's setting, switched at run time). Diagnostics, not a benchmark.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench_options import add_size_arguments, set_up_profile

_clock: dict[str, float] = defaultdict(float)


def clocked(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _clock[name] += time.perf_counter() - start
    return timed


def per_step(run: Callable[[], Any], steps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        run()
    _clock.clear()
    start = time.perf_counter()
    for _ in range(steps):
        run()
    return (time.perf_counter() - start) / steps


def graph_alone(args: Any, name: str) -> float:
    """Seconds per step of our compiled entry function called directly, with mx.eval."""
    import mlx.core as mx
    from profile_graph import our_program, workloads

    jax_step, arrays, static, _, _ = workloads(args)[name]
    entry, inputs = our_program(jax_step, arrays, static)
    return per_step(lambda: mx.eval(entry(*inputs)), args.steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--only", default="lm")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--modes", default="async,sync")
    p.add_argument("--chunks", default="", help="counted-loop chunk sizes to try (control.CHUNK)")
    p.add_argument("--eval-every", type=int, default=0, help="control._EVAL_EVERY, if set")
    p.add_argument("--unroll-limit", type=int, default=0, help="rewrites.UNROLL_LIMIT, if set")
    add_size_arguments(p)
    args = p.parse_args()
    set_up_profile(args)
    import bench_workloads as wl
    import jax

    from xla_metal.compiler import rewrites
    from xla_metal.compiler.lowering import control
    from xla_metal.runtime import api, execution

    if args.eval_every:
        control._EVAL_EVERY = args.eval_every
    if args.unroll_limit:
        rewrites.UNROLL_LIMIT = args.unroll_limit
    control.evaluate = clocked("loop-eval", control.evaluate)
    chunks: list[int | None] = [int(c) for c in args.chunks.split(",")] if args.chunks \
        else [None]

    execution.evaluate = clocked("schedule", execution.evaluate)
    execution.execute = clocked("execute", execution.execute)
    real_block = jax.block_until_ready
    print(f"device {args.device}; ms per step, means over {args.steps} steps")
    for name in args.only.split(","):
        workload = wl.WORKLOADS[name](args)
        native = per_step(workload.runners["mlx"], args.steps)
        run = workload.runners["metal"]
        start = time.perf_counter()
        run()
        print(f"{name}: first metal step (compiles) {time.perf_counter() - start:.2f} s")
        for obj in list(api._handles.values()):
            if isinstance(obj, api.Executable) and not hasattr(obj.run, "__wrapped_run__"):
                obj.run = clocked("replay", obj.run)
                obj.run.__wrapped_run__ = True  # type: ignore[attr-defined]
        jax.block_until_ready = clocked("wait", real_block)
        rows = []
        for chunk in chunks:
            control.CHUNK = chunk
            for mode in args.modes.split(","):
                execution.SYNCHRONOUS = mode == "sync"
                wall = per_step(run, args.steps)
                ms = {k: v / args.steps * 1e3 for k, v in _clock.items()}
                execute, replay = ms.get("execute", 0.0), ms.get("replay", 0.0)
                schedule, wait = ms.get("schedule", 0.0), ms.get("wait", 0.0)
                rows.append(
                    f"  metal/{mode:5s} chunk {chunk or 'auto':>4} {wall * 1e3:8.2f}  "
                    f"replay {replay:7.2f}"
                    f" (loop eval {ms.get('loop-eval', 0.0):7.2f})  schedule {schedule:7.2f}  "
                    f"execute {execute - replay - schedule:6.2f}  wait {wait:7.2f}  "
                    f"jax {wall * 1e3 - execute - wait:6.2f}")
        execution.SYNCHRONOUS = False
        jax.block_until_ready = real_block
        graph = graph_alone(args, name) if name in ("mlp", "lm", "resnet") else float("nan")
        print(f"{name}: native {native * 1e3:8.2f}  graph {graph * 1e3:8.2f}", flush=True)
        print("\n".join(rows), flush=True)


if __name__ == "__main__":
    main()
