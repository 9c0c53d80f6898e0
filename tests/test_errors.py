"""Bad input to the compiler: clear Python errors that name the cause, never a crash."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.direct import artifact
from xla_metal.compiler import compile_program
from xla_metal.errors import InvalidArgumentError, UnimplementedError


@pytest.mark.parametrize("code", [b"", b"garbage", b"ML\xefR\x00\x01\x02 truncated bytecode",
                                  b"module { func.func @main( }"])
def test_bytes_that_do_not_parse(code: bytes) -> None:
    with pytest.raises(InvalidArgumentError, match=r"\[import\] the program (is neither|has no)"):
        compile_program(code)


def test_truncated_artifact() -> None:
    code = artifact(lambda x: x + 1, np.ones(3, np.float32))
    for cut in (len(code) // 4, len(code) // 2, len(code) - 3):
        with pytest.raises(InvalidArgumentError):
            compile_program(code[:cut])


def test_an_op_complex128_cannot_run_names_op_and_dtype_at_compile_time() -> None:
    with jax.enable_x64(True):  # (complex128 is emulated for element-wise ops, not sorts)
        code = artifact(jnp.sort, np.ones(4, np.complex128))
    with pytest.raises(UnimplementedError, match=r"\[stablehlo.sort\] complex128 is not "
                                                 r"supported on metal"):
        compile_program(code)


def test_unknown_custom_call_names_target_and_source_line() -> None:
    def f(x):
        return jax.ffi.ffi_call("no_such_target", jax.ShapeDtypeStruct(x.shape, x.dtype))(x)

    code = artifact(f, np.ones(3, np.float32))
    with pytest.raises(UnimplementedError,
                       match=r"\[custom_call\] target 'no_such_target' is not supported on "
                             r"metal \(at .*test_errors.py:\d+"):
        compile_program(code)


def test_unknown_operation_names_it() -> None:
    text = """
    func.func @main(%a: tensor<4xf32>) -> tensor<4xf32> {
      %0 = stablehlo.exponential %a : tensor<4xf32>
      %1 = "stablehlo.all_to_all"(%0) {split_dimension = 0 : i64, concat_dimension = 0 : i64,
          split_count = 1 : i64, replica_groups = dense<[[0]]> : tensor<1x1xi64>}
          : (tensor<4xf32>) -> tensor<4xf32>
      return %1 : tensor<4xf32>
    }"""
    with pytest.raises(UnimplementedError, match="operation 'stablehlo.all_to_all' is not "
                                                 "supported on metal"):
        compile_program(text.encode())


# ------------------------------------------- through the plugin: errors that reach the user

def test_jit_error_names_custom_call_and_user_line_on_metal(metal: jax.Device) -> None:
    def f(x):
        return jax.ffi.ffi_call("no_such_target", jax.ShapeDtypeStruct(x.shape, x.dtype))(x)

    x = jax.device_put(np.ones(3, np.float32), metal)
    with pytest.raises(Exception, match=r"UNIMPLEMENTED: \[custom_call\] target "
                                        r"'no_such_target' is not supported on metal "
                                        r"\(at .*test_errors\.py:\d+"):
        jax.jit(f)(x)


# An entry point we do not support names itself: PJRT_Client_CreateViewOfDeviceBuffer is
# checked from C (tests/c/pjrt_smoke.c); JAX reaches no unsupported entry point any more.

