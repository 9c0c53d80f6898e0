"""xla-metal: a JAX backend for Apple-silicon GPUs, running StableHLO on MLX."""

import os

# MLX runs float32 matmuls and convolutions in TF32 where the hardware has it (NVIDIA tensor
# cores, Apple M5) unless MLX_ENABLE_TF32=0, which it reads at its first such op. JAX's results
# on its CPU backend (and with Precision.HIGHEST anywhere) are full float32: we keep that unless
# the user asked for TF32 by setting the variable. Every module of ours imports this first.
os.environ.setdefault("MLX_ENABLE_TF32", "0")

__version__ = "0.1.0"
