"""A minimal reader of the protobuf wire format: enough to pull a few fields out of the
protos PJRT hands us (CompileOptionsProto) and of the descriptor jaxlib embeds for
xla.proto. Data only: nothing read here is executed."""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise WireError("truncated protobuf varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field of one message: varints as int,
    fixed-width and length-delimited fields as their raw bytes."""
    position = 0
    while position < len(data):
        key, position = varint(data, position)
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == VARINT:
            value, position = varint(data, position)
        elif wire_type in (FIXED64, FIXED32):
            width = 8 if wire_type == FIXED64 else 4
            value = data[position:position + width]
            position += width
        elif wire_type == LENGTH_DELIMITED:
            length, position = varint(data, position)
            value = data[position:position + length]
            position += length
        else:
            raise WireError(f"protobuf wire type {wire_type} is not supported")
        if position > len(data):
            raise WireError("truncated protobuf field")
        yield number, wire_type, value


def as_double(raw: int | bytes) -> float:
    if not isinstance(raw, bytes) or len(raw) != 8:
        raise WireError("a double field is not 8 bytes")
    return float(struct.unpack("<d", raw)[0])


def as_signed64(raw: int | bytes) -> int:
    if not isinstance(raw, int):
        raise WireError("an integer field is not a varint")
    return raw - (1 << 64) if raw >= 1 << 63 else raw
