"""jaxlib's MLIR reader and writer, as both the reader process (server.py) and the importer use
them: a context with every dialect JAX's programs carry, bytes -> module, module -> bytecode.

Imports only jaxlib (not jax, not MLX), so the reader process starts in about 0.3 s.
"""

from __future__ import annotations

import io
import threading

from ..errors import InvalidArgumentError

BYTECODE_MAGIC = b"ML\xefR"

_lock = threading.Lock()  # dialect and pass registration are not thread safe
_registry = None
_passes_registered = False


def new_context():
    from jaxlib.mlir import ir
    from jaxlib.mlir._mlir_libs import _jax_mlir_ext
    from jaxlib.mlir.dialects import chlo, mhlo, sdy, stablehlo

    global _registry
    with _lock:
        if _registry is None:
            _registry = ir.DialectRegistry()
            _jax_mlir_ext.register_dialects(_registry)
        ctx = ir.Context()
        ctx.append_dialect_registry(_registry)
        ctx.load_all_available_dialects()
        # JAX's programs may carry Shardy (sdy) and MHLO attributes besides StableHLO/CHLO.
        stablehlo.register_dialect(ctx)
        chlo.register_dialect(ctx)
        sdy.register_dialect(ctx)
        mhlo.register_mhlo_dialect(ctx)
    return ctx


def _is_utf8(code: bytes) -> bool:
    try:
        code.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse(code: bytes, ctx):
    """Bytes -> an MLIR module on `ctx`, or InvalidArgumentError with MLIR's reasons."""
    from jaxlib.mlir import ir
    from jaxlib.mlir.dialects import stablehlo

    errors: list[str] = []

    def collect(diagnostic) -> bool:  # MLIR's reasons, instead of lines on stderr
        try:
            errors.append(f"{diagnostic.location}: {diagnostic.message}")
        except Exception:  # noqa: BLE001 - a reason that is not UTF-8 (corrupt input)
            errors.append("(a diagnostic that is not UTF-8)")
        return True

    handler = ctx.attach_diagnostic_handler(collect)
    try:
        try:
            return stablehlo.deserialize_portable_artifact(ctx, code)
        except Exception as e:  # not a portable artifact: maybe StableHLO bytecode or text
            errors.append(str(e).splitlines()[0] if str(e) else type(e).__name__)
        if code.startswith(BYTECODE_MAGIC):
            # jaxlib's Module.parse kills the process (std::terminate) on some corrupt
            # bytecode: its error path cannot turn a diagnostic that is not UTF-8 into a
            # Python string. PJRT frontends send portable artifacts (JAX and XLA's PJRT C API
            # client serialize to one), so other bytecode is refused instead of parsed.
            errors.append("MLIR bytecode that is not a StableHLO portable artifact is not "
                          "accepted")
        elif not _is_utf8(code):
            errors.append("MLIR text must be UTF-8")
        else:
            try:
                return ir.Module.parse(code, context=ctx)
            except Exception as e:
                errors.append(str(e).splitlines()[0] if str(e) else type(e).__name__)
    finally:
        handler.detach()
    raise InvalidArgumentError(
        f"[import] the program is neither a StableHLO portable artifact nor MLIR "
        f"({len(code)} bytes): {'; '.join(errors)}")


def bytecode(module, ctx) -> bytes:
    """`module` written by MLIR's bytecode writer."""
    out = io.BytesIO()
    with ctx:
        module.operation.write_bytecode(out)
    return out.getvalue()


def upgrade_deprecated_ops(module, ctx) -> None:
    """Rewrites deprecated ops of `module` into their current forms with StableHLO's own pass
    (jaxlib's HLO -> StableHLO converter still emits `dot`, for example)."""
    from jaxlib.mlir.dialects import stablehlo
    from jaxlib.mlir.passmanager import PassManager

    global _passes_registered
    with _lock:
        if not _passes_registered:
            stablehlo.register_stablehlo_passes()
            _passes_registered = True
    with ctx:
        PassManager.parse("builtin.module(func.func(stablehlo-legalize-deprecated-ops"
                          "{fail-on-unused=false}))").run(module.operation)
