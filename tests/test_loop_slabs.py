"""compiler/loop_slabs.py: a counted loop's row reads and writes done a slab at a time fire
where they may, stay away where clamping or aliasing could differ, and match JAX's CPU."""

from __future__ import annotations

import contextlib

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from tests.direct import compare_with_cpu, compiled_ops, scan_trained
from xla_metal.compiler import rewrites
from xla_metal.compiler.ir import Op

RNG = np.random.default_rng(3)
TOL = (2e-5, 2e-6)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _slabs(ops):
    """(slab reads, slab writes, loops) of a compiled program."""
    marked = [o for o in ops if o.attrs.get("starts_in_range")]
    return ([o for o in marked if o.op is Op.DYNAMIC_SLICE],
            [o for o in marked if o.op is Op.DYNAMIC_UPDATE_SLICE],
            [o for o in ops if o.op is Op.WHILE])


@contextlib.contextmanager
def _chunked(unroll_limit: int, chunk_ops: int):
    """Loops sized as if long: not unrolled, `chunk_ops` body operations per compiled call."""
    saved = rewrites.UNROLL_LIMIT, rewrites.CHUNK_OPS
    rewrites.UNROLL_LIMIT, rewrites.CHUNK_OPS = unroll_limit, chunk_ops
    try:
        yield
    finally:
        rewrites.UNROLL_LIMIT, rewrites.CHUNK_OPS = saved


@pytest.mark.parametrize("platform", ["cpu", "gpu"])
def test_scan_and_its_gradient_read_and_write_slabs(platform):
    w, xs = f32(4, 4) * 0.5, f32(23, 3, 4)
    with _chunked(10, 240):  # chunks of 5 iterations (bodies of 46, 47 ops) and 3 more
        reads, writes, loops = _slabs(compiled_ops(scan_trained, w, xs))
        # forward: the stacked outputs written a slab at a time; backward: the residuals
        # read a slab at a time, in reverse
        assert reads and writes
        main = [o for o in loops if "unrolled" in o.attrs]
        assert len(main) == 2 and len(loops) == 4  # each scan: chunked loop + remainder
        for m in main:
            tail = next(o for o in loops if o.operands == m.results)
            assert m.attrs["trip_count"] * m.attrs["unrolled"] + tail.attrs["trip_count"] == 23
        compare_with_cpu(scan_trained, w, xs, tol=(1e-4, 1e-5), platform=platform)


def test_unrolled_scan_with_one_slab_per_array():
    w, xs = f32(4, 4) * 0.5, f32(12, 3, 4)
    reads, writes, loops = _slabs(compiled_ops(scan_trained, w, xs))
    assert all(o.attrs["trip_count"] == 1 and o.attrs["unrolled"] == 12 for o in loops)
    assert all(o.attrs["slice_sizes"][0] == 12 for o in reads)
    assert all(o.operands[1].type.shape[0] == 12 for o in writes)
    compare_with_cpu(scan_trained, w, xs, tol=(1e-4, 1e-5))


@pytest.mark.parametrize("reverse", [False, True])
def test_reverse_and_forward_scans_of_several_dtypes(reverse):
    def f(xs, ks):
        def cell(c, xk):
            x, k = xk
            return c + x, (c * 2, k + 1, k > 0)
        return lax.scan(cell, jnp.zeros_like(xs[0]), (xs, ks), reverse=reverse)

    xs, ks = f32(17, 5), RNG.integers(-3, 3, (17, 2)).astype(np.int32)
    with _chunked(10, 160):  # chunks of 4 (a body of 39 ops) and 1 more
        reads, writes, _ = _slabs(compiled_ops(f, xs, ks))
        assert len(reads) >= 2 and len(writes) == 3
        compare_with_cpu(f, xs, ks, tol=TOL)


def test_rows_of_a_captured_array_in_a_fori_loop():
    def f(table, x):
        return lax.fori_loop(2, 14, lambda i, c: c * 0.5 + table[i] + table[i + 1], x)

    table, x = f32(16, 6), f32(6)
    with _chunked(10, 170):  # chunks of 5 (a body of 33 ops) and 2 more
        reads, _, _ = _slabs(compiled_ops(f, table, x))
        assert reads
        compare_with_cpu(f, table, x, tol=TOL)


def test_rows_past_the_end_are_left_to_clamp():
    # row i + 3 of 12 rows leaves the array on the last trips: dynamic_slice clamps it
    # there, so these reads are not put in a slab
    def f(table, x):
        return lax.fori_loop(0, 12, lambda i, c: c + lax.dynamic_index_in_dim(
            table, i + 3, keepdims=False), x)

    table, x = f32(12, 3), f32(3)
    with _chunked(10, 100):
        reads, _, (loop,) = _slabs(compiled_ops(f, table, x))
        assert not reads and loop.attrs["chunk"] > 1
        compare_with_cpu(f, table, x, tol=TOL)


def test_writes_not_one_row_apart_and_arrays_read_back_keep_their_rows():
    def f(x):
        def body(i, a):
            a = lax.dynamic_update_index_in_dim(a, a[i] * 2.0, 2 * i, 0)  # every other row
            return lax.dynamic_update_index_in_dim(a, a[i - 1] + 1.0, i, 0)  # reads a
        return lax.fori_loop(1, 6, body, x)

    x = f32(12, 3)
    with _chunked(10, 200):
        _, writes, (loop,) = _slabs(compiled_ops(f, x))
        assert not writes and loop.attrs["chunk"] > 1
        compare_with_cpu(f, x, tol=TOL)


def test_nested_scans():
    def f(xs):
        def outer(c, row):
            inner, ys = lax.scan(lambda d, v: (d + v, d * v), c, row)
            return inner, ys
        return lax.scan(outer, jnp.zeros(xs.shape[2:]), xs)

    xs = f32(9, 7, 2)
    with _chunked(10, 300):  # the outer loop in chunks of 2, the inner one whole
        reads, writes, _ = _slabs(compiled_ops(f, xs))
        assert reads and writes
        compare_with_cpu(f, xs, tol=TOL)


def test_off_turns_it_off(monkeypatch):
    from xla_metal.compiler import loop_slabs

    monkeypatch.setattr(loop_slabs, "ENABLED", False)
    w, xs = f32(4, 4) * 0.5, f32(12, 3, 4)
    reads, writes, loops = _slabs(compiled_ops(scan_trained, w, xs))
    assert not reads and not writes and all("unrolled" not in o.attrs for o in loops)
