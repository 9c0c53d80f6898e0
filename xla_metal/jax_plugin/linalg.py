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
    from jax._src.interpreters import mlir

    del select_callable
    if sort_eig_vals:
        raise NotImplementedError(
            "The sort feature of LAPACK's gees routine is not implemented.")

    def schur(a):
        t, q = _schur_batched(a)
        return [t, q] if compute_schur_vectors else [t]

    return mlir.lower_fun(schur, multiple_results=True)(ctx, operand)


def _schur_batched(a):
    import jax

    fn = _schur_matrix
    for _ in range(a.ndim - 2):
        fn = jax.vmap(fn)
    return fn(a)


def _schur_matrix(a):
    """Schur decomposition a = q t q^H of one matrix, as LAPACK's gees leaves it: for complex
    a, t upper triangular; for real a, the real Schur form (upper quasi-triangular, each 2x2
    diagonal block in standard form [[x, b], [c, x]] with b*c < 0, holding a pair of complex
    conjugate eigenvalues). Hessenberg reduction (our gehrd), then shifted QR iterations on
    the active window, each an explicit QR (single Wilkinson shift for complex, Francis'
    double shift for real) driven by a while loop, with deflation of negligible subdiagonal
    entries (|h[k+1,k]| <= eps (|h[k,k]| + |h[k+1,k+1]|)). NaN if it does not converge in
    30 n iterations (as JAX's CPU backend reports LAPACK's failure)."""
    import jax.numpy as jnp
    import numpy as np
    from jax import lax
    from jax._src.lax import linalg as lax_linalg

    n = a.shape[-1]
    dtype = a.dtype
    real = not jnp.issubdtype(dtype, jnp.complexfloating)
    eye = jnp.eye(n, dtype=dtype)
    if n <= 1:
        return a, eye
    h, taus = lax_linalg.hessenberg(a)
    q = jnp.zeros_like(a).at[0, 0].set(1)
    q = q.at[1:, 1:].set(lax_linalg.householder_product(h[1:, :-1], taus))
    h = jnp.triu(h, -1)
    eps = float(np.finfo(np.dtype(dtype)).eps)
    idx = jnp.arange(n)
    max_iterations = 30 * max(n, 10)

    def zero_small(h):
        d = jnp.abs(jnp.diagonal(h))
        sub = jnp.diagonal(h, -1)
        small = jnp.abs(sub) <= eps * (d[:-1] + d[1:])
        mask = (idx[:, None] == idx[None, :] + 1) & jnp.concatenate(
            [jnp.zeros((1,), bool), small])[:, None]
        return jnp.where(mask, 0, h)

    def cond(state):
        _, _, hi, it, _ = state
        return (hi > 0) & (it < max_iterations)

    def body(state):
        h, q, hi, it, since = state
        h = zero_small(h)
        sub = jnp.concatenate([jnp.ones((1,), dtype), jnp.diagonal(h, -1)])  # sub[k]=h[k,k-1]
        if real:
            one = sub[hi] == 0
            two = (hi == 1) | (sub[jnp.maximum(hi - 1, 0)] == 0)
            new_hi = jnp.where(one, hi - 1, jnp.where(two, hi - 2, hi))
        else:
            new_hi = jnp.where(sub[hi] == 0, hi - 1, hi)
        deflated = new_hi < hi
        since = jnp.where(deflated, 0, since + 1)
        hi = jnp.maximum(new_hi, 0)
        lo = jnp.max(jnp.where((idx <= hi) & (sub == 0), idx, 0))
        window = (idx >= lo) & (idx <= hi)
        size = hi - lo + 1
        w2 = window[:, None] & window[None, :]
        hw = jnp.where(w2, h, 0)
        k = jnp.maximum(hi - 1, 0)
        x, y = h[k, k], h[k, hi]
        z, w = h[hi, k], h[hi, hi]
        exceptional = since % 11 == 10
        if real:
            s = x + w
            t = x * w - y * z
            ex = jnp.abs(h[hi, k]) + jnp.abs(h[k, jnp.maximum(k - 1, 0)])
            s = jnp.where(exceptional, 2 * (w + 0.75 * ex), s)
            t = jnp.where(exceptional, (w + 0.75 * ex) ** 2 + ex * ex, t)
            m = hw @ hw - s * hw + t * jnp.where(w2, eye, 0)
            active = size > 2
        else:
            half = (x - w) / 2
            root = jnp.sqrt(half * half + y * z)
            mu1, mu2 = (x + w) / 2 + root, (x + w) / 2 - root  # the eigenvalues of the 2x2
            mu = jnp.where(jnp.abs(mu1 - w) <= jnp.abs(mu2 - w), mu1, mu2)
            mu = jnp.where(exceptional, w + jnp.abs(h[hi, k]), mu)
            m = hw - mu * jnp.where(w2, eye, 0)
            active = size > 1
        m = jnp.where(w2 & active, m, eye)
        qs, _ = jnp.linalg.qr(m)
        qs = jnp.where(w2 & active, qs, eye)
        h = jnp.conj(qs.T) @ h @ qs
        q = q @ qs
        return h, q, hi, it + 1, since

    state = (h, q, jnp.asarray(n - 1), jnp.asarray(0), jnp.asarray(0))
    h, q, hi, _, _ = lax.while_loop(cond, body, state)
    h = zero_small(h)
    if real:
        h, q = _standardize_blocks(h, q)
        t = jnp.triu(h, -1)
    else:
        t = jnp.triu(h)
    ok = hi <= 0
    return jnp.where(ok, t, jnp.nan), jnp.where(ok, q, jnp.nan)


