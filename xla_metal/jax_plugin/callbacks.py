"""'metal' lowering rules for JAX's host callbacks (jax.debug.print/callback, pure_callback,
io_callback), which JAX lowers only for the platforms it knows.

Each rule registers the Python function to call in xla_metal.host_callbacks and emits a
custom_call to its TARGET whose backend_config is the key it got. The function object is also
given to JAX as a host callback of the lowering (ModuleContext.add_host_callback), which does
what JAX does for its own callbacks: JAX keeps it alive with the computation until it is
compiled (the executable then holds it), and JAX's persistent compilation cache never stores
a program that has one.

What the user's function receives: where JAX also has a CPU backend (the default), JAX's own
implementation of the primitive calls it, exactly as on JAX's CPU backend (arguments as CPU
jax.Arrays, failures logged by JAX); with 'metal' alone it receives numpy arrays. Results are
made numpy arrays and canonicalized the way JAX does (a Python float becomes float32 unless
x64 is on); the compiler then checks them against the declared shapes and dtypes.

Ordered effects (io_callback(ordered=True), jax.debug.print(ordered=True)) thread their
effect's token through the custom_call, as JAX's own lowering does, so JAX carries the token
from one execution to the next.

Other lowering rules (checkify's runtime checks, users' own primitives) call JAX's
emit_python_callback, which knows only JAX's platforms: for a program lowered for 'metal'
alone, `_install_emit_python_callback` makes it emit our op; elsewhere JAX's own runs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from .. import host_callbacks

PLATFORM = "metal"
logger = logging.getLogger(__name__)


def register() -> None:
    """Registers the rules with JAX; called once from `initialize`. Never raises: a JAX
    without these primitives keeps working, without callbacks on metal."""
    try:
        from jax._src import callback as jax_callback
        from jax._src import debugging
        from jax._src.interpreters import mlir

        rules: list[tuple[Any, Any]] = [
            (debugging.debug_callback_p, _debug_callback_rule),
            (debugging.debug_print_p, _debug_print_rule),
            (jax_callback.pure_callback_p, _pure_callback_rule),
            (jax_callback.io_callback_p, _io_callback_rule)]
        for primitive, rule in rules:
            mlir.register_lowering(primitive, rule, platform=PLATFORM)
        _install_emit_python_callback()
        from jax._src import checkify

        # checkify.check under jax_experimental_unsafe_xla_runtime_errors: JAX's own rule,
        # which calls emit_python_callback.
        mlir.register_lowering(checkify.check_p, checkify.check_lowering_rule,
                               platform=PLATFORM)
    except (ImportError, AttributeError, NotImplementedError) as e:
        logger.warning("xla-metal: host callbacks are not available on 'metal' with this JAX "
                       "(%s: %s)", type(e).__name__, e)


# ------------------------------------------------------------------------------- helpers


def _cpu_backend_present() -> bool:
    from jax._src import xla_bridge

    try:
        return bool(xla_bridge.local_devices(backend="cpu"))
    except RuntimeError:
        return False


def _name(function: Any) -> str:
    function = getattr(function, "callback_func", function)  # JAX's _FlatCallback
    while isinstance(function, functools.partial):
        function = function.func
    return getattr(function, "__qualname__", None) or type(function).__name__


def _numpy_results(run: Callable[..., Any]) -> Callable[..., tuple[Any, ...]]:
    """`run`'s results as a tuple of numpy arrays, canonicalized as JAX does."""
    import numpy as np
    from jax._src import dtypes

    def call(*args: Any) -> tuple[Any, ...]:
        returned = run(*args)
        if returned is None:
            return ()
        return tuple(dtypes.canonicalize_value(np.asarray(r)) for r in returned)

    return call


def _ir_types(avals: Sequence[Any]) -> list[Any]:
    from jax._src.interpreters import mlir
    from jax._src.lib.mlir import ir

    return [ir.RankedTensorType.get(list(a.shape), mlir.dtype_to_ir_type(a.dtype))
            for a in avals]


def _op_sharding(ctx: Any, sharding: Any, has_token: bool) -> Any:
    """The sharding JAX gives its own callback op (one device runs it), or None. Shardy wants
    one per result, so a token result gets one too."""
    import dataclasses

    from jax._src import callback as jax_callback
    from jax._src.sharding_impls import SdyArrayList

    op_sharding = jax_callback._callback_op_sharding(ctx.module_context.axis_context, sharding,
                                                     ctx.avals_out)
    if has_token and ctx.avals_out and isinstance(op_sharding, SdyArrayList):
        first = op_sharding.shardings[0]
        op_sharding = dataclasses.replace(op_sharding,
                                          shardings=(first, *op_sharding.shardings))
    return op_sharding


def _call_op(ctx: Any, callback: host_callbacks.HostCallback, operands: Sequence[Any],
             result_avals: Sequence[Any], *, token: Any, has_side_effect: bool,
             op_sharding: Any) -> tuple[list[Any], Any]:
    """Emits the custom_call to `callback`: (its results, the token out or None). A `token`
    in is threaded through the call; `op_sharding` annotates the op."""
    from jax._src.interpreters import mlir

    ctx.module_context.add_host_callback(callback)
    operands = list(operands)
    result_types = _ir_types(result_avals)
    if token is not None:
        operands = [token, *operands]
        result_types = [mlir.token_type(), *result_types]
    call = mlir.custom_call(host_callbacks.TARGET, result_types=result_types,
                            operands=operands, backend_config=callback.key,
                            has_side_effect=has_side_effect)
    if op_sharding is not None:
        mlir.set_sharding(ctx.module_context, call, op_sharding)
    results = list(call.results)
    token_out = results.pop(0) if token is not None else None
    return results, token_out


