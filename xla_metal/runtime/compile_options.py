"""The compiler options a frontend passes at compile time, checked the way XLA checks them.

`jax.jit(f, compiler_options={...})` and `lowered.compile(compiler_options={...})` reach a
backend as `env_option_overrides`, a map inside the serialized CompileOptionsProto. XLA's
backends apply each entry to a field of its DebugOptions proto and refuse the rest: an
unknown name is "No such compile option: '<name>'", a value of the wrong type is "While
setting option <name>, '<value>' is not a valid <type> value." We do the same checks, so a
typo fails here as it fails on the CPU backend. Options that pass are accepted and have no
effect: they tune XLA's own compiler passes, which metal does not run.

The names and types of DebugOptions' fields come from the installed jaxlib: protobuf embeds
each .proto file's descriptor (a serialized FileDescriptorProto) in the library, so the
table is exactly the XLA version JAX's CPU backend checks against. It is parsed as data.
"""

from __future__ import annotations

import functools
import mmap
import os

from ..errors import InvalidArgumentError
from . import protowire as wire

OptionValue = str | bool | int | float

# CompileOptionsProto.env_option_overrides (a map: entries with key 1, value 2) and the
# OptionOverrideProto oneof.
_ENV_OPTION_OVERRIDES = 7
_STRING_FIELD, _BOOL_FIELD, _INT_FIELD, _DOUBLE_FIELD = 1, 2, 3, 4

# FieldDescriptorProto.Type codes, by the name XLA's messages use for them.
_TYPE_NAMES = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 8: "bool",
               9: "string", 11: "message", 12: "bytes", 13: "uint32", 14: "enum"}
_INTEGER_TYPES = {3, 4, 5, 13}
_FLOAT_TYPES = {1, 2}
_BOOL, _STRING, _ENUM = 8, 9, 14

_XLA_PROTO_MARKER = b"\n\rxla/xla.proto"  # FileDescriptorProto field 1 (name) = xla/xla.proto


def env_option_overrides(proto: bytes) -> list[tuple[str, OptionValue]]:
    """The (name, value) overrides inside a serialized CompileOptionsProto."""
    overrides: list[tuple[str, OptionValue]] = []
    try:
        for number, _, entry in wire.fields(proto):
            if number != _ENV_OPTION_OVERRIDES or not isinstance(entry, bytes):
                continue
            name, value = "", None
            for key, _, raw in wire.fields(entry):
                if key == 1 and isinstance(raw, bytes):
                    name = raw.decode()
                elif key == 2 and isinstance(raw, bytes):
                    value = _override_value(raw)
            if value is None:
                raise InvalidArgumentError(f"[compile] compile option '{name}' has no value")
            overrides.append((name, value))
    except (wire.WireError, UnicodeDecodeError) as e:
        raise InvalidArgumentError(f"[compile] the compile options are not a valid "
                                   f"CompileOptionsProto: {e}") from e
    return overrides


def _override_value(raw: bytes) -> OptionValue | None:
    value: OptionValue | None = None
    for number, _, field in wire.fields(raw):
        if number == _STRING_FIELD and isinstance(field, bytes):
            value = field.decode()
        elif number == _BOOL_FIELD:
            value = bool(field)
        elif number == _INT_FIELD:
            value = wire.as_signed64(field)
        elif number == _DOUBLE_FIELD:
            value = wire.as_double(field)
    return value


@functools.cache
def debug_option_types() -> dict[str, int]:
    """DebugOptions field name -> FieldDescriptorProto type code, from jaxlib's copy of
    xla.proto's descriptor."""
    import jaxlib

    path = os.path.join(os.path.dirname(jaxlib.__file__), "libjax_common.so")
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            start = m.find(_XLA_PROTO_MARKER)
            if start < 0:
                return {}
            return _debug_option_types(m, start)
    except OSError:
        return {}


def _debug_option_types(data: mmap.mmap, start: int) -> dict[str, int]:
    # The descriptor's length is not stored beside it: read top-level fields one at a time
    # until DebugOptions (a message_type, field 4) has been seen.
    position = start
    while position < len(data):
        key, position = wire.varint(data, position)  # type: ignore[arg-type]
        length, position = wire.varint(data, position)  # type: ignore[arg-type]
        if key & 7 != wire.LENGTH_DELIMITED:
            return {}
        message = bytes(data[position:position + length])
        position += length
        if key >> 3 != 4:
            continue
        name, types = "", {}
        for number, _, value in wire.fields(message):
            if number == 1 and isinstance(value, bytes):
                name = value.decode()
            elif number == 2 and isinstance(value, bytes):
                described = {n: v for n, _, v in wire.fields(value)}
                field_name, field_type = described.get(1), described.get(5)
                if isinstance(field_name, bytes) and isinstance(field_type, int):
                    types[field_name.decode()] = field_type
        if name == "DebugOptions":
            return types
    return {}


def check(proto: bytes) -> None:
    """Raises InvalidArgumentError, naming the option, for any override XLA would refuse."""
    overrides = env_option_overrides(proto)
    if not overrides:
        return
    types = debug_option_types()
    if not types:
        raise InvalidArgumentError(
            f"[compile] cannot check compile option '{overrides[0][0]}': the installed jaxlib "
            f"carries no description of XLA's DebugOptions")
    for name, value in overrides:
        if name not in types:
            raise InvalidArgumentError(f"[compile] No such compile option: '{name}'")
        if not _fits(types[name], value):
            raise InvalidArgumentError(
                f"[compile] While setting option {name}, '{_shown(value)}' is not a valid "
                f"{_TYPE_NAMES.get(types[name], 'message')} value.")


def _fits(field_type: int, value: OptionValue) -> bool:
    if isinstance(value, str):  # XLA parses strings into the field's type
        if field_type in (_STRING, _ENUM):
            return True
        if field_type == _BOOL:
            return value in ("True", "False")
        try:
            int(value) if field_type in _INTEGER_TYPES else float(value)
        except ValueError:
            return False
        return field_type in _INTEGER_TYPES or field_type in _FLOAT_TYPES
    if isinstance(value, bool):
        return field_type == _BOOL
    if isinstance(value, int):
        return field_type in _INTEGER_TYPES
    return field_type in _FLOAT_TYPES


def _shown(value: OptionValue) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
