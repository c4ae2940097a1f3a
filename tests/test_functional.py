"""pycnn.functional against plain numpy references written here (always run)
and against torch.nn.functional (only where torch is installed).

The references compute in float64 straight from each operation's definition
(loops over kernel taps and windows, clarity over speed), so they share no
code with the C++ kernels they check. Outputs are compared with a tolerance
relative to the output's scale: the kernels use FMA, Winograd and other
orderings of the sums.
"""
import itertools
import math
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import pycnn
import pycnn.functional as F
from pycnn import _functional
from pycnn.functional import _cache


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    """torch, or the test is skipped (CI may not have it)."""
    return pytest.importorskip("torch")


def rand(shape, seed, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def assert_close(got, want, rtol=1e-4):
    """float32 result of want's shape, equal to rtol relative to the output's scale."""
    want = np.asarray(want)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32, (type(got), getattr(got, "dtype", None))
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = max(float(np.abs(want).max()) if want.size else 0.0, 1e-6)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def _tup(v, n):
    return (v,) * n if isinstance(v, int) else tuple(v)


def _pad_pairs(padding, kernel, dilation):
    """(begin, end) per spatial dim from any padding form conv2d takes."""
    n = len(kernel)
    if padding == "valid":
        return [(0, 0)] * n
    if padding == "same":  # total d(k-1), the odd pixel at the end (as torch)
        return [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation)]
    if isinstance(padding, int):
        return [(padding, padding)] * n
    return [tuple(p) if isinstance(p, (tuple, list)) else (p, p) for p in padding]


# --------------------------------------------------------------------------
# numpy references (float64, from the definitions)
# --------------------------------------------------------------------------

