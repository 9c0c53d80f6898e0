"""Corrupt StableHLO bytecode through the real PJRT path: a clean error, never a crash or hang.

jaxlib's bytecode reader segfaults, aborts or loops forever on some corrupt portable artifacts;
the importer reads bytecode in a throw-away child process first
(xla_metal/compiler/reader_check.py). Here the artifact JAX hands the plugin for a real jitted
function is bit-flipped at FLIPS positions spread over the whole of it and truncated at
TRUNCATIONS lengths (fixed seed), and each goes through PJRT_Executable_DeserializeAndLoad in
this process, through JAX's client. (Compiling it through JAX would not do: JAX reads the
bytes itself before the plugin sees them.) Each must be a clean error or compile and run.

    python -m pytest -q -s tests/test_robust_reader.py    # prints the outcomes and timings
"""

from __future__ import annotations

import collections
import os
import random
import re
import signal
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xla_metal.compiler import importer, reader_check
from xla_metal.errors import InvalidArgumentError
from xla_metal.runtime import serialization

SEED = 20261122
FLIPS = 300
TRUNCATIONS = 30
# A corrupt artifact that hangs the reader costs two of these (the child is tried twice).
TIMEOUT_S = "1"


# The jitted function, compiled under a file name of its own and without the caller's frames in
# its locations: the artifact is then the same bytes in every checkout, and so are the outcomes.
LAYER = """
def layer(x, w):
    return jnp.tanh(x @ w) + 1
compiled = jax.jit(layer).lower(x, w).compile()
"""


@pytest.fixture(scope="module")
def program(metal: jax.Device):
    """(serialized-executable prefix of JAX's own, the artifact inside, arguments)."""
    x = jax.device_put(np.arange(6, dtype=np.float32).reshape(2, 3) / 6, metal)
    w = jax.device_put(np.ones((3, 2), np.float32), metal)
    namespace = {"jax": jax, "jnp": jnp, "x": x, "w": w}
    full = jax.config.jax_include_full_tracebacks_in_locations
    jax.config.update("jax_include_full_tracebacks_in_locations", False)
    try:
        exec(compile(LAYER, "layer.py", "exec"), namespace)
    finally:
        jax.config.update("jax_include_full_tracebacks_in_locations", full)
    serialized = metal.client.serialize_executable(namespace["compiled"].runtime_executable())
    start = serialized.find(serialization.MAGIC)  # JAX's metadata, then our blob
    code = serialization.load(serialized[start:], "cpu")
    assert b"layer.py" in code and b"test_robust" not in code
    return serialized[:start], code, (x, w)


def _deserialize(metal: jax.Device, prefix: bytes, code: bytes):
    blob = prefix + serialization.dump(code, "cpu")  # a valid checksum over corrupt bytes
    return metal.client.deserialize_executable(blob, executable_devices=[metal])


def _corpus(code: bytes) -> list[tuple[str, bytes]]:
    rng = random.Random(SEED)
    cases = []
    for k in range(FLIPS):  # one position in each of FLIPS equal stretches of the artifact
        position = k * len(code) // FLIPS + rng.randrange(max(1, len(code) // FLIPS))
        bit = rng.randrange(8)
        flipped = bytearray(code)
        flipped[position] ^= 1 << bit
        cases.append((f"flip {position}.{bit}", bytes(flipped)))
    for k in range(TRUNCATIONS):
        length = k * len(code) // TRUNCATIONS + rng.randrange(max(1, len(code) // TRUNCATIONS))
        cases.append((f"truncated to {length}", code[:length]))
    return cases


