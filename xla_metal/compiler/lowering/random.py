"""rng_bit_generator: XLA's Philox4x32-10 (its DEFAULT algorithm on CPU), bit for bit.

The state is u64[2] = [key, counter]: XLA reads the 128-bit counter as (low = state[1],
high = state[0]), generates ceil(n/4) blocks of four u32 words (interleaved word by word),
and returns [key, counter + blocks]. 64-bit outputs pair words (0,1) and (2,3) of each block;
8- and 16-bit outputs take the low bits of one word each (checked against XLA:CPU).
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


def _check(op: Operation) -> None:
    algorithm = op.attrs.get("rng_algorithm", "DEFAULT")
    t = op.results[1].type
    state_t = op.operands[0].type
    assert isinstance(t, TensorType) and isinstance(state_t, TensorType)
    if algorithm not in ("DEFAULT", "PHILOX"):
        raise UnimplementedError(f"[stablehlo.rng_bit_generator] algorithm {algorithm} is not "
                                 f"supported on metal (only DEFAULT/PHILOX){op.where()}")
    if t.dtype not in _TARGET or state_t.shape != (2,) \
            or state_t.dtype != "uint64":
        raise UnimplementedError(f"[stablehlo.rng_bit_generator] {t.dtype} bits from a "
                                 f"{state_t} state are not supported{op.where()}")


register_check(Op.RNG_BIT_GENERATOR, _check)


@lowering(Op.RNG_BIT_GENERATOR)
def _rng_bit_generator(ctx, op: Operation, state: mx.array) -> Sequence[Any]:
    t = op.results[1].type
    assert isinstance(t, TensorType)
    count = math.prod(t.shape)
    wide = t.dtype in ("uint64", "int64")
    n = -(-(count * (2 if wide else 1)) // 4)
    words, new_state = _blocks(state, n)
    if wide:
        pairs = [words[0].astype(_U64) | (words[1].astype(_U64) << _c64(32)),
                 words[2].astype(_U64) | (words[3].astype(_U64) << _c64(32))]
        numbers = mx.stack(pairs, axis=1).reshape(-1)[:count]
    else:
        numbers = mx.stack(words, axis=1).reshape(-1)[:count]
    target = _TARGET[t.dtype]
    if target.size in _NARROW:
        numbers = numbers.astype(_NARROW[target.size])  # keeps the low bits
    return [new_state, numbers.view(target).reshape(t.shape)]