def ref_conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Cross-correlation: for each kernel tap, a strided slice of the padded
    input times that tap's (group-blocked) weights, summed over taps."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    nd = w.ndim - 2
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    stride, dilation, kernel = _tup(stride, nd), _tup(dilation, nd), w.shape[2:]
    x = np.pad(x, [(0, 0), (0, 0)] + _pad_pairs(padding, kernel, dilation))
    N, C, M, G = x.shape[0], x.shape[1], w.shape[0], groups
    out = [(n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(x.shape[2:], kernel, stride, dilation)]
    xg = x.reshape(N, G, C // G, *x.shape[2:])
    wg = w.reshape(G, M // G, C // G, *kernel)
    y = np.zeros((N, G, M // G, *out))
    for tap in itertools.product(*map(range, kernel)):
        window = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in zip(tap, dilation, out, stride))
        y += np.einsum("ngc...,gmc->ngm...", xg[(...,) + window], wg[(...,) + tap])
    y = y.reshape(N, M, *out)
    if b is not None:
        y += np.asarray(b, np.float64).reshape((M,) + (1,) * nd)
    return y[0] if unbatched else y


def ref_conv_transpose(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Scatter-add: input pixel i adds x[i] * w[tap] at output i*stride + tap*dilation;
    padding then crops (begin, end), output_padding extends the end."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    nd = w.ndim - 2
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    stride, dilation, out_pad = _tup(stride, nd), _tup(dilation, nd), _tup(output_padding, nd)
    kernel, size = w.shape[2:], x.shape[2:]
    pairs = _pad_pairs(padding, kernel, dilation)
    N, C, G, Mg = x.shape[0], x.shape[1], groups, w.shape[1]
    full = [(n - 1) * s + d * (k - 1) + 1 + op for n, k, s, d, op in zip(size, kernel, stride, dilation, out_pad)]
    y = np.zeros((N, G, Mg, *full))
    xg = x.reshape(N, G, C // G, *size)
    wg = w.reshape(G, C // G, Mg, *kernel)
    for tap in itertools.product(*map(range, kernel)):
        dest = tuple(slice(t * d, t * d + (n - 1) * s + 1, s) for t, d, n, s in zip(tap, dilation, size, stride))
        y[(...,) + dest] += np.einsum("ngc...,gcm->ngm...", xg, wg[(...,) + tap])
    y = y.reshape(N, G * Mg, *full)
    y = y[(...,) + tuple(slice(pb, f - pe) for (pb, pe), f in zip(pairs, full))]
    if b is not None:
        y = y + np.asarray(b, np.float64).reshape((G * Mg,) + (1,) * nd)
    return y[0] if unbatched else y


def _pool_out(n, k, s, p, d, ceil_mode):
    """torch's pooled size; with ceil_mode the last window must start inside the input or its left padding."""
    span = n + 2 * p - d * (k - 1) - 1
    o = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    return o


def _pool_args(x, kernel_size, stride, padding, dilation):
    nd = x.ndim - 2
    kernel = _tup(kernel_size, nd)
    stride = kernel if stride is None else _tup(stride, nd)
    return kernel, stride, _tup(padding, nd), _tup(dilation, nd)


def ref_max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """(max, argmax as a flat index into each plane) over each window's in-input pixels
    (padding is -inf, so it never wins)."""
    x = np.asarray(x, np.float64)
    kernel, stride, pad, dil = _pool_args(x, kernel_size, stride, padding, dilation)
    spatial = x.shape[2:]
    outs = [_pool_out(n, k, s, p, d, ceil_mode) for n, k, s, p, d in zip(spatial, kernel, stride, pad, dil)]
    y = np.empty(x.shape[:2] + tuple(outs))
    idx = np.empty(y.shape, np.int64)
    flat = x.reshape(x.shape[:2] + (-1,))
    for o in itertools.product(*map(range, outs)):
        axes = [[oi * s - p + t * d for t in range(k) if 0 <= oi * s - p + t * d < n]
                for oi, n, k, s, p, d in zip(o, spatial, kernel, stride, pad, dil)]
        positions = np.ravel_multi_index(np.meshgrid(*axes, indexing="ij"), spatial).ravel()
        vals = flat[:, :, positions]
        j = vals.argmax(-1)
        y[(...,) + o] = np.take_along_axis(vals, j[..., None], -1)[..., 0]
        idx[(...,) + o] = positions[j]
    return y, idx


def ref_avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """torch's rule: the window is clipped to input+padding; count_include_pad=True divides by
    that clipped size (padding counted, the part past the padding not), False by the pixels
    inside the input."""
    x = np.asarray(x, np.float64)
    kernel, stride, pad, _ = _pool_args(x, kernel_size, stride, padding, 1)
    spatial = x.shape[2:]
    outs = [_pool_out(n, k, s, p, 1, ceil_mode) for n, k, s, p in zip(spatial, kernel, stride, pad)]
    y = np.empty(x.shape[:2] + tuple(outs))
    for o in itertools.product(*map(range, outs)):
        starts = [oi * s - p for oi, s, p in zip(o, stride, pad)]
        ends = [min(st + k, n + p) for st, k, n, p in zip(starts, kernel, spatial, pad)]
        with_pad = math.prod(e - st for st, e in zip(starts, ends))
        starts = [max(st, 0) for st in starts]
        ends = [min(e, n) for e, n in zip(ends, spatial)]
        window = x[(...,) + tuple(slice(st, e) for st, e in zip(starts, ends))]
        total = window.sum(axis=tuple(range(2, x.ndim)))
        y[(...,) + o] = total / (with_pad if count_include_pad else window[0, 0].size)
    return y


def ref_adaptive_avg_pool2d(x, oh, ow):
    """Output cell (i, j) averages rows floor(i*H/oh)..ceil((i+1)*H/oh), columns likewise."""
    x = np.asarray(x, np.float64)
    H, W = x.shape[-2:]
    y = np.empty(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * H // oh, -(-(i + 1) * H // oh))
            cols = slice(j * W // ow, -(-(j + 1) * W // ow))
            y[..., i, j] = x[..., rows, cols].mean(axis=(-2, -1))
    return y


def _channel(v, ndim):
    return np.asarray(v, np.float64).reshape((-1,) + (1,) * (ndim - 2))


def ref_batch_norm(x, mean, var, weight=None, bias=None, eps=1e-5):
    x = np.asarray(x, np.float64)
    y = (x - _channel(mean, x.ndim)) / np.sqrt(_channel(var, x.ndim) + eps)
    return y * (1 if weight is None else _channel(weight, x.ndim)) + (0 if bias is None else _channel(bias, x.ndim))


def _normalize(x, axes, eps):
    return (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)


def ref_instance_norm(x, weight=None, bias=None, eps=1e-5):
    x = np.asarray(x, np.float64)
    y = _normalize(x, tuple(range(2, x.ndim)), eps)
    return y * (1 if weight is None else _channel(weight, x.ndim)) + (0 if bias is None else _channel(bias, x.ndim))


def ref_layer_norm(x, shape, weight=None, bias=None, eps=1e-5):
    x = np.asarray(x, np.float64)
    y = _normalize(x, tuple(range(x.ndim - len(shape), x.ndim)), eps)
    return y * (1 if weight is None else weight) + (0 if bias is None else bias)


def ref_group_norm(x, groups, weight=None, bias=None, eps=1e-5):
    x = np.asarray(x, np.float64)
    y = _normalize(x.reshape(x.shape[0], groups, -1), (2,), eps).reshape(x.shape)
    return y * (1 if weight is None else _channel(weight, x.ndim)) + (0 if bias is None else _channel(bias, x.ndim))


def ref_log_softmax(x, dim):
    x = np.asarray(x, np.float64)
    z = x - x.max(axis=dim, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=dim, keepdims=True))


def ref_softmax(x, dim):
    return np.exp(ref_log_softmax(x, dim))


_erf = np.vectorize(math.erf)
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805

# name -> (call, float64 reference); the arguments are the non-default ones torch users pass.
ACTIVATIONS = {
    "relu": (F.relu, lambda x: np.maximum(x, 0)),
    "relu6": (F.relu6, lambda x: np.clip(x, 0, 6)),
    "leaky_relu": (F.leaky_relu, lambda x: np.where(x >= 0, x, 0.01 * x)),
    "leaky_relu_0.2": (lambda x, **k: F.leaky_relu(x, 0.2, **k), lambda x: np.where(x >= 0, x, 0.2 * x)),
    "elu": (F.elu, lambda x: np.where(x > 0, x, np.expm1(x))),
    "elu_0.5": (lambda x, **k: F.elu(x, 0.5, **k), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    "selu": (F.selu, lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x))),
    "gelu": (F.gelu, lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2)))),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    "silu": (F.silu, lambda x: x / (1 + np.exp(-x))),
    "hardswish": (F.hardswish, lambda x: x * np.clip(x + 3, 0, 6) / 6),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (F.tanh, np.tanh),
    "softplus": (F.softplus, lambda x: np.logaddexp(0, x)),
    "hardsigmoid": (F.hardsigmoid, lambda x: np.clip(x + 3, 0, 6) / 6),
    "hardtanh": (F.hardtanh, lambda x: np.clip(x, -1, 1)),
    "hardtanh_-2_3": (lambda x, **k: F.hardtanh(x, -2.0, 3.0, **k), lambda x: np.clip(x, -2, 3)),
    "softsign": (F.softsign, lambda x: x / (1 + np.abs(x))),
}
INPLACE_ACTIVATIONS = ["relu", "relu6", "leaky_relu", "leaky_relu_0.2", "elu", "elu_0.5", "selu", "silu",
                       "hardswish", "hardsigmoid", "hardtanh", "hardtanh_-2_3"]


# --------------------------------------------------------------------------
# convolution
# --------------------------------------------------------------------------

def conv_case(x_shape, w_shape, bias=True, **kwargs):
    return x_shape, w_shape, bias, kwargs


# Odd channel counts (1, 3, 7, 17), planes 1 / 5 / 13 and non-square, every padding form.
CONV2D_CASES = {
    "1x1": conv_case((2, 3, 5, 5), (7, 3, 1, 1)),
    "1x1-s2-unbatched": conv_case((17, 13, 5), (3, 17, 1, 1), bias=False, stride=2),
    "1ch-3x3-valid": conv_case((1, 1, 5, 5), (1, 1, 3, 3), padding="valid"),
    "3x3-p1": conv_case((1, 7, 13, 13), (17, 7, 3, 3), padding=1),
    "3x3-plane-1x1": conv_case((2, 3, 1, 1), (7, 3, 3, 3), padding=1),
    "3x3-s2-nonsquare": conv_case((1, 3, 13, 5), (7, 3, 3, 3), stride=2, padding=1),
    "3x3-stride-tuple-pad-tuple": conv_case((1, 7, 13, 5), (3, 7, 3, 3), stride=(2, 1), padding=(1, 0)),
    "3x3-dil2": conv_case((1, 3, 13, 13), (7, 3, 3, 3), dilation=2, padding=2),
    "5x5-p2": conv_case((1, 3, 13, 13), (7, 3, 5, 5), padding=2),
    "5x5-valid-to-1-wide": conv_case((1, 7, 13, 5), (3, 7, 5, 5), padding="valid"),
    "2x2-even": conv_case((1, 3, 5, 13), (7, 3, 2, 2)),
    "2x2-same": conv_case((1, 7, 5, 13), (3, 7, 2, 2), padding="same"),
    "3x3-same-dil2": conv_case((1, 3, 13, 13), (7, 3, 3, 3), padding="same", dilation=2),
    "2x2-same-dil3": conv_case((1, 3, 13, 5), (3, 3, 2, 2), padding="same", dilation=3),
    "1x3-same": conv_case((1, 7, 13, 5), (17, 7, 1, 3), padding="same"),
    "1x3-s12-pad01": conv_case((2, 3, 5, 13), (7, 3, 1, 3), stride=(1, 2), padding=(0, 1)),
    "asym-pairs": conv_case((1, 3, 13, 5), (7, 3, 3, 3), padding=((0, 2), (1, 0))),
    "asym-pairs-s2-dil12": conv_case((1, 7, 13, 13), (3, 7, 3, 3), stride=2, dilation=(1, 2),
                                     padding=((2, 1), (0, 3))),
    "groups3": conv_case((1, 21, 13, 5), (9, 7, 3, 3), groups=3, padding=1),
    "depthwise-3x3": conv_case((2, 17, 13, 13), (17, 1, 3, 3), groups=17, padding=1),
    "depthwise-3x3-s2": conv_case((1, 7, 13, 5), (7, 1, 3, 3), groups=7, stride=2, padding=1),
    "depthwise-5x5": conv_case((1, 3, 13, 13), (3, 1, 5, 5), groups=3, padding=2),
    "depthwise-mult2": conv_case((1, 7, 13, 13), (14, 1, 3, 3), groups=7, padding=1),
    "depthwise-mult3-s2-unbatched": conv_case((3, 5, 13), (9, 1, 3, 3), groups=3, stride=2, padding=1),
    "winograd-17ch-13x13": conv_case((1, 17, 13, 13), (17, 17, 3, 3), padding=1),
    # Winograd's transforms on a larger plane: error ~1e-5 of the output scale.
    "winograd-64ch-28x28": conv_case((1, 64, 28, 28), (64, 64, 3, 3), padding=1),
}

CONV1D_CASES = {
    "k3-p1": conv_case((2, 3, 13), (7, 3, 3), padding=1),
    "k1-unbatched": conv_case((17, 5), (3, 17, 1), bias=False),
    "length-1": conv_case((1, 1, 1), (3, 1, 1)),
    "depthwise-k5-s2": conv_case((1, 7, 13), (7, 1, 5), groups=7, stride=2, padding=2),
    "k2-same": conv_case((1, 3, 13), (7, 3, 2), padding="same"),
    "k3-same-dil2": conv_case((1, 3, 13), (7, 3, 3), padding="same", dilation=2),
    "asym-pair": conv_case((1, 3, 13), (7, 3, 3), padding=((2, 0),)),
    "groups3-s3-dil2": conv_case((1, 6, 13), (9, 2, 3), groups=3, stride=3, dilation=2),
    "valid": conv_case((2, 17, 5), (3, 17, 5), padding="valid"),
}


def _conv_arrays(case, seed=0, transposed=False):
    """x, w (scaled to keep outputs ~1), b and the keyword arguments of a case."""
    x_shape, w_shape, bias, kwargs = case
    x = rand(x_shape, seed)
    w = rand(w_shape, seed + 1, scale=1 / math.sqrt(math.prod(w_shape[1:])))
    M = w_shape[1] * kwargs.get("groups", 1) if transposed else w_shape[0]
    b = rand(M, seed + 2) if bias else None
    return x, w, b, kwargs


def _torch_padding(torch, x, padding):
    """torch takes symmetric padding only: asymmetric pairs pad the input first."""
    if isinstance(padding, (tuple, list)) and any(isinstance(p, (tuple, list)) for p in padding):
        flat = [v for pair in reversed(padding) for v in pair]  # torch.nn.functional.pad: last dim first
        return torch.nn.functional.pad(x, flat), 0
    return x, padding


@pytest.mark.parametrize("case", CONV2D_CASES.values(), ids=CONV2D_CASES.keys())
def test_conv2d_matches_numpy(case):
    x, w, b, kwargs = _conv_arrays(case)
    assert_close(F.conv2d(x, w, b, **kwargs), ref_conv(x, w, b, **kwargs))


@pytest.mark.parametrize("case", CONV1D_CASES.values(), ids=CONV1D_CASES.keys())
def test_conv1d_matches_numpy(case):
    x, w, b, kwargs = _conv_arrays(case)
    assert_close(F.conv1d(x, w, b, **kwargs), ref_conv(x, w, b, **kwargs))


def _random_conv2d_cases(n, seed=2024):
    """n seeded random (valid) conv2d configurations over the odd sizes, kernels, padding forms and
    group layouts above, for combinations the hand-picked cases miss."""
    rng = np.random.default_rng(seed)
    cases = {}
    while len(cases) < n:
        C, H, W = (int(rng.choice(v)) for v in ([1, 3, 7, 17], [1, 5, 13], [1, 5, 13]))
        kh, kw = [(1, 1), (3, 3), (5, 5), (2, 2), (1, 3)][rng.integers(5)]
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        layout = rng.integers(3)  # dense, depthwise, depthwise with channel multiplier 2
        groups, M = (1, int(rng.choice([1, 3, 7, 17]))) if layout == 0 else (C, C * int(layout))
        form = rng.integers(5)
        if form == 0:
            padding, stride = "same", (1, 1)
        else:
            stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
            padding = ["valid", int(rng.integers(0, 3)), (int(rng.integers(0, 3)), int(rng.integers(0, 3))),
                       tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(2))][form - 1]
        pairs = _pad_pairs(padding, (kh, kw), dilation)
        if any(n + b + e < d * (k - 1) + 1 for n, (b, e), k, d in zip((H, W), pairs, (kh, kw), dilation)):
            continue  # the window does not fit: an error case, tested below
        key = f"C{C}-{H}x{W}-M{M}-k{kh}x{kw}-g{groups}-s{stride[0]}{stride[1]}-d{dilation[0]}{dilation[1]}-p{padding}"
        cases[key.replace(" ", "")] = conv_case((int(rng.integers(1, 3)), C, H, W), (M, C // groups, kh, kw),
                                                bias=bool(rng.integers(2)), stride=stride, padding=padding,
                                                dilation=dilation, groups=groups)
    return cases


RANDOM_CONV2D_CASES = _random_conv2d_cases(40)


@pytest.mark.parametrize("case", RANDOM_CONV2D_CASES.values(), ids=RANDOM_CONV2D_CASES.keys())
def test_conv2d_random_configs_match_numpy(case):
    x, w, b, kwargs = _conv_arrays(case, seed=5)
    assert_close(F.conv2d(x, w, b, **kwargs), ref_conv(x, w, b, **kwargs))


def test_same_padding_puts_the_extra_pixel_at_the_end():
    # An even kernel's 'same' is ((0, 1), (0, 1)): check against explicit pairs, and that (1, 0) differs.
    x, w = rand((1, 3, 5, 7), 0), rand((2, 3, 2, 2), 1)
    same = F.conv2d(x, w, padding="same")
    np.testing.assert_array_equal(same, F.conv2d(x, w, padding=((0, 1), (0, 1))))
    assert not np.allclose(same, F.conv2d(x, w, padding=((1, 0), (1, 0))))


CONV_TORCH_CASES = [pytest.param("conv2d", case, id=f"2d-{name}") for name, case in CONV2D_CASES.items()] + \
                   [pytest.param("conv1d", case, id=f"1d-{name}") for name, case in CONV1D_CASES.items()]


@pytest.mark.parametrize("name, case", CONV_TORCH_CASES)
def test_conv_matches_torch(torch, name, case):
    x, w, b, kwargs = _conv_arrays(case)
    kw = dict(kwargs)
    tx, kw["padding"] = _torch_padding(torch, torch.from_numpy(x), kw.get("padding", 0))
    want = getattr(torch.nn.functional, name)(tx.double(), torch.from_numpy(w).double(),
                                              None if b is None else torch.from_numpy(b).double(), **kw)
    assert_close(getattr(F, name)(x, w, b, **kwargs), want.numpy())


# --------------------------------------------------------------------------
# transposed convolution
# --------------------------------------------------------------------------

CONV_T2D_CASES = {
    "3x3-s2-p1-op1": conv_case((1, 3, 5, 5), (3, 7, 3, 3), stride=2, padding=1, output_padding=1),
    "2x2-s2-nonsquare": conv_case((2, 7, 5, 13), (7, 3, 2, 2), stride=2),
    "groups3-s2": conv_case((1, 6, 5, 5), (6, 2, 3, 3), groups=3, stride=2, padding=1, output_padding=1),
    "dil2-op1": conv_case((1, 3, 5, 5), (3, 7, 3, 3), dilation=2, output_padding=1),
    "depthwise-4x4-s2": conv_case((1, 17, 5, 5), (17, 1, 4, 4), groups=17, stride=2, padding=1),
    "1x1-unbatched": conv_case((17, 5, 5), (17, 3, 1, 1), bias=False),
    "tuples": conv_case((1, 3, 5, 13), (3, 3, 3, 3), stride=(2, 3), padding=(1, 0), output_padding=(1, 2)),
    "plane-1x1-5x5": conv_case((1, 3, 1, 1), (3, 7, 5, 5)),
    "asym-pairs": conv_case((1, 3, 5, 5), (3, 7, 3, 3), stride=2, padding=((0, 1), (2, 0))),
}

CONV_T1D_CASES = {
    "k3-s2-p1-op1": conv_case((2, 3, 13), (3, 7, 3), stride=2, padding=1, output_padding=1),
    "depthwise-k4-s2": conv_case((1, 7, 5), (7, 1, 4), groups=7, stride=2, padding=1),
    "dil2-unbatched": conv_case((3, 5), (3, 2, 3), dilation=2),
}


@pytest.mark.parametrize("case", CONV_T2D_CASES.values(), ids=CONV_T2D_CASES.keys())
def test_conv_transpose2d_matches_numpy(case):
    x, w, b, kwargs = _conv_arrays(case, transposed=True)
    assert_close(F.conv_transpose2d(x, w, b, **kwargs), ref_conv_transpose(x, w, b, **kwargs))


@pytest.mark.parametrize("case", CONV_T1D_CASES.values(), ids=CONV_T1D_CASES.keys())
def test_conv_transpose1d_matches_numpy(case):
    x, w, b, kwargs = _conv_arrays(case, transposed=True)
    assert_close(F.conv_transpose1d(x, w, b, **kwargs), ref_conv_transpose(x, w, b, **kwargs))


def _torch_conv_transpose(torch, fn, x, w, b, kwargs):
    kw = dict(kwargs)
    pad = kw.pop("padding", 0)
    pairs = isinstance(pad, (tuple, list)) and any(isinstance(p, (tuple, list)) for p in pad)
    y = fn(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
           None if b is None else torch.from_numpy(b).double(), padding=0 if pairs else pad, **kw).numpy()
    if pairs:  # torch has no asymmetric padding here: it is a crop of the unpadded output
        y = y[(...,) + tuple(slice(pb, y.shape[y.ndim - len(pad) + i] - pe) for i, (pb, pe) in enumerate(pad))]
    return y


@pytest.mark.parametrize("case", CONV_T2D_CASES.values(), ids=CONV_T2D_CASES.keys())
def test_conv_transpose2d_matches_torch(torch, case):
    x, w, b, kwargs = _conv_arrays(case, transposed=True)
    assert_close(F.conv_transpose2d(x, w, b, **kwargs),
                 _torch_conv_transpose(torch, torch.nn.functional.conv_transpose2d, x, w, b, kwargs))


@pytest.mark.parametrize("case", CONV_T1D_CASES.values(), ids=CONV_T1D_CASES.keys())
def test_conv_transpose1d_matches_torch(torch, case):
    x, w, b, kwargs = _conv_arrays(case, transposed=True)
    assert_close(F.conv_transpose1d(x, w, b, **kwargs),
                 _torch_conv_transpose(torch, torch.nn.functional.conv_transpose1d, x, w, b, kwargs))


# --------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------

MAX_POOL2D_CASES = {
    "3x3-s2-p1": ((1, 3, 13, 13), dict(kernel_size=3, stride=2, padding=1)),
    "2x2-default-stride": ((2, 7, 5, 13), dict(kernel_size=2)),
    "3x3-s2-ceil": ((1, 3, 13, 6), dict(kernel_size=3, stride=2, ceil_mode=True)),
    "2x2-s2-p1-ceil": ((1, 3, 5, 5), dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),
    "3x3-s3-p1-ceil-drops-last": ((1, 3, 5, 5), dict(kernel_size=3, stride=3, padding=1, ceil_mode=True)),
    "3x3-dil2-p1": ((1, 3, 13, 13), dict(kernel_size=3, stride=2, padding=1, dilation=2)),
    "3x1-tuples": ((1, 17, 13, 5), dict(kernel_size=(3, 1), stride=(2, 1), padding=(1, 0))),
    "mixed-ceil-dil": ((1, 3, 13, 13), dict(kernel_size=(2, 3), stride=(3, 2), padding=1, dilation=(2, 1),
                                            ceil_mode=True)),
    "5x5-unbatched": ((3, 5, 5), dict(kernel_size=5)),
    "plane-1x1": ((1, 1, 1, 1), dict(kernel_size=1)),
}

AVG_POOL2D_CASES = {
    "3x3-s2-p1": ((1, 3, 13, 13), dict(kernel_size=3, stride=2, padding=1)),
    "2x2-s1": ((2, 7, 5, 13), dict(kernel_size=2, stride=1)),
    # ceil_mode windows that run past the right padding: the divisor stops at input + padding.
    "3x3-s2-p1-ceil": ((1, 3, 6, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    "2x2-s2-p1-ceil": ((1, 3, 5, 5), dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),
    "5x1-s3-p2-ceil": ((1, 17, 13, 5), dict(kernel_size=(5, 1), stride=(3, 1), padding=(2, 0), ceil_mode=True)),
    "3x3-s2-ceil-nopad": ((1, 3, 13, 6), dict(kernel_size=3, stride=2, ceil_mode=True)),
    "unbatched": ((7, 5, 13), dict(kernel_size=2)),
    "plane-1x1": ((1, 1, 1, 1), dict(kernel_size=1)),
}

MAX_POOL1D_CASES = {
    "k3-s2-p1": ((2, 3, 13), dict(kernel_size=3, stride=2, padding=1)),
    "k2-ceil": ((1, 7, 5), dict(kernel_size=2, ceil_mode=True)),
    "k3-dil2-p1": ((1, 3, 13), dict(kernel_size=3, stride=1, padding=1, dilation=2)),
    "unbatched": ((3, 13), dict(kernel_size=5, stride=3, padding=2, ceil_mode=True)),
}

AVG_POOL1D_CASES = {
    "k3-s2-p1": ((2, 3, 13), dict(kernel_size=3, stride=2, padding=1)),
    "k3-s2-p1-ceil": ((1, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    "unbatched": ((3, 13), dict(kernel_size=5, stride=3, padding=2, ceil_mode=True)),
}


def _batched(x, nd):
    return (x[None], True) if x.ndim == nd + 1 else (x, False)


MAX_POOL_CASES = [pytest.param(F.max_pool2d, 2, *case, id=f"2d-{name}") for name, case in MAX_POOL2D_CASES.items()] + \
                 [pytest.param(F.max_pool1d, 1, *case, id=f"1d-{name}") for name, case in MAX_POOL1D_CASES.items()]


@pytest.mark.parametrize("fn, nd, shape, kwargs", MAX_POOL_CASES)
def test_max_pool_matches_numpy(fn, nd, shape, kwargs):
    x = rand(shape, 3 + nd)
    xb, unbatched = _batched(x, nd)
    want, want_idx = ref_max_pool(xb, **kwargs)
    got, idx = fn(x, **kwargs, return_indices=True)
    if unbatched:
        want, want_idx = want[0], want_idx[0]
    assert_close(got, want)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(fn(x, **kwargs), got)


AVG_POOL_CASES = [pytest.param(F.avg_pool2d, 2, *case, id=f"2d-{name}") for name, case in AVG_POOL2D_CASES.items()] + \
                 [pytest.param(F.avg_pool1d, 1, *case, id=f"1d-{name}") for name, case in AVG_POOL1D_CASES.items()]


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("fn, nd, shape, kwargs", AVG_POOL_CASES)
def test_avg_pool_matches_numpy(fn, nd, shape, kwargs, count_include_pad):
    x = rand(shape, 4 + nd)
    xb, unbatched = _batched(x, nd)
    want = ref_avg_pool(xb, **kwargs, count_include_pad=count_include_pad)
    assert_close(fn(x, **kwargs, count_include_pad=count_include_pad), want[0] if unbatched else want)


def test_avg_pool_ceil_divisor_by_hand():
    # 1-D, L=6, k=3, s=2, p=1, ceil: 4 windows over [pad, 0..5, pad]; the last starts at 5 and covers
    # x[5] and the right pad (its third pixel lies past the padding, so it is not counted).
    x = np.arange(1, 7, dtype=np.float32)[None, None]
    got = F.avg_pool1d(x, 3, 2, 1, ceil_mode=True, count_include_pad=True)
    np.testing.assert_allclose(got[0, 0], [(0 + 1 + 2) / 3, (2 + 3 + 4) / 3, (4 + 5 + 6) / 3, (6 + 0) / 2])
    got = F.avg_pool1d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_allclose(got[0, 0], [(1 + 2) / 2, (2 + 3 + 4) / 3, (4 + 5 + 6) / 3, 6 / 1])


ADAPTIVE_CASES = {
    "uneven-13x5-to-3x2": ((2, 3, 13, 5), (3, 2)),
    "uneven-13x13-to-5": ((1, 7, 13, 13), 5),
    "even-6x6-to-3": ((1, 3, 6, 6), 3),
    "global-5x5-to-1": ((1, 17, 5, 5), 1),
    "none-keeps-width": ((1, 3, 13, 5), (4, None)),
    "upsampling-3x5-to-5x7": ((1, 3, 3, 5), (5, 7)),
    "identity-unbatched": ((7, 5, 13), (5, 13)),
}


@pytest.mark.parametrize("case", ADAPTIVE_CASES.values(), ids=ADAPTIVE_CASES.keys())
def test_adaptive_avg_pool2d_matches_numpy(case):
    shape, size = case
    x = rand(shape, 7)
    oh, ow = (size, size) if isinstance(size, int) else size
    oh, ow = oh or shape[-2], ow or shape[-1]
    assert_close(F.adaptive_avg_pool2d(x, size), ref_adaptive_avg_pool2d(x, oh, ow))


@pytest.mark.parametrize("shape", [(2, 7, 13, 5), (1, 1, 1, 1), (1, 3, 28, 28)])
def test_global_pools_match_numpy(shape):
    x = rand(shape, 8)
    assert_close(F.global_avg_pool2d(x), x.astype(np.float64).mean(axis=(2, 3), keepdims=True))
    assert_close(F.global_max_pool2d(x), x.max(axis=(2, 3), keepdims=True))


@pytest.mark.parametrize("fn", [F.global_avg_pool2d, F.global_max_pool2d], ids=["avg", "max"])
def test_global_pools_of_unbatched_input(fn):
    # Pooled per channel, (C, 1, 1), like adaptive_avg_pool2d(x, 1): never (C, H, 1).
    x = rand((3, 5, 7), 8)
    assert_close(fn(x), fn(x[None])[0])


@pytest.mark.parametrize("fn, nd, shape, kwargs", MAX_POOL_CASES)
def test_max_pool_matches_torch_with_indices(torch, fn, nd, shape, kwargs):
    x = rand(shape, 3 + nd)
    want, want_idx = getattr(torch.nn.functional, fn.__name__)(torch.from_numpy(x), **kwargs, return_indices=True)
    got, idx = fn(x, **kwargs, return_indices=True)
    assert_close(got, want.numpy())
    np.testing.assert_array_equal(idx, want_idx.numpy())


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("fn, nd, shape, kwargs", AVG_POOL_CASES)
def test_avg_pool_matches_torch(torch, fn, nd, shape, kwargs, count_include_pad):
    x = rand(shape, 4 + nd)
    want = getattr(torch.nn.functional, fn.__name__)(torch.from_numpy(x), **kwargs, count_include_pad=count_include_pad)
    assert_close(fn(x, **kwargs, count_include_pad=count_include_pad), want.numpy())


@pytest.mark.parametrize("case", ADAPTIVE_CASES.values(), ids=ADAPTIVE_CASES.keys())
def test_adaptive_avg_pool2d_matches_torch(torch, case):
    shape, size = case
    x = rand(shape, 7)
    want = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), size)
    assert_close(F.adaptive_avg_pool2d(x, size), want.numpy())


# --------------------------------------------------------------------------
# normalization
# --------------------------------------------------------------------------

def _norm_params(C, seed, affine=True):
    rng = np.random.default_rng(seed)
    if not affine:
        return None, None
    return (rng.uniform(0.5, 1.5, C).astype(np.float32), rng.standard_normal(C).astype(np.float32))


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(2, 7, 13, 5), (3, 17), (2, 3, 13), (1, 1, 1, 1)])
def test_batch_norm_matches_numpy(shape, affine):
    x = rand(shape, 9, scale=3)
    C = shape[1]
    rng = np.random.default_rng(10)
    mean, var = rng.standard_normal(C).astype(np.float32), rng.uniform(0.1, 4, C).astype(np.float32)
    w, b = _norm_params(C, 11, affine)
    assert_close(F.batch_norm(x, mean, var, w, b, eps=1e-3), ref_batch_norm(x, mean, var, w, b, eps=1e-3))


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(2, 7, 13, 5), (1, 3, 13), (2, 17, 5, 5)])
def test_instance_norm_matches_numpy(shape, affine):
    x = rand(shape, 12, scale=3) + 2
    w, b = _norm_params(shape[1], 13, affine)
    assert_close(F.instance_norm(x, weight=w, bias=b), ref_instance_norm(x, w, b))


def test_instance_norm_with_running_stats_is_batch_norm():
    x, mean, var = rand((2, 3, 5, 5), 14), rand(3, 15), np.abs(rand(3, 16)) + 0.5
    assert_close(F.instance_norm(x, mean, var, use_input_stats=False), ref_batch_norm(x, mean, var))


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape,normalized", [((2, 7, 13, 5), (5,)), ((2, 7, 13, 5), (13, 5)),
                                              ((2, 7, 13, 5), (7, 13, 5)), ((3, 17), 17), ((1, 1), (1,))])
