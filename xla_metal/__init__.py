"""xla-metal: a JAX backend for Apple-silicon GPUs, running StableHLO on MLX."""

__version__ = "0.1.0"
