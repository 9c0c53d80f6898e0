"""Inference attention on 'metal' with and without compiler/fusion_attention.py, against
native MLX's mx.fast.scaled_dot_product_attention and JAX's CPU backend.

    python tools/bench_attention.py [--device cpu|gpu] [--dtype float32] [--seq 1024]
                                    [--batch 2] [--heads 8] [--head-dim 64] [--repeats 5]
                                    [--calls 5] [--no-xla]

Two spellings of causal self-attention, each run four ways in one process (contenders
alternate within every repeat; medians of the repeats, each the mean of --calls calls that
wait for their result): 'fused' = JAX on metal, the pattern rewritten onto MLX's kernel;
'op by op' = the same program compiled with the rule off (fusion_attention.ENABLED set to
False while it compiles); 'mlx' = mx.compile'd mx.fast.scaled_dot_product_attention with
mask="causal"; 'xla' = JAX on its CPU backend. 'jax.nn' is jax.nn.dot_product_attention(
is_causal=True) (it takes the scores in float32 whatever the inputs' type); 'by hand' is
softmax(where(tril, q @ k^T * scale, -inf)) @ v in the inputs' type. Memory: MLX's peak
during one call minus what was held before it. On the CPU the script loads Debian's
OpenBLAS before MLX, as tools/bench_models.py does.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--no-xla", action="store_true", help="leave out JAX's CPU backend")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.device == "cpu" and os.path.exists(OPENBLAS):
        ctypes.CDLL(OPENBLAS, mode=ctypes.RTLD_GLOBAL)
    import jax
    import jax.numpy as jnp
    import ml_dtypes
    import mlx.core as mx

    from xla_metal.compiler import fusion_attention

    mx.set_default_device(mx.gpu if args.device == "gpu" else mx.cpu)
    dtype = np.dtype(getattr(ml_dtypes, args.dtype, args.dtype))
    shape = (args.batch, args.seq, args.heads, args.head_dim)
    rng = np.random.default_rng(0)
    qkv = [rng.standard_normal(shape).astype(dtype) for _ in range(3)]
    scale = args.head_dim ** -0.5

    def by_hand(q, k, v):
        q, k, v = (jnp.swapaxes(x, 1, 2) for x in (q, k, v))
        s = (q @ jnp.swapaxes(k, -1, -2)) * np.asarray(scale, q.dtype)
        s = jnp.where(jnp.tril(jnp.ones((q.shape[2], k.shape[2]), bool)), s, -jnp.inf)
        return jnp.swapaxes(jax.nn.softmax(s, axis=-1) @ v, 1, 2)

    def by_jax_nn(q, k, v):
        return jax.nn.dot_product_attention(q, k, v, is_causal=True)

    native = mx.compile(lambda q, k, v: mx.fast.scaled_dot_product_attention(
        q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3),
        scale=scale, mask="causal").transpose(0, 2, 1, 3))
    mlx_args = [mx.array(x) for x in qkv]
    metal, cpu = jax.devices("metal")[0], jax.devices("cpu")[0]
    on_metal = jax.device_put(qkv, metal)
    on_cpu = jax.device_put(qkv, cpu)

    def jax_runner(fn, inputs, fuse: bool) -> Callable[[], object]:
        jitted = jax.jit(lambda q, k, v: fn(q, k, v))  # a jit of its own: compiled apart
        fusion_attention.ENABLED = fuse
        jax.block_until_ready(jitted(*inputs))  # compiles with the rule on or off
        fusion_attention.ENABLED = True
        return lambda: jax.block_until_ready(jitted(*inputs))

    forms = {"jax.nn": by_jax_nn, "by hand": by_hand}
    for form, fn in forms.items():
        runners: dict[str, Callable[[], object]] = {
            "fused": jax_runner(fn, on_metal, True),
            "op by op": jax_runner(fn, on_metal, False),
            "mlx": lambda: mx.eval(native(*mlx_args)),
        }
        if not args.no_xla:
            runners["xla"] = jax_runner(fn, on_cpu, True)
        want = np.asarray(jax.jit(fn)(*on_cpu), np.float32)
        got = np.asarray(runners["fused"](), np.float32)  # the fused program's own result
        error = float(np.max(np.abs(got - want)))
        memory = {}
        for name in ("fused", "op by op", "mlx"):
            runners[name]()
            mx.synchronize()
            mx.reset_peak_memory()
            held = mx.get_active_memory()
            runners[name]()
            memory[name] = (mx.get_peak_memory() - held) / 2**20
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.repeats):
            for name, run in runners.items():
                run()
                t = time.perf_counter()
                for _ in range(args.calls):
                    run()
                times[name].append((time.perf_counter() - t) / args.calls)
        median = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
        print(f"{form}, {args.dtype} {shape} causal, MLX {args.device}; max |metal - xla| "
              f"{error:.2e}")
        for name, ms in median.items():
            mem = f", memory {memory[name]:.1f} MB" if name in memory else ""
            print(f"  {name:9s} {ms:9.2f} ms  ({ms / median['mlx']:.2f}x mlx){mem}")


if __name__ == "__main__":
    main()
