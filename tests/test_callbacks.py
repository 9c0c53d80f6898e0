"""Host callbacks through the plugin: jax.debug.print/callback, jax.pure_callback and
io_callback (ordered and not) inside jit, loops, cond, vmap and grad, checked against JAX's
CPU backend; tokens of ordered effects; errors; what may never be serialized or cached."""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from jax import lax
from jax._src import core as jax_core
from jax.experimental import io_callback

from xla_metal import host_callbacks

F32 = jax.ShapeDtypeStruct((3,), np.float32)
X = np.array([0.5, 1.0, 2.0], np.float32)


def _on(device: jax.Device, fn: Callable[..., Any], *args: Any) -> list[np.ndarray]:
    """fn jitted on `device` (its arguments placed there), results as numpy arrays."""
    placed = jax.device_put(args, device)
    with jax.default_device(device):
        out = jax.jit(fn)(*placed)
    jax.effects_barrier()
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(out)]


def _same_as_cpu(fn: Callable[..., Any], metal: jax.Device, cpu: jax.Device, *args: Any,
                 rtol: float = 1e-6) -> list[np.ndarray]:
    want = _on(cpu, fn, *args)
    got = _on(metal, fn, *args)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol)
    return got


def _printed(capsys: pytest.CaptureFixture[str], device: jax.Device, fn: Callable[..., Any],
             *args: Any) -> str:
    capsys.readouterr()
    _on(device, fn, *args)
    return capsys.readouterr().out


# --------------------------------------------------------------------------- each kind


def test_debug_print_prints_what_cpu_prints(metal, cpu, capsys) -> None:
    def f(x):
        jax.debug.print("x={x} sum={s}", x=x, s=x.sum())
        jax.debug.print("ordered {} then {}", x[0], 7, ordered=True)
        return x * 2

    on_cpu = _printed(capsys, cpu, f, X)
    on_metal = _printed(capsys, metal, f, X)
    # (an unordered print may come before or after the ordered one, on CPU too)
    assert sorted(on_metal.splitlines()) == sorted(on_cpu.splitlines()) == [
        "ordered 0.5 then 7", "x=[0.5 1.  2. ] sum=3.5"]


def test_ordered_debug_prints_come_in_program_order(metal, cpu, capsys) -> None:
    def f(x):
        for i in range(4):
            jax.debug.print("{} {}", i, x[i % 3], ordered=True)
        return x

    on_metal = _printed(capsys, metal, f, X)
    assert on_metal == _printed(capsys, cpu, f, X) == "0 0.5\n1 1.0\n2 2.0\n3 0.5\n"


def test_debug_callback_receives_the_values(metal) -> None:
    seen: list[tuple[np.ndarray, np.ndarray, str]] = []

    def f(x, n):
        jax.debug.callback(lambda a, b, tag: seen.append((np.asarray(a), np.asarray(b), tag)),
                           x * 3, n + 1, tag="static")
        return x

    _on(metal, f, X, np.int32(4))
    assert len(seen) == 1
    a, b, tag = seen[0]
    assert a.shape == (3,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, X * 3)
    assert b.shape == () and b.dtype == np.int32 and int(b) == 5
    assert tag == "static"


def test_pure_callback_values_match_cpu(metal, cpu) -> None:
    def f(x, y):
        out = jax.ShapeDtypeStruct((3,), np.float32), jax.ShapeDtypeStruct((), np.int32)
        s, n = jax.pure_callback(lambda a, b: (np.sin(a) * b, np.int32(a.size)), out, x, y)
        return s + 1, n * 2

    _same_as_cpu(f, metal, cpu, X, np.float32(3))


def test_pure_callback_with_pytrees(metal, cpu) -> None:
    def host(tree):
        return {"sum": tree["a"] + tree["b"][0], "prod": tree["a"] * tree["b"][1]}

    def f(x):
        shapes = {"sum": F32, "prod": F32}
        return jax.pure_callback(host, shapes, {"a": x, "b": (x * 2, x - 1)})

    _same_as_cpu(f, metal, cpu, X)


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.int16, np.int32, np.uint8,
                                   np.uint16, np.uint32, np.float16, ml_dtypes.bfloat16,
                                   np.float32, np.complex64,
                                   # emulated: computed in a carrier, handed over as the type
                                   ml_dtypes.int4, ml_dtypes.uint4, ml_dtypes.int2,
                                   ml_dtypes.uint2, ml_dtypes.float8_e4m3fn,
                                   ml_dtypes.float8_e5m2, ml_dtypes.float4_e2m1fn],
                         ids=lambda d: np.dtype(d).name)
