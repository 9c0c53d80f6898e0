"""Trains a small MLP classifier on synthetic data and prints the loss and the device.

    JAX_PLATFORMS=metal python examples/train_mlp.py      # on xla-metal
    JAX_PLATFORMS=cpu python examples/train_mlp.py        # the same on JAX's CPU backend

On a Mac 'metal' is the default platform; on Linux it is opt-in, as above.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp


def init_params(key: jax.Array, sizes: list[int]) -> list[tuple[jax.Array, jax.Array]]:
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        key, sub = jax.random.split(key)
        w = jax.random.normal(sub, (fan_in, fan_out)) * jnp.sqrt(2.0 / fan_in)
        params.append((w, jnp.zeros(fan_out)))
    return params


def forward(params, x):
    for w, b in params[:-1]:
        x = jnp.tanh(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def loss_fn(params, x, y):
    logits = forward(params, x)
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))


@jax.jit
def train_step(params, x, y, lr):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
    return params, loss


def make_data(key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """Two interleaved spirals: a problem a linear model cannot solve."""
    k1, k2 = jax.random.split(key)
    t = jax.random.uniform(k1, (n,)) * 3 * jnp.pi
    y = (jax.random.uniform(k2, (n,)) > 0.5).astype(jnp.int32)
    r = t / (3 * jnp.pi)
    angle = t + jnp.pi * y
    x = jnp.stack([r * jnp.cos(angle), r * jnp.sin(angle)], axis=1)
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=20)
    args = parser.parse_args()

    key = jax.random.PRNGKey(0)
    k_data, k_params = jax.random.split(key)
    x, y = make_data(k_data, 512)
    params = init_params(k_params, [2, 64, 64, 2])
    print(f"device: {x.devices().pop()} ({jax.default_backend()})")
    for step in range(1, args.steps + 1):
        params, loss = train_step(params, x, y, 0.5)
        if step % args.every == 0 or step == 1:
            print(f"step {step:4d}  loss {float(loss):.6f}")
    accuracy = jnp.mean(jnp.argmax(forward(params, x), axis=1) == y)
    print(f"accuracy {float(accuracy):.3f}")


if __name__ == "__main__":
    main()
