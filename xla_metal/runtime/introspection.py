"""What an executable reports about itself: cost analysis and compiled memory sizes.

Cost analysis is XLA's own HloCostAnalysis, which jaxlib carries: the StableHLO program we
compiled is converted to an HLO module by jaxlib's converter and analysed with the shape sizes
of jaxlib's CPU client (MLX stores every type densely, as XLA's CPU backend does). The figures
are those of the program before optimization, i.e. what JAX's `Lowered.cost_analysis()` gives
on the CPU backend; XLA's compiled figures differ where its fusion removes memory traffic.

Memory sizes come from the program IR: arguments, results, donated arguments, and the peak of
the intermediate values that are live at once when run in program order.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from ..compiler import ir
from ..element_types import numpy_dtype
from ..errors import UnimplementedError

_cpu_client_lock = threading.Lock()
_cpu_client: Any = None


def _analysis_client() -> Any:
    """A jaxlib CPU client of our own, only to size shapes (created once, on first need; it
    is jaxlib's, not JAX's: Python behind the PJRT surface never calls JAX's public API)."""
    global _cpu_client
    from jax._src.lib import _jax

    with _cpu_client_lock:
        if _cpu_client is None:
            _cpu_client = _jax.get_tfrt_cpu_client(asynchronous=False, num_devices=1)
        return _cpu_client


def cost_analysis(code: bytes) -> dict[str, float]:
    """XLA's cost figures ('flops', 'transcendentals', 'bytes accessed', ...) for `code`."""
    from jax._src.lib import _jax

    try:
        computation = _jax.mlir.mlir_module_to_xla_computation(
            code, use_tuple_args=False, return_tuple=False)
        costs = _jax.hlo_module_cost_analysis(_analysis_client(), computation.as_hlo_module())
    except Exception as e:  # jaxlib's converter or analysis refused the program
        raise UnimplementedError(f"[cost_analysis] XLA's cost analysis cannot analyse this "
                                 f"program: {str(e).splitlines()[0] if str(e) else e}") from e
    return {str(name): float(value) for name, value in costs.items()}


@dataclass(frozen=True)
class MemorySizes:
    argument: int
    output: int
    alias: int
    temp: int


def _bytes(t: ir.Type) -> int:
    if isinstance(t, ir.TensorType):
        count = 1
        for d in t.shape:
            count *= d
        return count * numpy_dtype(t.dtype).itemsize  # sub-byte types take a byte, as stored
    if isinstance(t, ir.TupleType):
        return sum(_bytes(e) for e in t.elements)
    return 0  # tokens hold no data


def _block_peak(block: ir.Block, module: ir.Module, seen: dict[str, int]) -> int:
    """Peak bytes of the values a block defines that are live at once, run in program order
    (the block's own arguments and its returned values are not counted: the caller owns
    them). Regions and called functions add their own peak at the op that runs them."""
    last_use: dict[int, int] = {}
    for index, operation in enumerate(block.ops):
        # A value used inside an op's regions stays live until that op has run.
        for user in [operation, *(o for r in operation.regions for o in ir.walk(r))]:
            for operand in user.operands:
                last_use[id(operand)] = index
    returned = {id(v) for v in block.ops[-1].operands} if block.ops else set()
    live: dict[int, int] = {}
    peak = 0
    for index, operation in enumerate(block.ops):
        inner = max((_block_peak(r, module, seen) for r in operation.regions), default=0)
        if operation.op is ir.Op.CALL:
            inner = max(inner, _function_peak(operation.attrs["callee"], module, seen))
        for result in operation.results:
            if id(result) not in returned:
                live[id(result)] = _bytes(result.type)
        peak = max(peak, sum(live.values()) + inner)
        for key in [k for k in live if last_use.get(k, -1) <= index]:
            del live[key]
    return peak


def _function_peak(name: str, module: ir.Module, seen: dict[str, int]) -> int:
    if name not in seen:
        seen[name] = 0  # a recursive call adds nothing more (StableHLO has none)
        seen[name] = _block_peak(module.functions[name].body, module, seen)
    return seen[name]


def memory_sizes(module: ir.Module) -> MemorySizes:
    main = module.main
    arguments = [_bytes(a.type) for a in main.args]
    donatable = main.donatable()
    return MemorySizes(
        argument=sum(arguments),
        output=sum(_bytes(t) for t in main.result_types),
        alias=sum(size for size, donor in zip(arguments, donatable, strict=True) if donor),
        temp=_block_peak(main.body, module, {}))
