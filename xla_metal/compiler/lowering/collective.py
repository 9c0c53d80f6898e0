"""Collectives of a program that runs on one device (pmap or shard_map over one device).

This backend exposes one device, so every replica group must hold exactly one participant:
the reduction of one value is that value, gathering or scattering one shard is that shard,
and the replica and partition ids are 0. A group of more than one participant is an error
that names it (it would need a device this client does not have).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlx.core as mx
import numpy as np

from ...errors import UnimplementedError
from ..ir import Op, Operation
from .registry import lowering, register_check


def _check_one_participant(op: Operation) -> None:
    groups = op.attrs.get("replica_groups")
    sizes = np.asarray(groups).reshape(-1, np.asarray(groups).shape[-1]).shape[1] \
        if groups is not None and np.asarray(groups).size else 1
    if sizes > 1:
        raise UnimplementedError(f"[{op.op.value}] replica groups of {sizes} devices; metal "
                                 f"runs a program on one device{op.where()}")


for _op in (Op.ALL_REDUCE, Op.ALL_GATHER, Op.REDUCE_SCATTER):
    register_check(_op, _check_one_participant)


@lowering(Op.ALL_REDUCE, Op.ALL_GATHER, Op.REDUCE_SCATTER)
def _one_participant(ctx, op: Operation, *args: mx.array) -> Sequence[Any]:
    return list(args)


@lowering(Op.REPLICA_ID, Op.PARTITION_ID)
def _id_zero(ctx, op: Operation) -> Sequence[Any]:
    return [mx.array(0, dtype=mx.uint32)]