def test_corrupt_artifacts_are_errors_never_crashes(metal, program, monkeypatch) -> None:
    monkeypatch.setenv(reader_check.TIMEOUT_ENV, TIMEOUT_S)
    prefix, code, args = program
    checks: list[float] = []  # seconds per check of a child that came back
    ask_child = reader_check._ask_child

    def timed(*a):
        begin = time.perf_counter()
        answer = ask_child(*a)
        if isinstance(answer, bytes):
            checks.append(time.perf_counter() - begin)
        return answer

    monkeypatch.setattr(reader_check, "_ask_child", timed)
    outcomes: collections.Counter[str] = collections.Counter()
    avoided: dict[str, str] = {}
    begin = time.monotonic()
    for name, corrupt in _corpus(code):
        try:
            executable = _deserialize(metal, prefix, corrupt)
        except jax.errors.JaxRuntimeError as e:
            message = str(e)
            assert message.startswith("INVALID_ARGUMENT: [import] "), (name, message)
            crash = re.search(r"jaxlib's reader (crashed \(\w+\)|timed out)", message)
            if crash:
                outcomes[f"crash avoided: {crash.group(1)}"] += 1
                avoided[name] = crash.group(1)
            else:
                outcomes["clean error from the reader"] += 1
            continue
        try:
            for result in executable.execute(list(args)):
                result.block_until_ready()
            outcomes["compiled and ran"] += 1
        except jax.errors.JaxRuntimeError as e:  # a changed signature, say: refused cleanly
            assert str(e), name
            outcomes["compiled, refused to run"] += 1
    elapsed = time.monotonic() - begin
    crashes = sum(n for kind, n in outcomes.items() if kind.startswith("crash avoided"))
    print(f"\n{len(code)}-byte artifact, {FLIPS} flips + {TRUNCATIONS} truncations in "
          f"{elapsed:.1f} s: {dict(sorted(outcomes.items()))}; crashes avoided at {avoided}; "
          f"check of a new program: median {statistics.median(checks) * 1e3:.1f} ms, "
          f"max {max(checks) * 1e3:.1f} ms ({len(checks)} checks)")
    assert crashes > 0 and outcomes["clean error from the reader"] > 0
    assert outcomes["compiled and ran"] > 0
    # The process is whole: the intact program still compiles and gives the right answer.
    result = _deserialize(metal, prefix, code).execute(list(args))[0]
    x, w = map(np.asarray, args)
    np.testing.assert_allclose(np.asarray(result), np.tanh(x @ w) + 1, rtol=1e-6)


def _unchecked(code: bytes, tag: bytes) -> bytes:
    """The same program under another name in its locations: bytes no test has checked yet."""
    renamed = code.replace(b"jit(layer)", b"jit(" + tag + b")")
    assert renamed != code and len(renamed) == len(code)
    return renamed


def test_each_program_is_checked_once(metal, program, monkeypatch) -> None:
    prefix, code, args = program
    fresh = _unchecked(code, b"Layer")
    seen: list[bytes] = []
    ask_child = reader_check._ask_child
    monkeypatch.setattr(reader_check, "_ask_child",
                        lambda c, *a: seen.append(c) or ask_child(c, *a))
    for _ in range(3):
        executable = _deserialize(metal, prefix, fresh)
        executable.execute(list(args))[0].block_until_ready()
        assert "tanh" in importer.module_text(fresh)  # as the plugin's program text does
        assert executable.cost_analysis()["transcendentals"] > 0  # XLA reads the answer
    assert seen == [fresh]


def test_mlir_text_is_not_checked(monkeypatch) -> None:
    monkeypatch.setattr(reader_check, "_ask_child",
                        lambda *a: pytest.fail("MLIR text went to a child"))
    text = b"func.func @main(%a: tensor<2xf32>) -> tensor<2xf32> { return %a : tensor<2xf32> }"
    importer.parse_module(text)
    with pytest.raises(InvalidArgumentError, match="neither a StableHLO portable artifact"):
        importer.parse_module(text.replace(b"func.func", b"func.fu\xffnc"))


def test_without_fork_a_fresh_interpreter_answers(program, monkeypatch) -> None:
    def no_fork():
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", no_fork)
    _, code, _ = program
    importer.parse_module(_unchecked(code, b"LAYER"))  # read there, answered, read here
    # Which corrupt artifacts crash the reader depends on the process, so the crash is ours.
    with pytest.raises(InvalidArgumentError, match=r"jaxlib's reader crashed \(SIGSEGV\) in a "
                                                   r"child process"):
        reader_check.read_in_child(b"ML\xefR", _crash_noisily,
                                   "tests.test_robust_reader:_crash_noisily")


def _hang(code: bytes) -> None:
    time.sleep(60)


def _crash_noisily(code: bytes) -> None:
    print("noise from the child", flush=True)
    os.write(1, b"noise from the child\n")  # what C code in the reader would print
    os.write(2, b"noise from the child\n")
    os.kill(os.getpid(), signal.SIGSEGV)


@pytest.mark.parametrize("read, what", [
    (_hang, r"timed out after 0\.3 s, twice"),
    (_crash_noisily, r"crashed \(SIGSEGV\)"),
    (lambda code: os._exit(3), r"stopped without an answer \(exit status 3\)"),
])
def test_a_child_that_hangs_or_dies_is_an_error(read, what, monkeypatch, capfd) -> None:
    monkeypatch.setenv(reader_check.TIMEOUT_ENV, "0.3")
    code = f"ML\xefR {what}".encode()  # bytes of its own for each case: none is remembered
    with pytest.raises(InvalidArgumentError, match=r"^\[import\] the StableHLO bytecode \(\d+ "
                       r"bytes\) could not be read: jaxlib's reader " + what):
        reader_check.read_in_child(code, read, "unused:unused")
    assert "noise" not in "".join(capfd.readouterr())  # the child's output goes nowhere
