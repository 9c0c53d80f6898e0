"""What the PJRT surface asks of Python: clients, compiles, executions, transfers.

Each function takes the ctypes view of its bridge.h argument struct, reads its inputs and
writes its outputs. Objects live in one handle table; C++ holds only the integer handles.
"""

from __future__ import annotations

import collections
import ctypes as C
import hashlib
import itertools
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import numpy as np

from .. import __version__
from ..bridge import address_of, keep, kept_array, memory_at
from ..compiler import compile_program, ir, ir_codec, plan_program
from ..compiler.importer import module_text, readable, stablehlo_versions
from ..compiler.lowering.callbacks import host_callback_names
from ..compiler.placement import CPU_ONLY_DTYPES
from ..element_types import numpy_dtype
from ..errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    UnimplementedError,
    XlaMetalError,
)
from ..memory_kinds import DEFAULT_MEMORY_KIND, MEMORY_KINDS, result_memory_ids
from ..reader import client as reader
from . import compile_options, execution, hlo_program, introspection, serialization
from .dtypes import (
    PJRT_TYPE,
    name_of_pjrt_type,
    to_mlx,
    to_numpy,
)

_handles: dict[int, Any] = {}
_next_handle = [1]
_handle_lock = threading.Lock()
# Buffers whose address was handed out (buffer_pointer): their array is never replaced from
# then on, so the address stays valid as long as the handle lives.
_pinned: set[int] = set()


def _new_handle(obj: Any) -> int:
    (handle,) = _new_handles((obj,))
    return handle


def _new_handles(objs: Sequence[Any]) -> range:
    """Handles for `objs`, in order: one block of consecutive numbers (a program's results
    get theirs in one step, not one Python step per result)."""
    with _handle_lock:
        first = _next_handle[0]
        _next_handle[0] = first + len(objs)
    handles = range(first, first + len(objs))
    _handles.update(zip(handles, objs, strict=True))
    return handles


def _get(handle: int, kind: type) -> Any:
    obj = _handles.get(handle)
    if not isinstance(obj, kind):
        raise InvalidArgumentError(f"[runtime] no live {kind.__name__.lower()} with handle "
                                   f"{handle} (deleted?)")
    return obj


def release(args: Any) -> None:
    """An executable's handle (buffers come in batches: release_buffers)."""
    _give_up(args.handle)


def release_buffers(args: Any) -> None:
    handles = args.handles[: args.count]
    _give_up_all(handles)
    if execution.pending_outputs:
        _drop(execution.pending_outputs, handles)


def _drop(table: dict[int, Any], keys: Sequence[int]) -> None:
    """Removes `keys` from `table` (those present), without a Python step per key."""
    collections.deque(map(table.pop, keys, itertools.repeat(None)), maxlen=0)


# ------------------------------------------------------------------------------ client


@dataclass
class Client:
    device: mx.Device


def _device() -> mx.Device:
    choice = os.environ.get("XLA_METAL_DEVICE", "")
    if choice in ("cpu", "gpu"):
        return mx.Device(mx.cpu if choice == "cpu" else mx.gpu)
    return mx.default_device()


def _device_kind(device: mx.Device) -> str:
    if device.type == mx.cpu:
        return "MLX CPU"
    if mx.metal.is_available():
        return "Apple GPU (MLX Metal)"
    return "NVIDIA GPU (MLX CUDA)"


def plugin_attributes(args: Any) -> None:
    current, minimum = stablehlo_versions()
    args.stablehlo_current[:] = current
    args.stablehlo_minimum[:] = minimum


def client_create(args: Any) -> None:
    device = _device()
    args.client = _new_handle(Client(device))
    mlx_version = getattr(mx, "__version__", "?")
    args.platform_version = keep(f"xla-metal {__version__}; mlx {mlx_version}".encode())
    args.device_kind = keep(_device_kind(device).encode())
    # The process that reads programs for us (xla_metal/reader) imports jaxlib while the
    # frontend traces its first program. If it cannot start, that first compile says why.
    try:
        reader.start_in_background()
    except FailedPreconditionError:
        pass


