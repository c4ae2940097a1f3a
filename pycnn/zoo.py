"""Standard CNN architectures as ONNX graphs with random weights.

Pure-Python builders (onnx + numpy only, no torch, no downloads) for

    resnet18, resnet50, densenet121, efficientnet_b0, mobilenet_v2, squeezenet1_1

Each follows the torchvision architecture and is laid out the way PyTorch's
ONNX exporter emits it: Conv (bias=False where torchvision has it) followed by
an inference BatchNormalization, Relu / Clip(0, 6) / x*Sigmoid(x), MaxPool,
AveragePool, GlobalAveragePool, Concat, Add, Flatten (or the Shape -> Gather ->
Unsqueeze -> Concat -> Reshape glue of ``x.view(x.size(0), -1)``), and a final
Gemm with transB=1.

Weights are random but conditioned so that activations neither vanish nor
explode through the depth and the logits depend on the input:

* convolutions are He-initialised; BN gamma ~ U(0.5, 1.0), beta ~ N(0, 0.1); the
  last BN of each residual branch has gamma ~ U(0.2, 0.5) so residual sums stay
  bounded;
* BN running mean/var are *calibrated*: while the graph is built, a random
  batch (one 224 x 224 image, or several smaller ones for a small
  ``image_size``) is propagated through it in numpy and every BN takes the
  per-channel statistics of its actual input (slightly perturbed), as a
  trained network's running statistics would. Purely random running statistics
  leave large input-independent per-channel offsets that vanish / explode or
  swamp the signal in deep nets;
* convs without a following BN (SqueezeNet) get the equivalent data-dependent
  init (as if a BN had been folded in); the classifier bias cancels the mean
  pooled feature of the calibration batch, so that on random inputs the logits
  (and their argmax) follow the input rather than a constant offset.

Builds are deterministic in ``seed``.

Every builder has the signature::

    f(seed=0, batch="N", image_size=224, num_classes=1000, opset=17) -> onnx.ModelProto

with input "input" [batch, 3, image_size, image_size] float32 and output
"logits" [batch, num_classes]. ``batch`` may be an int or a symbolic name.
Supported opsets: 11 and later.

Run ``python -m pycnn.zoo`` (or ``python pycnn/zoo.py``) to build every model,
check it, and execute it with onnxruntime.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "resnet18", "resnet50", "densenet121", "efficientnet_b0", "mobilenet_v2",
    "squeezenet1_1", "MODELS", "build", "count_params", "GraphBuilder",
]

# gamma range of the last BN in a residual branch (keeps the residual sum bounded)
RES_GAMMA = (0.2, 0.5)
# calibration batch propagated (in numpy) while building, to set BN statistics: images of
# min(image_size, CALIB_MAX_SIZE) pixels, as many as make up ~CALIB_PIXELS pixels
CALIB_MAX_SIZE, CALIB_PIXELS = 256, 224 * 224


def _pool_windows(x: np.ndarray, k, s, pads, ceil: bool, fill: float) -> np.ndarray:
    """Sliding k x k windows (N, C, Ho, Wo, kh, kw) with ONNX pad / ceil_mode semantics."""
    extra = []
    for axis, (kk, ss, pb, pe) in enumerate(zip(k, s, pads[:2], pads[2:])):
        size = x.shape[2 + axis] + pb + pe - kk
        out = (-(-size // ss) if ceil else size // ss) + 1
        if ceil and (out - 1) * ss >= x.shape[2 + axis] + pb:  # last window must start inside
            out -= 1
        extra.append(max(0, (out - 1) * ss + kk - (x.shape[2 + axis] + pb + pe)))
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2] + extra[0]), (pads[1], pads[3] + extra[1])),
               constant_values=fill)
    return sliding_window_view(x, tuple(k), axis=(2, 3))[:, :, ::s[0], ::s[1]]


def _np_conv(x, w, b=None, *, group=1, pads=(0, 0, 0, 0), strides=(1, 1), **_):
    win = _pool_windows(x, w.shape[2:], strides, pads, False, 0.0)  # N, C, Ho, Wo, kh, kw
    cg = w.shape[1]
    if group == 1:
        y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    elif cg == 1 and w.shape[0] == group:  # depthwise
        y = np.einsum("nchwij,cij->nchw", win, w[:, 0], optimize=True)
    else:
        og = w.shape[0] // group
        y = np.concatenate([np.tensordot(win[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og],
                                         axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
                            for g in range(group)], axis=1)
    return y if b is None else y + b[:, None, None]


def _np_bn(x, g, b, m, v, *, epsilon=1e-5, **_):
    r = lambda a: a[:, None, None]  # noqa: E731
    return (x - r(m)) / np.sqrt(r(v) + epsilon) * r(g) + r(b)


def _np_gemm(a, w, b, *, transB=0, **_):
    return a @ (w.T if transB else w) + b


# numpy reference implementations of the ops the builders emit (used for calibration)
_NP_OPS = {
    "Conv": _np_conv,
    "BatchNormalization": _np_bn,
    "Relu": lambda x, **_: np.maximum(x, 0),
    "Clip": lambda x, lo, hi, **_: np.clip(x, lo, hi),
    "Sigmoid": lambda x, **_: 1 / (1 + np.exp(-x)),
    "Mul": lambda a, b, **_: a * b,
    "Add": lambda a, b, **_: a + b,
    "Concat": lambda *xs, axis, **_: np.concatenate(xs, axis=axis),
    "MaxPool": lambda x, *, kernel_shape, strides, pads, ceil_mode=0, **_: _pool_windows(
        x, kernel_shape, strides, pads, bool(ceil_mode), -np.inf).max(axis=(4, 5)),
    "AveragePool": lambda x, *, kernel_shape, strides, pads, **_: _pool_windows(
        x, kernel_shape, strides, pads, False, 0.0).mean(axis=(4, 5)),
    "GlobalAveragePool": lambda x, **_: x.mean(axis=(2, 3), keepdims=True),
    "Flatten": lambda x, **_: x.reshape(x.shape[0], -1),
    "Gemm": _np_gemm,
    "Dropout": lambda x, *_, **__: x,
    "Constant": lambda *, value: numpy_helper.to_array(value),
    "Shape": lambda x, **_: np.array(x.shape, dtype=np.int64),
    "Gather": lambda x, i, *, axis=0: np.take(x, i, axis=axis),
    "Unsqueeze": lambda x, axes: np.expand_dims(x, tuple(axes)),  # input (13+) or attribute
    "Reshape": lambda x, shape, **_: x.reshape(shape),
}


class GraphBuilder:
    """Accumulates nodes and initializers with unique names, tracks the channel count
    of every tensor it produces, and evaluates each node eagerly in numpy on a small
    calibration batch so that BN statistics can be taken from real activations."""

    def __init__(self, seed: int = 0, opset: int = 17):
        if opset < 11:
            raise ValueError("pycnn.zoo supports opset >= 11")
        self.rng = np.random.default_rng(seed)
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.channels: dict[str, int] = {}
        self.val: dict[str, np.ndarray] = {}  # calibration values of tensors / initializers
        self._count: dict[str, int] = {}
        self._consts: dict[tuple, str] = {}

    # ---- naming / raw graph pieces --------------------------------------------------
    def uid(self, prefix: str) -> str:
        i = self._count.get(prefix, 0)
        self._count[prefix] = i + 1
        return f"{prefix}_{i}"

    def input(self, name: str, channels: int, batch, image_size: int) -> str:
        self.inputs.append(helper.make_tensor_value_info(
            name, TensorProto.FLOAT, [batch, channels, image_size, image_size]))
        self.channels[name] = channels
        size = min(image_size, CALIB_MAX_SIZE)
        n = max(1, round(CALIB_PIXELS / size**2))
        calib = np.random.default_rng([self.rng.integers(2**31), 1])  # independent stream
        self.val[name] = calib.standard_normal((n, channels, size, size), dtype=np.float32)
        return name

    def _add_init(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(arr, name))
        self.val[name] = arr
        return name

    def param(self, name: str, arr) -> str:
        return self._add_init(name, np.asarray(arr, dtype=np.float32))

    def const(self, value, dtype=np.float32) -> str:
        """Shared constant initializer (e.g. the Clip bounds)."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self._add_init(self.uid("const"), arr)
        return self._consts[key]

    def constant_node(self, value, dtype=np.int64) -> str:
        """A Constant node (the TorchScript exporter emits these for shape glue)."""
        return self.op("Constant", [], value=numpy_helper.from_array(np.asarray(value, dtype=dtype)))

    def op(self, op_type: str, inputs: list[str], *, name: str | None = None,
           channels: int | None = None, **attrs) -> str:
        name = name or self.uid(op_type)
        out = f"{name}_out"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=name, **attrs))
        ch = channels if channels is not None else (self.channels.get(inputs[0]) if inputs else None)
        if ch is not None:
            self.channels[out] = ch
        y = _NP_OPS[op_type](*(self.val[i] for i in inputs), **attrs)
        self.val[out] = y.astype(np.float32) if y.dtype == np.float64 else y
        return out

    # ---- layers ------------------------------------------------------------------------
    def conv(self, x: str, out_ch: int, k: int, s: int = 1, p: int | None = None,
             groups: int = 1, bias: bool | str = False, gamma=(0.5, 1.0)) -> str:
        """Conv2d with He-init weights. ``bias=True``: torch-default bias init.
        ``bias="calibrated"`` (convs not followed by BN): data-dependent init, as if a BN
        had been folded in: each output channel is rescaled to std ~ U(*gamma) and
        shifted to mean ~ N(0, 0.1) on the calibration batch."""
        cin = self.channels[x]
        p = (k - 1) // 2 if p is None else p
        fan_in = cin // groups * k * k
        name = self.uid("Conv")
        w = self.rng.standard_normal((out_ch, cin // groups, k, k), dtype=np.float32)
        w *= np.float32(math.sqrt(2.0 / fan_in))
        attrs = dict(dilations=[1, 1], group=groups, kernel_shape=[k, k], pads=[p, p, p, p],
                     strides=[s, s])
        b = None
        if bias == "calibrated":
            y = _np_conv(self.val[x], w, **attrs)
            scale = self.rng.uniform(gamma[0], gamma[1], out_ch) / (y.std(axis=(0, 2, 3)) + 1e-6)
            w *= scale.astype(np.float32)[:, None, None, None]
            b = self.rng.normal(0.0, 0.1, out_ch) - y.mean(axis=(0, 2, 3)) * scale
        elif bias:  # torch default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            b = self.rng.uniform(-1.0, 1.0, out_ch) / math.sqrt(fan_in)
        inputs = [x, self.param(f"{name}.weight", w)]
        if b is not None:
            inputs.append(self.param(f"{name}.bias", b))
        return self.op("Conv", inputs, name=name, channels=out_ch, **attrs)

    def bn(self, x: str, gamma=(0.5, 1.0)) -> str:
        """Inference BatchNormalization; running stats = calibration-batch stats of x,
        perturbed (mean by 0.1 std, var by a factor in [0.9, 1.1])."""
        c, r, v = self.channels[x], self.rng, self.val[x].astype(np.float64)
        mean, var = v.mean(axis=(0, 2, 3)), v.var(axis=(0, 2, 3))
        var = np.maximum(var, 1e-2 * var.mean() + 1e-6)  # guard (near-)constant channels
        name = self.uid("BatchNormalization")
        ins = [x,
               self.param(f"{name}.weight", r.uniform(gamma[0], gamma[1], c)),
               self.param(f"{name}.bias", r.normal(0.0, 0.1, c)),
               self.param(f"{name}.running_mean", mean + r.normal(0.0, 0.1, c) * np.sqrt(var)),
               self.param(f"{name}.running_var", var * r.uniform(0.9, 1.1, c))]
        return self.op("BatchNormalization", ins, name=name, epsilon=1e-5, momentum=0.9)

    def act(self, x: str, kind: str | None) -> str:
        if kind is None:
            return x
        if kind == "relu":
            return self.op("Relu", [x])
        if kind == "relu6":  # torch exports ReLU6 as Clip(x, 0, 6)
            return self.op("Clip", [x, self.const(0.0), self.const(6.0)])
        if kind == "silu":  # x * sigmoid(x)
            return self.op("Mul", [x, self.op("Sigmoid", [x])])
        if kind == "sigmoid":
            return self.op("Sigmoid", [x])
        raise ValueError(kind)

    def conv_bn(self, x: str, out_ch: int, k: int, s: int = 1, p: int | None = None,
                groups: int = 1, act: str | None = "relu", gamma=(0.5, 1.0)) -> str:
        return self.act(self.bn(self.conv(x, out_ch, k, s, p, groups), gamma), act)

    def add(self, a: str, b: str) -> str:
        return self.op("Add", [a, b])

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", [a, b])

    def concat(self, xs: list[str]) -> str:
        return self.op("Concat", xs, channels=sum(self.channels[t] for t in xs), axis=1)

    def maxpool(self, x: str, k: int, s: int, p: int = 0, ceil: bool = False) -> str:
        return self.op("MaxPool", [x], ceil_mode=int(ceil), kernel_shape=[k, k],
                       pads=[p, p, p, p], strides=[s, s])

    def avgpool(self, x: str, k: int, s: int) -> str:
        return self.op("AveragePool", [x], ceil_mode=0, count_include_pad=1, kernel_shape=[k, k],
                       pads=[0, 0, 0, 0], strides=[s, s])

    def gap(self, x: str) -> str:
        return self.op("GlobalAveragePool", [x])

    def flatten(self, x: str) -> str:
        return self.op("Flatten", [x], axis=1)

    def view_flatten(self, x: str) -> str:
        """``x.view(x.size(0), -1)`` as the TorchScript exporter emits it:
        Shape -> Gather(0) -> Unsqueeze(0) -> Concat(., [-1]) -> Reshape."""
        shape = self.op("Shape", [x])
        n = self.op("Gather", [shape, self.constant_node(0)], axis=0)
        if self.opset >= 13:
            n = self.op("Unsqueeze", [n, self.constant_node([0])])
        else:
            n = self.op("Unsqueeze", [n], axes=[0])
        target = self.op("Concat", [n, self.constant_node([-1])], axis=0)
        return self.op("Reshape", [x, target], channels=self.channels[x])

    def dropout(self, x: str, ratio: float) -> str:
        if self.opset >= 12:  # ratio input; training_mode absent -> inference (identity)
            return self.op("Dropout", [x, self.const(ratio)])
        return self.op("Dropout", [x], ratio=ratio)

    def linear(self, x: str, out_features: int, gain: float = 4.0) -> str:
        """Classifier Gemm (transB=1), W ~ N(0, gain^2 / in_features). The bias is
        data-dependent: it cancels W @ (mean feature on the calibration batch), so that the
        logits follow the input instead of the input-independent part of the pooled
        features (which otherwise dominates on random inputs: same argmax for every input)."""
        cin = self.channels[x]
        name = self.uid("Gemm")
        w = self.rng.standard_normal((out_features, cin)) * (gain / math.sqrt(cin))
        b = self.rng.uniform(-1.0, 1.0, out_features) / math.sqrt(cin) - w @ self.val[x].mean(axis=0)
        return self.op("Gemm", [x, self.param(f"{name}.weight", w), self.param(f"{name}.bias", b)],
                       name=name, channels=out_features, alpha=1.0, beta=1.0, transB=1)

    # ---- output --------------------------------------------------------------------------
    def finish(self, x: str, graph_name: str, batch, num_classes: int,
               output: str = "logits") -> onnx.ModelProto:
        for node in self.nodes:  # rename the final tensor
            node.output[:] = [output if o == x else o for o in node.output]
            node.input[:] = [output if i == x else i for i in node.input]
        graph = helper.make_graph(
            self.nodes, graph_name, self.inputs,
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, num_classes])],
            initializer=self.inits)
        opset_ids = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(graph, opset_imports=opset_ids, producer_name="pycnn.zoo")
        model.ir_version = helper.find_min_ir_version_for(opset_ids)
        return model


