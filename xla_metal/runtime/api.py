"""What the PJRT surface asks of Python: clients, compiles, executions, transfers.

Each function takes the ctypes view of its bridge.h argument struct, reads its inputs and
writes its outputs. Objects live in one handle table; C++ holds only the integer handles.
"""

from __future__ import annotations

import ctypes as C
import hashlib
import itertools
import os
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import numpy as np

from .. import __version__
from ..bridge import keep
from ..compiler import compile_program, ir
from ..compiler.importer import module_text, stablehlo_versions
from ..element_types import numpy_dtype
from ..errors import InvalidArgumentError, UnimplementedError, XlaMetalError
from . import serialization
from .dtypes import (
    NAME_OF_MLX_DTYPE,
    PJRT_TYPE,
    name_of_pjrt_type,
    storage_name,
    to_mlx,
    to_numpy,
)

_handles: dict[int, Any] = {}
_next_handle = itertools.count(1)


def _new_handle(obj: Any) -> int:
    handle = next(_next_handle)
    _handles[handle] = obj
    return handle


def _get(handle: int, kind: type) -> Any:
    obj = _handles.get(handle)
    if not isinstance(obj, kind):
        raise InvalidArgumentError(f"[runtime] no live {kind.__name__.lower()} with handle "
                                   f"{handle} (deleted?)")
    return obj


def release(args: Any) -> None:
    _handles.pop(args.handle, None)


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
    input_types: list[ir.TensorType]
    output_types: list[ir.TensorType]
    code: bytes                   # the program as received: what serialization keeps
    platform: str


def _tensor_types(types: list[Any], what: str) -> list[ir.TensorType]:
    for t in types:
        if not isinstance(t, ir.TensorType):
            raise UnimplementedError(f"[compile] {what} of type {t} is not supported on metal")
    return types


def compile(args: Any) -> None:  # noqa: A001 - the PJRT verb
    fmt = C.string_at(args.format, args.format_size).decode() if args.format_size else "mlir"
    if fmt != "mlir":
        raise UnimplementedError(f"[compile] program format '{fmt}' is not supported "
                                 f"(expected 'mlir')")
    _compile_into(args, C.string_at(args.code, args.code_size))


def _platform(client: Client) -> str:
    return "cpu" if client.device.type == mx.cpu else "gpu"


def _compile_into(args: Any, code: bytes) -> None:
    """Compiles `code` for the client in args and fills the compile outputs of args."""
    client = _get(args.client, Client)
    platform = _platform(client)
    program = compile_program(code, platform)
    module = program.module
    main = module.main
    inputs = _tensor_types([a.type for a in main.args], "an argument")
    outputs = _tensor_types(main.result_types, "a result")
    fingerprint = hashlib.sha256(code + f"|{__version__}|{platform}".encode()).hexdigest()
    exe = Executable(client, program.entry(), module, fingerprint, inputs, outputs, code,
                     platform)
    meta: list[int] = []
    for t in outputs:
        meta += [PJRT_TYPE[t.dtype], t.rank, *t.shape]
    args.executable = _new_handle(exe)
    args.name = keep(main.name.encode())
    args.num_args = len(main.args)
    args.num_outputs = len(outputs)
    array = keep((C.c_int64 * max(len(meta), 1))(*meta))
    args.output_meta = C.cast(array, C.POINTER(C.c_int64))
    args.output_meta_size = len(meta)
    args.fingerprint = keep(fingerprint.encode())
    donatable = main.donatable()
    if any(donatable):
        flags = keep((C.c_uint8 * len(donatable))(*donatable))
        args.donatable = C.cast(flags, C.POINTER(C.c_uint8))


def deserialize(args: Any) -> None:
    blob = C.string_at(args.code, args.code_size)
    code = serialization.load(blob, _platform(_get(args.client, Client)))
    _compile_into(args, code)


def serialize(args: Any) -> None:
    exe = _get(args.executable, Executable)
    blob = keep(serialization.dump(exe.code, exe.platform))
    args.data = C.cast(C.c_char_p(blob), C.c_void_p)
    args.size = len(blob)


def program_text(args: Any) -> None:
    # JAX parses this text as MLIR (Compiled.as_text(), serialize_executable): hand back the
    # StableHLO program we compiled, printed.
    exe = _get(args.executable, Executable)
    text = keep(module_text(exe.code).encode())
    args.text = C.cast(C.c_char_p(text), C.c_void_p)
    args.size = len(text)


def execute(args: Any) -> None:
    exe = _get(args.executable, Executable)
    if args.num_args != len(exe.input_types):
        raise InvalidArgumentError(f"[execute] @{exe.module.entry} takes "
                                   f"{len(exe.input_types)} arguments, got {args.num_args}")
    inputs = []
    for i, want in enumerate(exe.input_types):
        array = _handles.get(args.args[i])
        if not isinstance(array, mx.array):
            raise InvalidArgumentError(f"[execute] argument {i} is not a live buffer (deleted?)")
        if tuple(array.shape) != want.shape or to_name(array) != storage_name(want.dtype):
            raise InvalidArgumentError(
                f"[execute] argument {i} is {to_name(array)}{list(array.shape)}, the program "
                f"expects {want.dtype}{list(want.shape)}")
        inputs.append(array)
    if args.donated:
        # Given up by the caller: with our table's reference gone, MLX may write results into
        # the same memory (it reuses an input buffer nobody else holds).
        for i in range(args.num_args):
            if args.donated[i]:
                _handles.pop(args.args[i], None)
    with mx.stream(exe.client.device):
        outputs = exe.run(*inputs)
        mx.eval(outputs)
    for i, (array, want) in enumerate(zip(outputs, exe.output_types, strict=True)):
        if tuple(array.shape) != want.shape or to_name(array) != storage_name(want.dtype):
            raise XlaMetalError(f"[execute] internal error: result {i} came out as "
                                f"{to_name(array)}{list(array.shape)}, declared "
                                f"{want.dtype}{list(want.shape)}")
    for i, array in enumerate(outputs):
        args.outputs[i] = _new_handle(array)


def to_name(array: mx.array) -> str:
    return NAME_OF_MLX_DTYPE[array.dtype]


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
        raw = (C.c_char * (count * dtype.itemsize)).from_address(args.data)
        host = np.frombuffer(memoryview(raw), dtype).reshape(dims)
    with mx.stream(client.device):
        array = to_mlx(host, name)  # copies: the host memory may go away after this call
        mx.eval(array)
    args.buffer = _new_handle(array)


def buffer_to_host(args: Any) -> None:
    array = _handles.get(args.buffer)
    if not isinstance(array, mx.array):
        raise InvalidArgumentError(f"[transfer] buffer {args.buffer} is not live (deleted?)")
    host = to_numpy(array)
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
