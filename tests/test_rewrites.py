"""compiler/rewrites.py: each rewrite fires where it should, and results match JAX's CPU."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from tests.direct import artifact, compare_with_cpu, compiled_ops, graph_kinds, skip_stage
from xla_metal.compiler import compile_program, rewrites
from xla_metal.compiler.ir import Op
from xla_metal.compiler.lowering import contraction, control

CPU = jax.devices("cpu")[0]
RNG = np.random.default_rng(0)


def compare(fn, *args, tol=(2e-5, 1e-6), platform=None):
    compare_with_cpu(fn, *args, tol=tol, platform=platform)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- transpose(dot) folding


def test_weight_gradient_dot_is_folded():
    def grad_w(w, x):
        return jax.grad(lambda w: jnp.sum(jnp.tanh(x @ w)))(w)

    w, x = f32(8, 4), f32(16, 8)
    assert not any(o.op is Op.TRANSPOSE for o in compiled_ops(grad_w, w, x))
    compare(grad_w, w, x)


def test_batched_dot_transpose_folded():
    def f(a, b):
        return jnp.einsum("bij,bjk->bki", a, b)

    a, b = f32(3, 5, 7), f32(3, 7, 2)
    assert not any(o.op is Op.TRANSPOSE for o in compiled_ops(f, a, b))
    compare(f, a, b)


def test_dense_layer_gradients_flatten_each_batched_operand_once():
    # The weight gradient contracts x [4, 8, 16] and the output gradient over their two
    # leading dims; the forward and input-gradient matmuls flatten those same arrays.
    def grads(w, x):
        return jax.grad(lambda w, x: jnp.sum(jnp.tanh(x @ w)), argnums=(0, 1))(w, x)

    w, x = f32(16, 32), f32(4, 8, 16)
    kinds = graph_kinds(grads, w, x)
    assert (kinds["Flatten"], kinds["Reshape"]) == (2, 0), kinds
    # each weight-gradient entry sums 32 products of O(1) terms, in MLX's order, not XLA's
    compare(grads, w, x, tol=(2e-5, 1e-5))


def test_transpose_that_is_not_a_swap_is_kept():
    def f(a, b):  # [2, 5, 6] result; (1, 0, 2) keeps a free dim of each side apart
        return jnp.transpose(jnp.einsum("ij,jkl->ikl", a, b), (1, 0, 2))

    a, b = f32(2, 3), f32(3, 5, 6)
    assert any(o.op is Op.TRANSPOSE for o in compiled_ops(f, a, b))
    compare(f, a, b)


def test_dot_with_two_users_is_not_folded():
    def f(a, b):
        d = a @ b
        return d.T, d

    a, b = f32(4, 3), f32(3, 5)
    assert any(o.op is Op.TRANSPOSE for o in compiled_ops(f, a, b))
    compare(f, a, b)


# ---------------------------------------------------------------------- counted loops


def _loops(fn, *args):
    return [o for o in compiled_ops(fn, *args) if o.op is Op.WHILE]


def _iterations(loop):
    """Iterations of the source loop a counted loop runs (compiler/loop_slabs.py may have
    unrolled its body)."""
    return loop.attrs["trip_count"] * loop.attrs.get("unrolled", 1)


def test_scan_is_counted_and_reads_nothing():
    def f(xs):
        return lax.scan(lambda c, x: (jnp.sin(c) + x, c * x), jnp.zeros(3, xs.dtype), xs)

    xs = f32(20, 3)
    (loop,) = _loops(f, xs)
    assert _iterations(loop) == 20 and loop.attrs["unroll"]
    before = control.HOST_READS[0]
    compare(f, xs)
    assert control.HOST_READS[0] == before


def test_scan_grad_counted():
    def f(w, xs):
        def loss(w):
            _, ys = lax.scan(lambda h, x: (jnp.tanh(h @ w + x),) * 2, jnp.zeros(4), xs)
            return jnp.sum(ys ** 2)
        return jax.value_and_grad(loss)(w)

    w, xs = f32(4, 4) * 0.5, f32(12, 4)
    assert all(_iterations(o) == 12 for o in _loops(f, w, xs))
    compare(f, w, xs, tol=(1e-4, 1e-5))


def test_fori_loop_with_offset_bounds():
    def f(x):
        return lax.fori_loop(3, 11, lambda i, a: a * 1.5 + i, x)

    x = f32(5)
    (loop,) = _loops(f, x)
    assert loop.attrs["trip_count"] == 8
    compare(f, x)


def test_empty_counted_loop():
    def f(x):
        return lax.fori_loop(4, 4, lambda i, a: a + 1.0, x)

    compare(f, f32(3))


def test_long_loop_runs_on_the_host_without_reads():
    def f(x):
        return lax.fori_loop(0, 300, lambda i, a: a * 0.99 + 0.01, x)

    x = f32(4)
    saved = rewrites.UNROLL_LIMIT, rewrites.CHUNK_OPS
    rewrites.UNROLL_LIMIT, rewrites.CHUNK_OPS = 10, 1000
    try:
        (loop,) = _loops(f, x)
        assert loop.attrs["trip_count"] == 300 and not loop.attrs["unroll"]
        assert 1 < loop.attrs["chunk"] < 300  # several iterations per compiled call
        for chunk in (None, 7):  # 7: a remainder of 6 iterations, run one at a time
            control.CHUNK = chunk
            before = control.HOST_READS[0]
            compare(f, x)
            assert control.HOST_READS[0] == before
    finally:
        rewrites.UNROLL_LIMIT, rewrites.CHUNK_OPS = saved
        control.CHUNK = None


def test_nested_counted_loops():
    def f(x):
        return lax.fori_loop(0, 4, lambda i, a: lax.fori_loop(0, 3, lambda j, b: b + i * j, a),
                             x)

    compare(f, f32(2))


def test_data_dependent_while_is_not_counted():
    def f(x):
        return lax.while_loop(lambda a: jnp.sum(a) < 100.0, lambda a: a * 2.0 + 1.0, x)

    x = np.abs(f32(3)) + 0.1
    (loop,) = _loops(f, x)
    assert "trip_count" not in loop.attrs
    compare(f, x)


# ------------------------------------- convolution gradients, in each backend's best form


def _conv(x, w, stride, pad):
    return lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad), (pad, pad)],
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


# Each gradient runs in the form lowered for the CPU (input dilated by hand, weight gradient
# as one matmul over patches), for a GPU (input dilation and the kernel flip left to MLX's
# convolution) and for CUDA (the weight gradient too: cuDNN's backward-weight kernel there).
CONV_FORMS = [("cpu", False), ("gpu", False), ("gpu", True)]


@pytest.fixture(params=CONV_FORMS, ids=["cpu", "gpu", "cuda"])
def conv_platform(request, monkeypatch):
    platform, cuda = request.param
    monkeypatch.setattr(contraction, "_CUDA", cuda)
    return platform


def test_weight_gradient_of_strided_convolutions(conv_platform):
    def grads(x, w3, w1):
        def loss(w3, w1):
            return jnp.sum(jnp.tanh(_conv(x, w3, 2, 1)) * _conv(x, w1, 2, 0))
        return jax.grad(loss, argnums=(0, 1))(w3, w1)

    x, w3, w1 = f32(2, 8, 8, 3), f32(3, 3, 3, 4), f32(1, 1, 3, 4)
    compare(grads, x, w3, w1, tol=(1e-4, 1e-5), platform=conv_platform)


def test_weight_gradient_stride_one_and_small_window_forward(conv_platform):
    def f(x, w):
        y = _conv(x, w, 1, 2)  # 5x5 window on a 3x3 output: a weight gradient's shape
        return y, jax.grad(lambda w: jnp.sum(_conv(x, w, 1, 1) ** 2))(w[1:4, 1:4])

    x, w = f32(2, 3, 3, 2), f32(5, 5, 2, 3)
    compare(f, x, w, tol=(1e-4, 1e-5), platform=conv_platform)


def test_weight_gradient_with_negative_padding(conv_platform):
    def f(x, w):  # a 1x1 stride-2 convolution's weight gradient crops the activation
        return jax.grad(lambda w: jnp.sum(jnp.sin(_conv(x, w, 2, 0))))(w)

    compare(f, f32(3, 7, 7, 2), f32(1, 1, 2, 4), tol=(1e-4, 1e-5), platform=conv_platform)


def test_input_gradient_of_strided_convolutions(conv_platform):
    def grad_x(x, w3, w1):
        return jax.grad(lambda x: jnp.sum(jnp.tanh(_conv(x, w3, 2, 1)) * _conv(x, w1, 2, 0)))(x)

    x, w3, w1 = f32(2, 8, 8, 3), f32(3, 3, 3, 4), f32(1, 1, 3, 4)
    compare(grad_x, x, w3, w1, tol=(1e-4, 1e-5), platform=conv_platform)


def test_input_gradient_reverse_is_folded_into_the_convolution():
    def grad_x(x, w):
        return jax.grad(lambda x: jnp.sum(jnp.tanh(_conv(x, w, 2, 1))))(x)

    x, w = f32(2, 8, 8, 3), f32(3, 3, 3, 4)
    convs = [o for o in compiled_ops(grad_x, x, w) if o.op is Op.CONVOLUTION]
    defs = rewrites.definitions(compile_program(artifact(grad_x, x, w)).module)
    flipped = [c for c in convs if c.attrs.get("window_reversal") == (True, True)]
    assert len(flipped) == 1
    assert not any(getattr(defs.get(id(c.operands[1])), "op", None) is Op.REVERSE
                   for c in convs)


def test_partly_reversed_kernel_is_folded_and_exact(conv_platform):
    def f(x, w):  # reverse along one spatial dim only, and an integer convolution
        return (_conv(x, lax.rev(w, (0,)), 1, 1),
                _conv(x.astype(jnp.int32), lax.rev(w.astype(jnp.int32), (0,)), 1, 1))

    x, w = np.round(f32(2, 5, 5, 2) * 3), np.round(f32(3, 3, 2, 3) * 3)
    convs = [o for o in compiled_ops(f, x, w) if o.op is Op.CONVOLUTION]
    assert [c.attrs.get("window_reversal") for c in convs] == [(True, False)] * 2
    compare(f, x, w, tol=(1e-4, 1e-5), platform=conv_platform)


def test_transposed_convolution(conv_platform):
    def f(x, w):
        return lax.conv_transpose(x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    compare(f, f32(2, 5, 5, 3), f32(3, 3, 3, 4), tol=(1e-4, 1e-5), platform=conv_platform)


# ------------------------------------------------------------------- reductions


def _reduces(fn, *args):
    return [o for o in compiled_ops(fn, *args) if o.op is Op.REDUCE]


def test_softmax_reductions_keep_dims_and_skip_identity_inits(monkeypatch):
    def f(x):  # max and sum, each broadcast back over the reduced axis
        return jax.nn.softmax(x, axis=-1), jax.grad(lambda x: jnp.sum(jax.nn.softmax(x) ** 2))(x)

    skip_stage(monkeypatch, "with their gradients")  # which would make it mx.softmax and its VJP
    x = f32(4, 9)
    reduces = _reduces(f, x)
    assert reduces and all(o.attrs.get("init_is_identity") for o in reduces)
    kept = [o for o in reduces if o.attrs.get("keepdims")]
    assert kept and all(o.results[0].type.shape == (4, 1) for o in kept)
    compare(f, x)


def test_reduction_read_by_a_reshape_keeps_dims():
    def f(x):  # bias gradient shape: a sum over rows, then reshaped
        return jnp.sum(x, axis=(0, 1)).reshape(3, 2)

    x = f32(5, 4, 6)
    (r,) = _reduces(f, x)
    assert r.attrs.get("keepdims") and r.results[0].type.shape == (1, 1, 6)
    compare(f, x)


def test_reduction_read_elsewhere_keeps_its_shape():
    def f(x):
        s = jnp.sum(x, axis=1)
        return s * 2.0, x - s[:, None]

    x = f32(3, 5)
    (r,) = _reduces(f, x)
    assert not r.attrs.get("keepdims") and r.results[0].type.shape == (3,)
    compare(f, x)


def test_inits_that_are_not_identities_are_combined():
    def f(x):  # (an init of -0.0 for add JAX itself turns into a sum from +0.0)
        return (lax.reduce(x, np.float32(1.5), lax.add, (1,)),
                lax.reduce(x, np.float32(2.0), lax.mul, (1,)),
                lax.reduce(x, np.float32(0.25), lax.max, (0,)),
                lax.reduce(x.astype(np.int32), np.int32(0), lax.max, (0,)))

    x = np.array([[-0.0, -0.0], [-3.0, -2.0]], np.float32)
    reduces = _reduces(f, x)
    assert len(reduces) == 4 and not any(o.attrs.get("init_is_identity") for o in reduces)
    compare(f, x)


def test_identity_inits_for_every_monoid_and_dtype():
    def f(x, i, b):
        return (jnp.sum(x, 1), jnp.prod(x, 1), jnp.max(x, 1), jnp.min(x, 1), jnp.sum(i, 1),
                jnp.max(i, 1), jnp.min(i, 1), jnp.prod(i, 1), jnp.any(b, 1), jnp.all(b, 1),
                jnp.sum(x.astype(np.complex64), 1))

    x = np.array([[-0.0, -0.0, -0.0], [np.nan, 1.0, 2.0], [np.inf, -np.inf, 3.0]], np.float32)
    i = np.array([[-5, 7, 1], [2, 3, 4], [0, 0, 0]], np.int32)
    b = np.array([[True, False, True], [True, True, True], [False, False, False]])
    reduces = _reduces(f, x, i, b)
    assert len(reduces) == 11 and all(o.attrs.get("init_is_identity") for o in reduces)
    compare(f, x, i, b)


def test_reduction_broadcast_to_a_higher_rank_keeps_dims():
    def f(x):
        return jnp.broadcast_to(jnp.max(x, axis=1)[:, None], (2, 4, 9)) - x

    x = f32(4, 9)
    (r,) = _reduces(f, x)
    assert r.attrs.get("keepdims") and r.results[0].type.shape == (4, 1)
    compare(f, x)


def test_bounds_that_change_nothing_are_dropped():
    def f(x, i):
        return (jnp.max(x, axis=1, initial=-jnp.inf) * 2.0, jnp.minimum(x, jnp.inf) + 1.0,
                jnp.maximum(i, np.iinfo(np.int32).min) - 1, jnp.maximum(x, -3.0) + 1.0)

    x = np.array([[-0.0, np.nan, 1.0], [-np.inf, -np.inf, -np.inf], [np.inf, -5.0, 2.0]],
                 np.float32)
    i = np.array([[-5, 7, np.iinfo(np.int32).min]] * 3, np.int32)
    main = compile_program(artifact(f, x, i)).module.main.body.ops  # (not the max's body)
    assert [o.op for o in main if o.op in (Op.MAXIMUM, Op.MINIMUM)] == [Op.MAXIMUM]  # -3.0
    compare(f, x, i)


def test_a_broadcast_of_a_broadcast_is_one_broadcast(monkeypatch):
    # JAX broadcasts a scale [16] to [1, 1, 16] and that to [2, 3, 16], in the forward and
    # again in the gradient: the middle broadcast, read twice, was a Broadcast node of its own
    def grads(x, g, b):
        return jax.grad(lambda x, g, b: jnp.sum(jnp.tanh(x * g + b) @ jnp.ones((16, 4))),
                        argnums=(0, 1, 2))(x, g, b)

    x, g, b = f32(2, 3, 16), f32(16), f32(16)
    ops = compiled_ops(grads, x, g, b)
    defined_by = {id(r): o.op for o in ops for r in o.results}
    assert not any(defined_by.get(id(o.operands[0])) is Op.BROADCAST_IN_DIM
                   for o in ops if o.op is Op.BROADCAST_IN_DIM)
    after = graph_kinds(grads, x, g, b)
    skip_stage(monkeypatch, "broadcast once")
    before = graph_kinds(grads, x, g, b)
    assert after["Broadcast"] == before["Broadcast"] - 1, (after, before)
    monkeypatch.undo()
    compare(grads, x, g, b, tol=(2e-5, 1e-5))


def test_a_max_read_through_a_dropped_bound_keeps_its_dims():
    # jax.nn.softmax's max is read by maximum(max, -inf), which is dropped; in a gradient the
    # softmax is not fused, and its max must still keep its reduced dim (no Squeeze, no
    # Reshape back)
    def grad(x, y):
        return jax.grad(lambda x: jnp.sum(jax.nn.softmax(x) * y))(x)

    x, y = f32(4, 8, 16), f32(4, 8, 16)
    maxima = [o for o in compiled_ops(grad, x, y) if o.op is Op.REDUCE and
              rewrites.combiner(o.regions[0]) == "MAX"]
    assert maxima and all(o.attrs.get("keepdims") for o in maxima)
    compare(grad, x, y)


def test_a_returned_bound_is_kept():
    f = lambda x: (jnp.maximum(x, -jnp.inf), x * 2.0)  # noqa: E731
    x = np.array([-np.inf, np.nan, -0.0], np.float32)
    assert [o for o in compiled_ops(f, x) if o.op is Op.MAXIMUM]
    compare(f, x)


# ------------------------------------------------------------ dynamic slice start indices


def _sliced(fn, *args):
    return [o for o in compiled_ops(fn, *args)
            if o.op in (Op.DYNAMIC_SLICE, Op.DYNAMIC_UPDATE_SLICE)]


def test_constant_starts_are_clamped_at_compile_time():
    def f(x, u):  # starts past either end are clamped into range, as XLA does
        return (lax.dynamic_slice(x, (-3, 9, 1), (2, 2, 3)),
                lax.dynamic_update_slice(x, u, (5, -1, 2)))

    x, u = f32(4, 5, 6), f32(2, 3, 1)
    ds, dus = _sliced(f, x, u)
    # JAX adds the dim to a negative start (-3 -> 1, -1 -> 4); past the end they are clamped
    assert ds.attrs["static_starts"] == (1, 3, 1) and dus.attrs["static_starts"] == (2, 2, 2)
    for platform in ("cpu", "gpu"):
        compare(f, x, u, platform=platform)


def _row_ops(i, x, u):
    """A scan's slices: one computed start, on an axis taking one row, the others 0."""
    zero, one = np.zeros((), i.dtype), np.ones((), i.dtype)  # constants of i's type
    return (lax.dynamic_slice(x, (i, zero, zero), (1, 3, 4)),
            lax.dynamic_update_slice(x, u, (i, zero, zero)),
            lax.dynamic_slice(x, (zero, i, zero), (2, 1, 2)),  # a middle axis's row, cut short
            lax.dynamic_slice(x, (i, one, zero), (1, 2, 4)),  # a nonzero constant beside it
            lax.dynamic_update_slice(x, u[:, :2], (i, one, zero)))


