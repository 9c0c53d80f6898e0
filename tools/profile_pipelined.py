"""Training steps run as a training loop runs them: `--steps` steps, then one wait.

    python tools/profile_pipelined.py [--device cpu|gpu] [--only lm,mlp] [--steps 20]

The benchmark (bench_models.py) waits for every step; a training loop does not, so the host
can prepare the next step while the device runs this one. Rows, in ms per step (medians of
--rounds rounds, the contenders taking turns in each): native MLX (mx.async_eval each step)
and JAX on 'metal'. Diagnostics, not a benchmark.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench_options import add_size_arguments, set_up_profile, turn_order


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--only", default="lm,mlp")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=7)
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
        samples: dict[str, list[float]] = {c: [] for c in runs}
        for r in range(args.rounds):
            for contender in turn_order(list(runs), r):
                start = time.perf_counter()
                runs[contender](args.steps)
                samples[contender].append((time.perf_counter() - start) / args.steps)
        native = statistics.median(samples["native"])
        print(f"{name}: ms per step, {args.steps} steps then one wait, medians of "
              f"{args.rounds} rounds")
        for contender, times in samples.items():
            ms = statistics.median(times) * 1e3
            print(f"  {contender:9s} {ms:8.2f}  ({ms / (native * 1e3):.2f} of native)",
                  flush=True)


if __name__ == "__main__":
    main()
