"""compiler/row_views.py: rows of a stacked array read through one split of a flat view and
written through one concatenate and reshape; fewer MLX nodes, the values of JAX's CPU."""

from __future__ import annotations

import collections

import jax.numpy as jnp
import mlx.core as mx
import numpy as np
import pytest

from tests.direct import (
    compare_with_cpu,
    compiled_ops,
    graph_kinds,
    primitive_kinds,
    scan_trained,
    skip_stage,
)
from xla_metal.compiler.ir import Op
from xla_metal.compiler.lowering.shape import split_pieces

RNG = np.random.default_rng(5)
TOL = (2e-5, 2e-6)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def ops_of(fn, *args) -> collections.Counter:
    return collections.Counter(o.op for o in compiled_ops(fn, *args))


@pytest.fixture
def without_row_views(monkeypatch):
    skip_stage(monkeypatch, "flat view")


def test_a_scan_and_its_gradient_read_and_write_rows_through_flat_views(request):
    w, xs = f32(4, 4) * 0.5, f32(12, 3, 4)
    after = graph_kinds(scan_trained, w, xs)
    request.getfixturevalue("without_row_views")
    before = graph_kinds(scan_trained, w, xs)
    # before: a Slice (and a Reshape) per row read, a Broadcast per row written, for the 12
    # steps of several stacked arrays (84 / 52 nodes with jax 0.10; 72 / 52 with jax 0.11)
    assert before["Slice"] >= 48 and after["Slice"] == 0, (before, after)
    assert before["Broadcast"] - after["Broadcast"] >= 48, (before, after)
    assert sum(after.values()) < sum(before.values()) - 150, (after, before)
    compare_with_cpu(scan_trained, w, xs, tol=(1e-4, 1e-5))


def test_columns_read_and_stacked_along_a_middle_axis():
    def f(x):  # reads x[:, i] (sibling slices, then a split) and stacks along axis 1
        return jnp.stack([jnp.sin(x[:, i]) * i for i in range(12)], axis=1)

    x = f32(3, 12, 5)
    kinds = ops_of(f, x)
    # one reshape to the flat view before the split, one after the concatenate
    assert (kinds[Op.RESHAPE], kinds[Op.BROADCAST_IN_DIM], kinds[Op.SLICE]) == (2, 12, 0), kinds
    assert graph_kinds(f, x)["Reshape"] == 2
    compare_with_cpu(f, x, tol=TOL)


def test_rows_in_any_order_with_gaps_and_one_read_twice():
    def f(x):
        return x[7] * 2 + x[0], x[3] - x[9], jnp.stack([x[9], x[1], x[5]])

    x = f32(10, 4, 3)
    kinds = ops_of(f, x)
    assert (kinds[Op.SPLIT], kinds[Op.SLICE], kinds[Op.RESHAPE]) == (1, 0, 2), kinds
    compare_with_cpu(f, x, tol=TOL)


@pytest.mark.parametrize("case", ["last_axis", "one_row", "mixed_stack", "carrier"])
def test_reads_and_writes_it_leaves_alone(case, request):
    def last_axis(x):  # rows along the last axis: no next axis to merge with
        return [x[..., i] for i in range(3)]

    def one_row(x):
        return x[2] * 3

    def mixed_stack(x):  # a concatenate of a stacked row and a two-row block
        return jnp.concatenate([x[:1] * 2, x[1:3] + 1, jnp.sin(x[3])[None]])

    def carrier(x):  # float8: a carrier dtype, stored in another shape
        y = x.astype(jnp.float8_e4m3fn)
        return jnp.stack([y[0], y[2]]).astype(jnp.float32)

    fn = locals()[case]
    x = f32(4, 3, 3)
    after = ops_of(fn, x)
    request.getfixturevalue("without_row_views")
    assert after == ops_of(fn, x)  # the stage changed nothing
    compare_with_cpu(fn, x, tol=(0.1, 0.1) if case == "carrier" else TOL)


def test_a_split_into_many_pieces_is_a_tree_of_split_nodes():
    # MLX makes one Split node for fewer than 10 bounds and a Slice per piece otherwise
    for pieces in (2, 10, 11, 21, 100, 101, 257):
        x = mx.array(np.arange(pieces * 6, dtype=np.float32).reshape(pieces * 3, 2))
        bounds = list(range(3, pieces * 3, 3))
        parts = split_pieces(x, bounds, 0)
        kinds = primitive_kinds(parts)
        assert set(kinds) == {"Split"} and kinds["Split"] <= pieces // 9 + 2, (pieces, kinds)
        want = np.split(np.asarray(x), bounds, axis=0)
        assert [p.shape for p in parts] == [w.shape for w in want]
        for p, w in zip(parts, want, strict=True):
            np.testing.assert_array_equal(np.asarray(p), w)
