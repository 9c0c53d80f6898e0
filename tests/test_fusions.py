"""compiler/fusions.py: softmax and the normalizations become MLX's fused kernels exactly
where the pattern is exact and its interior is read by it alone; values and gradients match
JAX's CPU backend either way."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from jax import lax

from tests.direct import artifact, compare_with_cpu, skip_stage
from xla_metal.compiler import compile_program
from xla_metal.compiler.ir import Op, walk

CPU = jax.devices("cpu")[0]
RNG = np.random.default_rng(7)
FUSED = (Op.SOFTMAX, Op.LAYER_NORM, Op.RMS_NORM)
TOL = {"float32": (2e-5, 2e-6), "float16": (2e-2, 2e-3), "bfloat16": (5e-2, 2e-2)}


def compare(fn, *args, tol=TOL["float32"]):
    compare_with_cpu(fn, *args, tol=tol)


def fused_ops(fn, *args) -> list[Op]:
    module = compile_program(artifact(fn, *args), verify_each=True).module
    return [o.op for f in module.functions.values() for o in walk(f.body) if o.op in FUSED]


def normal(*shape, dtype="float32"):
    return RNG.standard_normal(shape).astype(np.dtype(getattr(ml_dtypes, dtype, dtype)))


def layer_norm(x, scale, bias, eps=1e-5):  # as the benchmarks' transformer writes it
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) * lax.rsqrt(var + eps) * scale + bias


def rms_norm(x, scale, eps=1e-6):
    return x * lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps) * scale


# ---------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("axis", [-1, 0, (0, 2)])
def test_softmax_is_fused(dtype, axis):
    def f(x):
        return jax.nn.softmax(x, axis=axis)

    x = normal(3, 4, 6, dtype=dtype)
    assert fused_ops(f, x) == [Op.SOFTMAX]
    compare(f, x, tol=TOL[dtype])


def test_softmax_masked_rows_match():
    def f(x):  # a causal mask: -inf entries, one row of nothing but -inf (NaN in JAX too)
        mask = jnp.tril(jnp.ones((5, 5), bool)).at[0, 0].set(False)
        return jax.nn.softmax(jnp.where(mask, x, -jnp.inf), axis=-1)

    x = normal(2, 5, 5)
    assert fused_ops(f, x) == [Op.SOFTMAX]
    compare(f, x)


def test_softmax_custom_jvp_gradient_is_fused():
    # with JAX's custom-jvp softmax, the backward reads only the softmax output
    def f(x, w):
        return jax.value_and_grad(lambda x: jnp.sum(jax.nn.softmax(x, axis=-1) * w))(x)

    x, w = normal(4, 7), normal(4, 7)
    with jax.softmax_custom_jvp(True):
        assert fused_ops(f, x, w) == [Op.SOFTMAX]
        compare(f, x, w)


def test_softmax_default_gradient_is_left_alone(monkeypatch):
    # JAX's default softmax gradient reads exp(x - max) and its sum: fusing the forward alone
    # would add work (compiler/fusion_grads.py fuses it with its gradient instead)
    def f(x, w):
        return jax.value_and_grad(lambda x: jnp.sum(jax.nn.softmax(x, axis=-1) * w))(x)

    x, w = normal(4, 7), normal(4, 7)
    assert fused_ops(f, x, w) == [Op.SOFTMAX]
    skip_stage(monkeypatch, "with their gradients")
    assert fused_ops(f, x, w) == []
    compare(f, x, w)


def test_softmax_near_misses_are_not_fused():
    def other_axes(x):  # max over one axis, sum over another
        e = jnp.exp(x - jnp.max(x, axis=0, keepdims=True))
        return e / jnp.sum(e, axis=1, keepdims=True)

    def other_input(x, y):  # the max of a different array
        e = jnp.exp(x - jnp.max(y, axis=-1, keepdims=True))
        return e / jnp.sum(e, axis=-1, keepdims=True)

    def interior_used(x):  # exp(x - max) is also a result
        e = jnp.exp(x - jnp.max(x, axis=-1, keepdims=True))
        return e / jnp.sum(e, axis=-1, keepdims=True), e

    def shifted_by_min(x):
        e = jnp.exp(x - jnp.min(x, axis=-1, keepdims=True))
        return e / jnp.sum(e, axis=-1, keepdims=True)

    x, y = normal(4, 6) * 0.5, normal(4, 6) * 0.5
    for fn, args in [(other_axes, (x,)), (other_input, (x, y)), (interior_used, (x,)),
                     (shifted_by_min, (x,))]:
        assert fused_ops(fn, *args) == [], fn.__name__
        compare(fn, *args)


def test_hand_written_softmax_is_fused():
    def f(x):
        e = jnp.exp(x - jnp.max(x, axis=-1, keepdims=True))
        return e / jnp.sum(e, axis=-1, keepdims=True)

    x = normal(3, 9)
    assert fused_ops(f, x) == [Op.SOFTMAX]
    compare(f, x)


# ---------------------------------------------------------------------- normalizations


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_layer_norm_is_fused(dtype):
    x, s, b = normal(2, 5, 16, dtype=dtype), normal(16, dtype=dtype), normal(16, dtype=dtype)
    assert fused_ops(layer_norm, x, s, b) == [Op.LAYER_NORM]
    compare(layer_norm, x, s, b, tol=TOL[dtype])


def test_layer_norm_forms():
    def no_affine(x):
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) * lax.rsqrt(var + 1e-6)

    def scale_only(x, s):
        return no_affine(x) * s

    def no_keepdims(x, s, b):
        mean = jnp.mean(x, axis=-1)
        c = x - mean[:, None]
        return c * lax.rsqrt(jnp.mean(c * c, axis=-1) + 1e-5)[:, None] * s + b

    x, s, b = normal(6, 12), normal(12), normal(12)
    for fn, args in [(no_affine, (x,)), (scale_only, (x, s)), (no_keepdims, (x, s, b))]:
        module = compile_program(artifact(fn, *args), verify_each=True).module
        ops = [o for f in module.functions.values() for o in walk(f.body) if o.op in FUSED]
        assert [o.op for o in ops] == [Op.LAYER_NORM], fn.__name__
        eps = 1e-5 if fn is no_keepdims else 1e-6
        assert ops[0].attrs["eps"] == pytest.approx(eps, rel=1e-6)
        compare(fn, *args)


def test_rms_norm_is_fused():
    def plain(x):
        return x * lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-6)

    x, s = normal(3, 4, 32), normal(32)
    assert fused_ops(rms_norm, x, s) == [Op.RMS_NORM]
    compare(rms_norm, x, s)
    assert fused_ops(plain, x) == [Op.RMS_NORM]
    compare(plain, x)


def test_norm_gradients_match():
    # the backward reads the normalization's interior: left alone, and still exact
    def f(x, s, b):
        return jax.value_and_grad(lambda x, s, b: jnp.sum(layer_norm(x, s, b) ** 3),
                                  argnums=(0, 1, 2))(x, s, b)

    def g(x, s):
        return jax.grad(lambda x, s: jnp.sum(jnp.sin(rms_norm(x, s))), argnums=(0, 1))(x, s)

    x, s, b = normal(4, 8), normal(8), normal(8)
    compare(f, x, s, b, tol=(1e-4, 1e-5))
    compare(g, x, s, tol=(1e-4, 1e-5))


def test_norm_near_misses_are_not_fused():
    def not_last_axis(x):
        mean = jnp.mean(x, axis=0, keepdims=True)
        var = jnp.mean((x - mean) ** 2, axis=0, keepdims=True)
        return (x - mean) * lax.rsqrt(var + 1e-5)

    def wrong_count(x):  # sum / (N + 1) is not a mean
        ms = jnp.sum(x * x, axis=-1, keepdims=True) / (x.shape[-1] + 1)
        return x * lax.rsqrt(ms + 1e-6)

    def other_center(x, y):  # variance of a different array
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean((y - mean) ** 2, axis=-1, keepdims=True)
        return (x - mean) * lax.rsqrt(var + 1e-5)

    def sqrt_then_divide(x):
        return x / jnp.sqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-6)

    def rsqrt_used(x):
        r = lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-6)
        return x * r, r

    x, y = normal(5, 8), normal(5, 8)
    for fn, args in [(not_last_axis, (x,)), (wrong_count, (x,)), (other_center, (x, y)),
                     (sqrt_then_divide, (x,)), (rsqrt_used, (x,))]:
        assert fused_ops(fn, *args) == [], fn.__name__
        compare(fn, *args)


def test_full_scale_is_not_a_vector():
    # a scale of x's full shape stays a multiply; the normalization under it is still fused
    x, s = normal(3, 8), normal(3, 8)
    module = compile_program(artifact(rms_norm, x, s), verify_each=True).module
    ops = [o for f in module.functions.values() for o in walk(f.body)]
    fused = [o for o in ops if o.op is Op.RMS_NORM]
    assert len(fused) == 1 and not fused[0].attrs["scale"]
    compare(rms_norm, x, s)


def test_fused_ops_inside_a_scan():
    def f(xs, s, b):
        def step(h, x):
            h = layer_norm(h + x, s, b)
            return h, jax.nn.softmax(h, axis=-1)
        return lax.scan(step, jnp.zeros(xs.shape[1:], xs.dtype), xs)

    xs, s, b = normal(5, 3, 8), normal(8), normal(8)
    # one of each per iteration (compiler/loop_slabs.py may have unrolled the body)
    names = [o.name for o in fused_ops(f, xs, s, b)]
    assert set(names) == {"LAYER_NORM", "SOFTMAX"}
    assert names.count("LAYER_NORM") == names.count("SOFTMAX")
    compare(f, xs, s, b, tol=(1e-4, 1e-5))
