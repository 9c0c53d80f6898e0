"""'metal' lowering rules for JAX's linear-algebra primitives.

JAX lowers some of them generically (cholesky and triangular_solve to StableHLO ops, geqrf and
householder_product to the custom_calls 'Qr' and 'ProductOfElementaryHouseholderReflectors'):
the compiler runs those as they come (xla_metal/compiler/lowering/linalg.py). The others JAX
lowers only for cpu/cuda/rocm/tpu (LAPACK, cuSOLVER, ...). For those, the rules here emit
custom_calls with our own targets, `xla_metal.<name>`, whose options travel as the
custom_call's backend_config dictionary; the compiler's linalg module runs each target. Where a
result is simplest as a composition of primitives we already run (eig's left eigenvectors),
the rule lowers a JAX function with `mlir.lower_fun`.

JAX picks a primitive's lowering by the platform names of the lowering (`'metal'` here: the
plugin's platform name); a rule registered for 'metal' takes precedence over a generic one.
`register()` runs in the plugin's `initialize`, after `register_plugin` has made 'metal' a
known platform and before any program is lowered for it.
"""

from __future__ import annotations

from typing import Any

_REGISTERED = False


def _config(values: dict[str, Any]) -> dict[str, Any]:
    """backend_config entries as MLIR attributes (bools and 32-bit ints)."""
    from jax._src.interpreters import mlir
    from jax._src.lib.mlir import ir

    out: dict[str, Any] = {}
    for name, value in values.items():
        out[name] = ir.BoolAttr.get(value) if isinstance(value, bool) else mlir.i32_attr(value)
    return out


def _custom_call(ctx, target: str, operands, avals_out, **options: Any) -> list[Any]:
    from jax._src.interpreters import mlir

    result_types = [mlir.aval_to_ir_type(ctx.module_context, aval) for aval in avals_out]
    op = mlir.custom_call(f"xla_metal.{target}", result_types=result_types,
                          operands=list(operands), backend_config=_config(options))
    return list(op.results)


def _subset(subset_by_index, size: int) -> tuple[int, int]:
    if subset_by_index is None:
        return 0, size
    lo, hi = subset_by_index
    return int(lo), int(hi)


# --------------------------------------------------------------------------------- rules


def _eigh_rule(ctx, operand, *, lower, sort_eigenvalues, subset_by_index, algorithm):
    del sort_eigenvalues, algorithm  # always sorted ascending (LAPACK's syevd/heevd)
    n = ctx.avals_in[0].shape[-1]
    lo, hi = _subset(subset_by_index, n)
    return _custom_call(ctx, "eigh", [operand], ctx.avals_out, lower=bool(lower),
                        subset_lo=lo, subset_hi=hi)


def _svd_rule(ctx, operand, *, full_matrices, compute_uv, subset_by_index, algorithm=None):
    from jax._src.interpreters import mlir
    from jax._src.lax import linalg as lax_linalg

    del algorithm  # one implementation (LAPACK through MLX)
    m, n = ctx.avals_in[0].shape[-2:]
    if m == 0 or n == 0:
        return mlir.lower_fun(lax_linalg._empty_svd, multiple_results=True)(
            ctx, operand, full_matrices=full_matrices, compute_uv=compute_uv)
    lo, hi = _subset(subset_by_index, min(m, n))
    return _custom_call(ctx, "svd", [operand], ctx.avals_out,
                        full_matrices=bool(full_matrices if full_matrices is not None
                                           else True),
                        compute_uv=bool(compute_uv), subset_lo=lo, subset_hi=hi)


def _left_eigenvectors(vr):
    """LAPACK's left eigenvectors from the right ones: the rows of vr^-1, conjugated, each
    scaled to unit 2-norm with its largest component real (geev's normalization)."""
    import jax.numpy as jnp

    vl = jnp.conj(jnp.swapaxes(jnp.linalg.inv(vr), -1, -2))
    vl = vl / jnp.linalg.norm(vl, axis=-2, keepdims=True)
    largest = jnp.argmax(jnp.abs(vl), axis=-2, keepdims=True)
    pivot = jnp.take_along_axis(vl, largest, axis=-2)
    scale = jnp.where(pivot == 0, 1, jnp.conj(pivot) / jnp.abs(pivot))
    return vl * scale


