"""Workloads for tools/bench_models.py: parameters, the three runners of each, extra probes.

Each runner performs one training step and waits for it (block_until_ready / mx.eval),
threading its own copy of the state. All three start from the same numpy parameters.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import bench_jax_models as jm
import bench_mlx_models as mm
import jax
import jax.numpy as jnp
import mlx.core as mx
import numpy as np
from bench_options import turn_order
from bench_report import format_row, write_report
from mlx.utils import tree_map

__all__ = ["WORKLOADS", "format_row", "write_report"]


@dataclass
class Workload:
    title: str
    runners: dict[str, Callable[[], object]]
    losses: dict[str, list[float]] = field(default_factory=dict)

    def first_loss(self) -> dict[str, float]:
        return {c: v[0] for c, v in self.losses.items() if v}


def _normal(rng, shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _jax_runner(step, state, batch, device, losses, donate):
    if donate:  # the state's memory may hold the next state, as a training loop lets it
        step = jax.jit(step, donate_argnums=0)
    state = jax.device_put(state, device)
    batch = jax.device_put(batch, device)

    def run():
        nonlocal state
        state, loss = step(state, *batch)
        jax.block_until_ready((state, loss))
        if not losses:
            losses.append(float(loss))

    def pipelined(steps):  # as a training loop runs: waits once, after `steps` steps
        nonlocal state
        for _ in range(steps):
            state, loss = step(state, *batch)
        jax.block_until_ready((state, loss))
    run.pipelined = pipelined
    return run


def _mlx_runner(step, state, batch, losses):
    state = tree_map(lambda a: a if isinstance(a, mx.array) else mx.array(a), state)
    batch = [mx.array(b) for b in batch]
    mx.eval(state, batch)

    def run():
        nonlocal state
        state, loss = step(state, *batch)
        mx.eval(state, loss)
        if not losses:
            losses.append(loss.item())

    def pipelined(steps):  # MLX's way to run ahead: async_eval each step, wait at the end
        nonlocal state
        for _ in range(steps):
            state, loss = step(state, *batch)
            mx.async_eval(state, loss)
        mx.eval(state, loss)
    run.pipelined = pipelined
    return run


def _three(title, jax_step, jax_state, mlx_step, mlx_state, batch, donate) -> Workload:
    w = Workload(title, {})
    w.losses = {c: [] for c in ("metal", "mlx", "cpu")}
    w.runners["metal"] = _jax_runner(jax_step, jax_state, batch, jax.devices("metal")[0],
                                     w.losses["metal"], donate)
    w.runners["mlx"] = _mlx_runner(mlx_step, mlx_state, batch, w.losses["mlx"])
    w.runners["cpu"] = _jax_runner(jax_step, jax_state, batch, jax.devices("cpu")[0],
                                   w.losses["cpu"], donate)
    return w


def mlp(args) -> Workload:
    rng = np.random.default_rng(0)
    width, n = args.mlp_width, args.mlp_batch
    params = [(_normal(rng, (width, width), width), np.zeros(width, np.float32))
              for _ in range(4)]
    batch = (rng.standard_normal((n, width)).astype(np.float32),
             rng.standard_normal((n, width)).astype(np.float32))
    return _three(f"MLP 4x{width}, batch {n}, SGD", jm.mlp_step, params, mm.mlp_step,
                  params, batch, args.donate)


def _adam_state(params):
    zeros = lambda tree: jax.tree.map(np.zeros_like, tree)  # noqa: E731
    return params, zeros(params), zeros(params), np.zeros((), np.float32)


def lm_inputs(args):
    """The transformer's parameters, tokens and targets (d=256, 4 layers, vocab 512)."""
    rng = np.random.default_rng(1)
    d, layers, vocab, t, b = 256, 4, 512, args.lm_seq, args.lm_batch
    ones, zeros = np.ones(d, np.float32), np.zeros(d, np.float32)
    params = {"embed": _normal(rng, (vocab, d), d), "pos": _normal(rng, (t, d), d),
              "lnf_s": ones, "lnf_b": zeros, "head": _normal(rng, (d, vocab), d),
              "layers": [{"ln1_s": ones, "ln1_b": zeros, "ln2_s": ones, "ln2_b": zeros,
                          "wqkv": _normal(rng, (d, 3 * d), d), "wo": _normal(rng, (d, d), d),
                          "w1": _normal(rng, (d, 4 * d), d),
                          "w2": _normal(rng, (4 * d, d), 4 * d)} for _ in range(layers)]}
    tokens = rng.integers(0, vocab, (b, t + 1)).astype(np.int32)
    return params, tokens[:, :-1], tokens[:, 1:]


