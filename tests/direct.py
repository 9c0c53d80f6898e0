"""Runs a JAX function through our compiler directly (no PJRT, no plugin).

Lowers `fn` with JAX, serializes it as the StableHLO portable artifact the plugin would
receive, compiles it with xla_metal.compiler and runs it on MLX. Used to test lowering rules
in isolation; the same tables also run through the real plugin (tests/test_ops.py).
"""

from __future__ import annotations

import collections
import re
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import mlx.core as mx
import numpy as np
from jax import lax
from jax._src.lib import _jax
from jaxlib.mlir.dialects import stablehlo

from xla_metal.compiler import compile_program, ir, ir_codec
from xla_metal.runtime.dtypes import to_mlx, to_numpy


def artifact(fn, *args: Any) -> bytes:
    text = jax.jit(fn, keep_unused=True).lower(*args).as_text(debug_info=True)
    return _jax.mlir.serialize_portable_artifact(text, stablehlo.get_current_version(), False)


def run_direct(fn, *args: Any, platform: str | None = None) -> list[np.ndarray]:
    # compiled for the device MLX runs on here, as the plugin would (a GPU places float64,
    # int64 scatters and linear algebra on MLX's CPU stream), unless told which
    platform = platform or ("gpu" if mx.default_device() == mx.gpu else "cpu")
    program = compile_program(artifact(fn, *args), platform, verify_each=True)
    assert_round_trips(program.module)
    flat = [np.asarray(a) for a in jax.tree_util.tree_leaves(args)]
    inputs = [to_mlx(a, a.dtype.name) for a in flat]
    outputs = program.entry()(*inputs)
    mx.eval(outputs)
    return [to_numpy(o) for o in outputs]


def same_attr(a: Any, b: Any) -> bool:
    """Equal attribute values, of the same types all the way down (arrays: dtype, shape and
    bytes)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(map(same_attr, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_attr(a[k], b[k]) for k in a)
    return bool(a == b) or (a != a and b != b)  # NaN attributes are equal here


def assert_round_trips(module: ir.Module) -> None:
    """The module survives the serialized-executable format unchanged: same listing (types,
    operands, structure), same attributes, locations and function attributes."""
    data = ir_codec.encode(module)
    assert data is not None, "the program holds an attribute the format cannot"
    back = ir_codec.decode(data)
    assert ir.format_module(back, attrs=False) == ir.format_module(module, attrs=False)
    assert back.entry == module.entry
    for fn, fn_back in zip(module.functions.values(), back.functions.values(), strict=True):
        assert same_attr(fn.arg_attrs, fn_back.arg_attrs)
        assert same_attr(fn.result_attrs, fn_back.result_attrs) and fn.public == fn_back.public
        for o, o_back in zip(ir.walk(fn.body), ir.walk(fn_back.body), strict=True):
            assert o.loc == o_back.loc and same_attr(o.attrs, o_back.attrs), o.op


def compare_with_cpu(fn, *args: Any, tol: tuple[float, float],
                     platform: str | None = None) -> None:
    """`fn` run through our compiler directly against JAX's CPU backend, result by result
    (compiled for `platform`'s lowering choices when given, run on MLX's default device)."""
    from tests.op_table import check

    with jax.default_device(jax.devices("cpu")[0]):
        want = [np.asarray(a) for a in jax.tree_util.tree_leaves(jax.jit(fn)(*args))]
    got = run_direct(fn, *args, platform=platform)
    assert len(got) == len(want)
    for i, (w, g) in enumerate(zip(want, got, strict=True)):
        check(w, g, tol, f"result {i}")


def compiled_ops(fn, *args: Any) -> list[ir.Operation]:
    """Every operation of fn's program after our compiler's passes, in program order."""
    module = compile_program(artifact(fn, *args)).module
    return [o for f in module.functions.values() for o in ir.walk(f.body)]


def skip_stage(monkeypatch: Any, words: str) -> None:
    """Leaves the compiler pipeline's stages whose name holds `words` out, for this test."""
    from xla_metal.compiler import passes

    monkeypatch.setattr(passes, "PIPELINE", [s for s in passes.PIPELINE if words not in s[0]])


def primitive_kinds(arrays: list[mx.array]) -> collections.Counter:
    """Primitive name -> count in the MLX graph that computes `arrays`."""
    with tempfile.NamedTemporaryFile("r", suffix=".dot") as f:
        mx.export_to_dot(f.name, *arrays)
        return collections.Counter(re.findall(r'label ="([A-Za-z_]+)"', f.read()))


def graph_kinds(fn, *args: Any) -> collections.Counter:
    """Primitive name -> count in the graph mx.compile evaluates for fn (our compiler)."""
    program = compile_program(artifact(fn, *args))
    inputs = [mx.array(np.asarray(a)) for a in jax.tree_util.tree_leaves(args)]
    return primitive_kinds(program.entry()(*inputs))


def scan_trained(w, xs):
    """A GRU-like scan's loss and its gradient: the scan reads a row of xs and writes a row
    of two stacked outputs each step; its gradient reads those rows back in reverse."""
    def loss(w):
        def cell(h, x):
            h = jnp.tanh(h @ w + x)
            return h, (h, jnp.sin(h))
        _, (hs, ss) = lax.scan(cell, jnp.zeros(xs.shape[1:], xs.dtype), xs)
        return jnp.sum(hs ** 2) + jnp.sum(ss)
    return jax.value_and_grad(loss)(w)
