"""What compiled programs report about themselves, compared with JAX's CPU backend:
cost analysis (XLA's own HloCostAnalysis on the program), compiled memory sizes, and
programs that arrive as HLO (PJRT formats "hlo" and "hlo_with_config")."""

from __future__ import annotations

import ctypes as C

import jax
import jax.numpy as jnp
import mlx.core as mx
import numpy as np
import pytest

from xla_metal import bridge
from xla_metal.compiler import compile_program
from xla_metal.errors import InvalidArgumentError
from xla_metal.runtime import api, hlo_program
from xla_metal.runtime.dtypes import to_mlx, to_numpy


def _matmul_sin(x):
    return jnp.sin(x) @ x.T + 1


def _conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME")


def _reduce_exp(x):
    return jnp.exp(x).sum(axis=0) / x.shape[0]


def _loop(x):
    return jax.lax.fori_loop(0, 3, lambda i, v: v * 2 + jnp.tanh(v), x)


PROGRAMS = {
    "matmul_sin": (_matmul_sin, [np.ones((4, 4), np.float32)]),
    "conv": (_conv, [np.ones((1, 2, 6, 6), np.float32), np.ones((3, 2, 3, 3), np.float32)]),
    "reduce_exp": (_reduce_exp, [np.ones((5, 3), np.float32)]),
    "loop": (_loop, [np.ones((8,), np.float32)]),
}


@pytest.mark.parametrize("name", PROGRAMS)
def test_cost_analysis_is_xla_s_for_the_program(metal: jax.Device, cpu: jax.Device,
                                                name: str) -> None:
    fn, args = PROGRAMS[name]
    ours = jax.jit(fn).lower(*[jax.device_put(a, metal) for a in args]).compile().cost_analysis()
    cpu_lowered = jax.jit(fn).lower(*[jax.device_put(a, cpu) for a in args])
    # XLA's analysis of the same program before optimization: the same figures, every one.
    assert isinstance(ours, dict)
    expected = cpu_lowered.cost_analysis()
    assert sorted(ours) == sorted(expected)
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value), key
    # Fusion after optimization changes memory traffic, never the arithmetic.
    compiled = cpu_lowered.compile().cost_analysis()
    assert ours["flops"] == compiled["flops"]
    assert ours.get("transcendentals", 0.0) == compiled.get("transcendentals", 0.0)
    assert ours["flops"] > 0


def test_cost_analysis_of_a_matmul_counts_two_flops_per_multiply_add(
        metal: jax.Device) -> None:
    a = jax.device_put(np.ones((8, 16), np.float32), metal)
    b = jax.device_put(np.ones((16, 4), np.float32), metal)
    costs = jax.jit(jnp.matmul).lower(a, b).compile().cost_analysis()
    assert costs["flops"] == 2 * 8 * 16 * 4
    assert costs["bytes accessed"] == 4 * (8 * 16 + 16 * 4 + 8 * 4)


@pytest.mark.parametrize("name", PROGRAMS)
def test_memory_analysis_sizes_match_cpu(metal: jax.Device, cpu: jax.Device,
                                         name: str) -> None:
    fn, args = PROGRAMS[name]
    ours = jax.jit(fn).lower(*[jax.device_put(a, metal) for a in args]).compile() \
        .memory_analysis()
    theirs = jax.jit(fn).lower(*[jax.device_put(a, cpu) for a in args]).compile() \
        .memory_analysis()
    assert ours is not None
    assert ours.argument_size_in_bytes == theirs.argument_size_in_bytes
    assert ours.output_size_in_bytes == theirs.output_size_in_bytes
    assert ours.alias_size_in_bytes == theirs.alias_size_in_bytes == 0
    assert ours.generated_code_size_in_bytes == 0
    assert ours.host_temp_size_in_bytes == 0


def test_memory_analysis_temp_is_the_peak_of_live_intermediates(metal: jax.Device) -> None:
    x, y = (jax.device_put(np.ones((10,), np.float32), metal) for _ in range(2))

    def fn(x, y):  # no constants: every intermediate is 10 float32 = 40 bytes
        a = x * y
        b = a + y
        c = a * b  # a, b and c are live together here
        return c - y

    stats = jax.jit(fn).lower(x, y).compile().memory_analysis()
    assert stats.argument_size_in_bytes == 80
    assert stats.output_size_in_bytes == 40
    assert stats.temp_size_in_bytes == 3 * 40


