"""The reader process's wire format: length-prefixed frames over a Unix socket pair.

A frame is a one-byte tag, a four-byte number (a request's time limit in seconds; 0 in an
answer) and an eight-byte length, all big-endian, then that many bytes of payload. The payload
is data (program bytes, bytecode, an error message in UTF-8): nothing is unpickled or evaluated.
Sockets rather than pipes because `send(..., MSG_NOSIGNAL)` cannot raise SIGPIPE: a plugin
loaded into a C program by PJRT has no Python SIGPIPE handler, and a write to a reader that just
died must be an error here, not the end of the user's process.
"""

from __future__ import annotations

import socket
import struct
import time

HEADER = struct.Struct(">cIQ")

# Requests.
PROGRAM = b"P"  # program bytes (bytecode or MLIR text): read, answer with bytecode written anew
HLO = b"H"      # a serialized HloModuleProto: convert to StableHLO, answer with its bytecode
# Answers.
READY = b"R"    # the reader started (empty payload)
MODULE = b"M"   # bytecode written by MLIR's writer from the module read
ERROR = b"E"    # the reader's reasons for refusing the bytes (UTF-8)

REQUESTS = (PROGRAM, HLO)
ANSWERS = (READY, MODULE, ERROR)


class Closed(Exception):
    """The other end closed the socket (or it broke) before a whole frame came."""


class TooSlow(Exception):
    """No whole frame before the deadline."""


def send(sock: socket.socket, tag: bytes, payload: bytes, seconds: int = 0,
         deadline: float | None = None) -> None:
    data = [HEADER.pack(tag, seconds, len(payload)), payload]
    try:
        for part in data:
            view = memoryview(part)
            while view:
                _wait(sock, deadline)
                view = view[sock.send(view, socket.MSG_NOSIGNAL):]
    except TimeoutError:
        raise TooSlow from None
    except OSError as e:  # EPIPE, ECONNRESET: the other end is gone
        raise Closed(str(e)) from None


def receive(sock: socket.socket, limit: int,
            deadline: float | None = None) -> tuple[bytes, int, bytes]:
    """(tag, seconds, payload) of the next frame. Raises ValueError for a length over `limit`."""
    tag, seconds, length = HEADER.unpack(_exactly(sock, HEADER.size, deadline))
    if length > limit:
        raise ValueError(f"a frame of {length} bytes (at most {limit} expected)")
    return tag, seconds, _exactly(sock, length, deadline)


def _exactly(sock: socket.socket, size: int, deadline: float | None) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    try:
        while got < size:
            _wait(sock, deadline)
            n = sock.recv_into(view[got:], min(size - got, 1 << 22))
            if n == 0:
                raise Closed("end of stream")
            got += n
    except TimeoutError:
        raise TooSlow from None
    except ConnectionError as e:
        raise Closed(str(e)) from None
    return bytes(buffer)


def _wait(sock: socket.socket, deadline: float | None) -> None:
    """Sets the socket's timeout to what is left before `deadline` (None: block)."""
    if deadline is None:
        sock.settimeout(None)
        return
    left = deadline - time.monotonic()
    if left <= 0:
        raise TooSlow
    sock.settimeout(left)
