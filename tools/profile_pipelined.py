"""Training steps run as a training loop runs them: `--steps` steps, then one wait.

    python tools/profile_pipelined.py [--device cpu|gpu] [--only lm,mlp] [--steps 20] [--phases]

The benchmark (bench_models.py) waits for every step; a training loop does not, so the host
can prepare the next step while the device runs this one. Rows, in ms per step (medians of
--rounds rounds, the contenders taking turns in each): native MLX (mx.async_eval each step)
and JAX on 'metal'. Diagnostics, not a benchmark.

With --phases each row also splits the calling thread's time per step (clocks wrapped around
the calls, both contenders clocked alike):
  launches  mx.async_eval of the step's results (on a GPU: MLX launching the kernels)
  replay    metal: our compiled entry function called (mx.compile's replay builds the graph)
  marker    metal: the rest of our scheduling (the completion marker, placement.evaluate)
  execute   metal: the rest of our Python Execute (argument lookup, handles, bookkeeping)
  jax       metal: the rest, outside our Python: JAX's dispatch of the step's arguments and
            results, our C++ entries and ctypes
  wait      the final wait (its share of one step)
  rest      native: the rest (its replay, Python)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench_options import add_size_arguments, clock_into, set_up_profile, turn_order

_clock: dict[str, float] = defaultdict(float)


def clock_phases(contender: str, run: Callable[[int], None]) -> Callable[[int], None]:
    """run, with _clock timing its phases (see the module's docstring) while it runs."""
    import jax
    import mlx.core as mx

    from xla_metal.runtime import api, execution

    def clocked(steps: int) -> None:
        saved: list[tuple[Any, str, Any]] = []

        def wrap(owner: Any, name: str, key: str) -> None:
            saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, clock_into(_clock, key, getattr(owner, name)))

        wrap(mx, "async_eval", "launches")
        if contender == "metal":
            for exe in list(api._handles.values()):
                if isinstance(exe, api.Executable):
                    wrap(exe, "run", "replay")
            wrap(execution, "evaluate", "evaluate")
            wrap(execution, "execute", "Execute")
            wrap(jax, "block_until_ready", "wait")
        else:
            wrap(mx, "eval", "wait")
        try:
            run(steps)
        finally:
            for owner, name, original in reversed(saved):
                setattr(owner, name, original)
    return clocked


def phases(contender: str, clock: dict[str, float], wall: float) -> dict[str, float]:
    """The disjoint phases of one run from its nested clocks (seconds, summed over it)."""
    launches, wait = clock.get("launches", 0.0), clock.get("wait", 0.0)
    if contender != "metal":
        return {"launches": launches, "wait": wait, "rest": wall - launches - wait}
    replay, evaluate = clock.get("replay", 0.0), clock.get("evaluate", 0.0)
    execute = clock.get("Execute", 0.0)
    return {"launches": launches, "replay": replay, "marker": evaluate - launches,
            "execute": execute - replay - evaluate, "jax": wall - execute - wait,
            "wait": wait}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--only", default="lm,mlp")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--phases", action="store_true", help="split each step's host time")
    add_size_arguments(p)
    args = p.parse_args()
    set_up_profile(args)
    import bench_workloads as wl
    for name in args.only.split(","):
        workload = wl.WORKLOADS[name](args)
        runs = {"native": workload.runners["mlx"].pipelined,
                "metal": workload.runners["metal"].pipelined}
        for run in runs.values():  # warm-up (compiles)
            run(3)
        if args.phases:  # after the warm-up: the executables exist
            runs = {c: clock_phases(c, run) for c, run in runs.items()}
        samples: dict[str, list[float]] = {c: [] for c in runs}
        split: dict[str, list[dict[str, float]]] = {c: [] for c in runs}
        for r in range(args.rounds):
            for contender in turn_order(list(runs), r):
                _clock.clear()
                start = time.perf_counter()
                runs[contender](args.steps)
                wall = time.perf_counter() - start
                samples[contender].append(wall / args.steps)
                if args.phases:
                    split[contender].append({k: v / args.steps for k, v in
                                             phases(contender, _clock, wall).items()})
        native = statistics.median(samples["native"])
        print(f"{name}: ms per step, {args.steps} steps then one wait, medians of "
              f"{args.rounds} rounds")
        for contender, times in samples.items():
            ms = statistics.median(times) * 1e3
            parts = "".join(f"  {k} {statistics.median(s[k] for s in split[contender]) * 1e3:.3f}"
                            for k in split[contender][0]) if args.phases else ""
            print(f"  {contender:9s} {ms:8.3f}  ({ms / (native * 1e3):.2f} of native){parts}",
                  flush=True)


if __name__ == "__main__":
    main()
