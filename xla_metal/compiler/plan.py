"""Executable plans: a program IR function turned into a list of prepared steps.

Building a plan resolves every rule, materializes every constant and numbers every value,
so running it makes no decision that could have been made earlier. A function with no
host-driven control flow (while/if/case) and no host callback anywhere inside is additionally
handed to mx.compile, which fuses its element-wise work.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import mlx.core as mx

from ..errors import UnimplementedError
from . import emulated_dtypes, ir
from .ir import Block, Module, Op, Operation, Value
from .lowering import registry
from .placement import CPU_ONLY_DTYPES, dtypes_of, needs_cpu_stream, on_cpu_stream

_USE_MX_COMPILE = os.environ.get("XLA_METAL_MX_COMPILE", "1") != "0"
# MLX-CUDA (0.32) cannot build fused kernels over complex64 values (its generated code casts
# complex to float: "Failed to compile kernel" for abs, multiply, select of complex), while
# its separate kernels work: on that backend, programs with complex values are not fused.
_COMPLEX_FUSES = not (hasattr(mx, "cuda") and mx.cuda.is_available())
# mx.compile fuses element-wise steps across streams, so a float64 step placed on the CPU
# stream ends up inside a GPU kernel ("float64 is not supported on the GPU", seen on an H100):
# programs with such steps are not fused on the 'gpu' platform.

# Depth of mx.compile traces in progress: a compiled function's Python body runs only while
# MLX traces it, and nothing may be evaluated then. Shared by all threads: another thread's
# trace only makes a counted loop skip its periodic async_eval and nested compile, both safe.
TRACING = [0]


class PerThreadCompiled:
    """mx.compile(fn), made anew on each thread that calls it, with TRACING raised while MLX
    traces it.

    Why per thread: MLX keeps what it compiled in a cache per thread, and a compiled function
    erases its entries (which hold Python objects) only from the cache of the thread that made
    it. Entries left in another thread's cache are freed when that thread ends, which needs
    Python; a thread that ends after Python has shut down (a framework's worker thread that
    ran a host callback executing on 'metal') then aborts the process. So each thread gets a
    compiled function of its own, and release_other_threads() drops those of the other
    threads while Python still runs (at exit). Keyed by the OS thread id, which is not
    reused while the thread lives; the function of a thread that has ended stays until this
    object goes (small: what it compiled went with the thread's cache)."""

    __slots__ = ("traced", "by_thread", "__weakref__")

    def __init__(self, fn: Callable[..., Any]) -> None:
        def traced(*args: Any) -> Any:
            TRACING[0] += 1
            try:
                return fn(*args)
            finally:
                TRACING[0] -= 1
        self.traced = traced
        self.by_thread: dict[int, Callable[..., Any]] = {}
        _PER_THREAD.add(self)

    def __call__(self, *args: Any) -> Any:
        thread = threading.get_native_id()
        compiled_here = self.by_thread.get(thread)
        if compiled_here is None:
            compiled_here = self.by_thread[thread] = mx.compile(self.traced)
        return compiled_here(*args)


_PER_THREAD: weakref.WeakSet[PerThreadCompiled] = weakref.WeakSet()


def compiled(fn: Callable[..., Any]) -> PerThreadCompiled:
    return PerThreadCompiled(fn)


def release_other_threads() -> None:
    """Drops every compiled function made on a thread other than this one, so their entries
    leave those threads' caches now (see PerThreadCompiled). Called at exit."""
    here = threading.get_native_id()
    for function in list(_PER_THREAD):
        for thread in [t for t in function.by_thread if t != here]:
            function.by_thread.pop(thread, None)


class RuleContext:
    """What a rule may ask for while running: its op's regions and the module's functions."""

    __slots__ = ("program", "captures", "regions")

    def __init__(self, program: Program, regions: Sequence[BlockPlan],
                 captures: Sequence[Sequence[Any]]) -> None:
        self.program = program
        self.regions = regions
        self.captures = captures

    def region(self, index: int) -> Callable[..., list[Any]]:
        """Region `index` of the op as a function of its block arguments."""
        plan = self.regions[index]
        captured = self.captures[index]
        return lambda *args: plan.run(captured, args)

    def region_plan(self, index: int) -> BlockPlan:
        return self.regions[index]

    def call(self, function: str, *args: Any) -> list[Any]:
        return self.program.function(function)(*args)


def free_values(block: Block) -> list[Value]:
    """Values a block reads but neither defines nor receives (captured from outside)."""
    defined: set[int] = {id(a) for a in block.args}
    free: dict[int, Value] = {}
    for operation in block.ops:
        for v in operation.operands:
            if id(v) not in defined:
                free.setdefault(id(v), v)
        for region in operation.regions:
            defined.update(id(a) for a in region.args)
            for v in free_values(region):
                if id(v) not in defined:
                    free.setdefault(id(v), v)
        defined.update(id(r) for r in operation.results)
    return list(free.values())


class BlockPlan:
    """A block as numbered slots and steps; run(captures, args) -> results."""

    def __init__(self, program: Program, block: Block) -> None:
        # Weak: the program holds its plans, and a plan holding its program back would make
        # every dropped executable a reference cycle, left for the garbage collector (JAX's
        # own tests count them). The program's entry function holds the program.
        self._program = weakref.ref(program)
        self.captures = free_values(block)
        slot: dict[int, int] = {}
        for v in [*self.captures, *block.args]:
            slot[id(v)] = len(slot)
        template: list[Any] = [None] * len(slot)
        steps: list[tuple[Any, ...]] = []
        self.cpu_stream_ops: list[Operation] = []  # steps placed on MLX's CPU stream
        for operation in block.ops[:-1]:
            for r in operation.results:
                slot[id(r)] = len(template)
                template.append(None)
            if operation.op is Op.CONSTANT:
                value = _constant(operation)
                if _printed_badly(value):
                    steps.append((_unprinted(value), operation, [], [slot[id(r)] for r in
                                                                      operation.results], [], []))
                else:
                    template[slot[id(operation.results[0])]] = value
                continue
            rule = emulated_dtypes.adapt(operation, registry.get_rule(operation, program.platform))
            if needs_cpu_stream(operation, program.platform):
                rule = on_cpu_stream(rule)
                self.cpu_stream_ops.append(operation)
            regions = [BlockPlan(program, region) for region in operation.regions]
            ins = [slot[id(v)] for v in operation.operands]
            region_ins = [[slot[id(v)] for v in r.captures] for r in regions]
            outs = [slot[id(r)] for r in operation.results]
            steps.append((rule, operation, ins, outs, regions, region_ins))
        self.n_fixed = len(self.captures) + len(block.args)
        self.template = template
        self.steps = steps
        self.results = [slot[id(v)] for v in block.terminator.operands]

    def run(self, captures: Sequence[Any], args: Sequence[Any]) -> list[Any]:
        env = list(self.template)
        env[: self.n_fixed] = [*captures, *args]
        program = self._program()
        assert program is not None, "a plan ran after its program was dropped"
        for rule, operation, ins, outs, regions, region_ins in self.steps:
            ctx = RuleContext(program, regions, [[env[i] for i in r] for r in region_ins])
            values = rule(ctx, operation, *[env[i] for i in ins])
            for i, v in zip(outs, values, strict=True):
                env[i] = v
        return [env[i] for i in self.results]


def _constant(operation: Operation) -> Any:
    t = operation.results[0].type
    assert isinstance(t, ir.TensorType)
    array = emulated_dtypes.constant(operation.attrs["value"], t.dtype)
    # Evaluated now: MLX streams belong to threads, and a lazy array built on the compiling
    # thread cannot be evaluated on the thread that executes.
    mx.eval(array)
    return array


def _printed_badly(value: mx.array) -> bool:
    """A one-element constant mx.compile would get wrong: it writes one-element constants into
    its fused kernels as C++ literals, and prints a complex NaN or infinity as
    `complex64_t(nan, 0)`, which does not compile ("Failed to compile function ..."), and a
    float -0.0 as `static_cast<float>(-0)`, which is +0.0 (the integer -0)."""
    if value.size != 1 or not mx.issubdtype(value.dtype, mx.inexact):
        return False
    with mx.stream(mx.cpu):  # a float64 constant cannot be looked at on a GPU stream
        if value.dtype == mx.complex64 and not bool(mx.all(mx.isfinite(value)).item()):
            return True
        parts = [mx.real(value), mx.imag(value)] if value.dtype == mx.complex64 else [value]
        return any(bool(((p == 0) & (1.0 / p < 0)).all().item()) for p in parts)  # 1/-0.0: -inf


def _unprinted(value: mx.array) -> Callable[..., list[Any]]:
    """A rule giving `value` as the slice of a two-element constant: a node in the graph,
    which fused kernels read as an input instead of writing it as a literal."""
    pair = mx.repeat(value.reshape(1), 2)
    mx.eval(pair)
    return lambda ctx, operation: [pair[:1].reshape(value.shape)]


def _has_control_flow(module: Module, function: str, seen: set[str] | None = None) -> bool:
    seen = seen if seen is not None else set()
    if function in seen:
        return False
    seen.add(function)
    for operation in ir.walk(module.functions[function].body):
        if ir.runs_on_host(operation) and not operation.attrs.get("unroll"):
            return True
        callee = operation.attrs.get("callee") or operation.attrs.get("decomposition")
        if callee and _has_control_flow(module, callee, seen):
            return True
    return False


def may_fuse(module: Module, platform: str) -> bool:
    """Whether mx.compile may fuse this module's straight-line code and loop bodies."""
    if not _USE_MX_COMPILE:
        return False
    dtypes = {d for fn in module.functions.values() for operation in ir.walk(fn.body)
              for v in (*operation.operands, *operation.results) for d in dtypes_of(v.type)}
    if platform == "gpu" and dtypes & CPU_ONLY_DTYPES:
        return False
    return _COMPLEX_FUSES or not any(d.startswith("complex") for d in dtypes)


def _run_entry(fn: Callable[..., list[Any]], program: Program, *args: Any) -> list[Any]:
    """fn(*args); `program` rides along in the partial, so the entry function holds it."""
    return fn(*args)


def _function_runner(plan: BlockPlan) -> Callable[..., list[Any]]:
    return lambda *args: plan.run((), args)


def _gather_cpu_stream_ops(plan: BlockPlan, found: list[Operation]) -> None:
    # (a module-level function: a nested one calling itself would be a reference cycle)
    found.extend(plan.cpu_stream_ops)
    for step in plan.steps:
        for region in step[4]:
            _gather_cpu_stream_ops(region, found)


class Program:
    """A compiled module: a callable per function, built on first use."""

    def __init__(self, module: Module, platform: str) -> None:
        self.module = module
        self.platform = platform
        self.may_fuse = may_fuse(module, platform)
        # Every function is planned now, so a missing rule is a compile-time error.
        self.plans = {name: BlockPlan(self, fn.body) for name, fn in module.functions.items()}
        self._functions: dict[str, Callable[..., list[Any]]] = {
            name: _function_runner(plan) for name, plan in self.plans.items()}

    def cpu_stream_ops(self) -> list[Operation]:
        """Every step, in every function and region, placed on MLX's CPU stream."""
        found: list[Operation] = []
        for plan in self.plans.values():
            _gather_cpu_stream_ops(plan, found)
        return found

    def function(self, name: str) -> Callable[..., list[Any]]:
        try:
            return self._functions[name]
        except KeyError:
            raise UnimplementedError(f"[plan] call to unknown function @{name}") from None

    def entry(self) -> Callable[..., list[Any]]:
        main = self.module.main
        # buffers of emulated types hold bit codes: decoded on entry, encoded on exit
        fn = emulated_dtypes.at_boundary(self.function(self.module.entry),
                                         [a.type for a in main.args], main.result_types)
        if self.may_fuse and not _has_control_flow(self.module, self.module.entry):
            fn = compiled(fn)
        return partial(_run_entry, fn, self)
