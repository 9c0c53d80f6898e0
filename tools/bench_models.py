"""Training-step benchmarks: JAX on 'metal', the same model in native MLX, JAX on XLA:CPU.

    python tools/bench_models.py [--device cpu|gpu] [--repeats 5] [--only mlp,lm,...]

One invocation runs every workload three ways in one process, alternating the contenders
(each follows each other equally often: bench_options.turn_order), and prints median step
times, ratios to native MLX, the extra MLX memory one step needs (MLX's peak-memory
counter; 'metal' runs on MLX too), the host reads per GRU step, dispatch cost and ResNet-18
compile times. It writes a dated table docs/bench-<date>.md and a plot
docs/bench-<date>.png (when matplotlib is importable).

On MLX's CPU device the script loads OpenBLAS first (--blas; Debian's libopenblas0-pthread),
as MLX's Linux wheel otherwise multiplies with reference BLAS. Needs only jax, mlx, numpy.
Models: tools/bench_jax_models.py and tools/bench_mlx_models.py; workloads:
tools/bench_workloads.py.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

from bench_options import add_size_arguments, turn_order

OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0"
CONTENDERS = ("metal", "mlx", "cpu")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="MLX device for 'metal' and native MLX")
    p.add_argument("--only", default="mlp,lm,resnet,gru,dispatch,compile",
                   help="comma-separated workloads")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps-per-repeat", type=int, default=1,
                   help="consecutive steps one repeat times (their mean is the repeat's "
                        "value): on a GPU a single step after another contender's is not a "
                        "training loop's steady state")
    p.add_argument("--settle", type=int, default=0,
                   help="untimed steps a contender runs at the start of each repeat (after "
                        "another contender's step, e.g. XLA:CPU's on every core)")
    p.add_argument("--blas", default=OPENBLAS,
                   help="BLAS to load before MLX on the CPU ('' = none)")
    add_size_arguments(p)
    p.add_argument("--calls", type=int, default=10_000, help="dispatch: calls per repeat")
    p.add_argument("--out", default="docs", help="folder for the table and plot ('' = none)")
    return p.parse_args()


def load_blas(path: str) -> bool:
    if not path or not os.path.exists(path):
        return False
    ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    return True


def measure(runners: dict[str, Callable[[], object]], warmup: int, repeats: int,
            steps: int = 1, settle: int = 0
            ) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, float]]:
    """Wall and process-CPU seconds per call of each runner, alternating them; also each
    one's first-call time. CPU time counts every thread of this process, so it is the
    steadier measure when other work shares the machine."""
    first: dict[str, float] = {}
    for name, run in runners.items():
        start = time.perf_counter()
        run()
        first[name] = time.perf_counter() - start
        for _ in range(warmup - 1):
            run()
    wall: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for rep in range(repeats):
        for name in turn_order(names, rep):
            for _ in range(settle):
                runners[name]()
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(steps):
                runners[name]()
            wall[name].append((time.perf_counter() - start) / steps)
            cpu[name].append((time.process_time() - cpu_start) / steps)
    return wall, cpu, first


def main() -> None:
    args = parse_args()
    os.environ["XLA_METAL_DEVICE"] = args.device
    os.environ.setdefault("JAX_PLATFORMS", "metal,cpu")
    blas = load_blas(args.blas) if args.device == "cpu" else False
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_workloads as wl
    import jax
    import mlx.core as mx

    mx.set_default_device(mx.cpu if args.device == "cpu" else mx.gpu)
    if args.resnet_batch is None:
        args.resnet_batch = 32 if args.device == "cpu" else 128
    wanted = args.only.split(",")
    rows: list[dict] = []
    notes: list[str] = []
    for name in ("mlp", "lm", "resnet", "gru"):
        if name not in wanted:
            continue
        workload = wl.WORKLOADS[name](args)
        wall, cpu, first = measure(workload.runners, args.warmup, args.repeats,
                                   args.steps_per_repeat, args.settle)
        row = {"name": workload.title, **{c: statistics.median(wall[c]) for c in CONTENDERS},
               "cpu_time": {c: statistics.median(cpu[c]) for c in CONTENDERS},
               "first": first, "loss": workload.first_loss(),
               "peak": {c: wl.step_peak_bytes(workload.runners[c]) for c in ("metal", "mlx")}}
        if name == "gru":
            reads = wl.host_reads_per_call(workload.runners["metal"])
            notes.append(f"GRU: host reads of a loop condition per 'metal' training step: "
                         f"{reads} ({args.gru_steps} scan steps, forward and backward)")
            print(notes[-1], flush=True)
        rows.append(row)
        print(wl.format_row(row), flush=True)
    if "dispatch" in wanted:
        for line in wl.dispatch(args):
            print(line, flush=True)
            notes.append(line)
    if "compile" in wanted:
        for line in wl.compile_times(args):
            print(line, flush=True)
            notes.append(line)
    header = (f"{datetime.date.today()} {platform.machine()} {os.cpu_count()} cores, "
              f"load {os.getloadavg()[0]:.1f}; MLX {mx.__version__} device {args.device}"
              f"{' + OpenBLAS' if blas else ''}; jax {jax.__version__}; "
              f"{args.repeats} repeats of {args.steps_per_repeat} step(s) after {args.warmup} "
              f"warm-up{f', {args.settle} untimed per repeat' if args.settle else ''}, medians")
    print(header)
    if args.out:
        wl.write_report(args, header, rows, notes, sys.argv[1:])


if __name__ == "__main__":
    main()
