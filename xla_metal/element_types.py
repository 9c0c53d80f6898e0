"""Element type names of the program IR (numpy-style) and their numpy dtypes.

A leaf module (numpy and ml_dtypes only) so that the importer, the passes and the runtime can
all use it without importing one another.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype for an IR dtype name (ml_dtypes supplies bfloat16, float8, int4)."""
    if hasattr(ml_dtypes, name):
        return np.dtype(getattr(ml_dtypes, name))
    return np.dtype(name)


# ml_dtypes' sub-byte integers report numpy kind 'V'; their names say what they are.
_NARROW_INT_BITS = {"int4": 4, "uint4": 4, "int2": 2, "uint2": 2}


def kind(name: str) -> str:
    """'b' bool, 'i' signed, 'u' unsigned, 'f' float, 'c' complex."""
    if name == "bool":
        return "b"
    if name.startswith(("float", "bfloat")):
        return "f"
    if name in _NARROW_INT_BITS:
        return "u" if name.startswith("u") else "i"
    return numpy_dtype(name).kind


def bit_width(name: str) -> int:
    """Bits of one element (a float4 or int4 is 4 bits, though it occupies a byte)."""
    if name in _NARROW_INT_BITS:
        return _NARROW_INT_BITS[name]
    if name.startswith("float4"):
        return 4
    return numpy_dtype(name).itemsize * 8
