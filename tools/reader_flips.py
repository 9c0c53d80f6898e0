"""How jaxlib's program reader takes single bit flips, each read in a throw-away child.

    python tools/reader_flips.py --form bytecode [--per-program 1500] [--timeout 5]
    python tools/reader_flips.py --form text
    python tools/reader_flips.py --form hlo

For the small programs of tests/test_fuzz.py and a jitted MLP layer, flips single bits (every
bit, or a sample of --per-program with a fixed seed when a program has more) of the StableHLO
portable artifact (bytecode), of the MLIR text, or of the HloModuleProto (hlo: read by jaxlib's
HLO-to-StableHLO converter, which the plugin still runs in-process). Each is read in a child
process (xla_metal.compiler.reader_check), the way the importer reads (importer.read_for_check)
or by the converter, and the tool counts what became of the children: came back (a module or
a clean error), crashed (by which signal), or timed out. Run it after a jaxlib upgrade:
reader_check exists because the bytecode line is not all "came back".
"""

from __future__ import annotations

import argparse
import collections
import random
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax._src.lib import _jax
from jaxlib.mlir.dialects import stablehlo

from tests.test_fuzz import PROGRAMS
from xla_metal.compiler import importer, reader_check


def _programs(form: str) -> dict[str, bytes]:
    texts = {name: text for name, text, _ in PROGRAMS}
    texts["jitted layer"] = jax.jit(lambda x, w: jnp.tanh(x @ w) + 1).lower(
        np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)).as_text(debug_info=True)
    if form == "text":
        return {name: text.encode() for name, text in texts.items()}
    if form == "hlo":
        return {name: _jax.mlir.mlir_module_to_xla_computation(
                    text, use_tuple_args=False, return_tuple=False)
                .as_serialized_hlo_module_proto() for name, text in texts.items()}
    version = stablehlo.get_current_version()
    return {name: bytes(_jax.mlir.serialize_portable_artifact(text, version, False))
            for name, text in texts.items()}


def _convert_hlo(proto: bytes) -> bytes:
    try:
        _jax.mlir.hlo_to_stablehlo(proto)
    except Exception:  # noqa: BLE001 - a refusal is an answer
        return reader_check.ERROR
    return reader_check.MODULE


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--form", choices=["bytecode", "text", "hlo"], default="bytecode")
    parser.add_argument("--per-program", type=int, default=1500)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    read = _convert_hlo if args.form == "hlo" else importer.read_for_check
    importer._checking_context()
    total: collections.Counter[str] = collections.Counter()
    begin = time.monotonic()
    for name, code in _programs(args.form).items():
        flips = [(position, bit) for position in range(len(code)) for bit in range(8)]
        if len(flips) > args.per_program:
            flips = rng.sample(flips, args.per_program)
        outcomes: collections.Counter[str] = collections.Counter()
        for position, bit in flips:
            flipped = bytearray(code)
            flipped[position] ^= 1 << bit
            answer = reader_check._ask_child(bytes(flipped), read, "", args.timeout)
            outcomes["came back" if isinstance(answer, bytes) else
                     "timed out" if answer == "timeout" else answer] += 1
        total.update(outcomes)
        print(f"{name}: {len(code)} bytes, {len(flips)} flips: {dict(outcomes)}", flush=True)
    print(f"{args.form}: {sum(total.values())} flips in {time.monotonic() - begin:.0f} s: "
          f"{dict(total)}")


if __name__ == "__main__":
    main()
