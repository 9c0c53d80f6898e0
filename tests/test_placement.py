"""Stream placement (design principle 5): compiled for platform 'gpu', every step that reads
or produces float64 is placed on MLX's CPU stream, decided when the plan is built; compiled
for 'cpu', nothing is. The GPU-placed plan still runs here (MLX's CPU device) with JAX's
values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mlx.core as mx
import numpy as np
import pytest
from jax import lax

from tests.direct import artifact
from tests.op_table import check
from xla_metal.compiler import compile_program
from xla_metal.compiler.ir import Op
from xla_metal.compiler.placement import evaluate
from xla_metal.runtime.dtypes import to_mlx, to_numpy


def _mixed(x64, x32):
    """float64 work, float32 work, conversions between them, a loop and a reduction."""
    a = jnp.sin(x64) * 2.0                      # float64 only
    b = jnp.tanh(x32) + 1.0                     # float32 only
    c = a.astype(jnp.float32) * b               # convert f64 -> f32, then float32
    d = lax.fori_loop(0, 3, lambda i, s: s * 1.5 + a, a)  # a float64 loop carry
    return c, jnp.sum(d), jnp.max(b)


def _program(platform):
    with jax.enable_x64(True):
        args = (np.linspace(-1, 1, 6).reshape(2, 3), np.linspace(0, 2, 6, dtype=np.float32)
                .reshape(2, 3))
        return compile_program(artifact(_mixed, *args), platform), args


def _touches_f64(operation):
    return any(getattr(v.type, "dtype", None) == "float64"
               for v in (*operation.operands, *operation.results))


def test_gpu_plan_places_float64_steps_on_cpu_stream():
    program, _ = _program("gpu")
    placed = program.cpu_stream_ops()
    assert placed, "no step placed on the CPU stream"
    assert all(_touches_f64(o) for o in placed), [o.op for o in placed if not _touches_f64(o)]
    ops = {o.op for o in placed}
    # the float64 sine, the f64 -> f32 conversion and the float64 reduction are all there
    assert {Op.SIN, Op.CONVERT, Op.REDUCE} <= ops, ops
    # float32-only work stays on the device's stream; the loop itself only routes values
    assert Op.TANH not in ops and Op.WHILE not in ops
    # the float64 steps inside the loop body are placed one by one
    placed_ids = {id(o) for o in placed}
    loop_body_f64 = [o for fn in program.module.functions.values() for w in _walk(fn.body)
                     if w.op is Op.WHILE for r in w.regions for o in _walk(r)
                     if _touches_f64(o) and o.op not in _NOT_STEPS]
    assert all(id(o) in placed_ids for o in loop_body_f64)
    # so are those of the functions the body calls (jax 0.10 emits such functions; 0.11
    # inlines them, and then there are none to check)
    called = [o for fn in program.module.functions.values() if fn.name != program.module.entry
              for o in _walk(fn.body) if _touches_f64(o) and o.op not in _NOT_STEPS]
    assert all(id(o) in placed_ids for o in called)
    if jax.__version_info__ < (0, 11):
        assert called


# constants are values, not steps; calls and returns only route values
_NOT_STEPS = (Op.CONSTANT, Op.REGION_RETURN, Op.RETURN, Op.CALL)


def _walk(block):
    for o in block.ops:
        yield o
        for r in o.regions:
            yield from _walk(r)


def test_cpu_plan_places_nothing():
    program, _ = _program("cpu")
    assert program.cpu_stream_ops() == []


@pytest.mark.parametrize("platform", ["gpu", "cpu"])
def test_placed_plan_gives_jax_values(platform, cpu):
    program, args = _program(platform)
    with jax.enable_x64(True):
        expected = [np.asarray(e) for e in jax.jit(_mixed)(*[jax.device_put(a, cpu)
                                                              for a in args])]
    # a 'cpu' plan runs on MLX's CPU device; a 'gpu' plan on the default device (the GPU,
    # where there is one: then the placement is what makes it run at all)
    device = mx.cpu if platform == "cpu" else mx.default_device()
    with mx.stream(device):
        outputs = program.entry()(*[to_mlx(a, a.dtype.name) for a in args])
        evaluate(outputs)
    got = [to_numpy(o) for o in outputs]
    assert len(got) == len(expected)
    for e, g in zip(expected, got, strict=True):
        check(e, g, (1e-6, 1e-6), platform)


def _straight(x64, x32):
    return jnp.exp(x64).astype(jnp.float32) + jnp.cos(x32), jnp.sum(x64 * x64)


def test_placed_straight_line_plan_is_not_fused(cpu):
    # mx.compile fuses element-wise steps across streams (a placed float64 step would land in
    # a GPU kernel), so a 'gpu' plan with float64 steps is not fused; a 'cpu' plan still is
    with jax.enable_x64(True):
        args = (np.linspace(-1, 1, 4), np.linspace(0, 1, 4, dtype=np.float32))
        program = compile_program(artifact(_straight, *args), "gpu")
        expected = [np.asarray(e) for e in jax.jit(_straight)(*[jax.device_put(a, cpu)
                                                                for a in args])]
    assert {o.op for o in program.cpu_stream_ops()} >= {Op.EXP, Op.CONVERT, Op.MULTIPLY}
    assert Op.COS not in {o.op for o in program.cpu_stream_ops()}
    assert not program.may_fuse
    with jax.enable_x64(True):
        assert compile_program(artifact(_straight, *args), "cpu").may_fuse
    outputs = program.entry()(*[to_mlx(a, a.dtype.name) for a in args])
    evaluate(outputs)
    for e, g in zip(expected, [to_numpy(o) for o in outputs], strict=True):
        check(e, g, (1e-6, 1e-6), "straight")


def test_cpu_only_ops_are_placed_whatever_their_types(monkeypatch):
    from xla_metal.compiler import placement

    monkeypatch.setattr(placement, "CPU_ONLY_OPS", {Op.TANH})
    program, _ = _program("gpu")
    assert Op.TANH in {o.op for o in program.cpu_stream_ops()}
    assert compile_program(artifact(jnp.tanh, np.ones(3, np.float32)), "cpu") \
        .cpu_stream_ops() == []


@pytest.mark.parametrize("dtype,placed", [(np.int64, True), (np.uint64, True), (np.int32, False)])
def test_scatter_of_64_bit_ints_is_placed(dtype, placed):
    # MLX's GPU scatter refuses 64-bit integers (MLX-CUDA says so; Metal has no 64-bit atomics)
    def add_at(x, i, u):
        return x.at[i].add(u)

    with jax.enable_x64(True):
        args = (np.arange(5, dtype=dtype), np.array([1, 3, 1]), np.ones(3, dtype))
        program = compile_program(artifact(add_at, *args), "gpu")
    assert (Op.SCATTER in {o.op for o in program.cpu_stream_ops()}) == placed
    outputs = program.entry()(*[to_mlx(a, a.dtype.name) for a in args])
    mx.eval(outputs)
    np.testing.assert_array_equal(to_numpy(outputs[0]), np.array([0, 3, 2, 4, 4], dtype))