def test_pure_callback_passes_each_dtype(metal, cpu, dtype) -> None:
    value = (np.arange(6).reshape(2, 3) % 3).astype(dtype)

    def f(x):
        return jax.pure_callback(lambda a: a[::-1].copy(), jax.ShapeDtypeStruct(x.shape, x.dtype),
                                 x)

    got = _same_as_cpu(f, metal, cpu, value)
    np.testing.assert_array_equal(got[0], value[::-1])


@pytest.mark.parametrize("ordered", [False, True], ids=["unordered", "ordered"])
def test_io_callback_returns_values_and_has_effects(metal, ordered) -> None:
    log: list[float] = []

    def host(a):
        log.append(float(a.sum()))
        return (a * 10).astype(np.float32)

    def f(x):
        return io_callback(host, F32, x + 1, ordered=ordered) - 1

    (got,) = _on(metal, f, X)
    assert got.shape == (3,) and got.dtype == np.float32
    np.testing.assert_allclose(got, (X + 1) * 10 - 1)
    assert log == [pytest.approx(float((X + 1).sum()))]


def test_ordered_io_callbacks_keep_program_and_call_order(metal) -> None:
    log: list[tuple[str, int]] = []

    def f(x):
        io_callback(lambda v: log.append(("a", int(v))), None, x, ordered=True)
        io_callback(lambda v: log.append(("b", int(v))), None, x + 100, ordered=True)
        return x

    step = jax.jit(f)
    for i in range(4):
        step(jax.device_put(np.int32(i), metal))
    jax.effects_barrier()
    assert log == [(k, i + (100 if k == "b" else 0)) for i in range(4) for k in "ab"]


def test_unused_pure_callback_is_not_called(metal) -> None:
    calls: list[int] = []

    def f(x):
        jax.pure_callback(lambda a: calls.append(1) or a, F32, x)
        return x * 2

    (got,) = _on(metal, f, X)
    np.testing.assert_allclose(got, X * 2)
    assert calls == []


def test_callback_in_a_nested_jit_matches_cpu(metal, cpu, capsys) -> None:
    @jax.jit
    def inner(x):
        jax.debug.print("inner {}", x)
        return jax.pure_callback(lambda a: a * 4, F32, x)

    def f(x):
        return inner(x) + inner(x + 1)

    on_cpu = _printed(capsys, cpu, f, X)
    on_metal = _printed(capsys, metal, f, X)
    assert sorted(on_metal.splitlines()) == sorted(on_cpu.splitlines())
    assert len(on_metal.splitlines()) == 2
    _same_as_cpu(f, metal, cpu, X)


def test_a_callback_may_run_metal_programs_itself(metal) -> None:
    inner = jax.jit(lambda a: jnp.sin(a) * 2)

    def host(a):  # runs while the outer program runs: re-enters the plugin
        nested = jax.jit(lambda b: jax.pure_callback(lambda c: c + 1, F32, b))
        return np.asarray(nested(inner(jax.device_put(np.asarray(a), metal))))

    (got,) = _on(metal, lambda x: jax.pure_callback(host, F32, x) * 3, X)
    np.testing.assert_allclose(got, (np.sin(X) * 2 + 1) * 3, rtol=1e-6)


# ------------------------------------------------------------------ inside control flow


def test_callbacks_inside_scan_match_cpu(metal, cpu, capsys) -> None:
    def f(xs):
        def body(carry, x):
            jax.debug.print("carry={c} x={x}", c=carry, x=x)
            y = jax.pure_callback(lambda a, b: (a * b + 1).astype(np.float32),
                                  jax.ShapeDtypeStruct((), np.float32), carry, x)
            return carry + y, y

        return lax.scan(body, np.float32(1), xs)

    xs = np.array([1.0, 2.0, 3.0], np.float32)
    on_cpu = _printed(capsys, cpu, f, xs)
    on_metal = _printed(capsys, metal, f, xs)
    assert on_metal == on_cpu and on_metal.count("carry=") == 3
    _same_as_cpu(f, metal, cpu, xs)


def test_ordered_io_callback_inside_fori_loop_and_while(metal, cpu) -> None:
    for device in (cpu, metal):
        log: list[int] = []

        def f(n, log=log):
            def body(i, c):
                io_callback(lambda v: log.append(int(v)), None, i * 10, ordered=True)
                return c + i

            total = lax.fori_loop(0, n, body, 0)
            return lax.while_loop(lambda c: c < 100,
                                  lambda c: io_callback(lambda v: (v * 3).astype(np.int32),
                                                        jax.ShapeDtypeStruct((), np.int32),
                                                        c, ordered=True),
                                  total)

        (got,) = _on(device, f, np.int32(5))
        assert int(got) == 270 and got.dtype == np.int32  # 10 -> 30 -> 90 -> 270
        assert log == [0, 10, 20, 30, 40]


