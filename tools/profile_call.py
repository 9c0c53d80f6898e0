"""Where one JAX training step's wall time goes on 'metal': phase by phase, beside the graph.

    python tools/profile_call.py [--device cpu|gpu] [--only lm,mlp,gru] [--steps 20]

For each workload it times, per step (means over `--steps` after warm-up):
  native   the native MLX step with mx.eval (tools/bench_mlx_models.py)
  graph    our compiled entry function called on MLX arrays with mx.eval (no JAX, no PJRT)
  fed      the graph alone with its state fed back (each step's results are the next step's
           arguments, as in the JAX step), split into replay / evaluation, evaluated with
           mx.eval (sync), as our Execute does (mx.async_eval plus a marker, then its wait:
           marked; marked1: its marker depends on one result only) and with mx.async_eval
           alone (async); native again, in turn with them
  metal    the JAX step on 'metal' with block_until_ready, split into
             replay   our entry function called (mx.compile's replay: builds the graph)
             schedule mx.async_eval / mx.eval of its results (on a GPU: kernel launches)
             execute  the rest of our Execute (argument checks, handles)
             wait     block_until_ready (awaiting the job)
             jax      the rest: JAX's dispatch and buffer bookkeeping, our C++ entries
           and the process's CPU time per step (all its threads)
The metal row is measured with asynchronous execution (the default) and synchronous
(XLA_METAL_SYNC_EXECUTE's setting, switched at run time), with --modes async1 also
asynchronous with a marker depending on one result, native again in turn with them.
Rows after the first are medians over --rounds rounds, the contenders of a block taking turns
in each (the host's speed drifts from one second to the next). Diagnostics, not a benchmark.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any

from bench_options import add_size_arguments, clock_into, set_up_profile, turn_order

_clock: dict[str, float] = defaultdict(float)


clocked = partial(clock_into, _clock)


def per_step(run: Callable[[], Any], steps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        run()
    _clock.clear()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        run()
    _clock["process CPU"] = time.process_time() - cpu_start  # all threads
    return (time.perf_counter() - start) / steps


def schedule_marked_by_one(values: list[Any]) -> Any:
    """mx.async_eval of values plus a marker depending on the first only (Execute's marker
    depends on all): every array one mx.async_eval schedules on a stream shares that stream's
    event, so on one stream the marker is done when they all are."""
    import mlx.core as mx

    marker = mx.depends(mx.array(False), list(values[:1]))
    mx.async_eval([*values, marker])
    return marker


def graph_alone(args: Any, name: str) -> float:
    """Seconds per step of our compiled entry function called directly, with mx.eval."""
    import mlx.core as mx
    from profile_graph import our_program, workloads

    jax_step, arrays, static, _, _ = workloads(args)[name]
    entry, inputs = our_program(jax_step, arrays, static)
    return per_step(lambda: mx.eval(entry(*inputs)), args.steps)


def graph_fed_back(args: Any, name: str) -> list[str]:
    """Rows for native MLX and for our compiled entry function with the state it returns fed
    back in, evaluated synchronously (mx.eval), as Execute evaluates (mx.async_eval plus a
    marker, then waiting for the marker) and with mx.async_eval alone: ms per step of replay
    and evaluation, medians over args.rounds rounds of args.steps steps, the contenders
    taking turns within each round (this host's speed drifts between seconds)."""
    import jax
    import mlx.core as mx
    from profile_graph import native_arrays, our_program, workloads

    from xla_metal.compiler.placement import evaluate

    jax_step, arrays, static, mlx_step, mlx_args = workloads(args)[name]
    entry, inputs = our_program(jax_step, arrays, static)
    state = len(jax.tree_util.tree_leaves(arrays[0]))
    native_args = native_arrays(mlx_args)

    def wait_sync(outputs: list[Any]) -> None:
        mx.eval(outputs)

    def wait_marked(outputs: list[Any]) -> None:
        mx.eval(evaluate(outputs, asynchronous=True, marked=True))

    def wait_marked_by_one(outputs: list[Any]) -> None:
        mx.eval(schedule_marked_by_one(outputs))

    def wait_async(outputs: list[Any]) -> None:
        mx.async_eval(outputs)
        mx.eval(outputs)

    def ours(wait: Callable[[list[Any]], None]) -> Callable[[], tuple[float, float]]:
        values = list(inputs)

        def steps() -> tuple[float, float]:
            nonlocal values
            replay = evaluation = 0.0
            for _ in range(args.steps):
                t0 = time.perf_counter()
                outputs = entry(*values)
                t1 = time.perf_counter()
                wait(outputs)
                t2 = time.perf_counter()
                replay, evaluation = replay + t1 - t0, evaluation + t2 - t1
                values = [*outputs[:state], *values[state:]]
            return replay, evaluation
        return steps

    def native() -> tuple[float, float]:
        nonlocal native_args
        replay = evaluation = 0.0
        for _ in range(args.steps):
            t0 = time.perf_counter()
            new_state, loss = mlx_step(*native_args)
            t1 = time.perf_counter()
            mx.eval(new_state, loss)
            t2 = time.perf_counter()
            replay, evaluation = replay + t1 - t0, evaluation + t2 - t1
            native_args = [new_state, *native_args[1:]]
        return replay, evaluation

    contenders = {"native": native, "fed/sync": ours(wait_sync),
                  "fed/marked": ours(wait_marked), "fed/marked1": ours(wait_marked_by_one),
                  "fed/async": ours(wait_async)}
    for run in contenders.values():
        run()  # warm-up
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in contenders}
    order = list(contenders)
    for r in range(args.rounds):
        for key in turn_order(order, r):
            times[key].append(contenders[key]())
    rows = []
    for key, rows_of in times.items():
        replay = statistics.median(r for r, _ in rows_of) / args.steps * 1e3
        evaluation = statistics.median(e for _, e in rows_of) / args.steps * 1e3
        total = statistics.median(r + e for r, e in rows_of) / args.steps * 1e3
        rows.append(f"  {key:10s} {total:8.2f}  replay {replay:7.2f}  evaluate {evaluation:7.2f}")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--only", default="lm")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--modes", default="async,sync")
    p.add_argument("--rounds", type=int, default=5, help="rounds, the contenders in turn")
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

    real_evaluate = execution.evaluate

    def evaluate_marked_by_one(values: Any, asynchronous: bool = False,
                               marked: bool = False) -> Any:
        """Execute's evaluation with a marker that depends on one result (mode async1)."""
        if not (asynchronous and marked and values):
            return real_evaluate(values, asynchronous, marked)
        return schedule_marked_by_one(values)

    evaluations = {"async1": clocked("schedule", evaluate_marked_by_one)}
    default_evaluation = clocked("schedule", execution.evaluate)
    execution.execute = clocked("execute", execution.execute)
    real_block = jax.block_until_ready
    print(f"device {args.device}; ms per step, means over {args.steps} steps (rows: medians "
          f"of {args.rounds} rounds)")
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
        # Rounds, the modes taking turns in each (this host's speed drifts); medians.
        samples: dict[tuple[int | None, str], list[dict[str, float]]] = defaultdict(list)
        keys = [(None, "native")] + [(chunk, mode) for chunk in chunks
                                     for mode in args.modes.split(",")]
        for r in range(args.rounds):
            for chunk, mode in turn_order(keys, r):
                if mode == "native":
                    wall = per_step(workload.runners["mlx"], args.steps, warmup=1)
                    samples[(chunk, mode)].append(
                        {"wall": wall, "process CPU": _clock["process CPU"] / args.steps})
                    continue
                control.CHUNK = chunk
                execution.SYNCHRONOUS = mode == "sync"
                execution.evaluate = evaluations.get(mode, default_evaluation)
                wall = per_step(run, args.steps, warmup=1)
                sample = {k: v / args.steps for k, v in _clock.items()}
                sample["wall"] = wall
                samples[(chunk, mode)].append(sample)
        rows = []
        for (chunk, mode), runs in samples.items():
            ms = {k: statistics.median(r.get(k, 0.0) for r in runs) * 1e3
                  for k in ("wall", "execute", "replay", "schedule", "wait", "loop-eval",
                            "process CPU")}
            if mode == "native":
                rows.append(f"  native (in turn)       {ms['wall']:8.2f}  "
                            f"(process CPU {ms['process CPU']:7.2f})")
                continue
            rows.append(
                f"  metal/{mode:5s} chunk {chunk or 'auto':>4} {ms['wall']:8.2f}  "
                f"replay {ms['replay']:7.2f}"
                f" (loop eval {ms['loop-eval']:7.2f})  schedule {ms['schedule']:7.2f}  "
                f"execute {ms['execute'] - ms['replay'] - ms['schedule']:6.2f}  "
                f"wait {ms['wait']:7.2f}  jax {ms['wall'] - ms['execute'] - ms['wait']:6.2f}  "
                f"(process CPU {ms['process CPU']:7.2f})")
        execution.SYNCHRONOUS = False
        jax.block_until_ready = real_block
        graph = graph_alone(args, name) if name in ("mlp", "lm", "resnet", "gru") else float("nan")
        print(f"{name}: native {native * 1e3:8.2f}  graph {graph * 1e3:8.2f}", flush=True)
        if name in ("mlp", "lm", "gru"):
            print("\n".join(graph_fed_back(args, name)), flush=True)
        print("\n".join(rows), flush=True)


if __name__ == "__main__":
    main()
