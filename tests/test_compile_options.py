"""Compiler options (`jax.jit(..., compiler_options=...)`) are checked as the CPU backend checks
them: XLA's debug options are accepted, unknown names and ill-typed values are refused."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxlib import _jax

from xla_metal.errors import InvalidArgumentError
from xla_metal.runtime import compile_options


def _f(x):
    return jnp.sqrt(x ** 2) + 1.0


def _on(device: jax.Device, options: dict) -> np.ndarray:
    x = jax.device_put(np.float32(-3.0), device)
    return np.asarray(jax.jit(_f, compiler_options=options)(x))


GOOD = [
    {"xla_embed_ir_in_executable": True},
    {"xla_embed_ir_in_executable": "False"},  # strings are parsed into the field's type
    {"xla_dump_max_hlo_modules": 200, "xla_dump_to": "/nonexistent"},
    {"xla_gpu_auto_spmd_partitioning_memory_budget_ratio": 0.5},
    {"xla_backend_optimization_level": "2"},
    {"exec_time_optimization_effort": 0.0},  # JAX moves these into the build options
]

BAD = [
    ({"invalid_key": "invalid_value"}, "No such compile option: 'invalid_key'"),
    ({"exec_time_compilation_effort": 0.0}, "No such compile option"),
    ({"xla_embed_ir_in_executable": "invalid_value"}, "is not a valid bool value"),
    ({"xla_embed_ir_in_executable": 3}, "is not a valid bool value"),
    ({"xla_dump_max_hlo_modules": "many"}, "is not a valid int32 value"),
    ({"xla_dump_max_hlo_modules": 1.5}, "is not a valid int32 value"),
    ({"xla_dump_to": True}, "is not a valid string value"),
]


@pytest.mark.parametrize("options", GOOD, ids=lambda o: ",".join(o))
def test_options_the_cpu_backend_accepts_are_accepted(metal, cpu, options) -> None:
    try:
        want = _on(cpu, options)
    except jax.errors.JaxRuntimeError as e:
        # jax 0.11.2's CPU backend refuses exec_time_optimization_effort (jax 0.10 moves it to
        # the build options itself): the installed CPU backend is the yardstick either way.
        message = str(e).split("INVALID_ARGUMENT: ", 1)[-1].splitlines()[0]
        with pytest.raises(jax.errors.JaxRuntimeError, match=re.escape(message)):
            _on(metal, options)
        return
    np.testing.assert_array_equal(_on(metal, options), want)


@pytest.mark.parametrize(("options", "message"), BAD, ids=lambda o: str(o)[:40])
def test_options_the_cpu_backend_refuses_are_refused(metal, cpu, options, message) -> None:
    with pytest.raises(jax.errors.JaxRuntimeError, match=message):
        _on(cpu, options)
    with pytest.raises(jax.errors.JaxRuntimeError, match=message):
        _on(metal, options)


def test_a_refused_option_names_our_stage_and_the_option(metal) -> None:
    with pytest.raises(jax.errors.JaxRuntimeError,
                       match=r"INVALID_ARGUMENT: \[compile\] While setting option "
                             r"xla_dump_to, 'true' is not a valid string value"):
        _on(metal, {"xla_dump_to": True})


def test_overrides_are_read_from_the_compile_options_proto() -> None:
    proto = _jax.CompileOptions()
    proto.env_option_overrides = [("a", True), ("b", "text"), ("c", -3), ("d", 0.25)]
    assert compile_options.env_option_overrides(proto.SerializeAsString()) == [
        ("a", True), ("b", "text"), ("c", -3), ("d", 0.25)]
    assert compile_options.env_option_overrides(b"") == []


def test_a_malformed_compile_options_proto_is_an_error() -> None:
    with pytest.raises(InvalidArgumentError, match="not a valid CompileOptionsProto"):
        compile_options.check(b"\x3a\xff")


def test_the_debug_option_table_comes_from_jaxlib() -> None:
    types = compile_options.debug_option_types()
    assert types["xla_embed_ir_in_executable"] == 8  # bool
    assert types["xla_dump_to"] == 9  # string
    assert len(types) > 100