@pytest.mark.parametrize("flag", [True, False])
def test_callbacks_inside_cond_match_cpu(metal, cpu, capsys, flag) -> None:
    def f(p, x):
        def yes(x):
            jax.debug.print("yes {}", x)
            return io_callback(lambda a: a + 1, F32, x)

        def no(x):
            return jax.pure_callback(lambda a: a - 1, F32, x)

        return lax.cond(p, yes, no, x)

    on_cpu = _printed(capsys, cpu, f, np.bool_(flag), X)
    on_metal = _printed(capsys, metal, f, np.bool_(flag), X)
    assert on_metal == on_cpu == ("yes [0.5 1.  2. ]\n" if flag else "")
    _same_as_cpu(f, metal, cpu, np.bool_(flag), X)


# ------------------------------------------------------------------- vmap and grad


@pytest.mark.parametrize("vmap_method", ["sequential", "expand_dims", "broadcast_all"])
def test_vmapped_pure_callback_matches_cpu(metal, cpu, vmap_method) -> None:
    shapes: list[tuple[int, ...]] = []

    def host(a, b):
        shapes.append(a.shape)
        return (np.sin(a) + b).astype(np.float32)

    def f(xs, b):
        one = jax.ShapeDtypeStruct((), np.float32)
        return jax.vmap(lambda x: jax.pure_callback(host, one, x, b, vmap_method=vmap_method))(xs)

    _same_as_cpu(f, metal, cpu, X, np.float32(2))
    half = len(shapes) // 2  # the first half ran on CPU, the second on metal
    assert shapes[half:] == shapes[:half]


def test_vmapped_unordered_io_callback_and_debug_print(metal, cpu, capsys) -> None:
    def f(xs):
        def one(x):
            jax.debug.print("item {}", x)
            return io_callback(lambda a: (a * 2).astype(np.float32),
                               jax.ShapeDtypeStruct((), np.float32), x)

        return jax.vmap(one)(xs)

    on_cpu = _printed(capsys, cpu, f, X)
    on_metal = _printed(capsys, metal, f, X)
    assert sorted(on_metal.splitlines()) == sorted(on_cpu.splitlines())
    assert len(on_metal.splitlines()) == 3
    _same_as_cpu(f, metal, cpu, X)


