"""What the CNN notes teach, computed for real: output sizes, the
convolution as a (Toeplitz) matrix, and the receptive field of each layer
of a model."""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from . import _args
from ._args import bad


def _sizes(fn, input_size):
    scalar = isinstance(input_size, numbers.Integral)
    sizes = (input_size,) if scalar else tuple(input_size)
    if not sizes or not all(isinstance(s, numbers.Integral) and s >= 1 for s in sizes):
        raise bad(fn, f"input_size must be an int >= 1 or a tuple of them (the spatial sizes), got {input_size!r}")
    return scalar, tuple(int(s) for s in sizes)


def _out(fn, scalar, sizes, kernel, stride, pairs, dilation, ceil_mode=False):
    out = _args.output_sizes(fn, sizes, pairs, kernel, stride, dilation, ceil_mode)
    return out[0] if scalar else out


def conv_output_shape(input_size, kernel_size, stride=1, padding=0, dilation=1):
    """Spatial output size of a convolution: floor((H + 2p - d(f - 1) - 1) / s) + 1 per dim.

    input_size: an int (returns an int) or a tuple of spatial sizes (returns
    a tuple). padding as in conv2d: 'valid', 'same' (stride 1), an int, a
    tuple, or (begin, end) pairs."""
    fn = "conv_output_shape"
    scalar, sizes = _sizes(fn, input_size)
    n = len(sizes)
    kernel = _args.ints(kernel_size, n, fn, "kernel_size", 1)
    stride = _args.ints(stride, n, fn, "stride", 1)
    dilation = _args.ints(dilation, n, fn, "dilation", 1)
    if padding == "same":
        if any(s != 1 for s in stride):
            raise bad(fn, f"padding='same' needs stride 1, got stride={stride}")
        return input_size if scalar else sizes
    pairs = [(0, 0)] * n if padding == "valid" else _args.pads(padding, n, fn)
    return _out(fn, scalar, sizes, kernel, stride, pairs, dilation)


