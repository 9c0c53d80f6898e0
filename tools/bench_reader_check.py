"""What reading programs in the reader process (xla_metal/reader) costs a compile.

    python tools/bench_reader_check.py [--programs 40] [--host-mib 0]

In one process holding JAX and MLX (the 'metal' device in use), compiles --programs new jitted
functions (a small MLP layer with its own constant each, so every compile is a new program),
alternating: through the reader process, and read in this process as before it existed. Each
is timed from jax.jit to its first result (trace, lower, our compile, run). Also times the
round trip alone (the bytes out, the reader's read, check and write, the answer back) for new
portable artifacts, and a reader's start (a fresh interpreter importing jaxlib, until it says
it is ready). --host-mib first fills that much host memory, to show that the cost no longer
grows with the process (a fork per program did). Prints medians.
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

from xla_metal.reader import client, framing


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
    jax.jit(lambda a, b: a @ b)(x, w).block_until_ready()  # warm up JAX, the plugin, the reader
    through_reader = client.read_program
    here = lambda code: code  # noqa: E731 - the importer then reads the frontend's bytes itself
    times: dict[str, list[float]] = {"through the reader": [], "read here": []}
    for i in range(args.programs):
        for label, fn in (("through the reader", through_reader), ("read here", here)):
            client.read_program = fn
            layer = jax.jit(lambda a, b, c=float(i) + (label == "read here") / 2:
                            jnp.tanh(a @ b + c).sum(axis=0))
            begin = time.perf_counter()
            layer(x, w).block_until_ready()
            times[label].append(time.perf_counter() - begin)
    client.read_program = through_reader

    alone = []
    for i in range(args.programs):
        code = jax.jit(lambda a, c=i + 0.25: a * c).lower(x).as_text()
        # The artifact JAX sends, new each time (so no answer is remembered).
        artifact = bytes(_jax.mlir.serialize_portable_artifact(
            code, stablehlo.get_current_version(), False))
        with client._lock:
            reader = client._current()
            begin = time.perf_counter()
            answer, _ = reader.ask(framing.PROGRAM, artifact, 10.0)
            alone.append(time.perf_counter() - begin)
        assert answer == framing.MODULE

    starts = []
    for _ in range(3):
        begin = time.perf_counter()
        fresh = client._Reader()
        fresh._wait_ready()
        starts.append(time.perf_counter() - begin)
        fresh.stop(grace=1.0)

    print(f"process: {_rss_mib():.0f} MiB resident, {args.programs} programs each way")
    for label, samples in times.items():
        print(f"first call of a new jitted function, {label}: "
              f"median {statistics.median(samples) * 1e3:.1f} ms")
    extra = statistics.median(times["through the reader"]) - statistics.median(times["read here"])
    print(f"difference: {extra * 1e3:+.1f} ms per compile")
    print(f"round trip alone (send, read, check, write, answer): median "
          f"{statistics.median(alone) * 1e3:.2f} ms, max {max(alone) * 1e3:.1f} ms")
    print(f"a reader's start (interpreter, jaxlib, ready): median "
          f"{statistics.median(starts) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
