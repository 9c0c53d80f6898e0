"""Fuzzing the PJRT surface from C, with no JAX, under AddressSanitizer and UBSan.

tests/c/pjrt_fuzz.c runs random, type-correct sequences of PJRT calls from a fixed seed
against a sanitized build of the library. Any crash, failed check or sanitizer report fails
the test. CI runs FUZZ_SEQUENCES (10,000 by default); by hand, more:

    XLA_METAL_FUZZ_SEQUENCES=100000 python -m pytest -q tests/test_fuzz.py
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests import sanitized

HERE = Path(__file__).resolve().parent
SEQUENCES = int(os.environ.get("XLA_METAL_FUZZ_SEQUENCES", "10000"))
SEED = int(os.environ.get("XLA_METAL_FUZZ_SEED", "20261122"))

# Small valid programs: (name, MLIR, argument signatures as (PJRT type, dims)). The first must
# stay the f32 add of two 2x3 arrays: the harness checks its results.
F32, S32, BF16, PRED, U8, F64 = 11, 4, 13, 1, 6, 12
PROGRAMS = [
    ("add", """func.func @main(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x3xf32> {
      %0 = stablehlo.add %a, %b : tensor<2x3xf32>
      return %0 : tensor<2x3xf32> }""", [(F32, [2, 3]), (F32, [2, 3])]),
    ("square", """func.func @main(%a: tensor<4xi32>) -> tensor<4xi32> {
      %0 = stablehlo.multiply %a, %a : tensor<4xi32>
      return %0 : tensor<4xi32> }""", [(S32, [4])]),
    ("empty", """func.func @main(%a: tensor<0x3xf32>) -> tensor<0x3xf32> {
      %0 = stablehlo.negate %a : tensor<0x3xf32>
      return %0 : tensor<0x3xf32> }""", [(F32, [0, 3])]),
    ("constant", """func.func @main() -> tensor<2xf32> {
      %0 = stablehlo.constant dense<[1.0, 2.0]> : tensor<2xf32>
      return %0 : tensor<2xf32> }""", []),
    ("two_outputs", """func.func @main(%a: tensor<2x2xbf16>)
        -> (tensor<2x2xbf16>, tensor<2x2xbf16>) {
      %0 = stablehlo.add %a, %a : tensor<2x2xbf16>
      return %a, %0 : tensor<2x2xbf16>, tensor<2x2xbf16> }""", [(BF16, [2, 2])]),
    ("not", """func.func @main(%a: tensor<3xi1>) -> tensor<3xi1> {
      %0 = stablehlo.not %a : tensor<3xi1>
      return %0 : tensor<3xi1> }""", [(PRED, [3])]),
    ("scalar_u8", """func.func @main(%a: tensor<ui8>, %b: tensor<ui8>) -> tensor<ui8> {
      %0 = stablehlo.add %a, %b : tensor<ui8>
      return %0 : tensor<ui8> }""", [(U8, []), (U8, [])]),
    ("nothing", "func.func @main() { return }", []),
    ("donor", """func.func @main(%a: tensor<4xf32> {jax.buffer_donor = true}) -> tensor<4xf32> {
      %0 = stablehlo.add %a, %a : tensor<4xf32>
      return %0 : tensor<4xf32> }""", [(F32, [4])]),
    ("f64", """func.func @main(%a: tensor<2xf64>) -> tensor<2xf64> {
      %0 = stablehlo.sine %a : tensor<2xf64>
      return %0 : tensor<2xf64> }""", [(F64, [2])]),
]


def write_programs(out: Path) -> Path:
    """The harness's program list: per program, artifact and text paths, then its signature."""
    lines = []
    for name, text, signature in PROGRAMS:
        path = out / f"{name}.mlirbc"
        path.write_bytes(sanitized.artifact(text))
        (out / f"{name}.mlir").write_text(text)
        fields = [str(path), str(out / f"{name}.mlir"), str(len(signature))]
        for pjrt_type, dims in signature:
            fields += [str(pjrt_type), str(len(dims)), *map(str, dims)]
        lines.append(" ".join(fields))
    listing = out / "programs.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


@pytest.fixture(scope="module")
def sanitized_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sanitized.build_library(tmp_path_factory.mktemp("asan"))


def test_random_call_sequences_never_crash(sanitized_library: Path, tmp_path: Path) -> None:
    harness = sanitized.build_program(HERE / "c" / "pjrt_fuzz.c", tmp_path)
    listing = write_programs(tmp_path)
    start = time.monotonic()
    # Corrupt bytecode that hangs jaxlib's reader costs one or two of these (xla_metal/reader).
    env = dict(sanitized.run_env(), XLA_METAL_READER_TIMEOUT_S="2")
    run = subprocess.run([str(harness), str(sanitized_library), str(listing), str(SEQUENCES),
                          str(SEED)], capture_output=True, text=True, timeout=900, env=env)
    elapsed = time.monotonic() - start
    output = run.stdout + run.stderr
    report = sanitized.sanitizer_report(output)
    assert report is None, output[-6000:]
    assert run.returncode == 0, output[-6000:]
    found = re.search(r"pjrt_fuzz: OK (\d+) sequences, (\d+) calls, (\d+) reader crashes",
                      run.stdout)
    assert found is not None, output[-3000:]
    assert int(found.group(1)) == SEQUENCES
    print(f"\n{SEQUENCES} sequences, {found.group(2)} calls in {elapsed:.1f} s; "
          f"{found.group(3)} compiles refused because jaxlib's reader crashed or hung in the "
          f"plugin's reader process")


def test_every_struct_size_older_and_newer(sanitized_library: Path, tmp_path: Path) -> None:
    # Version skew inside the jax window: each args struct sits in a heap block of exactly its
    # struct_size, so reading past what an older caller declared is a sanitizer report.
    harness = sanitized.build_program(HERE / "c" / "pjrt_struct_sizes.c", tmp_path)
    artifact = tmp_path / "add.mlirbc"
    artifact.write_bytes(sanitized.artifact(PROGRAMS[0][1]))
    run = subprocess.run([str(harness), str(sanitized_library), str(artifact)],
                         capture_output=True, text=True, timeout=600, env=sanitized.run_env())
    output = run.stdout + run.stderr
    assert sanitized.sanitizer_report(output) is None, output[-6000:]
    assert run.returncode == 0, output[-6000:]
    assert re.search(r"pjrt_struct_sizes: OK \d+ calls", run.stdout), output[-3000:]