def test_memory_analysis_counts_donated_arguments_as_aliased(metal: jax.Device,
                                                             cpu: jax.Device) -> None:
    def step(w, g):
        return w - 0.1 * g

    args = [np.ones((16, 8), np.float32), np.ones((16, 8), np.float32)]
    ours = jax.jit(step, donate_argnums=0).lower(
        *[jax.device_put(a, metal) for a in args]).compile().memory_analysis()
    theirs = jax.jit(step, donate_argnums=0).lower(
        *[jax.device_put(a, cpu) for a in args]).compile().memory_analysis()
    assert ours.alias_size_in_bytes == theirs.alias_size_in_bytes == 16 * 8 * 4


# ------------------------------------------------------------------------------ HLO programs


def _hlo_proto(fn, *args) -> bytes:
    return jax.jit(fn).lower(*args).compiler_ir("hlo").as_serialized_hlo_module_proto()


def _with_config(proto: bytes) -> bytes:
    """An HloModuleProtoWithConfig holding `proto` (field 1) and an empty config (field 2)."""
    length, header = len(proto), bytearray([0x0A])
    while True:
        header.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            break
    return bytes(header) + proto + b"\x12\x00"


def _run_stablehlo(code: bytes, *args: np.ndarray) -> list[np.ndarray]:
    program = compile_program(code, verify_each=True)
    outputs = program.entry()(*[to_mlx(a, a.dtype.name) for a in args])
    mx.eval(outputs)
    return [to_numpy(o) for o in outputs]


@pytest.mark.parametrize("with_config", [False, True], ids=["hlo", "hlo_with_config"])
def test_hlo_module_proto_converts_and_runs_like_cpu(cpu: jax.Device, with_config: bool) -> None:
    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    proto = _hlo_proto(_matmul_sin, x)
    code = hlo_program.to_stablehlo(_with_config(proto) if with_config else proto,
                                    with_config=with_config)
    (ours,) = _run_stablehlo(code, x)
    expected = np.asarray(jax.jit(_matmul_sin)(jax.device_put(x, cpu)))
    assert ours.shape == expected.shape
    assert ours.dtype == expected.dtype
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def _compile_args(code: bytes, fmt: bytes) -> tuple[bridge.CompileArgs, list[object]]:
    created = bridge.ClientCreateArgs()
    api.client_create(created)
    args = bridge.CompileArgs()
    code_buffer = C.create_string_buffer(code, len(code))
    format_buffer = C.create_string_buffer(fmt)
    args.client = created.client
    args.code, args.code_size = C.addressof(code_buffer), len(code)
    args.format, args.format_size = C.addressof(format_buffer), len(fmt)
    return args, [code_buffer, format_buffer]


@pytest.mark.parametrize("fmt", [b"hlo", b"hlo_with_config"])
def test_runtime_compile_accepts_hlo_formats(fmt: bytes) -> None:
    x = np.ones((2, 5), np.float32)
    proto = _hlo_proto(lambda a: (a * 3).sum(axis=1), x)
    args, alive = _compile_args(_with_config(proto) if fmt == b"hlo_with_config" else proto, fmt)
    api.compile(args)
    assert alive
    assert args.num_args == 1 and args.num_outputs == 1
    assert [args.output_meta[i] for i in range(args.output_meta_size)] == [11, 1, 2]  # f32[2]
    api.release(bridge.ReleaseArgs(args.executable))
    api.client_destroy(bridge.ReleaseArgs(args.client))


@pytest.mark.parametrize("fmt, code, message", [
    (b"hlo", b"not a proto", "not an HloModuleProto"),
    (b"hlo_with_config", b"\x12\x00", "has no hlo_module"),
    (b"hlo_with_config", b"\x0a\x7f\x01", "truncated"),
    (b"mhlo", b"", "format 'mhlo' is not supported"),
])
def test_bad_hlo_programs_are_clear_errors(fmt: bytes, code: bytes, message: str) -> None:
    args, _ = _compile_args(code, fmt)
    with pytest.raises((InvalidArgumentError, api.UnimplementedError), match=message):
        api.compile(args)
    api.client_destroy(bridge.ReleaseArgs(args.client))
