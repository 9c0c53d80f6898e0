"""Every op record of tests/op_table.py through our compiler (run_direct) against JAX's CPU.

To keep the run short, the dtypes of one case are checked together: one program applies the
case's function to the inputs of every dtype (64-bit dtypes in a second program, under x64),
and each dtype's outputs are compared with their own tolerances.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.direct import run_direct
from tests.op_table import ALL_CASES, X64, Case, check, tolerance

CPU = jax.devices("cpu")[0]


def _groups() -> list[tuple[Case, tuple[str, ...], bool]]:
    out = []
    for case in ALL_CASES:
        wide = "x64" in case.tags
        std = tuple(d for d in case.dtypes if d not in X64 and not wide)
        x64 = tuple(d for d in case.dtypes if d in X64 or wide)
        if std:
            out.append((case, std, False))
        if x64:
            out.append((case, x64, True))
    return out


GROUPS = _groups()


def _expected(fn, args):
    with jax.default_device(CPU):
        return jax.jit(fn)(*args)


def _grad_fn(fn, argnums):
    def loss(*args):
        out = jax.tree_util.tree_leaves(fn(*args))
        return sum(jnp.sum(jnp.real(o).astype(jnp.float32)) for o in out
                   if jnp.issubdtype(o.dtype, jnp.inexact))

    return jax.grad(loss, argnums=argnums)


def _run(case: Case, dtypes: tuple[str, ...]) -> None:
    inputs = [case.make(np.random.default_rng(i), d) for i, d in enumerate(dtypes)]
    sizes = [len(a) for a in inputs]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    # the gradient (float32 only) is checked in the same program
    g = dtypes.index("float32") if case.grad and "float32" in dtypes else None
    gfn = None
    if g is not None:
        float_args = tuple(i for i, a in enumerate(inputs[g]) if np.asarray(a).dtype.kind == "f")
        assert float_args, f"{case.name}: grad=True but no float argument"
        gfn = _grad_fn(case.fn, float_args)

    def program(*flat):
        outs = [case.fn(*flat[o:o + n]) for o, n in zip(offsets, sizes, strict=True)]
        if gfn is not None and g is not None:
            outs.append(gfn(*flat[offsets[g]:offsets[g] + sizes[g]]))
        return outs

    flat_args = [a for args in inputs for a in args]
    want_tree = _expected(program, flat_args)
    per_part = [jax.tree_util.tree_leaves(t) for t in want_tree]
    got = run_direct(program, *flat_args)
    assert len(got) == sum(len(p) for p in per_part), f"{case.name}: result count"
    labels = list(dtypes) + (["grad"] if gfn is not None else [])
    at = 0
    for label, leaves in zip(labels, per_part, strict=True):
        if label == "grad":
            t = tolerance(case, "float32")
            tol = (max(t[0], 1e-4), max(t[1], 1e-5))
        else:
            tol = tolerance(case, label)
        for i, e in enumerate(leaves):
            check(np.asarray(e), got[at], tol, f"{case.name}[{label}] result {i}")
            at += 1


@pytest.mark.parametrize("group", GROUPS,
                         ids=[f"{c.name}{'-x64' if w else ''}" for c, _, w in GROUPS])
def test_op(group: tuple[Case, tuple[str, ...], bool]) -> None:
    case, dtypes, wide = group
    if wide:
        with jax.enable_x64(True):
            _run(case, dtypes)
    else:
        _run(case, dtypes)



def test_unsupported_scatter_body_is_refused_at_compile_time() -> None:
    from tests.direct import artifact
    from xla_metal.compiler import compile_program
    from xla_metal.errors import UnimplementedError

    # a general update body is applied index by index: refused beyond 4096 indices
    fn = lambda x, i: x.at[i].apply(jnp.sin)
    code = artifact(fn, np.ones(4, np.float32), np.zeros(5000, np.int32))
    with pytest.raises(UnimplementedError, match=r"\[stablehlo.scatter\]"):
        compile_program(code)
