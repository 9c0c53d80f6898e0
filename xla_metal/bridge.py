"""The Python end of the bridge to the C++ PJRT surface (see pjrt/bridge.h).

C++ calls `attach(address)` once, with the address of its XmBridge table; we fill the table
with ctypes callbacks. ctypes takes the GIL around every callback, so C++ threads that do not
hold it (Compile, Execute) are safe. Each callback turns every exception into the
"<code>:<message>" text that C++ turns into a PJRT_Error; nothing escapes into C.
"""

from __future__ import annotations

import atexit
import ctypes as C
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import FailedPreconditionError, pjrt_code

BRIDGE_VERSION = 4

XmCall = C.CFUNCTYPE(C.c_void_p, C.c_void_p)
_i64p = C.POINTER(C.c_int64)


class PluginAttributesArgs(C.Structure):
    _fields_ = [("stablehlo_current", C.c_int64 * 3), ("stablehlo_minimum", C.c_int64 * 3)]


class ReleaseManyArgs(C.Structure):
    _fields_ = [("handles", _i64p), ("count", C.c_int64)]


class ClientCreateArgs(C.Structure):
    _fields_ = [("client", C.c_int64), ("platform_version", C.c_char_p),
                ("device_kind", C.c_char_p)]


class ReleaseArgs(C.Structure):
    _fields_ = [("handle", C.c_int64)]


class CompileArgs(C.Structure):
    _fields_ = [("client", C.c_int64),
                ("code", C.c_void_p), ("code_size", C.c_size_t),
                ("format", C.c_void_p), ("format_size", C.c_size_t),
                ("options", C.c_void_p), ("options_size", C.c_size_t),
                ("executable", C.c_int64), ("name", C.c_char_p),
                ("num_args", C.c_int32), ("num_outputs", C.c_int32),
                ("output_meta", _i64p), ("output_meta_size", C.c_size_t),
                ("input_meta", _i64p), ("input_meta_size", C.c_size_t),
                ("fingerprint", C.c_char_p), ("donatable", C.POINTER(C.c_uint8)),
                ("output_memories", C.POINTER(C.c_uint8))]


class ExecuteArgs(C.Structure):
    _fields_ = [("executable", C.c_int64), ("args", _i64p), ("num_args", C.c_int32),
                ("donated", C.POINTER(C.c_uint8)), ("first_output", C.c_int64),
                ("num_outputs", C.c_int32), ("completion", C.c_int64)]


class AwaitExecutionArgs(C.Structure):
    _fields_ = [("job", C.c_int64)]


class FromHostArgs(C.Structure):
    _fields_ = [("client", C.c_int64), ("data", C.c_void_p), ("type", C.c_int32),
                ("rank", C.c_int32), ("dims", _i64p), ("byte_strides", _i64p),
                ("buffer", C.c_int64)]


class ToHostArgs(C.Structure):
    _fields_ = [("buffer", C.c_int64), ("dst", C.c_void_p), ("dst_size", C.c_int64),
                ("minor_to_major", _i64p), ("rank", C.c_int32)]


class SerializeArgs(C.Structure):
    _fields_ = [("executable", C.c_int64), ("data", C.c_void_p), ("size", C.c_size_t)]


class ProgramTextArgs(C.Structure):
    _fields_ = [("executable", C.c_int64), ("text", C.c_void_p), ("size", C.c_size_t)]


class MemoryStatsArgs(C.Structure):
    _fields_ = [("client", C.c_int64), ("bytes_in_use", C.c_int64),
                ("peak_bytes_in_use", C.c_int64), ("bytes_limit", C.c_int64)]


class CostAnalysisArgs(C.Structure):
    _fields_ = [("executable", C.c_int64), ("count", C.c_int32),
                ("names", C.POINTER(C.c_char_p)), ("values", C.POINTER(C.c_double))]


class MemoryAnalysisArgs(C.Structure):
    _fields_ = [("executable", C.c_int64), ("argument_size", C.c_int64),
                ("output_size", C.c_int64), ("alias_size", C.c_int64),
                ("temp_size", C.c_int64)]


class BufferCopyArgs(C.Structure):
    _fields_ = [("buffer", C.c_int64), ("copy", C.c_int64)]


class BufferPointerArgs(C.Structure):
    _fields_ = [("buffer", C.c_int64), ("address", C.c_uint64)]


_EXITING = C.CFUNCTYPE(None)


class Bridge(C.Structure):
    _fields_ = [("version", C.c_uint32), ("python_exiting", _EXITING),
                *((name, XmCall) for name in (
                    "plugin_attributes", "client_create", "client_destroy", "compile",
                    "deserialize", "executable_release", "serialize", "program_text",
                    "execute", "buffer_from_host", "buffer_to_host", "buffers_release",
                    "memory_stats", "cost_analysis", "memory_analysis", "buffer_copy",
                    "buffer_pointer", "await_execution"))]


# Memory handed to C++ (strings, arrays, error texts) must outlive the callback that returns
# it: C++ copies it at once, so keeping the latest per thread is enough.
_local = threading.local()


