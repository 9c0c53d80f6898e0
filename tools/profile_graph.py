"""The device cost of the MLX graph we build for a training step, against native MLX's graph.

    python tools/profile_graph.py [--device cpu|gpu] [--only mlp,lm,resnet,gru] [--steps 30]
                                  [--off loop_slabs --rounds 3]

No PJRT and no JAX dispatch: the step is lowered by JAX, compiled by xla_metal.compiler and
its entry function (mx.compile'd as the runtime runs it) called on MLX arrays in a loop with
mx.eval, beside the native MLX step of tools/bench_mlx_models.py on the same inputs. What this
measures is the graph alone; tools/profile_step.py measures the whole call. It also counts the
primitives of both graphs, compiled and not (mx.export_to_dot; ours with the graphs a loop
evaluates inside it), by kind, to show what ours has more of.
With --off PASS it also compiles the step with that compiler pass turned off and times both
versions and native in turn, --rounds times, in this one process (the machine drifts).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench_options import add_size_arguments, set_up_profile


def per_step_ms(fn: Callable[..., Any], inputs: list[Any], steps: int) -> float:
    import mlx.core as mx

    for _ in range(3):
        mx.eval(fn(*inputs))
    start = time.perf_counter()
    for _ in range(steps):
        mx.eval(fn(*inputs))
    return (time.perf_counter() - start) / steps * 1e3


# Nodes that make a view of their input, not a kernel launch (a GPU step of this size is bound
# by its launches).
VIEWS = {"Reshape", "Squeeze", "Flatten", "Unflatten", "Transpose", "Broadcast", "ExpandDims",
         "Slice", "Split"}


def launches(count: collections.Counter) -> int:
    return sum(n for kind, n in count.items() if kind not in VIEWS)


def primitives(outputs: list[Any]) -> collections.Counter:
    import mlx.core as mx

    with tempfile.NamedTemporaryFile("r", suffix=".dot") as f:
        mx.export_to_dot(f.name, *outputs)
        return collections.Counter(re.findall(r'label ="([A-Za-z_]+)"', f.read()))


def evaluated_primitives(entry: Callable[..., Any], inputs: list[Any]) -> collections.Counter:
    """primitives() of everything our entry function evaluates: its results' graph, and the
    graphs a counted loop evaluates inside it, chunk by chunk (lowering/control.py), which
    its results' graph no longer holds."""
    from xla_metal.compiler.lowering import control

    count: collections.Counter = collections.Counter()
    real = control.evaluate

    def counted(values: Any, *rest: Any, **options: Any) -> Any:
        count.update(primitives(list(values)))
        return real(values, *rest, **options)

    control.evaluate = counted
    try:
        count.update(primitives(entry(*inputs)))
    finally:
        control.evaluate = real
    return count


def our_program(jax_step: Any, arrays: tuple, static: tuple) -> tuple[Any, list[Any]]:
    """The step lowered by JAX and compiled by xla_metal.compiler, as (its entry function,
    its inputs as MLX arrays)."""
    import jax
    import mlx.core as mx
    import numpy as np
    from jax._src.lib import _jax
    from jaxlib.mlir.dialects import stablehlo

    from xla_metal.compiler import compile_program
    from xla_metal.runtime.dtypes import to_mlx

    text = jax_step.lower(*arrays, *static).as_text(debug_info=True)
    platform = "gpu" if mx.default_device().type == mx.gpu else "cpu"  # as the plugin's client
    program = compile_program(_jax.mlir.serialize_portable_artifact(
        text, stablehlo.get_current_version(), False), platform)
    leaves = [np.asarray(a) for a in jax.tree_util.tree_leaves(arrays)]
    return program.entry(), [to_mlx(a, a.dtype.name) for a in leaves]


def native_arrays(mlx_args: tuple) -> list[Any]:
    """The native step's arguments as MLX arrays, evaluated."""
    import jax
    import mlx.core as mx
    import numpy as np
    from mlx.utils import tree_map

    arrays = [tree_map(lambda a: mx.array(np.asarray(a)), x) for x in mlx_args]
    mx.eval(jax.tree_util.tree_leaves(arrays))
    return arrays


# Compiler passes --off can turn off: name -> (module, its switch).
PASSES = {"loop_slabs": ("xla_metal.compiler.loop_slabs", "ENABLED"),
          "fusion_grads": ("xla_metal.compiler.fusion_grads", "_ENABLED"),
          "softmax_grads": ("xla_metal.compiler.fusion_grads", "SOFTMAX")}


