"""Builds the PJRT library and C test programs under AddressSanitizer and UBSan.

The library is compiled from xla_metal/pjrt/*.cc into a temporary directory, separate from
the installed one. The C harness links the sanitizer runtimes itself, so nothing needs
LD_PRELOAD: Python, numpy and MLX run uninstrumented inside an instrumented process, and
every bad access by our C++ (or by the harness) is reported and stops the process.
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jax._src.lib import _jax
from jaxlib.mlir.dialects import stablehlo

ROOT = Path(__file__).resolve().parent.parent
PJRT = ROOT / "xla_metal" / "pjrt"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
            "-fno-omit-frame-pointer", "-g"]
# Leaks are not checked: the embedded Python interpreter keeps its objects until exit.
ENV = {"ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=1",
       "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}


def _libpython() -> str:
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY") or ""
    return str(Path(libdir) / name)


def build_library(out: Path) -> Path:
    """libxla_metal_pjrt.so with the sanitizers, in `out`; objects compiled two at a time."""
    out.mkdir(parents=True, exist_ok=True)
    flags = ["-std=c++17", "-O1", "-fPIC", "-fvisibility=hidden", f"-I{PJRT}",
             f'-DXM_DEFAULT_LIBPYTHON="{_libpython()}"', *SANITIZE]
    sources = sorted(PJRT.glob("*.cc"))

    def compile_one(source: Path) -> Path:
        obj = out / (source.stem + ".o")
        subprocess.run(["c++", *flags, "-c", str(source), "-o", str(obj)], check=True)
        return obj

    with ThreadPoolExecutor(max_workers=2) as pool:
        objects = list(pool.map(compile_one, sources))
    exports = out / "exports.map"
    exports.write_text("{ global: GetPjrtApi; local: *; };\n")
    library = out / "libxla_metal_pjrt.so"
    subprocess.run(["c++", "-shared", *SANITIZE, f"-Wl,--version-script={exports}",
                    "-o", str(library), *map(str, objects), "-ldl", "-lpthread"], check=True)
    return library


def build_program(source: Path, out: Path) -> Path:
    exe = out / source.stem
    subprocess.run(["cc", "-std=c11", "-O1", "-Wall", "-Werror", *SANITIZE, f"-I{PJRT}",
                    "-o", str(exe), str(source), "-ldl"], check=True)
    return exe


def run_env() -> dict[str, str]:
    """The environment for a sanitized C program: ours, with the package importable."""
    env = dict(os.environ, **ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def artifact(text: str) -> bytes:
    return _jax.mlir.serialize_portable_artifact(text, stablehlo.get_current_version(), False)


def sanitizer_report(output: str) -> str | None:
    """The first line of a sanitizer report in `output`, or None."""
    for line in output.splitlines():
        if "ERROR: AddressSanitizer" in line or "runtime error:" in line or \
                "ERROR: LeakSanitizer" in line:
            return line
    return None
