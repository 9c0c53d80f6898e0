"""JAX integration: registers the 'metal' platform through the `jax_plugins` entry point.

Kept apart from the compiler: this package knows JAX's registration API and the supported
jax/jaxlib window, nothing else. It must stay cheap to import (JAX imports it when it first
looks for backends), so MLX and the compiler are loaded only when a client is created.
"""

from __future__ import annotations

import logging
import os
import platform
from importlib import metadata
from pathlib import Path

from .. import __version__

PLATFORM = "metal"
SUPPORTED = ((0, 10, 2), (0, 12, 0))  # jax/jaxlib versions: [lowest, first unsupported)
INSTALL_HINT = "pip install 'jax>=0.10.2,<0.12' 'jaxlib>=0.10.2,<0.12'"

logger = logging.getLogger(__name__)


def library_path() -> Path:
    return Path(__file__).resolve().parent.parent / "libxla_metal_pjrt.so"


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def version_problem() -> str | None:
    """A message saying what to install when jax/jaxlib are outside our window, else None."""
    low, high = SUPPORTED
    for package in ("jax", "jaxlib"):
        try:
            found = metadata.version(package)
        except metadata.PackageNotFoundError:
            return f"xla-metal {__version__} needs {package}; install it: {INSTALL_HINT}"
        if not low <= _version(found) < high:
            return (f"xla-metal {__version__} supports jax/jaxlib >=0.10.2,<0.12 but "
                    f"{package} {found} is installed; install a supported version: "
                    f"{INSTALL_HINT}")
    return None


def has_metal_gpu() -> bool:
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def initialize() -> None:
    """Called by JAX's plugin discovery. Never raises: JAX would fail to import."""
    problem = version_problem()
    if problem:
        logger.warning("%s; the 'metal' platform is not registered.", problem)
        return
    path = library_path()
    if not path.exists():
        logger.warning("xla-metal: %s is missing (a broken install?); 'metal' is not "
                       "registered.", path)
        return
    from jax._src import xla_bridge

    # The default backend only where a Metal GPU exists; elsewhere (Linux) 'metal' ranks below
    # 'cpu', so installing the package changes nothing unless the user asks for it.
    priority = 500 if has_metal_gpu() else -100
    if os.environ.get("XLA_METAL_PRIORITY"):
        priority = int(os.environ["XLA_METAL_PRIORITY"])
    xla_bridge.register_plugin(PLATFORM, priority=priority, library_path=str(path))
    _enable_donation()
    _enable_persistent_cache()
    try:
        _register_lowering_rules()
    except Exception as e:  # noqa: BLE001 - a JAX we do not know: jit still works without them
        logger.warning("xla-metal: 'metal' lowering rules for linear algebra and host "
                       "callbacks were not registered (%s: %s)", type(e).__name__, e)
    try:
        from . import dlpack

        dlpack.install()
    except Exception as e:  # noqa: BLE001 - a JAX we do not know: DLPack export stays refused
        logger.warning("xla-metal: DLPack export from 'metal' arrays was not enabled (%s: %s)",
                       type(e).__name__, e)


def _register_lowering_rules() -> None:
    """JAX lowers some primitives only for the platforms it knows (linear algebra, host
    callbacks); these modules give 'metal' its own rules for them."""
    from . import callbacks, linalg

    linalg.register()
    callbacks.register()


def _enable_donation() -> None:
    """JAX marks donated arguments only for the platforms on its list; ours honours them."""
    try:
        from jax._src.interpreters import mlir
    except ImportError:
        return
    platforms = getattr(mlir, "_platforms_with_donation", None)
    if isinstance(platforms, list) and PLATFORM not in platforms:
        platforms.append(PLATFORM)


class _CacheablePlatform:
    """A view of our backend for JAX's persistent-cache check, which names the platforms it
    trusts to serialize executables; ours does (versioned, checksummed, data only)."""

    platform = "cpu"
    supports_executable_serialization = True

    def __init__(self, backend: object) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> object:
        return getattr(self._backend, name)


def _enable_persistent_cache() -> None:
    try:
        from jax._src import compilation_cache
    except ImportError:
        return
    original = getattr(compilation_cache, "is_cache_used", None)
    if original is None or getattr(original, "_xla_metal", False):
        return

    def is_cache_used(backend):  # type: ignore[no-untyped-def]
        if getattr(backend, "platform", None) == PLATFORM:
            backend = _CacheablePlatform(backend)
        return original(backend)

    is_cache_used._xla_metal = True  # type: ignore[attr-defined]
    compilation_cache.is_cache_used = is_cache_used
