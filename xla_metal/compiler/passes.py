"""Passes over the program IR, run in order by `run_pipeline`.

Each pass takes and returns a Module. `verify` runs after every pass when the pipeline is
asked to check itself (the tests do), so a pass that breaks the IR is caught where it ran.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..element_types import numpy_dtype
from ..errors import InvalidArgumentError, ResourceExhaustedError, UnimplementedError
from ..runtime.dtypes import CARRIER, MLX_DTYPE, PAIRS
from . import ir
from .fusion_attention import fuse_attention
from .fusion_grads import fuse_gradients
from .fusions import fuse_kernels
from .ir import PURE, Block, Module, Op, TensorType, TupleType
from .loop_slabs import stage_slabs
from .rewrites import compose_broadcasts, drop_identity_bounds, rewrite
from .row_views import flatten_row_views

Pass = Callable[[Module], Module]


def verify(module: Module) -> Module:
    """Every operand is defined before use; every block ends in a terminator."""
    for fn in module.functions.values():
        _verify_block(fn.body, set(), f"@{fn.name}")
    if module.entry not in module.functions:
        raise InvalidArgumentError(f"[verify] entry function @{module.entry} is missing")
    return module


# (Passes recurse through module-level functions, not nested ones: a nested function that
# calls itself is a reference cycle, left for the garbage collector after every compile.)
def _verify_block(block: Block, visible: set[int], where: str) -> None:
    visible = visible | {id(a) for a in block.args}
    if not block.ops or block.ops[-1].op not in ir.TERMINATORS:
        raise InvalidArgumentError(f"[verify] a block in {where} has no terminator")
    for operation in block.ops:
        for v in operation.operands:
            if id(v) not in visible:
                raise InvalidArgumentError(f"[verify] {operation.op.value} in {where} reads "
                                           f"a value defined later or elsewhere")
        for region in operation.regions:
            _verify_block(region, visible, where)
        visible |= {id(r) for r in operation.results}


def check_dtypes(module: Module) -> Module:
    """Refuse, at compile time and by name, any element type MLX can neither hold nor
    emulate (emulated_dtypes.py: float8, float4, int4, int2 and their unsigned kin)."""
    for fn in module.functions.values():
        for a in fn.args:
            _refuse_dtype(a.type, f"argument of @{fn.name}", "")
        for operation in ir.walk(fn.body):
            for r in operation.results:
                _refuse_dtype(r.type, f"result of {operation.op.value}", operation.loc)
    return module


def _refuse_dtype(t: object, what: str, loc: str) -> None:
    if isinstance(t, TupleType):
        for e in t.elements:
            _refuse_dtype(e, what, loc)
    elif isinstance(t, TensorType) and t.dtype not in MLX_DTYPE and t.dtype not in CARRIER \
            and t.dtype not in PAIRS:
        where = f" (at {loc})" if loc else ""
        raise UnimplementedError(f"[dtype] {t.dtype} is not supported on metal: {what}{where}")


def memory_limit() -> int:
    """Bytes one array may take: the machine's memory (MLX's CPU backend crashes, rather than
    raising, when an allocation fails, so too-large arrays must be refused before they run)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def check_sizes(module: Module) -> Module:
    """Refuse, at compile time and by name, any value larger than the machine's memory."""

    limit = memory_limit()
    for fn in module.functions.values():
        values = [(a, f"argument of @{fn.name}", "") for a in fn.args]
        values += [(r, f"result of {o.op.value}", o.loc) for o in ir.walk(fn.body)
                   for r in o.results]
        for value, what, loc in values:
            t = value.type
            if not isinstance(t, TensorType):
                continue
            count = 1
            for d in t.shape:
                count *= d
            size = count * numpy_dtype(t.dtype).itemsize
            if size > limit:
                where = f" (at {loc})" if loc else ""
                raise ResourceExhaustedError(
                    f"[memory] {what} needs {size / 2**30:.1f} GiB ({t}), more than this "
                    f"machine's {limit / 2**30:.1f} GiB{where}")
    return module


def eliminate_dead_code(module: Module) -> Module:
    """Drop pure operations (and custom_calls without side effects) whose results nobody
    reads (JAX leaves a few behind)."""
    for fn in module.functions.values():
        _sweep(fn.body)
    return module


def _sweep(block: Block) -> None:
    for operation in block.ops:
        for region in operation.regions:
            _sweep(region)
    live: set[int] = set()
    kept = []
    for operation in reversed(block.ops):
        used = any(id(r) in live for r in operation.results)
        if ir.removable_if_unused(operation) and not used:
            continue
        kept.append(operation)
        live.update(id(v) for v in operation.operands)
        for region in operation.regions:
            live.update(id(v) for o in ir.walk(region) for v in o.operands)
    block.ops = kept[::-1]


def _is_empty(t: object) -> bool:
    return isinstance(t, TensorType) and any(d == 0 for d in t.shape)


def fold_empty_values(module: Module) -> Module:
    """A pure op whose results all have zero elements becomes a constant: nothing is computed,
    and no zero-size kernel is launched (MLX-CUDA's fused kernels die of SIGFPE on a zero
    grid — measured on an H100)."""
    for fn in module.functions.values():
        _fold_empty(fn.body)
    return module


def _fold_empty(block: Block) -> None:
    ops: list[ir.Operation] = []
    for operation in block.ops:
        for region in operation.regions:
            _fold_empty(region)
        if (operation.op in PURE and operation.op is not Op.CONSTANT
                and operation.op not in ir.TERMINATORS and operation.results
                and all(_is_empty(r.type) for r in operation.results)):
            ops.extend(_zeros_constant(r, operation.loc) for r in operation.results)
        else:
            ops.append(operation)
    block.ops = ops


def _zeros_constant(value: ir.Value, loc: str) -> ir.Operation:
    t = value.type
    assert isinstance(t, TensorType)
    zeros = np.zeros(t.shape, numpy_dtype(t.dtype))
    return ir.Operation(Op.CONSTANT, [], [value], {"value": zeros}, loc=loc)


PIPELINE: list[tuple[str, Pass]] = [
    ("check element types", check_dtypes),
    ("check array sizes", check_sizes),
    ("fold zero-size values", fold_empty_values),
    ("fuse softmax and norms onto MLX kernels", fuse_kernels),
    ("eliminate what they left dead", eliminate_dead_code),
    ("fuse norms and softmax with their gradients", fuse_gradients),
    ("fuse attention onto MLX's kernel", fuse_attention),
    ("eliminate what it left dead", eliminate_dead_code),
    ("drop maxima and minima with a bound that changes nothing", drop_identity_bounds),
    ("broadcast once where a broadcast is broadcast again", compose_broadcasts),
    ("eliminate the bounds and broadcasts bypassed", eliminate_dead_code),
    ("rewrite patterns, mark counted loops", rewrite),
    ("read and write counted loops' rows in slabs", stage_slabs),
    ("read and write stacked rows through one flat view", flatten_row_views),
    ("eliminate dead code", eliminate_dead_code),
]


def run_pipeline(module: Module, verify_each: bool = False) -> Module:
    verify(module)
    for _name, stage in PIPELINE:
        module = stage(module)
        if verify_each:
            verify(module)
    return module


__all__ = ["PIPELINE", "run_pipeline", "verify", "Op"]
