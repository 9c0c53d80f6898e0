"""Properties of the PJRT shared library itself, and its use from many threads through JAX."""

from __future__ import annotations

import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

import xla_metal.jax_plugin as plugin
from tests.concurrently import run_in_threads

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF tools")


@linux_only
@pytest.mark.skipif(shutil.which("nm") is None, reason="needs nm")
def test_library_exports_only_get_pjrt_api() -> None:
    listing = subprocess.run(["nm", "-D", "--defined-only", str(plugin.library_path())],
                             capture_output=True, text=True, check=True).stdout
    exported = {line.split()[-1] for line in listing.splitlines() if line.strip()}
    assert exported - {"_init", "_fini"} == {"GetPjrtApi"}


@linux_only
@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs readelf")
def test_library_does_not_link_libpython() -> None:
    dynamic = subprocess.run(["readelf", "-d", str(plugin.library_path())],
                             capture_output=True, text=True, check=True).stdout
    needed = [line for line in dynamic.splitlines() if "(NEEDED)" in line]
    assert needed and not any("python" in line.lower() for line in needed), needed


def test_compiles_and_runs_from_many_threads(metal: jax.Device) -> None:
    # JAX compiles on worker threads Python did not create. Results the bridge hands back
    # (output shapes, names, error texts) live in that thread's Python state, which must
    # survive until C++ has copied them: this once returned garbage output types.
    failures: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            value = jax.device_put(np.full((8,), seed, np.float32), metal)
            for _ in range(10):
                value = jax.jit(lambda v: v + 1)(value)  # a new function: compiles
            np.testing.assert_array_equal(np.asarray(value), np.full((8,), seed + 10))
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)

    run_in_threads(work, [(seed,) for seed in range(8)])
    assert not failures, failures[0]
