"""'metal' lowering rules for JAX's host callbacks (jax.debug.print/callback, pure_callback,
io_callback), which JAX lowers only for the platforms it knows."""

from __future__ import annotations


def register() -> None:
    """Registers the rules with JAX; called once from `initialize`."""
