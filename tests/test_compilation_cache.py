"""JAX's persistent compilation cache holds for 'metal': a second process compiles nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROGRAM = """
import json, sys
import jax, jax.numpy as jnp, numpy as np
from jax import monitoring
import xla_metal.compiler as compiler
imports = []  # programs our importer read: a cache hit reads none (the blob holds our IR)
_import = compiler.import_module
compiler.import_module = lambda code: imports.append(1) or _import(code)
events = []
monitoring.register_event_listener(lambda name, **kw: events.append(name))
jax.config.update("jax_compilation_cache_dir", sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
metal = jax.devices("metal")[0]
x = jax.device_put(np.arange(6, dtype=np.float32), metal)
y = jax.jit(lambda a: jnp.tanh(a) * 3 + a.sum())(x)
print(json.dumps({"value": np.asarray(y).tolist(),
                  "hits": events.count("/jax/compilation_cache/cache_hits"),
                  "misses": events.count("/jax/compilation_cache/cache_misses"),
                  "imports": len(imports)}))
"""


def _run(cache: Path, want_stderr: bool = False) -> dict:
    import json

    out = subprocess.run([sys.executable, "-c", PROGRAM, str(cache)], capture_output=True,
                         text=True, timeout=300, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if want_stderr:
        result["stderr"] = out.stderr
    return result


def test_second_process_hits_the_cache(tmp_path: Path) -> None:
    first = _run(tmp_path)
    assert first["hits"] == 0 and first["misses"] >= 1
    assert any(tmp_path.iterdir()), "nothing was written to the cache"
    second = _run(tmp_path)
    assert second["misses"] == 0 and second["hits"] >= 1
    assert first["imports"] >= 1 and second["imports"] == 0
    assert second["value"] == first["value"]