def test_computed_starts_one_row_against_cpu():
    ops = _sliced(_row_ops, np.int32(1), f32(5, 3, 4), f32(1, 3, 4))
    assert [o.attrs["static_starts"] for o in ops] == [
        (None, 0, 0), (None, 0, 0), (0, None, 0), (None, 1, 0), (None, 1, 0)]
    for dtype in (np.float32, np.float16, np.int32, np.bool_):
        x = (RNG.standard_normal((5, 3, 4)) * 4).astype(dtype)
        u = (RNG.standard_normal((1, 3, 4)) * 4).astype(dtype)
        for i in (np.int32(0), np.int32(3), np.int32(-2), np.int32(7), np.uint8(200),
                  np.int64(4)):
            for platform in ("cpu", "gpu"):  # a GPU scatters rows, MLX's CPU slices
                compare(_row_ops, i, x, u, platform=platform)


def test_computed_starts_in_a_scan():
    def f(w, xs):
        def loss(w):
            _, ys = lax.scan(lambda h, x: (jnp.tanh(h @ w + x), h), jnp.zeros(4), xs)
            return jnp.sum(ys ** 2)
        return jax.value_and_grad(loss)(w)

    w, xs = f32(4, 4) * 0.5, f32(9, 4)
    assert any(o.attrs["static_starts"].count(None) == 1 for o in _sliced(f, w, xs))
    for platform in ("cpu", "gpu"):
        compare(f, w, xs, tol=(1e-5, 1e-5), platform=platform)