def _emit(ctx: Any, run: Callable[..., Any], name: str, args: Sequence[Any], *,
          has_side_effect: bool, effect: Any = None, op_sharding: Any = None) -> list[Any]:
    """Registers `run` and emits the op that calls it; returns its results. An ordered
    `effect` threads that effect's token through the call."""
    from jax._src import effects
    from jax._src.interpreters import mlir

    callback = host_callbacks.register(run, name)
    ordered = effect is not None and effects.ordered_effects.contains(effect)
    results, token = _call_op(ctx, callback, args, ctx.avals_out,
                              token=ctx.tokens_in.get(effect) if ordered else None,
                              has_side_effect=has_side_effect, op_sharding=op_sharding)
    if ordered:
        ctx.set_tokens_out(ctx.tokens_in.update_tokens(mlir.TokenSet({effect: token})))
    return results


def _install_emit_python_callback() -> None:
    """Lowering rules outside JAX's callback primitives (checkify's runtime checks, users'
    own primitives) call JAX's `emit_python_callback`, which refuses platforms JAX does not
    know. For a program lowered for 'metal' alone it emits our op instead; for any other
    platform JAX's own function runs, unchanged."""
    from jax._src import callback as jax_callback
    from jax.interpreters import mlir as public_mlir

    original = jax_callback.emit_python_callback
    if getattr(original, "_xla_metal", False):
        return

    def emit_python_callback(ctx: Any, callback: Any, token: Any, operands: Sequence[Any],
                             operand_avals: Sequence[Any], result_avals: Sequence[Any], *,
                             has_side_effect: bool, returns_token: bool = True,
                             partitioned: bool = False, sharding: Any = None) -> Any:
        if tuple(ctx.module_context.platforms) != (PLATFORM,):
            return original(ctx, callback, token, operands, operand_avals, result_avals,
                            has_side_effect=has_side_effect, returns_token=returns_token,
                            partitioned=partitioned, sharding=sharding)
        host = host_callbacks.register(_numpy_results(callback),
                                       f"python callback {_name(callback)}")
        results, token_out = _call_op(ctx, host, operands, result_avals, token=token,
                                      has_side_effect=has_side_effect, op_sharding=sharding)
        return results, token_out, host

    emit_python_callback._xla_metal = True  # type: ignore[attr-defined]
    jax_callback.emit_python_callback = emit_python_callback
    public_mlir.emit_python_callback = emit_python_callback  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------- rules


def _debug_callback_rule(ctx: Any, *args: Any, callback: Any, effect: Any, partitioned: bool,
                         name: str | None = None, **params: Any) -> list[Any]:
    from jax._src import debugging

    if _cpu_backend_present():
        def run(*host_args: Any) -> tuple[()]:
            debugging.debug_callback_p.impl(*host_args, callback=callback, effect=effect,
                                            partitioned=partitioned, **params)
            return ()
    else:
        def run(*host_args: Any) -> tuple[()]:
            callback(*host_args)
            return ()
    label = name or f"jax.debug.callback({_name(callback)})"
    return _emit(ctx, run, label, args, has_side_effect=True, effect=effect)


def _debug_print_rule(ctx: Any, *args: Any, fmt: str, ordered: bool, partitioned: bool,
                      in_tree: Any, static_args: Any, np_printoptions: Any,
                      has_placeholders: bool, logging_record: Any) -> list[Any]:
    from jax._src import debugging

    # The same formatting function JAX's own lowering builds for jax.debug.print.
    formatter = functools.partial(debugging._format_print_callback, fmt, dict(np_printoptions),
                                  has_placeholders, logging_record)
    flat = debugging._make_flat_callback(in_tree, formatter, static_args)
    effect = debugging.ordered_debug_effect if ordered else debugging.debug_effect
    return _debug_callback_rule(ctx, *args, callback=flat, effect=effect,
                                partitioned=partitioned, name=f"jax.debug.print({fmt!r})")


def _pure_callback_rule(ctx: Any, *args: Any, callback: Any, sharding: Any,
                        result_avals: Any, vmap_method: Any, **params: Any) -> list[Any]:
    from jax._src import callback as jax_callback

    if _cpu_backend_present():
        run = functools.partial(jax_callback.pure_callback_impl, callback=callback,
                                sharding=None, result_avals=result_avals,
                                vmap_method=vmap_method, **params)
    else:
        run = callback
    return _emit(ctx, _numpy_results(run), f"jax.pure_callback({_name(callback)})", args,
                 has_side_effect=False, op_sharding=_op_sharding(ctx, sharding, False))


def _io_callback_rule(ctx: Any, *args: Any, callback: Any, sharding: Any, result_avals: Any,
                      ordered: bool, **params: Any) -> list[Any]:
    from jax._src import callback as jax_callback

    if _cpu_backend_present():
        run = functools.partial(jax_callback.io_callback_impl, callback=callback,
                                sharding=None, result_avals=result_avals, ordered=ordered,
                                **params)
    else:
        run = callback
    effect = jax_callback._OrderedIOEffect if ordered else jax_callback._IOEffect
    kind = "io_callback(ordered=True)" if ordered else "io_callback"
    return _emit(ctx, _numpy_results(run), f"jax.experimental.{kind}({_name(callback)})", args,
                 has_side_effect=True, effect=effect,
                 op_sharding=_op_sharding(ctx, sharding, ordered))
