"""Graph fusions against onnxruntime and against pycnn with optimizations off:
Conv + residual Add (+ activation), in every convolution algorithm, with
residuals that match or broadcast, on every ISA."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import pycnn


def residual_model(c, m, h, w, k, stride, group, act, residual_shape, residual_from_conv):
    rng = np.random.default_rng(c * 100 + m + k)
    weight = (rng.standard_normal((m, c // group, k, k)) / np.sqrt(c * k * k / group)).astype(np.float32)
    bias = rng.standard_normal(m).astype(np.float32)
    inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[k, k], strides=[stride, stride],
                              pads=[k // 2] * 4, group=group)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])]
    if residual_from_conv:  # the skip branch is itself computed, after the main conv in node order
        w2 = (rng.standard_normal((m, c, 1, 1)) / np.sqrt(c)).astype(np.float32)
        inits.append(numpy_helper.from_array(w2, "w2"))
        nodes.append(helper.make_node("Conv", ["x", "w2"], ["r"], strides=[stride, stride]))
    else:
        inputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, residual_shape))
    nodes.append(helper.make_node("Add", ["y", "r"], ["s"]))
    out = "s"
    if act:
        nodes.append(helper.make_node(act, ["s"], ["z"]))
        out = "z"
    graph = helper.make_graph(nodes, "res", inputs, [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)




CASES = [
    # c, m, h, w, k, stride, group, act, residual shape (None: computed by a conv), algorithm
    (16, 32, 14, 14, 1, 1, 1, "Relu", None, "pointwise-gemm"),
    (17, 33, 5, 7, 3, 1, 1, "Relu", [1, 33, 5, 7], "indirect-gemm"),  # too few tiles for Winograd
    (17, 33, 9, 7, 3, 1, 1, "Relu", [1, 33, 9, 7], "winograd-f2x3"),
    (9, 5, 29, 30, 3, 1, 1, "Relu", [1, 5, 29, 30], "winograd-f4x3"),
    (8, 8, 11, 13, 3, 2, 1, None, None, "indirect-gemm"),
    (17, 17, 10, 10, 3, 1, 17, "Relu", [1, 17, 10, 10], "depthwise-channels"),
    (12, 12, 57, 58, 3, 1, 12, "Relu", [1, 12, 57, 58], "depthwise-direct"),  # large stride-1 planes
    (33, 33, 9, 9, 5, 2, 33, "Sigmoid", [1, 33, 5, 5], "depthwise-channels"),
    (7, 5, 6, 6, 3, 1, 1, "Sigmoid", [1, 5, 1, 1], "indirect-gemm"),   # broadcast residual
    (3, 4, 5, 5, 1, 1, 1, "Relu", [2, 4, 5, 5], "pointwise-gemm"),      # the Add broadcasts the conv up
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[-1]}-{i}" for i, c in enumerate(CASES)])
def test_conv_residual_fusion(case, threads, isa):
    c, m, h, w, k, stride, group, act, rshape, algo = case
    model = residual_model(c, m, h, w, k, stride, group, act, rshape, rshape is None)
    rng = np.random.default_rng(1)
    feed = {"x": rng.standard_normal((1, c, h, w)).astype(np.float32)}
    if rshape is not None:
        feed["r"] = rng.standard_normal(rshape).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString()).run(None, feed)[0]
    opts = pycnn.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = pycnn.InferenceSession(model, opts)
    nodes = sess.optimized_nodes()
    assert [op for _, op, _ in nodes].count("Add") == 0, nodes  # the Add went into the convolution
    got = sess.run(None, feed)[0]
    assert got.shape == want.shape
    algos = [n.algorithm for n in sess.profile(feed, runs=1).nodes if n.op_type == "Conv"]
    assert algos[-1].startswith(algo), algos  # the conv the Add went into runs last
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    plain = pycnn.SessionOptions()
    plain.graph_optimization_level = pycnn.GraphOptimizationLevel.ORT_DISABLE_ALL
    unfused = pycnn.InferenceSession(model, plain).run(None, feed)[0]
    np.testing.assert_allclose(got, unfused, rtol=1e-5, atol=1e-5)
