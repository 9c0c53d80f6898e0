"""The program IR: plain Python objects, no MLIR.

A Module holds Functions; a Function has a Block; a Block has argument Values and a list of
Operations, the last of which is a RETURN. An Operation names its kind with `Op` (one enum:
passes and lowering rules never match strings), reads operand Values, defines result Values,
carries attributes as plain Python values (ints, tuples, numpy arrays, strings, small
dataclasses) and may own Regions (Blocks) for bodies such as reduce, while and case.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..host_callbacks import TARGET as HOST_CALLBACK_TARGET


class Op(enum.Enum):
    """Every operation the compiler knows. The value is the StableHLO/CHLO/func name."""

    # element-wise, one operand
    ABS = "stablehlo.abs"
    NEGATE = "stablehlo.negate"
    EXP = "stablehlo.exponential"
    EXPM1 = "stablehlo.exponential_minus_one"
    LOG = "stablehlo.log"
    LOG1P = "stablehlo.log_plus_one"
    LOGISTIC = "stablehlo.logistic"
    SQRT = "stablehlo.sqrt"
    RSQRT = "stablehlo.rsqrt"
    CBRT = "stablehlo.cbrt"
    SIN = "stablehlo.sine"
    COS = "stablehlo.cosine"
    TAN = "stablehlo.tan"
    TANH = "stablehlo.tanh"
    FLOOR = "stablehlo.floor"
    CEIL = "stablehlo.ceil"
    ROUND_AFZ = "stablehlo.round_nearest_afz"
    ROUND_EVEN = "stablehlo.round_nearest_even"
    SIGN = "stablehlo.sign"
    NOT = "stablehlo.not"
    IS_FINITE = "stablehlo.is_finite"
    POPCNT = "stablehlo.popcnt"
    CLZ = "stablehlo.count_leading_zeros"
    REAL = "stablehlo.real"
    IMAG = "stablehlo.imag"
    CONVERT = "stablehlo.convert"
    BITCAST_CONVERT = "stablehlo.bitcast_convert"
    REDUCE_PRECISION = "stablehlo.reduce_precision"
    # element-wise, two operands
    ADD = "stablehlo.add"
    SUBTRACT = "stablehlo.subtract"
    MULTIPLY = "stablehlo.multiply"
    DIVIDE = "stablehlo.divide"
    REMAINDER = "stablehlo.remainder"
    POWER = "stablehlo.power"
    MAXIMUM = "stablehlo.maximum"
    MINIMUM = "stablehlo.minimum"
    ATAN2 = "stablehlo.atan2"
    AND = "stablehlo.and"
    OR = "stablehlo.or"
    XOR = "stablehlo.xor"
    SHIFT_LEFT = "stablehlo.shift_left"
    SHIFT_RIGHT_ARITHMETIC = "stablehlo.shift_right_arithmetic"
    SHIFT_RIGHT_LOGICAL = "stablehlo.shift_right_logical"
    COMPLEX = "stablehlo.complex"
    COMPARE = "stablehlo.compare"
    # element-wise, three operands
    SELECT = "stablehlo.select"
    CLAMP = "stablehlo.clamp"
    # CHLO forms JAX may leave in the program
    CHLO_ERF = "chlo.erf"
    CHLO_ERFC = "chlo.erfc"
    CHLO_ERF_INV = "chlo.erf_inv"
    CHLO_LGAMMA = "chlo.lgamma"
    CHLO_DIGAMMA = "chlo.digamma"
    CHLO_ASIN = "chlo.asin"
    CHLO_ACOS = "chlo.acos"
    CHLO_ATAN = "chlo.atan"
    CHLO_SINH = "chlo.sinh"
    CHLO_COSH = "chlo.cosh"
    CHLO_TAN = "chlo.tan"
    CHLO_ASINH = "chlo.asinh"
    CHLO_ACOSH = "chlo.acosh"
    CHLO_ATANH = "chlo.atanh"
    CHLO_CONJ = "chlo.conj"
    CHLO_IS_INF = "chlo.is_inf"
    CHLO_IS_POS_INF = "chlo.is_pos_inf"
    CHLO_IS_NEG_INF = "chlo.is_neg_inf"
    CHLO_SQUARE = "chlo.square"
    CHLO_NEXT_AFTER = "chlo.next_after"
    CHLO_TOP_K = "chlo.top_k"
    # data creation and movement
    CONSTANT = "stablehlo.constant"
    IOTA = "stablehlo.iota"
    BROADCAST_IN_DIM = "stablehlo.broadcast_in_dim"
    RESHAPE = "stablehlo.reshape"
    TRANSPOSE = "stablehlo.transpose"
    SLICE = "stablehlo.slice"
    DYNAMIC_SLICE = "stablehlo.dynamic_slice"
    DYNAMIC_UPDATE_SLICE = "stablehlo.dynamic_update_slice"
    CONCATENATE = "stablehlo.concatenate"
    PAD = "stablehlo.pad"
    REVERSE = "stablehlo.reverse"
    GATHER = "stablehlo.gather"
    SCATTER = "stablehlo.scatter"
    # contractions and reductions
    DOT_GENERAL = "stablehlo.dot_general"
    REDUCE = "stablehlo.reduce"
    REDUCE_WINDOW = "stablehlo.reduce_window"
    SELECT_AND_SCATTER = "stablehlo.select_and_scatter"
    CONVOLUTION = "stablehlo.convolution"
    SORT = "stablehlo.sort"
    FFT = "stablehlo.fft"
    RNG_BIT_GENERATOR = "stablehlo.rng_bit_generator"
    # linear algebra (rules in lowering/linalg.py)
    CHOLESKY = "stablehlo.cholesky"
    TRIANGULAR_SOLVE = "stablehlo.triangular_solve"
    # control flow and structure
    WHILE = "stablehlo.while"
    IF = "stablehlo.if"
    CASE = "stablehlo.case"
    CALL = "func.call"
    COMPOSITE = "stablehlo.composite"  # a named op with a decomposition function
    RETURN = "func.return"
    REGION_RETURN = "stablehlo.return"
    OPTIMIZATION_BARRIER = "stablehlo.optimization_barrier"
    SHARDING_CONSTRAINT = "sdy.sharding_constraint"  # one device: an identity
    CUSTOM_CALL = "stablehlo.custom_call"
    TUPLE = "stablehlo.tuple"
    GET_TUPLE_ELEMENT = "stablehlo.get_tuple_element"
    CREATE_TOKEN = "stablehlo.create_token"
    AFTER_ALL = "stablehlo.after_all"
    # collectives: a program for one device is its only participant
    ALL_REDUCE = "stablehlo.all_reduce"
    ALL_GATHER = "stablehlo.all_gather"
    REDUCE_SCATTER = "stablehlo.reduce_scatter"
    REPLICA_ID = "stablehlo.replica_id"
    PARTITION_ID = "stablehlo.partition_id"
    # MLX's fused kernels, made by compiler/fusions.py from exact StableHLO patterns (SOFTMAX
    # also by compiler/fusion_grads.py, with its gradient)
    SOFTMAX = "xla_metal.softmax"        # attrs: axes, precise (accumulate in float32)
    LAYER_NORM = "xla_metal.layer_norm"  # (x, [scale], [bias]) over the last axis; attrs: eps
    RMS_NORM = "xla_metal.rms_norm"      # (x, [scale]) over the last axis; attrs: eps
    # ... and by compiler/fusion_grads.py: a norm's VJP, (x, cotangent of norm(x)) -> dx,
    LAYER_NORM_GRAD = "xla_metal.layer_norm_grad"  # attrs: eps
    RMS_NORM_GRAD = "xla_metal.rms_norm_grad"      # attrs: eps
    # ... and softmax's VJP, (softmax(x), cotangent) -> dx
    SOFTMAX_GRAD = "xla_metal.softmax_grad"        # attrs: axes
    # ... and by compiler/fusion_attention.py: (q, k, v, [bias], [mask]) -> attention
    ATTENTION = "xla_metal.attention"  # attrs: scale, layouts in and out (see that module)
    # ... and by compiler/rewrites.py: x -> some of its pieces cut along one axis (mx.split)
    SPLIT = "xla_metal.split"  # attrs: axis, bounds (mx.split's indices), pieces (one per result)


UNARY_ELEMENTWISE = frozenset({
    Op.ABS, Op.NEGATE, Op.EXP, Op.EXPM1, Op.LOG, Op.LOG1P, Op.LOGISTIC, Op.SQRT, Op.RSQRT,
    Op.CBRT, Op.SIN, Op.COS, Op.TAN, Op.TANH, Op.FLOOR, Op.CEIL, Op.ROUND_AFZ, Op.ROUND_EVEN,
    Op.SIGN, Op.NOT, Op.IS_FINITE, Op.POPCNT, Op.CLZ, Op.REAL, Op.IMAG, Op.CONVERT,
    Op.BITCAST_CONVERT, Op.REDUCE_PRECISION, Op.CHLO_ERF, Op.CHLO_ERFC, Op.CHLO_ERF_INV,
    Op.CHLO_LGAMMA, Op.CHLO_DIGAMMA, Op.CHLO_ASIN, Op.CHLO_ACOS, Op.CHLO_ATAN, Op.CHLO_SINH,
    Op.CHLO_COSH, Op.CHLO_TAN, Op.CHLO_ASINH, Op.CHLO_ACOSH, Op.CHLO_ATANH, Op.CHLO_CONJ,
    Op.CHLO_IS_INF, Op.CHLO_IS_POS_INF, Op.CHLO_IS_NEG_INF, Op.CHLO_SQUARE,
})
BINARY_ELEMENTWISE = frozenset({
    Op.ADD, Op.SUBTRACT, Op.MULTIPLY, Op.DIVIDE, Op.REMAINDER, Op.POWER, Op.MAXIMUM,
    Op.MINIMUM, Op.ATAN2, Op.AND, Op.OR, Op.XOR, Op.SHIFT_LEFT, Op.SHIFT_RIGHT_ARITHMETIC,
    Op.SHIFT_RIGHT_LOGICAL, Op.COMPLEX, Op.COMPARE, Op.CHLO_NEXT_AFTER,
})
TERNARY_ELEMENTWISE = frozenset({Op.SELECT, Op.CLAMP})
ELEMENTWISE = UNARY_ELEMENTWISE | BINARY_ELEMENTWISE | TERNARY_ELEMENTWISE
# Ops whose lowering needs a host decision while running (the plan cannot be one mx.compile).
CONTROL_FLOW = frozenset({Op.WHILE, Op.IF, Op.CASE})
TERMINATORS = frozenset({Op.RETURN, Op.REGION_RETURN})
# Ops with no effect beyond their results: dead ones may be removed.
PURE = frozenset(set(Op) - {Op.CUSTOM_CALL, Op.RETURN, Op.REGION_RETURN, Op.WHILE, Op.IF,
                             Op.CASE, Op.CALL, Op.COMPOSITE, Op.RNG_BIT_GENERATOR, Op.AFTER_ALL})

BY_NAME = {op.value: op for op in Op}


def is_host_callback(operation: Operation) -> bool:
    """A custom_call into Python (jax.debug.print, pure_callback, io_callback)."""
    return (operation.op is Op.CUSTOM_CALL
            and operation.attrs.get("call_target_name") == HOST_CALLBACK_TARGET)


def runs_on_host(operation: Operation) -> bool:
    """Must this op run step by step on the host? Control flow decides on the host, and a
    host callback is Python: mx.compile can trace neither, so no compiled function or loop
    body may hold one."""
    return operation.op in CONTROL_FLOW or is_host_callback(operation)


def removable_if_unused(operation: Operation) -> bool:
    """May the op go when nobody reads its results? Pure ops, and custom_calls not marked
    has_side_effect (as XLA does: a jax.pure_callback whose result is unused is not called)."""
    if operation.op in TERMINATORS:
        return False
    if operation.op is Op.CUSTOM_CALL:
        return not operation.attrs.get("has_side_effect", False)
    return operation.op in PURE


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    dtype: str  # numpy-style name: "float32", "bfloat16", "bool", "int8", "complex64", ...

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"tensor<{'x'.join(map(str, self.shape))}{'x' if self.shape else ''}{self.dtype}>"


@dataclass(frozen=True)
class TokenType:
    def __str__(self) -> str:
        return "token"


@dataclass(frozen=True)
class TupleType:
    elements: tuple[Any, ...]


Type = TensorType | TokenType | TupleType


class Value:
    """An SSA value: defined once, by a block argument or an operation result."""

    __slots__ = ("type", "name")

    def __init__(self, type: Type, name: str = "") -> None:  # noqa: A002
        self.type = type
        self.name = name

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


@dataclass(eq=False)
class Block:
    args: list[Value] = field(default_factory=list)
    ops: list[Operation] = field(default_factory=list)

    @property
    def terminator(self) -> Operation:
        return self.ops[-1]


@dataclass(eq=False)
class Operation:
    op: Op
    operands: list[Value]
    results: list[Value]
    attrs: dict[str, Any] = field(default_factory=dict)
    regions: list[Block] = field(default_factory=list)
    loc: str = ""  # the user's source line, as MLIR recorded it; "" when unknown

    def where(self) -> str:
        return f" (at {self.loc})" if self.loc else ""


@dataclass(eq=False)
class Function:
    name: str
    body: Block
    result_types: list[Type]
    public: bool = True
    arg_attrs: list[dict[str, Any]] = field(default_factory=list)  # e.g. jax.buffer_donor
    result_attrs: list[dict[str, Any]] = field(default_factory=list)  # e.g. mhlo.memory_kind

    def donatable(self) -> list[bool]:
        """Per argument: may its memory serve the results (JAX's donate_argnums)?"""
        return [bool(a.get("jax.buffer_donor")) or "tf.aliasing_output" in a
                for a in self.arg_attrs] or [False] * len(self.args)

    @property
    def args(self) -> list[Value]:
        return self.body.args


@dataclass(eq=False)
class Module:
    functions: dict[str, Function]
    entry: str = "main"

    @property
    def main(self) -> Function:
        return self.functions[self.entry]


def operand_orders(operation: Operation) -> list[tuple[Value, Value]]:
    """Both orders of a commutative binary op's operands, for matching either one."""
    a, b = operation.operands
    return [(a, b), (b, a)]


def walk(block: Block):
    """Every operation in a block, nested regions included, in program order."""
    for operation in block.ops:
        yield operation
        for region in operation.regions:
            yield from walk(region)


def blocks(block: Block):
    """A block and every block nested in its operations' regions."""
    yield block
    for operation in block.ops:
        for region in operation.regions:
            yield from blocks(region)


def format_module(module: Module, attrs: bool = True) -> str:
    """A readable listing of the IR (for as_text() and debugging); `attrs=False` leaves out
    the attributes (their reprs show how numpy spells a dtype, not only what it is)."""
    names: dict[int, str] = {}
    lines: list[str] = []
    for fn in module.functions.values():
        args = ", ".join(f"{_value_name(names, a)}: {a.type}" for a in fn.args)
        lines.append(f"func @{fn.name}({args}) -> ({', '.join(map(str, fn.result_types))}) {{")
        _format_block(fn.body, "  ", names, attrs, lines)
        lines.append("}")
    return "\n".join(lines)


def _value_name(names: dict[int, str], v: Value) -> str:
    return names.setdefault(id(v), f"%{len(names)}")


def _format_block(block: Block, indent: str, names: dict[int, str], attrs: bool,
                  lines: list[str]) -> None:
    # (a module-level function: a nested one calling itself would be a reference cycle)
    for o in block.ops:
        res = ", ".join(_value_name(names, r) for r in o.results)
        args = ", ".join(_value_name(names, a) for a in o.operands)
        shown = {k: v for k, v in o.attrs.items() if k != "value" and attrs}
        types = ", ".join(str(r.type) for r in o.results)
        lines.append(f"{indent}{res}{' = ' if res else ''}{o.op.value}({args})"
                     f"{' ' + repr(shown) if shown else ''}{' : ' + types if types else ''}")
        for region in o.regions:
            region_args = ", ".join(_value_name(names, a) for a in region.args)
            lines.append(f"{indent}  ^({region_args}):")
            _format_block(region, indent + "    ", names, attrs, lines)
