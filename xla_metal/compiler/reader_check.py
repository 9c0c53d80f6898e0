"""Untrusted program bytes are read in a throw-away child process, never in this one.

jaxlib's StableHLO bytecode reader is not robust against corrupt input: about 2% of the single
bit flips of a valid portable artifact make it segfault, abort or loop forever
(docs/robustness.md), which would take down the process that asked for the compile: the user's.
So the importer hands bytecode to `read_in_child` first. A child process reads the bytes with
the same reader and answers with the module it read, written anew by MLIR's bytecode writer,
or with the reader's error; this process reads only that answer. Reading the original bytes
here once the child came back would not do: some corrupt inputs read memory they do not own,
and whether that crashes depends on the heap (seen with jaxlib 0.11.2: a flip the child read
without harm crashed this process). What MLIR's writer wrote from a verified module reads back
as any program does. A reader that crashed or hung becomes an InvalidArgumentError saying so.

Why os.fork(): the child is a copy of this process, with jaxlib already loaded and the reader's
context already made, so a check costs a fork, a read and a write (14 ms for a 500 MB process
on an idle machine), not a new interpreter importing jaxlib (0.5-1.5 s). A fork costs more as
the process grows, in memory and above all in mappings (a median 313 ms in a 3.5 GB pytest
process with 14,843 of them, on a loaded 2-core machine): docs/robustness.md, section 8.
A subprocess running a fresh interpreter is the fallback where there is no fork() (Windows) or
fork() fails (ENOMEM under strict overcommit).

Fork safety: this process has threads (JAX's, MLX's, the frontend's); the child has only the
one that forked. It therefore does as little as possible: it silences its stdout and stderr,
turns off faulthandler (a crash there is expected and no news to the user), reads on an MLIR
context made for children before any fork and used by no other thread (so no lock of it can
be held), single-threaded (so the child starts no threads), writes its answer to a pipe and
calls os._exit (no atexit handlers, no flushing of buffers it shares with this process). It
never touches MLX or JAX. A lock some other thread held at the fork (in malloc, the dynamic
loader, LLVM's globals) could still block the child forever; the timeout ends that, and a
child that timed out is tried once more with a new fork before the program is refused.

Answers are remembered by the SHA-256 of the bytes asked about, so a program is read in a
child once per process (JAX asks for the text and cost analysis of a compiled program, which
reads it again). MLIR text is not sent to a child: it goes through MLIR's text parser, which no
corrupted text has crashed (docs/robustness.md).
"""

from __future__ import annotations

import faulthandler
import hashlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import NoReturn

from ..errors import InvalidArgumentError

# A child gets TIMEOUT_S plus TIMEOUT_S_PER_MIB for each MiB of program. Reading takes ~1 ms
# for a small program, 30 ms for 32 MiB of constants, 70 ms for 15,000 ops in 0.2 MiB.
TIMEOUT_ENV = "XLA_METAL_READER_TIMEOUT_S"
TIMEOUT_S = 10.0
TIMEOUT_S_PER_MIB = 2.0
# A fresh interpreter (the fallback) must first import jax and jaxlib.
INTERPRETER_START_S = 60.0
# Answers kept: at most this many programs, and this many bytes of them; the oldest go first.
REMEMBERED = 4096
REMEMBERED_BYTES = 256 * 2**20

# The answer of `read`: MODULE + bytecode written from the module read, or ERROR + the reader's
# reasons for refusing the bytes (UTF-8).
MODULE, ERROR = b"M", b"E"

_lock = threading.Lock()  # one child at a time; guards the two below
_answers: OrderedDict[bytes, bytes] = OrderedDict()  # SHA-256 of bytes asked -> bytecode
_answer_bytes = 0  # their total size


def timeout_for(code: bytes) -> float:
    try:
        base = float(os.environ.get(TIMEOUT_ENV, TIMEOUT_S))
    except ValueError:
        base = TIMEOUT_S
    return base + len(code) / 2**20 * TIMEOUT_S_PER_MIB


def remember(code: bytes) -> None:
    """Bytecode MLIR's writer produced in this process (from a module it read, or jaxlib's
    HLO converter): its own answer, read here without a child."""
    with _lock:
        _remember(hashlib.sha256(code).digest(), code)