def test_layer_norm_matches_numpy(shape, normalized, affine):
    x = rand(shape, 17, scale=3) - 1
    norm_shape = (normalized,) if isinstance(normalized, int) else normalized
    rng = np.random.default_rng(18)
    w = rng.uniform(0.5, 1.5, norm_shape).astype(np.float32) if affine else None
    b = rng.standard_normal(norm_shape).astype(np.float32) if affine else None
    assert_close(F.layer_norm(x, normalized, w, b), ref_layer_norm(x, norm_shape, w, b))


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape,groups", [((2, 6, 13, 5), 3), ((1, 17, 5, 5), 17), ((2, 7, 5), 1),
                                          ((1, 21, 13, 13), 7)])
def test_group_norm_matches_numpy(shape, groups, affine):
    x = rand(shape, 19, scale=3) + 1
    w, b = _norm_params(shape[1], 20, affine)
    assert_close(F.group_norm(x, groups, w, b), ref_group_norm(x, groups, w, b))


def test_norms_match_torch(torch):
    tf = torch.nn.functional
    x = rand((2, 6, 13, 5), 21, scale=3) + 1
    w, b = _norm_params(6, 22)
    mean, var = rand(6, 23), np.abs(rand(6, 24)) + 0.5
    t = torch.from_numpy
    assert_close(F.batch_norm(x, mean, var, w, b), tf.batch_norm(t(x), t(mean), t(var), t(w), t(b)).numpy())
    assert_close(F.instance_norm(x, weight=w, bias=b), tf.instance_norm(t(x), weight=t(w), bias=t(b)).numpy())
    assert_close(F.group_norm(x, 3, w, b), tf.group_norm(t(x), 3, t(w), t(b)).numpy())
    lw, lb = rand((13, 5), 25), rand((13, 5), 26)
    assert_close(F.layer_norm(x, (13, 5), lw, lb), tf.layer_norm(t(x), (13, 5), t(lw), t(lb)).numpy())


