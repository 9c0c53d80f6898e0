"""The benchmark workloads written in JAX (jax.numpy / lax only, no flax or optax).

tools/bench_mlx_models.py holds the same models written directly in MLX: same shapes, same
parameters (both start from the numpy arrays of tools/bench_params.py), same math. Each
`*_step` takes and returns the training state, so a benchmark threads it through repeats.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def gelu_tanh(x):
    return 0.5 * x * (1.0 + jnp.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def cross_entropy(logits, labels):
    logz = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return jnp.mean(logz - picked)


# ------------------------------------------------------------------------------------ MLP


def mlp_loss(params, x, y):
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    return jnp.mean((h - y) ** 2)


@jax.jit
def mlp_step(params, x, y):
    loss, grads = jax.value_and_grad(mlp_loss)(params, x, y)
    return jax.tree.map(lambda p, g: p - 0.01 * g, params, grads), loss


# ---------------------------------------------------------------------------- transformer


def layer_norm(x, scale, bias, eps=1e-5):
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) * lax.rsqrt(var + eps) * scale + bias


def lm_loss(params, tokens, targets, heads):
    _, t = tokens.shape
    x = params["embed"][tokens] + params["pos"][:t]
    causal = jnp.tril(jnp.ones((t, t), bool))
    for layer in params["layers"]:
        h = layer_norm(x, layer["ln1_s"], layer["ln1_b"])
        b, _, d = h.shape
        q, k, v = jnp.split(h @ layer["wqkv"], 3, axis=-1)
        q, k, v = (a.reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3) for a in (q, k, v))
        scores = (q @ k.transpose(0, 1, 3, 2)) * (d // heads) ** -0.5
        scores = jnp.where(causal, scores, -jnp.inf)
        o = jax.nn.softmax(scores, axis=-1) @ v
        x = x + o.transpose(0, 2, 1, 3).reshape(b, t, d) @ layer["wo"]
        h = layer_norm(x, layer["ln2_s"], layer["ln2_b"])
        x = x + gelu_tanh(h @ layer["w1"]) @ layer["w2"]
    logits = layer_norm(x, params["lnf_s"], params["lnf_b"]) @ params["head"]
    return cross_entropy(logits, targets)


def adamw(params, grads, m, v, t, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.01):
    t = t + 1.0
    m = jax.tree.map(lambda m_, g: b1 * m_ + (1 - b1) * g, m, grads)
    v = jax.tree.map(lambda v_, g: b2 * v_ + (1 - b2) * g * g, v, grads)
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    params = jax.tree.map(
        lambda p, m_, v_: p - lr * ((m_ / c1) / (jnp.sqrt(v_ / c2) + eps) + wd * p), params, m, v)
    return params, m, v, t


def lm_step(state, tokens, targets, heads):
    params, m, v, t = state
    loss, grads = jax.value_and_grad(lm_loss)(params, tokens, targets, heads)
    return (*adamw(params, grads, m, v, t), ), loss


lm_step_jit = jax.jit(lm_step, static_argnums=3)


# ------------------------------------------------------------------------------ ResNet-18


def conv(x, w, stride):
    pad = (w.shape[0] - 1) // 2
    return lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad), (pad, pad)],
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def batch_norm(x, scale, bias, eps=1e-5):
    mean = jnp.mean(x, axis=(0, 1, 2))
    var = jnp.mean((x - mean) ** 2, axis=(0, 1, 2))
    return (x - mean) * lax.rsqrt(var + eps) * scale + bias


def resnet_loss(params, images, labels, strides):
    x = jax.nn.relu(batch_norm(conv(images, params["stem"]["w"], 1),
                               params["stem"]["s"], params["stem"]["b"]))
    for block, stride in zip(params["blocks"], strides, strict=True):
        h = jax.nn.relu(batch_norm(conv(x, block["w1"], stride), block["s1"], block["b1"]))
        h = batch_norm(conv(h, block["w2"], 1), block["s2"], block["b2"])
        if "wd" in block:
            x = batch_norm(conv(x, block["wd"], stride), block["sd"], block["bd"])
        x = jax.nn.relu(x + h)
    logits = jnp.mean(x, axis=(1, 2)) @ params["fc_w"] + params["fc_b"]
    return cross_entropy(logits, labels)


def resnet_step(params, images, labels, strides):
    loss, grads = jax.value_and_grad(resnet_loss)(params, images, labels, strides)
    return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads), loss


resnet_step_jit = jax.jit(resnet_step, static_argnums=3)


# ------------------------------------------------------------------------------------ GRU


def gru_loss(params, xs):
    hidden = params["wh"].shape[0]
    xw = xs @ params["wx"] + params["b"]  # [T, B, 3H]: the input half, for all steps at once

    def cell(h, xw_t):
        xr, xz, xn = jnp.split(xw_t, 3, axis=-1)
        hr, hz, hn = jnp.split(h @ params["wh"], 3, axis=-1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        return h, h

    h0 = jnp.zeros((xs.shape[1], hidden), xs.dtype)
    _, hs = lax.scan(cell, h0, xw)
    return jnp.mean(hs ** 2)


@jax.jit
def gru_step(params, xs):
    loss, grads = jax.value_and_grad(gru_loss)(params, xs)
    return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads), loss
