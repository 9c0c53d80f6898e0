"""Builds the PJRT shared library as a plain C++ extension of the xla_metal package.

The library is not a Python extension module: it has no PyInit_ symbol and does not link
libpython; JAX (or any PJRT frontend) dlopens it by path. setuptools' Extension machinery is
used only because it knows the platform's compiler and flags.
"""

import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _libpython() -> str:
    """Path of the libpython this interpreter uses, for processes that must start Python."""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY") or ""
    return str(Path(libdir) / name) if libdir and name else ""


class BuildPjrtLibrary(build_ext):
    def get_ext_filename(self, ext_name: str) -> str:
        # A fixed name: the library is found by path, never imported.
        return str(Path(*ext_name.split("."))) + ".so"

    def get_export_symbols(self, ext: Extension) -> list[str]:
        return ["GetPjrtApi"]

    def build_extension(self, ext: Extension) -> None:
        # Export GetPjrtApi alone: -fvisibility=hidden leaves the C++ standard library's
        # template code visible, which only a linker export list hides.
        platform = sysconfig.get_platform()
        if platform.startswith("linux"):
            script = Path(self.build_temp) / "libxla_metal_pjrt.map"
            script.parent.mkdir(parents=True, exist_ok=True)
            script.write_text("{ global: GetPjrtApi; local: *; };\n")
            ext.extra_link_args = [*ext.extra_link_args, f"-Wl,--version-script={script}"]
        elif platform.startswith("macosx"):
            ext.extra_link_args = [*ext.extra_link_args, "-Wl,-exported_symbol,_GetPjrtApi"]
        super().build_extension(ext)


pjrt = Extension(
    "xla_metal.libxla_metal_pjrt",
    sources=[
        "xla_metal/pjrt/plugin.cc",
        "xla_metal/pjrt/errors_events.cc",
        "xla_metal/pjrt/python_runtime.cc",
        "xla_metal/pjrt/client.cc",
        "xla_metal/pjrt/buffer.cc",
        "xla_metal/pjrt/executable.cc",
        "xla_metal/pjrt/completion.cc",
    ],
    depends=[
        "xla_metal/pjrt/pjrt_c_api.h",
        "xla_metal/pjrt/bridge.h",
        "xla_metal/pjrt/internal.h",
    ],
    include_dirs=["xla_metal/pjrt"],
    language="c++",
    extra_compile_args=["-std=c++17", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra"],
    define_macros=[("XM_DEFAULT_LIBPYTHON", f'"{_libpython()}"')],
    extra_link_args=["-ldl", "-lpthread"] if sysconfig.get_platform().startswith("linux") else [],
)

setup(ext_modules=[pjrt], cmdclass={"build_ext": BuildPjrtLibrary})