def lm(args) -> Workload:
    d, layers, heads, t, b = 256, 4, 4, args.lm_seq, args.lm_batch
    params, tokens, targets = lm_inputs(args)
    batch = (tokens, targets)
    state = _adam_state(params)
    jax_step = lambda s, x, y: jm.lm_step_jit(s, x, y, heads)  # noqa: E731
    return _three(f"Transformer LM d={d} L={layers} H={heads} seq {t} batch {b}, AdamW",
                  jax_step, state, mm.make_lm_step(heads), state, batch, args.donate)


def resnet_params(rng):
    def conv_bn(cin, cout, k):
        return _normal(rng, (k, k, cin, cout), k * k * cin), np.ones(cout, np.float32), \
            np.zeros(cout, np.float32)
    w, s, b = conv_bn(3, 64, 3)
    params = {"stem": {"w": w, "s": s, "b": b}, "blocks": []}
    strides, cin = [], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for i in range(2):
            st = stride if i == 0 else 1
            block = dict(zip(("w1", "s1", "b1"), conv_bn(cin, cout, 3), strict=True))
            block.update(zip(("w2", "s2", "b2"), conv_bn(cout, cout, 3), strict=True))
            if st != 1 or cin != cout:
                block.update(zip(("wd", "sd", "bd"), conv_bn(cin, cout, 1), strict=True))
            params["blocks"].append(block)
            strides.append(st)
            cin = cout
    params["fc_w"] = _normal(rng, (512, 10), 512)
    params["fc_b"] = np.zeros(10, np.float32)
    return params, tuple(strides)


def _mlx_conv_layout(params):
    """JAX's HWIO kernels as MLX's OHWI."""
    def fix(tree):
        return {k: (v.transpose(3, 0, 1, 2) if k in ("w", "w1", "w2", "wd") else v)
                for k, v in tree.items()}
    return {**params, "stem": fix(params["stem"]), "blocks": [fix(b) for b in params["blocks"]]}


def _resnet_inputs(args):
    rng = np.random.default_rng(2)
    params, strides = resnet_params(rng)
    n = args.resnet_batch
    batch = (rng.standard_normal((n, 32, 32, 3)).astype(np.float32),
             rng.integers(0, 10, n).astype(np.int32))
    return params, strides, batch


def resnet(args) -> Workload:
    params, strides, batch = _resnet_inputs(args)
    jax_step = lambda p, x, y: jm.resnet_step_jit(p, x, y, strides)  # noqa: E731
    return _three(f"ResNet-18 CIFAR 32x32, batch {args.resnet_batch}, SGD", jax_step, params,
                  mm.make_resnet_step(strides), _mlx_conv_layout(params), batch, args.donate)


def gru_inputs(args):
    """The GRU's parameters (64 inputs, 256 hidden) and its input sequence."""
    rng = np.random.default_rng(3)
    inputs, hidden, steps, n = 64, 256, args.gru_steps, args.gru_batch
    params = {"wx": _normal(rng, (inputs, 3 * hidden), inputs),
              "wh": _normal(rng, (hidden, 3 * hidden), hidden),
              "b": np.zeros(3 * hidden, np.float32)}
    return params, rng.standard_normal((steps, n, inputs)).astype(np.float32)


def gru(args) -> Workload:
    params, xs = gru_inputs(args)
    return _three(f"GRU 256 scan {args.gru_steps} steps, batch {args.gru_batch}, fwd+bwd",
                  jm.gru_step, params, mm.gru_step, params, (xs,), args.donate)


