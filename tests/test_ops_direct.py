"""Every op record of tests/op_table.py through our compiler (run_direct) against JAX's CPU."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.direct import run_direct
from tests.op_table import ALL_CASES, X64, Param, check, expand, tolerance

CPU = jax.devices("cpu")[0]
PARAMS = list(expand(ALL_CASES))


def _expected(fn, args):
    with jax.default_device(CPU):
        return jax.tree_util.tree_leaves(jax.jit(fn)(*args))


def _grad_fn(fn, argnums):
    def loss(*args):
        out = jax.tree_util.tree_leaves(fn(*args))
        return sum(jnp.sum(jnp.real(o).astype(jnp.float32)) for o in out
                   if jnp.issubdtype(o.dtype, jnp.inexact))

    return jax.grad(loss, argnums=argnums)


def _run(param: Param, seed: int = 0) -> None:
    case = param.case
    rng = np.random.default_rng(abs(hash(param.id)) % 2**32 if seed else 0)
    args = case.make(rng, param.dtype)
    expected = _expected(case.fn, args)
    got = run_direct(case.fn, *args)
    assert len(got) == len(expected), f"{param.id}: {len(got)} results, expected {len(expected)}"
    tol = tolerance(case, param.dtype)
    for i, (e, g) in enumerate(zip(expected, got, strict=True)):
        check(e, g, tol, f"{param.id} result {i}")
    if case.grad and param.dtype == "float32":
        float_args = tuple(i for i, a in enumerate(args) if np.asarray(a).dtype.kind == "f")
        assert float_args, f"{param.id}: grad=True but no float argument"
        gsel = _grad_fn(case.fn, float_args)

        expected_g = _expected(gsel, args)
        got_g = run_direct(gsel, *args)
        assert len(got_g) == len(expected_g)
        for i, (e, g) in enumerate(zip(expected_g, got_g, strict=True)):
            check(e, g, (max(tol[0], 1e-4), max(tol[1], 1e-5)), f"{param.id} grad {i}")


@pytest.mark.parametrize("param", PARAMS, ids=[p.id for p in PARAMS])
def test_op(param: Param) -> None:
    if param.dtype in X64 or "x64" in param.case.tags:
        with jax.enable_x64(True):
            _run(param)
    else:
        _run(param)
