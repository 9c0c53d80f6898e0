"""StableHLO bytes -> program IR. With xla_metal/reader, the only code that touches jaxlib's
MLIR bindings.

The program arrives as a StableHLO portable artifact (VHLO bytecode); plain StableHLO bytecode
and MLIR text are accepted too. Everything is converted into plain Python objects here, so no
later stage (and no execution) ever walks MLIR again. The bytes themselves are read in the
reader process (xla_metal/reader): this process parses only the bytecode it answers with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..element_types import numpy_dtype
from ..errors import InvalidArgumentError, UnimplementedError
from ..reader import client as reader
from ..reader import mlir
from . import ir as pir


def stablehlo_versions() -> tuple[list[int], list[int]]:
    """(current, minimum) StableHLO versions of the installed jaxlib, as [major, minor, patch]."""
    from jaxlib.mlir.dialects import stablehlo

    def parse(v: str) -> list[int]:
        return [int(x) for x in v.split(".")[:3]]

    return parse(stablehlo.get_current_version()), parse(stablehlo.get_minimum_version())


def readable(code: bytes) -> bytes:
    """`code` as bytes this process may hand to an MLIR reader (ours, or XLA's in the cost
    analysis). Program bytes come from the frontend and may be corrupt, and jaxlib's readers
    can crash or hang on corrupt input, so they are read in the reader process
    (xla_metal/reader); what comes back is the module it read, written anew as bytecode.
    MLIR text goes there too: its parser has not crashed on any corrupted text we tried, but
    a round trip costs about a millisecond, and then nothing untrusted is parsed here."""
    return reader.read_program(code)


def parse_module(code: bytes):
    """Bytes -> (an MLIR module, its context) (kept inside this file)."""
    ctx = mlir.new_context()
    return mlir.parse(readable(code), ctx), ctx


def module_text(code: bytes) -> str:
    """The program as StableHLO text (what `Compiled.as_text()` shows)."""
    module, ctx = parse_module(code)
    with ctx:
        return str(module)


def import_module(code: bytes) -> pir.Module:
    module, ctx = parse_module(code)
    with ctx:
        return _Importer().module(module)


# ----------------------------------------------------------------------------- types

_ELEMENT_TYPES = {
    "i1": "bool", "i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64",
    "ui8": "uint8", "ui16": "uint16", "ui32": "uint32", "ui64": "uint64",
    "f16": "float16", "bf16": "bfloat16", "f32": "float32", "f64": "float64",
    "complex<f32>": "complex64", "complex<f64>": "complex128",
    "i4": "int4", "ui4": "uint4", "i2": "int2", "ui2": "uint2",
    "f8E4M3FN": "float8_e4m3fn", "f8E5M2": "float8_e5m2", "f8E4M3FNUZ": "float8_e4m3fnuz",
    "f8E5M2FNUZ": "float8_e5m2fnuz", "f8E4M3B11FNUZ": "float8_e4m3b11fnuz",
    "f8E4M3": "float8_e4m3", "f8E3M4": "float8_e3m4", "f8E8M0FNU": "float8_e8m0fnu",
    "f4E2M1FN": "float4_e2m1fn",
    "index": "int64",  # only in attributes (custom_call layouts), never in program values
}


def _type(t) -> pir.Type:
    from jaxlib.mlir import ir

    if isinstance(t, ir.RankedTensorType):
        rt = ir.RankedTensorType(t)
        if any(d < 0 for d in rt.shape):
            raise UnimplementedError(f"[import] dynamic shapes are not supported: {t}")
        et = str(rt.element_type)
        if et not in _ELEMENT_TYPES:
            raise UnimplementedError(f"[import] element type {et} is not supported")
        return pir.TensorType(tuple(rt.shape), _ELEMENT_TYPES[et])
    if str(t) == "!stablehlo.token":
        return pir.TokenType()
    if isinstance(t, ir.TupleType):
        tt = ir.TupleType(t)
        return pir.TupleType(tuple(_type(tt.get_type(i)) for i in range(tt.num_types)))
    raise UnimplementedError(f"[import] type {t} is not supported")


# ------------------------------------------------------------------------ attributes


@dataclass(frozen=True)
class DotDims:
    lhs_batch: tuple[int, ...]
    rhs_batch: tuple[int, ...]
    lhs_contract: tuple[int, ...]
    rhs_contract: tuple[int, ...]


@dataclass(frozen=True)
class GatherDims:
    offset_dims: tuple[int, ...]
    collapsed_slice_dims: tuple[int, ...]
    operand_batching_dims: tuple[int, ...]
    start_indices_batching_dims: tuple[int, ...]
    start_index_map: tuple[int, ...]
    index_vector_dim: int


@dataclass(frozen=True)
class ScatterDims:
    update_window_dims: tuple[int, ...]
    inserted_window_dims: tuple[int, ...]
    input_batching_dims: tuple[int, ...]
    scatter_indices_batching_dims: tuple[int, ...]
    scatter_dims_to_operand_dims: tuple[int, ...]
    index_vector_dim: int


@dataclass(frozen=True)
class ConvDims:
    input_batch_dimension: int
    input_feature_dimension: int
    input_spatial_dimensions: tuple[int, ...]
    kernel_input_feature_dimension: int
    kernel_output_feature_dimension: int
    kernel_spatial_dimensions: tuple[int, ...]
    output_batch_dimension: int
    output_feature_dimension: int
    output_spatial_dimensions: tuple[int, ...]


def _dot_dims(a) -> DotDims:
    return DotDims(tuple(a.lhs_batching_dimensions), tuple(a.rhs_batching_dimensions),
                   tuple(a.lhs_contracting_dimensions), tuple(a.rhs_contracting_dimensions))


def _gather_dims(a) -> GatherDims:
    return GatherDims(tuple(a.offset_dims), tuple(a.collapsed_slice_dims),
                      tuple(a.operand_batching_dims), tuple(a.start_indices_batching_dims),
                      tuple(a.start_index_map), a.index_vector_dim)


def _scatter_dims(a) -> ScatterDims:
    return ScatterDims(tuple(a.update_window_dims), tuple(a.inserted_window_dims),
                       tuple(a.input_batching_dims), tuple(a.scatter_indices_batching_dims),
                       tuple(a.scattered_dims_to_operand_dims), a.index_vector_dim)


def _conv_dims(a) -> ConvDims:
    return ConvDims(a.input_batch_dimension, a.input_feature_dimension,
                    tuple(a.input_spatial_dimensions), a.kernel_input_feature_dimension,
                    a.kernel_output_feature_dimension, tuple(a.kernel_spatial_dimensions),
                    a.output_batch_dimension, a.output_feature_dimension,
                    tuple(a.output_spatial_dimensions))


def _attr(a) -> Any:
    from jaxlib.mlir import ir
    from jaxlib.mlir.dialects import chlo, stablehlo

    if isinstance(a, ir.BoolAttr):
        return a.value
    if isinstance(a, ir.IntegerAttr):
        return ir.IntegerAttr(a).value
    if isinstance(a, ir.FloatAttr):
        return ir.FloatAttr(a).value
    if isinstance(a, ir.StringAttr):
        return ir.StringAttr(a).value
    if isinstance(a, ir.UnitAttr):
        return True
    if isinstance(a, ir.FlatSymbolRefAttr):
        return ir.FlatSymbolRefAttr(a).value
    for array_cls in (ir.DenseI64ArrayAttr, ir.DenseI32ArrayAttr, ir.DenseBoolArrayAttr):
        if isinstance(a, array_cls):
            return tuple(array_cls(a))
    if isinstance(a, ir.DenseElementsAttr):
        return _dense(ir.DenseElementsAttr(a), str(a))
    if isinstance(a, ir.ArrayAttr):
        return tuple(_attr(x) for x in ir.ArrayAttr(a))
    if isinstance(a, ir.DictAttr):
        d = ir.DictAttr(a)
        return {d[i].name: _attr(d[i].attr) for i in range(len(d))}
    if isinstance(a, ir.TypeAttr):
        t = ir.TypeAttr(a).value
        # a bare element type (a composite's `dtype = f32`) is kept by its dtype name
        return _ELEMENT_TYPES.get(str(t), str(t)) if not isinstance(t, ir.ShapedType) and \
            str(t) != "!stablehlo.token" and not isinstance(t, ir.TupleType) else _type(t)
    for enum_cls in (stablehlo.ComparisonDirectionAttr, stablehlo.ComparisonTypeAttr,
                     stablehlo.PrecisionAttr, stablehlo.FftTypeAttr,
                     stablehlo.RngAlgorithmAttr, stablehlo.TransposeAttr,
                     chlo.ComparisonDirectionAttr, chlo.ComparisonTypeAttr):
        if enum_cls.isinstance(a):
            return enum_cls(a).value
    for cls, convert in ((stablehlo.DotDimensionNumbers, _dot_dims),
                         (stablehlo.GatherDimensionNumbers, _gather_dims),
                         (stablehlo.ScatterDimensionNumbers, _scatter_dims),
                         (stablehlo.ConvDimensionNumbers, _conv_dims)):
        if cls.isinstance(a):
            return convert(cls(a))
    return str(a)  # kept as text; a rule that needs it parses it or refuses


_TOKEN = re.compile(r"\[|\]|\(|\)|,|true|false|0x[0-9A-Fa-f]+|[-+]?(?:inf|nan)"
                    r"|[-+]?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?")


def _dense(attr, text: str) -> np.ndarray:
    """A DenseElementsAttr as a numpy array of the IR dtype (never via eval)."""
    from jaxlib.mlir import ir

    t = _type(attr.type)
    assert isinstance(t, pir.TensorType)
    dtype = numpy_dtype(t.dtype)
    if dtype.kind in "biuf" and dtype.itemsize in (1, 2, 4, 8) and dtype.name in (
            "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
            "float32", "float64"):
        try:
            arr = np.array(ir.DenseElementsAttr(attr))
            if arr.dtype != object:
                arr = arr.astype(dtype, copy=False)
                return np.broadcast_to(arr, t.shape).copy() if arr.shape != t.shape else arr
        except Exception:  # noqa: S110 - fall through to the text form
            pass
    return parse_dense_text(text, t.shape, dtype)


def parse_dense_text(text: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Parses `dense<...>` as MLIR prints it: a hex blob, a splat, or nested lists."""
    start = text.index("dense<") + 6
    body = text[start:text.index(">", start)]  # the elements never contain '<' or '>'
    count = int(np.prod(shape, dtype=np.int64))
    if body.startswith('"0x'):
        raw = bytes.fromhex(body[3:body.index('"', 3)])
        flat = np.frombuffer(raw, dtype=dtype, count=len(raw) // dtype.itemsize)
    else:
        part = np.dtype(np.float64 if dtype == np.complex128 else np.float32) \
            if dtype.kind == "c" else dtype
        values: list[Any] = []
        pending: list[Any] | None = None  # the parts of a complex literal "(re, im)"
        for tok in _TOKEN.findall(body):
            if tok == "(":
                pending = []
            elif tok == ")" and pending is not None:
                values.append(complex(pending[0], pending[1]))
                pending = None
            elif tok not in ("[", "]", ","):
                (pending if pending is not None else values).append(_scalar(tok, part))
        flat = np.array(values).astype(dtype)
    if flat.size == 1 and count != 1:
        return np.broadcast_to(flat.reshape(()), shape).copy()
    return flat.reshape(shape).copy()


def _scalar(tok: str, dtype: np.dtype) -> Any:
    if tok == "true":
        return True
    if tok == "false":
        return False
    if tok.startswith("0x"):  # a bit pattern (MLIR prints nan/inf this way)
        bits = np.array([int(tok, 16)], dtype=np.dtype(f"uint{dtype.itemsize * 8}"))
        return bits.view(dtype)[0]
    if dtype.kind in "iub":
        return int(tok)
    return float(tok)


# ------------------------------------------------------------------------- locations

_FILE_LINE = re.compile(r'"([^"]+)":(\d+):(\d+)')
_NAME = re.compile(r'loc\("([^"]*)"')


def location(loc) -> str:
    """'file.py:12 (jit(f)/sin)' from an MLIR location; '' when it carries nothing."""
    text = str(loc)
    files = [m for m in _FILE_LINE.finditer(text)
             if "site-packages" not in m.group(1) and "/jax/_src/" not in m.group(1)]
    where = f"{files[0].group(1)}:{files[0].group(2)}" if files else ""
    name = _NAME.search(text)
    label = name.group(1) if name and not _FILE_LINE.match(name.group(0)[4:]) else ""
    if where and label:
        return f"{where} ({label})"
    return where or label


# ---------------------------------------------------------------------------- walker


class _Importer:
    def __init__(self) -> None:
        self.values: dict[Any, pir.Value] = {}

    def module(self, module) -> pir.Module:
        functions: dict[str, pir.Function] = {}
        entry = None
        for op in module.body.operations:
            if op.operation.name != "func.func":
                continue
            fn = self.function(op)
            functions[fn.name] = fn
            if fn.name == "main" or (entry is None and fn.public):
                entry = fn.name
        if entry is None:
            raise InvalidArgumentError("[import] the program has no public function")
        return pir.Module(functions, entry)

    def function(self, op) -> pir.Function:
        from jaxlib.mlir import ir

        attrs = op.attributes
        name = ir.StringAttr(attrs["sym_name"]).value
        visibility = ir.StringAttr(attrs["sym_visibility"]).value \
            if "sym_visibility" in attrs else "public"
        fn_type = ir.FunctionType(ir.TypeAttr(attrs["function_type"]).value)
        body = self.block(op.regions[0].blocks[0])
        arg_attrs = [a if isinstance(a, dict) else {} for a in _attr(attrs["arg_attrs"])] \
            if "arg_attrs" in attrs else []
        result_attrs = [a if isinstance(a, dict) else {} for a in _attr(attrs["res_attrs"])] \
            if "res_attrs" in attrs else []
        return pir.Function(name, body, [_type(t) for t in fn_type.results],
                            public=visibility == "public", arg_attrs=arg_attrs,
                            result_attrs=result_attrs)

    def block(self, block) -> pir.Block:
        args = []
        for a in block.arguments:
            v = pir.Value(_type(a.type))
            self.values[a] = v
            args.append(v)
        return pir.Block(args, [self.operation(op) for op in block.operations])

    def operation(self, op) -> pir.Operation:
        op = op.operation
        kind = pir.BY_NAME.get(op.name)
        loc = location(op.location)
        if kind is None:
            where = f" (at {loc})" if loc else ""
            raise UnimplementedError(f"[import] operation '{op.name}' is not supported on "
                                     f"metal{where}")
        try:
            operands = [self.values[v] for v in op.operands]
        except KeyError as e:
            raise InvalidArgumentError(f"[import] '{op.name}' uses an undefined value") from e
        results = []
        for r in op.results:
            v = pir.Value(_type(r.type))
            self.values[r] = v
            results.append(v)
        attrs = {}
        for name in op.attributes:
            attrs[name] = self._named_attr(op, name)
        regions = [self.block(region.blocks[0]) for region in op.regions]
        return pir.Operation(kind, operands, results, attrs, regions, loc)

    @staticmethod
    def _named_attr(op, name: str) -> Any:
        try:
            return _attr(op.attributes[name])
        except TypeError:
            # the bindings cannot wrap some element types (complex): read the printed form
            text = str(op)
            start = text.find("dense<")
            if name == "value" and start >= 0:
                result_type = _type(op.results[0].type)
                assert isinstance(result_type, pir.TensorType)
                return parse_dense_text(text[start:], result_type.shape,
                                        numpy_dtype(result_type.dtype))
            raise UnimplementedError(
                f"[import] attribute '{name}' of {op.name} cannot be read") from None
