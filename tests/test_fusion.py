"""Graph fusions against onnxruntime and against pycnn with optimizations off:
Conv + residual Add (+ activation), in every convolution algorithm, with
residuals that match or broadcast, on every ISA; BatchNormalization (+
activation) and the squeeze-and-excitation scale folded into the 1x1
convolution that reads them, and left alone where they cannot be."""
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
    (40, 29, 1, 1, 1, 1, 1, "Sigmoid", [1, 29, 1, 1], "pointwise-gemm"),  # a 1x1 map: the GEMM is a GEMV
    # an activation the GEMM's store cannot do, over several column blocks and a partial last panel
    (17, 29, 23, 29, 1, 1, 1, "Sigmoid", [1, 29, 23, 29], "pointwise-gemm"),
    (17, 33, 5, 7, 3, 1, 1, "Relu", [1, 33, 5, 7], "indirect-gemm"),  # too few tiles for Winograd
    (17, 33, 9, 7, 3, 1, 1, "Relu", [1, 33, 9, 7], "winograd-f2x3"),
    (9, 5, 29, 30, 3, 1, 1, "Relu", [1, 5, 29, 30], "winograd-f4x3"),
    (8, 8, 11, 13, 3, 2, 1, None, None, "indirect-gemm"),
    (17, 17, 10, 10, 3, 1, 17, "Relu", [1, 17, 10, 10], "depthwise-channels"),
    (12, 12, 57, 58, 3, 1, 12, "Relu", [1, 12, 57, 58], "depthwise-direct"),  # large stride-1 planes
    # rows of 4 vectors and a redone tail (AVX2), or of 2 + 1 vectors (AVX-512), then a pass of the activation
    (5, 5, 60, 61, 3, 1, 5, "Sigmoid", [1, 5, 60, 61], "depthwise-direct"),
    # 5x5 stride 2 on a large plane: by plane with 8 lanes, across channels with 16
    (6, 6, 113, 115, 5, 2, 6, "Relu", [1, 6, 57, 58], "depthwise"),
    (33, 33, 9, 9, 5, 2, 33, "Sigmoid", [1, 33, 5, 5], "depthwise-channels"),
    (7, 5, 6, 6, 3, 1, 1, "Sigmoid", [1, 5, 1, 1], "indirect-gemm"),   # broadcast residual
    (3, 4, 5, 5, 1, 1, 1, "Relu", [2, 4, 5, 5], "pointwise-gemm"),      # the Add broadcasts the conv up
    # a last panel of 1 and of 2 columns (N = 49, 50: gemm_ukernel_narrow), K over two blocks
    (19, 70, 7, 7, 1, 1, 1, "Relu", None, "pointwise-gemm"),
    (300, 13, 5, 10, 1, 1, 1, "Relu", [1, 13, 5, 10], "pointwise-gemm"),
    (70, 9, 13, 13, 3, 2, 1, None, [1, 9, 7, 7], "indirect-gemm"),
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