def memory_stats(args: Any) -> None:
    _get(args.client, Client)
    args.bytes_in_use = mx.get_active_memory()
    args.peak_bytes_in_use = mx.get_peak_memory()
    args.bytes_limit = mx.get_memory_limit()


def client_destroy(args: Any) -> None:
    _handles.pop(args.handle, None)


# -------------------------------------------------------------------------- executables


@dataclass
class Executable:
    client: Client
    run: Any                      # the entry function: MLX arrays -> MLX arrays
    module: ir.Module
    fingerprint: str
    outputs: execution.Signature
    code: bytes                   # the program as received: what serialization keeps
    platform: str
    inline: bool                  # evaluated inside Execute (execution.runs_inline)
    # whether an execution's results were checked against `outputs`: a plan gives the same
    # shapes and dtypes every run, so the first execution checks them for all
    outputs_checked: bool = False


# A token (ordered effects: io_callback(ordered=True), debug.print(ordered=True)) travels as a
# PJRT buffer of type TOKEN; inside the plan it is an empty bool array. JAX hands an empty
# bool array for a token argument the first time it runs a program with an ordered effect.
_PJRT_TOKEN = 23  # PJRT_Buffer_Type_TOKEN


def _signature_types(types: list[Any], what: str) -> list[ir.TensorType | ir.TokenType]:
    for t in types:
        if not isinstance(t, (ir.TensorType, ir.TokenType)):
            raise UnimplementedError(f"[compile] {what} of type {t} is not supported on metal")
    return types


def compile(args: Any) -> None:  # noqa: A001 - the PJRT verb
    fmt = C.string_at(args.format, args.format_size).decode(errors="replace") \
        if args.format_size else "mlir"
    code = C.string_at(args.code, args.code_size)
    if args.options_size:
        compile_options.check(C.string_at(args.options, args.options_size))
    if fmt in ("hlo", "hlo_with_config"):  # PyTorch/XLA's and other XlaBuilder frontends'
        code = hlo_program.to_stablehlo(code, with_config=fmt == "hlo_with_config")
    elif fmt != "mlir":
        raise UnimplementedError(f"[compile] program format '{fmt}' is not supported "
                                 f"(expected 'mlir', 'hlo' or 'hlo_with_config')")
    _compile_into(args, code)


def _type_meta(types: list[ir.TensorType | ir.TokenType]) -> tuple[Any, int]:
    """[pjrt type, rank, *dims] per value, back to back, as C++ reads them (bridge.h)."""
    meta: list[int] = []
    for t in types:
        meta += [_PJRT_TOKEN, 0] if isinstance(t, ir.TokenType) else \
            [PJRT_TYPE[t.dtype], t.rank, *t.shape]
    return kept_array(meta, C.c_int64), len(meta)


def _platform(client: Client) -> str:
    return "cpu" if client.device.type == mx.cpu else "gpu"


def _compile_into(args: Any, code: bytes, compiled: bytes = b"") -> None:
    """Compiles `code` for the client in args and fills the compile outputs of args; with
    `compiled` (a serialized executable's IR, the passes already run) only plans it."""
    client = _get(args.client, Client)
    platform = _platform(client)
    program = plan_program(ir_codec.decode(compiled), platform) if compiled else \
        compile_program(code, platform)
    module = program.module
    main = module.main
    inputs = _signature_types([a.type for a in main.args], "an argument")
    outputs = _signature_types(main.result_types, "a result")
    fingerprint = hashlib.sha256(code + f"|{__version__}|{platform}".encode()).hexdigest()
    exe = Executable(client, program.entry(), module, fingerprint,
                     execution.Signature(tuple(outputs)), code, platform,
                     execution.runs_inline(module))
    args.executable = _new_handle(exe)
    args.name = keep(main.name.encode())
    args.num_args = len(main.args)
    args.num_outputs = len(outputs)
    args.input_meta, args.input_meta_size = _type_meta(inputs)
    args.output_meta, args.output_meta_size = _type_meta(outputs)
    args.fingerprint = keep(fingerprint.encode())
    memories = result_memory_ids(main.result_attrs, len(outputs))
    if any(m != MEMORY_KINDS.index(DEFAULT_MEMORY_KIND) for m in memories):
        args.output_memories = kept_array(memories, C.c_uint8)
    donatable = main.donatable()
    if any(donatable):
        args.donatable = kept_array(donatable, C.c_uint8)