def count_params(model: onnx.ModelProto) -> int:
    """Learnable parameters the way torchvision counts them (weights and biases,
    BN gamma/beta; not BN running statistics or constants)."""
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer
               if t.name.endswith((".weight", ".bias")))


# ======================================================================================
# ResNet
# ======================================================================================
def _basic_block(g: GraphBuilder, x: str, planes: int, stride: int) -> str:
    y = g.conv_bn(x, planes, 3, stride)
    y = g.conv_bn(y, planes, 3, act=None, gamma=RES_GAMMA)
    if stride != 1 or g.channels[x] != planes:
        x = g.conv_bn(x, planes, 1, stride, 0, act=None)
    return g.act(g.add(y, x), "relu")


def _bottleneck(g: GraphBuilder, x: str, planes: int, stride: int) -> str:
    y = g.conv_bn(x, planes, 1, p=0)
    y = g.conv_bn(y, planes, 3, stride)  # torchvision v1.5: stride on the 3x3
    y = g.conv_bn(y, planes * 4, 1, p=0, act=None, gamma=RES_GAMMA)
    if stride != 1 or g.channels[x] != planes * 4:
        x = g.conv_bn(x, planes * 4, 1, stride, 0, act=None)
    return g.act(g.add(y, x), "relu")


def _resnet(block, layers, graph_name, seed, batch, image_size, num_classes, opset,
            view_flatten=False) -> onnx.ModelProto:
    g = GraphBuilder(seed, opset)
    x = g.input("input", 3, batch, image_size)
    x = g.conv_bn(x, 64, 7, 2, 3)
    x = g.maxpool(x, 3, 2, 1)
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
        for j in range(n):
            x = block(g, x, planes, 2 if i > 0 and j == 0 else 1)
    x = g.gap(x)
    x = g.view_flatten(x) if view_flatten else g.flatten(x)
    return g.finish(g.linear(x, num_classes), graph_name, batch, num_classes)


