"""Every optimized kernel against a plain numpy reference.

Each test runs on every ISA this CPU has (scalar, avx2, avx512: the ``isa``
fixture) and with 1 and 2 threads (the ``threads`` fixture), on shapes chosen
to hit odd sizes and partial GEMM tiles, 1x1 and non-square maps, strides,
dilations, groups (1, a few, depthwise), asymmetric and automatic padding.

The first section holds the references: small float64 numpy functions that
follow the ONNX definitions directly (convolutions as loops over the kernel
window, pools over the window with explicit pad masks, and so on). They share
nothing with pycnn.
"""
from __future__ import annotations

import itertools
import math
import zlib

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import pycnn

# =============================================================================
# References (float64 numpy)
# =============================================================================


def resolve_window(in_sizes, kernel, strides, dilations, pads, auto_pad="NOTSET", ceil_mode=False):
    """Returns (pads_begin, pads_end, out_sizes) of a conv/pool window, as ONNX defines them."""
    r = len(in_sizes)
    pads = list(pads) if pads is not None else [0] * (2 * r)
    pb, pe, out = [], [], []
    for i in range(r):
        ek = (kernel[i] - 1) * dilations[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-in_sizes[i] // strides[i])
            total = max(0, (o - 1) * strides[i] + ek - in_sizes[i])
            small, big = total // 2, total - total // 2
            b, e = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
        else:
            b, e = (0, 0) if auto_pad == "VALID" else (pads[i], pads[i + r])
            span = in_sizes[i] + b + e - ek
            assert span >= 0, "test case error: kernel larger than the padded input"
            if ceil_mode:
                o = -(-span // strides[i]) + 1
                if (o - 1) * strides[i] >= in_sizes[i] + b:  # the last window must start inside input or left pad
                    o -= 1
            else:
                o = span // strides[i] + 1
        pb.append(b)
        pe.append(e)
        out.append(o)
    return pb, pe, out


def _window_slices(offset, dilations, strides, out):
    """Slices that pick, for kernel tap `offset`, the input element under every output position."""
    return tuple(slice(offset[i] * dilations[i], offset[i] * dilations[i] + (out[i] - 1) * strides[i] + 1, strides[i])
                 for i in range(len(out)))


def conv_ref(x, w, b=None, strides=None, dilations=None, pads=None, group=1, auto_pad="NOTSET"):
    """ONNX Conv, 1-D or 2-D: zero-pad, then sum over the kernel window of W[:, :, tap] . X[window(tap)]."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    r = x.ndim - 2
    kernel = w.shape[2:]
    strides = strides or [1] * r
    dilations = dilations or [1] * r
    pb, pe, out = resolve_window(x.shape[2:], kernel, strides, dilations, pads, auto_pad)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pb[i], pe[i]) for i in range(r)])
    N, C = x.shape[:2]
    M = w.shape[0]
    Cg, Mg = C // group, M // group
    y = np.zeros((N, M, *out))
    for g in range(group):
        xg = xp[:, g * Cg:(g + 1) * Cg]
        wg = w[g * Mg:(g + 1) * Mg]
        for tap in itertools.product(*[range(k) for k in kernel]):
            patch = xg[(slice(None), slice(None)) + _window_slices(tap, dilations, strides, out)]  # (N, Cg, *out)
            y[:, g * Mg:(g + 1) * Mg] += np.einsum("mc,nc...->nm...", wg[(slice(None), slice(None)) + tap], patch)
    if b is not None:
        y += b.astype(np.float64).reshape((1, M) + (1,) * r)
    return y


def conv_transpose_ref(x, w, b=None, strides=None, dilations=None, pads=None, group=1, output_padding=None,
                       output_shape=None, auto_pad="NOTSET"):
    """ONNX ConvTranspose, scatter-add form: every input pixel adds W[c, :, tap] * x at out = in*stride + tap*dilation,
    then the full result is cropped by the pads."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    r = x.ndim - 2
    N, C, *isz = x.shape
    kernel = w.shape[2:]
    Cg, Mg = C // group, w.shape[1]
    strides = strides or [1] * r
    dilations = dilations or [1] * r
    op = output_padding or [0] * r
    full = [strides[i] * (isz[i] - 1) + op[i] + (kernel[i] - 1) * dilations[i] + 1 for i in range(r)]
    pads = list(pads) if pads is not None else [0] * (2 * r)
    if output_shape is not None:
        for i in range(r):
            total = full[i] - output_shape[i]
            small, big = total // 2, total - total // 2
            pads[i], pads[i + r] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        for i in range(r):
            total = max(0, full[i] - isz[i] * strides[i])
            small, big = total // 2, total - total // 2
            pads[i], pads[i + r] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0] * (2 * r)
    y = np.zeros((N, Mg * group, *full))
    for g in range(group):
        xg = x[:, g * Cg:(g + 1) * Cg]
        wg = w[g * Cg:(g + 1) * Cg]
        for tap in itertools.product(*[range(k) for k in kernel]):
            sl = _window_slices(tap, dilations, strides, isz)
            contrib = np.einsum("cm,nc...->nm...", wg[(slice(None), slice(None)) + tap], xg)
            y[(slice(None), slice(g * Mg, (g + 1) * Mg)) + sl] += contrib
    y = y[(slice(None), slice(None)) + tuple(slice(pads[i], full[i] - pads[i + r]) for i in range(r))]
    if b is not None:
        y += b.astype(np.float64).reshape((1, -1) + (1,) * r)
    return y


def pool_ref(x, kind, kernel, strides=None, dilations=None, pads=None, auto_pad="NOTSET", ceil_mode=False,
             count_include_pad=False):
    """ONNX MaxPool / AveragePool. Pads are explicit masks: `valid` marks real input, `padded` marks input or
    declared pads (count_include_pad counts those); windows that ceil_mode pushes past the end pad count neither."""
    x = x.astype(np.float64)
    r = x.ndim - 2
    isz = x.shape[2:]
    strides = strides or [1] * r
    dilations = dilations or [1] * r
    pb, pe, out = resolve_window(isz, kernel, strides, dilations, pads, auto_pad, ceil_mode)
    extra = [max(0, (out[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - (isz[i] + pb[i] + pe[i]))
             for i in range(r)]
    big = [isz[i] + pb[i] + pe[i] + extra[i] for i in range(r)]
    inner = tuple(slice(pb[i], pb[i] + isz[i]) for i in range(r))
    fill = -np.inf if kind == "max" else 0.0
    val = np.full(x.shape[:2] + tuple(big), fill)
    val[(slice(None), slice(None)) + inner] = x
    valid = np.zeros(big)
    valid[inner] = 1
    padded = np.zeros(big)
    padded[tuple(slice(0, isz[i] + pb[i] + pe[i]) for i in range(r))] = 1
    acc = np.full(x.shape[:2] + tuple(out), fill)
    n_valid = np.zeros(out)
    n_padded = np.zeros(out)
    for tap in itertools.product(*[range(k) for k in kernel]):
        sl = _window_slices(tap, dilations, strides, out)
        if kind == "max":
            acc = np.maximum(acc, val[(slice(None), slice(None)) + sl])
        else:
            acc += val[(slice(None), slice(None)) + sl]
            n_valid += valid[sl]
            n_padded += padded[sl]
    if kind == "max":
        return acc
    return acc / (n_padded if count_include_pad else n_valid)


def batchnorm_ref(x, scale, bias, mean, var, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    x = x.astype(np.float64)
    return (x - mean.reshape(shape)) / np.sqrt(var.astype(np.float64).reshape(shape) + eps) * scale.reshape(shape) \
        + bias.reshape(shape)


def _normalize(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def instancenorm_ref(x, scale, bias, eps=1e-5):
    x = x.astype(np.float64)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return _normalize(x, tuple(range(2, x.ndim)), eps) * scale.reshape(shape) + bias.reshape(shape)


def layernorm_ref(x, scale, bias, axis=-1, eps=1e-5):
    x = x.astype(np.float64)
    axis = axis % x.ndim
    y = _normalize(x, tuple(range(axis, x.ndim)), eps) * scale
    return y + bias if bias is not None else y


def groupnorm_ref(x, scale, bias, num_groups, eps=1e-5):
    """scale/bias hold one value per channel (opset 21) or per group (opset 18)."""
    x = x.astype(np.float64)
    N, C = x.shape[:2]
    xg = x.reshape(N, num_groups, -1)
    y = _normalize(xg, (2,), eps).reshape(x.shape)
    if scale.size == num_groups:
        scale, bias = np.repeat(scale, C // num_groups), np.repeat(bias, C // num_groups)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return y * scale.reshape(shape) + bias.reshape(shape)


def softmax_ref(x, axis=-1, log=False):
    x = x.astype(np.float64)
    z = x - x.max(axis=axis, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=axis, keepdims=True))
    return z - lse if log else np.exp(z - lse)


def gemm_ref(a, b, c=None, alpha=1.0, beta=1.0, trans_a=False, trans_b=False):
    a, b = a.astype(np.float64), b.astype(np.float64)
    a = a.T if trans_a else a
    b = b.T if trans_b else b
    y = alpha * (a @ b)
    if c is not None:
        y = y + beta * c.astype(np.float64)
    return y


def matmul_ref(a, b):
    return np.matmul(a.astype(np.float64), b.astype(np.float64))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _clip01(v):
    return np.minimum(1.0, np.maximum(0.0, v))


# op name -> (reference, attributes). The references follow the ONNX operator definitions.
UNARY_REFS = {
    "Relu": (lambda x: np.maximum(x, 0.0), {}),
    "LeakyRelu": (lambda x: np.where(x >= 0, x, 0.01 * x), {}),
    "LeakyRelu_a0.3": (lambda x: np.where(x >= 0, x, 0.3 * x), {"alpha": 0.3}),
    "Elu": (lambda x: np.where(x > 0, x, np.expm1(x)), {}),
    "Elu_a0.5": (lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)), {"alpha": 0.5}),
    "Selu": (lambda x: 1.0507009873554804934193349852946 * np.where(x > 0, x, 1.6732632423543772848170429916717
                                                                    * np.expm1(x)), {}),
    "Selu_custom": (lambda x: 1.5 * np.where(x > 0, x, 2.0 * np.expm1(x)), {"alpha": 2.0, "gamma": 1.5}),
    "Sigmoid": (_sigmoid, {}),
    "HardSigmoid": (lambda x: _clip01(0.2 * x + 0.5), {}),
    "HardSigmoid_custom": (lambda x: _clip01(0.3 * x + 0.4), {"alpha": 0.3, "beta": 0.4}),
    "HardSwish": (lambda x: x * _clip01(x / 6.0 + 0.5), {}),
    "Tanh": (np.tanh, {}),
    "Softplus": (lambda x: np.logaddexp(0.0, x), {}),
    "Softsign": (lambda x: x / (1.0 + np.abs(x)), {}),
    "Erf": (_erf, {}),
    "Gelu": (lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))), {}),
    "Gelu_tanh": (lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))),
                  {"approximate": "tanh"}),
}

