"""Convolutions on numpy arrays, with torch.nn.functional's names, arguments
and semantics, run by the Conv and ConvTranspose operators a session uses."""
from __future__ import annotations

import numbers

import numpy as np

from . import _args, _cache
from ._args import bad


def _weight_and_bias(fn, weight, bias, nd, out_channels_axis):
    w = _args.as_float32(weight, fn, "weight")
    if w.ndim != nd + 2:
        raise bad(fn, f"weight must have {nd + 2} dims, got shape {w.shape}")
    if w.size == 0:
        raise bad(fn, f"weight is empty (shape {w.shape})")
    b = None
    if bias is not None:
        b = _args.as_float32(bias, fn, "bias")
        if b.shape != (w.shape[out_channels_axis],):
            raise bad(fn, f"bias must have shape ({w.shape[out_channels_axis]},), got {b.shape}")
    return w, b


def _groups(fn, groups) -> int:
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
        raise bad(fn, f"groups must be an int >= 1, got {groups!r}")
    return int(groups)


def _conv(fn, nd, input, weight, bias, stride, padding, dilation, groups):
    x, unbatched = _args.batched(input, fn, nd)
    w, b = _weight_and_bias(fn, weight, bias, nd, 0)
    groups = _groups(fn, groups)
    C, M = x.shape[1], w.shape[0]
    if C % groups or M % groups:
        raise bad(fn, f"groups={groups} must divide the input channels ({C}) and the output channels ({M})")
    if w.shape[1] * groups != C:
        raise bad(fn, f"input has {C} channels but weight {w.shape} with groups={groups} expects "
                      f"{w.shape[1] * groups}")
    kernel = w.shape[2:]
    stride = _args.ints(stride, nd, fn, "stride", 1)
    dilation = _args.ints(dilation, nd, fn, "dilation", 1)
    if isinstance(padding, str):
        if padding == "valid":
            pairs = [(0, 0)] * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise bad(fn, f"padding='same' needs stride 1, got stride={stride}; pad explicitly instead")
            # As torch: the total d(k-1) split with the extra pixel at the end (even kernels).
            pairs = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation)]
        else:
            raise bad(fn, f"padding must be 'valid', 'same', an int or a tuple, got {padding!r}")
    else:
        pairs = _args.pads(padding, nd, fn)
    _args.output_sizes(fn, x.shape[2:], pairs, kernel, stride, dilation)  # refuses a kernel past the input
    attrs = {"strides": list(stride), "dilations": list(dilation), "pads": _args.onnx_pads(pairs), "group": groups}
    y = _cache.run_conv("Conv", fn, x, [w, b], attrs, _args.threads())
    return y[0] if unbatched else y


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """1-D convolution (cross-correlation, as in deep learning) of input (N, C, L)
    or (C, L) with weight (M, C/groups, k); bias (M,) is optional.

    padding: 'valid' (none), 'same' (output length = input length; stride 1,
    any kernel size: an even kernel's extra pad goes at the end, as torch
    does), an int, (p,), or ((begin, end),) for asymmetric padding.
    Returns (N, M, L_out) float32, L_out = floor((L + pads - dilation*(k-1) - 1) / stride) + 1.
    """
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """2-D convolution (cross-correlation) of input (N, C, H, W) or (C, H, W)
    with weight (M, C/groups, kH, kW); bias (M,) is optional. groups=C with
    M a multiple of C is a depthwise convolution.

    stride, dilation: an int or (sH, sW). padding: 'valid', 'same' (stride 1,
    any kernel including even sizes; the extra pad goes at the end, as in
    torch), an int, (pH, pW), or ((top, bottom), (left, right)).
    Returns (N, M, H_out, W_out) float32 with, per dim,
    out = floor((size + pad_begin + pad_end - dilation*(k-1) - 1) / stride) + 1.
    The weights are packed (and, for 3x3 layers where it pays, Winograd-
    transformed) on each call, as a session does once at creation.
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(fn, nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    x, unbatched = _args.batched(input, fn, nd)
    groups = _groups(fn, groups)
    w, b = _weight_and_bias(fn, weight, None, nd, 1)
    C = x.shape[1]
    if w.shape[0] != C:
        raise bad(fn, f"input has {C} channels but weight {w.shape} expects {w.shape[0]} "
                      "(weight is (C_in, C_out/groups, k...))")
    if C % groups:
        raise bad(fn, f"groups={groups} must divide the input channels ({C})")
    M = w.shape[1] * groups
    if bias is not None:
        b = _args.as_float32(bias, fn, "bias")
        if b.shape != (M,):
            raise bad(fn, f"bias must have shape ({M},), got {b.shape}")
    stride = _args.ints(stride, nd, fn, "stride", 1)
    dilation = _args.ints(dilation, nd, fn, "dilation", 1)
    if isinstance(padding, str):
        raise bad(fn, f"padding must be an int or a tuple for a transposed convolution, got {padding!r}")
    pairs = _args.pads(padding, nd, fn)
    out_pad = _args.ints(output_padding, nd, fn, "output_padding", 0)
    for i, (op, s, d) in enumerate(zip(out_pad, stride, dilation)):
        if op >= s and op >= d:
            raise bad(fn, f"output_padding must be smaller than stride or dilation in dim {i}, got "
                          f"output_padding={op}, stride={s}, dilation={d}")
    kernel = w.shape[2:]
    for i, (size, (pb, pe), k, s, d, op) in enumerate(zip(x.shape[2:], pairs, kernel, stride, dilation, out_pad)):
        out = (size - 1) * s - pb - pe + d * (k - 1) + op + 1
        if out < 1:
            raise bad(fn, f"the output would have size {out} in spatial dim {i} (input {size}, stride {s}, "
                          f"padding {pb}+{pe}, kernel {k}, dilation {d}); reduce the padding")
    attrs = {"strides": stride, "dilations": dilation, "pads": _args.onnx_pads(pairs), "group": groups,
             "output_padding": out_pad}
    (y,) = _args.run("ConvTranspose", fn, [x, w, b], [False, True, True], attrs)
    return y[0] if unbatched else y


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1) -> np.ndarray:
    """1-D transposed convolution (the gradient of conv1d; upsamples) of input
    (N, C, L) with weight (C, M/groups, k). Output length:
    (L - 1)*stride - pad_begin - pad_end + dilation*(k - 1) + output_padding + 1.
    """
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1) -> np.ndarray:
    """2-D transposed convolution of input (N, C, H, W) with weight
    (C, M/groups, kH, kW), as torch.nn.functional.conv_transpose2d (note the
    argument order: groups before dilation). Per dim, the output size is
    (size - 1)*stride - pad_begin - pad_end + dilation*(k - 1) + output_padding + 1.
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)
