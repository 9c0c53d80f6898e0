"""Untrusted program bytes are read first in a throw-away child process.

jaxlib's StableHLO bytecode reader is not robust against corrupt input: about 2.5% of the single
bit flips of a valid portable artifact make it segfault, abort or loop forever
(docs/robustness.md), which would take down the process that asked for the compile: the user's.
So the importer hands bytecode to `ensure_readable` first. A child process reads the bytes with
the same reader and exits; only if it came back is the program read in this process. A reader
that crashed or hung becomes an InvalidArgumentError naming what happened.

Why os.fork(): the child is a copy of this process, with jaxlib already loaded and the reader's
context already made, so a check costs a fork and the read itself (about 10 ms for a 200 MB
process, measured in docs/robustness.md), not a new interpreter importing jaxlib (0.5-1.5 s).
A subprocess running a fresh interpreter is the fallback where there is no fork() (Windows) or
fork() fails (ENOMEM under strict overcommit).

Fork safety: this process has threads (JAX's, MLX's, the frontend's); the child has only the
one that forked. It therefore does as little as possible: it silences its stdout and stderr,
turns off faulthandler (a crash there is expected and no news to the user), reads the bytes on
an MLIR context made for children before any fork and never used by another thread (so no lock
of it can be held), single-threaded (so the child starts no threads), and calls os._exit (no
atexit handlers, no flushing of buffers it shares with this process). It never touches MLX or
JAX. A lock some other thread held at the fork (in malloc, the dynamic loader, LLVM's globals)
could still block the child forever; the timeout ends that, and a child that timed out is tried
once more with a new fork before the program is refused.

Bytecode that came back is remembered by its SHA-256, so a program is checked once per process
(JAX asks for the text and cost analysis of a compiled program, which reads it again). MLIR
text is not checked: it goes through MLIR's text parser, which no corrupted text has crashed
(docs/robustness.md).
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
REMEMBERED = 4096  # digests of programs that came back; the oldest are forgotten

_lock = threading.Lock()  # one check at a time; guards the two below
_readable: OrderedDict[bytes, None] = OrderedDict()
_unreaped: list[int] = []  # children that answered; reaped at the next check


def timeout_for(code: bytes) -> float:
    try:
        base = float(os.environ.get(TIMEOUT_ENV, TIMEOUT_S))
    except ValueError:
        base = TIMEOUT_S
    return base + len(code) / 2**20 * TIMEOUT_S_PER_MIB


def remember(code: bytes) -> None:
    """Marks `code` as readable (bytes this process wrote itself from a module it had read)."""
    with _lock:
        _remember(hashlib.sha256(code).digest())


def ensure_readable(code: bytes, read: Callable[[bytes], None], entry: str) -> None:
    """Returns once `read(code)` came back in a child process; raises InvalidArgumentError if
    the child crashed or did not finish in time. `read` must swallow the reader's own errors (a
    refusal is an answer); `entry` is "module:function" naming it for the fallback."""
    key = hashlib.sha256(code).digest()
    with _lock:
        if key in _readable:
            _readable.move_to_end(key)
            return
        _reap()
        timeout = timeout_for(code)
        tries = 0
        while True:
            tries += 1
            failure = _read_in_child(code, read, entry, timeout)
            # A forked child that hung may have hit a lock held at the fork: try once more.
            if failure != "timeout" or tries == 2:
                break
        if failure is not None:
            what = (f"timed out after {timeout:.3g} s ({tries} tries)" if failure == "timeout"
                    else failure)
            raise InvalidArgumentError(
                f"[import] the StableHLO bytecode ({len(code)} bytes) could not be read: "
                f"jaxlib's reader {what} in a child process, which was stopped; this process "
                f"is unharmed. The program is corrupt")
        _remember(key)


def _remember(key: bytes) -> None:
    _readable[key] = None
    _readable.move_to_end(key)
    while len(_readable) > REMEMBERED:
        _readable.popitem(last=False)


def _reap() -> None:
    for pid in list(_unreaped):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else's os.wait()
            done = pid
        if done:
            _unreaped.remove(pid)


def _read_in_child(code: bytes, read: Callable[[bytes], None], entry: str,
                   timeout: float) -> str | None:
    """None if the child came back; "timeout", or what became of the child."""
    fork = getattr(os, "fork", None)
    if fork is None:
        return _read_in_subprocess(code, entry, timeout)
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
        return _read_in_subprocess(code, entry, timeout)
    os.close(child_fd)
    reaped = False
    try:
        poller = select.poll()
        poller.register(answer_fd, select.POLLIN)
        if not poller.poll(int(timeout * 1000) + 1):
            return "timeout"
        if os.read(answer_fd, 1) == b"1":
            # Leave the child to exit on its own (tearing down a copy of a large process takes
            # a few ms): reaped at the next check.
            _unreaped.append(pid)
            reaped = True
            return None
        reaped = True
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:  # SIGCHLD ignored, or reaped by someone else
            return "stopped without an answer"
        return _describe(status)
    finally:
        os.close(answer_fd)
        if not reaped:  # timed out, or this thread was interrupted: stop the child
            os.kill(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _child(code: bytes, read: Callable[[bytes], None], answer_fd: int) -> NoReturn:
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
        read(code)
        os.write(answer_fd, b"1")
    finally:
        os._exit(0)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return _crashed(os.WTERMSIG(status))
    return f"stopped without an answer (exit status {os.waitstatus_to_exitcode(status)})"


def _crashed(number: int) -> str:
    try:
        return f"crashed ({signal.Signals(number).name})"
    except ValueError:
        return f"crashed (signal {number})"


def _read_in_subprocess(code: bytes, entry: str, timeout: float) -> str | None:
    """The same check in a fresh interpreter (no fork() here, or it failed)."""
    module, function = entry.split(":")
    script = (f"import sys\nfrom {module} import {function}\n"
              f"{function}(sys.stdin.buffer.read())\nsys.stdout.write('1')\n")
    try:
        run = subprocess.run([sys.executable, "-c", script], input=code, capture_output=True,
                             timeout=timeout + INTERPRETER_START_S)
    except subprocess.TimeoutExpired:  # a final answer: the retry is for forked children
        return f"timed out after {timeout + INTERPRETER_START_S:.3g} s"
    except OSError as e:
        return f"could not be started ({sys.executable}: {e})"
    if run.stdout == b"1":
        return None
    if run.returncode < 0:
        return _crashed(-run.returncode)
    last = run.stderr.decode(errors="replace").strip().splitlines()[-1:]
    return f"stopped without an answer (exit status {run.returncode}{': ' if last else ''}" \
           f"{''.join(last)[:200]})"
