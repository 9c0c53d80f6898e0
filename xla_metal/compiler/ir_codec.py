"""The program IR as bytes, and back: what a serialized executable (and so JAX's persistent
compilation cache) stores, so that loading one skips the importer and the passes.

Data only. The bytes are a 4-byte little-endian length, a JSON document, then the raw bytes
of the constants it points into. Every value is JSON's own (int, float, str, bool, null) or a
one-key object whose key says what it is: `(` tuple, `[` list, `{` dict (as key/value
pairs), `a` numpy array (dtype, shape, offset and size in the raw bytes), `d` one of the few
attribute dataclasses named in _DATACLASSES. Decoding checks every field's type and every
reference, builds nothing it was not told to by this vocabulary, and refuses anything else
with InvalidArgumentError; nothing is unpickled or evaluated. A program whose attributes hold
something outside the vocabulary is not encoded at all (`encode` returns None): its
executable then recompiles its StableHLO when loaded, as before this format existed.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from typing import Any, NoReturn

import numpy as np

from ..element_types import numpy_dtype
from ..errors import InvalidArgumentError
from . import ir
from .gc_pause import no_cyclic_gc
from .importer import _ELEMENT_TYPES, ConvDims, DotDims, GatherDims, ScatterDims

# The attribute dataclasses; each holds only ints and tuples of ints (checked on decode).
_DATACLASSES: dict[str, type] = {c.__name__: c for c in (DotDims, GatherDims, ScatterDims,
                                                         ConvDims)}
_DTYPES = frozenset(_ELEMENT_TYPES.values())
_SCALARS = (bool, int, float, str, type(None))


class _Unencodable(Exception):
    """An attribute value outside the vocabulary: the program is not encoded."""


# ------------------------------------------------------------------------------- encode


class _Encoder:
    def __init__(self) -> None:
        self.ids: dict[int, int] = {}  # id(Value) -> its number, in definition order
        self.raw = bytearray()

    def define(self, value: ir.Value) -> list[Any]:
        self.ids[id(value)] = len(self.ids)
        return [self.type(value.type), value.name] if value.name else [self.type(value.type)]

    def type(self, t: ir.Type) -> list[Any]:
        if isinstance(t, ir.TensorType):
            return ["t", list(t.shape), t.dtype]
        if isinstance(t, ir.TokenType):
            return ["k"]
        return ["u", [self.type(e) for e in t.elements]]

    def attr(self, v: Any) -> Any:
        kind = type(v)
        if kind in _SCALARS:
            return v
        if kind is tuple or kind is list:
            return {"(" if kind is tuple else "[": [self.attr(x) for x in v]}
        if kind is dict:
            return {"{": [[self.attr(k), self.attr(x)] for k, x in v.items()]}
        if kind is np.ndarray and v.dtype.name in _DTYPES:
            data = np.ascontiguousarray(v).tobytes()
            self.raw += data
            return {"a": [v.dtype.name, list(v.shape), len(self.raw) - len(data), len(data)]}
        if kind in _DATACLASSES.values():
            return {"d": [kind.__name__, [self.attr(getattr(v, f.name))
                                          for f in dataclasses.fields(v)]]}
        raise _Unencodable(kind.__name__)

    def block(self, block: ir.Block) -> list[Any]:
        return [[self.define(a) for a in block.args], [self.operation(o) for o in block.ops]]

    def operation(self, o: ir.Operation) -> list[Any]:
        operands = [self.ids[id(v)] for v in o.operands]
        results = [self.define(r) for r in o.results]
        return [o.op.value, operands, results, self.attr(o.attrs),
                [self.block(r) for r in o.regions], o.loc]


def encode(module: ir.Module) -> bytes | None:
    """The bytes of a module, or None when an attribute holds a value outside the format."""
    with no_cyclic_gc():
        return _encode(module)


def _encode(module: ir.Module) -> bytes | None:
    enc = _Encoder()
    try:
        functions = [[fn.name, fn.public, [enc.type(t) for t in fn.result_types],
                      enc.attr(fn.arg_attrs), enc.attr(fn.result_attrs), enc.block(fn.body)]
                     for fn in module.functions.values()]
    except _Unencodable:
        return None
    doc = json.dumps([module.entry, functions], separators=(",", ":")).encode()
    return struct.pack("<I", len(doc)) + doc + bytes(enc.raw)


# ------------------------------------------------------------------------------- decode


def _refuse(what: str) -> NoReturn:
    raise InvalidArgumentError(f"[deserialize] corrupted program: {what}")


def _expect(ok: bool, what: str) -> None:
    if not ok:
        _refuse(what)


def _list(v: Any, what: str, length: int | None = None) -> list[Any]:
    _expect(type(v) is list and (length is None or len(v) == length), what)
    return v


def _int(v: Any, what: str) -> int:
    _expect(type(v) is int, what)
    return v


def _str(v: Any, what: str) -> str:
    _expect(type(v) is str, what)
    return v


class _Decoder:
    def __init__(self, raw: bytes) -> None:
        self.values: list[ir.Value] = []
        self.raw = raw

    def define(self, v: Any) -> ir.Value:
        _list(v, "a value", None)
        _expect(len(v) in (1, 2), "a value")
        value = ir.Value(self.type(v[0]), _str(v[1], "a value's name") if len(v) == 2 else "")
        self.values.append(value)
        return value

    def type(self, v: Any) -> ir.Type:
        _expect(type(v) is list and len(v) > 0, "a type")
        if v[0] == "t" and len(v) == 3:
            shape = _list(v[1], "a shape")
            _expect(all(type(d) is int and d >= 0 for d in shape), "a shape")
            _expect(v[2] in _DTYPES, f"element type {v[2]!r}")
            return ir.TensorType(tuple(shape), v[2])
        if v == ["k"]:
            return ir.TokenType()
        _expect(v[0] == "u" and len(v) == 2, "a type")
        return ir.TupleType(tuple(self.type(e) for e in _list(v[1], "a tuple type")))

    def attr(self, v: Any) -> Any:
        if type(v) in _SCALARS:
            return v
        _expect(type(v) is dict and len(v) == 1, "an attribute")
        ((tag, body),) = v.items()
        if tag in ("(", "["):
            items = [self.attr(x) for x in _list(body, "a sequence")]
            return tuple(items) if tag == "(" else items
        if tag == "{":
            pairs = [_list(p, "a dict entry", 2) for p in _list(body, "a dict")]
            return {self.attr(k): self.attr(x) for k, x in pairs}
        if tag == "a":
            return self.array(_list(body, "an array", 4))
        _expect(tag == "d", f"attribute tag {tag!r}")
        name, fields = _list(body, "a dataclass", 2)
        cls = _DATACLASSES.get(name) if type(name) is str else None
        if cls is None:
            _refuse(f"attribute class {name!r}")
        values = [self.attr(x) for x in _list(fields, "dataclass fields",
                                              len(dataclasses.fields(cls)))]
        _expect(all(type(x) is int or (type(x) is tuple and all(type(i) is int for i in x))
                    for x in values), f"a field of {name}")
        return cls(*values)

    def array(self, body: list[Any]) -> np.ndarray:
        name, shape, offset, size = body
        _expect(name in _DTYPES, f"array element type {name!r}")
        _list(shape, "an array shape")
        _expect(all(type(d) is int and d >= 0 for d in shape), "an array shape")
        dtype = numpy_dtype(name)
        _expect(_int(size, "an array size") == int(np.prod(shape, dtype=object)) * dtype.itemsize
                and 0 <= _int(offset, "an array offset") <= len(self.raw) - size,
                "an array's bytes")
        return np.frombuffer(self.raw, dtype, count=size // dtype.itemsize,
                             offset=offset).reshape(shape).copy()

    def block(self, v: Any) -> ir.Block:
        args, ops = _list(v, "a block", 2)
        return ir.Block([self.define(a) for a in _list(args, "block arguments")],
                        [self.operation(o) for o in _list(ops, "a block's operations")])

    def operation(self, v: Any) -> ir.Operation:
        name, operands, results, attrs, regions, loc = _list(v, "an operation", 6)
        kind = ir.BY_NAME.get(name) if type(name) is str else None
        if kind is None:
            _refuse(f"operation {name!r}")
        numbers = [_int(n, "an operand") for n in _list(operands, "operands")]
        _expect(all(0 <= n < len(self.values) for n in numbers), "an operand before its value")
        reads = [self.values[n] for n in numbers]
        defined = [self.define(r) for r in _list(results, "results")]
        decoded = self.attr(attrs)
        _expect(type(decoded) is dict and all(type(k) is str for k in decoded), "attributes")
        return ir.Operation(kind, reads, defined, decoded,
                            [self.block(r) for r in _list(regions, "regions")],
                            _str(loc, "a location"))

    def function(self, v: Any) -> ir.Function:
        name, public, result_types, arg_attrs, result_attrs, body = _list(v, "a function", 6)
        _expect(type(public) is bool, "a function's visibility")
        attrs = [self.attr(arg_attrs), self.attr(result_attrs)]
        _expect(all(type(a) is list and all(type(d) is dict for d in a) for a in attrs),
                "a function's attributes")
        return ir.Function(_str(name, "a function name"), self.block(body),
                           [self.type(t) for t in _list(result_types, "result types")],
                           public, attrs[0], attrs[1])


def decode(data: bytes) -> ir.Module:
    """The module of `encode`'s bytes; InvalidArgumentError for anything else."""
    with no_cyclic_gc():
        return _decode(data)


def _decode(data: bytes) -> ir.Module:
    _expect(len(data) >= 4, "too short")
    (length,) = struct.unpack_from("<I", data)
    _expect(4 + length <= len(data), "truncated")
    try:
        entry, functions = _list(json.loads(data[4:4 + length]), "the document", 2)
        dec = _Decoder(data[4 + length:])
        decoded = [dec.function(f) for f in _list(functions, "functions")]
    except (ValueError, TypeError, RecursionError) as e:  # bad JSON or UTF-8, an unhashable
        # dict key, hostile nesting
        raise InvalidArgumentError(f"[deserialize] corrupted program: {type(e).__name__}: "
                                   f"{str(e)[:200]}") from None
    module = ir.Module({f.name: f for f in decoded}, _str(entry, "the entry"))
    _expect(len(module.functions) == len(decoded), "two functions of one name")
    return module
