"""A reader process that misbehaves on request, for tests/test_robust_reader.py: the real one
(xla_metal/reader/server.py), except for programs that start with one of the words below,
which it handles as a broken jaxlib might. What follows the word is read as usual.

    python -m reader_misbehaving FD     (started by the client, SERVER_MODULE set to it)
"""

from __future__ import annotations

import os
import signal
import time

from xla_metal.reader import framing, server

WORDS = (b"CRASH", b"HANG", b"EXIT", b"CRASH-IF-USED", b"GARBAGE")
_answered = 0  # programs this process has answered


def _read(code: bytes, contexts) -> bytes:
    global _answered
    word, _, rest = code.partition(b" ")
    if word == b"CRASH":
        os.write(1, b"noise from the reader\n")  # what C code in the reader would print
        os.write(2, b"noise from the reader\n")
        os.kill(os.getpid(), signal.SIGSEGV)
    elif word == b"HANG":
        time.sleep(600)
    elif word == b"EXIT":
        os._exit(3)
    elif word == b"CRASH-IF-USED" and _answered:  # as if an earlier program damaged it
        os.kill(os.getpid(), signal.SIGSEGV)
    _answered += 1
    return _real_read(rest if word in WORDS else code, contexts)


def _answer(tag: bytes, payload: bytes, contexts) -> tuple[bytes, bytes]:
    if payload.startswith(b"GARBAGE "):
        return b"Z", b"not a frame the client knows"
    return _real_answer(tag, payload, contexts)


_real_read = server._HANDLERS[framing.PROGRAM]
_real_answer = server._answer
server._HANDLERS[framing.PROGRAM] = _read
server._answer = _answer

if __name__ == "__main__":
    server.main()