def norm_then_conv_model(c, m, h, w, act, k=1, stride=1, group=1, extra_reader=False, batch=1):
    """BatchNormalization (+ activation) feeding a convolution, DenseNet's
    pre-activation order; optionally a second reader of the norm's output."""
    rng = np.random.default_rng(c * 31 + m)
    params = [rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32),
              rng.standard_normal(c).astype(np.float32), rng.uniform(0.5, 2.0, c).astype(np.float32)]
    weight = (rng.standard_normal((m, c // group, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    inits = [numpy_helper.from_array(p, n) for p, n in zip(params, ["g", "be", "mu", "var"])]
    inits += [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(rng.standard_normal(m).astype(np.float32), "b")]
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "be", "mu", "var"], ["n"], epsilon=1e-3)]
    src = "n"
    if act == "Clip":
        inits += [numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")]
        nodes.append(helper.make_node("Clip", ["n", "lo", "hi"], ["a"]))
        src = "a"
    elif act:
        nodes.append(helper.make_node(act, ["n"], ["a"]))
        src = "a"
    nodes.append(helper.make_node("Conv", [src, "w", "b"], ["y"], kernel_shape=[k, k], strides=[stride, stride],
                                  pads=[k // 2] * 4, group=group))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_reader:
        nodes.append(helper.make_node("Neg", [src], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "norm_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c, h, w])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


# c, m, h, w, activation after the norm, batch
INPUT_AFFINE_CASES = [(1, 3, 5, 7, "Relu", 1), (17, 33, 9, 7, "Relu", 2), (64, 32, 14, 14, None, 1),
                      (7, 5, 6, 6, "Clip", 1), (33, 17, 3, 3, "Sigmoid", 3), (300, 40, 7, 7, "Relu", 1),
                      (37, 19, 1, 1, "Relu", 1), (37, 19, 1, 1, "Sigmoid", 1)]  # 1x1 maps: GEMV


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", INPUT_AFFINE_CASES)
def test_norm_folds_into_following_pointwise_conv(case, threads, isa):
    c, m, h, w, act, batch = case
    model = norm_then_conv_model(c, m, h, w, act, batch=batch)
    feed = {"x": np.random.default_rng(2).standard_normal((batch, c, h, w)).astype(np.float32)}
    want = ort.InferenceSession(model.SerializeToString()).run(None, feed)[0]
    opts = pycnn.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = pycnn.InferenceSession(model, opts)
    assert [op for _, op, _ in sess.optimized_nodes()] == ["Conv"]  # the norm and its activation went
    assert sess.profile(feed, runs=1).nodes[0].algorithm == "pointwise-gemm+input-affine"
    got = sess.run(None, feed)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variant", [dict(k=3), dict(stride=2), dict(group=2), dict(extra_reader=True)],
                         ids=["3x3", "strided", "grouped", "two-readers"])
def test_norm_stays_where_the_conv_cannot_take_it(variant):
    """Padding would turn the map's zeros into shift values, strides and
    groups leave the pointwise path, and a second reader needs the output."""
    model = norm_then_conv_model(8, 6, 9, 9, "Relu", **variant)
    feed = {"x": np.random.default_rng(3).standard_normal((1, 8, 9, 9)).astype(np.float32)}
    sess = pycnn.InferenceSession(model)
    assert "BatchNormalization" in [op for _, op, _ in sess.optimized_nodes()]
    want = ort.InferenceSession(model.SerializeToString()).run(None, feed)
    for got, ref in zip(sess.run(None, feed), want):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def squeeze_excite_model(c, m, h, w, batch, full_size_scale=False):
    """x * sigmoid(conv(relu(conv(GAP(x))))) then a 1x1 projection conv, as
    in EfficientNet; with full_size_scale the Mul's other operand is a second
    input of x's shape, which the projection cannot take."""
    rng = np.random.default_rng(c + 7 * m)
    mid = max(1, c // 4)
    tensors = {"w1": rng.standard_normal((mid, c, 1, 1)) / np.sqrt(c), "b1": rng.standard_normal(mid),
               "w2": rng.standard_normal((c, mid, 1, 1)) / np.sqrt(mid), "b2": rng.standard_normal(c),
               "wp": rng.standard_normal((m, c, 1, 1)) / np.sqrt(c), "bp": rng.standard_normal(m)}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in tensors.items()]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c, h, w])]
    if full_size_scale:
        inputs.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, [batch, c, h, w]))
        nodes = []
    else:
        nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Conv", ["p", "w1", "b1"], ["q"]),
                 helper.make_node("Relu", ["q"], ["qr"]), helper.make_node("Conv", ["qr", "w2", "b2"], ["e"]),
                 helper.make_node("Sigmoid", ["e"], ["s"])]
    nodes += [helper.make_node("Mul", ["x", "s"], ["xs"]), helper.make_node("Conv", ["xs", "wp", "bp"], ["y"])]
    graph = helper.make_graph(nodes, "se", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("c,m,h,w,batch", [(16, 24, 7, 7, 1), (17, 5, 9, 11, 3), (96, 40, 14, 14, 2)])
def test_squeeze_excitation_scale_folds_into_projection(c, m, h, w, batch, threads, isa):
    model = squeeze_excite_model(c, m, h, w, batch)
    feed = {"x": np.random.default_rng(4).standard_normal((batch, c, h, w)).astype(np.float32)}
    want = ort.InferenceSession(model.SerializeToString()).run(None, feed)[0]
    opts = pycnn.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = pycnn.InferenceSession(model, opts)
    assert "Mul" not in [op for _, op, _ in sess.optimized_nodes()]
    assert sess.profile(feed, runs=1).nodes[-1].algorithm == "pointwise-gemm+input-affine"
    np.testing.assert_allclose(sess.run(None, feed)[0], want, rtol=1e-4, atol=1e-4)


def test_full_size_mul_stays_before_the_projection():
    model = squeeze_excite_model(8, 4, 5, 5, 1, full_size_scale=True)
    rng = np.random.default_rng(5)
    feed = {k: rng.standard_normal((1, 8, 5, 5)).astype(np.float32) for k in ("x", "s")}
    sess = pycnn.InferenceSession(model)
    assert "Mul" in [op for _, op, _ in sess.optimized_nodes()]
    want = ort.InferenceSession(model.SerializeToString()).run(None, feed)[0]
    np.testing.assert_allclose(sess.run(None, feed)[0], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("act", ["Relu", "Sigmoid", None])
@pytest.mark.parametrize("h,w", [(7, 9), (14, 14), (15, 14)])  # 15x14: past the folded planes' bound (196)
def test_pointwise_over_a_batch(h, w, act, threads, isa):
    """At batch > 1, 1x1 convolutions on small planes run as one GEMM over
    every image; the residual and activation follow per image."""
    c, m, batch = 19, 37, 3
    rng = np.random.default_rng(h * w)
    weight = (rng.standard_normal((m, c, 1, 1)) / np.sqrt(c)).astype(np.float32)
    inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(rng.standard_normal(m).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"]), helper.make_node("Add", ["y", "r"], ["s"])]
    out = "s"
    if act:
        nodes.append(helper.make_node(act, ["s"], ["z"]))
        out = "z"
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c, h, w]),
              helper.make_tensor_value_info("r", TensorProto.FLOAT, [batch, m, h, w])]
    graph = helper.make_graph(nodes, "pw", inputs, [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    feed = {"x": rng.standard_normal((batch, c, h, w)).astype(np.float32),
            "r": rng.standard_normal((batch, m, h, w)).astype(np.float32)}
    want = ort.InferenceSession(model.SerializeToString()).run(None, feed)[0]
    opts = pycnn.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = pycnn.InferenceSession(model, opts)
    assert [op for _, op, _ in sess.optimized_nodes()] == ["Conv"]
    np.testing.assert_allclose(sess.run(None, feed)[0], want, rtol=1e-4, atol=1e-4)
