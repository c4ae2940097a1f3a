"""Concatenation without copies (cpp/src/runtime/concat_in_place.h): inputs
written straight into their slice of a Concat's output, and Concats over a
leading run of a bigger one's inputs (DenseNet) read as its leading part.
Every graph here is checked against onnxruntime at batch 1 (placed) and
batch 2 (copied), with 1 and 2 threads, including the cases the planner must
leave alone."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import pycnn


class Graph:
    """A small ONNX graph builder: 3x3 convolutions (+ ReLU) and Concats."""

    def __init__(self, channels):
        self.nodes, self.inits, self.channels = [], [], {"x": channels}
        self.rng = np.random.default_rng(len(self.nodes) + channels)

    def conv(self, src, out_channels):
        name = f"c{len(self.nodes)}"
        c = self.channels[src]
        w = (self.rng.standard_normal((out_channels, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        self.inits.append(numpy_helper.from_array(w, name + "_w"))
        self.nodes.append(helper.make_node("Conv", [src, name + "_w"], [name + "_y"], pads=[1, 1, 1, 1]))
        self.nodes.append(helper.make_node("Relu", [name + "_y"], [name]))
        self.channels[name] = out_channels
        return name

    def concat(self, srcs, axis=1):
        name = f"cat{len(self.nodes)}"
        self.nodes.append(helper.make_node("Concat", list(srcs), [name], axis=axis))
        self.channels[name] = sum(self.channels[s] for s in srcs) if axis == 1 else self.channels[srcs[0]]
        return name

    def model(self, outputs, extra_inputs=()):
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", self.channels["x"], 9, 11])]
        inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", self.channels[n], 9, 11]) for n in extra_inputs]
        graph = helper.make_graph(self.nodes, "concat", inputs,
                                  [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def dense_block(g, layers=4, growth=3):
    """DenseNet's pattern: each layer reads the concatenation of all earlier features."""
    feats, inner = [g.conv("x", 5)], []
    for _ in range(layers):
        src = feats[0] if len(feats) == 1 else g.concat(feats)
        inner.append(src)
        feats.append(g.conv(src, growth))
    return g.concat(feats), inner


def build(case):
    g = Graph(4)
    extra = ()
    if case == "dense":
        out = [g.conv(dense_block(g)[0], 2)]
    elif case == "dense-output":  # the block's concat is a graph output, and so is an inner one
        block, inner = dense_block(g)
        out = [block, g.conv(block, 2), inner[2]]
    elif case == "fire":  # SqueezeNet: two branches of one squeeze, concatenated
        s = g.conv("x", 3)
        out = [g.conv(g.concat([g.conv(s, 4), g.conv(s, 5)]), 2)]
    elif case == "shared-inputs":  # one feature in two concats that are not prefixes of each other
        a, b = g.conv("x", 3), g.conv("x", 4)
        out = [g.conv(g.concat([a, b]), 2), g.conv(g.concat([b, a]), 2)]
    elif case == "repeated-input":
        a = g.conv("x", 3)
        out = [g.conv(g.concat([a, a, g.conv(a, 2)]), 2)]
    elif case == "input-is-graph-output":
        a, b = g.conv("x", 3), g.conv("x", 2)
        out = [a, g.conv(g.concat([a, b]), 2)]
    elif case == "graph-input":
        extra = ("z",)
        g.channels["z"] = 2
        out = [g.conv(g.concat([g.conv("x", 3), "z"]), 2)]
    elif case == "prefix-housed-elsewhere":
        # a goes into the bigger concat first, so the 3-input one cannot
        # hold it, and its 2-input leading run must not read its start
        # (read before the 3-input concat runs and fills its start)
        a, b, c = g.conv("x", 3), g.conv("x", 2), g.conv("x", 4)
        big = g.concat([a, g.conv("x", 1), g.conv("x", 2), g.conv("x", 1)])
        small_out = g.conv(g.concat([a, b]), 2)
        out = [g.conv(big, 2), small_out, g.conv(g.concat([a, b, c]), 2)]
    elif case == "spatial-axis":  # channels before the axis: slices are not contiguous
        a, b = g.conv("x", 3), g.conv("x", 3)
        out = [g.conv(g.concat([a, b], axis=2), 2)]
    else:
        raise ValueError(case)
    return g.model(out, extra), extra


CASES = ["dense", "dense-output", "fire", "shared-inputs", "repeated-input", "input-is-graph-output", "graph-input",
         "prefix-housed-elsewhere", "spatial-axis"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("case", CASES)
def test_concat_in_place_matches_onnxruntime(case, batch, threads):
    model, extra = build(case)
    rng = np.random.default_rng(7)
    feed = {"x": rng.standard_normal((batch, 4, 9, 11)).astype(np.float32)}
    for name in extra:
        feed[name] = rng.standard_normal((batch, 2, 9, 11)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString()).run(None, feed)
    opts = pycnn.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = pycnn.InferenceSession(model, opts)
    for _ in range(2):  # a second run on the same plan: nothing stale in the shared buffers
        got = sess.run(None, feed)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
