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
