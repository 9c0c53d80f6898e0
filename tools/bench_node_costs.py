"""What one MLX graph node costs on a device: views, element-wise kernels, reductions; and
layer norm / softmax forward and backward, fused (mx.fast, mx.softmax) against spelled out.

    python tools/bench_node_costs.py [--device cpu|gpu] [--nodes 400]

On MLX-CUDA a step is host-bound (every kernel is launched from the evaluating thread), so
these per-node costs are what a graph with more nodes than native's pays (docs/gpu.md).
Native MLX only; no JAX.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import mlx.core as mx
from profile_graph import per_step_ms


def clock(label: str, fn: Callable[..., Any], *args: Any, steps: int = 30) -> None:
    print(f"{label:44s} {per_step_ms(fn, list(args), steps):8.3f} ms", flush=True)


def spelled_layer_norm(a: mx.array, s: mx.array, b: mx.array) -> mx.array:
    m = mx.mean(a, axis=-1, keepdims=True)
    v = mx.mean((a - m) ** 2, axis=-1, keepdims=True)
    return (a - m) * mx.rsqrt(v + 1e-5) * s + b


def spelled_softmax(a: mx.array) -> mx.array:
    e = mx.exp(a - mx.max(a, axis=-1, keepdims=True))
    return e / mx.sum(e, axis=-1, keepdims=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--nodes", type=int, default=400)
    args = p.parse_args()
    mx.set_default_device(mx.cpu if args.device == "cpu" else mx.gpu)
    n = args.nodes
    x = mx.random.normal((8, 128, 256))
    mx.eval(x)

    def views(a: mx.array) -> mx.array:
        for i in range(n):
            a = a.reshape(8, 128 * 256) if i % 2 == 0 else a.reshape(8, 128, 256)
        return a

    def adds(a: mx.array) -> mx.array:
        for _ in range(n):
            a = a + 1.0
        return a

    clock("1 add", lambda a: a + 1.0, x)
    clock(f"{n} reshapes (views)", views, x)
    clock(f"{n} adds (uncompiled)", adds, x)
    clock(f"{n} sums", lambda a: [mx.sum(a, axis=-1, keepdims=True) for _ in range(n)], x)

    s, b = mx.ones((256,)), mx.zeros((256,))
    norms = {"mx.fast": lambda a, s, b: mx.fast.layer_norm(a, s, b, 1e-5),
             "spelled": spelled_layer_norm}
    for name, norm in norms.items():
        def twenty(a, s, b, norm=norm):
            return sum(norm(a * (1 + 0.01 * i), s, b).sum() for i in range(20))
        clock(f"20 layer norms {name}, fwd+bwd", mx.compile(mx.grad(twenty, (0, 1, 2))),
              x, s, b)
        clock(f"20 layer norms {name}, fwd", mx.compile(twenty), x, s, b)

    scores = mx.random.normal((8, 4, 128, 128))
    for name, softmax in (("mx.softmax", lambda a: mx.softmax(a, axis=-1)),
                          ("spelled", spelled_softmax)):
        def twenty_softmax(a, softmax=softmax):
            return sum((softmax(a * (1 + 0.01 * i)) * a).sum() for i in range(20))
        clock(f"20 softmaxes {name}, fwd+bwd", mx.compile(mx.grad(twenty_softmax)), scores)
        clock(f"20 softmaxes {name}, fwd", mx.compile(twenty_softmax), scores)


if __name__ == "__main__":
    main()
