"""The PJRT library driven from C with no JAX: tests/c/pjrt_smoke.c and tests/c/pjrt_features.c.

The C programs dlopen the library, which starts its own Python interpreter (as EXLA or any
non-Python frontend would make it). pjrt_smoke compiles a small StableHLO program, executes
it, reads the result back and checks the error paths; pjrt_features compiles the same program
sent as HLO (formats "hlo" and "hlo_with_config"), reads its cost analysis and memory sizes,
copies buffers on the device and checks raw pointers and external references.
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


def _build(name: str, tmp_path: Path) -> Path:
    exe = tmp_path / name
    subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", f"-I{HERE.parent / 'xla_metal/pjrt'}",
                    "-o", str(exe), str(HERE / "c" / f"{name}.c"), "-ldl"], check=True)
    return exe


def _run(exe: Path, program: Path) -> None:
    run = subprocess.run([str(exe), str(plugin.library_path()), str(program)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{exe.name}: OK" in run.stdout


def test_c_program_drives_the_plugin_without_jax(tmp_path: Path) -> None:
    artifact = tmp_path / "add.mlirbc"
    artifact.write_bytes(_jax.mlir.serialize_portable_artifact(
        PROGRAM, stablehlo.get_current_version(), False))
    _run(_build("pjrt_smoke", tmp_path), artifact)


def test_c_program_uses_hlo_programs_introspection_copies_and_pointers(tmp_path: Path) -> None:
    hlo = tmp_path / "add.hlo"  # the same program as an HloModuleProto, by jaxlib's converter
    hlo.write_bytes(_jax.mlir.mlir_module_to_xla_computation(PROGRAM, use_tuple_args=False,
                                                             return_tuple=False)
                    .as_serialized_hlo_module_proto())
    _run(_build("pjrt_features", tmp_path), hlo)
