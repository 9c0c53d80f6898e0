"""The benchmark workloads' sizes as command-line options, shared by tools/bench_models.py
and the profiling tools, and the profiling tools' device set-up (imported before JAX and MLX
are)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, MutableMapping
from typing import Any


def clock_into(clock: MutableMapping[str, float], name: str, fn: Callable[..., Any]
               ) -> Callable[..., Any]:
    """fn, adding the seconds each of its calls takes to clock[name] (for the profilers)."""
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            clock[name] += time.perf_counter() - start
    return timed


def turn_order(items: list[Any], round_number: int) -> list[Any]:
    """The order of the contenders in one round: as given, then the first followed by the
    rest reversed. A rotation would keep each one's predecessor the same in every round (the
    machine state that one leaves behind, e.g. XLA:CPU's spinning threads, would always fall
    on the same contender); this way each follows its neighbours on both sides in turn, and
    three contenders follow each other equally often over two rounds (a b c, a c b)."""
    return items if round_number % 2 == 0 else items[:1] + items[:0:-1]


def set_up_profile(args: argparse.Namespace) -> None:
    """What a profiling tool does before it imports JAX: the plugin's MLX device and this
    process's (args.device), OpenBLAS on the CPU as tools/bench_models.py loads it (MLX's own
    BLAS hides the rest), and the ResNet batch for that device."""
    import os
    import sys

    os.environ["XLA_METAL_DEVICE"] = args.device
    os.environ.setdefault("JAX_PLATFORMS", "metal,cpu")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_models import OPENBLAS, load_blas

    if args.device == "cpu":
        load_blas(OPENBLAS)
    import mlx.core as mx

    mx.set_default_device(mx.cpu if args.device == "cpu" else mx.gpu)
    if args.resnet_batch is None:
        args.resnet_batch = 32 if args.device == "cpu" else 128


def add_size_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mlp-batch", type=int, default=256)
    parser.add_argument("--mlp-width", type=int, default=1024)
    parser.add_argument("--lm-batch", type=int, default=8)
    parser.add_argument("--lm-seq", type=int, default=128)
    parser.add_argument("--resnet-batch", type=int, default=None,
                        help="default 32 on cpu, 128 on gpu")
    parser.add_argument("--gru-steps", type=int, default=256)
    parser.add_argument("--gru-batch", type=int, default=16)
    parser.add_argument("--no-donate", dest="donate", action="store_false",
                        help="JAX's steps keep their state (by default they donate it, as a "
                             "training loop does; native MLX's step updates its state in place)")