WORKLOADS = {"mlp": mlp, "lm": lm, "resnet": resnet, "gru": gru}



def step_peak_bytes(run) -> int:
    """MLX memory one step needs above what is already held (MLX's peak counter)."""
    mx.synchronize()
    before = mx.get_active_memory()
    mx.reset_peak_memory()
    run()
    return mx.get_peak_memory() - before


def host_reads_per_call(run) -> int | str:
    """Loop-condition reads to the host during one call on 'metal' (counted by the lowering)."""
    try:
        from xla_metal.compiler.lowering import control
    except ImportError:
        return "n/a"
    counter = getattr(control, "HOST_READS", None)
    if counter is None:
        return "n/a (this build does not count)"
    before = counter[0]
    run()
    return counter[0] - before


def _per_call_us(fn, calls):
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def dispatch(args) -> list[str]:
    """A tiny jitted call and one eager op, each waited for: metal, native MLX, XLA:CPU."""
    x_np = np.ones(8, np.float32)
    tiny = jax.jit(lambda a: a * 2.0 + 1.0)
    tiny_mx = mx.compile(lambda a: a * 2.0 + 1.0)
    xs = {p: jax.device_put(x_np, jax.devices(p)[0]) for p in ("metal", "cpu")}
    x_mx = mx.array(x_np)
    fns = {
        ("jit", "metal"): lambda: tiny(xs["metal"]).block_until_ready(),
        ("jit", "mlx"): lambda: mx.eval(tiny_mx(x_mx)),
        ("jit", "cpu"): lambda: tiny(xs["cpu"]).block_until_ready(),
        ("eager", "metal"): lambda: jnp.sin(xs["metal"]).block_until_ready(),
        ("eager", "mlx"): lambda: mx.eval(mx.sin(x_mx)),
        ("eager", "cpu"): lambda: jnp.sin(xs["cpu"]).block_until_ready(),
    }
    results: dict[tuple[str, str], list[float]] = {k: [] for k in fns}
    keys = list(fns)
    for rep in range(args.repeats):
        for key in turn_order(keys, rep):
            results[key].append(_per_call_us(fns[key], args.calls))
    lines = []
    for kind in ("jit", "eager"):
        med = {c: float(np.median(results[(kind, c)])) for c in ("metal", "mlx", "cpu")}
        lines.append(f"dispatch {kind:5s} ({args.calls} calls): metal {med['metal']:.1f} us, "
                     f"mlx {med['mlx']:.1f} us, cpu {med['cpu']:.1f} us per call; "
                     f"metal/mlx {med['metal'] / med['mlx']:.2f}, "
                     f"metal/cpu {med['metal'] / med['cpu']:.2f}")
    return lines


def compile_times(args) -> list[str]:
    """ResNet-18 step: lower+compile cold, then again from JAX's persistent cache."""
    params, strides, batch = _resnet_inputs(args)
    cache = tempfile.mkdtemp(prefix="xla-metal-bench-cache-")
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    lines = []
    for platform in ("metal", "cpu"):
        device = jax.devices(platform)[0]
        p, b = jax.device_put(params, device), jax.device_put(batch, device)
        seconds = []
        for _ in range(2):
            jax.clear_caches()
            start = time.perf_counter()
            lowered = jm.resnet_step_jit.lower(p, *b, strides)
            lowered.compile()
            seconds.append(time.perf_counter() - start)
        lines.append(f"compile ResNet-18 step on {platform}: cold {seconds[0]:.2f} s, "
                     f"from the persistent cache {seconds[1]:.2f} s (lower+compile)")
    step = mm.make_resnet_step(strides)
    mp = tree_map(mx.array, _mlx_conv_layout(params))
    mb = [mx.array(a) for a in batch]
    mx.eval(mp, mb)
    start = time.perf_counter()
    mx.eval(step(mp, *mb))
    first = time.perf_counter() - start
    start = time.perf_counter()
    mx.eval(step(mp, *mb))
    second = time.perf_counter() - start
    lines.append(f"native MLX ResNet-18 step: first call (trace+compile+run) {first:.2f} s, "
                 f"second call {second:.2f} s")
    return lines
