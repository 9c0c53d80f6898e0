"""The serialized-executable format: round trip, and every kind of bad blob is refused."""

from __future__ import annotations

import json
import struct

import pytest

from xla_metal.errors import InvalidArgumentError
from xla_metal.runtime import serialization as s

CODE = b"ML\xefR some program bytes" * 10


def test_round_trip() -> None:
    assert s.load(s.dump(CODE, "cpu"), "cpu") == CODE


def _with_header(**changes: object) -> bytes:
    blob = s.dump(CODE, "cpu")
    (length,) = struct.unpack_from("<I", blob, len(s.MAGIC))
    start = len(s.MAGIC) + 4
    header = json.loads(blob[start:start + length])
    header.update(changes)
    raw = json.dumps(header).encode()
    return s.MAGIC + struct.pack("<I", len(raw)) + raw + blob[start + length:]


@pytest.mark.parametrize("blob, message", [
    (b"", "not an xla-metal executable"),
    (b"PK\x03\x04 a zip file", "not an xla-metal executable"),
    (s.dump(CODE, "cpu")[:-5], "truncated or corrupted"),
    (s.dump(CODE, "cpu")[:-1] + b"X", "truncated or corrupted"),
    (s.MAGIC + struct.pack("<I", 5) + b"{oops" + CODE, "corrupted header"),
    (s.MAGIC + struct.pack("<I", 2) + b"[]" + CODE, "corrupted header"),
    (_with_header(xla_metal="0.0.1"), "written by xla-metal 0.0.1"),
    (_with_header(format=99), "format 99"),
    (_with_header(platform="gpu"), "compiled for MLX gpu"),
])
def test_bad_blobs_are_refused(blob: bytes, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        s.load(blob, "cpu")


def test_every_single_byte_flip_in_the_program_is_caught() -> None:
    blob = bytearray(s.dump(CODE, "cpu"))
    start = len(blob) - len(CODE)
    for i in range(start, len(blob)):
        flipped = bytearray(blob)
        flipped[i] ^= 0x01
        with pytest.raises(InvalidArgumentError):
            s.load(bytes(flipped), "cpu")
