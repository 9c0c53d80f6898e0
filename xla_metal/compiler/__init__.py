"""The compiler: program bytes -> program IR -> passes -> an executable Program on MLX."""

from __future__ import annotations

from ..errors import InvalidArgumentError, XlaMetalError
from . import lowering  # noqa: F401  (registers every rule)
from .importer import import_module
from .ir import Module
from .passes import check_dtypes, check_sizes, run_pipeline, verify
from .plan import Program


def compile_program(code: bytes, platform: str = "cpu", verify_each: bool = False) -> Program:
    """Compiles a StableHLO program for an MLX device ('cpu' or 'gpu')."""
    module = run_pipeline(import_module(code), verify_each=verify_each)
    return Program(module, platform)


def plan_program(module: Module, platform: str = "cpu") -> Program:
    """A Program for a module the passes already ran on (a serialized executable's, decoded):
    its structure, element types and sizes are checked again, as the data they came from is
    not ours to trust. Attributes are checked by the lowering rules that read them, so a rule
    failing on one is the blob's fault and says so."""
    checked = check_sizes(check_dtypes(verify(module)))
    try:
        return Program(checked, platform)
    except XlaMetalError:
        raise
    except Exception as e:
        raise InvalidArgumentError(f"[deserialize] corrupted program: planning it failed: "
                                   f"{type(e).__name__}: {str(e)[:200]}") from None
