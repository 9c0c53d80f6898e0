"""The reader process: reads untrusted program bytes with jaxlib, answers with bytecode.

    python -m xla_metal.reader.server FD     (started by client.py, never by hand)

FD is this end of a Unix socket pair. Requests and answers are frames (framing.py). A PROGRAM
request is read as the importer would read it (mlir.parse: a portable artifact, or MLIR text)
and answered with the module, written anew by MLIR's bytecode writer; an HLO request is
converted by jaxlib's HLO -> StableHLO converter, its deprecated ops upgraded, and answered the
same way; bytes the reader refuses are answered with its reasons. A crash or hang here is what
this process exists for: the user's process sees a closed socket or a timeout instead.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
from typing import Any

from . import framing

# Larger requests are refused unread (the client never sends one: its programs are in memory).
REQUEST_LIMIT = 1 << 40
# A context interns every attribute and type it has seen (a program's constants among them),
# so it is replaced after this many programs or bytes read, and after a refusal.
CONTEXT_PROGRAMS = 64
CONTEXT_BYTES = 64 << 20


class _Contexts:
    def __init__(self) -> None:
        self.ctx: Any = None
        self.programs = 0
        self.bytes = 0

    def get(self, size: int):
        from .mlir import new_context

        if self.ctx is None or self.programs >= CONTEXT_PROGRAMS or self.bytes >= CONTEXT_BYTES:
            self.ctx = new_context()
            self.ctx.enable_multithreading(False)  # this process starts no threads
            self.programs = self.bytes = 0
        self.programs += 1
        self.bytes += size
        return self.ctx

    def drop(self) -> None:
        self.ctx = None


def _read_program(code: bytes, contexts: _Contexts) -> bytes:
    from . import mlir

    ctx = contexts.get(len(code))
    module = mlir.parse(code, ctx)
    _check_text(module, len(code))
    return mlir.bytecode(module, ctx)


_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(rb"\\([0-9A-Fa-f]{2}|.)")  # \XX, or \\, \", \n, \t


def _unescape(escape: re.Match[bytes]) -> bytes:
    code = escape.group(1)
    return bytes([int(code, 16)]) if len(code) == 2 else code


def _check_text(module, size: int) -> None:
    """Refuses a module with a name, string or location that is not UTF-8. The reader keeps
    such bytes as they came, and the importer, walking the module in the user's process, would
    kill that process at the first one (jaxlib's bindings cannot make a Python string of a
    dictionary key that is not UTF-8, and call std::terminate). MLIR prints every string
    quoted, with the bytes outside printable ASCII as \\XX escapes: each quoted string of the
    printed module (locations included, large constants elided) is unescaped and decoded."""
    import io

    from ..errors import InvalidArgumentError

    out = io.BytesIO()
    module.operation.print(file=out, binary=True, large_elements_limit=16,
                           enable_debug_info=True)
    for quoted in _QUOTED.finditer(out.getvalue()):
        raw = _ESCAPE.sub(_unescape, quoted.group(1))
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgumentError(
                f"[import] the program ({size} bytes) holds a name, string or location that "
                f"is not UTF-8: {quoted.group(0)[:80].decode('ascii', errors='replace')}") \
                from None


def _convert_hlo(proto: bytes, contexts: _Contexts) -> bytes:
    from jaxlib import _jax

    from ..errors import InvalidArgumentError
    from . import mlir

    try:
        converted = bytes(_jax.mlir.hlo_to_stablehlo(proto))
    except Exception as e:  # jaxlib's parser or converter refused it
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InvalidArgumentError(f"[compile] the 'hlo' program ({len(proto)} bytes) is not "
                                   f"an HloModuleProto jaxlib can convert: {detail}") from e
    ctx = contexts.get(len(converted))
    module = mlir.parse(converted, ctx)
    mlir.upgrade_deprecated_ops(module, ctx)
    _check_text(module, len(proto))
    return mlir.bytecode(module, ctx)


_HANDLERS = {framing.PROGRAM: _read_program, framing.HLO: _convert_hlo}


def _answer(tag: bytes, payload: bytes, contexts: _Contexts) -> tuple[bytes, bytes]:
    from ..errors import XlaMetalError

    try:
        return framing.MODULE, _HANDLERS[tag](payload, contexts)
    except Exception as e:  # noqa: BLE001 - a refusal is an answer too
        contexts.drop()
        reason = str(e) if isinstance(e, XlaMetalError) else \
            f"[import] the program could not be read ({len(payload)} bytes): " \
            f"{type(e).__name__}: {e}"
        return framing.ERROR, reason.encode("utf-8", errors="replace")


def serve(sock: socket.socket) -> None:
    try:  # everything a request needs, loaded before the first one is timed
        import jaxlib._jax  # noqa: F401
        from jaxlib.mlir.dialects import stablehlo  # noqa: F401

        contexts = _Contexts()
        contexts.get(0)
    except Exception as e:  # noqa: BLE001 - told to the client, which names it
        framing.send(sock, framing.ERROR, f"{type(e).__name__}: {e}".encode(errors="replace"))
        return
    framing.send(sock, framing.READY, b"")
    while True:
        try:
            tag, seconds, payload = framing.receive(sock, REQUEST_LIMIT)
        except (framing.Closed, ValueError):  # the user's process is gone, or spoke nonsense
            return
        if tag not in _HANDLERS:
            return
        # Should the user's process die while this read hangs, nobody would stop this one:
        # the alarm's default action ends it (even inside C++ code that holds the GIL).
        signal.alarm(seconds)
        answer = _answer(tag, payload, contexts)
        signal.alarm(0)
        try:
            framing.send(sock, *answer)
        except framing.Closed:
            return


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    # Reads that allocate without end: this process, not the user's, is the one Linux's
    # out-of-memory killer should stop.
    try:
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")
    except OSError:
        pass
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is the user's
    serve(sock)
    os._exit(0)


if __name__ == "__main__":
    main()
