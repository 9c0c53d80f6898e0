"""Inference with and without compiler/fusions.py (softmax, layer_norm, rms_norm onto MLX's
fused kernels): the benchmark transformer's forward loss, and one softmax, on 'metal'.

    python tools/bench_fusions.py [--rounds 3] [--calls 20]

Each round runs one child process per mode (XLA_METAL_FUSE=1, then =0, the order alternating
by round); a child compiles, warms up, then times --calls calls and prints median wall and
process-CPU time per call. Training steps are not measured here: their backward pass reads
the patterns' interior values, so the pass leaves them alone (docs/bench.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0"


def child(calls: int) -> dict[str, list[float]]:
    import ctypes

    if os.path.exists(OPENBLAS):
        ctypes.CDLL(OPENBLAS, mode=ctypes.RTLD_GLOBAL)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import argparse as ap

    import bench_jax_models as jm
    import bench_workloads as wl
    import jax

    metal = jax.devices("metal")[0]
    w_args = ap.Namespace(lm_seq=128, lm_batch=8)
    rng = np.random.default_rng(1)
    params, tokens, targets = wl.lm_inputs(w_args)
    lm = jax.jit(lambda p, x, y: jm.lm_loss(p, x, y, 4))
    scores = rng.standard_normal((8, 4, 128, 128)).astype(np.float32)
    softmax = jax.jit(lambda s: jax.nn.softmax(s, axis=-1))
    work = {"transformer forward (d=256 L=4 seq 128 batch 8)":
            (lm, jax.device_put((params, tokens, targets), metal)),
            "softmax 8x4x128x128": (softmax, jax.device_put((scores,), metal))}
    out: dict[str, list[float]] = {}
    for name, (fn, args) in work.items():
        jax.block_until_ready(fn(*args))
        jax.block_until_ready(fn(*args))
        wall, cpu = [], []
        for _ in range(calls):
            t, c = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(*args))
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        out[name] = [statistics.median(wall), statistics.median(cpu)]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.calls)))
        return
    results: dict[str, dict[str, list[list[float]]]] = {"1": {}, "0": {}}
    for r in range(args.rounds):
        for mode in (("1", "0") if r % 2 == 0 else ("0", "1")):
            env = {**os.environ, "XLA_METAL_FUSE": mode, "JAX_PLATFORMS": "metal,cpu"}
            line = subprocess.run([sys.executable, __file__, "--child", "--calls",
                                   str(args.calls)], env=env, check=True, text=True,
                                  capture_output=True).stdout.strip().splitlines()[-1]
            for name, value in json.loads(line).items():
                results[mode].setdefault(name, []).append(value)
    for name in results["1"]:
        on = [statistics.median(v[i] for v in results["1"][name]) * 1e3 for i in (0, 1)]
        off = [statistics.median(v[i] for v in results["0"][name]) * 1e3 for i in (0, 1)]
        print(f"{name}: fused wall {on[0]:.2f} ms cpu {on[1]:.2f} ms; unfused wall "
              f"{off[0]:.2f} ms cpu {off[1]:.2f} ms; fused/unfused wall {on[0] / off[0]:.2f} "
              f"cpu {on[1] / off[1]:.2f} ({args.rounds} rounds x {args.calls} calls, medians)")


if __name__ == "__main__":
    main()