# --------------------------------------------------------------------------
# activations and softmax
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(1,), (3, 7), (2, 17, 5, 5), (100001,)])
def test_activations_match_numpy(name, shape):
    # scale 4 reaches the saturated ends (relu6's 6, hardswish's +-3, sigmoid's tails); the
    # 100001-long case crosses the kernels' vector and thread boundaries.
    x = rand(shape, len(shape), scale=4)
    fn, ref = ACTIVATIONS[name]
    got = fn(x)
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "silu", "elu", "selu", "gelu", "gelu_tanh"])
def test_activations_at_extreme_inputs(name):
    # No overflow to nan/inf in exp: +-100 and +-1e4 saturate.
    x = np.array([-1e4, -100, -30, -1e-3, 0, 1e-3, 30, 100, 1e4], np.float32)
    fn, ref = ACTIVATIONS[name]
    with np.errstate(over="ignore"):
        want = ref(x.astype(np.float64))
    got = fn(x)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


TORCH_ACTIVATIONS = {
    "relu": lambda tf, x: tf.relu(x), "relu6": lambda tf, x: tf.relu6(x),
    "leaky_relu": lambda tf, x: tf.leaky_relu(x), "leaky_relu_0.2": lambda tf, x: tf.leaky_relu(x, 0.2),
    "elu": lambda tf, x: tf.elu(x), "elu_0.5": lambda tf, x: tf.elu(x, 0.5), "selu": lambda tf, x: tf.selu(x),
    "gelu": lambda tf, x: tf.gelu(x), "gelu_tanh": lambda tf, x: tf.gelu(x, approximate="tanh"),
    "silu": lambda tf, x: tf.silu(x), "hardswish": lambda tf, x: tf.hardswish(x),
    "sigmoid": lambda tf, x: tf.sigmoid(x), "tanh": lambda tf, x: tf.tanh(x),
    "softplus": lambda tf, x: tf.softplus(x), "hardsigmoid": lambda tf, x: tf.hardsigmoid(x),
    "hardtanh": lambda tf, x: tf.hardtanh(x), "hardtanh_-2_3": lambda tf, x: tf.hardtanh(x, -2.0, 3.0),
    "softsign": lambda tf, x: tf.softsign(x),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_match_torch(torch, name):
    x = rand((2, 7, 13, 5), 27, scale=4)
    want = TORCH_ACTIVATIONS[name](torch.nn.functional, torch.from_numpy(x).double()).numpy()
    assert_close(ACTIVATIONS[name][0](x), want, rtol=1e-5)


SOFTMAX_CASES = [((7,), 0), ((3, 17), 1), ((3, 17), 0), ((2, 7, 13, 5), 1), ((2, 7, 13, 5), -1),
                 ((2, 7, 13, 5), 0), ((1, 1), -2)]


@pytest.mark.parametrize("scale", [1, 50])
@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES)
def test_softmax_and_log_softmax_match_numpy(shape, dim, scale):
    # scale 50: values that overflow exp unless the max is subtracted first; log_softmax of
    # very negative values stays accurate (no log(0)).
    x = rand(shape, 28, scale=scale)
    assert_close(F.softmax(x, dim), ref_softmax(x, dim))
    got = F.log_softmax(x, dim)
    assert np.all(np.isfinite(got))
    assert_close(got, ref_log_softmax(x, dim))