# ---------------------------------------------------------------- sibling slices -> one split


def _kinds(fn, *args):
    return [o.op for o in compiled_ops(fn, *args) if o.op in (Op.SLICE, Op.SPLIT)]


def test_a_three_way_cut_is_one_split():
    def f(x, w):  # a q / k / v projection cut in three, in a gradient as in training
        def loss(w):
            q, k, v = jnp.split(x @ w, 3, axis=-1)
            return jnp.sum(jnp.tanh(q) * k + v)
        return jax.grad(loss)(w)

    x, w = f32(2, 5, 4), f32(4, 12)
    assert _kinds(f, x, w) == [Op.SPLIT]
    assert graph_kinds(f, x, w)["Slice"] == 0
    compare(f, x, w, tol=(2e-5, 1e-5))


def test_disjoint_cuts_with_gaps_and_in_any_order_split():
    def f(x):  # pieces [5:7), [0:2), [2:4) of axis 1; [4:5) and [7:9) are read by nobody
        return x[:, 5:7] * 2.0, x[:, 0:2] + 1.0, x[:, 2:4], jnp.sum(x[1:, 3:])

    x = f32(3, 9, 2)
    assert _kinds(f, x) == [Op.SPLIT, Op.SLICE]  # x[1:, 3:] cuts two axes: kept
    compare(f, x)


def test_overlapping_or_strided_cuts_are_kept():
    def f(x):
        return x[0:3] * 2.0, x[2:5], x[0:6:2], x[1:6:2]

    x = f32(6, 3)
    assert _kinds(f, x) == [Op.SLICE] * 4
    compare(f, x)
