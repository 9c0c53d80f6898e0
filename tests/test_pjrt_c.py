"""The PJRT library driven from C with no JAX: tests/c/pjrt_smoke.c.

The C program dlopens the library, which starts its own Python interpreter (as EXLA or
any non-Python frontend would make it), compiles a small StableHLO program, executes it,
reads the result back and checks the error paths.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from jax._src.lib import _jax
from jaxlib.mlir.dialects import stablehlo

import xla_metal.jax_plugin as plugin

HERE = Path(__file__).resolve().parent
PROGRAM = """
func.func @main(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = stablehlo.add %a, %b : tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}
"""


def test_c_program_drives_the_plugin_without_jax(tmp_path: Path) -> None:
    artifact = tmp_path / "add.mlirbc"
    artifact.write_bytes(_jax.mlir.serialize_portable_artifact(
        PROGRAM, stablehlo.get_current_version(), False))
    exe = tmp_path / "pjrt_smoke"
    subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", f"-I{HERE.parent / 'xla_metal/pjrt'}",
                    "-o", str(exe), str(HERE / "c" / "pjrt_smoke.c"), "-ldl"], check=True)
    run = subprocess.run([str(exe), str(plugin.library_path()), str(artifact)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pjrt_smoke: OK" in run.stdout
