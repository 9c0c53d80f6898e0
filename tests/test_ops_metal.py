"""Every op record of tests/op_table.py through the real plugin: jit and eager on 'metal',
value and gradient, against JAX's CPU backend."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.op_table import ALL_CASES, X64, Param, check, expand, tolerance

PARAMS = list(expand(ALL_CASES))


def _leaves(fn, args, device: jax.Device, jit: bool) -> list[np.ndarray]:
    placed = [jax.device_put(a, device) for a in args]
    with jax.default_device(device):
        out = (jax.jit(fn) if jit else fn)(*placed)
    leaves = jax.tree_util.tree_leaves(out)
    for leaf in leaves:
        assert leaf.devices() == {device}, f"result on {leaf.devices()}, not {device}"
    return [np.asarray(leaf) for leaf in leaves]


def _grad_of_float_args(fn, args):
    float_args = [i for i, a in enumerate(args) if np.asarray(a).dtype.kind == "f"]

    def loss(*a):
        out = jax.tree_util.tree_leaves(fn(*a))
        return sum(jnp.sum(jnp.real(o).astype(jnp.float32)) for o in out
                   if jnp.issubdtype(o.dtype, jnp.inexact))

    grads = jax.grad(loss, argnums=tuple(float_args)) if float_args else None
    return grads


def _compare(param: Param, metal: jax.Device, cpu: jax.Device) -> None:
    case = param.case
    args = case.make(np.random.default_rng(0), param.dtype)
    expected = _leaves(case.fn, args, cpu, jit=True)
    tol = tolerance(case, param.dtype)
    for mode in ("jit", "eager"):
        got = _leaves(case.fn, args, metal, jit=mode == "jit")
        assert len(got) == len(expected)
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            check(e, g, tol, f"{param.id} {mode} result {i}")
    grads = _grad_of_float_args(case.fn, args) \
        if case.grad and param.dtype in ("float32", "float64") else None
    if grads is not None:
        expected_g = _leaves(grads, args, cpu, jit=True)
        got_g = _leaves(grads, args, metal, jit=True)
        grad_tol = (tol[0] * 10, tol[1] * 10) if param.dtype == "float64" else \
            (max(tol[0], 1e-4), max(tol[1], 1e-5))
        for i, (e, g) in enumerate(zip(expected_g, got_g, strict=True)):
            check(e, g, grad_tol, f"{param.id} grad {i}")


@pytest.mark.parametrize("param", PARAMS, ids=[p.id for p in PARAMS])
def test_op_on_metal(param: Param, metal: jax.Device, cpu: jax.Device) -> None:
    if param.dtype in X64 or "x64" in param.case.tags:
        with jax.enable_x64(True):
            _compare(param, metal, cpu)
    else:
        _compare(param, metal, cpu)