@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES)
def test_softmax_and_log_softmax_match_torch(torch, shape, dim):
    x = rand(shape, 29, scale=10)
    t = torch.from_numpy(x).double()
    assert_close(F.softmax(x, dim), torch.softmax(t, dim).numpy())
    assert_close(F.log_softmax(x, dim), torch.log_softmax(t, dim).numpy())


# --------------------------------------------------------------------------
# inplace
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", INPLACE_ACTIVATIONS)
def test_inplace_writes_into_the_input_and_returns_it(name):
    x = rand((2, 7, 13, 5), 30, scale=4)
    fn = ACTIVATIONS[name][0]
    want = fn(x)
    before = x.copy()
    got = fn(x, inplace=True)
    assert got is x
    assert not np.array_equal(x, before)
    np.testing.assert_array_equal(x, want)


def test_relu_inplace_on_a_view_writes_into_its_base():
    base = rand((4, 5), 31)
    view = base[1:3]  # C-contiguous float32 rows
    assert F.relu(view, inplace=True) is view
    assert np.all(base[1:3] >= 0) and np.any(base[0] < 0)


@pytest.mark.parametrize("x", [np.ones(4, np.float64) * -1, np.ones((4, 4), np.float32)[:, ::2],
                               np.broadcast_to(np.float32(-1), (3,)), [-1.0, 2.0]],
                         ids=["float64", "non-contiguous", "read-only", "list"])
def test_inplace_refuses_what_it_cannot_write(x):
    with pytest.raises(ValueError, match="inplace"):
        F.relu(x, inplace=True)


# --------------------------------------------------------------------------
# every kernel path (ISA)
# --------------------------------------------------------------------------

def _conv_core(case_name):
    x, w, b, kwargs = _conv_arrays(CONV2D_CASES[case_name])
    return lambda: F.conv2d(x, w, b, **kwargs), lambda: ref_conv(x, w, b, **kwargs)


def _pool_core():
    x = rand((2, 17, 13, 13), 32)
    return lambda: F.max_pool2d(x, 3, 2, 1), lambda: ref_max_pool(x, 3, 2, 1)[0]


def _avg_core():
    x = rand((1, 7, 6, 6), 33)
    return (lambda: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
            lambda: ref_avg_pool(x, 3, 2, 1, ceil_mode=True))


def _norm_core():
    x, w, b = rand((2, 6, 13, 5), 34), *_norm_params(6, 35)
    return lambda: F.group_norm(x, 3, w, b), lambda: ref_group_norm(x, 3, w, b)


ISA_CORE = {
    "conv-winograd-64ch-28x28": lambda: _conv_core("winograd-64ch-28x28"),
    "conv-1x1": lambda: _conv_core("1x1"),
    "conv-3x3-strided": lambda: _conv_core("3x3-s2-nonsquare"),
    "conv-depthwise": lambda: _conv_core("depthwise-3x3"),
    "conv-depthwise-s2": lambda: _conv_core("depthwise-3x3-s2"),
    "max-pool": _pool_core,
    "avg-pool-ceil": _avg_core,
    "group-norm": _norm_core,
}


@pytest.mark.parametrize("core", ISA_CORE.values(), ids=ISA_CORE.keys())
def test_core_ops_on_every_isa(isa, core):
    # conftest's `isa` fixture sets each available ISA and restores the original one afterwards.
    assert pycnn.active_isa() == isa and _functional.active_isa() == isa
    F.clear_weight_cache()  # run this ISA's kernels, not weights prepared under another
    run, ref = core()
    want = ref()
    for _ in range(3):  # one-shot, prepared and cached runs of Winograd-size convolutions
        assert_close(run(), want)


def test_set_isa_applies_to_cached_weights():
    isas = pycnn.available_isas()
    if len(isas) < 2:
        pytest.skip("one ISA only")
    before = pycnn.active_isa()
    x, w = rand((1, 16, 28, 28), 36), rand((16, 16, 3, 3), 37)
    try:
        pycnn.set_isa(isas[-1])
        F.clear_weight_cache()
        for _ in range(3):
            F.conv2d(x, w, padding=1)  # now cached, prepared with isas[-1]
        pycnn.set_isa(isas[0])
        after_switch = F.conv2d(x, w, padding=1)
        F.clear_weight_cache()
        fresh = F.conv2d(x, w, padding=1)
        np.testing.assert_array_equal(after_switch, fresh)
    finally:
        pycnn.set_isa(before)
        F.clear_weight_cache()


# --------------------------------------------------------------------------
# dtype rule: computed in float32
# --------------------------------------------------------------------------

