"""Lowering rules, one module per family; importing this package registers them all."""

from . import (  # noqa: F401
    callbacks,
    collective,
    contraction,
    control,
    elementwise,
    fused,
    linalg,
    random,
    reduction,
    shape,
    sort,
    structure,
    window,
)
from .registry import get_rule, lowering, register_lowering, registered_ops  # noqa: F401