def resnet18(seed: int = 0, batch: int | str = "N", image_size: int = 224,
             num_classes: int = 1000, opset: int = 17) -> onnx.ModelProto:
    return _resnet(_basic_block, (2, 2, 2, 2), "resnet18", seed, batch, image_size, num_classes, opset)


def resnet50(seed: int = 0, batch: int | str = "N", image_size: int = 224,
             num_classes: int = 1000, opset: int = 17) -> onnx.ModelProto:
    """Uses the ``x.view(x.size(0), -1)`` shape glue instead of Flatten."""
    return _resnet(_bottleneck, (3, 4, 6, 3), "resnet50", seed, batch, image_size, num_classes,
                   opset, view_flatten=True)


# ======================================================================================
# DenseNet-121
# ======================================================================================
def densenet121(seed: int = 0, batch: int | str = "N", image_size: int = 224,
                num_classes: int = 1000, opset: int = 17) -> onnx.ModelProto:
    growth, bn_size, blocks = 32, 4, (6, 12, 24, 16)
    g = GraphBuilder(seed, opset)
    x = g.input("input", 3, batch, image_size)
    x = g.conv_bn(x, 64, 7, 2, 3)  # conv0, norm0, relu0
    x = g.maxpool(x, 3, 2, 1)  # pool0
    for i, n in enumerate(blocks):
        feats = [x]
        for _ in range(n):  # _DenseLayer: cat(prev) -> BN-ReLU-Conv1x1 -> BN-ReLU-Conv3x3
            y = feats[0] if len(feats) == 1 else g.concat(feats)
            y = g.conv(g.act(g.bn(y), "relu"), bn_size * growth, 1, p=0)
            y = g.conv(g.act(g.bn(y), "relu"), growth, 3)
            feats.append(y)
        x = g.concat(feats)
        if i != len(blocks) - 1:  # _Transition
            x = g.conv(g.act(g.bn(x), "relu"), g.channels[x] // 2, 1, p=0)
            x = g.avgpool(x, 2, 2)
    x = g.act(g.bn(x), "relu")  # norm5 + F.relu
    x = g.flatten(g.gap(x))
    return g.finish(g.linear(x, num_classes), "densenet121", batch, num_classes)


# ======================================================================================
# MobileNetV2
# ======================================================================================
def mobilenet_v2(seed: int = 0, batch: int | str = "N", image_size: int = 224,
                 num_classes: int = 1000, opset: int = 17) -> onnx.ModelProto:
    settings = [  # t, c, n, s
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    g = GraphBuilder(seed, opset)
    x = g.input("input", 3, batch, image_size)
    x = g.conv_bn(x, 32, 3, 2, act="relu6")
    for t, c, n, s in settings:
        for j in range(n):
            stride, cin = (s if j == 0 else 1), g.channels[x]
            hidden = cin * t
            residual = stride == 1 and cin == c
            y = g.conv_bn(x, hidden, 1, p=0, act="relu6") if t != 1 else x
            y = g.conv_bn(y, hidden, 3, stride, groups=hidden, act="relu6")
            y = g.conv_bn(y, c, 1, p=0, act=None, gamma=RES_GAMMA if residual else (0.5, 1.0))
            x = g.add(x, y) if residual else y
    x = g.conv_bn(x, 1280, 1, p=0, act="relu6")
    x = g.flatten(g.gap(x))  # classifier Dropout(0.2) omitted: the exporter drops it in eval mode
    return g.finish(g.linear(x, num_classes), "mobilenet_v2", batch, num_classes)


# ======================================================================================
# EfficientNet-B0
# ======================================================================================
def efficientnet_b0(seed: int = 0, batch: int | str = "N", image_size: int = 224,
                    num_classes: int = 1000, opset: int = 17) -> onnx.ModelProto:
    """Includes an inference-mode Dropout(0.2) node before the classifier."""
    settings = [  # expand, kernel, stride, in, out, layers
        (1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
    g = GraphBuilder(seed, opset)
    x = g.input("input", 3, batch, image_size)
    x = g.conv_bn(x, 32, 3, 2, act="silu")
    for e, k, s, _, c, n in settings:
        for j in range(n):
            stride, cin = (s if j == 0 else 1), g.channels[x]
            hidden = cin * e
            residual = stride == 1 and cin == c
            y = g.conv_bn(x, hidden, 1, p=0, act="silu") if e != 1 else x
            y = g.conv_bn(y, hidden, k, stride, groups=hidden, act="silu")
            # squeeze-and-excitation, squeeze channels = max(1, block input channels // 4)
            se = g.gap(y)
            se = g.act(g.conv(se, max(1, cin // 4), 1, p=0, bias=True), "silu")
            se = g.act(g.conv(se, hidden, 1, p=0, bias=True), "sigmoid")
            y = g.mul(se, y)  # torchvision: scale * input
            y = g.conv_bn(y, c, 1, p=0, act=None, gamma=RES_GAMMA if residual else (0.5, 1.0))
            x = g.add(y, x) if residual else y  # stochastic depth is identity at inference
    x = g.conv_bn(x, 1280, 1, p=0, act="silu")
    x = g.dropout(g.flatten(g.gap(x)), 0.2)
    return g.finish(g.linear(x, num_classes), "efficientnet_b0", batch, num_classes)


# ======================================================================================
# SqueezeNet 1.1
# ======================================================================================
def squeezenet1_1(seed: int = 0, batch: int | str = "N", image_size: int = 224,
                  num_classes: int = 1000, opset: int = 17) -> onnx.ModelProto:
    g = GraphBuilder(seed, opset)

    def conv_relu(x, out_ch, k, s=1, gamma=(0.5, 1.0)):
        return g.act(g.conv(x, out_ch, k, s, p=0 if k == 1 or s == 2 else 1,
                            bias="calibrated", gamma=gamma), "relu")

    def fire(x, squeeze, e1, e3):
        s = conv_relu(x, squeeze, 1)
        return g.concat([conv_relu(s, e1, 1), conv_relu(s, e3, 3)])

    x = g.input("input", 3, batch, image_size)
    x = conv_relu(x, 64, 3, 2)
    x = g.maxpool(x, 3, 2, ceil=True)
    x = fire(fire(x, 16, 64, 64), 16, 64, 64)
    x = g.maxpool(x, 3, 2, ceil=True)
    x = fire(fire(x, 32, 128, 128), 32, 128, 128)
    x = g.maxpool(x, 3, 2, ceil=True)
    for sq, ex in ((48, 192), (48, 192), (64, 256), (64, 256)):
        x = fire(x, sq, ex, ex)
    # classifier: Dropout(0.5) (dropped in eval export), final Conv 1x1, ReLU, avgpool, flatten
    x = conv_relu(x, num_classes, 1, gamma=(2.0, 2.0))  # pre-ReLU std 2: logits O(1)
    x = g.flatten(g.gap(x))
    return g.finish(x, "squeezenet1_1", batch, num_classes)


MODELS = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "densenet121": densenet121,
    "efficientnet_b0": efficientnet_b0,
    "mobilenet_v2": mobilenet_v2,
    "squeezenet1_1": squeezenet1_1,
}


def build(name: str, **kw) -> onnx.ModelProto:
    """Build a zoo model by name, e.g. ``build("resnet50", seed=1, batch=4)``."""
    try:
        fn = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; choose from {sorted(MODELS)}") from None
    return fn(**kw)


if __name__ == "__main__":
    import sys
    import time

    import onnxruntime as ort

    names = sys.argv[1:] or list(MODELS)
    x3 = np.random.default_rng(1).standard_normal((3, 3, 224, 224), dtype=np.float32)
    ok = True
    for name in names:
        t0 = time.perf_counter()
        model = build(name)
        t_build = time.perf_counter() - t0
        onnx.checker.check_model(model, full_check=True)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        y1 = sess.run(None, {"input": x3[:1]})[0]
        y3 = sess.run(None, {"input": x3})[0]
        finite = bool(np.isfinite(y1).all() and np.isfinite(y3).all())
        stds = y3.std(axis=1)
        argmax = y3.argmax(axis=1).tolist()
        consistent = np.allclose(y1[0], y3[0], rtol=1e-4, atol=1e-4 * float(np.abs(y3).max()))
        good = (finite and y1.shape == (1, 1000) and y3.shape == (3, 1000) and consistent
                and 0.1 < stds.min() and stds.max() < 1000)
        ok &= good
        print(f"{name:16s} params={count_params(model):>11,d} nodes={len(model.graph.node):4d} "
              f"build={t_build:5.2f}s  logits mean={y3.mean():+9.3f} std/item="
              f"{np.array2string(stds, precision=3)} range=[{y3.min():+.2f}, {y3.max():+.2f}] "
              f"argmax={argmax} b1==b3[0]:{consistent} {'OK' if good else 'FAIL'}")
    sys.exit(0 if ok else 1)