DTYPE_CALLS = {
    "conv2d": lambda x, w: F.conv2d(x, w, padding=1),
    "conv2d-winograd": lambda x, w: F.conv2d(x, w, padding=1),
    "conv_transpose2d": lambda x, w: F.conv_transpose2d(x, w.transpose(1, 0, 2, 3), stride=2),
    "max_pool2d": lambda x, w: F.max_pool2d(x, 3, 2, 1),
    "avg_pool2d": lambda x, w: F.avg_pool2d(x, 3, 2, 1),
    "adaptive_avg_pool2d": lambda x, w: F.adaptive_avg_pool2d(x, (3, 2)),
    "batch_norm": lambda x, w: F.batch_norm(x, w[:, 0, 0, 0], np.abs(w[:, 0, 1, 1])),  # (abs is exact in any dtype)
    "layer_norm": lambda x, w: F.layer_norm(x, x.shape[-1:]),
    "relu": lambda x, w: F.relu(x),
    "gelu": lambda x, w: F.gelu(x),
    "softmax": lambda x, w: F.softmax(x, 1),
}


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64, np.float16, np.bool_])
@pytest.mark.parametrize("name", DTYPE_CALLS)
def test_other_dtypes_compute_as_float32(name, dtype):
    size = 28 if name == "conv2d-winograd" else 7
    rng = np.random.default_rng(38)
    x = (rng.standard_normal((1, 4, size, size)) * 3).astype(dtype)
    w = (rng.standard_normal((4, 4, 3, 3)) * 3).astype(dtype)
    got = DTYPE_CALLS[name](x, w)
    want = DTYPE_CALLS[name](x.astype(np.float32), w.astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_list_input_is_accepted():
    np.testing.assert_array_equal(F.relu([[-1, 2], [3, -4]]), np.array([[0, 2], [3, 0]], np.float32))


@pytest.mark.parametrize("layout", ["transposed-view", "fortran", "strided-view"])
def test_non_contiguous_inputs_give_the_same_result(layout):
    base = rand((2, 3, 13, 10), 39)
    x = {"transposed-view": base.transpose(0, 1, 3, 2), "fortran": np.asfortranarray(base),
         "strided-view": base[:, :, ::2, ::2]}[layout]
    c = np.ascontiguousarray(x)
    w = rand((4, 3, 3, 3), 40)
    for call in (lambda v: F.conv2d(v, w, padding=1), lambda v: F.max_pool2d(v, 2), F.relu,
                 lambda v: F.softmax(v, 2), lambda v: F.group_norm(v, 3)):
        np.testing.assert_array_equal(call(x), call(c))


@pytest.mark.parametrize("call", [lambda x: F.conv2d(x, np.ones((1, 1, 1, 1))), lambda x: F.relu(x),
                                  lambda x: F.softmax(x, 0), lambda x: F.max_pool2d(x, 1)],
                         ids=["conv2d", "relu", "softmax", "max_pool2d"])
@pytest.mark.parametrize("dtype", [np.complex64, object, np.str_])
def test_non_real_dtypes_raise_type_error(call, dtype):
    x = np.ones((1, 1, 2, 2)).astype(dtype)
    with pytest.raises(TypeError, match="dtype"):
        call(x)


@pytest.mark.parametrize("call", [F.relu, F.sigmoid, lambda x: F.softmax(x, 0), lambda x: F.log_softmax(x, -1)],
                         ids=["relu", "sigmoid", "softmax", "log_softmax"])
def test_zero_dim_input_keeps_its_shape(call):
    assert call(np.array(-2.0, np.float32)).shape == ()


# --------------------------------------------------------------------------
# output shapes (the notes' formulas)
# --------------------------------------------------------------------------

CONV_SHAPE_CASES = [
    ((13, 5), (3, 3), 1, 0, 1), ((13, 5), (3, 3), 2, 1, 1), ((13, 13), (5, 5), (2, 3), (2, 1), 1),
    ((13, 5), (3, 3), 1, "same", 2), ((5, 13), (2, 2), 1, "same", 1), ((13, 5), (2, 2), 1, "same", 3),
    ((13, 5), (5, 5), 1, "valid", 1), ((13, 13), (3, 3), 2, ((0, 2), (1, 0)), (1, 2)),
    ((1, 1), (1, 1), 3, 0, 1), ((28, 28), (3, 3), 3, 1, 2),
]


@pytest.mark.parametrize("size,kernel,stride,padding,dilation", CONV_SHAPE_CASES)
def test_conv_output_shape_matches_conv2d(size, kernel, stride, padding, dilation):
    y = F.conv2d(np.zeros((1, 1) + size, np.float32), np.ones((1, 1) + kernel, np.float32), stride=stride,
                 padding=padding, dilation=dilation)
    assert F.conv_output_shape(size, kernel, stride, padding, dilation) == y.shape[2:]


@pytest.mark.parametrize("size,kernel,stride,padding", [(13, 3, 2, 1), (5, 2, 1, "same"), (13, 5, 3, "valid"),
                                                        (7, 1, 1, 0)])
def test_conv_output_shape_of_an_int_is_an_int(size, kernel, stride, padding):
    got = F.conv_output_shape(size, kernel, stride, padding)
    y = F.conv1d(np.zeros((1, 1, size), np.float32), np.ones((1, 1, kernel), np.float32), stride=stride,
                 padding=padding)
    assert type(got) is int and got == y.shape[2]


POOL_SHAPE_CASES = [
    ((13, 13), 3, 2, 1, 1, False), ((13, 6), 3, 2, 0, 1, True), ((5, 5), 2, 2, 1, 1, True),
    ((5, 5), 3, 3, 1, 1, True),  # ceil would add a window starting in the right padding: dropped
    ((13, 13), 3, 2, 1, 2, False), ((13, 13), 3, 2, 1, 2, True), ((13, 5), (3, 1), (2, 1), (1, 0), 1, True),
    ((112, 112), 3, 2, 1, 1, False), ((7, 7), 2, None, 0, 1, True),
]


@pytest.mark.parametrize("size,kernel,stride,padding,dilation,ceil_mode", POOL_SHAPE_CASES)
def test_pool_output_shape_matches_max_pool2d(size, kernel, stride, padding, dilation, ceil_mode):
    y = F.max_pool2d(np.zeros((1, 1) + size, np.float32), kernel, stride, padding, dilation, ceil_mode)
    assert F.pool_output_shape(size, kernel, stride, padding, dilation, ceil_mode) == y.shape[2:]


def test_pool_output_shape_of_an_int_is_an_int():
    assert F.pool_output_shape(5, 3, 3, 1, ceil_mode=True) == 2  # the third window would start in the padding
    assert F.pool_output_shape(6, 3, 2, 1, ceil_mode=True) == 4
    assert type(F.pool_output_shape(13, 2)) is int and F.pool_output_shape(13, 2) == 6


# --------------------------------------------------------------------------
# conv2d_matrix: the convolution as a matrix
# --------------------------------------------------------------------------

MATRIX_CASES = [
    ((3, 5, 5), (7, 3, 3, 3), 1, 1, 1),
    ((2, 13, 5), (3, 2, 3, 3), 2, ((0, 2), (1, 0)), 1),
    ((1, 7, 7), (2, 1, 2, 2), 1, 1, 2),
    ((3, 6, 5), (2, 3, 1, 3), (2, 1), (0, 1), (1, 2)),
    ((1, 3, 1, 1), (4, 3, 3, 3), 1, 1, 1),  # (1, C, H, W) input_shape
]


def _check_matrix(C, x_shape, w, stride, padding, dilation):
    x = rand(x_shape, 40)
    want = F.conv2d(x.reshape((1,) + x.shape[-3:]), w, stride=stride, padding=padding, dilation=dilation)
    assert C.shape == (want.size, x.size)
    assert_close(np.asarray(C @ x.ravel(), np.float32), want.ravel())


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation", MATRIX_CASES)
def test_conv2d_matrix_sparse_with_scipy(x_shape, w_shape, stride, padding, dilation):
    sp = pytest.importorskip("scipy.sparse")
    w = rand(w_shape, 41)
    C = F.conv2d_matrix(w, x_shape, stride, padding, dilation)
    assert sp.issparse(C)
    _check_matrix(C, x_shape, w, stride, padding, dilation)


@pytest.fixture
def no_scipy(monkeypatch):
    """`import scipy.sparse` fails, as on a machine without scipy."""
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation", MATRIX_CASES)
def test_conv2d_matrix_dense_without_scipy(no_scipy, x_shape, w_shape, stride, padding, dilation):
    w = rand(w_shape, 41)
    C = F.conv2d_matrix(w, x_shape, stride, padding, dilation)
    assert type(C) is np.ndarray and C.dtype == np.float32
    _check_matrix(C, x_shape, w, stride, padding, dilation)


def test_conv2d_matrix_max_bytes_guard_with_scipy():
    pytest.importorskip("scipy.sparse")
    with pytest.raises(ValueError, match="MiB"):
        F.conv2d_matrix(np.ones((8, 3, 3, 3)), (3, 32, 32), padding=1, max_bytes=1 << 10)


def test_conv2d_matrix_max_bytes_guard_without_scipy(no_scipy):
    with pytest.raises(ValueError, match="MiB"):
        F.conv2d_matrix(np.ones((8, 3, 3, 3)), (3, 32, 32), padding=1, max_bytes=1 << 20)  # dense: 96 MiB
    assert F.conv2d_matrix(np.ones((1, 1, 3, 3)), (1, 5, 5), max_bytes=9 * 25 * 4).shape == (9, 25)


# --------------------------------------------------------------------------
# receptive_field
# --------------------------------------------------------------------------

def _small_model():
    """Conv 3x3 s1 p1 -> Conv 3x3 s2 p1 -> MaxPool 2x2 s2 -> GlobalAveragePool, on 1x1x32x32."""
    ones = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w"], ["c2"], name="conv2", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c2"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p"], ["y"], name="gap"),
    ]
    graph = helper.make_graph(nodes, "rf", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, 1])], [ones])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# By hand: size_out = size_in + (k - 1) * jump_in, jump_out = jump_in * stride, from (1, 1):
#   conv1: 1 + 2*1 = 3, jump 1;  conv2: 3 + 2*1 = 5, jump 2;  pool: 5 + 1*2 = 7, jump 4.
SMALL_MODEL_FIELDS = [("conv1", "Conv", 3, 1), ("conv2", "Conv", 5, 2), ("pool", "MaxPool", 7, 4)]


def _check_small_model_fields(fields):
    assert [(f.name, f.op_type, f.size, f.jump) for f in fields[:3]] == \
        [(n, op, (s, s), (j, j)) for n, op, s, j in SMALL_MODEL_FIELDS]
    assert fields[0].kernel == (3, 3) and fields[1].stride == (2, 2) and fields[2].dilation == (1, 1)
    assert len(fields) == 4 and fields[3].op_type == "GlobalAveragePool" and fields[3].size is None


def test_receptive_field_by_hand():
    _check_small_model_fields(F.receptive_field(_small_model()))


