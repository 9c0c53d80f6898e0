"""'metal' lowering rules for JAX's linear-algebra primitives (JAX lowers them only for the
platforms it knows)."""

from __future__ import annotations


def register() -> None:
    """Registers the rules with JAX; called once from `initialize`."""