def test_grad_through_custom_jvp_around_pure_callback(metal, cpu) -> None:
    @jax.custom_jvp
    def sin(x):
        return jax.pure_callback(np.sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    @sin.defjvp
    def sin_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        cos = jax.pure_callback(np.cos, jax.ShapeDtypeStruct(x.shape, x.dtype), x)
        return sin(x), cos * t

    got = _same_as_cpu(jax.grad(lambda x: sin(x).sum()), metal, cpu, X)
    np.testing.assert_allclose(got[0], np.cos(X), rtol=1e-6)


def test_debug_print_under_grad(metal, cpu, capsys) -> None:
    def loss(x):
        jax.debug.print("x {}", x)
        return (x ** 2).sum()

    f = jax.grad(loss)
    assert _printed(capsys, metal, f, X) == _printed(capsys, cpu, f, X)
    _same_as_cpu(f, metal, cpu, X)


def test_emit_python_callback_from_a_users_own_primitive(metal, cpu) -> None:
    from jax._src import core as jcore
    from jax.interpreters import mlir

    seen: list[np.ndarray] = []
    twice_p = jcore.Primitive("xla_metal_test_host_twice")
    twice_p.def_impl(lambda x: x * 2)
    twice_p.def_abstract_eval(lambda x: x)

    def lowering(ctx, x):
        def host(a):
            seen.append(np.asarray(a))
            return (np.asarray(a) * 2,)

        results, _, _ = mlir.emit_python_callback(ctx, host, None, [x], ctx.avals_in,
                                                  ctx.avals_out, has_side_effect=False)
        return results

    mlir.register_lowering(twice_p, lowering)
    _same_as_cpu(lambda x: twice_p.bind(x) + 1, metal, cpu, X)
    assert len(seen) == 2  # once on CPU, once on metal
    np.testing.assert_array_equal(seen[1], X)


def test_checkify_runtime_check_on_metal(metal) -> None:
    from jax._src import config
    from jax.experimental import checkify

    def f(x):
        checkify.check(x > 0, "x must be positive, got {}", x)
        return x * 2

    with config.xla_runtime_errors(True):  # checks raise while the program runs
        step = jax.jit(f)
        assert float(step(jax.device_put(np.float32(3), metal))) == 6.0
        with pytest.raises(RuntimeError, match="x must be positive, got -1.0"):
            step(jax.device_put(np.float32(-1), metal)).block_until_ready()


# -------------------------------------------------------------------------- tokens


def test_tokens_as_arguments_and_results(metal) -> None:
    with jax.default_device(metal):
        token = lax.create_token()
        arr, out = jax.jit(lambda a, t: (a + 1, t))(jnp.ones(3), token)
        made = jax.jit(lax.create_token)(1.0)
        _, captured = jax.jit(lambda x: (x + 2, token))(7)
    for t in (token, out, made, captured):
        assert isinstance(t, jax_core.Token)
    assert out is not token
    np.testing.assert_array_equal(np.asarray(arr), np.full(3, 2.0, np.float32))
    with pytest.raises(RuntimeError, match="token"):
        token._buf._value  # a token holds no data  # noqa: B018


def test_dce_sink_keeps_its_operand_and_does_nothing(metal) -> None:
    def f(x):
        lax.dce_sink(x + 1, prevent_mlir_dce=True)
        return x * 2

    (got,) = _on(metal, f, X)
    np.testing.assert_allclose(got, X * 2)


# -------------------------------------------------------------------------- errors


def test_exception_in_callback_reaches_the_user(metal, caplog) -> None:
    def fail(a):
        raise ValueError("the host said no")

    f = jax.jit(lambda x: jax.pure_callback(fail, F32, x) + 1)
    x = jax.device_put(X, metal)
    with pytest.raises(RuntimeError) as info:
        f(x).block_until_ready()
    message = str(info.value)
    assert "[callback] jax.pure_callback" in message and "fail" in message
    assert "ValueError: the host said no" in message
    assert "test_callbacks.py" in message  # the user's line, and the callback's traceback
    # the process stays usable
    np.testing.assert_allclose(np.asarray(jax.jit(lambda a: a + 1)(x)), X + 1)


@pytest.mark.parametrize("callback", [jax.pure_callback, io_callback,
                                      lambda *a: io_callback(*a, ordered=True)],
                         ids=["pure", "io", "io_ordered"])
@pytest.mark.parametrize("returns, problem", [
    (lambda a: a[:2], r"result 0 is float32\[2\]; the program expects float32\[3\]"),
    (lambda a: a.astype(np.int32), r"result 0 is int32\[3\]; the program expects float32\[3\]"),
    (lambda a: (a, a), r"returned 2 values; the program expects 1"),
], ids=["shape", "dtype", "count"])
def test_wrong_results_are_refused_by_name(metal, callback, returns, problem) -> None:
    def wrong(a):
        return returns(a)

    f = jax.jit(lambda x: callback(wrong, F32, x))
    with pytest.raises(RuntimeError, match=problem) as info:
        f(jax.device_put(X, metal)).block_until_ready()
    assert "wrong" in str(info.value) and "test_callbacks.py" in str(info.value)


# --------------------------------------------------------- lifetime, serialization, caches


def test_serializing_an_executable_with_a_callback_is_refused(metal) -> None:
    from jax.experimental.serialize_executable import serialize

    x = jax.device_put(X, metal)
    compiled = jax.jit(lambda a: jax.pure_callback(np.tanh, F32, a)).lower(x).compile()
    with pytest.raises(Exception, match=r"\[serialize\].*jax\.pure_callback\(tanh\)"):
        serialize(compiled)


def _callback_key(text: str) -> str:
    """The host-callback key in a program's text (StableHLO or HLO)."""
    found = re.search(r'backend_config ?= ?"([0-9a-f]+:[0-9]+)"', text)
    assert found, text
    return found.group(1)


def test_the_executable_keeps_its_callback_alive(metal) -> None:
    x = jax.device_put(X, metal)
    compiled = jax.jit(lambda a: jax.pure_callback(lambda v: v * 5, F32, a)).lower(x).compile()
    key = _callback_key(compiled.as_text())
    jax.clear_caches()
    gc.collect()
    assert host_callbacks.lookup(key) is not None  # only the executable holds it now
    np.testing.assert_allclose(np.asarray(compiled(x)), X * 5)
    del compiled
    gc.collect()
    assert host_callbacks.lookup(key) is None


def test_a_program_with_a_foreign_callback_key_does_not_compile(metal) -> None:
    from xla_metal.compiler import compile_program
    from xla_metal.errors import FailedPreconditionError

    x = jax.device_put(X, metal)
    lowered = jax.jit(lambda a: jax.pure_callback(np.tanh, F32, a)).lower(x)
    text = lowered.as_text()
    key = _callback_key(text)
    assert host_callbacks.lookup(key) is not None  # the lowering holds it
    foreign = text.replace(key, "0123456789abcdef:1")
    with pytest.raises(FailedPreconditionError, match="0123456789abcdef:1.*not alive"):
        compile_program(foreign.encode())


_CACHE_PROGRAM = """
import json, os, sys
import jax, numpy as np
jax.config.update("jax_compilation_cache_dir", sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
metal = jax.devices("metal")[0]
x = jax.device_put(np.arange(3, dtype=np.float32), metal)
seen = []
y = jax.jit(lambda a: jax.pure_callback(lambda v: seen.append(1) or np.asarray(v) * 2,
                                        jax.ShapeDtypeStruct((3,), np.float32), a))(x)
after_callback = len(os.listdir(sys.argv[1]))  # (numpy in the callback: no CPU jit)
z = jax.jit(lambda a: a * 3)(x)
print(json.dumps({"y": np.asarray(y).tolist(), "z": np.asarray(z).tolist(), "calls": len(seen),
                  "after_callback": after_callback,
                  "after_plain": len(os.listdir(sys.argv[1]))}))
"""


def test_persistent_cache_never_stores_a_program_with_a_callback(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-c", _CACHE_PROGRAM, str(tmp_path)],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["y"] == [0.0, 2.0, 4.0] and result["calls"] == 1
    assert result["z"] == [0.0, 3.0, 6.0]
    assert result["after_callback"] == 0  # nothing written for the callback program
    assert result["after_plain"] >= 1  # while the cache itself works


_METAL_ONLY_PROGRAM = """
import jax, numpy as np
from jax.experimental import io_callback
kinds = []
def f(x):
    jax.debug.print("x={}", x)
    y = jax.pure_callback(lambda a: kinds.append(type(a).__name__) or a + 1,
                          jax.ShapeDtypeStruct((2,), np.float32), x)
    return io_callback(lambda a: (a * 2).astype(np.float32),
                       jax.ShapeDtypeStruct((2,), np.float32), y, ordered=True)
out = jax.jit(f)(np.array([1.0, 2.0], np.float32))
print(jax.devices()[0].platform, kinds, np.asarray(out).tolist())
"""


def test_callbacks_work_with_metal_as_the_only_platform() -> None:
    env = dict(os.environ, JAX_PLATFORMS="metal")
    out = subprocess.run([sys.executable, "-c", _METAL_ONLY_PROGRAM], capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[-2:] == ["x=[1. 2.]",
                                            "metal ['ndarray'] [4.0, 6.0]"]


# A callback of a program on JAX's CPU backend runs on one of XLA's worker threads; here it
# runs a program on 'metal' there, on whichever worker XLA picks. Those threads end after
# Python has shut down, and MLX's compile cache of each must hold no Python objects then
# (compiler/plan.py, PerThreadCompiled). Before the fix three of four such processes aborted
# at exit ("terminate called without an active exception"); three runs here.
_CPU_CALLBACK_RUNS_METAL = """
import jax, jax.numpy as jnp, numpy as np
inner = jax.jit(lambda v: v * 2.0)
def host(v):
    return np.asarray(inner(jax.device_put(v, jax.devices("metal")[0]))) + 1.0
def step(x, with_callback):
    y = jnp.tanh(x) * 0.5 + 0.25
    if with_callback:
        y = jax.pure_callback(host, jax.ShapeDtypeStruct(y.shape, y.dtype), y)
    return y
f = jax.jit(step, static_argnums=1)
x = jax.device_put(np.linspace(-2, 2, 64 * 64, dtype=np.float32).reshape(64, 64),
                   jax.devices("cpu")[0])
for i in range(40):
    x = f(x, i % 2 == 1)
print(np.asarray(x)[0, :4].tolist())
"""


def _cpu_steps_with_callbacks(x: np.ndarray) -> np.ndarray:
    for i in range(40):
        x = np.tanh(x) * 0.5 + 0.25
        if i % 2 == 1:
            x = x * 2 + 1
    return x


def test_a_cpu_programs_callback_that_runs_on_metal_exits_cleanly() -> None:
    env = dict(os.environ, JAX_PLATFORMS="metal,cpu")
    want = _cpu_steps_with_callbacks(np.linspace(-2, 2, 64 * 64, dtype=np.float32)[:4])
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", _CPU_CALLBACK_RUNS_METAL],
                             capture_output=True, text=True, timeout=300, env=env)
        assert out.returncode == 0, out.stderr[-3000:]
        np.testing.assert_allclose(json.loads(out.stdout.splitlines()[-1]), want, rtol=1e-5)