def deserialize(args: Any) -> None:
    blob = C.string_at(args.code, args.code_size)
    code, compiled = serialization.load(blob, _platform(_get(args.client, Client)))
    _compile_into(args, code, compiled)


def serialize(args: Any) -> None:
    exe = _get(args.executable, Executable)
    blob = serialization.dump(exe.code, exe.platform, host_callback_names(exe.module),
                              ir_codec.encode(exe.module) or b"")
    args.data = address_of(blob)
    args.size = len(blob)


def program_text(args: Any) -> None:
    # JAX parses this text as MLIR (Compiled.as_text(), serialize_executable): hand back the
    # StableHLO program we compiled, printed.
    exe = _get(args.executable, Executable)
    text = module_text(exe.code).encode()
    args.text = address_of(text)
    args.size = len(text)


def cost_analysis(args: Any) -> None:
    exe = _get(args.executable, Executable)
    costs = introspection.cost_analysis(readable(exe.code))  # XLA's reader, in this process
    args.names = kept_array([address_of(name.encode()) for name in costs], C.c_char_p)
    args.values = kept_array(list(costs.values()), C.c_double)
    args.count = len(costs)


def memory_analysis(args: Any) -> None:
    sizes = introspection.memory_sizes(_get(args.executable, Executable).module)
    args.argument_size = sizes.argument
    args.output_size = sizes.output
    args.alias_size = sizes.alias
    args.temp_size = sizes.temp


def execute(args: Any) -> None:
    execution.execute(_get(args.executable, Executable), args, _handles, _give_up_all,
                      _new_handles)


def _give_up(handle: int) -> None:
    _give_up_all((handle,))


def _give_up_all(handles: Sequence[int]) -> None:
    """Drops `handles` from the table (and from the pinned set)."""
    _drop(_handles, handles)
    if _pinned:
        _pinned.difference_update(handles)


# ---------------------------------------------------------------------------- transfers


def buffer_from_host(args: Any) -> None:
    client = _get(args.client, Client)
    name = name_of_pjrt_type(args.type)
    dtype = numpy_dtype(name)
    dims = tuple(args.dims[i] for i in range(args.rank))
    if any(d < 0 for d in dims):
        raise InvalidArgumentError(f"[transfer] negative dimension in {list(dims)}")
    count = int(np.prod(dims, dtype=np.int64))
    if count == 0:
        host = np.zeros(dims, dtype)
    elif not args.data:
        raise InvalidArgumentError("[transfer] host buffer pointer is NULL")
    else:  # C++ hands dense row-major data: it has already applied any byte strides
        host = memory_at(args.data, count * dtype.itemsize).view(dtype).reshape(dims)
    # float64 has no GPU stream: on a GPU client it is held as a CPU-stream array
    stream = mx.cpu if name in CPU_ONLY_DTYPES else client.device
    with mx.stream(stream):
        array = to_mlx(host, name)  # copies: the host memory may go away after this call
        mx.eval(array)
    args.buffer = _new_handle(array)


