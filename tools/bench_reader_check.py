"""What reading bytecode in a child first (xla_metal/compiler/reader_check.py) costs a compile.

    python tools/bench_reader_check.py [--programs 40] [--host-mib 0]

In one process holding JAX and MLX (the 'metal' device in use), compiles --programs new jitted
functions (a small MLP layer with its own constant each, so every compile is a new program),
alternating: with the check, and with it switched off. Each is timed from jax.jit to its first
result (trace, lower, our compile, run). Also times the check alone (fork, the child's read,
the answer). --host-mib first fills that much host memory, since fork's cost grows with the
process. Prints medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax._src.lib import _jax
from jaxlib.mlir.dialects import stablehlo

from xla_metal.compiler import importer, reader_check


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--programs", type=int, default=40)
    parser.add_argument("--host-mib", type=int, default=0)
    args = parser.parse_args()

    ballast = np.ones(args.host_mib * 2**20 // 8)  # touched: resident  # noqa: F841
    metal = jax.devices("metal")[0]
    x = jax.device_put(np.ones((16, 32), np.float32), metal)
    w = jax.device_put(np.ones((32, 8), np.float32), metal)
    jax.jit(lambda a, b: a @ b)(x, w).block_until_ready()  # warm up JAX and the plugin
    check = reader_check.read_in_child
    skip = lambda code, *a: code  # noqa: E731 - read the bytes here, as before the check
    times: dict[str, list[float]] = {"with the check": [], "without": []}
    for i in range(args.programs):
        for label, fn in (("with the check", check), ("without", skip)):
            reader_check.read_in_child = fn
            layer = jax.jit(lambda a, b, c=float(i) + (label == "without") / 2:
                            jnp.tanh(a @ b + c).sum(axis=0))
            begin = time.perf_counter()
            layer(x, w).block_until_ready()
            times[label].append(time.perf_counter() - begin)
    reader_check.read_in_child = check

    alone = []
    for i in range(args.programs):
        code = jax.jit(lambda a, c=i + 0.25: a * c).lower(x).as_text().encode()
        # The artifact JAX sends: only bytecode is checked.
        artifact = _jax.mlir.serialize_portable_artifact(
            code.decode(), stablehlo.get_current_version(), False)
        begin = time.perf_counter()
        assert isinstance(
            reader_check._ask_child(artifact, importer.read_for_check, "", 10.0), bytes)
        alone.append(time.perf_counter() - begin)

    print(f"process: {_rss_mib():.0f} MiB resident, {args.programs} programs each way")
    for label, samples in times.items():
        print(f"first call of a new jitted function, {label}: "
              f"median {statistics.median(samples) * 1e3:.1f} ms")
    extra = statistics.median(times["with the check"]) - statistics.median(times["without"])
    print(f"difference: {extra * 1e3:+.1f} ms per compile")
    print(f"the child alone (fork, read, write, answer): median "
          f"{statistics.median(alone) * 1e3:.1f} ms, max {max(alone) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
