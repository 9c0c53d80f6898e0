"""compiler/fusion_grads.py: a normalization (or softmax) and its spelled-out gradient become
MLX's fused kernel and its VJP exactly where the backward region is the VJP (checked by the
probe); values and gradients match JAX's CPU backend either way."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from tests.direct import artifact, compare_with_cpu, compiled_ops
from tests.test_fusions import layer_norm, normal, rms_norm
from xla_metal.compiler import compile_program
from xla_metal.compiler.ir import Op, walk

NORMS = (Op.LAYER_NORM, Op.RMS_NORM, Op.LAYER_NORM_GRAD, Op.RMS_NORM_GRAD, Op.SOFTMAX,
         Op.SOFTMAX_GRAD)
TOL = (1e-4, 1e-5)


def norm_ops(fn, *args) -> list[Op]:
    module = compile_program(artifact(fn, *args), verify_each=True).module
    return sorted((o.op for f in module.functions.values() for o in walk(f.body)
                   if o.op in NORMS), key=lambda op: op.name)


def grads(loss, argnums=(0, 1, 2)):
    return lambda *args: jax.value_and_grad(loss, argnums=argnums)(*args)


def test_layer_norm_training_step_is_fused():
    x, s, b, c = normal(4, 6, 32), normal(32), normal(32), normal(4, 6, 32)
    step = grads(lambda x, s, b, c: jnp.sum(layer_norm(x, s, b) * c))
    assert norm_ops(step, x, s, b, c) == [Op.LAYER_NORM, Op.LAYER_NORM_GRAD]
    compare_with_cpu(step, x, s, b, c, tol=TOL)


def test_rms_norm_training_step_is_fused():
    x, s = normal(3, 5, 16), normal(16)
    step = grads(lambda x, s: jnp.sum(jnp.sin(rms_norm(x, s))), argnums=(0, 1))
    assert norm_ops(step, x, s) == [Op.RMS_NORM, Op.RMS_NORM_GRAD]
    compare_with_cpu(step, x, s, tol=TOL)


def test_other_spellings_are_fused():
    def square_scale_only(x, s, b):  # autodiff of square, not ** 2; b unused
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) * lax.rsqrt(var + 1e-6) * s

    def no_keepdims(x, s, b):
        c = x - jnp.mean(x, axis=-1)[:, None]
        return c * lax.rsqrt(jnp.mean(c * c, axis=-1) + 1e-5)[:, None] * s + b

    x, s, b = normal(6, 12), normal(12), normal(12)
    for norm in (square_scale_only, no_keepdims):
        step = grads(lambda x, s, b, norm=norm: jnp.sum(norm(x, s, b) ** 2))
        assert norm_ops(step, x, s, b) == [Op.LAYER_NORM, Op.LAYER_NORM_GRAD], norm.__name__
        compare_with_cpu(step, x, s, b, tol=TOL)


def test_gradient_parts_added_into_a_residual_stream():
    # x feeds the norm and a residual: JAX adds the norm's gradient parts into x's total
    # one at a time (the transformer's case); the parts become the VJP and zeros
    def loss(x, s, b, w):
        h = x
        for _ in range(2):
            h = h + jnp.tanh(layer_norm(h, s, b) @ w)
        return jnp.sum(h ** 2)

    x, s, b, w = normal(2, 5, 16), normal(16), normal(16), normal(16, 16) * 0.3
    step = grads(loss, argnums=(0, 1, 2, 3))
    assert norm_ops(step, x, s, b, w) == [Op.LAYER_NORM] * 2 + [Op.LAYER_NORM_GRAD] * 2
    compare_with_cpu(step, x, s, b, w, tol=(2e-4, 2e-5))


def test_a_backward_that_is_not_the_vjp_is_left_alone():
    # a custom_vjp whose backward reads the forward's interior but is not its gradient:
    # the probe refutes it, and the program's own (wrong) gradient is what runs
    @jax.custom_vjp
    def norm(x):
        return layer_norm(x, 1.0, 0.0)

    def forward(x):
        mean = jnp.mean(x, axis=-1, keepdims=True)
        c = x - mean
        r = lax.rsqrt(jnp.mean(c * c, axis=-1, keepdims=True) + 1e-5)
        return c * r, (c, r)

    def backward(saved, g):
        c, r = saved
        return (2.0 * r * (g - jnp.mean(g, axis=-1, keepdims=True)),)

    norm.defvjp(forward, backward)
    assert_not_fused(Op.LAYER_NORM_GRAD, norm, 3, 16)


def assert_not_fused(grad: Op, function, *shape) -> None:
    """`function` (a custom_vjp) is not fused with its backward into `grad`, and its own
    gradient is what runs."""
    x, c = normal(*shape), normal(*shape)
    step = grads(lambda x, c: jnp.sum(function(x) * c), argnums=(0,))
    assert grad not in norm_ops(step, x, c)
    compare_with_cpu(step, x, c, tol=TOL)


def test_interior_read_elsewhere_is_left_alone():
    def loss(x, s, b):
        mean = jnp.mean(x, axis=-1, keepdims=True)
        r = lax.rsqrt(jnp.mean((x - mean) ** 2, axis=-1, keepdims=True) + 1e-5)
        return jnp.sum(((x - mean) * r * s + b) ** 2) + jnp.sum(r)  # r is also a term

    x, s, b = normal(4, 8), normal(8), normal(8)
    step = grads(loss)
    assert Op.LAYER_NORM_GRAD not in norm_ops(step, x, s, b)
    compare_with_cpu(step, x, s, b, tol=TOL)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_gradients_are_left_alone(dtype):
    x, s, b = normal(4, 16, dtype=dtype), normal(16, dtype=dtype), normal(16, dtype=dtype)
    step = grads(lambda x, s, b: jnp.sum(layer_norm(x, s, b).astype(jnp.float32) ** 2))
    assert Op.LAYER_NORM_GRAD not in norm_ops(step, x, s, b)
    compare_with_cpu(step, x, s, b, tol=(5e-2, 5e-2))


def test_turned_off(monkeypatch):
    from xla_metal.compiler import fusion_grads

    monkeypatch.setattr(fusion_grads, "_ENABLED", False)
    x, s, b = normal(4, 8), normal(8), normal(8)
    step = grads(lambda x, s, b: jnp.sum(layer_norm(x, s, b) ** 2))
    assert Op.LAYER_NORM_GRAD not in norm_ops(step, x, s, b)


def test_rematerialized_forward_is_fused():
    # jax.checkpoint: the backward recomputes the norm's interior next to its gradient
    x, s, b = normal(4, 16), normal(16), normal(16)
    step = grads(lambda x, s, b: jnp.sum(jnp.cos(jax.checkpoint(layer_norm)(x, s, b))))
    assert Op.LAYER_NORM_GRAD in norm_ops(step, x, s, b)
    compare_with_cpu(step, x, s, b, tol=TOL)


def test_gradient_through_a_scan_matches():
    # the forward loop stacks the interior for the backward loop: nothing to fuse, still exact
    def loss(xs, s, b):
        def body(h, x):
            h = layer_norm(h + x, s, b)
            return h, jnp.sum(h * h)
        return jnp.sum(lax.scan(body, jnp.zeros(xs.shape[1:], xs.dtype), xs)[1])

    xs, s, b = normal(6, 3, 8), normal(8), normal(8)
    compare_with_cpu(grads(loss), xs, s, b, tol=TOL)


# ------------------------------------------------------------------------------ softmax


def attention_loss(q, k, v, causal=True):
    scores = q @ jnp.swapaxes(k, -1, -2) * q.shape[-1] ** -0.5
    if causal:
        t = scores.shape[-1]
        scores = jnp.where(jnp.tril(jnp.ones((t, t), bool)), scores, -jnp.inf)
    return jnp.sum(jnp.tanh(jax.nn.softmax(scores, axis=-1) @ v))


@pytest.mark.parametrize("causal", [True, False])
def test_attention_softmax_training_step_is_fused(causal):
    # jax.nn.softmax's default gradient reads exp(x - max) and its sum, so fusions.py leaves
    # the forward as four kernels; with its backward it is mx.softmax and the VJP's three ops
    q, k, v = normal(2, 3, 8, 4), normal(2, 3, 8, 4), normal(2, 3, 8, 4)
    step = grads(lambda q, k, v: attention_loss(q, k, v, causal))
    ops = compiled_ops(step, q, k, v)
    assert sorted(o.op.name for o in ops if o.op in NORMS) == ["SOFTMAX", "SOFTMAX_GRAD"]
    assert not {Op.EXP, Op.MAXIMUM} & {o.op for o in ops}  # the interior is gone
    compare_with_cpu(step, q, k, v, tol=TOL)


def test_softmax_over_a_middle_axis_is_left_alone():
    x, c = normal(4, 6, 5), normal(4, 6, 5)
    step = grads(lambda x, c: jnp.sum(jax.nn.softmax(x, axis=1) * c), argnums=(0,))
    assert Op.SOFTMAX_GRAD not in norm_ops(step, x, c)
    compare_with_cpu(step, x, c, tol=TOL)


def test_softmax_whose_sum_is_read_elsewhere_is_left_alone():
    def loss(x, c):
        e = jnp.exp(x - jnp.max(x, axis=-1, keepdims=True))
        total = jnp.sum(e, axis=-1, keepdims=True)
        return jnp.sum(e / total * c) + jnp.sum(jnp.log(total))  # the sum is also a term

    x, c = normal(3, 7), normal(3, 7)
    step = grads(loss, argnums=(0,))
    assert Op.SOFTMAX_GRAD not in norm_ops(step, x, c)
    compare_with_cpu(step, x, c, tol=TOL)


def test_a_softmax_backward_that_is_not_its_vjp_is_left_alone():
    @jax.custom_vjp
    def softmax(x):
        return jax.nn.softmax(x, axis=-1)

    def forward(x):
        e = jnp.exp(x - jnp.max(x, axis=-1, keepdims=True))
        total = jnp.sum(e, axis=-1, keepdims=True)
        return e / total, (e, total)

    def backward(saved, g):  # drops the row sum's term: not softmax's VJP
        e, total = saved
        return (e / total * g,)

    softmax.defvjp(forward, backward)
    assert_not_fused(Op.SOFTMAX_GRAD, softmax, 3, 9)


def test_low_precision_softmax_gradients_are_left_alone():
    x, c = normal(4, 16, dtype="bfloat16"), normal(4, 16, dtype="bfloat16")
    step = grads(lambda x, c: jnp.sum(jax.nn.softmax(x).astype(jnp.float32) * c),
                 argnums=(0,))
    assert Op.SOFTMAX_GRAD not in norm_ops(step, x, c)
    compare_with_cpu(step, x, c, tol=(5e-2, 5e-2))
