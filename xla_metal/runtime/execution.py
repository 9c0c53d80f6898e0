"""Executing a compiled program: the per-call path, kept as short as it can be.

Everything an execution checks is prepared once per executable (`Signature`), so a call
compares tuples and makes no other decision. Execution is asynchronous: the program's MLX
graph is built and scheduled (mx.async_eval) on the calling thread, which then returns; the
outputs become a job that C++ awaits on its completion thread (await_execution), completing
the buffers' ready events when MLX is done. An MLX error raised while the graph is built or
scheduled fails the Execute call itself; one raised when the job is awaited fails the events
(JAX raises it from block_until_ready), and reading such a buffer raises it again.

A program too small for the hand-over to pay (`runs_inline`: no control flow, few elements
touched) is evaluated inside Execute instead, on the caller's thread, and its events are
ready at once; XLA_METAL_SYNC_EXECUTE=1 does that for every program.
"""

from __future__ import annotations

import itertools
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import mlx.core as mx

from ..compiler import ir
from ..errors import InvalidArgumentError, XlaMetalError
from .dtypes import MLX_DTYPE, NAME_OF_MLX_DTYPE, storage_name

SYNCHRONOUS = os.environ.get("XLA_METAL_SYNC_EXECUTE", "0") == "1"
# Executions scheduled but not yet awaited: past this many, Execute waits for the oldest, so a
# loop that never reads its results cannot queue unbounded work (and memory) ahead of MLX.
MAX_IN_FLIGHT = 32

# Programs touching fewer elements than this (operands and results of every op, summed), with
# no loop or branch and no host callback (whose cost is the user's Python), run inline: MLX
# computes them in microseconds, less than handing the wait to another thread costs
# (docs/dispatch.md).
INLINE_ELEMENTS = 1 << 15

_in_flight: OrderedDict[int, list[mx.array]] = OrderedDict()
_failed: dict[int, Exception] = {}  # jobs whose outputs Execute waited for, and that failed
_next_job = itertools.count(1)


def to_name(array: mx.array) -> str:
    return NAME_OF_MLX_DTYPE[array.dtype]


def _is_token_value(array: mx.array) -> bool:
    return array.size == 0 and array.ndim <= 1


@dataclass(frozen=True)
class Signature:
    """What an executable's arguments and results must be, in the form a call compares."""

    types: tuple[ir.TensorType | ir.TokenType, ...]
    # (shape, MLX dtype) per value, the form an array reports; None when a token is among them
    expected: tuple[tuple[tuple[int, ...], mx.Dtype], ...] | None

    @staticmethod
    def of(types: list[ir.TensorType | ir.TokenType]) -> Signature:
        expected = []
        for t in types:
            dtype = MLX_DTYPE.get(storage_name(t.dtype)) if isinstance(t, ir.TensorType) \
                else None
            if dtype is None:  # a token, or a type no buffer holds: checked one by one
                return Signature(tuple(types), None)
            assert isinstance(t, ir.TensorType)
            expected.append((tuple(t.shape), dtype))
        return Signature(tuple(types), tuple(expected))

    def matches(self, arrays: list[Any]) -> bool:
        """Whether every array has its expected shape and dtype (tokens: always False, so
        the caller takes the slow path that checks them one by one)."""
        if self.expected is None:
            return False
        try:
            return tuple([(a.shape, a.dtype) for a in arrays]) == self.expected
        except AttributeError:  # not an MLX array (a dead handle)
            return False

    def mismatch(self, arrays: list[Any], what: str) -> str | None:
        """The first value that is not as declared, described; None if all are."""
        for i, (array, want) in enumerate(zip(arrays, self.types, strict=True)):
            if not isinstance(array, mx.array):
                return f"{what} {i} is not a live buffer (deleted?)"
            if isinstance(want, ir.TokenType):
                if not _is_token_value(array):
                    return (f"{what} {i} is {to_name(array)}{list(array.shape)}, the "
                            f"program expects a token")
            elif tuple(array.shape) != want.shape or to_name(array) != storage_name(want.dtype):
                return (f"{what} {i} is {to_name(array)}{list(array.shape)}, the program "
                        f"expects {want.dtype}{list(want.shape)}")
        return None


def runs_inline(module: ir.Module) -> bool:
    """Whether executions of `module` are cheap enough to evaluate inside Execute."""
    touched = 0
    for function in module.functions.values():
        for operation in ir.walk(function.body):
            if operation.op in ir.CONTROL_FLOW or ir.is_host_callback(operation):
                return False
            for value in (*operation.operands, *operation.results):
                if isinstance(value.type, ir.TensorType):
                    size = 1
                    for d in value.type.shape:
                        size *= d
                    touched += size
            if touched >= INLINE_ELEMENTS:
                return False
    return True


def execute(exe: Any, args: Any, handles: dict[int, Any], give_up: Any,
            new_handle: Any) -> None:
    """Runs `exe` on the buffers args names; fills args.outputs and args.completion.

    `handles` is the handle table, `give_up(handle)` drops a donated argument from it and
    `new_handle(array)` adds a result."""
    inputs_signature: Signature = exe.inputs
    num_args = args.num_args
    if num_args != len(inputs_signature.types):
        raise InvalidArgumentError(f"[execute] @{exe.module.entry} takes "
                                   f"{len(inputs_signature.types)} arguments, got {num_args}")
    argument_handles = args.args
    inputs = [handles.get(argument_handles[i]) for i in range(num_args)]
    if not inputs_signature.matches(inputs):
        problem = inputs_signature.mismatch(inputs, "argument")
        if problem is not None:
            raise InvalidArgumentError(f"[execute] {problem}")
    if args.donated:
        # Given up by the caller: with our table's reference gone, MLX may write results into
        # the same memory (it reuses an input buffer nobody else holds).
        donated = args.donated
        for i in range(num_args):
            if donated[i]:
                give_up(argument_handles[i])
    with mx.stream(exe.client.device):
        outputs = exe.run(*inputs)
        inline = SYNCHRONOUS or exe.inline
        if inline:
            mx.eval(outputs)
        else:
            mx.async_eval(outputs)
    if not exe.outputs.matches(outputs):
        problem = exe.outputs.mismatch(outputs, "result")
        if problem is not None:
            raise XlaMetalError(f"[execute] internal error: {problem}")
    result_handles = args.outputs
    for i, array in enumerate(outputs):
        result_handles[i] = new_handle(array)
    args.completion = 0 if inline or not outputs else _schedule(outputs)


def _schedule(outputs: list[mx.array]) -> int:
    job = next(_next_job)
    _in_flight[job] = outputs
    while len(_in_flight) > MAX_IN_FLIGHT:
        # The oldest is waited for here (it is scheduled: any thread may wait on it); an error
        # is kept for its job, which the completion thread still awaits and reports.
        oldest, oldest_outputs = _in_flight.popitem(last=False)
        try:
            mx.eval(oldest_outputs)
        except Exception as e:  # noqa: BLE001 - reported by await_execution
            _failed[oldest] = e
    return job


def await_execution(args: Any) -> None:
    """Waits until the outputs of job args.job are computed; raises MLX's error if any."""
    outputs = _in_flight.pop(args.job, None)
    if outputs is not None:
        mx.eval(outputs)
    error = _failed.pop(args.job, None)
    if error is not None:
        raise error
