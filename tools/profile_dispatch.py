"""Where the time of a tiny jitted call on 'metal' goes: PJRT calls and Python profile.

    python tools/profile_dispatch.py [--calls 3000] [--counter /tmp/pjrt_call_counter.so]
                                     [--profile] [--eager] [--buffers N [--donate]] [--phases]

With --counter (a build of tools/pjrt_call_counter.c, command in that file), JAX loads the
counting shim in front of the plugin and this prints, per jitted call, every PJRT C API entry
JAX made, how often, and its mean time inside the plugin. --buffers N makes the call take and
return N small arrays, as a training step takes and returns its parameters (XLA:CPU runs the
same call too, for JAX's own cost per buffer); with --donate the call donates them and is fed
its results, as a training step is. --phases times the parts of our Python Execute per call
(MLX's replay and evaluation, which native MLX pays too; the donated arguments dropped; the
results' handles; the rest), and native MLX's compiled call with mx.eval beside it (with
--buffers, fed back as the step is). With --profile it prints cProfile's
top functions (by own time) over the calls. Always prints process CPU time and wall time per
call. Diagnostics, not a benchmark: tools/bench_dispatch.py is the benchmark.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import os
import pstats
import re
import time
from functools import partial
from pathlib import Path
from typing import Any

from bench_options import clock_into

HEADER = Path(__file__).resolve().parent.parent / "xla_metal" / "pjrt" / "pjrt_c_api.h"


def slot_names() -> list[str]:
    """The PJRT_Api slots in table order, as our header declares them."""
    table = HEADER.read_text().split("typedef struct PJRT_Api {", 1)[1]
    return re.findall(r"^\s*XM_PJRT_SLOT\((\w+)\);", table, re.M)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--counter", help="path of the built pjrt_call_counter.so")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--eager", action="store_true", help="an eager jnp.sin, not a jit")
    parser.add_argument("--buffers", type=int, default=0,
                        help="N float32[8] arguments and results (0: the one-array call)")
    parser.add_argument("--donate", action="store_true",
                        help="with --buffers: donate the arguments, feed the results back")
    parser.add_argument("--phases", action="store_true", help="time the parts of Execute")
    parser.add_argument("--no-wait", action="store_true",
                        help="do not wait for each result (a loop that dispatches ahead)")
    args = parser.parse_args()

    counter = None
    if args.counter:
        import xla_metal.jax_plugin as plugin

        os.environ["XM_COUNTER_REAL_PLUGIN"] = str(plugin.library_path())
        counter = ctypes.CDLL(args.counter)
        plugin.library_path = lambda: Path(args.counter)  # type: ignore[assignment]

    import jax
    import jax.numpy as jnp
    import numpy as np

    x = jax.device_put(np.ones(8, np.float32), jax.devices("metal")[0])
    tiny = jax.jit(lambda a: a * 2.0 + 1.0)
    op = (lambda: jnp.sin(x)) if args.eager else (lambda: tiny(x))
    call = op if args.no_wait else (lambda: op().block_until_ready())
    if args.buffers:
        step = jax.jit(lambda xs: [a * 2.0 + 1.0 for a in xs],
                       donate_argnums=(0,) if args.donate else ())
        leaves = [np.full(8, i, np.float32) for i in range(args.buffers)]
        for device in ("cpu", "metal"):  # JAX on XLA:CPU first: its cost for as many buffers
            state = [jax.device_put(leaves, jax.devices(device)[0])]

            def call(state: list = state) -> None:
                results = step(state[0])
                if not args.no_wait:
                    jax.block_until_ready(results)
                if args.donate:
                    state[0] = results
            for _ in range(50):
                call()
            start = time.perf_counter()
            for _ in range(args.calls // 10):
                call()
            print(f"{device}: {args.buffers} arguments and results, "
                  f"{(time.perf_counter() - start) / (args.calls // 10) * 1e6:.1f} us per call")
    for _ in range(200):  # compile and warm up
        call()

    names = slot_names()
    n = len(names)
    counts = (ctypes.c_uint64 * n)()
    nanoseconds = (ctypes.c_uint64 * n)()
    if counter is not None:
        counter.xm_counter_read(counts, nanoseconds, n, 1)  # reset
    phases = timed_phases() if args.phases else None
    profiler = cProfile.Profile() if args.profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for _ in range(args.calls):
        call()
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{args.calls} calls: {wall / args.calls * 1e6:.1f} us wall, "
          f"{cpu / args.calls * 1e6:.1f} us process CPU per call")
    if counter is not None:
        counter.xm_counter_read(counts, nanoseconds, n, 0)
        total = 0.0
        print("PJRT entries per call (calls, mean us inside the plugin):")
        for i in sorted(range(n), key=lambda i: -nanoseconds[i]):
            if counts[i]:
                per_call = counts[i] / args.calls
                mean_us = nanoseconds[i] / counts[i] / 1e3
                total += nanoseconds[i] / args.calls / 1e3
                print(f"  {names[i]:45s} {per_call:5.2f} x {mean_us:8.2f} us")
        print(f"  total inside the plugin: {total:.1f} us per call")
    if phases is not None:
        print_phases(phases, args.calls)
        print(f"native MLX, compiled call + mx.eval: {native_call_us(args):.1f} us per call")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


def timed_phases() -> dict[str, float]:
    """Seconds spent in each part of our Python Execute, summed over the calls from now on
    (wrappers around the functions Execute calls, so they follow the code as it changes)."""
    from xla_metal.runtime import api, execution

    seconds = dict.fromkeys(("execute", "replay", "evaluate", "donated dropped",
                             "results' handles"), 0.0)

    timed = partial(clock_into, seconds)
    execute = execution.execute
    give_up = timed("donated dropped", api._give_up_all)
    new_handles = timed("results' handles", api._new_handles)

    def execute_timed(exe: Any, call: Any, handles: Any, *_: Any) -> None:
        if not getattr(exe, "replay_timed", False):
            exe.run, exe.replay_timed = timed("replay", exe.run), True
        execute(exe, call, handles, give_up, new_handles)

    execution.execute = timed("execute", execute_timed)
    execution.evaluate = timed("evaluate", execution.evaluate)
    return seconds


def print_phases(seconds: dict[str, float], calls: int) -> None:
    print("our Python Execute, us per call:")
    parts = sum(v for k, v in seconds.items() if k != "execute")
    for name, total in [*seconds.items(), ("the rest", seconds["execute"] - parts)]:
        print(f"  {name:18s} {total / calls * 1e6:8.1f}")


def native_call_us(args: argparse.Namespace) -> float:
    """Native MLX's cost of the same call: the compiled function and mx.eval."""
    import mlx.core as mx
    import numpy as np

    fn = mx.compile(lambda *xs: [a * 2.0 + 1.0 for a in xs])
    xs = [mx.array(np.full(8, i, np.float32)) for i in range(max(args.buffers, 1))]

    def one() -> None:
        nonlocal xs
        results = fn(*xs)
        mx.eval(results)
        if args.buffers:  # fed back, as the JAX call is
            xs = results
    for _ in range(200):
        one()
    start = time.perf_counter()
    for _ in range(args.calls):
        one()
    return (time.perf_counter() - start) / args.calls * 1e6


if __name__ == "__main__":
    main()