def rounds_with_and_without(args, name: str, table: dict) -> None:
    """The graph compiled with and without pass args.off, and native, timed in turn."""
    import importlib

    import mlx.core as mx

    module, switch = PASSES[args.off]
    module = importlib.import_module(module)
    jax_step, arrays, static, mlx_step, mlx_args = table[name]
    versions = {}
    for on in (True, False):
        setattr(module, switch, on)
        versions[on] = our_program(jax_step, arrays, static)
    setattr(module, switch, True)
    native_inputs = native_arrays(mlx_args)
    for r in range(args.rounds):
        on, off = (per_step_ms(*versions[v], args.steps) for v in (True, False))
        native = per_step_ms(mlx_step, native_inputs, args.steps)
        print(f"{name:7s} round {r}: with {args.off} {on:9.3f} ms   without {off:9.3f} ms   "
              f"native {native:9.3f} ms   ratios {on / native:5.2f} / {off / native:5.2f}",
              flush=True)
    same = all(bool(mx.array_equal(a, b)) for a, b in
               zip(versions[True][0](*versions[True][1]),
                   versions[False][0](*versions[False][1]), strict=True))
    print(f"        results of the two versions bitwise equal: {same}", flush=True)


def workloads(args) -> dict[str, tuple[Any, tuple, tuple, Callable, tuple]]:
    """name -> (jitted JAX step, its array arguments, its static ones, native MLX step, its
    arguments), as in the bench."""
    import bench_jax_models as jm
    import bench_mlx_models as mm
    import bench_workloads as wl
    import jax
    import numpy as np

    rng = np.random.default_rng(0)
    w, n = args.mlp_width, args.mlp_batch
    mlp_params = [(wl._normal(rng, (w, w), w), np.zeros(w, np.float32)) for _ in range(4)]
    mlp_batch = (rng.standard_normal((n, w)).astype(np.float32),
                 rng.standard_normal((n, w)).astype(np.float32))
    params, tokens, targets = wl.lm_inputs(args)
    lm_state = wl._adam_state(params)
    rparams, strides, rbatch = wl._resnet_inputs(args)
    gparams, gxs = wl.gru_inputs(args)
    return {
        "mlp": (jax.jit(jm.mlp_step), (mlp_params, *mlp_batch), (), mm.mlp_step,
                (mlp_params, *mlp_batch)),
        "lm": (jm.lm_step_jit, (lm_state, tokens, targets), (4,), mm.make_lm_step(4),
               (lm_state, tokens, targets)),
        "resnet": (jm.resnet_step_jit, (rparams, *rbatch), (strides,),
                   mm.make_resnet_step(strides), (wl._mlx_conv_layout(rparams), *rbatch)),
        "gru": (jm.gru_step, (gparams, gxs), (), mm.gru_step, (gparams, gxs)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--only", default="mlp,lm,resnet")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--off", choices=sorted(PASSES), help="also time the graph without this pass")
    p.add_argument("--rounds", type=int, default=3, help="rounds of --off's comparison")
    add_size_arguments(p)
    args = p.parse_args()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # no plugin: our compiler is called directly
    set_up_profile(args)
    import jax
    import mlx.core as mx

    table = workloads(args)
    print(f"device {args.device}; ms per step over {args.steps} steps (mx.eval each)")
    for name in args.only.split(","):
        if args.off:
            rounds_with_and_without(args, name, table)
            continue
        jax_step, arrays, static, mlx_step, mlx_args = table[name]
        entry, ours_inputs = our_program(jax_step, arrays, static)
        native_inputs = native_arrays(mlx_args)
        mx.eval(ours_inputs)
        ours = per_step_ms(entry, ours_inputs, args.steps)
        native = per_step_ms(mlx_step, native_inputs, args.steps)
        print(f"{name:7s} ours {ours:9.3f} ms   native {native:9.3f} ms   ratio "
              f"{ours / native:5.2f}", flush=True)
        # the compiled graphs: what is evaluated (fused element-wise work is one Compiled node)
        ours_fused = evaluated_primitives(entry, ours_inputs)
        native_fused = primitives(jax.tree_util.tree_leaves(mlx_step(*native_inputs)))
        print(f"        nodes evaluated (compiled graph): ours {sum(ours_fused.values())}, "
              f"native {sum(native_fused.values())}; launching a kernel (not views): ours "
              f"{launches(ours_fused)}, native {launches(native_fused)}; by kind (ours/native): " +
              ", ".join(f"{k} {ours_fused[k]}/{native_fused[k]}"
                        for k in sorted(set(ours_fused) | set(native_fused))), flush=True)
        mx.disable_compile()
        ours_count = evaluated_primitives(entry, ours_inputs)
        native_out = mlx_step(*native_inputs)
        native_count = primitives(jax.tree_util.tree_leaves(native_out))
        mx.enable_compile()
        kinds = sorted(set(ours_count) | set(native_count),
                       key=lambda k: native_count[k] - ours_count[k])
        print(f"        primitives (uncompiled graph): ours {sum(ours_count.values())}, "
              f"native {sum(native_count.values())}; by kind (ours/native): " +
              ", ".join(f"{k} {ours_count[k]}/{native_count[k]}" for k in kinds
                        if ours_count[k] != native_count[k]), flush=True)


if __name__ == "__main__":
    main()
