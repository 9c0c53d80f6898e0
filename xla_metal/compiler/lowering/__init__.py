"""Lowering rules, one module per family; importing this package registers them all."""

from . import elementwise, structure  # noqa: F401
from .registry import get_rule, lowering, register_lowering, registered_ops  # noqa: F401