def _eig_rule(ctx, operand, *, compute_left_eigenvectors, compute_right_eigenvectors,
              enable_eigvec_derivs=False, implementation=None):
    from jax._src import core
    from jax._src.interpreters import mlir

    del enable_eigvec_derivs, implementation
    a_aval = ctx.avals_in[0]
    w_aval = ctx.avals_out[0]
    v_aval = core.ShapedArray(a_aval.shape, w_aval.dtype)
    vectors = bool(compute_left_eigenvectors or compute_right_eigenvectors)
    results = _custom_call(ctx, "eig", [operand],
                           [w_aval, v_aval] if vectors else [w_aval], vectors=vectors)
    out = [results[0]]
    if compute_left_eigenvectors:
        sub = ctx.replace(avals_in=[v_aval], avals_out=[v_aval])
        out.append(mlir.lower_fun(_left_eigenvectors, multiple_results=False)(
            sub, results[1])[0])
    if compute_right_eigenvectors:
        out.append(results[1])
    return out


def _lu_rule(ctx, operand):
    import numpy as np
    from jax._src.interpreters import mlir
    from jax._src.lax import linalg as lax_linalg

    if np.dtype(ctx.avals_in[0].dtype).kind == "c":
        # MLX's getrf takes real matrices only: JAX's own blocked LU (loops of our ops).
        return mlir.lower_fun(lax_linalg._lu_python, multiple_results=True)(ctx, operand)
    return _custom_call(ctx, "lu", [operand], ctx.avals_out)


def _lu_pivots_to_permutation_rule(ctx, pivots, *, permutation_size):
    return _custom_call(ctx, "lu_pivots_to_permutation", [pivots], ctx.avals_out,
                        permutation_size=int(permutation_size))


def _geqp3_rule(ctx, a, jpvt, *, use_magma=None):
    del use_magma
    return _custom_call(ctx, "geqp3", [a, jpvt], ctx.avals_out)


def _hessenberg_rule(ctx, a):
    return _custom_call(ctx, "hessenberg", [a], ctx.avals_out)


def _tridiagonal_rule(ctx, a, *, lower):
    return _custom_call(ctx, "tridiagonal", [a], ctx.avals_out, lower=bool(lower))


def _tridiagonal_solve_rule(ctx, dl, d, du, b, *, perturb_singular=False):
    return _custom_call(ctx, "tridiagonal_solve", [dl, d, du, b], ctx.avals_out,
                        perturb_singular=bool(perturb_singular))


def _schur_rule(ctx, operand, *, compute_schur_vectors, sort_eig_vals, select_callable):
    del select_callable
    if sort_eig_vals:
        raise NotImplementedError(
            "The sort feature of LAPACK's gees routine is not implemented.")
    avals_out = list(ctx.avals_out)
    if not compute_schur_vectors:
        avals_out = [avals_out[0], avals_out[0]]
    results = _custom_call(ctx, "schur", [operand], avals_out)
    return results if compute_schur_vectors else results[:1]


def register() -> None:
    """Registers the rules with JAX; called once from `initialize`."""
    global _REGISTERED
    if _REGISTERED:
        return
    from jax._src.interpreters import mlir
    from jax._src.lax import linalg as lax_linalg

    from . import PLATFORM

    rules: list[tuple[str, Any]] = [
        ("eigh_p", _eigh_rule),
        ("svd_p", _svd_rule),
        ("eig_p", _eig_rule),
        ("lu_p", _lu_rule),
        ("lu_pivots_to_permutation_p", _lu_pivots_to_permutation_rule),
        ("geqp3_p", _geqp3_rule),
        ("hessenberg_p", _hessenberg_rule),
        ("tridiagonal_p", _tridiagonal_rule),
        ("tridiagonal_solve_p", _tridiagonal_solve_rule),
        ("schur_p", _schur_rule),
    ]
    for name, rule in rules:
        primitive = getattr(lax_linalg, name, None)
        if primitive is not None:  # a primitive a later JAX renames is simply not covered
            mlir.register_lowering(primitive, rule, platform=PLATFORM)
    _REGISTERED = True
