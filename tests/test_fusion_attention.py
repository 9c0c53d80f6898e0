"""compiler/fusion_attention.py: attention written out in StableHLO becomes one
mx.fast.scaled_dot_product_attention where every dim's part, the scale, bias and mask are
exact and the interior is read by the pattern alone; values (and gradients, where the
pattern stays op by op) match JAX's CPU backend either way."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from tests.direct import artifact, compare_with_cpu, run_direct
from xla_metal.compiler import compile_program
from xla_metal.compiler.ir import Op, walk

RNG = np.random.default_rng(11)
TOL = {"float32": (2e-5, 2e-6), "float16": (2e-2, 2e-3), "bfloat16": (5e-2, 2e-2)}
B, T, S, N, H = 2, 16, 12, 4, 32


def attention_ops(fn, *args) -> list[Op]:
    module = compile_program(artifact(fn, *args), verify_each=True).module
    return [o.op for f in module.functions.values() for o in walk(f.body)
            if o.op in (Op.ATTENTION, Op.SOFTMAX)]


def normal(*shape, dtype="float32"):
    return RNG.standard_normal(shape).astype(np.dtype(getattr(ml_dtypes, dtype, dtype)))


def qkv(dtype="float32", t=T, s=S, heads=N, kv_heads=N):
    return (normal(B, t, heads, H, dtype=dtype), normal(B, s, kv_heads, H, dtype=dtype),
            normal(B, s, kv_heads, H, dtype=dtype))


def causal(t, s):
    return jnp.tril(jnp.ones((t, s), bool))


def by_hand(q, k, v):  # heads after batch, scale on the scores, as a user writes it
    q, k, v = (jnp.swapaxes(x, 1, 2) for x in (q, k, v))
    scores = q @ jnp.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]).astype(q.dtype)
    return jax.nn.softmax(scores, axis=-1) @ v


def by_hand_causal(q, k, v):  # the benchmarks' transformer: -inf above the diagonal
    q, k, v = (jnp.swapaxes(x, 1, 2) for x in (q, k, v))
    scores = (q @ jnp.swapaxes(k, -1, -2)) * np.asarray(0.125, q.dtype)
    scores = jnp.where(causal(q.shape[2], k.shape[2]), scores, -jnp.inf)
    return jax.nn.softmax(scores, axis=-1) @ v


def einsum_scaled_q(q, k, v):  # the scale on q, einsum layouts (b t n h)
    s = jnp.einsum("btnh,bsnh->bnts", q * np.asarray(0.2, q.dtype), k)
    return jnp.einsum("bnts,bsnh->btnh", jax.nn.softmax(s, axis=-1), v)


def multi_query(q, k, v):  # one head of keys and values shared by every query head
    s = jnp.einsum("btnh,bsh->bnts", q, k[:, :, 0]) * np.asarray(0.2, q.dtype)
    return jnp.einsum("bnts,bsh->btnh", jax.nn.softmax(s, axis=-1), v[:, :, 0])


def bias_then_mask(q, k, v):  # Flax's form: bias added, then a mask against finfo.min
    bias = jnp.arange(k.shape[1], dtype=q.dtype) * np.asarray(0.1, q.dtype)
    keep = (jnp.arange(k.shape[1]) % 3 != 1)[None, None, None, :]
    s = jnp.einsum("btnh,bsnh->bnts", q, k) * np.asarray(0.2, q.dtype) + bias
    s = jnp.where(keep, s, jnp.finfo(q.dtype).min)
    return jnp.einsum("bnts,bsnh->btnh", jax.nn.softmax(s, axis=-1), v)


def fill_where_true(q, k, v):  # the fill on the predicate's true side
    drop = (jnp.arange(k.shape[1]) >= 9)[None, None, None, :]
    s = jnp.where(drop, -jnp.inf, jnp.einsum("btnh,bsnh->bnts", q, k))
    return jnp.einsum("bnts,bsnh->btnh", jax.nn.softmax(s, axis=-1), v)


FUSED_FORMS = {
    "jax.nn": lambda q, k, v: jax.nn.dot_product_attention(q, k, v),
    "jax.nn causal": lambda q, k, v: jax.nn.dot_product_attention(q, q, q, is_causal=True),
    "jax.nn bias and mask": lambda q, k, v: jax.nn.dot_product_attention(
        q, k, v, bias=jnp.ones((1, N, 1, S), q.dtype) * np.asarray(0.5, q.dtype),
        mask=(jnp.arange(S) < 7)[None, None, None, :]),
    "by hand": by_hand,
    "by hand causal": by_hand_causal,
    "einsum, scaled q": einsum_scaled_q,
    "multi-query": multi_query,
    "bias then mask": bias_then_mask,
    "fill where true": fill_where_true,
}


@pytest.mark.parametrize("form", sorted(FUSED_FORMS))
def test_attention_is_fused(form):
    fn = FUSED_FORMS[form]
    args = qkv()
    assert attention_ops(fn, *args) == [Op.ATTENTION]
    compare_with_cpu(fn, *args, tol=TOL["float32"])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("form", ["by hand", "by hand causal", "einsum, scaled q"])
def test_attention_low_precision(form, dtype):
    fn = FUSED_FORMS[form]
    args = qkv(dtype)
    assert attention_ops(fn, *args) == [Op.ATTENTION]
    compare_with_cpu(fn, *args, tol=TOL[dtype])


def test_scores_in_float32_are_kept_in_float32():
    # jax.nn takes bfloat16 scores in float32: the kernel runs in float32 too
    fn = FUSED_FORMS["jax.nn causal"]
    args = qkv("bfloat16")
    module = compile_program(artifact(fn, *args)).module
    found = [o for o in walk(module.functions[module.entry].body) if o.op is Op.ATTENTION]
    assert [o.attrs["compute"] for o in found] == ["float32"]
    compare_with_cpu(fn, *args, tol=TOL["bfloat16"])


def attention_attrs(fn, *args) -> list[dict]:
    module = compile_program(artifact(fn, *args)).module
    return [o.attrs for f in module.functions.values() for o in walk(f.body)
            if o.op is Op.ATTENTION]


@pytest.mark.parametrize(("form", "t", "s", "causal"), [
    ("jax.nn causal", T, T, True),          # jnp.tril through jnp.where's function
    ("by hand causal", T, T, True),
    ("by hand causal", 8, 12, False),      # tril keeps the top-left triangle, MLX's
    ("fill where true", T, S, False),      # causal mode the bottom-right one
])
def test_causal_masks_use_the_kernels_causal_mode(form, t, s, causal):
    fn = FUSED_FORMS[form]
    args = qkv(t=t, s=s)
    found = attention_attrs(fn, *args)
    assert [a["causal"] for a in found] == [causal]
    assert (found[0]["mask"] == ()) is causal
    compare_with_cpu(fn, *args, tol=TOL["float32"])


def test_fully_masked_rows_average_v():
    # a finite fill: a row with every key masked is the mean of v, as XLA computes it
    def f(q, k, v):
        s = jnp.einsum("btnh,bsnh->bnts", q, k)
        s = jnp.where((jnp.arange(T) >= 5)[None, None, :, None], s, jnp.finfo(q.dtype).min)
        return jnp.einsum("bnts,bsnh->btnh", jax.nn.softmax(s, axis=-1), v)

    args = qkv()
    assert attention_ops(f, *args) == [Op.ATTENTION]
    got = run_direct(f, *args)[0]
    mean_v = np.broadcast_to(args[2].mean(1)[:, None], got[:, :5].shape)
    np.testing.assert_allclose(got[:, :5], mean_v, rtol=1e-5, atol=1e-6)
    compare_with_cpu(f, *args, tol=TOL["float32"])


def test_grouped_query_attention():
    # jax.nn splits the query heads into groups: a group dim of size > 1 moves between
    # the scores and the softmax, which the rule does not follow
    fn = FUSED_FORMS["jax.nn"]
    args = qkv(heads=8, kv_heads=2)
    assert Op.ATTENTION not in attention_ops(fn, *args)
    compare_with_cpu(fn, *args, tol=TOL["float32"])


# ------------------------------------------------------------ near misses: not fused


def softmax_over_queries(q, k, v):
    s = jnp.einsum("btnh,bsnh->bnts", q, k)
    return jnp.einsum("bnts,bsnh->btnh", jax.nn.softmax(s, axis=2), v)


def scores_read_twice(q, k, v):
    s = jnp.einsum("btnh,bsnh->bnts", q, k)
    return jnp.einsum("bnts,bsnh->btnh", jax.nn.softmax(s, axis=-1), v), s


def scale_after_mask(q, k, v):
    s = jnp.where(jnp.arange(S) < 7, jnp.einsum("btnh,bsnh->bnts", q, k), -1e38) * 0.5
    return jnp.einsum("bnts,bsnh->btnh", jax.nn.softmax(s, axis=-1), v)


def small_fill(q, k, v):  # -1e4 added to a score does not leave -1e4: not a mask
    s = jnp.where(jnp.arange(S) < 7, jnp.einsum("btnh,bsnh->bnts", q, k), -1e4)
    return jnp.einsum("bnts,bsnh->btnh", jax.nn.softmax(s, axis=-1), v)


def training_step(q, k, v):  # the backward pass reads the probabilities
    return jax.value_and_grad(lambda q, k, v: jnp.sum(by_hand_causal(q, k, v) ** 2),
                              argnums=(0, 1, 2))(q, k, v)


NEAR_MISSES = {
    "softmax over the queries": softmax_over_queries,
    "scores read twice": scores_read_twice,
    "scale after the mask": scale_after_mask,
    "fill above -1e30": small_fill,
    "training step": training_step,
}


@pytest.mark.parametrize("form", sorted(NEAR_MISSES))
def test_near_miss_is_not_fused(form):
    fn = NEAR_MISSES[form]
    args = qkv()
    assert Op.ATTENTION not in attention_ops(fn, *args)
    compare_with_cpu(fn, *args, tol=(1e-4, 1e-5))
