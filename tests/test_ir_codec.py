"""The compiled program in a serialized executable (compiler/ir_codec.py): every program
round-trips unchanged (tests/direct.py checks each one the op tables compile), and bytes
that are not an encoding are refused with InvalidArgumentError, never run as anything else."""

from __future__ import annotations

import json
import struct

import jax
import jax.numpy as jnp
import ml_dtypes
import mlx.core as mx
import numpy as np
import pytest

from tests.direct import artifact, assert_round_trips, run_direct
from xla_metal.compiler import compile_program, ir, ir_codec, plan_program
from xla_metal.errors import InvalidArgumentError
from xla_metal.runtime.dtypes import to_mlx, to_numpy


def _module(fn, *args) -> ir.Module:
    return compile_program(artifact(fn, *args)).module


def _scan(c, xs):
    return jax.lax.scan(lambda h, x: (jnp.tanh(h * x), h.sum()), c, xs)


@pytest.mark.parametrize("fn, args", [
    (lambda x: x * 2 + 1, (np.ones(3, np.float32),)),
    # constants of every storage kind: bfloat16, int4, complex, bool, NaN and infinities
    (lambda x: (x + jnp.array([1.5, np.nan, np.inf], ml_dtypes.bfloat16),
                jnp.array([1, -2, 7], ml_dtypes.int4), jnp.array([1 + 2j], np.complex64),
                jnp.array([True, False])), (np.ones(3, ml_dtypes.bfloat16),)),
    (_scan, (np.ones(4, np.float32), np.ones((5, 4), np.float32))),         # regions, loops
    (lambda p, x: jax.lax.cond(p, jnp.sin, jnp.cos, x), (True, np.ones(2, np.float32))),
    (lambda a, b: a @ b, (np.ones((2, 3), np.float32), np.ones((3, 4), np.float32))),
    (lambda x, i: x[i], (np.ones((5, 3), np.float32), np.array([4, 0], np.int32))),
    (lambda x, i: x.at[i].add(1.0), (np.ones((5, 3), np.float32), np.array([4, 0]))),
    (lambda x, k: jax.lax.conv(x, k, (1, 1), "SAME"),
     (np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32))),
], ids=["elementwise", "constants", "scan", "cond", "dot", "gather", "scatter", "conv"])
def test_programs_round_trip_and_run_the_same(fn, args) -> None:
    module = _module(fn, *args)
    assert_round_trips(module)
    decoded = plan_program(ir_codec.decode(ir_codec.encode(module) or b""))
    flat = [np.asarray(a) for a in args]
    got = [to_numpy(o) for o in decoded.entry()(*[to_mlx(a, a.dtype.name) for a in flat])]
    want = run_direct(fn, *args)
    for w, g in zip(want, got, strict=True):
        assert w.dtype == g.dtype and w.shape == g.shape
        assert w.tobytes() == g.tobytes()  # bit for bit (bfloat16 NaN compares unequal)


def test_a_value_outside_the_format_leaves_the_program_unencoded() -> None:
    module = _module(lambda x: x * 2, np.ones(3, np.float32))
    next(ir.walk(module.main.body)).attrs["odd"] = np.float32(1.0)  # a numpy scalar
    assert ir_codec.encode(module) is None


def _doc(fn=lambda x: x * 2 + 1) -> tuple[list, bytes]:
    data = ir_codec.encode(_module(fn, np.ones(3, np.float32)))
    assert data
    (length,) = struct.unpack_from("<I", data)
    return json.loads(data[4:4 + length]), data[4 + length:]


def _bytes(doc, raw: bytes = b"") -> bytes:
    text = json.dumps(doc).encode()
    return struct.pack("<I", len(text)) + text + raw


def _first_op(doc) -> list:
    return doc[1][0][5][1][0]  # functions -> first -> body -> ops -> first


@pytest.mark.parametrize("mutate, message", [
    (lambda d: _first_op(d).__setitem__(0, "os.system"), "operation 'os.system'"),
    (lambda d: _first_op(d).__setitem__(1, [99]), "an operand before its value"),
    (lambda d: _first_op(d)[2][0][0].__setitem__(2, "object"), "element type 'object'"),
    (lambda d: _first_op(d).__setitem__(3, {"{": [["k", {"d": ["Popen", []]}]]}),
     "attribute class 'Popen'"),
    (lambda d: _first_op(d).__setitem__(3, {"{": [["k", {"a": ["float32", [4], 0, 16]}]]}),
     "an array's bytes"),
    (lambda d: _first_op(d).__setitem__(3, {"{": [["k", {"a": ["float32", [3], 0, 16]}]]}),
     "an array's bytes"),
    (lambda d: _first_op(d).__setitem__(3, {"{": [[{"[": []}, 1]]}), "TypeError"),
    (lambda d: _first_op(d).__setitem__(3, {"eval": "1"}), "attribute tag 'eval'"),
    (lambda d: _first_op(d).__setitem__(5, 7), "a location"),
    (lambda d: d.__setitem__(1, [d[1][0], d[1][0]]), "two functions of one name"),
    (lambda d: d.__setitem__(0, "nowhere"), "entry function"),
], ids=["op", "operand", "dtype", "class", "array-size", "array-bytes", "key", "tag", "loc",
        "duplicate", "entry"])
def test_corrupted_programs_are_refused(mutate, message: str) -> None:
    doc, raw = _doc()
    mutate(doc)
    with pytest.raises(InvalidArgumentError, match=message):
        plan_program(ir_codec.decode(_bytes(doc, raw)))


def test_hostile_nesting_and_truncation_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^\[deserialize\] "):
        ir_codec.decode(_bytes(json.loads("[" * 50 + "]" * 50)))
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(InvalidArgumentError, match=r"^\[deserialize\] "):
        ir_codec.decode(struct.pack("<I", len(deep)) + deep)
    data = ir_codec.encode(_module(lambda x: x * 2 + 1, np.ones(3, np.float32))) or b""
    for length in range(0, len(data), 7):
        with pytest.raises(InvalidArgumentError, match=r"^\[deserialize\] "):
            ir_codec.decode(data[:length])


def test_every_byte_changed_is_refused_or_still_a_program() -> None:
    # Checksums guard a blob; this is what the decoder alone does with any edited byte: a
    # clean refusal, or a program that runs or fails with a Python error (which the PJRT
    # boundary hands to the caller as an error) -- never a crash.
    data = ir_codec.encode(_module(lambda x: jnp.sin(x) * 2 + 1, np.ones(3, np.float32)))
    assert data
    x = to_mlx(np.ones(3, np.float32), "float32")
    outcomes = {"refused": 0, "ran": 0, "failed running": 0}
    for position in range(4, len(data)):
        for byte in b'09"[-':
            edited = bytearray(data)
            edited[position] = byte
            try:
                program = plan_program(ir_codec.decode(bytes(edited)))
            except InvalidArgumentError:
                outcomes["refused"] += 1
                continue
            try:
                mx.eval(program.entry()(x))
                outcomes["ran"] += 1
            except Exception:
                outcomes["failed running"] += 1
    assert outcomes["refused"] > outcomes["ran"] > 0, outcomes