def _standardize_blocks(h, q):
    """LAPACK's dlanv2 on every 2x2 diagonal block of a real quasi-triangular h (blocks are
    where h[k+1, k] != 0): a rotation that makes a block with real eigenvalues upper
    triangular, and one with complex eigenvalues [[x, b], [c, x]] with b*c < 0; applied to h
    (both sides) and to the Schur vectors q."""
    import jax.numpy as jnp

    n = h.shape[-1]
    eps = float(jnp.finfo(h.dtype).eps)
    a, b = jnp.diagonal(h)[:-1], jnp.diagonal(h, 1)
    c, d = jnp.diagonal(h, -1), jnp.diagonal(h)[1:]
    block = c != 0
    sign = lambda v: jnp.where(v < 0, -1.0, 1.0).astype(h.dtype)  # noqa: E731

    # general case of dlanv2
    temp = a - d
    p = 0.5 * temp
    bcmax = jnp.maximum(jnp.abs(b), jnp.abs(c))
    bcmis = jnp.minimum(jnp.abs(b), jnp.abs(c)) * sign(b) * sign(c)
    scale = jnp.maximum(jnp.maximum(jnp.abs(p), bcmax), jnp.finfo(h.dtype).tiny)
    z = p / scale * p + bcmax / scale * bcmis
    real_pair = z >= 4 * eps
    # real eigenvalues: z = p + sign(p) sqrt(scale) sqrt(z); rotation (z, c) / |(z, c)|
    zr = p + sign(p) * jnp.sqrt(scale) * jnp.sqrt(jnp.maximum(z, 0))
    taur = jnp.hypot(c, zr)
    taur = jnp.where(taur == 0, 1, taur)
    cs_r, sn_r = zr / taur, c / taur
    # complex (or nearly equal real) eigenvalues: make the diagonal equal
    sigma = b + c
    tauc = jnp.hypot(sigma, temp)
    tauc = jnp.where(tauc == 0, 1, tauc)
    cs_c = jnp.sqrt(0.5 * (1 + jnp.abs(sigma) / tauc))
    sn_c = -(p / (tauc * cs_c)) * sign(sigma)
    # after that rotation, b and c of the block; same signs mean real eigenvalues after all
    aa, bb = a * cs_c + b * sn_c, -a * sn_c + b * cs_c
    cc, dd = c * cs_c + d * sn_c, -c * sn_c + d * cs_c
    b2 = bb * cs_c + dd * sn_c
    c2 = -aa * sn_c + cc * cs_c
    same = (b2 != 0) & (c2 != 0) & (sign(b2) == sign(c2))
    sab, sac = jnp.sqrt(jnp.abs(b2)), jnp.sqrt(jnp.abs(c2))
    tau2 = 1 / jnp.sqrt(jnp.maximum(jnp.abs(b2 + c2), jnp.finfo(h.dtype).tiny))
    cs1, sn1 = sab * tau2, sac * tau2
    cs_s, sn_s = cs_c * cs1 - sn_c * sn1, cs_c * sn1 + sn_c * cs1
    b_zero = (b2 == 0) & (c2 != 0)  # swap rows and columns
    cs_c2 = jnp.where(same, cs_s, jnp.where(b_zero, -sn_c, cs_c))
    sn_c2 = jnp.where(same, sn_s, jnp.where(b_zero, cs_c, sn_c))
    cs = jnp.where(real_pair, cs_r, cs_c2)
    sn = jnp.where(real_pair, sn_r, sn_c2)
    # special cases: b == 0 (swap), a == d with opposite signs of b, c (already standard)
    b_is_zero = b == 0
    standard = (temp == 0) & (sign(b) != sign(c))
    cs = jnp.where(b_is_zero, 0, jnp.where(standard, 1, cs))
    sn = jnp.where(b_is_zero, 1, jnp.where(standard, 0, sn))
    cs = jnp.where(block, cs, 1)
    sn = jnp.where(block, sn, 0)
    triangular = block & ((real_pair | same | b_is_zero) & ~standard)
    # one orthogonal matrix made of all the (disjoint) rotations: G[k:k+2, k:k+2] =
    # [[cs, -sn], [sn, cs]]
    g = jnp.eye(n, dtype=h.dtype)
    diag_first = jnp.concatenate([cs, jnp.ones((1,), h.dtype)])
    diag_second = jnp.concatenate([jnp.ones((1,), h.dtype), cs])
    on_block_first = jnp.concatenate([block, jnp.zeros((1,), bool)])
    on_block_second = jnp.concatenate([jnp.zeros((1,), bool), block])
    diag = jnp.where(on_block_first, diag_first, jnp.where(on_block_second, diag_second, 1))
    g = g * diag[None, :]
    g = g + jnp.diag(jnp.where(block, -sn, 0), 1) + jnp.diag(jnp.where(block, sn, 0), -1)
    h = g.T @ h @ g
    q = q @ g
    clear = jnp.concatenate([jnp.zeros((1,), bool), triangular])  # rows k+1 of such blocks
    k = jnp.arange(n)
    h = jnp.where((k[:, None] == k[None, :] + 1) & clear[:, None], 0, h)
    return h, q


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
