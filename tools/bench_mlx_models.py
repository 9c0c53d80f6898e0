"""The benchmark workloads written directly in MLX, as an MLX user would write them.

Same shapes, parameters and math as tools/bench_jax_models.py; where MLX has a fused kernel
for a step (mx.fast.layer_norm, mx.fast.scaled_dot_product_attention) the native version
uses it, since that is what 'metal' is measured against. Steps are mx.compile'd.
"""

from __future__ import annotations

import mlx.core as mx
from mlx.utils import tree_map


def gelu_tanh(x):
    return 0.5 * x * (1.0 + mx.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def cross_entropy(logits, labels):
    logz = mx.logsumexp(logits, axis=-1)
    picked = mx.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return mx.mean(logz - picked)


# ------------------------------------------------------------------------------------ MLP


def mlp_loss(params, x, y):
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = mx.maximum(h, 0.0)
    return mx.mean((h - y) ** 2)


@mx.compile
def mlp_step(params, x, y):
    loss, grads = mx.value_and_grad(mlp_loss)(params, x, y)
    return tree_map(lambda p, g: p - 0.01 * g, params, grads), loss


# ---------------------------------------------------------------------------- transformer


def lm_loss(params, tokens, targets, heads):
    _, t = tokens.shape
    x = params["embed"][tokens] + params["pos"][:t]
    for layer in params["layers"]:
        h = mx.fast.layer_norm(x, layer["ln1_s"], layer["ln1_b"], 1e-5)
        b, _, d = h.shape
        q, k, v = mx.split(h @ layer["wqkv"], 3, axis=-1)
        q, k, v = (a.reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3) for a in (q, k, v))
        o = mx.fast.scaled_dot_product_attention(q, k, v, scale=(d // heads) ** -0.5,
                                                 mask="causal")
        x = x + o.transpose(0, 2, 1, 3).reshape(b, t, d) @ layer["wo"]
        h = mx.fast.layer_norm(x, layer["ln2_s"], layer["ln2_b"], 1e-5)
        x = x + gelu_tanh(h @ layer["w1"]) @ layer["w2"]
    logits = mx.fast.layer_norm(x, params["lnf_s"], params["lnf_b"], 1e-5) @ params["head"]
    return cross_entropy(logits, targets)


def adamw(params, grads, m, v, t, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.01):
    t = t + 1.0
    m = tree_map(lambda m_, g: b1 * m_ + (1 - b1) * g, m, grads)
    v = tree_map(lambda v_, g: b2 * v_ + (1 - b2) * g * g, v, grads)
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    params = tree_map(
        lambda p, m_, v_: p - lr * ((m_ / c1) / (mx.sqrt(v_ / c2) + eps) + wd * p), params, m, v)
    return params, m, v, t


def make_lm_step(heads):
    @mx.compile
    def step(state, tokens, targets):
        params, m, v, t = state
        loss, grads = mx.value_and_grad(lm_loss)(params, tokens, targets, heads)
        return (*adamw(params, grads, m, v, t), ), loss
    return step


# ------------------------------------------------------------------------------ ResNet-18


def conv(x, w, stride):
    return mx.conv2d(x, w, stride=stride, padding=(w.shape[1] - 1) // 2)


def batch_norm(x, scale, bias, eps=1e-5):
    mean = mx.mean(x, axis=(0, 1, 2))
    var = mx.mean((x - mean) ** 2, axis=(0, 1, 2))
    return (x - mean) * mx.rsqrt(var + eps) * scale + bias


def resnet_loss(params, images, labels, strides):
    relu = lambda a: mx.maximum(a, 0.0)  # noqa: E731
    x = relu(batch_norm(conv(images, params["stem"]["w"], 1),
                        params["stem"]["s"], params["stem"]["b"]))
    for block, stride in zip(params["blocks"], strides, strict=True):
        h = relu(batch_norm(conv(x, block["w1"], stride), block["s1"], block["b1"]))
        h = batch_norm(conv(h, block["w2"], 1), block["s2"], block["b2"])
        if "wd" in block:
            x = batch_norm(conv(x, block["wd"], stride), block["sd"], block["bd"])
        x = relu(x + h)
    logits = mx.mean(x, axis=(1, 2)) @ params["fc_w"] + params["fc_b"]
    return cross_entropy(logits, labels)


def make_resnet_step(strides):
    @mx.compile
    def step(params, images, labels):
        loss, grads = mx.value_and_grad(resnet_loss)(params, images, labels, strides)
        return tree_map(lambda p, g: p - 0.1 * g, params, grads), loss
    return step


# ------------------------------------------------------------------------------------ GRU


def gru_loss(params, xs):
    hidden = params["wh"].shape[0]
    h = mx.zeros((xs.shape[1], hidden), xs.dtype)
    total = mx.zeros((), xs.dtype)
    for t in range(xs.shape[0]):  # unrolled under mx.compile: MLX has no scan
        # the input product per step: slicing a [T, B, 3H] product instead would make the
        # gradient scatter into a zero [T, B, 3H] array once per step
        xr, xz, xn = mx.split(xs[t] @ params["wx"] + params["b"], 3, axis=-1)
        hr, hz, hn = mx.split(h @ params["wh"], 3, axis=-1)
        r = mx.sigmoid(xr + hr)
        z = mx.sigmoid(xz + hz)
        n = mx.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        total = total + mx.sum(h * h)
    return total / (xs.shape[0] * h.size)


@mx.compile
def gru_step(params, xs):
    loss, grads = mx.value_and_grad(gru_loss)(params, xs)
    return tree_map(lambda p, g: p - 0.1 * g, params, grads), loss


def conv_weight(hwio):
    """JAX's HWIO kernel as MLX's OHWI."""
    return mx.array(hwio.transpose(3, 0, 1, 2))

