"""dot_general (any batch/contracting dims) and convolution.

Float dots transpose to [batch, free, contract] and use mx.matmul in the result type;
integer and bool dots (MLX matmul takes inexact types only) multiply and sum exactly, in
chunks of the contracting dim so the broadcast product stays small.
"""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np

from ...errors import UnimplementedError
from ...runtime import dtypes as _dtypes
from ..importer import ConvDims, DotDims
from ..ir import Op, Operation
from .elementwise import make_complex
from .registry import lowering, register_check, single
from .shape import out_type, pad, permuted

_INEXACT = (mx.float16, mx.bfloat16, mx.float32, mx.float64, mx.complex64)
# The types MLX's convolution computes at their own precision. Its float64 convolution
# computes at float32's (1e-6 off, measured against numpy) and refuses input dilation, so
# float64 convolves as the integers do: a sum over window taps of (float64) matmuls.
_MLX_CONV = (mx.float16, mx.bfloat16, mx.float32, mx.complex64)
_CHUNK_ELEMENTS = 1 << 24


def _int_matmul(a: mx.array, b: mx.array) -> mx.array:
    """[B, M, K] x [B, K, N] for integers/bools, exactly (wrapping like XLA)."""
    bsz, m, k = a.shape
    n = b.shape[2]
    step = max(1, _CHUNK_ELEMENTS // max(1, bsz * m * n))
    acc = None
    for s in range(0, k, step):
        e = min(k, s + step)
        prod = a[:, :, s:e, None] * b[:, None, s:e, :]
        part = mx.sum(prod, axis=2).astype(a.dtype) if a.dtype != mx.bool_ else \
            mx.any(prod, axis=2)
        acc = part if acc is None else (acc | part if a.dtype == mx.bool_ else acc + part)
    if acc is None:
        acc = mx.zeros((bsz, m, n), dtype=a.dtype)
    return acc


def _grouped(x: mx.array, groups: list[list[int]]) -> mx.array | None:
    """x with each group of axes merged into one axis, the groups in the order given; None
    unless every group is a run of consecutive axes in order. Then the merge is a reshape of
    x itself (a view of a contiguous x) and only whole groups are transposed, where merging
    after the transpose would copy (a weight gradient contracts over batch and sequence)."""
    if any(not g or g != list(range(g[0], g[0] + len(g))) for g in groups):
        return None
    order = sorted(range(len(groups)), key=lambda i: groups[i][0])
    runs = [g for g in groups if len(g) > 1]
    if len(runs) == 1:
        # One merge is mx.flatten, as mx.matmul flattens its own batched operand: the dot
        # that uses this x (or this gradient) forward flattens it the same way, and
        # mx.compile merges the two equal nodes into one.
        merged = mx.flatten(x, runs[0][0], runs[0][-1])
    else:
        merged = x.reshape([math.prod(x.shape[d] for d in groups[i]) for i in order])
    return permuted(merged, [order.index(i) for i in range(len(groups))])


def dot_general(lhs: mx.array, rhs: mx.array, dims: DotDims, out_dtype: mx.Dtype) -> mx.array:
    lb, rb = list(dims.lhs_batch), list(dims.rhs_batch)
    lc, rc = list(dims.lhs_contract), list(dims.rhs_contract)
    lf = [d for d in range(lhs.ndim) if d not in lb and d not in lc]
    rf = [d for d in range(rhs.ndim) if d not in rb and d not in rc]
    batch_shape = [lhs.shape[d] for d in lb]
    lf_shape = [lhs.shape[d] for d in lf]
    rf_shape = [rhs.shape[d] for d in rf]
    k = math.prod(lhs.shape[d] for d in lc)
    if k == 0:
        return mx.zeros((*batch_shape, *lf_shape, *rf_shape), out_dtype)
    # Transposes are views MLX's matmul reads in place; a reshape of a transposed view is a
    # copy, so operands are collapsed to [*batch, M, K] / [*batch, K, N] only when they have
    # several (or no) free or contracting dims. A dense layer ([*lf, K] x [K, N], no batch
    # dims) needs no collapse at all: MLX's matmul broadcasts the [K, N] operand.
    dense = not lb and len(lc) == 1 and len(rc) == 1 and len(rf) == 1 and len(lf) >= 1
    if (len(lf) != 1 or len(lc) != 1) and not dense:
        a = _grouped(lhs, [[d] for d in lb] + [lf, lc])
        if a is None:
            a = permuted(lhs, lb + lf + lc).reshape(*batch_shape, math.prod(lf_shape), k)
    else:
        a = permuted(lhs, lb + lf + lc)
    if len(rf) != 1 or len(rc) != 1:
        b = _grouped(rhs, [[d] for d in rb] + [rc, rf])
        if b is None:
            b = permuted(rhs, rb + rc + rf).reshape(*batch_shape, k, math.prod(rf_shape))
    else:
        b = permuted(rhs, rb + rc + rf)
    if a.dtype != out_dtype:
        a = a.astype(out_dtype)
    if b.dtype != out_dtype:
        b = b.astype(out_dtype)
    if out_dtype in _INEXACT:
        out = mx.matmul(a, b)
    else:
        bsz = math.prod(batch_shape)
        out = _int_matmul(a.reshape(bsz, math.prod(lf_shape), k),
                          b.reshape(bsz, k, math.prod(rf_shape)))
    return out.reshape((*batch_shape, *lf_shape, *rf_shape))


@lowering(Op.DOT_GENERAL)
@single
def _dot_general(ctx, op: Operation, lhs: mx.array, rhs: mx.array) -> mx.array:
    return dot_general(lhs, rhs, op.attrs["dot_dimension_numbers"],
                       _dtypes.mlx_dtype(out_type(op).dtype))


# -------------------------------------------------------------------------- convolution


# Convolutions run in [N, *spatial, C] x [O, *window, I] layout. Real floats go to MLX's
# convolution; complex64 is four real convolutions; integers and bools (which MLX's
# convolution does not take, and which must wrap exactly like XLA) and float64 (_MLX_CONV)
# are a sum over window taps of exact matmuls. No spatial dimensions is one spatial
# dimension of size 1.

_REAL_FLOAT = ("float16", "bfloat16", "float32", "float64")
_EXACT = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool")


def _check_convolution(op: Operation) -> None:
    t = out_type(op)
    # (complex128 is four float64 convolutions: compiler/complex128.py)
    if t.dtype not in (*_REAL_FLOAT, "complex64", "complex128", *_EXACT):
        raise UnimplementedError(f"[stablehlo.convolution] element type {t.dtype} is not "
                                 f"supported on metal{op.where()}")
    dn: ConvDims = op.attrs["dimension_numbers"]
    if len(dn.input_spatial_dimensions) > 3:
        raise UnimplementedError(f"[stablehlo.convolution] {len(dn.input_spatial_dimensions)} "
                                 f"spatial dimensions are not supported{op.where()}")


register_check(Op.CONVOLUTION, _check_convolution)


class _Window:
    """Strides, padding (low, high), dilations and feature groups of one convolution, whether
    its kernel is flipped (window_reversal on every spatial dimension), and the platform it
    is lowered for."""

    def __init__(self, strides, pads, lhs_dil, rhs_dil, groups: int, flip: bool = False,
                 platform: str = "cpu") -> None:
        self.strides, self.pads = list(strides), list(pads)
        self.lhs_dil, self.rhs_dil, self.groups = list(lhs_dil), list(rhs_dil), groups
        self.flip, self.platform = flip, platform

    def with_groups(self, groups: int) -> _Window:
        return _Window(self.strides, self.pads, self.lhs_dil, self.rhs_dil, groups, self.flip,
                       self.platform)


# Which form of a convolution each MLX backend runs fastest, measured on ResNet-18's
# gradients (docs/gpu.md, session 10):
# - Input dilation with a flipped kernel (JAX's input gradient): a GPU runs it as one
#   backward-input convolution (cuDNN's on CUDA, 2-6x faster than dilating by hand, in a
#   fraction of the memory); MLX's CPU convolution runs it 7-15x slower than dilating and
#   padding by hand, then convolving.
# - A window larger than the output (JAX's weight gradient: the window is the activation):
#   on CUDA, MLX's convolution of the transposed operands is cuDNN's backward-weight kernel;
#   elsewhere one matmul over patches, as MLX's own weight gradient computes it (MLX's CPU
#   convolution takes seconds on such shapes when dilated).
_CUDA = hasattr(mx, "cuda") and mx.cuda.is_available()
# a convolution with at most this many output positions and a larger window is a weight
# gradient's
_MAX_POSITIONS = 16


def _float_conv(x: mx.array, w: mx.array, win: _Window) -> mx.array:
    if win.groups > 1 and w.ndim - 2 > 2:
        # MLX convolves groups in 1-D and 2-D only: a 3-D grouped convolution is one
        # convolution per group (input channels and output features split alike)
        i, og = x.shape[-1] // win.groups, w.shape[0] // win.groups
        one = win.with_groups(1)
        return mx.concatenate([_float_conv(x[..., g * i:(g + 1) * i], w[g * og:(g + 1) * og],
                                           one) for g in range(win.groups)], axis=-1)
    on_gpu = win.platform == "gpu" and x.dtype != mx.float64  # float64 runs on the CPU stream
    pads, lhs_dil = win.pads, win.lhs_dil
    dilated = any(d > 1 for d in lhs_dil)
    flip = win.flip
    if flip and not on_gpu:  # reversed by a slice, as the input is dilated by hand below
        w = w[(slice(None), *[slice(None, None, -1)] * (w.ndim - 2), slice(None))]
        flip = False
    cropped = any(lo < 0 or hi < 0 for lo, hi in pads)
    if dilated and (cropped or not on_gpu):
        x = _pad_spatial(x, win)  # dilate and pad (negative: crop) by hand
        pads, lhs_dil, dilated = [(0, 0)] * len(pads), [1] * len(pads), False
    elif cropped:  # MLX pads by >= 0 only: crop first
        x = pad(x, mx.zeros((), dtype=x.dtype), [0, *[min(p[0], 0) for p in pads], 0],
                [0, *[min(p[1], 0) for p in pads], 0], [0] * x.ndim)
        pads = [(max(lo, 0), max(hi, 0)) for lo, hi in pads]
    window = w.shape[1:-1]
    out_sp = [max(0, (x.shape[1 + d] + lo + hi - (window[d] - 1) * win.rhs_dil[d] - 1)
                  // win.strides[d] + 1) for d, (lo, hi) in enumerate(pads)]
    if win.groups == 1 and not flip and not dilated and not (on_gpu and _CUDA) and \
            0 < math.prod(out_sp) <= _MAX_POSITIONS < math.prod(window):
        return _conv_by_patches(x, w, win.strides, pads, win.rhs_dil, out_sp)
    return mx.conv_general(x, w, stride=win.strides,
                           padding=([p[0] for p in pads], [p[1] for p in pads]),
                           kernel_dilation=win.rhs_dil, input_dilation=lhs_dil,
                           groups=win.groups, flip=flip)


def _conv_by_patches(x: mx.array, w: mx.array, strides: list[int],
                     pads: list[tuple[int, int]], dilation: list[int],
                     out_spatial: list[int]) -> mx.array:
    """x [N, *spatial, C], w [O, *window, C] -> [N, *out_spatial, O], exactly a convolution
    without input dilation or groups, padded by >= 0, as one matmul over patches:
    out[n, p, o] = sum over window u, channel c of x_padded[n, p * stride + u * dilation, c]
    * w[o, u, c]. The patches are a strided view of x laid out [C, *spatial, N], the order
    JAX's weight gradient holds its activation in, copied once into a [C * window, P * N]
    matrix (as MLX's own weight gradient does)."""
    nsp = len(out_spatial)
    xo = x.transpose(nsp + 1, *range(1, nsp + 1), 0)  # [C, *spatial, N]
    if any(lo or hi for lo, hi in pads):
        xo = mx.pad(xo, [(0, 0), *pads, (0, 0)])
    dims = xo.shape
    step = [math.prod(dims[d + 1:]) for d in range(len(dims))]  # of a row-contiguous xo
    window = w.shape[1:-1]
    patches = mx.as_strided(
        xo, (dims[0], *window, *out_spatial, dims[-1]),
        (step[0], *[dilation[d] * step[1 + d] for d in range(nsp)],
         *[strides[d] * step[1 + d] for d in range(nsp)], 1))
    rows = patches.reshape(dims[0] * math.prod(window), math.prod(out_spatial) * dims[-1])
    kernel = w.transpose(nsp + 1, *range(1, nsp + 1), 0).reshape(rows.shape[0], w.shape[0])
    out = (kernel.T @ rows).reshape(w.shape[0], *out_spatial, dims[-1])  # [O, *P, N]
    return out.transpose(nsp + 1, *range(1, nsp + 1), 0)


def _pad_spatial(x: mx.array, win: _Window) -> mx.array:
    return pad(x, mx.zeros((), dtype=x.dtype), [0, *[p[0] for p in win.pads], 0],
               [0, *[p[1] for p in win.pads], 0], [0, *[d - 1 for d in win.lhs_dil], 0])


def _complex_conv(x: mx.array, w: mx.array, win: _Window) -> mx.array:
    xr, xi, wr, wi = mx.real(x), mx.imag(x), mx.real(w), mx.imag(w)
    re = _float_conv(xr, wr, win) - _float_conv(xi, wi, win)
    im = _float_conv(xr, wi, win) + _float_conv(xi, wr, win)
    return make_complex(re, im)


def _exact_conv(x: mx.array, w: mx.array, win: _Window) -> mx.array:
    """Sum over window taps of [N*P, G, I] x [G, I, O/G] exact matmuls (float64: MLX's)."""
    x = _pad_spatial(x, win)
    n, c, o = x.shape[0], x.shape[-1], w.shape[0]
    g = win.groups
    i, og = c // g, o // g
    window = w.shape[1:-1]
    out_sp = [max(0, (x.shape[1 + d] - (window[d] - 1) * win.rhs_dil[d] - 1)
                  // win.strides[d] + 1) for d in range(len(window))]
    p = math.prod(out_sp)
    acc = mx.zeros((g, n * p, og), dtype=x.dtype)
    for tap in np.ndindex(*window):
        idx = tuple(slice(t * r, t * r + (m - 1) * s + 1, s) for t, r, m, s in
                    zip(tap, win.rhs_dil, out_sp, win.strides, strict=True))
        xs = x[(slice(None), *idx, slice(None))].reshape(n * p, g, i).transpose(1, 0, 2)
        wk = w[(slice(None), *tap, slice(None))].reshape(g, og, i).transpose(0, 2, 1)
        part = mx.matmul(xs, wk) if x.dtype == mx.float64 else _int_matmul(xs, wk)
        acc = (acc | part) if x.dtype == mx.bool_ else acc + part
    return acc.transpose(1, 0, 2).reshape(n, *out_sp, o)


def _conv(x: mx.array, w: mx.array, win: _Window) -> mx.array:
    if x.dtype == mx.complex64:
        return _complex_conv(x, w, win)
    if x.dtype in _MLX_CONV:
        return _float_conv(x, w, win)
    return _exact_conv(x, w, win)


def _window(op: Operation, nsp: int, platform: str) -> _Window:
    padding = op.attrs.get("padding")
    pads = [(0, 0)] * nsp if padding is None else \
        [(int(lo), int(hi)) for lo, hi in np.asarray(padding).reshape(nsp, 2)]
    return _Window(op.attrs.get("window_strides") or (1,) * nsp, pads,
                   op.attrs.get("lhs_dilation") or (1,) * nsp,
                   op.attrs.get("rhs_dilation") or (1,) * nsp,
                   int(op.attrs.get("feature_group_count", 1)), platform=platform)


@lowering(Op.CONVOLUTION)
@single
def _convolution(ctx, op: Operation, lhs: mx.array, rhs: mx.array) -> mx.array:
    dn: ConvDims = op.attrs["dimension_numbers"]
    nsp = len(dn.input_spatial_dimensions)
    dtype = _dtypes.mlx_dtype(out_type(op).dtype)
    x = permuted(lhs, [dn.input_batch_dimension, *dn.input_spatial_dimensions,
                      dn.input_feature_dimension]).astype(dtype)
    w = permuted(rhs, [dn.kernel_output_feature_dimension, *dn.kernel_spatial_dimensions,
                      dn.kernel_input_feature_dimension]).astype(dtype)
    win = _window(op, nsp, ctx.program.platform)
    reversal = [bool(r) for r in op.attrs.get("window_reversal") or ()]
    if nsp and all(reversal) and len(reversal) == nsp and dtype in _MLX_CONV:
        win.flip = True  # the float convolution flips the kernel (its backend's choice)
    elif any(reversal):
        idx = tuple([slice(None)] + [slice(None, None, -1) if r else slice(None)
                                     for r in reversal] + [slice(None)])
        w = w[idx]
    if nsp == 0:  # one spatial dimension of size 1
        x, w = x[:, None], w[:, None]
        win = _Window((1,), [(0, 0)], (1,), (1,), win.groups, platform=win.platform)
    bg = int(op.attrs.get("batch_group_count", 1))
    if bg == 1:
        out = _conv(x, w, win)
    else:  # batch group g (of the batch split group-major) meets output features group g
        nb, no = x.shape[0] // bg, w.shape[0] // bg
        out = mx.concatenate([_conv(x[g * nb:(g + 1) * nb], w[g * no:(g + 1) * no], win)
                              for g in range(bg)], axis=-1)
    if nsp == 0:
        out = out[:, 0]
    # [N, *spatial, O] -> the output layout
    rank = nsp + 2
    src = [0] * rank
    src[dn.output_batch_dimension] = 0
    src[dn.output_feature_dimension] = nsp + 1
    for j, d in enumerate(dn.output_spatial_dimensions):
        src[d] = 1 + j
    return permuted(out, src)


# --------------------------------------------------------------------------------- fft

_FFT = {"FFT": mx.fft.fftn, "IFFT": mx.fft.ifftn, "RFFT": mx.fft.rfftn, "IRFFT": mx.fft.irfftn}


def _check_fft(op: Operation) -> None:
    if op.attrs.get("fft_type") not in _FFT:
        raise UnimplementedError(f"[stablehlo.fft] fft_type {op.attrs.get('fft_type')} is not "
                                 f"supported{op.where()}")


register_check(Op.FFT, _check_fft)


@lowering(Op.FFT)
@single
def _fft(ctx, op: Operation, x: mx.array) -> mx.array:
    t = out_type(op)
    if math.prod(t.shape) == 0:  # MLX refuses zero-length transforms; the result is empty
        return mx.zeros(t.shape, dtype=_dtypes.mlx_dtype(t.dtype))
    lengths = tuple(int(n) for n in op.attrs["fft_length"])
    axes = list(range(x.ndim - len(lengths), x.ndim))
    out = _FFT[op.attrs["fft_type"]](x, s=lengths, axes=axes)
    return out.astype(_dtypes.mlx_dtype(t.dtype))