def keep(obj: Any) -> Any:
    """Keeps `obj` alive until the next outermost callback on this thread starts."""
    kept = getattr(_local, "kept", None)
    if kept is None:  # called outside a callback (tests drive the runtime directly)
        kept = _local.kept = []
    kept.append(obj)
    return obj


# Memory crosses to C++ as numpy arrays and addresses, not as ctypes arrays: in Python 3.11
# every `c_int64 * n` makes a new class and every ctypes.cast of a ctypes object links the two
# both ways, each a reference cycle left for the garbage collector after every call (JAX's
# own tests count the cycles a jit call leaves: tests/test_leaks.py).
def kept_array(values: Sequence[Any], ctype: Any) -> Any:
    """A C array of `values` (kept alive as keep() does), as a pointer to `ctype` (for
    c_char_p, `values` are addresses: address_of)."""
    array = keep(np.array(values, np.uintp if ctype is C.c_char_p else np.dtype(ctype)))
    return C.cast(array.ctypes.data, C.POINTER(ctype))


def address_of(data: bytes) -> int:
    """The address of `data`'s bytes (NUL-terminated, as CPython holds bytes), kept alive as
    keep() does."""
    return int(np.frombuffer(keep(data), np.uint8).__array_interface__["data"][0])


class _Memory:
    """`nbytes` of memory at `address`, as numpy sees an array (no ctypes class made)."""

    def __init__(self, address: int, nbytes: int) -> None:
        self.__array_interface__ = {"data": (address, True), "shape": (nbytes,),
                                    "typestr": "|u1", "version": 3}


def memory_at(address: int, nbytes: int) -> np.ndarray:
    """A uint8 view, no copy, of the `nbytes` of memory C++ handed over at `address`."""
    return np.asarray(_Memory(address, nbytes))


def _fail(exc: BaseException) -> int:
    message = str(exc) or type(exc).__name__
    if pjrt_code(exc) == 13 and not message.startswith("["):  # internal: say where it came from
        frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" ({frame[0].filename}:{frame[0].lineno})" if frame else ""
        message = f"{type(exc).__name__}: {message}{where}"
    _local.error = C.create_string_buffer(f"{pjrt_code(exc)}:{message}".encode("utf-8",
                                                                                "replace"))
    return C.addressof(_local.error)


def _callback(handler: Callable[[Any], None], args_type: type[C.Structure]) -> Any:
    def call(address: int) -> int | None:
        # A callback may run inside another on the same thread (a buffer released by garbage
        # collection during a compile): only the outermost one starts a fresh keep list.
        depth = getattr(_local, "depth", 0)
        if depth == 0:
            _local.kept = []
        _local.depth = depth + 1
        try:
            handler(args_type.from_address(address))
            return None
        except BaseException as exc:  # noqa: BLE001 - everything becomes a PJRT_Error
            return _fail(exc)
        finally:
            _local.depth = depth

    return XmCall(call)


_table: Bridge | None = None
_callbacks: list[Any] = []  # the ctypes thunks must live as long as the process


def attach(address: int) -> None:
    """Fills the C++ bridge table at `address` with our callbacks."""
    global _table
    from . import runtime  # noqa: F401 - imported here so a bad install fails with its cause
    from .compiler.plan import release_other_threads
    from .runtime import api, execution

    table = Bridge.from_address(address)
    if table.version != BRIDGE_VERSION:
        raise FailedPreconditionError(f"[bridge] the PJRT library speaks bridge version "
                                      f"{table.version}, the Python package {BRIDGE_VERSION}: "
                                      f"reinstall xla-metal")
    handlers = {
        "plugin_attributes": (api.plugin_attributes, PluginAttributesArgs),
        "client_create": (api.client_create, ClientCreateArgs),
        "client_destroy": (api.client_destroy, ReleaseArgs),
        "compile": (api.compile, CompileArgs),
        "deserialize": (api.deserialize, CompileArgs),
        "executable_release": (api.release, ReleaseArgs),
        "serialize": (api.serialize, SerializeArgs),
        "program_text": (api.program_text, ProgramTextArgs),
        "execute": (api.execute, ExecuteArgs),
        "buffer_from_host": (api.buffer_from_host, FromHostArgs),
        "buffer_to_host": (api.buffer_to_host, ToHostArgs),
        "buffers_release": (api.release_buffers, ReleaseManyArgs),
        "memory_stats": (api.memory_stats, MemoryStatsArgs),
        "cost_analysis": (api.cost_analysis, CostAnalysisArgs),
        "memory_analysis": (api.memory_analysis, MemoryAnalysisArgs),
        "buffer_copy": (api.buffer_copy, BufferCopyArgs),
        "buffer_pointer": (api.buffer_pointer, BufferPointerArgs),
        "await_execution": (execution.await_execution, AwaitExecutionArgs),
    }
    for name, (handler, args_type) in handlers.items():
        thunk = _callback(handler, args_type)
        _callbacks.append(thunk)
        setattr(table, name, thunk)
    _table = table
    exiting = table.python_exiting

    def at_exit() -> None:
        release_other_threads()  # while Python runs (compiler/plan.py says why)
        exiting()

    atexit.register(at_exit)