def read_in_child(code: bytes, read: Callable[[bytes], bytes], entry: str) -> bytes:
    """The bytecode to read in this process in place of `code`: what `read(code)` answered in
    a child. Raises InvalidArgumentError with the reader's reasons if it refused the bytes, or
    saying what became of the child if it crashed or did not finish in time. `entry` is
    "module:function" naming `read` for the fallback."""
    key = hashlib.sha256(code).digest()
    with _lock:
        if key in _answers:
            _answers.move_to_end(key)
            return _answers[key]
        timeout = timeout_for(code)
        answer = _ask_child(code, read, entry, timeout)
        if answer == "timeout":  # a forked child may have hit a lock held at the fork
            answer = _ask_child(code, read, entry, timeout)
        if isinstance(answer, str):
            what = f"timed out after {timeout:.3g} s, twice" if answer == "timeout" else answer
            raise InvalidArgumentError(
                f"[import] the StableHLO bytecode ({len(code)} bytes) could not be read: "
                f"jaxlib's reader {what} in a child process, which was stopped; this process "
                f"is unharmed. The program is corrupt")
        if answer.startswith(ERROR):
            raise InvalidArgumentError(answer[1:].decode("utf-8", errors="replace"))
        _remember(key, answer[1:])
        return answer[1:]


def _remember(key: bytes, bytecode: bytes) -> None:
    global _answer_bytes
    _answer_bytes += len(bytecode) - len(_answers.pop(key, b""))
    _answers[key] = bytecode
    while len(_answers) > REMEMBERED or _answer_bytes > REMEMBERED_BYTES and len(_answers) > 1:
        _answer_bytes -= len(_answers.popitem(last=False)[1])


def _ask_child(code: bytes, read: Callable[[bytes], bytes], entry: str,
               timeout: float) -> bytes | str:
    """The child's answer, or "timeout", or what became of the child."""
    fork = getattr(os, "fork", None)
    if fork is None:
        return _ask_subprocess(code, entry, timeout)
    answer_fd, child_fd = os.pipe()
    try:
        with warnings.catch_warnings():
            # JAX and CPython >= 3.12 warn that fork() in a threaded process may deadlock the
            # child: only the child could, and the timeout ends it.
            warnings.simplefilter("ignore")
            pid = fork()
            if pid == 0:
                _child(code, read, child_fd)
    except OSError:  # e.g. ENOMEM: a large process under strict overcommit
        os.close(answer_fd)
        os.close(child_fd)
        return _ask_subprocess(code, entry, timeout)
    os.close(child_fd)
    reaped = False
    try:
        chunks = []
        poller = select.poll()
        poller.register(answer_fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:  # until the child closes the pipe (it exited)
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(int(left * 1000) + 1):
                return "timeout"
            chunk = os.read(answer_fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        reaped = True
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:  # SIGCHLD ignored, or reaped by someone else
            status = -1
        answer = b"".join(chunks)
        if status == 0 and answer[:1] in (MODULE, ERROR):
            return answer
        return _describe(status) if status != -1 else "stopped without an answer"
    finally:
        os.close(answer_fd)
        if not reaped:  # timed out, or this thread was interrupted: stop the child
            os.kill(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _child(code: bytes, read: Callable[[bytes], bytes], answer_fd: int) -> NoReturn:
    status = 1
    try:
        faulthandler.disable()
        sys.stdout = sys.stderr = None  # type: ignore[assignment]
        try:
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            # Bytes that make the reader allocate without end: the child, not the user's
            # process, is what Linux's out-of-memory killer should stop.
            with open("/proc/self/oom_score_adj", "w") as adj:
                adj.write("1000")
        except OSError:  # no /dev/null or /proc here: read all the same
            pass
        answer = memoryview(read(code))
        while answer:
            answer = answer[os.write(answer_fd, answer):]
        status = 0
    finally:
        os._exit(status)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return _crashed(os.WTERMSIG(status))
    return f"stopped without an answer (exit status {os.waitstatus_to_exitcode(status)})"


def _crashed(number: int) -> str:
    try:
        return f"crashed ({signal.Signals(number).name})"
    except ValueError:
        return f"crashed (signal {number})"


def _ask_subprocess(code: bytes, entry: str, timeout: float) -> bytes | str:
    """The same in a fresh interpreter (no fork() here, or it failed)."""
    module, function = entry.split(":")
    script = (f"import sys\nfrom {module} import {function}\n"
              f"sys.stdout.buffer.write({function}(sys.stdin.buffer.read()))\n")
    try:
        run = subprocess.run([sys.executable, "-c", script], input=code, capture_output=True,
                             timeout=timeout + INTERPRETER_START_S)
    except subprocess.TimeoutExpired:  # a final answer: the retry is for forked children
        return f"timed out after {timeout + INTERPRETER_START_S:.3g} s"
    except OSError as e:
        return f"could not be started ({sys.executable}: {e})"
    if run.returncode == 0 and run.stdout[:1] in (MODULE, ERROR):
        return run.stdout
    if run.returncode < 0:
        return _crashed(-run.returncode)
    last = run.stderr.decode(errors="replace").strip().splitlines()[-1:]
    return f"stopped without an answer (exit status {run.returncode}{': ' if last else ''}" \
           f"{''.join(last)[:200]})"
