"""rng_bit_generator: XLA's Philox4x32-10 (its DEFAULT algorithm on CPU) and Threefry2x32-20,
bit for bit.

Philox: the state is u64[2] = [key, counter]: XLA reads the 128-bit counter as (low =
state[1], high = state[0]), generates ceil(n/4) blocks of four u32 words (interleaved word by
word), and returns [key, counter + blocks]. 64-bit outputs pair words (0,1) and (2,3) of each
block.

Threefry: the state is u64[2] = [key, counter]; each element's input is counter + its
row-major index, as two u32 words (low, high), and its output the two words of
Threefry2x32(input, key). 64-bit outputs are one element per input (low word first); narrower
ones use both words, so the inputs cover half the shape along one axis (the first of even
length, else the longest; a scalar takes the first word), the two words of an input landing
side by side along that axis. The new state is [key, counter + inputs].

8- and 16-bit outputs take the low bits of one 32-bit word each (checked against XLA:CPU).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import mlx.core as mx

from ...errors import UnimplementedError
from ..ir import Op, Operation, TensorType
from .registry import lowering, register_check

_U32, _U64 = mx.uint32, mx.uint64
_TARGET = {"uint8": mx.uint8, "int8": mx.int8, "uint16": mx.uint16, "int16": mx.int16,
           "uint32": mx.uint32, "int32": mx.int32, "uint64": mx.uint64, "int64": mx.int64}
_NARROW = {1: mx.uint8, 2: mx.uint16}
_M_A, _M_B = 0xD2511F53, 0xCD9E8D57
_W_A, _W_B = 0x9E3779B9, 0xBB67AE85


def _c64(v: int) -> mx.array:
    return mx.array(v, dtype=_U64)


def _lo(x: mx.array) -> mx.array:
    return (x & mx.array(0xFFFFFFFF, dtype=_U64)).astype(_U32)


def _hi(x: mx.array) -> mx.array:
    return (x >> _c64(32)).astype(_U32)


def philox4x32(x: list[mx.array], key: list[mx.array]) -> list[mx.array]:
    k0, k1 = key
    for _ in range(10):
        p0 = x[0].astype(_U64) * mx.array(_M_A, dtype=_U64)
        p1 = x[2].astype(_U64) * mx.array(_M_B, dtype=_U64)
        x = [_hi(p1) ^ x[1] ^ k0, _lo(p1), _hi(p0) ^ x[3] ^ k1, _lo(p0)]
        k0 = k0 + mx.array(_W_A, dtype=_U32)
        k1 = k1 + mx.array(_W_B, dtype=_U32)
    return x


def _blocks(state: mx.array, n: int) -> tuple[list[mx.array], mx.array]:
    """n Philox blocks from a u64[2] state; and the new state."""
    key64, low = state[0], state[1]
    key = [_lo(key64), _hi(key64)]
    counter_low = low + mx.arange(n, dtype=_U32).astype(_U64)
    carry = (counter_low < low).astype(_U64)
    counter_high = key64 + carry
    words = [_lo(counter_low), _hi(counter_low), _lo(counter_high), _hi(counter_high)]
    out = philox4x32(words, [mx.broadcast_to(k, (n,)) for k in key])
    new_state = mx.stack([key64, low + mx.array(n, dtype=_U64)])
    return out, new_state


_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA


def _rotate_left(x: mx.array, distance: int) -> mx.array:
    return (x << mx.array(distance, dtype=_U32)) | (x >> mx.array(32 - distance, dtype=_U32))


def threefry2x32(x0: mx.array, x1: mx.array, k0: mx.array, k1: mx.array) -> list[mx.array]:
    """Threefry2x32 with 20 rounds: 5 groups of 4, the key injected after each group."""
    keys = [k0, k1, k0 ^ k1 ^ mx.array(_PARITY, dtype=_U32)]
    x0, x1 = x0 + keys[0], x1 + keys[1]
    for group in range(5):
        for distance in _ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = _rotate_left(x1, distance) ^ x0
        x0 = x0 + keys[(group + 1) % 3]
        x1 = x1 + keys[(group + 2) % 3] + mx.array(group + 1, dtype=_U32)
    return [x0, x1]


def _threefry(state: mx.array, shape: tuple[int, ...], wide: bool) -> tuple[mx.array, mx.array]:
    """(u64 bits if wide, else u32 bits, of `shape`; the new state)."""
    key64, counter = state[0], state[1]
    split = None
    if not wide and shape:
        even = [i for i, d in enumerate(shape) if d % 2 == 0]
        split = even[0] if even else max(range(len(shape)), key=lambda i: (shape[i], -i))
    inputs = list(shape)
    if split is not None:
        inputs[split] = -(-shape[split] // 2)
    n = math.prod(inputs)
    index = counter + mx.arange(n, dtype=_U64) if n else mx.zeros((0,), dtype=_U64)
    y0, y1 = threefry2x32(_lo(index), _hi(index), _lo(key64), _hi(key64))
    new_state = mx.stack([key64, counter + mx.array(n, dtype=_U64)])
    if wide:
        bits = y0.astype(_U64) | (y1.astype(_U64) << _c64(32))
        return bits.reshape(shape), new_state
    if split is None:  # a scalar: the first word
        return y0.reshape(shape), new_state
    pairs = mx.stack([y0.reshape(inputs), y1.reshape(inputs)], axis=split + 1)
    full = list(shape)
    full[split] = 2 * inputs[split]
    bits = pairs.reshape(full)
    return bits[tuple(slice(0, d) for d in shape)], new_state


def _check(op: Operation) -> None:
    algorithm = op.attrs.get("rng_algorithm", "DEFAULT")
    t = op.results[1].type
    state_t = op.operands[0].type
    assert isinstance(t, TensorType) and isinstance(state_t, TensorType)
    if algorithm not in ("DEFAULT", "PHILOX", "THREE_FRY"):
        raise UnimplementedError(f"[stablehlo.rng_bit_generator] algorithm {algorithm} is not "
                                 f"supported on metal (only DEFAULT, PHILOX and THREE_FRY)"
                                 f"{op.where()}")
    if t.dtype not in _TARGET or state_t.shape != (2,) \
            or state_t.dtype != "uint64":
        raise UnimplementedError(f"[stablehlo.rng_bit_generator] {t.dtype} bits from a "
                                 f"{state_t} state are not supported{op.where()}")


register_check(Op.RNG_BIT_GENERATOR, _check)


def _philox(state: mx.array, count: int, wide: bool) -> tuple[mx.array, mx.array]:
    """(count u64 bits if wide, else u32 bits, flat; the new state)."""
    words, new_state = _blocks(state, -(-(count * (2 if wide else 1)) // 4))
    if wide:
        words = [words[0].astype(_U64) | (words[1].astype(_U64) << _c64(32)),
                 words[2].astype(_U64) | (words[3].astype(_U64) << _c64(32))]
    return mx.stack(words, axis=1).reshape(-1)[:count], new_state


@lowering(Op.RNG_BIT_GENERATOR)
def _rng_bit_generator(ctx, op: Operation, state: mx.array) -> Sequence[Any]:
    t = op.results[1].type
    assert isinstance(t, TensorType)
    wide = t.dtype in ("uint64", "int64")
    if op.attrs.get("rng_algorithm", "DEFAULT") == "THREE_FRY":
        numbers, new_state = _threefry(state, tuple(t.shape), wide)
    else:
        numbers, new_state = _philox(state, math.prod(t.shape), wide)
    target = _TARGET[t.dtype]
    if target.size in _NARROW:
        numbers = numbers.astype(_NARROW[target.size])  # keeps the low bits
    return [new_state, numbers.view(target).reshape(t.shape)]
