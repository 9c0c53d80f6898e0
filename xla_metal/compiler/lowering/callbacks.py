"""Host callbacks: custom_calls into Python (jax.debug.print/callback, jax.pure_callback,
io_callback), and JAX's 'dce_sink' (a side-effecting no-op that keeps a value alive).

The custom_call's backend_config is the key of a callable in xla_metal.host_callbacks. The
key is resolved when the program compiles (an unknown key fails the compile, by name), and
the operation holds the callable from then on, so the executable keeps it alive. Running the
op evaluates its operands, hands them to the callable as numpy arrays, checks what comes back
against the op's result types (count, shape, dtype) and turns it into MLX arrays. Token
operands and results (ordered effects) are threaded through as tokens.

An op holding a callback is never traced by mx.compile (see ir.runs_on_host): the plan runs
it step by step, in program order, so callbacks happen in the order the program says.
"""

from __future__ import annotations

import traceback
import weakref
from collections.abc import Sequence
from typing import Any

import mlx.core as mx
import numpy as np

from ...element_types import numpy_dtype
from ...errors import FailedPreconditionError, InvalidArgumentError, XlaMetalError
from ...host_callbacks import HostCallback, lookup
from ...runtime.dtypes import CARRIER, to_mlx, to_numpy
from .. import ir
from ..emulated_dtypes import decode, encode
from ..ir import Op, Operation, TensorType, TokenType
from ..placement import evaluate
from .registry import register_check
from .structure import CUSTOM_CALLS

# Each compiled host-callback op -> its callable; the op lives as long as its executable.
_RESOLVED: weakref.WeakKeyDictionary[Operation, HostCallback] = weakref.WeakKeyDictionary()


def _resolve(op: Operation) -> None:
    if not ir.is_host_callback(op):
        return
    key = op.attrs.get("backend_config")
    callback = lookup(key) if isinstance(key, str) else None
    if callback is None:
        raise FailedPreconditionError(
            f"[callback] the program calls host callback '{key}', which is not alive in this "
            f"process: a host callback is a Python function of the process that lowered the "
            f"program, so a program holding one cannot be serialized, cached or loaded "
            f"elsewhere; lower it again{op.where()}")
    _RESOLVED[op] = callback


register_check(Op.CUSTOM_CALL, _resolve)


def _token() -> mx.array:
    return mx.zeros((0,), dtype=mx.bool_)


def _describe(t: TensorType) -> str:
    return f"{t.dtype}{list(t.shape)}"


def _call(callback: HostCallback, op: Operation, host_args: list[np.ndarray]) -> Sequence[Any]:
    try:
        returned = callback(*host_args)
    except Exception as e:
        # The user's error, its message and where in their callback it happened: the PJRT
        # surface can carry only text back to the caller.
        frames = "".join(traceback.format_exception(type(e), e, e.__traceback__.tb_next
                                                    if e.__traceback__ else None))
        raise XlaMetalError(f"[callback] {callback.name} raised {type(e).__name__}: {e}"
                            f"{op.where()}\n{frames}") from e
    if returned is None:
        return ()
    if not isinstance(returned, (list, tuple)):
        raise InvalidArgumentError(f"[callback] {callback.name} returned a "
                                   f"{type(returned).__name__}, expected a sequence of "
                                   f"arrays{op.where()}")
    return returned


def _to_results(callback: HostCallback, op: Operation, returned: Sequence[Any]) -> list[Any]:
    wanted = [r.type for r in op.results if isinstance(r.type, TensorType)]
    if len(returned) != len(wanted):
        expected = ", ".join(_describe(t) for t in wanted) or "nothing"
        raise InvalidArgumentError(f"[callback] {callback.name} returned {len(returned)} "
                                   f"values; the program expects {len(wanted)} ({expected})"
                                   f"{op.where()}")
    arrays = []
    for i, (value, t) in enumerate(zip(returned, wanted, strict=True)):
        host = np.asarray(value)
        if host.shape != t.shape or host.dtype.name != t.dtype:
            raise InvalidArgumentError(
                f"[callback] {callback.name} result {i} is {host.dtype.name}"
                f"{list(host.shape)}; the program expects {_describe(t)} (the result shape "
                f"and dtype declared for the callback){op.where()}")
        array = to_mlx(host, t.dtype)
        # an emulated type travels as its codes; the program computes with its carrier
        arrays.append(decode(array, t.dtype) if t.dtype in CARRIER else array)
    produced = iter(arrays)
    return [_token() if isinstance(r.type, TokenType) else next(produced) for r in op.results]


def _host_callback(ctx, op: Operation, *args: Any) -> Sequence[Any]:
    callback = _RESOLVED[op]
    operands = [(a, v.type) for a, v in zip(args, op.operands, strict=True)
                if isinstance(v.type, TensorType)]
    # an emulated type is computed in its carrier: the callback gets the type's own codes
    tensors = [encode(a, t.dtype) if t.dtype in CARRIER else a for a, t in operands]
    evaluate(tensors)
    # Copies: the callback may keep what it is given, and MLX may reuse the memory later.
    host_args = [np.array(to_numpy(a), copy=True).view(numpy_dtype(t.dtype))
                 if t.dtype in CARRIER else np.array(to_numpy(a), copy=True)
                 for a, (_, t) in zip(tensors, operands, strict=True)]
    return _to_results(callback, op, _call(callback, op, host_args))


def _dce_sink(ctx, op: Operation, *args: Any) -> Sequence[Any]:
    return ()


CUSTOM_CALLS.update({
    ir.HOST_CALLBACK_TARGET: _host_callback,
    "dce_sink": _dce_sink,  # lax.dce_sink(prevent_mlir_dce=True): keeps a value, does nothing
})


def host_callback_names(module: ir.Module) -> list[str]:
    """What each host callback of a compiled module is (e.g. "jax.debug.print('x={x}')")."""
    names = []
    for fn in module.functions.values():
        for op in ir.walk(fn.body):
            if ir.is_host_callback(op):
                callback = _RESOLVED.get(op)
                names.append(callback.name if callback else str(op.attrs.get("backend_config")))
    return names
