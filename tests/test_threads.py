"""Eight Python threads compiling, running and transferring on 'metal' at once.

Each thread compiles its own functions (so compiles on one thread overlap executions on the
others), runs them on data it put on the device, and checks every result against numpy. The
work runs in a child process with a watchdog: a deadlock is a failed test with every
thread's stack, not a hung suite. It runs for XLA_METAL_THREADS_SECONDS (60 s by default,
the issue's figure; set it lower for a quick local run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SECONDS = float(os.environ.get("XLA_METAL_THREADS_SECONDS", "60"))
THREADS = 8

WORKLOAD = r"""
import faulthandler, json, sys, threading, time
import jax, jax.numpy as jnp, numpy as np

seconds, threads = float(sys.argv[1]), int(sys.argv[2])
# Watchdog: if the threads are still running well past the deadline, print every stack
# and exit, so the parent reports where they are stuck.
faulthandler.dump_traceback_later(seconds + 120, exit=True)
metal = jax.devices("metal")[0]
deadline = time.monotonic() + seconds
counts = [dict(compiles=0, runs=0, transfers=0) for _ in range(threads)]
failures = []


def work(index):
    rng = np.random.default_rng(index)
    try:
        step = 0
        while time.monotonic() < deadline:
            step += 1
            scale = float(index * 1000 + step)
            shape = (int(rng.integers(1, 9)), int(rng.integers(1, 9)))
            host = rng.standard_normal(shape).astype(np.float32)
            x = jax.device_put(host, metal)
            counts[index]["transfers"] += 1
            # A new function object each step: a fresh trace and compile on this thread.
            f = jax.jit(lambda a, s=scale: jnp.tanh(a) * s + a.sum(axis=0))
            counts[index]["compiles"] += 1
            for _ in range(5):
                y = np.asarray(f(x))
                counts[index]["runs"] += 1
                want = np.tanh(host) * scale + host.sum(axis=0)
                np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-3 * abs(scale))
            ints = jax.device_put(np.arange(step % 7 + 1, dtype=np.int32), metal)
            total = int(jax.jit(lambda v: (v * v).sum())(ints))
            assert total == sum(k * k for k in range(step % 7 + 1)), total
            counts[index]["runs"] += 1
    except BaseException as error:
        failures.append(f"thread {index}: {type(error).__name__}: {error}")


workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
start = time.monotonic()
for w in workers:
    w.start()
for w in workers:
    w.join()
faulthandler.cancel_dump_traceback_later()
print(json.dumps(dict(counts=counts, failures=failures, seconds=time.monotonic() - start)))
"""


@pytest.mark.parametrize("awaited_by", ["stream", "results"])
def test_eight_threads_compile_run_and_transfer_without_deadlock(awaited_by: str) -> None:
    # Every program asynchronous (these small ones would otherwise run inline): the completion
    # thread and the waiting threads taking their own jobs are what can race here. Jobs are
    # awaited as on the CPU (draining the stream) and as on a GPU (waiting for the results;
    # a third of the time: the GPU itself runs this test with its own way only).
    env = dict(os.environ, JAX_PLATFORMS="metal,cpu", XLA_METAL_INLINE_ELEMENTS="0",
               XLA_METAL_AWAIT_RESULTS="1" if awaited_by == "results" else "0")
    seconds = SECONDS if awaited_by == "stream" else SECONDS / 3
    run = subprocess.run([sys.executable, "-c", WORKLOAD, str(seconds), str(THREADS)],
                         capture_output=True, text=True, env=env, timeout=seconds + 300)
    assert run.returncode == 0, "deadlock or crash:\n" + run.stderr[-8000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], report["failures"]
    for index, counts in enumerate(report["counts"]):
        # Every thread got to compile and run many times while the others were busy.
        assert counts["compiles"] >= 2 and counts["runs"] >= 10, (index, counts)
    totals = {key: sum(c[key] for c in report["counts"]) for key in report["counts"][0]}
    print(f"\n{THREADS} threads x {report['seconds']:.0f} s: {totals}")