def buffer_to_host(args: Any) -> None:
    array = _handles.get(args.buffer)
    if not isinstance(array, mx.array):
        raise InvalidArgumentError(f"[transfer] buffer {args.buffer} is not live (deleted?)")
    execution.wait_for_buffer(args.buffer, array)
    with execution.graph_lock:
        host = to_numpy(array)
    if host.ndim == args.rank + 1 and host.dtype == np.float64:  # complex128 pairs
        host = np.ascontiguousarray(host).view(np.complex128)[..., 0]
    if args.minor_to_major:
        minor_to_major = [args.minor_to_major[i] for i in range(args.rank)]
        if sorted(minor_to_major) != list(range(host.ndim)):
            raise InvalidArgumentError(f"[transfer] bad layout {minor_to_major} for a rank "
                                       f"{host.ndim} array")
        host = host.transpose(minor_to_major[::-1])
    host = np.asarray(host, order="C")
    if host.nbytes != args.dst_size:
        raise InvalidArgumentError(f"[transfer] destination holds {args.dst_size} bytes, the "
                                   f"buffer has {host.nbytes}")
    if host.nbytes:
        C.memmove(args.dst, host.ctypes.data, host.nbytes)


def _live_array(handle: int) -> mx.array:
    array = _handles.get(handle)
    if not isinstance(array, mx.array):
        raise InvalidArgumentError(f"[transfer] buffer {handle} is not live (deleted?)")
    return array


def buffer_copy(args: Any) -> None:
    # MLX arrays are immutable, so a copy on the same device may share the array: each
    # handle keeps it alive on its own (and waits for the same job before it is read).
    args.copy = _new_handle(_live_array(args.buffer))
    job = execution.pending_outputs.get(args.buffer)
    if job is not None:
        execution.pending_outputs[args.copy] = job


def _memory_range(array: mx.array) -> tuple[int, int] | None:
    """[start, end) of a row-contiguous array's memory; None for a strided view."""
    view = memoryview(array)  # type: ignore[arg-type]  # MLX arrays are buffers
    if not view.c_contiguous:
        return None
    if view.nbytes == 0:
        return 0, 0
    start = np.frombuffer(view.cast("B"), np.uint8).ctypes.data
    return start, start + view.nbytes


def _shares_memory(handle: int, memory: tuple[int, int]) -> bool:
    """Whether another live buffer's array overlaps `memory` (MLX shares memory between an
    array and its reshapes, and a program may return its argument as its result)."""
    start, end = memory
    for other_handle, other in _handles.items():
        if other_handle != handle and isinstance(other, mx.array):
            other_memory = _memory_range(other)  # a strided view never hands out an address
            if other_memory is not None and other_memory[0] < end and start < other_memory[1]:
                return True
    return False


def buffer_pointer(args: Any) -> None:
    """The address of the buffer's dense row-major data, valid while the handle lives.

    Each buffer gets memory of its own, as on XLA's backends: before its first address is
    handed out, a buffer whose array is a strided view, or overlaps another buffer's memory,
    gets a row-contiguous copy in its place (the same values: arrays are immutable)."""
    # a clear error for a dead handle, before waiting for it
    execution.wait_for_buffer(args.buffer, _live_array(args.buffer))
    with execution.graph_lock:
        _pin(args)


def _pin(args: Any) -> None:
    array = _live_array(args.buffer)
    memory = _memory_range(array)
    if args.buffer not in _pinned:
        if memory is None:
            array = mx.contiguous(array)
        elif memory[1] > memory[0] and _shares_memory(args.buffer, memory):
            array = mx.array(array)  # a copy
        mx.eval(array)
        memory = _memory_range(array)
        if memory is None:
            raise XlaMetalError("[transfer] internal error: MLX gave a strided array where a "
                                "row-contiguous copy was asked for")
        _handles[args.buffer] = array
        _pinned.add(args.buffer)
    assert memory is not None  # a pinned array is row-contiguous
    args.address = memory[0]


def array_at(address: int, nbytes: int) -> mx.array | None:
    """The array of a live buffer whose address was handed out (buffer_pointer) and whose
    memory is [address, address + nbytes); None if there is none. DLPack export holds on to
    it, so the memory outlives the buffer as long as the consumer's view does."""
    for handle in list(_pinned):
        array = _handles.get(handle)
        if isinstance(array, mx.array) and _memory_range(array) == (address, address + nbytes):
            return array
    return None