def test_receptive_field_matches_an_impulse_experiment():
    # Measure instead of computing: with all-ones weights and a non-negative input, an output pixel is
    # nonzero exactly when a lit input row lies in its receptive field. Light one row at a time.
    w = np.ones((1, 1, 3, 3), np.float32)
    layers = [lambda v: F.conv2d(v, w, padding=1), lambda v: F.conv2d(v, w, stride=2, padding=1),
              lambda v: F.max_pool2d(v, 2, 2)]
    for depth, (_, _, size, jump) in enumerate(SMALL_MODEL_FIELDS, 1):
        seen = {}  # output row -> input rows that reach it
        for r in range(32):
            v = np.zeros((1, 1, 32, 32), np.float32)
            v[..., r, :] = 1
            for layer in layers[:depth]:
                v = layer(v)
            # Reached pixels hold whole numbers >= 1; Winograd leaves ~1e-7 rounding elsewhere.
            for o in np.nonzero(v[0, 0, :, 16 >> (depth - 1)] > 0.5)[0]:
                seen.setdefault(int(o), []).append(r)
        inner = sorted(o for o, rows in seen.items() if 0 not in rows and 31 not in rows)  # away from the borders
        assert all(len(seen[o]) == size for o in inner)
        assert all(seen[b][0] - seen[a][0] == jump for a, b in zip(inner, inner[1:]))


def test_receptive_field_of_session_bytes_and_path(tmp_path):
    model = _small_model()
    data = model.SerializeToString()
    path = tmp_path / "rf.onnx"
    path.write_bytes(data)
    _check_small_model_fields(F.receptive_field(data))
    _check_small_model_fields(F.receptive_field(str(path)))
    _check_small_model_fields(F.receptive_field(pycnn.InferenceSession(data)))


def test_receptive_field_of_resnet18():
    from pycnn import zoo
    fields = F.receptive_field(zoo.build("resnet18", batch=1))
    last_conv = [f for f in fields if f.op_type == "Conv"][-1]
    assert last_conv.size == (435, 435) and last_conv.jump == (32, 32)
    assert fields[0].size == (7, 7) and fields[0].jump == (2, 2)  # the stem: 7x7 stride 2
    assert fields[-1].op_type == "GlobalAveragePool" and fields[-1].size is None


# --------------------------------------------------------------------------
# errors: a ValueError naming the function and the argument
# --------------------------------------------------------------------------

X4, W4 = np.ones((1, 3, 5, 5), np.float32), np.ones((4, 3, 3, 3), np.float32)
X3, W3 = np.ones((1, 3, 5), np.float32), np.ones((4, 3, 3), np.float32)
WT = np.ones((3, 2, 3, 3), np.float32)

