"""Pooling on numpy arrays, with torch.nn.functional's names, arguments and
semantics (stride defaults to the kernel size; avg_pool counts padding by
default), run by the MaxPool / AveragePool / Global*Pool operators."""
from __future__ import annotations

import numpy as np

from . import _args
from ._args import bad


def _window(fn, nd, kernel_size, stride, padding, dilation):
    kernel = _args.ints(kernel_size, nd, fn, "kernel_size", 1)
    stride = kernel if stride is None or (_args.is_seq(stride) and len(stride) == 0) else \
        _args.ints(stride, nd, fn, "stride", 1)
    pads = _args.ints(padding, nd, fn, "padding", 0)
    dilation = _args.ints(dilation, nd, fn, "dilation", 1)
    for i, (k, p) in enumerate(zip(kernel, pads)):
        if p > k // 2:  # as torch: a window must not lie wholly in the padding
            raise bad(fn, f"padding must be at most half the kernel size, got padding={p} for kernel size {k} "
                          f"in spatial dim {i}")
    return kernel, stride, pads, dilation


def _pool(fn, nd, op, input, kernel_size, stride, padding, dilation, ceil_mode, extra, outputs=1):
    x, unbatched = _args.batched(input, fn, nd)
    kernel, stride, pads, dilation = _window(fn, nd, kernel_size, stride, padding, dilation)
    # Refuses a kernel larger than the padded input (the op computes the sizes).
    _args.output_sizes(fn, x.shape[2:], [(p, p) for p in pads], kernel, stride, dilation)
    attrs = {"kernel_shape": list(kernel), "strides": list(stride), "pads": list(pads) * 2,
             "ceil_mode": int(bool(ceil_mode)), **extra}
    if op == "MaxPool":
        attrs["dilations"] = list(dilation)
    ys = _args.run(op, fn, [x], [False], attrs, outputs)
    return [y[0] for y in ys] if unbatched else ys, x.shape


def _max_pool(fn, nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    ys, shape = _pool(fn, nd, "MaxPool", input, kernel_size, stride, padding, dilation, ceil_mode, {},
                      2 if return_indices else 1)
    if not return_indices:
        return ys[0]
    y, idx = ys
    # ONNX's indices count from the start of the tensor; torch's from the plane's.
    plane = int(np.prod(shape[2:]))
    idx %= plane
    return y, idx


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over windows of input (N, C, L) or (C, L). stride defaults to
    kernel_size; padding (at most half the kernel) pads with -inf; ceil_mode
    rounds the output length up (the last window must start inside the input
    or its left padding). return_indices: also the argmax, an int64 index
    into each row of length L, as torch returns it."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over windows of input (N, C, H, W) or (C, H, W). Arguments as
    max_pool1d, each an int or an (h, w) pair; indices (return_indices) are
    flat offsets h * W + w into each input plane, as torch returns them.
    Output size per dim: floor((size + 2*padding - dilation*(k-1) - 1) / stride) + 1
    (ceil with ceil_mode)."""
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True) -> np.ndarray:
    """Mean over windows of input (N, C, L) or (C, L). count_include_pad (the
    default, as torch): zero padding counts in the divisor; windows that
    ceil_mode lets run past the padding divide by the part within it."""
    (y,), _ = _pool("avg_pool1d", 1, "AveragePool", input, kernel_size, stride, padding, 1, ceil_mode,
                    {"count_include_pad": int(bool(count_include_pad))})
    return y


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True) -> np.ndarray:
    """Mean over windows of input (N, C, H, W) or (C, H, W); arguments as avg_pool1d."""
    (y,), _ = _pool("avg_pool2d", 2, "AveragePool", input, kernel_size, stride, padding, 1, ceil_mode,
                    {"count_include_pad": int(bool(count_include_pad))})
    return y


def _global(fn, op, input) -> np.ndarray:
    x, unbatched = _args.batched(input, fn, 2)
    (y,) = _args.run(op, fn, [x], [False], {})
    return y[0] if unbatched else y


def global_avg_pool2d(input) -> np.ndarray:
    """Mean over each plane of input (N, C, H, W) or (C, H, W): (N, C, 1, 1)
    (or (C, 1, 1)), as adaptive_avg_pool2d(input, 1)."""
    return _global("global_avg_pool2d", "GlobalAveragePool", input)


def global_max_pool2d(input) -> np.ndarray:
    """Max over each plane of input (N, C, H, W) or (C, H, W): (N, C, 1, 1) (or (C, 1, 1))."""
    return _global("global_max_pool2d", "GlobalMaxPool", input)


def adaptive_avg_pool2d(input, output_size) -> np.ndarray:
    """Mean over adaptive windows, as torch: output (N, C, oH, oW) where
    output cell i covers input rows floor(i*H/oH) to ceil((i+1)*H/oH)
    (columns likewise). output_size: an int, or (oH, oW) with None keeping
    the input's size."""
    fn = "adaptive_avg_pool2d"
    x, unbatched = _args.batched(input, fn, 2)
    H, W = x.shape[2:]
    sizes = (output_size, output_size) if not _args.is_seq(output_size) else tuple(output_size)
    if len(sizes) != 2:
        raise bad(fn, f"output_size must be an int or (oH, oW), got {output_size!r}")
    sizes = tuple(d if s is None else s for s, d in zip(sizes, (H, W)))
    oh, ow = _args.ints(sizes, 2, fn, "output_size", 1)
    if oh == 1 and ow == 1:
        y = global_avg_pool2d(x)
    elif H % oh == 0 and W % ow == 0:  # even windows: one average pool
        y = avg_pool2d(x, (H // oh, W // ow))
    else:
        y = _adaptive_windows(x, oh, ow)
    return y[0] if unbatched else y


def _adaptive_windows(x: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """Uneven windows: sums from a summed-area table (float64, so long
    planes keep float32 accuracy), one gather per corner."""
    H, W = x.shape[2:]
    table = np.zeros(x.shape[:2] + (H + 1, W + 1), dtype=np.float64)
    np.cumsum(np.cumsum(x, axis=2, dtype=np.float64), axis=3, out=table[:, :, 1:, 1:])
    hs, he = (np.arange(oh) * H) // oh, -((-(np.arange(oh) + 1) * H) // oh)
    ws, we = (np.arange(ow) * W) // ow, -((-(np.arange(ow) + 1) * W) // ow)
    total = (table[:, :, he[:, None], we[None, :]] - table[:, :, hs[:, None], we[None, :]]
             - table[:, :, he[:, None], ws[None, :]] + table[:, :, hs[:, None], ws[None, :]])
    area = (he - hs)[:, None] * (we - ws)[None, :]
    return (total / area).astype(np.float32)