def pool_output_shape(input_size, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Spatial output size of a pooling window (stride defaults to the kernel
    size, as in max_pool2d): floor((H + 2p - d(f - 1) - 1) / s) + 1, rounded
    up with ceil_mode (the last window must start inside the input or its
    left padding)."""
    fn = "pool_output_shape"
    scalar, sizes = _sizes(fn, input_size)
    n = len(sizes)
    kernel = _args.ints(kernel_size, n, fn, "kernel_size", 1)
    stride = kernel if stride is None else _args.ints(stride, n, fn, "stride", 1)
    pads = _args.ints(padding, n, fn, "padding", 0)
    dilation = _args.ints(dilation, n, fn, "dilation", 1)
    return _out(fn, scalar, sizes, kernel, stride, [(p, p) for p in pads], dilation, bool(ceil_mode))


def conv2d_matrix(weight, input_shape, stride=1, padding=0, dilation=1, max_bytes: int = 1 << 30):
    """The matrix C of a 2-D convolution: conv2d(x, weight, stride=...,
    padding=..., dilation=...).ravel() == C @ x.ravel() for x of shape
    input_shape = (C_in, H, W) (or (1, C_in, H, W)).

    C has (M * H_out * W_out) rows and (C_in * H * W) columns: each row holds
    one output pixel's weights at the input pixels its window covers, the same
    weights shifted along each row block (a doubly blocked Toeplitz matrix,
    for 2-D). Returned as a scipy.sparse CSR matrix when scipy is installed,
    else a dense numpy array. max_bytes guards memory: the sparse matrix
    (12 bytes a stored weight) or the dense one (4 bytes an entry) must fit,
    else a ValueError says how much it would take."""
    fn = "conv2d_matrix"
    w = _args.as_float32(weight, fn, "weight")
    if w.ndim != 4:
        raise bad(fn, f"weight must be (M, C_in, kH, kW), got shape {w.shape}")
    shape = tuple(input_shape)
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 3 or not all(isinstance(s, numbers.Integral) and s >= 1 for s in shape):
        raise bad(fn, f"input_shape must be (C_in, H, W), got {input_shape!r}")
    C, H, W = (int(s) for s in shape)
    M, Cw, kh, kw = w.shape
    if Cw != C:
        raise bad(fn, f"input_shape has {C} channels but weight {w.shape} expects {Cw}")
    stride = _args.ints(stride, 2, fn, "stride", 1)
    dilation = _args.ints(dilation, 2, fn, "dilation", 1)
    pairs = _args.pads(padding, 2, fn)
    oh, ow = _out(fn, False, (H, W), (kh, kw), stride, pairs, dilation)
    rows, cols = M * oh * ow, C * H * W
    # Every (output pixel, weight) pair whose input pixel is inside the image.
    m, c, i, j, y, x = np.meshgrid(np.arange(M), np.arange(C), np.arange(kh), np.arange(kw), np.arange(oh),
                                   np.arange(ow), indexing="ij", sparse=True)
    ih = y * stride[0] - pairs[0][0] + i * dilation[0]
    iw = x * stride[1] - pairs[1][0] + j * dilation[1]
    inside = np.broadcast_to((ih >= 0) & (ih < H) & (iw >= 0) & (iw < W), (M, C, kh, kw, oh, ow))
    nnz = int(np.count_nonzero(inside))
    try:
        import scipy.sparse as sp
    except ImportError:
        sp = None
    need = nnz * 12 if sp is not None else rows * cols * 4
    if need > max_bytes:
        kind = "sparse" if sp is not None else "dense (scipy is not installed)"
        raise bad(fn, f"the {kind} {rows} x {cols} matrix would take {need / 2**20:.1f} MiB, over max_bytes="
                      f"{max_bytes} ({max_bytes / 2**20:.1f} MiB); use a smaller input or raise max_bytes")
    full = (M, C, kh, kw, oh, ow)
    r = np.broadcast_to((m * oh + y) * ow + x, full)[inside]
    col = np.broadcast_to((c * H + ih) * W + iw, full)[inside]
    val = np.broadcast_to(w[:, :, :, :, None, None], full)[inside]
    if sp is not None:
        return sp.csr_matrix((val, (r, col)), shape=(rows, cols), dtype=np.float32)
    dense = np.zeros((rows, cols), dtype=np.float32)
    np.add.at(dense, (r, col), val)
    return dense


class LayerField(NamedTuple):
    """One windowed layer's receptive field, per spatial dim (in input pixels).

    size: how many input pixels one output pixel of this layer sees (None
    for a global pool: all of them). jump: the distance in input pixels
    between two adjacent output pixels (the product of the strides so far)."""
    name: str
    op_type: str
    kernel: tuple
    stride: tuple
    dilation: tuple
    jump: tuple
    size: tuple | None


def receptive_field(model) -> list[LayerField]:
    """The receptive field and jump of each Conv, ConvTranspose and pooling
    layer of a model: an InferenceSession, a path, bytes or an
    onnx.ModelProto. Along the graph: size_out = size_in + (d(k - 1)) * jump_in,
    jump_out = jump_in * stride; where branches meet (Add, Concat) the larger
    field wins. A transposed convolution divides the jump by its stride."""
    from ..onnx_import import layer_outline, load_model
    from ..session import InferenceSession

    if isinstance(model, InferenceSession):
        data_inputs, nodes = model._outline
    else:
        data_inputs, nodes = layer_outline(load_model(model))
    # Per tensor on the data path: (size, jump) tuples (length 1 broadcasts
    # to any rank), or _GLOBAL once every input pixel is seen.
    fields = {name: ((1,), (1,)) for name in data_inputs}
    out = []
    for n in nodes:
        ins = [fields[i] for i in n.inputs if i in fields]
        if not ins:
            continue  # not on the data path (shape arithmetic, weights)
        if _GLOBAL in ins or n.op_type.startswith("Global") or n.op_type in ("Flatten", "Gemm", "MatMul"):
            value = _GLOBAL
            if n.op_type.startswith("Global") and _GLOBAL not in ins:
                out.append(LayerField(n.name, n.op_type, (), (), (), (), None))
        elif n.kernel and n.inputs[0] in fields:
            r = len(n.kernel)
            size, jump = (tuple(v) * r if len(v) == 1 else tuple(v[-r:]) for v in fields[n.inputs[0]])
            if n.op_type == "ConvTranspose":  # each output sees ceil(extent / s) inputs, s times closer
                jump = tuple(j / s for j, s in zip(jump, n.strides))
                size = tuple(sz + (math.ceil((d * (k - 1) + 1) / s) - 1) * j * s
                             for sz, k, s, d, j in zip(size, n.kernel, n.strides, n.dilations, jump))
            else:
                size = tuple(sz + d * (k - 1) * j for sz, k, d, j in zip(size, n.kernel, n.dilations, jump))
                jump = tuple(j * s for j, s in zip(jump, n.strides))
            value = (size, jump)
            out.append(LayerField(n.name, n.op_type, tuple(n.kernel), tuple(n.strides), tuple(n.dilations),
                                  tuple(_tidy(j) for j in jump), tuple(_tidy(v) for v in size)))
        else:  # element-wise, Concat, norms, ...: the widest input's field
            value = max(ins, key=lambda f: math.prod(f[0]))
        for o in n.outputs:
            fields[o] = value
    return out


_GLOBAL = "global"


def _tidy(v):
    return int(v) if float(v).is_integer() else float(v)
