"""How jaxlib's program readers take single bit flips, each read in the reader process.

    python tools/reader_flips.py --form bytecode [--per-program 1500] [--timeout 5]
    python tools/reader_flips.py --form text
    python tools/reader_flips.py --form hlo

For the small programs of tests/test_fuzz.py and a jitted MLP layer, flips single bits (every
bit, or a sample of --per-program with a fixed seed when a program has more) of the StableHLO
portable artifact (bytecode), of the MLIR text, or of the HloModuleProto (hlo: jaxlib's
HLO-to-StableHLO converter). Each goes to a reader process (xla_metal/reader) as the plugin
sends it, and the tool counts what became of it: came back (a module or a clean error),
crashed (by which signal), or timed out. A reader that failed after reading other flips is
replaced and asked again, as the plugin does, so each failure is the flip's own. Run it after
a jaxlib upgrade: the reader process exists because not every line says "came back".
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
from xla_metal.reader import client, framing


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


class _Asker:
    def __init__(self, tag: bytes, timeout: float) -> None:
        self.tag, self.timeout = tag, timeout
        self.reader = client._Reader()

    def outcome(self, payload: bytes) -> str:
        while True:
            reader = self.reader
            try:
                reader.ask(self.tag, payload, self.timeout)
                return "came back"
            except client._Failed as e:
                self.reader = client._Reader()
                if reader.answered == 0:
                    return "timed out" if str(e).startswith("timed out") else str(e)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--form", choices=["bytecode", "text", "hlo"], default="bytecode")
    parser.add_argument("--per-program", type=int, default=1500)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    asker = _Asker(framing.HLO if args.form == "hlo" else framing.PROGRAM, args.timeout)
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
            outcomes[asker.outcome(bytes(flipped))] += 1
        total.update(outcomes)
        print(f"{name}: {len(code)} bytes, {len(flips)} flips: {dict(outcomes)}", flush=True)
    asker.reader.stop(grace=1.0)
    print(f"{args.form}: {sum(total.values())} flips in {time.monotonic() - begin:.0f} s: "
          f"{dict(total)}")


if __name__ == "__main__":
    main()
