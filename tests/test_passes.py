"""Passes over the program IR, checked on the IR they leave and on the values it computes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from tests.direct import artifact, run_direct
from xla_metal.compiler import ir
from xla_metal.compiler.importer import import_module
from xla_metal.compiler.passes import run_pipeline


def _zero_size_work(x):
    return x[:, :0] * 2, jnp.sort(x[:0], axis=0), x[:, 1:1].sum(1) + 1, lax.cumlogsumexp(x, 1)


def test_zero_size_results_become_constants() -> None:
    x = np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5)
    module = run_pipeline(import_module(artifact(_zero_size_work, x)), verify_each=True)
    for fn in module.functions.values():
        for operation in ir.walk(fn.body):
            empty = [r for r in operation.results
                     if isinstance(r.type, ir.TensorType) and 0 in r.type.shape]
            # calls are kept (a callee may have effects); the ops inside them are folded
            assert not empty or operation.op in (ir.Op.CONSTANT, ir.Op.CALL), operation.op
    got = run_direct(_zero_size_work, x)
    want = jax.tree_util.tree_leaves(jax.jit(_zero_size_work, backend="cpu")(x))
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-6)
