"""Executing a compiled program: the per-call path, kept as short as it can be.

C++ has checked the arguments' types against the program's before it calls here (a buffer
knows its type there), and results are checked once per executable, so a call makes no
decision of its own. Execution is asynchronous: the program's MLX
graph is built and scheduled (mx.async_eval) on the calling thread, which then returns; the
execution becomes a job that C++ awaits (await_execution) before completing the buffers'
ready events. MLX raises its errors while the graph is built and scheduled, on the calling
thread, so they fail the Execute call itself, as before.

Threads. MLX's arrays are not safe to touch from two threads at once: evaluating or waiting
on an array updates its state (status, event), and so does a later graph that uses it as an
input. So every MLX operation on arrays a buffer may hold runs under `graph_lock`. On the
CPU, awaiting a job touches no array at all: it waits for the MLX stream the job was
scheduled on (mx.synchronize: a stream runs its work in order, so its work is done once a
marker placed after it has run), outside the lock. A GPU stream belongs to the thread that
created it (MLX 0.32 refuses to synchronize another thread's), so a GPU job is scheduled
with a marker of its own, an array that depends on all its results: mx.eval of an array
already scheduled only waits for its event, and no other thread ever touches the marker, so
any thread awaits it without the lock. (Waiting under the lock would deadlock: a host
callback runs inside its execution, under the lock, and may wait for an earlier job that the
completion thread has taken.) Reading a buffer first waits for its job: on a GPU, for the
buffer's own array, under the lock.

A program too small for the hand-over to pay (`runs_inline`: no control flow, few elements
touched) is evaluated inside Execute instead, on the caller's thread, and its events are
ready at once; XLA_METAL_SYNC_EXECUTE=1 does that for every program.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import mlx.core as mx

from ..compiler import ir
from ..compiler.placement import evaluate
from ..errors import XlaMetalError
from .dtypes import NAME_OF_MLX_DTYPE, storage_name, storage_shape

SYNCHRONOUS = os.environ.get("XLA_METAL_SYNC_EXECUTE", "0") == "1"
# Executions scheduled but not yet awaited: past this many, Execute waits for the oldest, so a
# loop that never reads its results cannot queue unbounded work (and memory) ahead of MLX.
MAX_IN_FLIGHT = 32

# Programs touching fewer elements than this (operands and results of every op, summed), with
# no loop or branch and no host callback (whose cost is the user's Python), run inline: MLX
# computes them in microseconds, less than handing the wait to another thread costs
# (docs/dispatch.md). XLA_METAL_INLINE_ELEMENTS overrides it (0: every program asynchronous).
INLINE_ELEMENTS = int(os.environ.get("XLA_METAL_INLINE_ELEMENTS", 1 << 15))

# Held for every MLX operation on arrays that buffers hold (see the module's docstring). An
# RLock: a host callback running inside an execution may itself execute on 'metal'.
graph_lock = threading.RLock()


@dataclass(frozen=True)
class Job:
    """What awaiting one execution waits for (see the module's docstring)."""

    stream: Any | None = None       # on the CPU: the stream its work was scheduled on
    marker: mx.array | None = None  # on a GPU: an array depending on all its results

    def wait(self) -> None:
        if self.stream is not None:
            mx.synchronize(self.stream)
        elif self.marker is not None:
            mx.eval(self.marker)  # scheduled already: only waits for its event


# XLA_METAL_AWAIT_RESULTS=1 awaits CPU jobs through a marker too, as on a GPU: so the GPU's
# way of waiting runs under the thread tests here (tests/test_threads.py).
_AWAIT_RESULTS = os.environ.get("XLA_METAL_AWAIT_RESULTS", "0") == "1"


def waits_by_stream(device: mx.Device) -> bool:
    """Whether a job on `device` is awaited by draining its stream (else: by its marker)."""
    return device.type == mx.cpu and not _AWAIT_RESULTS


_in_flight: OrderedDict[int, Job] = OrderedDict()
# Output handles of jobs not known to be done: reading one waits for its job first. A GPU
# job's entry holds no arrays (the reader waits for the buffer's own array), so a result the
# user dropped is not kept alive by a sibling that is still pending.
pending_outputs: dict[int, Job] = {}
_GPU_RESULT = Job()
_next_job = itertools.count(1)


def to_name(array: mx.array) -> str:
    return NAME_OF_MLX_DTYPE[array.dtype]


def _is_token_value(array: mx.array) -> bool:
    return array.size == 0 and array.ndim <= 1


@dataclass(frozen=True)
class Signature:
    """What an executable's results must be, checked once (its arguments are checked in
    C++: Execute compares each buffer's type with the program's)."""

    types: tuple[ir.TensorType | ir.TokenType, ...]

    def mismatch(self, arrays: list[Any], what: str) -> str | None:
        """The first value that is not as declared, described; None if all are."""
        for i, (array, want) in enumerate(zip(arrays, self.types, strict=True)):
            if not isinstance(array, mx.array):
                return f"{what} {i} is {type(array).__name__}, not an MLX array"
            if isinstance(want, ir.TokenType):
                if not _is_token_value(array):
                    return (f"{what} {i} is {to_name(array)}{list(array.shape)}, the "
                            f"program expects a token")
            elif tuple(array.shape) != storage_shape(want.dtype, want.shape) or \
                    to_name(array) != storage_name(want.dtype):
                return (f"{what} {i} is {to_name(array)}{list(array.shape)}, the program "
                        f"expects {want.dtype}{list(want.shape)}")
        return None


def runs_inline(module: ir.Module) -> bool:
    """Whether executions of `module` are cheap enough to evaluate inside Execute."""
    if INLINE_ELEMENTS <= 0:
        return False
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
            new_handles: Any) -> None:
    """Runs `exe` on the buffers args names; fills args.first_output and args.completion.

    `handles` is the handle table, `give_up(handles)` drops donated arguments from it and
    `new_handles(arrays)` adds the results (a range of consecutive handles)."""
    num_args = args.num_args
    # (a slice of a ctypes pointer is one C call, indexing it one per element)
    argument_handles = args.args[:num_args]
    # C++ has checked the count, and that each is a live buffer of the parameter's type
    try:
        inputs = list(map(handles.__getitem__, argument_handles))
    except KeyError as missing:
        raise XlaMetalError(f"[execute] internal error: buffer {missing} is live in C++ but "
                            f"not in the handle table") from None
    if args.donated:
        # Given up by the caller: with our table's reference gone, MLX may write results into
        # the same memory (it reuses an input buffer nobody else holds). One call for all:
        # a training step donates its whole state, a hundred buffers and more.
        give_up(list(itertools.compress(argument_handles, args.donated[:num_args])))
    inline = SYNCHRONOUS or exe.inline
    with graph_lock, mx.stream(exe.client.device):
        outputs = exe.run(*inputs)
        # MLX writes a result into an input's memory only if nothing else holds the input:
        # with this list gone, a donated argument's array is held by the graph alone.
        del inputs
        marked = not inline and not waits_by_stream(exe.client.device)
        marker = evaluate(outputs, asynchronous=not inline, marked=marked)
        if not inline:
            job = Job(marker=marker) if marked else \
                Job(stream=mx.default_stream(exe.client.device))
    if not exe.outputs_checked:
        problem = exe.outputs.mismatch(outputs, "result")
        if problem is not None:
            raise XlaMetalError(f"[execute] internal error: {problem}")
        exe.outputs_checked = True
    if outputs:
        result_handles = new_handles(outputs)
        args.first_output = result_handles.start
    if inline or not outputs:
        args.completion = 0
        return
    pending_outputs.update(dict.fromkeys(result_handles, _GPU_RESULT if marked else job))
    args.completion = _schedule(job)


def _schedule(job: Job) -> int:
    number = next(_next_job)
    _in_flight[number] = job
    while len(_in_flight) > MAX_IN_FLIGHT:
        # Waits here for the oldest (it stays awaited by C++ as usual: work already done makes
        # that wait short).
        _in_flight.popitem(last=False)[1].wait()
    return number


def await_execution(args: Any) -> None:
    """Waits until the work of job args.job is done (any thread may)."""
    job = _in_flight.pop(args.job, None)
    if job is not None:
        job.wait()


def wait_for_buffer(handle: int, array: mx.array) -> None:
    """Before reading buffer `handle` (holding `array`): waits for the job computing it."""
    job = pending_outputs.pop(handle, None)
    if job is _GPU_RESULT:
        with graph_lock:
            mx.eval(array)
    elif job is not None:
        job.wait()
