"""Errors the backend raises. Each carries the PJRT error code the C++ surface reports."""

from __future__ import annotations


class XlaMetalError(Exception):
    code = 13  # PJRT_Error_Code_INTERNAL


class InvalidArgumentError(XlaMetalError):
    code = 3


class ResourceExhaustedError(XlaMetalError):
    code = 8


class FailedPreconditionError(XlaMetalError):
    code = 9


class UnimplementedError(XlaMetalError):
    code = 12


def pjrt_code(exc: BaseException) -> int:
    """The PJRT error code for any exception: ours carry one; MLX's memory errors are 8."""
    if isinstance(exc, XlaMetalError):
        return exc.code
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return ResourceExhaustedError.code
    if isinstance(exc, (ValueError, TypeError)):
        return InvalidArgumentError.code
    return XlaMetalError.code
