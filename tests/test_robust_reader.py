"""Corrupt StableHLO bytecode through the real PJRT path: a clean error, never a crash or hang.

jaxlib's bytecode reader segfaults, aborts or loops forever on some corrupt portable artifacts;
program bytes are read in a separate reader process, never in this one (xla_metal/reader).
Here the artifact JAX hands the plugin for a real jitted function is bit-flipped at FLIPS
positions spread over the whole of it and truncated at TRUNCATIONS lengths (fixed seed), and
each goes through PJRT_Executable_DeserializeAndLoad in this process, through JAX's client.
(Compiling it through JAX would not do: JAX reads the bytes itself before the plugin sees
them.) Each must be a clean error or compile and run.

The reader process itself (crash, hang, garbage, restart, threads, forks, exit) is tested
with a reader that misbehaves on request (tests/reader_misbehaving.py).

    python -m pytest -q -s tests/test_robust_reader.py    # prints the outcomes and timings
"""

from __future__ import annotations

import collections
import importlib.util
import os
import random
import re
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.concurrently import run_in_threads
from xla_metal.compiler import importer
from xla_metal.errors import FailedPreconditionError, InvalidArgumentError
from xla_metal.reader import client
from xla_metal.runtime import hlo_program, serialization

SEED = 20261122
FLIPS = 300
TRUNCATIONS = 30
# A corrupt artifact that hangs the reader costs one of these, or two when the reader that hung
# had read other programs before (the program is then asked once more of a fresh reader).
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
    code, _ = serialization.load(serialized[start:], _platform(metal))
    assert b"layer.py" in code and b"test_robust" not in code
    return serialized[:start], code, (x, w)


def _platform(metal: jax.Device) -> str:
    """The MLX device our executables are written for: 'cpu' here, 'gpu' on a GPU machine."""
    return "cpu" if metal.device_kind == "MLX CPU" else "gpu"


def _deserialize(metal: jax.Device, prefix: bytes, code: bytes):
    # valid checksums, corrupt bytes, and no compiled IR: loading it reads the StableHLO
    blob = prefix + serialization.dump(code, _platform(metal))
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
    monkeypatch.setenv(client.TIMEOUT_ENV, TIMEOUT_S)
    prefix, code, args = program
    checks: list[float] = []  # seconds per round trip to a reader that answered
    ask = client._Reader.ask

    def timed(self, *a):
        ready = self.ready
        begin = time.perf_counter()
        answer = ask(self, *a)
        if ready:  # not the first request of a reader: that one also waits for it to start
            checks.append(time.perf_counter() - begin)
        return answer

    monkeypatch.setattr(client._Reader, "ask", timed)
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
            elif "that is not UTF-8" in message:  # read without harm there, walked here: fatal
                outcomes["clean error: a string that is not UTF-8"] += 1
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
          f"round trip of a new program: median {statistics.median(checks) * 1e3:.1f} ms, "
          f"max {max(checks) * 1e3:.1f} ms ({len(checks)} round trips)")
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


def _requests(monkeypatch) -> list[bytes]:
    """The payloads sent to reader processes from now on."""
    sent: list[bytes] = []
    ask = client._Reader.ask
    monkeypatch.setattr(client._Reader, "ask",
                        lambda self, tag, payload, *a: sent.append(payload) or
                        ask(self, tag, payload, *a))
    return sent


def test_each_program_is_read_once(metal, program, monkeypatch) -> None:
    prefix, code, args = program
    fresh = _unchecked(code, b"Layer")
    sent = _requests(monkeypatch)
    for _ in range(3):
        executable = _deserialize(metal, prefix, fresh)
        executable.execute(list(args))[0].block_until_ready()
        assert "tanh" in importer.module_text(fresh)  # as the plugin's program text does
        assert executable.cost_analysis()["transcendentals"] > 0  # XLA reads the answer
    assert sent == [fresh]


def test_mlir_text_is_read_there_too(monkeypatch) -> None:
    sent = _requests(monkeypatch)
    text = b"func.func @main(%a: tensor<3xf32>) -> tensor<3xf32> { return %a : tensor<3xf32> }"
    module, ctx = importer.parse_module(text)
    assert "tensor<3xf32>" in str(module)
    with pytest.raises(InvalidArgumentError, match="neither a StableHLO portable artifact"):
        importer.parse_module(text.replace(b"func.func", b"func.fu\xffnc"))
    assert len(sent) == 2


def test_hlo_protos_are_converted_there(monkeypatch) -> None:
    from jax._src.lib import _jax

    text = "func.func @main(%a: tensor<2x2xf32>) -> tensor<2x2xf32> {\n" \
           "  %0 = stablehlo.dot %a, %a : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>\n" \
           "  return %0 : tensor<2x2xf32>\n}"
    proto = _jax.mlir.mlir_module_to_xla_computation(
        text, use_tuple_args=False, return_tuple=False).as_serialized_hlo_module_proto()
    sent = _requests(monkeypatch)
    converted = hlo_program.to_stablehlo(proto, with_config=False)
    assert "stablehlo.dot_general" in importer.module_text(converted)  # upgraded there
    assert sent == [proto]  # and its answer is its own answer: not sent again
    with pytest.raises(InvalidArgumentError, match=r"^\[compile\] the 'hlo' program \(5 bytes\) "
                                                   r"is not an HloModuleProto jaxlib can convert"):
        hlo_program.to_stablehlo(b"\xff\xff\xff\xff\xff", with_config=False)


