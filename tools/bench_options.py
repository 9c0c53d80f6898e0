"""The benchmark workloads' sizes as command-line options, shared by tools/bench_models.py,
tools/profile_step.py and tools/profile_graph.py (imported before JAX and MLX are)."""

from __future__ import annotations

import argparse


def add_size_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mlp-batch", type=int, default=256)
    parser.add_argument("--mlp-width", type=int, default=1024)
    parser.add_argument("--lm-batch", type=int, default=8)
    parser.add_argument("--lm-seq", type=int, default=128)
    parser.add_argument("--resnet-batch", type=int, default=None,
                        help="default 32 on cpu, 128 on gpu")
    parser.add_argument("--gru-steps", type=int, default=256)
    parser.add_argument("--gru-batch", type=int, default=16)