BINARY_REFS = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power,
    "Max": np.maximum, "Min": np.minimum,
}


# =============================================================================
# Harness
# =============================================================================

DISABLE_ALL = pycnn.GraphOptimizationLevel.ORT_DISABLE_ALL
ENABLE_ALL = pycnn.GraphOptimizationLevel.ORT_ENABLE_ALL


@pytest.fixture(params=[1, 2], ids=lambda t: f"t{t}")
def threads(request):
    return request.param


def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def make_model(nodes, inputs, inits=None, outputs=("y",), opset=17):
    """A model of `nodes`: `inputs` {name: array} are graph inputs, `inits` {name: array} initializers."""
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape)) for n, a in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in (inits or {}).items()])
    ir_version = 8 if opset <= 17 else 10  # opsets 18-21 need IR 10
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version)


def session(model, threads, level=ENABLE_ALL):
    so = pycnn.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = level
    return pycnn.InferenceSession(model, so)


def run(model, feeds, threads, level=ENABLE_ALL):
    outs = session(model, threads, level).run(None, feeds)
    return outs[0] if len(outs) == 1 else outs


def run_single(op, inputs, inits=None, attrs=None, threads=1, level=DISABLE_ALL, opset=17, input_order=None):
    """Runs one `op` node whose inputs are `input_order` (default: inputs then initializers, in order)."""
    inits = inits or {}
    names = input_order or (list(inputs) + list(inits))
    node = helper.make_node(op, names, ["y"], **(attrs or {}))
    return run(make_model([node], inputs, inits, opset=opset), inputs, threads, level)


def assert_close(got, ref, rtol=1e-4, atol=1e-4):
    """float32 result vs float64 reference: rtol, plus atol scaled by the reference's largest magnitude."""
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got)
    assert got.dtype == np.float32, got.dtype
    assert got.shape == ref.shape, (got.shape, ref.shape)
    scale = max(1.0, float(np.abs(ref).max())) if ref.size else 1.0
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol * scale)