@pytest.fixture
def misbehaving(monkeypatch):
    """A reader process that misbehaves on request (tests/reader_misbehaving.py), in place
    of this process's own for the test."""
    assert importlib.util.find_spec("reader_misbehaving") is not None  # tests/ is on sys.path
    client.shutdown()
    monkeypatch.setattr(client, "SERVER_MODULE", "reader_misbehaving")
    monkeypatch.setenv(client.TIMEOUT_ENV, "0.5")
    yield
    client.shutdown()


VALID = b"func.func @main(%a: tensor<2xf32>) -> tensor<2xf32> { return %a : tensor<2xf32> }"


@pytest.mark.parametrize("word, what", [
    ("HANG", r"timed out after 0\.5 s"),
    ("CRASH", r"crashed \(SIGSEGV\)"),
    ("EXIT", r"stopped without an answer \(exit status 3\)"),
    ("GARBAGE", r"answered with something that is not an answer \(a frame tagged b'Z'\)"),
])
def test_a_reader_that_fails_is_an_error_and_is_replaced(misbehaving, word, what,
                                                         capfd) -> None:
    code = f"{word} {what}".encode()  # bytes of its own for each case: none is remembered
    with pytest.raises(InvalidArgumentError, match=r"^\[import\] the MLIR text \(\d+ bytes\) "
                       r"could not be read: jaxlib's reader " + what + r" in the reader process "
                       r"\(pid \d+\), which was stopped and replaced; this process is unharmed") \
            as error:
        client.read_program(code)
    failed = int(re.search(r"pid (\d+)", str(error.value)).group(1))
    assert not os.path.exists(f"/proc/{failed}")  # stopped and reaped: no zombie
    client.read_program(VALID + b" // " + word.encode())  # the next: a fresh reader reads it
    assert client._reader is not None and client._reader.process.pid != failed
    assert "noise" not in "".join(capfd.readouterr())  # the reader's output goes nowhere


def test_a_used_reader_that_fails_is_asked_again_fresh(misbehaving) -> None:
    client.read_program(VALID + b" // used")  # (bytes no test has read: none is remembered)
    first = client._reader
    # A reader that read other programs may have been damaged by one of them: the program is
    # not blamed until a fresh reader fails on it too.
    module = client.read_program(b"CRASH-IF-USED " + VALID)
    assert module.startswith(b"ML\xefR") and client._reader is not first
    assert first is not None and first.process.returncode == -11  # reaped: no zombie


def test_threads_share_the_reader(misbehaving) -> None:
    failures: list[BaseException] = []

    def compile_many(k: int) -> None:
        for i in range(15):
            try:
                code = VALID + b" " * (1 + 100 * k + i)
                module, ctx = importer.parse_module(code if i % 5 else b"CRASH " + code)
                assert "tensor<2xf32>" in str(module)
            except InvalidArgumentError as e:
                if i % 5 or "crashed (SIGSEGV)" not in str(e):
                    failures.append(e)
            except BaseException as e:  # noqa: BLE001 - reported below
                failures.append(e)

    run_in_threads(compile_many, [(k,) for k in range(4)])
    assert failures == []


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # the child only reads a program
def test_a_fork_of_this_process_gets_a_reader_of_its_own(misbehaving) -> None:
    client.read_program(VALID + b" // fork")
    ours = client._reader
    assert ours is not None
    pid = os.fork()
    if pid == 0:  # the child: read a program, then leave without running pytest's exit
        status = 1
        try:
            client.read_program(VALID + b" // fork, child")
            status = 0 if client._reader is not ours else 2
            client.shutdown()
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.read_program(VALID + b" // fork, parent")  # ours still answers, undisturbed
    assert client._reader is ours


def test_the_reader_leaves_with_this_process() -> None:
    script = ("from xla_metal.reader import client\n"
              f"client.read_program({VALID!r})\n"
              "print(client._reader.process.pid)\n")
    run = subprocess.run([client._python(), "-c", script], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                             p for p in __import__("sys").path if p)))
    assert run.returncode == 0, run.stderr
    reader_pid = int(run.stdout.split()[-1])
    for _ in range(50):  # it exits on the end of its requests; init reaps it
        if not os.path.exists(f"/proc/{reader_pid}") or \
                open(f"/proc/{reader_pid}/stat").read().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the reader process {reader_pid} outlived its user")


def test_a_reader_that_cannot_start_is_an_error(monkeypatch) -> None:
    client.shutdown()
    monkeypatch.setenv(client.PYTHON_ENV, "/nonexistent/python3")
    try:
        with pytest.raises(FailedPreconditionError, match=r"^\[reader\] the program reader "
                           r"process could not be started \(/nonexistent/python3: "):
            client.read_program(VALID + b" // no interpreter")
    finally:
        monkeypatch.delenv(client.PYTHON_ENV)
        client.shutdown()
    client.read_program(VALID + b" // no interpreter")  # and starts once it can
