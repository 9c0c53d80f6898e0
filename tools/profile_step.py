"""Where a training step's time goes on 'metal' against the same step in native MLX.

    python tools/profile_step.py [--device cpu|gpu] [--only mlp,lm,resnet,gru] [--steps 20]

For each workload of tools/bench_workloads.py it runs the 'metal' step and the native MLX step
(warm-up first), then `--steps` steps of each, and prints per step: wall time, the time spent
inside MLX's evaluation calls (mx.eval / async_eval / synchronize, clocked: the device
computing, plus the host waiting for it), and the rest (building the graph in Python and C++:
our plan's interpreter, JAX's dispatch, mx.compile's cache look-ups). The plugin runs
synchronously here, so the evaluation share is what the kernels cost; the gap between the
two contenders' evaluation times is the cost of the graph we produce, the gap between their
host times the cost of producing it. `--top N` runs cProfile too and prints each
contender's N Python functions with most own time.
Diagnostics, not a benchmark (tools/bench_models.py is the benchmark).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from bench_options import add_size_arguments, set_up_profile

# MLX's calls that evaluate or wait for the device. MLX's functions are not Python functions
# (cProfile does not see them), so they are wrapped with a clock instead.
EVAL_CALLS = ("eval", "async_eval", "synchronize")
_in_eval = [0.0]


def _clocked(mx, name: str) -> None:
    real = getattr(mx, name)

    def clocked(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            _in_eval[0] += time.perf_counter() - start
    setattr(mx, name, clocked)


def profile(run, steps: int, with_cprofile: bool) -> tuple[float, float, pstats.Stats | None]:
    """(wall seconds per step, seconds per step inside MLX evaluation calls, cProfile stats)."""
    profiler = cProfile.Profile() if with_cprofile else None
    _in_eval[0] = 0.0
    wall = time.perf_counter()
    if profiler:
        profiler.enable()
    for _ in range(steps):
        run()
    if profiler:
        profiler.disable()
    wall = (time.perf_counter() - wall) / steps
    return wall, _in_eval[0] / steps, pstats.Stats(profiler) if profiler else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--only", default="mlp,lm,resnet,gru")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--top", type=int, default=0)
    add_size_arguments(p)
    args = p.parse_args()
    set_up_profile(args)
    import bench_workloads as wl

    from xla_metal.runtime import execution

    # evaluated inside Execute, on this thread, where the clock sees it (asynchronous
    # execution waits in C++ or on the plugin's completion thread instead)
    execution.SYNCHRONOUS = True
    import mlx.core as mx

    for call in EVAL_CALLS:
        _clocked(mx, call)

    print(f"device {args.device}; means over {args.steps} steps"
          f"{' under cProfile' if args.top else ''}")
    for name in args.only.split(","):
        workload = wl.WORKLOADS[name](args)
        for contender in ("metal", "mlx"):
            run = workload.runners[contender]
            for _ in range(args.warmup):
                run()
            wall, in_eval, stats = profile(run, args.steps, args.top > 0)
            print(f"{name:7s} {contender:6s} wall {wall * 1e3:9.2f} ms   in MLX evaluation "
                  f"{in_eval * 1e3:9.2f} ms   host (graph building, dispatch) "
                  f"{(wall - in_eval) * 1e3:9.2f} ms", flush=True)
            if stats:
                stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
