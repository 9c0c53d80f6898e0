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


def _link_args() -> list[str]:
    """Export only GetPjrtApi: -fvisibility=hidden does not hide C++ library template code."""
    if sysconfig.get_platform().startswith("linux"):
        return ["-ldl", "-lpthread", "-Wl,--version-script=xla_metal/pjrt/exports.map"]
    if sysconfig.get_platform().startswith("macosx"):
        return ["-Wl,-exported_symbol,_GetPjrtApi"]
    return []


pjrt = Extension(
    "xla_metal.libxla_metal_pjrt",
    sources=[
        "xla_metal/pjrt/plugin.cc",
        "xla_metal/pjrt/errors_events.cc",
        "xla_metal/pjrt/python_runtime.cc",
        "xla_metal/pjrt/client.cc",
        "xla_metal/pjrt/buffer.cc",
        "xla_metal/pjrt/executable.cc",
    ],
    depends=[
        "xla_metal/pjrt/pjrt_c_api.h",
        "xla_metal/pjrt/bridge.h",
        "xla_metal/pjrt/internal.h",
        "xla_metal/pjrt/exports.map",
    ],
    include_dirs=["xla_metal/pjrt"],
    language="c++",
    extra_compile_args=["-std=c++17", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra"],
    define_macros=[("XM_DEFAULT_LIBPYTHON", '"%s"' % _libpython())],
    extra_link_args=_link_args(),
)

setup(ext_modules=[pjrt], cmdclass={"build_ext": BuildPjrtLibrary})
