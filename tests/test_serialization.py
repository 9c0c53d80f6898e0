"""The serialized-executable format: round trip, and every kind of bad blob is refused."""

from __future__ import annotations

import json
import struct

import pytest

from xla_metal import __version__
from xla_metal.errors import InvalidArgumentError
from xla_metal.runtime import serialization as s

CODE = b"ML\xefR some program bytes" * 10


def test_round_trip() -> None:
    assert s.load(s.dump(CODE, "cpu"), "cpu") == (CODE, b"")
    assert s.load(s.dump(CODE, "cpu", program=b"IR"), "cpu") == (CODE, b"IR")


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


# ------------------------------------------------------------------ a corpus of tampered blobs

def _valid_blob() -> bytes:
    import numpy as np

    from tests.direct import artifact
    from xla_metal.compiler import compile_program, ir_codec

    code = artifact(lambda x: x * 2 + 1, np.ones(3, np.float32))
    compiled = ir_codec.encode(compile_program(code).module)
    assert compiled
    return s.dump(code, "cpu", program=compiled)


def _header_blob(header: bytes, code: bytes = CODE) -> bytes:
    return s.MAGIC + struct.pack("<I", len(header)) + header + code


def test_every_truncation_is_refused() -> None:
    blob = _valid_blob()
    for length in range(len(blob)):  # magic, length field, header, program: every class
        with pytest.raises(InvalidArgumentError, match=r"^\[deserialize\] "):
            s.load(blob[:length], "cpu")


def test_every_bit_flip_anywhere_is_refused() -> None:
    blob = _valid_blob()
    for position in range(len(blob)):
        for bit in (0, 7):
            flipped = bytearray(blob)
            flipped[position] ^= 1 << bit
            with pytest.raises(InvalidArgumentError, match=r"^\[deserialize\] "):
                s.load(bytes(flipped), "cpu")


@pytest.mark.parametrize("blob", [
    b"XLAMETAM" + _with_header()[8:],                              # wrong magic
    s.MAGIC + struct.pack("<I", 0xFFFFFFFF) + b"{}",               # length past the end
    s.MAGIC + struct.pack("<I", 0) + CODE,                         # empty header
    _header_blob(b"[" * 100_000 + b"]" * 100_000),                 # nesting past recursion
    _header_blob(b'{"format": 1e999, "size": 1e999}'),             # infinities
    _header_blob(b'{"format": ' + b"9" * 5000 + b"}"),             # a 5000-digit number
    _header_blob(b'{"format": NaN}'),
    _header_blob(b'{"format": 1, "format": 1, "xla_metal": ["0.1.0"]}'),
    _header_blob(b'"a string"'), _header_blob(b"123"), _header_blob(b"null"),
    _header_blob(b"\xff\xfe{}"),                                   # not UTF-8
], ids=lambda blob: repr(blob[8:40]))
def test_hostile_headers_are_refused(blob: bytes) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^\[deserialize\] "):
        s.load(blob, "cpu")


@pytest.mark.parametrize("field", ["format", "xla_metal", "platform", "size", "sha256",
                                   "program_size", "program_sha256"])
def test_fields_of_the_wrong_type_are_refused(field: str) -> None:
    for value in (None, [1], {"a": 1}, "1", 1.5, True, 2**70):
        with pytest.raises(InvalidArgumentError, match=r"^\[deserialize\] "):
            s.load(_with_header(**{field: value}), "cpu")


def test_header_strings_are_data_never_code(tmp_path) -> None:
    marker = tmp_path / "ran"
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    for field in ("format", "xla_metal", "platform", "sha256"):
        with pytest.raises(InvalidArgumentError):
            s.load(_with_header(**{field: payload}), "cpu")
    assert not marker.exists()


# ------------------------------------------------------ tampered persistent-cache entries

def _tamper_cache(cache, how: str) -> None:
    """Rewrites every entry of JAX's cache in `cache` with our executable inside it changed."""
    from jax._src import compilation_cache as jax_cache

    entries = [p for p in cache.iterdir() if not p.name.endswith("-atime")]
    assert entries
    for path in entries:
        if how == "truncated file":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
            continue
        raw = bytearray(jax_cache.decompress_executable(path.read_bytes()))
        start = raw.find(s.MAGIC)  # our blob, inside jaxlib's own wrapper
        assert start >= 0
        (length,) = struct.unpack_from("<I", raw, start + len(s.MAGIC))
        header_end = start + len(s.MAGIC) + 4 + length
        if how == "flipped program":
            raw[header_end + 40] ^= 0x10
        elif how == "other version":
            raw[start:header_end] = raw[start:header_end].replace(
                f'"xla_metal": "{__version__}"'.encode(),
                b'"xla_metal": "' + b"9" * len(__version__) + b'"')
        elif how == "bad magic":
            raw[start] ^= 0xFF
        path.write_bytes(jax_cache.compress_executable(bytes(raw)))


@pytest.mark.parametrize("how", ["flipped program", "other version", "bad magic",
                                 "truncated file"])
def test_tampered_cache_entries_are_refused_and_recompiled(tmp_path, how: str) -> None:
    from tests.test_compilation_cache import _run

    first = _run(tmp_path)
    _tamper_cache(tmp_path, how)
    second = _run(tmp_path, want_stderr=True)
    # JAX warns about the entry it could not use, compiles afresh, and the answer is right.
    assert second["value"] == first["value"]
    assert "Error reading persistent compilation cache entry" in second["stderr"]
    if how != "truncated file":
        assert "[deserialize]" in second["stderr"], second["stderr"][-3000:]