def rng_for(*key):
    """A generator seeded from the case, so every ISA/thread variant of a case sees the same data."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def conv_attrs(kernel, strides=None, dilations=None, pads=None, group=1, auto_pad=None, **extra):
    a = {"kernel_shape": list(kernel), "group": group, **extra}
    if strides:
        a["strides"] = list(strides)
    if dilations:
        a["dilations"] = list(dilations)
    if pads is not None:
        a["pads"] = list(pads)
    if auto_pad:
        a["auto_pad"] = auto_pad
    return a


# =============================================================================
# Self-checks: the comparison catches small errors, the references match naive loops
# =============================================================================


def test_assert_close_catches_small_errors():
    r = np.random.default_rng(0)
    ref = r.standard_normal((3, 7, 5, 9)) * 20
    got = f32(ref)
    assert_close(got, ref)
    bad = got.copy()
    bad[2, 6, 4, 8] += 0.01 * np.abs(ref).max()  # 1% of the range on one element
    with pytest.raises(AssertionError):
        assert_close(bad, ref)
    small = r.standard_normal((33, 17))  # |values| < 1: the absolute floor is 1e-4
    with pytest.raises(AssertionError):
        assert_close(f32(small) + np.float32(1e-3), small)
    with pytest.raises(AssertionError):  # a transposed-looking result of the right shape
        assert_close(f32(ref[:, :, ::-1]), ref)


def test_references_match_naive_loops():
    r = np.random.default_rng(1)
    x = r.standard_normal((2, 4, 5, 6))
    w = r.standard_normal((6, 2, 3, 2))
    # Conv, group 2, stride (2, 1), dilation (1, 2), pads (1, 0, 0, 2): direct six-deep loop.
    y = conv_ref(x, w, strides=[2, 1], dilations=[1, 2], pads=[1, 0, 0, 2], group=2)
    naive = np.zeros_like(y)
    for n, m, oh, ow in itertools.product(*[range(s) for s in y.shape]):
        g = m // 3
        for c, i, j in itertools.product(range(2), range(3), range(2)):
            h, v = oh * 2 - 1 + i, ow - 0 + 2 * j
            if 0 <= h < 5 and 0 <= v < 6:
                naive[n, m, oh, ow] += x[n, g * 2 + c, h, v] * w[m, c, i, j]
    np.testing.assert_allclose(y, naive, rtol=1e-12, atol=1e-12)
    # ConvTranspose is the adjoint of Conv with the same weight: <conv(p), x> == <p, conv_transpose(x)>.
    wt = r.standard_normal((4, 3, 3, 2))  # (C_in, M/group, kh, kw), group 2 -> 6 output channels
    xt = r.standard_normal((2, 4, 3, 4))
    yt = conv_transpose_ref(xt, wt, strides=[2, 1], dilations=[1, 2], pads=[1, 0, 0, 2], group=2)
    probe = r.standard_normal(yt.shape)
    fwd = conv_ref(probe, wt, strides=[2, 1], dilations=[1, 2], pads=[1, 0, 0, 2], group=2)
    assert fwd.shape == xt.shape
    np.testing.assert_allclose(np.vdot(fwd, xt), np.vdot(probe, yt), rtol=1e-10)
    # Pools: direct loops.
    p = pool_ref(x, "avg", [3, 2], strides=[2, 2], pads=[1, 0, 1, 1], ceil_mode=True, count_include_pad=True)
    q = pool_ref(x, "avg", [3, 2], strides=[2, 2], pads=[1, 0, 1, 1], ceil_mode=True)
    mx = pool_ref(x, "max", [3, 2], strides=[2, 2], pads=[1, 0, 1, 1], ceil_mode=True)
    assert p.shape == (2, 4, 3, 3)  # W: a 4th window would start in the end pad, so ceil_mode drops it
    for oh, ow in itertools.product(range(3), range(3)):
        hs = [oh * 2 - 1 + i for i in range(3)]
        ws = [ow * 2 + j for j in range(2)]
        inside = [(h, v) for h in hs for v in ws if 0 <= h < 5 and 0 <= v < 6]
        in_pads = [(h, v) for h in hs for v in ws if -1 <= h < 6 and 0 <= v < 7]
        s = sum(x[:, :, h, v] for h, v in inside)
        np.testing.assert_allclose(p[:, :, oh, ow], s / len(in_pads))
        np.testing.assert_allclose(q[:, :, oh, ow], s / len(inside))
        np.testing.assert_allclose(mx[:, :, oh, ow], np.max([x[:, :, h, v] for h, v in inside], axis=0))


# =============================================================================
# SGEMM (packed, per ISA)
# =============================================================================

GEMM_SHAPES = [(1, 1, 1), (3, 7, 17), (33, 65, 129), (100, 257, 31), (12, 32, 1), (13, 33, 300), (6, 16, 16),
               (24, 5, 64), (7, 0, 5), (25, 600, 49), (11, 513, 40), (16, 300, 600), (40, 70, 1000), (200, 20, 250),
               (13, 300, 50), (7, 513, 34), (300, 9, 33)]


# a_in_place: A read row-major where it is (weights used once, pycnn.functional)
# instead of packed panels; b_in_place: B a row-major matrix, packed per block
# or (small M, narrow N: reads_b_in_place) read in place but for a partial
# last panel. M not a multiple of any ISA's panel height, K past one k block
# (256) and odd, N past one column block (256) with a partial last panel.
@pytest.mark.parametrize("b_in_place", [False, True], ids=["b-packed", "b-in-place"])
@pytest.mark.parametrize("a_in_place", [False, True], ids=["a-packed", "a-in-place"])
@pytest.mark.parametrize("mkn", GEMM_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("threads_", [1, 2], ids=lambda t: f"t{t}")
@pytest.mark.parametrize("isa_name", pycnn.available_isas())
def test_core_gemm(isa_name, threads_, mkn, a_in_place, b_in_place):
    m, k, n = mkn
    r = rng_for("gemm", mkn)
    a, b = f32(r.standard_normal((m, k))), f32(r.standard_normal((k, n)))
    c = pycnn._core.gemm(a, b, isa_name, threads_, a_in_place, b_in_place)
    assert_close(c, matmul_ref(a, b))


# =============================================================================
# Conv
# =============================================================================


def conv_case(id, n, c, spatial, m, kernel, group=1, bias=True, **attrs):
    return pytest.param(dict(n=n, c=c, spatial=spatial, m=m, kernel=kernel, group=group, bias=bias, attrs=attrs), id=id)


CONV_CASES = [
    # 2-D, group 1 (1x1 stride 1 without pads takes the pointwise path, strided 1x1 without pads
    # the strided-pointwise gather)
    conv_case("1x1map_k1", 1, 1, (1, 1), 1, (1, 1)),
    conv_case("1x1map_k3_p1", 1, 3, (1, 1), 7, (3, 3), pads=[1, 1, 1, 1]),
    conv_case("c3_5x9_k3_p1", 1, 3, (5, 9), 7, (3, 3), pads=[1, 1, 1, 1]),
    conv_case("c7_13x7_k5_s2_asym", 3, 7, (13, 7), 17, (5, 5), strides=[2, 2], pads=[2, 1, 0, 3]),
    conv_case("c17_9x13_k7_p3", 1, 17, (9, 13), 33, (7, 7), pads=[3, 3, 3, 3]),
    conv_case("c33_7x5_pointwise", 1, 33, (7, 5), 17, (1, 1)),
    conv_case("c33_13x7_pointwise_b3_nobias", 3, 33, (13, 7), 7, (1, 1), bias=False),
    conv_case("c3_13x7_k1_s2", 3, 3, (13, 7), 7, (1, 1), strides=[2, 2]),
    conv_case("c37_29x63_k1_s2_m70", 2, 37, (29, 63), 70, (1, 1), strides=[2, 2]),  # partial panels both ways
    conv_case("c17_9x13_k1_s3x1", 1, 17, (9, 13), 7, (1, 1), strides=[3, 1]),
    conv_case("g2_c6_11x14_k1_s2x3", 2, 6, (11, 14), 4, (1, 1), group=2, strides=[2, 3]),
    conv_case("c7_k1_p1", 1, 7, (5, 9), 3, (1, 1), pads=[1, 0, 0, 1]),
    conv_case("c7_17x13_k3_s3_d2", 1, 7, (17, 13), 17, (3, 3), strides=[3, 3], dilations=[2, 2], pads=[1, 2, 2, 1]),
    conv_case("c17_13x9_k3_d2_valid", 1, 17, (13, 9), 7, (3, 3), dilations=[2, 2], auto_pad="VALID"),
    conv_case("c7_6x10_k3_s2_same_upper", 1, 7, (6, 10), 7, (3, 3), strides=[2, 2], auto_pad="SAME_UPPER"),
    conv_case("c7_6x10_k3_s2_same_lower", 3, 7, (6, 10), 7, (3, 3), strides=[2, 2], auto_pad="SAME_LOWER"),
    conv_case("c3_13x7_k7_same_upper", 1, 3, (13, 7), 3, (7, 7), auto_pad="SAME_UPPER"),
    conv_case("c17_k3x5_s1x2_nonsquare", 1, 17, (13, 7), 7, (3, 5), strides=[1, 2], pads=[1, 2, 1, 2]),
    conv_case("c3_5x9_k7_p3_kernel_over_input", 1, 3, (5, 9), 7, (7, 7), pads=[3, 3, 3, 3]),
    conv_case("c1_33x65_k3_p1_wide", 1, 1, (33, 65), 17, (3, 3), pads=[1, 1, 1, 1]),
    conv_case("c33_17x13_k3_p1_b3", 3, 33, (17, 13), 33, (3, 3), pads=[1, 1, 1, 1]),
    conv_case("c17_13x7_k3_m129_s2", 1, 17, (13, 7), 129, (3, 3), strides=[2, 2], pads=[1, 1, 1, 1]),
    # grouped
    conv_case("g3_c33_9x13_k3", 1, 33, (9, 13), 21, (3, 3), group=3, pads=[1, 1, 1, 1]),
    conv_case("g2_c14_5x9_k3_s2_asym", 3, 14, (5, 9), 6, (3, 3), group=2, strides=[2, 2], pads=[0, 1, 1, 0]),
    conv_case("g7_c7_mult2_k3", 1, 7, (13, 7), 14, (3, 3), group=7, pads=[1, 1, 1, 1]),
    # depthwise (group == C == M)
    conv_case("dw_c7_13x7_k3_p1", 1, 7, (13, 7), 7, (3, 3), group=7, pads=[1, 1, 1, 1]),
    conv_case("dw_c17_13x9_k5_s2_d2_asym", 3, 17, (13, 9), 17, (5, 5), group=17, strides=[2, 2], dilations=[2, 2],
              pads=[2, 0, 1, 3]),
    conv_case("dw_c33_7x5_k3_s3_same_upper", 1, 33, (7, 5), 33, (3, 3), group=33, strides=[3, 3],
              auto_pad="SAME_UPPER"),
    conv_case("dw_c33_1x1map_k7_p3", 1, 33, (1, 1), 33, (7, 7), group=33, bias=False, pads=[3, 3, 3, 3]),
    conv_case("dw_c3_5x9_k3_valid_b3", 3, 3, (5, 9), 3, (3, 3), group=3, auto_pad="VALID"),
    conv_case("dw_c7_6x10_k3_s2_same_lower", 1, 7, (6, 10), 7, (3, 3), group=7, strides=[2, 2], auto_pad="SAME_LOWER"),
    conv_case("dw_c17_33x29_k3_p1", 1, 17, (33, 29), 17, (3, 3), group=17, pads=[1, 1, 1, 1]),
    # large stride-1 planes: one plane at a time (smaller ones vectorize across channels)
    conv_case("dw_c5_61x59_k3_p1", 1, 5, (61, 59), 5, (3, 3), group=5, pads=[1, 1, 1, 1]),
    conv_case("dw_c3_60x64_k5_d2_asym", 2, 3, (60, 64), 3, (5, 5), group=3, dilations=[2, 2], pads=[4, 3, 4, 5]),
    conv_case("dw_c3_141x137_k3_s2_p1", 1, 3, (141, 137), 3, (3, 3), group=3, strides=[2, 2], pads=[1, 1, 1, 1]),
    conv_case("dw_c4_115x113_k5_s2_p2", 1, 4, (115, 113), 4, (5, 5), group=4, strides=[2, 2], pads=[2, 2, 2, 2]),
    conv_case("dw_c3_61x70_k3_p1", 1, 3, (61, 70), 3, (3, 3), group=3, pads=[1, 1, 1, 1]),  # a redone row tail
    conv_case("dw_c7_9x31_k1x7_s1x3", 1, 7, (9, 31), 7, (1, 7), group=7, strides=[1, 3], pads=[0, 3, 0, 2]),
    conv_case("dw_c3_13x7_k7_s1_d1_p0", 1, 3, (13, 7), 3, (7, 7), group=3),
    # 1-D
    conv_case("1d_c3_l17_k3_p1", 1, 3, (17,), 7, (3,), pads=[1, 1]),
    conv_case("1d_c7_l33_k5_s2_d2_asym", 3, 7, (33,), 17, (5,), strides=[2], dilations=[2], pads=[3, 0]),
    conv_case("1d_c17_l9_k7_s3_same_upper", 1, 17, (9,), 33, (7,), strides=[3], auto_pad="SAME_UPPER"),
    conv_case("1d_c7_l10_k3_s2_same_lower", 1, 7, (10,), 3, (3,), strides=[2], auto_pad="SAME_LOWER"),
    conv_case("1d_c33_l1_k1", 1, 33, (1,), 17, (1,)),
    conv_case("1d_c3_l13_k7_valid", 3, 3, (13,), 7, (7,), auto_pad="VALID"),
    conv_case("1d_dw_c17_l33_k3_s2", 1, 17, (33,), 17, (3,), group=17, strides=[2], pads=[1, 0]),
    conv_case("1d_dw_c7_l9_k5_d2_p3", 3, 7, (9,), 7, (5,), group=7, dilations=[2], pads=[3, 2]),
    conv_case("1d_g3_c33_l17_k3", 1, 33, (17,), 21, (3,), group=3, pads=[2, 1]),
]


def _conv_inputs(case, key):
    r = rng_for("conv", key)
    x = f32(r.standard_normal((case["n"], case["c"], *case["spatial"])))
    w = f32(r.standard_normal((case["m"], case["c"] // case["group"], *case["kernel"])))
    b = f32(r.standard_normal(case["m"])) if case["bias"] else None
    return x, w, b


@pytest.mark.parametrize("level", [DISABLE_ALL, ENABLE_ALL], ids=["noopt", "opt"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv(isa, threads, case, level):
    x, w, b = _conv_inputs(case, repr(case))
    inits = {"w": w} if b is None else {"w": w, "b": b}
    attrs = conv_attrs(case["kernel"], group=case["group"], **case["attrs"])
    y = run_single("Conv", {"x": x}, inits, attrs, threads, level)
    assert_close(y, conv_ref(x, w, b, group=case["group"], **case["attrs"]))


RUNTIME_WEIGHT_CASES = [c for c in CONV_CASES if c.id in (
    "c3_5x9_k3_p1", "c33_7x5_pointwise", "g3_c33_9x13_k3", "dw_c7_13x7_k3_p1", "1d_c7_l33_k5_s2_d2_asym",
    "1d_dw_c17_l33_k3_s2", "g7_c7_mult2_k3")]


@pytest.mark.parametrize("case", RUNTIME_WEIGHT_CASES)
def test_conv_runtime_weights(isa, threads, case):
    """Weights fed at run time: the GEMM reads them row-major in place (GemmA::row_major), nothing packed."""
    x, w, b = _conv_inputs(case, repr(case))
    feeds = {"x": x, "w": w}
    if b is not None:
        feeds["b"] = b
    attrs = conv_attrs(case["kernel"], group=case["group"], **case["attrs"])
    y = run_single("Conv", feeds, None, attrs, threads)
    assert_close(y, conv_ref(x, w, b, group=case["group"], **case["attrs"]))


# (kernel, stride, pads): the GEMM convolutions a batch may split by image.
BY_IMAGE_CONVS = {"pointwise": (1, 1, 0), "indirect-3x3-s2": (3, 2, 1), "im2col-1x1-s2": (1, 2, 0)}


@pytest.mark.parametrize("conv", BY_IMAGE_CONVS)
@pytest.mark.parametrize("batch", [2, 3, 4, 9])
@pytest.mark.parametrize("threads_", [1, 2], ids=lambda t: f"t{t}")
def test_gemm_conv_over_a_batch(isa, threads_, batch, conv):
    """GEMM convolutions over a batch (1x1 on planes past the fold: 31x29 >
    196 pixels): at 2 threads, batches the threads share evenly (2, 4, 9) run
    image by image, 3 within each GEMM. With the bias, a fused residual Add
    and ReLU."""
    k, stride, pad = BY_IMAGE_CONVS[conv]
    r = rng_for("gemm-conv-batch", batch, conv)
    x = f32(r.standard_normal((batch, 7, 31, 29)))
    attrs = dict(kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)
    w, b = f32(r.standard_normal((17, 7, k, k))), f32(r.standard_normal(17))
    want = conv_ref(x, w, b, strides=[stride, stride], pads=[pad] * 4)
    skip = f32(r.standard_normal(want.shape))
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], **attrs),
             helper.make_node("Add", ["c", "skip"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    feeds = {"x": x, "skip": skip}
    y = run(make_model(nodes, feeds, {"w": w, "b": b}), feeds, threads_)
    assert_close(y, np.maximum(want + skip, 0))


@pytest.mark.parametrize("hw", [(7, 7), (5, 6), (3, 6), (4, 5), (1, 35), (2, 18), (1, 19), (3, 7)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("threads_", [1, 2], ids=lambda t: f"t{t}")
def test_gemm_last_panel_in_halves(isa, threads_, hw):
    """A partial last column panel wider than half a panel runs as a half
    panel with its narrow rest in the same pass (49 pixels: 32 + 16 + 1 on
    AVX-512, 48 + 1 on AVX2; 18: 16 + 2; 19: 16 + 3; 20: 16 + 4) or as two
    half panels (30: 16 + 14; 21: 16 + 5), and a last panel of 3 or 4
    columns the narrow kernel on AVX-512 (35, 36), each with the fused bias,
    residual Add and ReLU; K past one k block (256); M = 17: a full and a
    partial panel of rows."""
    r = rng_for("gemm-halves", hw)
    x = f32(r.standard_normal((1, 300, *hw)))
    w, b = f32(r.standard_normal((17, 300, 1, 1)) / 17), f32(r.standard_normal(17))
    want = conv_ref(x, w, b)
    skip = f32(r.standard_normal(want.shape))
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Add", ["c", "skip"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    feeds = {"x": x, "skip": skip}
    y = run(make_model(nodes, feeds, {"w": w, "b": b}), feeds, threads_)
    assert_close(y, np.maximum(want + skip, 0))


# =============================================================================
# ConvTranspose
# =============================================================================


def convt_case(id, n, c, spatial, mg, kernel, group=1, bias=True, **attrs):
    return pytest.param(dict(n=n, c=c, spatial=spatial, mg=mg, kernel=kernel, group=group, bias=bias, attrs=attrs),
                        id=id)


CONVT_CASES = [
    convt_case("c3_5x9_k3", 1, 3, (5, 9), 7, (3, 3)),
    convt_case("c7_13x7_k3_s2_p1_op1", 3, 7, (13, 7), 17, (3, 3), strides=[2, 2], pads=[1, 1, 1, 1],
               output_padding=[1, 1]),
    convt_case("c17_7x5_k5_s3_d2_asym_op", 1, 17, (7, 5), 7, (5, 5), strides=[3, 3], dilations=[2, 2],
               pads=[2, 0, 1, 3], output_padding=[2, 1]),
    convt_case("c33_1x1map_k7_s2", 1, 33, (1, 1), 17, (7, 7), strides=[2, 2]),
    convt_case("c7_5x9_k1_s2", 1, 7, (5, 9), 3, (1, 1), strides=[2, 2], bias=False),
    convt_case("c7_5x9_k4_s2_p1", 1, 7, (5, 9), 3, (4, 4), strides=[2, 2], pads=[1, 1, 1, 1]),
    convt_case("c3_5x9_k3x5_s1x2_nonsquare", 3, 3, (5, 9), 7, (3, 5), strides=[1, 2], pads=[0, 2, 1, 1]),
    convt_case("g3_c33_7x5_k3_s2_p1", 1, 33, (7, 5), 7, (3, 3), group=3, strides=[2, 2], pads=[1, 1, 1, 1]),
    convt_case("dw_c17_9x13_k3_s2", 1, 17, (9, 13), 1, (3, 3), group=17, strides=[2, 2], pads=[1, 0, 0, 1]),
    convt_case("c7_5x9_k3_s2_same_upper", 1, 7, (5, 9), 3, (3, 3), strides=[2, 2], auto_pad="SAME_UPPER"),
    convt_case("c7_5x9_k3_s2_same_lower", 1, 7, (5, 9), 3, (3, 3), strides=[2, 2], auto_pad="SAME_LOWER"),
    convt_case("c7_5x9_k3_s2_valid", 3, 7, (5, 9), 3, (3, 3), strides=[2, 2], auto_pad="VALID"),
    convt_case("c7_5x9_k3_s2_output_shape_even", 1, 7, (5, 9), 3, (3, 3), strides=[2, 2], output_shape=[9, 17]),
    convt_case("c7_5x9_k3_s2_output_shape_odd", 1, 7, (5, 9), 3, (3, 3), strides=[2, 2], output_shape=[10, 18]),
    convt_case("c3_17x13_k3_p1_big", 3, 3, (17, 13), 33, (3, 3), pads=[1, 1, 1, 1]),
    convt_case("1d_c7_l17_k5_s2_asym", 1, 7, (17,), 5, (5,), strides=[2], pads=[1, 2]),
    convt_case("1d_c33_l9_k3_s3_d2_op1", 3, 33, (9,), 7, (3,), strides=[3], dilations=[2], output_padding=[1]),
    convt_case("1d_g3_c33_l13_k3_s2", 1, 33, (13,), 5, (3,), group=3, strides=[2], pads=[1, 1]),
    convt_case("1d_c1_l1_k7", 1, 1, (1,), 3, (7,)),
]


@pytest.mark.parametrize("level", [DISABLE_ALL, ENABLE_ALL], ids=["noopt", "opt"])
@pytest.mark.parametrize("case", CONVT_CASES)
def test_conv_transpose(isa, threads, case, level):
    r = rng_for("convt", repr(case))
    x = f32(r.standard_normal((case["n"], case["c"], *case["spatial"])))
    w = f32(r.standard_normal((case["c"], case["mg"], *case["kernel"])))
    b = f32(r.standard_normal(case["mg"] * case["group"])) if case["bias"] else None
    inits = {"w": w} if b is None else {"w": w, "b": b}
    attrs = conv_attrs(case["kernel"], group=case["group"], **case["attrs"])
    y = run_single("ConvTranspose", {"x": x}, inits, attrs, threads, level)
    assert_close(y, conv_transpose_ref(x, w, b, group=case["group"], **case["attrs"]))


# =============================================================================
# Pools
# =============================================================================


def pool_case(id, n, c, spatial, kernel, **attrs):
    return pytest.param(dict(n=n, c=c, spatial=spatial, kernel=kernel, attrs=attrs), id=id)


POOL_CASES = [
    pool_case("c3_13x7_k2_s2", 1, 3, (13, 7), (2, 2), strides=[2, 2]),
    pool_case("c7_13x7_k3_s2_p1", 3, 7, (13, 7), (3, 3), strides=[2, 2], pads=[1, 1, 1, 1]),
    pool_case("c7_13x7_k3_s2_ceil", 1, 7, (13, 8), (3, 3), strides=[2, 2], ceil_mode=1),
    pool_case("c17_13x7_k3_s2_asym_ceil", 1, 17, (13, 7), (3, 3), strides=[2, 2], pads=[1, 0, 0, 1], ceil_mode=1),
    pool_case("c3_4x6_k2_s2_p_end_ceil_drop", 1, 3, (4, 6), (2, 2), strides=[2, 2], pads=[0, 0, 1, 1], ceil_mode=1),
    pool_case("c33_5x9_k5_p2", 1, 33, (5, 9), (5, 5), pads=[2, 2, 2, 2]),
    pool_case("c7_17x13_k3_s3_d2_p", 1, 7, (17, 13), (3, 3), strides=[3, 3], dilations=[2, 2], pads=[2, 1, 2, 1]),
    pool_case("c7_17x13_k3_s2_d2_ceil", 1, 7, (17, 12), (3, 3), strides=[2, 2], dilations=[2, 2], ceil_mode=1),
    pool_case("c3_13x7_k3x5_s1x2_ceil", 3, 3, (13, 7), (3, 5), strides=[1, 2], pads=[1, 2, 1, 0], ceil_mode=1),
    pool_case("c1_1x1map_k7_p3", 1, 1, (1, 1), (7, 7), pads=[3, 3, 3, 3]),
    pool_case("c1_1x1map_k1", 3, 1, (1, 1), (1, 1)),
    pool_case("c7_6x10_k3_s2_same_upper", 1, 7, (6, 10), (3, 3), strides=[2, 2], auto_pad="SAME_UPPER"),
    pool_case("c7_6x10_k3_s2_same_lower", 1, 7, (6, 10), (3, 3), strides=[2, 2], auto_pad="SAME_LOWER"),
    pool_case("c17_5x9_k3_valid", 1, 17, (5, 9), (3, 3), auto_pad="VALID"),
    pool_case("c33_33x29_k3_s2_p1_b3", 3, 33, (33, 29), (3, 3), strides=[2, 2], pads=[1, 1, 1, 1]),
    # planes past kMaxChannelWindowPixels: max pooling plane by plane (stride 2: on every ISA)
    pool_case("c3_141x135_k3_s2_p1", 1, 3, (141, 135), (3, 3), strides=[2, 2], pads=[1, 1, 1, 1]),
    pool_case("c2_133x140_k2_s2", 1, 2, (133, 140), (2, 2), strides=[2, 2]),
    # planes past 64x64 with 2x2 or 3x3 windows at stride 2: maxpool2d's stride-2 path on every ISA
    pool_case("c3_112x97_k3_s2_ceil", 1, 3, (112, 97), (3, 3), strides=[2, 2], ceil_mode=1),
    pool_case("c5_70x66_k2_s2", 2, 5, (70, 66), (2, 2), strides=[2, 2]),
    pool_case("c3_67x131_k2_s2_p_end_ceil", 1, 3, (67, 131), (2, 2), strides=[2, 2], pads=[0, 0, 1, 1], ceil_mode=1),
    # output rows of at least a vector (AVX2): the stride-2 path, rows' and outputs' tails as overlapping vectors
    pool_case("c9_27x27_k3_s2_ceil", 2, 9, (27, 27), (3, 3), strides=[2, 2], ceil_mode=1),
    pool_case("c4_17x18_k3_s2_p1", 1, 4, (17, 18), (3, 3), strides=[2, 2], pads=[1, 1, 1, 1]),
    pool_case("c3_19x35_k2_s2", 1, 3, (19, 35), (2, 2), strides=[2, 2]),
    pool_case("c7_9x31_k1x7_s1x3", 1, 7, (9, 31), (1, 7), strides=[1, 3], pads=[0, 3, 0, 2]),
    # windows inside the plane: 2x2 stride 2 on average pooling's two-row path (dilated rows, unreached trailing
    # pads); a 3x2 window on the general one
    pool_case("c5_15x17_k2_s2_d2x1", 2, 5, (15, 17), (2, 2), strides=[2, 2], dilations=[2, 1]),
    pool_case("c3_8x8_k2_s2_p_end_unreached", 1, 3, (8, 8), (2, 2), strides=[2, 2], pads=[0, 0, 1, 1]),
    pool_case("c4_12x20_k3x2_s1x2", 1, 4, (12, 20), (3, 2), strides=[1, 2]),
    pool_case("1d_c3_l17_k3_s2_p1", 1, 3, (17,), (3,), strides=[2], pads=[1, 1]),
    pool_case("1d_c7_l33_k5_s3_d2_ceil", 3, 7, (33,), (5,), strides=[3], dilations=[2], pads=[2, 0], ceil_mode=1),
    pool_case("1d_c17_l1_k1", 1, 17, (1,), (1,)),
    pool_case("1d_c7_l10_k3_s2_same_lower", 1, 7, (10,), (3,), strides=[2], auto_pad="SAME_LOWER"),
]


def _pool_input(case, salt):
    r = rng_for("pool", salt, repr(case))
    # Mostly negative values: a max pool that let padding (0) win would show.
    return f32(r.standard_normal((case["n"], case["c"], *case["spatial"])) - 3.0)


@pytest.mark.parametrize("case", POOL_CASES)
def test_maxpool(isa, threads, case):
    x = _pool_input(case, "max")
    a = case["attrs"]
    y = run_single("MaxPool", {"x": x}, attrs={"kernel_shape": list(case["kernel"]), **a}, threads=threads)
    ref = pool_ref(x, "max", case["kernel"], a.get("strides"), a.get("dilations"), a.get("pads"),
                   a.get("auto_pad", "NOTSET"), bool(a.get("ceil_mode", 0)))
    assert_close(y, ref, rtol=0, atol=0)


@pytest.mark.parametrize("spatial", [(9, 11), (27, 27), (141, 135)], ids=["by_channels", "row_tail", "by_plane"])
def test_maxpool_propagates_nan(isa, spatial):
    x = _pool_input(dict(n=1, c=19, spatial=spatial), "nan")
    x[0, 3, 4, 5] = np.nan   # one window's first tap ...
    x[0, 17, 2, 2] = np.nan  # ... and a later one's
    x[0, 5, 6, -1] = np.nan  # a row's last column (the tail vectors overlap there)
    y = run_single("MaxPool", {"x": x}, attrs={"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]})
    ref = pool_ref(x, "max", (3, 3), [2, 2], None, [1, 1, 1, 1], "NOTSET", False)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    assert np.isnan(y).sum() >= 2
    np.testing.assert_array_equal(y[~np.isnan(y)], ref[~np.isnan(ref)].astype(np.float32))


@pytest.mark.parametrize("count_include_pad", [0, 1], ids=["excl_pad", "incl_pad"])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avgpool(isa, threads, case, count_include_pad):
    x = _pool_input(case, "avg")
    a = case["attrs"]
    attrs = {"kernel_shape": list(case["kernel"]), "count_include_pad": count_include_pad, **a}
    # AveragePool takes dilations from opset 19.
    y = run_single("AveragePool", {"x": x}, attrs=attrs, threads=threads, opset=19)
    ref = pool_ref(x, "avg", case["kernel"], a.get("strides"), a.get("dilations"), a.get("pads"),
                   a.get("auto_pad", "NOTSET"), bool(a.get("ceil_mode", 0)), bool(count_include_pad))
    assert_close(y, ref)


GLOBAL_SHAPES = [(1, 1, 1, 1), (3, 7, 13, 7), (1, 33, 5, 9), (3, 17, 33), (2, 3, 129, 131)]


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", GLOBAL_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_global_pool(isa, threads, shape, op):
    x = f32(rng_for("gpool", shape).standard_normal(shape) - 3.0)
    y = run_single(op, {"x": x}, threads=threads)
    axes = tuple(range(2, x.ndim))
    ref = x.astype(np.float64).mean(axis=axes, keepdims=True) if op == "GlobalAveragePool" \
        else x.astype(np.float64).max(axis=axes, keepdims=True)
    assert_close(y, ref)


# =============================================================================
# Normalizations, Softmax
# =============================================================================

NORM_SHAPES = [(1, 1, 1, 1), (3, 7, 13, 7), (1, 33, 5, 9), (3, 17, 33), (3, 17), (2, 3, 129, 131)]


def _offset_input(r, shape):
    """Values with a nonzero mean and a spread, so normalizing really has to subtract and divide."""
    return f32(r.standard_normal(shape) * 3.0 + 5.0)


@pytest.mark.parametrize("level", [DISABLE_ALL, ENABLE_ALL], ids=["noopt", "opt"])
@pytest.mark.parametrize("shape", NORM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_batchnorm(isa, threads, shape, level):
    r = rng_for("bn", shape)
    C = shape[1]
    x = _offset_input(r, shape)
    scale, bias, mean = f32(r.standard_normal(C)), f32(r.standard_normal(C)), f32(r.standard_normal(C) + 5)
    var = f32(r.uniform(0.5, 9.0, C))
    y = run_single("BatchNormalization", {"x": x}, {"scale": scale, "bias": bias, "mean": mean, "var": var},
                   {"epsilon": 1e-3}, threads, level)
    assert_close(y, batchnorm_ref(x, scale, bias, mean, var, 1e-3))


@pytest.mark.parametrize("shape", [s for s in NORM_SHAPES if len(s) >= 3], ids=lambda s: "x".join(map(str, s)))
def test_instancenorm(isa, threads, shape):
    r = rng_for("in", shape)
    C = shape[1]
    x = _offset_input(r, shape)
    scale, bias = f32(r.standard_normal(C)), f32(r.standard_normal(C))
    y = run_single("InstanceNormalization", {"x": x}, {"scale": scale, "bias": bias}, {"epsilon": 1e-4}, threads)
    assert_close(y, instancenorm_ref(x, scale, bias, 1e-4))


LAYERNORM_CASES = [((3, 17), -1), ((1, 1), -1), ((3, 7, 13), -1), ((3, 7, 5, 9), 1), ((3, 7, 5, 9), -2),
                   ((2, 129, 131), -1), ((3, 33, 7), 0)]


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("shape,axis", LAYERNORM_CASES, ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple)
                         else f"axis{v}")
def test_layernorm(isa, threads, shape, axis, with_bias):
    r = rng_for("ln", shape, axis)
    x = _offset_input(r, shape)
    norm_shape = shape[axis % len(shape):]
    scale, bias = f32(r.standard_normal(norm_shape)), f32(r.standard_normal(norm_shape))
    inits = {"scale": scale, "bias": bias} if with_bias else {"scale": scale}
    y = run_single("LayerNormalization", {"x": x}, inits, {"axis": axis, "epsilon": 1e-5}, threads)
    assert_close(y, layernorm_ref(x, scale, bias if with_bias else None, axis, 1e-5))


GROUPNORM_CASES = [((3, 33, 5, 9), 3, 18), ((1, 6, 13, 7), 2, 18), ((3, 33, 5, 9), 11, 21), ((1, 7, 13, 7), 1, 21),
                   ((3, 17, 1, 1), 17, 21), ((2, 17, 33), 17, 21), ((1, 6, 129, 67), 3, 21)]


@pytest.mark.parametrize("shape,groups,opset", GROUPNORM_CASES,
                         ids=[f"{'x'.join(map(str, s))}_g{g}_op{o}" for s, g, o in GROUPNORM_CASES])
def test_groupnorm(isa, threads, shape, groups, opset):
    r = rng_for("gn", shape, groups, opset)
    x = _offset_input(r, shape)
    n = groups if opset == 18 else shape[1]  # opset 18: per group; opset 21: per channel
    scale, bias = f32(r.standard_normal(n)), f32(r.standard_normal(n))
    y = run_single("GroupNormalization", {"x": x}, {"scale": scale, "bias": bias},
                   {"num_groups": groups, "epsilon": 1e-5}, threads, opset=opset)
    assert_close(y, groupnorm_ref(x, scale, bias, groups, 1e-5))


SOFTMAX_CASES = [((3, 17), -1), ((1, 1000), -1), ((1, 1), -1), ((3, 7, 5, 9), 1), ((3, 7, 5, 9), 0),
                 ((2, 33, 13), -2), ((2, 33, 513), 2)]


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=[f"{'x'.join(map(str, s))}_axis{a}"
                                                           for s, a in SOFTMAX_CASES])
def test_softmax(isa, threads, shape, axis, op):
    x = f32(rng_for("softmax", shape, axis).standard_normal(shape) * 30.0)  # large logits: needs the max shift
    y = run_single(op, {"x": x}, attrs={"axis": axis}, threads=threads)
    assert_close(y, softmax_ref(x, axis, log=op == "LogSoftmax"))


# =============================================================================
# Gemm, MatMul
# =============================================================================


def gemm_case(id, m, k, n, trans_a=0, trans_b=0, alpha=1.0, beta=1.0, c=None, b_const=True):
    return pytest.param(dict(m=m, k=k, n=n, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c,
                             b_const=b_const), id=id)


GEMM_CASES = [
    gemm_case("1x1x1", 1, 1, 1),
    gemm_case("3x7x17_row_bias", 3, 7, 17, c="N"),
    gemm_case("33x65x129_transB_bias1N", 33, 65, 129, trans_b=1, c="1N"),
    gemm_case("100x257x31_transA", 100, 257, 31, trans_a=1, c="M1"),
    gemm_case("12x32x1_transAB_alpha", 12, 32, 1, trans_a=1, trans_b=1, alpha=0.5, c="MN", beta=2.0),
    gemm_case("13x33x300_alpha_beta_row", 13, 33, 300, alpha=1.5, beta=-0.5, c="N"),
    gemm_case("13x33x300_scalar_c", 13, 33, 300, c="scalar", beta=0.25),
    gemm_case("3x7x17_c1", 3, 7, 17, trans_b=1, c="1"),
    gemm_case("33x65x129_beta0", 33, 65, 129, c="MN", beta=0.0),
    gemm_case("3x7x17_runtimeB", 3, 7, 17, c="N", b_const=False),
    gemm_case("33x65x129_runtimeB_transB_alpha", 33, 65, 129, trans_b=1, alpha=-2.0, c="M1", b_const=False),
    gemm_case("100x257x31_runtimeB_transAB", 100, 257, 31, trans_a=1, trans_b=1, c="MN", b_const=False),
    gemm_case("1x1x1_runtimeB", 1, 1, 1, c="scalar", b_const=False),
]


def _gemm_inputs(case):
    r = rng_for("gemmop", repr(case))
    m, k, n = case["m"], case["k"], case["n"]
    a = f32(r.standard_normal((k, m) if case["trans_a"] else (m, k)))
    b = f32(r.standard_normal((n, k) if case["trans_b"] else (k, n)))
    cshape = {None: None, "N": (n,), "1N": (1, n), "M1": (m, 1), "MN": (m, n), "scalar": (), "1": (1,)}[case["c"]]
    c = None if cshape is None else f32(r.standard_normal(cshape))
    return a, b, c


@pytest.mark.parametrize("case", GEMM_CASES)
def test_gemm_op(isa, threads, case):
    a, b, c = _gemm_inputs(case)
    feeds = {"a": a}
    inits = {}
    (inits if case["b_const"] else feeds)["b"] = b
    if c is not None:
        inits["c"] = c
    order = ["a", "b"] + (["c"] if c is not None else [])
    attrs = {"alpha": case["alpha"], "beta": case["beta"], "transA": case["trans_a"], "transB": case["trans_b"]}
    y = run_single("Gemm", feeds, inits, attrs, threads, input_order=order)
    assert_close(y, gemm_ref(a, b, c, case["alpha"], case["beta"], case["trans_a"], case["trans_b"]))


MATMUL_CASES = [
    ((1, 1), (1, 1)),
    ((3, 7), (7, 17)),
    ((33, 65), (65, 129)),
    ((100, 257), (257, 31)),
    ((13, 33), (33, 300)),
    ((17,), (17, 33)),          # 1-D left
    ((33, 17), (17,)),          # 1-D right
    ((17,), (17,)),             # both 1-D
    ((3, 5, 17), (17, 33)),     # batch folds into rows
    ((3, 5, 17), (3, 17, 7)),   # batched
    ((2, 1, 5, 7), (3, 7, 13)),  # broadcast batch on both sides
    ((5, 7), (3, 7, 13)),       # 2-D left, batched right
    ((7,), (3, 7, 13)),         # 1-D left, batched right
    ((2, 3, 5, 17), (17,)),     # batched left, 1-D right
    ((3, 1, 12, 32), (1, 2, 32, 1)),
]


@pytest.mark.parametrize("b_const", [True, False], ids=["constB", "runtimeB"])
@pytest.mark.parametrize("shapes", MATMUL_CASES, ids=lambda s: "@".join("x".join(map(str, t)) for t in s))
def test_matmul(isa, threads, shapes, b_const):
    r = rng_for("matmul", shapes)
    a, b = f32(r.standard_normal(shapes[0])), f32(r.standard_normal(shapes[1]))
    feeds, inits = ({"a": a}, {"b": b}) if b_const else ({"a": a, "b": b}, {})
    y = run_single("MatMul", feeds, inits, threads=threads, input_order=["a", "b"])
    assert_close(y, matmul_ref(a, b))


# =============================================================================
# Element-wise: activations, Clip, binary broadcasting ops, PRelu
# =============================================================================

UNARY_SHAPES = [(1, 3, 5, 9), (3, 7, 33, 29)]  # 135 elements; 20097 (split across threads)


def _unary_input(shape, salt):
    r = rng_for("unary", shape, salt)
    x = r.standard_normal(shape) * 4.0
    flat = x.reshape(-1)
    flat[:9] = [0.0, -0.0, 1e-3, -1e-3, 30.0, -30.0, 88.0, -88.0, 3.0]  # zeros, tails, the HardSwish knee
    return f32(x)


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", list(UNARY_REFS))
def test_unary(isa, threads, name, shape):
    ref_fn, attrs = UNARY_REFS[name]
    op = name.split("_")[0]
    x = _unary_input(shape, name)
    y = run_single(op, {"x": x}, attrs=attrs, threads=threads, opset=20 if op == "Gelu" else 17)
    assert_close(y, ref_fn(x.astype(np.float64)))


CLIP_CASES = [("both", -1.5, 2.0), ("min_only", -0.5, None), ("max_only", None, 0.75), ("none", None, None),
              ("relu6", 0.0, 6.0)]


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind,lo,hi", CLIP_CASES, ids=[c[0] for c in CLIP_CASES])
def test_clip(isa, threads, kind, lo, hi, shape):
    x = _unary_input(shape, "clip")
    inits = {}
    order = ["x", "" if lo is None else "lo", "" if hi is None else "hi"]
    if lo is not None:
        inits["lo"] = np.array(lo, dtype=np.float32)
    if hi is not None:
        inits["hi"] = np.array(hi, dtype=np.float32)
    while order[-1] == "":
        order.pop()
    y = run_single("Clip", {"x": x}, inits, threads=threads, input_order=order)
    ref = np.clip(x.astype(np.float64), -np.inf if lo is None else lo, np.inf if hi is None else hi)
    assert_close(y, ref)


BINARY_SHAPES = [
    ((3, 7, 5, 9), (3, 7, 5, 9)),    # same shape
    ((3, 7, 5, 9), ()),              # scalar right
    ((), (1, 7, 5, 9)),              # scalar left
    ((3, 7, 5, 9), (7, 1, 1)),       # per channel
    ((1, 17, 13, 7), (7,)),          # last axis
    ((3, 1, 13, 1), (1, 7, 1, 9)),   # both sides broadcast
    ((3, 33, 1, 29), (3, 1, 33, 1)),  # both sides, 28 k elements (split across threads)
    ((3, 7, 33, 29), (3, 7, 33, 29)),  # large, same shape
    ((3, 7, 33, 29), (1, 7, 1, 29)),   # large, broadcast rows
]


def _binary_inputs(op, shapes):
    r = rng_for("binary", op, shapes)
    a = r.standard_normal(shapes[0]) * 3.0
    b = r.standard_normal(shapes[1]) * 3.0
    if op == "Div":
        b = np.sign(b + 1e-9) * (np.abs(b) + 0.5)
    if op == "Pow":
        a, b = np.abs(a) + 0.1, b / 2.0  # positive base, exponents in about [-5, 5]
    if op in ("Max", "Min"):
        a = np.round(a)  # ties between the operands
        b = np.round(b)
    return f32(a), f32(b)


@pytest.mark.parametrize("b_const", [False, True], ids=["runtimeB", "constB"])
@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=lambda s: "_".join("x".join(map(str, t)) or "scalar" for t in s))
@pytest.mark.parametrize("op", list(BINARY_REFS))
def test_binary(isa, threads, op, shapes, b_const):
    a, b = _binary_inputs(op, shapes)
    feeds, inits = ({"a": a}, {"b": b}) if b_const else ({"a": a, "b": b}, {})
    y = run_single(op, feeds, inits, threads=threads, input_order=["a", "b"])
    assert_close(y, BINARY_REFS[op](a.astype(np.float64), b.astype(np.float64)))


@pytest.mark.parametrize("exponent", [2.0, 3.0, 0.5, -1.0])
def test_pow_negative_base_and_scalar_exponent(isa, threads, exponent):
    x = f32(rng_for("pow", exponent).standard_normal((3, 7, 5, 9)) * 3.0)
    if exponent == 0.5:
        x = np.abs(x)
    if exponent == -1.0:
        x = f32(np.sign(x) * (np.abs(x) + 0.5))
    y = run_single("Pow", {"x": x}, {"e": np.array(exponent, dtype=np.float32)}, threads=threads)
    assert_close(y, np.power(x.astype(np.float64), exponent))


@pytest.mark.parametrize("op", ["Max", "Min"])
def test_variadic_max_min(isa, threads, op):
    r = rng_for("variadic", op)
    a, b, c = (f32(r.standard_normal(s)) for s in [(3, 7, 5, 9), (7, 1, 9), (1, 1, 5, 1)])
    y = run_single(op, {"a": a, "b": b, "c": c}, threads=threads)
    assert_close(y, BINARY_REFS[op](BINARY_REFS[op](a, b), c).astype(np.float64))


PRELU_SLOPES = [(7, 1, 1), (1,), (3, 7, 5, 9), (9,), (1, 7, 1, 9)]


@pytest.mark.parametrize("x_shape", [(3, 7, 5, 9), (3, 7, 33, 9)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("slope_shape", PRELU_SLOPES, ids=lambda s: "slope" + "x".join(map(str, s)))
def test_prelu(isa, threads, slope_shape, x_shape):
    if slope_shape == (3, 7, 5, 9):
        slope_shape = x_shape
    r = rng_for("prelu", slope_shape, x_shape)
    x = f32(r.standard_normal(x_shape) * 3.0)
    slope = f32(r.uniform(-0.5, 1.5, slope_shape))
    y = run_single("PRelu", {"x": x}, {"slope": slope}, threads=threads)
    xd = x.astype(np.float64)
    assert_close(y, np.where(xd < 0, xd * slope, xd))


# =============================================================================
# Fused chains (default optimization level) vs the same chain unfused
# =============================================================================

# activation node(s) after the producer: (op, attrs, extra initializers, reference)
FUSABLE_ACTS = {
    "Relu": ("Relu", {}, {}, lambda v: np.maximum(v, 0.0)),
    "LeakyRelu": ("LeakyRelu", {"alpha": 0.2}, {}, lambda v: np.where(v >= 0, v, 0.2 * v)),
    "Sigmoid": ("Sigmoid", {}, {}, _sigmoid),
    "HardSigmoid": ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, {}, lambda v: _clip01(0.3 * v + 0.4)),
    "HardSwish": ("HardSwish", {}, {}, lambda v: v * _clip01(v / 6.0 + 0.5)),
    "Tanh": ("Tanh", {}, {}, np.tanh),
    "Clip06": ("Clip", {}, {"lo": 0.0, "hi": 6.0}, lambda v: np.clip(v, 0.0, 6.0)),
    "Clip_min": ("Clip", {}, {"lo": -0.5}, lambda v: np.maximum(v, -0.5)),
    "SiLU": ("SiLU", {}, {}, lambda v: v * _sigmoid(v)),
}


def _act_nodes(act, src):
    op, attrs, extra, _ = FUSABLE_ACTS[act]
    if op == "SiLU":  # Sigmoid -> Mul, as exporters write it
        return [helper.make_node("Sigmoid", [src], ["sig"]), helper.make_node("Mul", [src, "sig"], ["y"])], {}
    inputs = [src] + list(extra)
    return [helper.make_node(op, inputs, ["y"], **attrs)], {k: np.array(v, dtype=np.float32) for k, v in extra.items()}


PRODUCERS = ["conv", "conv_pointwise", "depthwise", "conv1d", "conv_bn", "depthwise_bn", "conv_nobias_bn",
             "conv_transpose", "gemm", "gemm_cmatrix", "batchnorm"]


def _producer(kind, r):
    """(nodes ending in value 'p', inputs, initializers, reference of 'p')."""
    if kind in ("conv", "conv_pointwise", "depthwise", "conv1d", "conv_bn", "depthwise_bn", "conv_nobias_bn"):
        spatial, c, m, k, group, attrs = {
            "conv": ((13, 7), 7, 17, (3, 3), 1, dict(strides=[2, 1], pads=[1, 0, 1, 2])),
            "conv_pointwise": ((5, 9), 33, 7, (1, 1), 1, {}),
            "depthwise": ((13, 9), 17, 17, (5, 5), 17, dict(dilations=[2, 1], pads=[4, 2, 4, 2])),
            "conv1d": ((33,), 7, 17, (5,), 1, dict(strides=[2], pads=[2, 1])),
            "conv_bn": ((9, 13), 17, 33, (3, 3), 1, dict(pads=[1, 1, 1, 1])),
            "depthwise_bn": ((13, 7), 7, 7, (3, 3), 7, dict(strides=[2, 2], auto_pad="SAME_UPPER")),
            "conv_nobias_bn": ((5, 9), 3, 7, (3, 3), 1, dict(pads=[0, 1, 2, 0])),
        }[kind]
        x = f32(r.standard_normal((3, c, *spatial)))
        w = f32(r.standard_normal((m, c // group, *k)) * 0.5)
        b = f32(r.standard_normal(m))
        with_bias = kind != "conv_nobias_bn"
        inits = {"w": w, "b": b} if with_bias else {"w": w}
        ref = conv_ref(x, w, b if with_bias else None, group=group, **attrs)
        out = "p"
        nodes = [helper.make_node("Conv", ["x"] + list(inits), ["p" if not kind.endswith("_bn") else "c"],
                                  **conv_attrs(k, group=group, **attrs))]
        if kind.endswith("_bn"):
            scale, beta, mean = f32(r.standard_normal(m)), f32(r.standard_normal(m)), f32(r.standard_normal(m))
            var = f32(r.uniform(0.5, 2.0, m))
            inits.update(bn_s=scale, bn_b=beta, bn_m=mean, bn_v=var)
            nodes.append(helper.make_node("BatchNormalization", ["c", "bn_s", "bn_b", "bn_m", "bn_v"], [out],
                                          epsilon=1e-3))
            ref = batchnorm_ref(ref, scale, beta, mean, var, 1e-3)
        return nodes, {"x": x}, inits, ref
    if kind == "conv_transpose":
        x = f32(r.standard_normal((1, 7, 5, 9)))
        w = f32(r.standard_normal((7, 3, 3, 3)))
        b = f32(r.standard_normal(3))
        attrs = dict(strides=[2, 2], pads=[1, 0, 0, 1], output_padding=[1, 0])
        node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["p"], **conv_attrs((3, 3), **attrs))
        return [node], {"x": x}, {"w": w, "b": b}, conv_transpose_ref(x, w, b, **attrs)
    if kind in ("gemm", "gemm_cmatrix"):
        a = f32(r.standard_normal((13, 33)))
        b = f32(r.standard_normal((300, 33)))
        c = f32(r.standard_normal((300,) if kind == "gemm" else (13, 300)))
        node = helper.make_node("Gemm", ["x", "b", "c"], ["p"], transB=1, alpha=0.5)
        return [node], {"x": a}, {"b": b, "c": c}, gemm_ref(a, b, c, 0.5, 1.0, False, True)
    if kind == "batchnorm":
        x = _offset_input(r, (3, 7, 13, 7))
        scale, beta, mean = f32(r.standard_normal(7)), f32(r.standard_normal(7)), f32(r.standard_normal(7) + 5)
        var = f32(r.uniform(0.5, 9.0, 7))
        node = helper.make_node("BatchNormalization", ["x", "s", "bb", "m", "v"], ["p"])
        return [node], {"x": x}, {"s": scale, "bb": beta, "m": mean, "v": var}, batchnorm_ref(x, scale, beta, mean, var)
    raise AssertionError(kind)


# Every activation on conv, depthwise and gemm; the common ones on the other producers.
FUSED_CASES = [(p, a) for p in PRODUCERS for a in FUSABLE_ACTS
               if p in ("conv", "depthwise", "gemm") or a in ("Relu", "Clip06", "SiLU", "HardSwish")]


@pytest.mark.parametrize("level", [DISABLE_ALL, ENABLE_ALL], ids=["noopt", "opt"])
@pytest.mark.parametrize("producer,act", FUSED_CASES, ids=[f"{p}-{a}" for p, a in FUSED_CASES])
def test_fused_chain(isa, threads, producer, act, level):
    r = rng_for("fused", producer)
    nodes, inputs, inits, ref = _producer(producer, r)
    act_nodes, act_inits = _act_nodes(act, "p")
    model = make_model(nodes + act_nodes, inputs, {**inits, **act_inits})
    sess = session(model, threads, level)
    (y,) = sess.run(None, inputs)
    assert_close(y, FUSABLE_ACTS[act][3](ref))
    if level == ENABLE_ALL:  # the fused path really ran: one node left
        summary = sess.optimized_nodes()
        assert len(summary) == 1, summary


# =============================================================================
# Concat: large enough to be split across threads, on every axis.

@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_concat_split_across_threads(threads, axis):
    r = rng_for("concat", axis)
    sizes = [3, 1, 17]
    xs = {}
    for i, n in enumerate(sizes):
        shape = [2, 5, 41, 67]
        shape[axis] = n
        xs[f"x{i}"] = f32(r.standard_normal(shape))
    y = run_single("Concat", xs, attrs={"axis": axis}, threads=threads)
    np.testing.assert_array_equal(y, np.concatenate(list(xs.values()), axis=axis))
