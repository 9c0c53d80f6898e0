"""The user's side of the reader process: start it, ask it, restart it, stop it.

One reader process per user process, started in the background when a PJRT client is created
(or at the first program, whichever comes first) and kept for the life of the process. Each
new program costs one round trip: its bytes go out, bytecode written anew (or the reader's
reasons) comes back. A reader that crashed, hung past its time limit or answered something
that is not a frame is stopped and replaced; the program is refused with an error that says
which, unless the reader that failed had read other programs before it (then an earlier,
corrupt program may have damaged it, so the program is asked once more of a fresh reader).

Answers are remembered by the SHA-256 of the bytes asked about, so a program goes to the
reader once per process (JAX asks for the text and cost analysis of a compiled program, which
reads it again), and so is bytecode the reader wrote (it is its own answer).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict

from ..errors import FailedPreconditionError, InvalidArgumentError
from . import framing

# A request gets TIMEOUT_S plus TIMEOUT_S_PER_MIB for each MiB of program. Reading takes ~1 ms
# for a small program, 30 ms for 32 MiB of constants, 70 ms for 15,000 ops in 0.2 MiB.
TIMEOUT_ENV = "XLA_METAL_READER_TIMEOUT_S"
TIMEOUT_S = 10.0
TIMEOUT_S_PER_MIB = 2.0
# The reader must import jaxlib before it answers (0.3 s here, more on a loaded machine).
START_S = 60.0
# The interpreter to run the reader with, where sys.executable is not Python (a C program
# that loaded the plugin through PJRT).
PYTHON_ENV = "XLA_METAL_READER_PYTHON"
# What the reader process runs (python -m SERVER_MODULE FD); tests run a misbehaving one.
SERVER_MODULE = "xla_metal.reader.server"
# Answers kept: at most this many programs, and this many bytes of them; the oldest go first.
REMEMBERED = 4096
REMEMBERED_BYTES = 256 * 2**20


class _Failed(Exception):
    """What became of a reader that gave no answer (it has been stopped)."""


class _NotStarted(Exception):
    """Why a reader process did not start (it has been stopped)."""


class _Reader:
    """One reader process and this process's end of its socket."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if isinstance(p, str) and p)
        env.pop("PYTHONFAULTHANDLER", None)  # its crashes are expected, and no news
        try:
            self.process = subprocess.Popen(
                [_python(), "-m", SERVER_MODULE, str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), env=env, start_new_session=True)
        except OSError as e:
            ours.close()
            raise FailedPreconditionError(
                f"[reader] the program reader process could not be started ({_python()}: {e}); "
                f"set {PYTHON_ENV} to a Python interpreter with jaxlib installed") from None
        finally:
            theirs.close()
        self.sock = ours
        self.pid = os.getpid()  # the process that owns it (not a fork of it)
        self.ready = False
        self.answered = 0  # programs it has read

    def ask(self, tag: bytes, payload: bytes, timeout: float) -> tuple[bytes, bytes]:
        """(MODULE or ERROR, payload). Raises _Failed (and stops the reader) if it gives none."""
        done = False
        try:
            if not self.ready:
                self._wait_ready()
            deadline = time.monotonic() + timeout
            framing.send(self.sock, tag, payload, int(timeout) + 5, deadline)
            answer, _, body = framing.receive(self.sock, 2 * len(payload) + (64 << 20),
                                              deadline)
            if answer not in (framing.MODULE, framing.ERROR):
                raise ValueError(f"a frame tagged {answer!r}")
            done = True
            self.answered += 1
            return answer, body
        except framing.TooSlow:
            raise _Failed(f"timed out after {timeout:.3g} s") from None
        except framing.Closed:
            raise _Failed(self._death()) from None
        except ValueError as e:
            raise _Failed(f"answered with something that is not an answer ({e})") from None
        finally:
            if not done:  # failed, or this thread was interrupted mid-way: nothing to reuse
                self.stop()

    def _wait_ready(self) -> None:
        try:
            tag, _, body = framing.receive(self.sock, 1 << 20, time.monotonic() + START_S)
        except framing.TooSlow:
            raise _NotStarted(f"it did not answer within {START_S:.3g} s") from None
        except framing.Closed:
            raise _NotStarted(f"it {self._death()}") from None
        if tag != framing.READY:
            raise _NotStarted(body.decode(errors="replace")[:300])
        self.ready = True

    def _death(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "closed its end without an answer"
        if code < 0:
            try:
                return f"crashed ({signal.Signals(-code).name})"
            except ValueError:
                return f"crashed (signal {-code})"
        return f"stopped without an answer (exit status {code})"

    def stop(self, grace: float = 0.0) -> None:
        """Ends the process and reaps it (no zombie). With `grace`, lets it leave by itself."""
        self.sock.close()  # the reader sees the end of its requests and exits
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                pass
            self.process.kill()
            self.process.wait()


def _python() -> str:
    chosen = os.environ.get(PYTHON_ENV)
    if chosen:
        return chosen
    if sys.executable and os.path.basename(sys.executable).startswith("python"):
        return sys.executable
    # Embedded (sys.executable is the host program): the interpreter of this Python's prefix.
    return os.path.join(sys.base_exec_prefix, "bin",
                        f"python{sys.version_info.major}.{sys.version_info.minor}")


_lock = threading.Lock()  # one round trip at a time; guards everything below
_reader: _Reader | None = None
_answers: OrderedDict[bytes, bytes] = OrderedDict()  # SHA-256 of bytes asked -> bytecode
_answer_bytes = 0  # their total size


def _current() -> _Reader:
    """The reader process of this process, started now if there is none. Needs _lock."""
    global _reader
    if _reader is None or _reader.pid != os.getpid() or _reader.process.poll() is not None:
        if _reader is not None and _reader.pid == os.getpid():
            _reader.stop()
        _reader = _Reader()
    return _reader


def start_in_background() -> None:
    """Starts the reader process now, without waiting for it (its import of jaxlib then
    overlaps with the frontend's tracing of the first program)."""
    with _lock:
        _current()


def timeout_for(payload: bytes) -> float:
    try:
        base = float(os.environ.get(TIMEOUT_ENV, TIMEOUT_S))
    except ValueError:
        base = TIMEOUT_S
    return base + len(payload) / 2**20 * TIMEOUT_S_PER_MIB


def read_program(code: bytes) -> bytes:
    """Bytecode this process may read in place of `code` (a program from a frontend: a
    portable artifact, or MLIR text): the module the reader process read, written anew."""
    what = "MLIR text" if not code.startswith(b"ML\xefR") else "StableHLO bytecode"
    return _ask(framing.PROGRAM, code, f"[import] the {what} ({len(code)} bytes) could not be "
                                       f"read: jaxlib's reader")


def convert_hlo(proto: bytes) -> bytes:
    """StableHLO bytecode for a serialized HloModuleProto, converted in the reader process."""
    return _ask(framing.HLO, proto, f"[compile] the 'hlo' program ({len(proto)} bytes) could "
                                    f"not be converted: jaxlib's HLO converter")


def _ask(tag: bytes, payload: bytes, failure: str) -> bytes:
    key = hashlib.sha256(tag + payload).digest()
    with _lock:
        if key in _answers:
            _answers.move_to_end(key)
            return _answers[key]
        timeout = timeout_for(payload)
        while True:
            reader = _current()
            try:
                answer, body = reader.ask(tag, payload, timeout)
                break
            except _NotStarted as e:
                raise FailedPreconditionError(
                    f"[reader] the program reader process ({_python()} -m "
                    f"{SERVER_MODULE}) did not start: {e}. Set {PYTHON_ENV} to a "
                    f"Python interpreter with jaxlib installed if this is not one") from None
            except _Failed as e:
                if reader.answered > 0:  # maybe an earlier program's doing: ask a fresh one
                    continue
                _current()  # a fresh reader for the next program, starting now
                raise InvalidArgumentError(
                    f"{failure} {e} in the reader process (pid {reader.process.pid}), which "
                    f"was stopped and replaced; this process is unharmed. The program is "
                    f"corrupt") from None
        if answer == framing.ERROR:
            raise InvalidArgumentError(body.decode("utf-8", errors="replace"))
        _remember(key, body)
        _remember(hashlib.sha256(framing.PROGRAM + body).digest(), body)  # its own answer
        return body


def _remember(key: bytes, bytecode: bytes) -> None:
    global _answer_bytes
    _answer_bytes += len(bytecode) - len(_answers.pop(key, b""))
    _answers[key] = bytecode
    while len(_answers) > REMEMBERED or _answer_bytes > REMEMBERED_BYTES and len(_answers) > 1:
        _answer_bytes -= len(_answers.popitem(last=False)[1])


def shutdown() -> None:
    """Stops the reader process (at exit; tests)."""
    global _reader
    with _lock:
        if _reader is not None and _reader.pid == os.getpid():
            _reader.stop(grace=1.0)
        _reader = None


def _after_fork_in_child() -> None:
    # A fork of this process shares the parent's socket: it must start a reader of its own
    # (the parent's stays the parent's). Another thread may have held the lock at the fork.
    global _lock, _reader
    _lock = threading.Lock()
    if _reader is not None:
        _reader.sock.close()
    _reader = None


atexit.register(shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
