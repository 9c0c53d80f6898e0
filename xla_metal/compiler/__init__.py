"""The compiler: program bytes -> program IR -> passes -> an executable Program on MLX."""

from __future__ import annotations

from . import lowering  # noqa: F401  (registers every rule)
from .importer import import_module
from .passes import run_pipeline
from .plan import Program


def compile_program(code: bytes, platform: str = "cpu", verify_each: bool = False) -> Program:
    """Compiles a StableHLO program for an MLX device ('cpu' or 'gpu')."""
    module = run_pipeline(import_module(code), verify_each=verify_each)
    return Program(module, platform)