ERRORS = {
    "conv2d-rank": (lambda: F.conv2d(X4[0, 0], W4), "conv2d: input must be"),
    "conv2d-weight-rank": (lambda: F.conv2d(X4, W3), "weight must have 4 dims"),
    "conv1d-rank": (lambda: F.conv1d(X4, W3), "conv1d: input must be"),
    "conv2d-channels": (lambda: F.conv2d(X4, np.ones((4, 2, 3, 3))), "input has 3 channels"),
    "conv2d-groups-divide": (lambda: F.conv2d(X4, np.ones((4, 1, 3, 3)), groups=2), "groups=2 must divide"),
    "conv2d-groups-0": (lambda: F.conv2d(X4, W4, groups=0), "groups must be"),
    "conv2d-stride-0": (lambda: F.conv2d(X4, W4, stride=0), "stride must be >= 1"),
    "conv2d-stride-neg": (lambda: F.conv2d(X4, W4, stride=(1, -1)), "stride must be >= 1"),
    "conv2d-stride-float": (lambda: F.conv2d(X4, W4, stride=1.5), "stride must be an int"),
    "conv2d-dilation-0": (lambda: F.conv2d(X4, W4, dilation=0), "dilation must be >= 1"),
    "conv2d-kernel-too-big": (lambda: F.conv2d(X4, np.ones((4, 3, 7, 7))), "kernel .* larger than the padded"),
    "conv2d-dilated-too-big": (lambda: F.conv2d(X4, W4, dilation=3), "kernel .* larger than the padded"),
    "conv2d-same-stride2": (lambda: F.conv2d(X4, W4, stride=2, padding="same"), "padding='same' needs stride 1"),
    "conv2d-bad-padding-str": (lambda: F.conv2d(X4, W4, padding="full"), "padding must be"),
    "hardtanh-min-over-max": (lambda: F.hardtanh(X4, 2.0, 1.0), "min_val must be <= max_val"),
    "conv2d-negative-padding": (lambda: F.conv2d(X4, W4, padding=-1), "padding must be"),
    "conv2d-negative-pair": (lambda: F.conv2d(X4, W4, padding=((0, -1), (0, 0))), "padding must be"),
    "conv2d-padding-3-ints": (lambda: F.conv2d(X4, W4, padding=(1, 1, 1)), "padding must be"),
    "conv2d-bias-shape": (lambda: F.conv2d(X4, W4, np.ones(3)), "bias must have shape"),
    "conv1d-bias-shape": (lambda: F.conv1d(X3, W3, np.ones((4, 1))), "bias must have shape"),
    "conv_transpose2d-channels": (lambda: F.conv_transpose2d(X4, np.ones((2, 2, 3, 3))), "input has 3 channels"),
    "conv_transpose2d-groups": (lambda: F.conv_transpose2d(X4, WT, groups=2), "groups=2 must divide"),
    "conv_transpose2d-output_padding": (lambda: F.conv_transpose2d(X4, WT, stride=2, output_padding=2),
                                        "output_padding must be smaller than stride or dilation"),
    "conv_transpose2d-output_padding-dil": (lambda: F.conv_transpose2d(X4, WT, dilation=2, output_padding=2),
                                            "output_padding must be smaller"),
    "conv_transpose2d-same": (lambda: F.conv_transpose2d(X4, WT, padding="same"), "padding must be an int"),
    "conv_transpose2d-bias": (lambda: F.conv_transpose2d(X4, WT, np.ones(3)), "bias must have shape"),
    "conv_transpose2d-too-much-padding": (lambda: F.conv_transpose2d(X4, WT, padding=5), "reduce the padding"),
    "conv_transpose1d-stride-0": (lambda: F.conv_transpose1d(X3, np.ones((3, 2, 3)), stride=0),
                                  "stride must be >= 1"),
    "max_pool2d-padding": (lambda: F.max_pool2d(X4, 2, padding=2), "padding must be at most half"),
    "max_pool2d-kernel-0": (lambda: F.max_pool2d(X4, 0), "kernel_size must be >= 1"),
    "max_pool2d-stride-0": (lambda: F.max_pool2d(X4, 2, stride=0), "stride must be >= 1"),
    "max_pool2d-dilation-0": (lambda: F.max_pool2d(X4, 2, dilation=0), "dilation must be >= 1"),
    "max_pool2d-kernel-too-big": (lambda: F.max_pool2d(X4, 7), "kernel .* larger than the padded"),
    "max_pool1d-rank": (lambda: F.max_pool1d(X4, 2), "max_pool1d: input must be"),
    "avg_pool2d-padding": (lambda: F.avg_pool2d(X4, 3, padding=2), "padding must be at most half"),
    "avg_pool1d-rank": (lambda: F.avg_pool1d(X4[0, 0, 0], 2), "avg_pool1d: input must be"),
    "adaptive-output_size-0": (lambda: F.adaptive_avg_pool2d(X4, 0), "output_size must be >= 1"),
    "adaptive-output_size-3": (lambda: F.adaptive_avg_pool2d(X4, (1, 2, 3)), "output_size must be"),
    "global_avg_pool2d-rank": (lambda: F.global_avg_pool2d(X4[0, 0]), "global_avg_pool2d: input must be"),
    "batch_norm-training": (lambda: F.batch_norm(X4, np.zeros(3), np.ones(3), training=True), "training=True"),
    "batch_norm-stats-missing": (lambda: F.batch_norm(X4, None, None), "running_mean and running_var"),
    "batch_norm-mean-shape": (lambda: F.batch_norm(X4, np.zeros(4), np.ones(3)), "running_mean must have shape"),
    "batch_norm-weight-shape": (lambda: F.batch_norm(X4, np.zeros(3), np.ones(3), np.ones(2)),
                                "weight must have shape"),
    "batch_norm-negative-var": (lambda: F.batch_norm(X4, np.zeros(3), -np.ones(3)), "running_var must be >= 0"),
    "batch_norm-eps": (lambda: F.batch_norm(X4, np.zeros(3), np.ones(3), eps=-1), "eps must be"),
    "instance_norm-rank": (lambda: F.instance_norm(X4[0, :, :, 0]), "instance_norm: input must be"),
    "instance_norm-bias": (lambda: F.instance_norm(X4, bias=np.ones(5)), "bias must have shape"),
    "layer_norm-not-trailing": (lambda: F.layer_norm(X4, (3, 5)), "normalized_shape"),
    "layer_norm-too-long": (lambda: F.layer_norm(X3, (1, 1, 3, 5)), "normalized_shape"),
    "layer_norm-weight": (lambda: F.layer_norm(X4, (5,), np.ones(4)), "weight must have shape"),
    "group_norm-not-dividing": (lambda: F.group_norm(X4, 2), "num_groups"),
    "group_norm-0": (lambda: F.group_norm(X4, 0), "num_groups"),
    "softmax-dim": (lambda: F.softmax(X4, 4), "dim=4 is out of range"),
    "softmax-dim-neg": (lambda: F.log_softmax(X4, -5), "dim=-5 is out of range"),
    "softmax-dim-float": (lambda: F.softmax(X4, 1.0), "dim must be an int"),
    "gelu-approximate": (lambda: F.gelu(X4, approximate="fast"), "approximate must be"),
    "conv_output_shape-same-stride2": (lambda: F.conv_output_shape(13, 3, 2, "same"), "padding='same'"),
    "conv_output_shape-size-0": (lambda: F.conv_output_shape(0, 3), "input_size"),
    "conv_output_shape-kernel-too-big": (lambda: F.conv_output_shape(3, 5), "kernel"),
    "conv2d_matrix-channels": (lambda: F.conv2d_matrix(W4, (2, 5, 5)), "input_shape has 2 channels"),
    "conv2d_matrix-input_shape": (lambda: F.conv2d_matrix(W4, (5, 5)), "input_shape must be"),
    "set_num_threads-0": (lambda: F.set_num_threads(0), "n must be an int >= 1"),
    "set_weight_cache_limit-negative": (lambda: F.set_weight_cache_limit(-1), "nbytes must be >= 0"),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_bad_arguments_raise_value_error_naming_them(case):
    call, message = case
    with pytest.raises(ValueError, match=message) as error:
        call()
    assert str(error.value).split(":")[0] in F.__all__  # "function: argument ..."


def test_invalid_argument_error_is_a_value_error():
    with pytest.raises(pycnn.InvalidArgumentError, match="^conv2d: stride"):
        F.conv2d(X4, W4, stride=0)
    assert issubclass(pycnn.InvalidArgumentError, ValueError)


WINDOWED = {
    "conv1d": lambda x: F.conv1d(x, np.ones((2, 3, 1))),
    "conv2d": lambda x: F.conv2d(x, np.ones((2, 3, 1, 1))),
    "conv_transpose1d": lambda x: F.conv_transpose1d(x, np.ones((3, 2, 1))),
    "conv_transpose2d": lambda x: F.conv_transpose2d(x, np.ones((3, 2, 1, 1))),
    "max_pool1d": lambda x: F.max_pool1d(x, 1),
    "max_pool2d": lambda x: F.max_pool2d(x, 1),
    "avg_pool1d": lambda x: F.avg_pool1d(x, 1),
    "avg_pool2d": lambda x: F.avg_pool2d(x, 1),
    "adaptive_avg_pool2d": lambda x: F.adaptive_avg_pool2d(x, 2),
    "global_avg_pool2d": F.global_avg_pool2d,
    "global_max_pool2d": F.global_max_pool2d,
    "batch_norm": lambda x: F.batch_norm(x, np.zeros(x.shape[1]), np.ones(x.shape[1])),
    "instance_norm": F.instance_norm,
    "layer_norm": lambda x: F.layer_norm(x, x.shape[-1:]),
    "group_norm": lambda x: F.group_norm(x, 1),
}
EMPTY_CASES = [(name, shape) for name in WINDOWED
               for shape in ([(0, 3, 5), (1, 3, 0), (1, 0, 5)] if name.endswith("1d") else
                             [(0, 3, 5, 5), (1, 3, 0, 5), (1, 3, 5, 0), (1, 0, 5, 5)])]


@pytest.mark.parametrize("name,shape", EMPTY_CASES)
def test_empty_inputs_raise_value_error(name, shape):
    # Never a crash or an uninitialized result: a ValueError naming the function.
    with pytest.raises(ValueError, match=f"^{name}: .*empty"):
        WINDOWED[name](np.ones(shape, np.float32))


def test_empty_weights_raise_value_error():
    with pytest.raises(ValueError, match="weight is empty"):
        F.conv2d(X4, np.ones((0, 3, 3, 3)))
    with pytest.raises(ValueError, match="weight is empty"):
        F.conv_transpose2d(X4, np.ones((3, 0, 3, 3)))


@pytest.mark.parametrize("name", ["relu", "gelu", "sigmoid", "softplus"])
def test_elementwise_on_empty_returns_empty(name):
    # As torch: element-wise functions and softmax map an empty array to an empty array.
    x = np.ones((0, 3, 5), np.float32)
    for got in (ACTIVATIONS[name][0](x), F.softmax(x, 1), F.log_softmax(x, 0)):
        assert got.shape == x.shape and got.dtype == np.float32
    assert F.relu(x, inplace=True) is x


# --------------------------------------------------------------------------
# the prepared-weights cache (_cache.py)
# --------------------------------------------------------------------------

@pytest.fixture
def fresh_cache():
    """An empty cache at its default limit, restored (and emptied) afterwards."""
    limit = _cache._LIMIT[0]
    F.clear_weight_cache()
    try:
        yield
    finally:
        F.set_weight_cache_limit(limit)
        F.clear_weight_cache()


def _winograd_case(C=16, seed=50):
    # 3x3 stride 1 on 28x28: Winograd runs, so the 2nd call prepares and the 3rd+ reuse the cache.
    x = rand((1, C, 28, 28), seed)
    w = rand((C, C, 3, 3), seed + 1, scale=1 / math.sqrt(9 * C))
    b = rand(C, seed + 2)
    return x, w, b


def test_cached_calls_give_identical_results(fresh_cache):
    x, w, b = _winograd_case()
    ys = [F.conv2d(x, w, b, padding=1) for _ in range(4)]
    assert len(_cache._entries) == 1  # the cache is in use (else this test checks nothing)
    for y in ys[1:]:
        np.testing.assert_array_equal(y, ys[0])
    assert_close(ys[0], ref_conv(x, w, b, padding=1))


def test_cache_sees_in_place_weight_and_bias_changes(fresh_cache):
    x, w, b = _winograd_case()
    for _ in range(3):
        F.conv2d(x, w, b, padding=1)
    assert len(_cache._entries) == 1
    for step in range(4):
        # Same buffer, same shape, new values: each later call must use them. Three calls per change
        # go through the one-shot, the preparing and the cached path again.
        if step % 2:
            b += 1.0
        else:
            w[step, :, 1, 1] *= -2.0
        want = ref_conv(x, w, b, padding=1)
        for _ in range(3):
            assert_close(F.conv2d(x, w, b, padding=1), want)
        assert len(_cache._entries) == 1  # the last call ran a re-prepared entry


def test_cached_weights_with_other_inputs_and_thread_counts(fresh_cache):
    _, w, b = _winograd_case()
    for _ in range(3):
        F.conv2d(rand((1, 16, 28, 28), 60), w, b, padding=1)
    threads = F.get_num_threads()
    try:
        for i, shape in enumerate([(2, 16, 13, 5), (16, 28, 28), (3, 16, 1, 1), (1, 16, 28, 28)]):
            F.set_num_threads(1 + i % 2)
            x = rand(shape, 61 + i)
            assert_close(F.conv2d(x, w, b, padding=1), ref_conv(x, w, b, padding=1))
    finally:
        F.set_num_threads(threads)


def test_weight_cache_limit_zero_still_correct(fresh_cache):
    F.set_weight_cache_limit(0)
    x, w, b = _winograd_case()
    want = ref_conv(x, w, b, padding=1)
    for _ in range(3):
        assert_close(F.conv2d(x, w, b, padding=1), want)
    assert not _cache._entries
    w[0] += 1
    assert_close(F.conv2d(x, w, b, padding=1), ref_conv(x, w, b, padding=1))


def test_weight_cache_lru_and_small_limits(fresh_cache):
    # A limit fitting one entry: alternating between two weights evicts each time; still correct.
    x, w1, b = _winograd_case()
    w2 = w1[::-1].copy()
    F.set_weight_cache_limit(_cache._footprint([w1, b]) + 1)
    for _ in range(4):
        for w in (w1, w2):
            assert_close(F.conv2d(x, w, b, padding=1), ref_conv(x, w, b, padding=1))
    assert len(_cache._entries) == 1
    F.set_weight_cache_limit(1)  # below every footprint: nothing new is prepared
    F.clear_weight_cache()
    for _ in range(3):
        assert_close(F.conv2d(x, w1, b, padding=1), ref_conv(x, w1, b, padding=1))
    assert not _cache._entries


def test_clear_weight_cache(fresh_cache):
    x, w, b = _winograd_case()
    for _ in range(3):
        want = F.conv2d(x, w, b, padding=1)
    assert _cache._entries
    F.clear_weight_cache()
    assert not _cache._entries and not _cache._seen
    np.testing.assert_array_equal(F.conv2d(x, w, b, padding=1), want)


@pytest.mark.parametrize("limit", ["default", "one-entry"])
def test_concurrent_calls_with_shared_weights(fresh_cache, limit, run_in_threads):
    # 4 Python threads (the GIL is released in the kernels) pick among 3 shared weight arrays: the
    # cache's preparation, reuse and (with room for one entry) eviction must not mix them up.
    weights = [_winograd_case(seed=80 + 3 * j)[1] for j in range(3)]
    if limit == "one-entry":
        F.set_weight_cache_limit(_cache._footprint([weights[0], None]) + 1)
    inputs = [rand((1, 16, 28, 28), 70 + i) for i in range(4)]
    wants = {(i, j): ref_conv(x, w, padding=1) for i, x in enumerate(inputs) for j, w in enumerate(weights)}

    def work(i):
        for j in np.random.default_rng(i).integers(0, 3, 10):
            assert_close(F.conv2d(inputs[i], weights[j], padding=1), wants[i, j])

    errors = run_in_threads(work, 4)
    assert not errors, errors[0]
    assert len(_cache._entries) == (3 if limit == "default" else 1)
