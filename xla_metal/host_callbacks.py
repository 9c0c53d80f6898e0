"""Host callbacks: Python callables that a compiled program calls while it runs.

A frontend (our JAX integration: jax.debug.print/callback, jax.pure_callback, io_callback)
registers a callable here and writes the key it gets into the program, as the backend_config
of a custom_call to TARGET. The compiler looks the key up when it compiles the program; from
then on the executable holds the callable itself.

Keys are process-local: they start with a random prefix drawn when this module is imported,
so a program that carries a key from another process (a serialized executable, a cache entry,
a copied text) can never reach an unrelated callable here; it fails to compile, by name.

The registry holds callables weakly. Whoever registers one keeps it alive until the programs
using it are compiled (JAX keeps its lowering's host callbacks with the computation it
compiles), and each executable keeps the ones it uses for as long as it lives.

This module imports neither JAX nor MLX: both sides may load it cheaply.
"""

from __future__ import annotations

import itertools
import secrets
import weakref
from collections.abc import Callable, Sequence
from typing import Any

TARGET = "xla_metal.host_callback"

_PROCESS = secrets.token_hex(8)
_numbers = itertools.count(1)
_live: weakref.WeakValueDictionary[str, HostCallback] = weakref.WeakValueDictionary()


class HostCallback:
    """A callable a program calls on the host: numpy arrays in, a sequence of arrays out.

    `name` says what the user wrote (e.g. "jax.pure_callback(f)") for error messages."""

    __slots__ = ("function", "name", "key", "__weakref__")

    def __init__(self, function: Callable[..., Sequence[Any]], name: str, key: str) -> None:
        self.function = function
        self.name = name
        self.key = key

    def __call__(self, *args: Any) -> Sequence[Any]:
        return self.function(*args)

    def __repr__(self) -> str:
        return f"<host callback {self.key}: {self.name}>"


def register(function: Callable[..., Sequence[Any]], name: str) -> HostCallback:
    """A new host callback; its `key` goes into the program. Keep the object alive until the
    program is compiled (the registry itself holds it weakly)."""
    callback = HostCallback(function, name, f"{_PROCESS}:{next(_numbers)}")
    _live[callback.key] = callback
    return callback


def lookup(key: str) -> HostCallback | None:
    """The live callback registered under `key` in this process, else None."""
    return _live.get(key)


def live_count() -> int:
    return len(_live)
