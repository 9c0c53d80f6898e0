"""The memory kinds of the 'metal' device, as JAX names them.

MLX has one pool of memory (host memory on Linux, unified memory on Apple silicon), so the
host kinds are that same memory under the names JAX's host-offload API uses, as on XLA's CPU
backend: a value moved between kinds is the same value, and the kind is a label JAX reads back
(`x.sharding.memory_kind`). The position in MEMORY_KINDS is the memory's id in the C++ surface
(MemoryId in xla_metal/pjrt/internal.h).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import UnimplementedError

MEMORY_KINDS = ("device", "pinned_host", "unpinned_host")
DEFAULT_MEMORY_KIND = "device"


def memory_id(kind: str, where: str) -> int:
    """The id of memory kind `kind`; an error naming `where` for a kind 'metal' lacks."""
    try:
        return MEMORY_KINDS.index(kind)
    except ValueError:
        raise UnimplementedError(f"[memory] {where} asks for memory kind '{kind}'; metal has "
                                 f"{', '.join(MEMORY_KINDS)}") from None


def result_memory_ids(result_attrs: Sequence[dict[str, Any]], num_results: int) -> list[int]:
    """Per result of a program's entry function, the id of the memory it lands in: the kind
    JAX wrote on it (`mhlo.memory_kind`, from out_shardings), else 'device'."""
    ids = []
    for i in range(num_results):
        attrs = result_attrs[i] if i < len(result_attrs) else {}
        kind = attrs.get("mhlo.memory_kind", DEFAULT_MEMORY_KIND)
        ids.append(memory_id(str(kind), f"result {i} of the program"))
    return ids
