"""The serialized-executable format: versioned, checksummed, and data only.

A blob is MAGIC, a 4-byte little-endian header length, a JSON header, the StableHLO program
bytes the executable was compiled from, then our compiled program IR (compiler/ir_codec.py;
empty when the program holds something that format cannot, and then loading recompiles the
StableHLO). Loading parses and checks every field; nothing is unpickled or evaluated, so a
tampered blob can at worst be refused.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence

from .. import __version__
from ..errors import InvalidArgumentError, UnimplementedError

MAGIC = b"XLAMETAL"
FORMAT_VERSION = 2


def dump(code: bytes, platform: str, host_callbacks: Sequence[str] = (),
         program: bytes = b"") -> bytes:
    """The blob of a program (`program`: its compiled IR, b"" for none). `host_callbacks`
    names the Python functions the program calls back (jax.debug.print, pure_callback, ...):
    those live only in this process, so such an executable is refused rather than written
    without them."""
    if host_callbacks:
        raise UnimplementedError(
            f"[serialize] this executable calls back into Python ({', '.join(host_callbacks)});"
            f" host callbacks are functions of the running process and cannot be serialized:"
            f" compile the function again where it is needed")
    header = json.dumps({"format": FORMAT_VERSION, "xla_metal": __version__,
                         "platform": platform, "size": len(code),
                         "sha256": hashlib.sha256(code).hexdigest(),
                         "program_size": len(program),
                         "program_sha256": hashlib.sha256(program).hexdigest()}).encode()
    return MAGIC + struct.pack("<I", len(header)) + header + code + program


# Every field and its exact type: JSON true is not format 1, nor 1.0 a size.
_HEADER_TYPES = {"format": int, "xla_metal": str, "platform": str, "size": int, "sha256": str,
                 "program_size": int, "program_sha256": str}


def _check_header_types(header: object) -> None:
    if not isinstance(header, dict):
        raise InvalidArgumentError("[deserialize] corrupted header: not a JSON object")
    for field, kind in _HEADER_TYPES.items():
        if type(header.get(field)) is not kind:
            raise InvalidArgumentError(f"[deserialize] corrupted header: '{field}' is not a "
                                       f"{kind.__name__}")


def load(blob: bytes, platform: str) -> tuple[bytes, bytes]:
    """The StableHLO and compiled-program bytes of a blob from `dump`, after checking that it
    is ours and intact."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 4:
        raise InvalidArgumentError("[deserialize] not an xla-metal executable")
    (length,) = struct.unpack_from("<I", blob, len(MAGIC))
    start = len(MAGIC) + 4
    try:
        header = json.loads(blob[start:start + length])
    except (ValueError, RecursionError) as e:  # RecursionError: hostile nesting
        raise InvalidArgumentError(f"[deserialize] corrupted header: "
                                   f"{type(e).__name__}: {str(e)[:200]}") from None
    _check_header_types(header)
    if header["format"] != FORMAT_VERSION or header["xla_metal"] != __version__:
        raise InvalidArgumentError(
            f"[deserialize] executable was written by xla-metal {header.get('xla_metal')} "
            f"(format {header.get('format')}); this is {__version__} (format "
            f"{FORMAT_VERSION}): recompile it")
    if header.get("platform") != platform:
        raise InvalidArgumentError(f"[deserialize] executable was compiled for MLX "
                                   f"{header.get('platform')}, this client runs {platform}")
    code = blob[start + length:start + length + header["size"]]
    program = blob[start + length + header["size"]:]
    if len(code) != header["size"] or len(program) != header["program_size"] or \
            hashlib.sha256(code).hexdigest() != header["sha256"] or \
            hashlib.sha256(program).hexdigest() != header["program_sha256"]:
        raise InvalidArgumentError("[deserialize] executable is truncated or corrupted "
                                   "(checksum mismatch)")
    return code, program
