"""The blocked layout (NCHWc): MobileNet/EfficientNet blocks (1x1 expand,
depthwise, squeeze-and-excitation, 1x1 project, residual) run blocked against
onnxruntime and against pycnn with the layout off, on odd channel counts,
windows, strides, dilations, pads and plane sizes, at 1 and 2 threads, on
every ISA; and where the pass puts the chain's edges."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import pycnn


def act_nodes(kind, x, y):
    """Nodes computing y = kind(x) (None: Identity)."""
    if kind is None:
        return [helper.make_node("Identity", [x], [y])]
    if kind == "Clip":
        return [helper.make_node("Clip", [x, "clip_lo", "clip_hi"], [y])]
    if kind == "SiLU":
        return [helper.make_node("Sigmoid", [x], [y + "_s"]), helper.make_node("Mul", [x, y + "_s"], [y])]
    return [helper.make_node(kind, [x], [y])]


def block_model(c, e, m, h, w, k, stride, dilation, act, batch, residual, se, pads=None):
    """x -> 1x1 c->c = x0 (the block input: a residual must come from the chain)
    -> 1x1 c->e (act) -> depthwise kxk (act) [-> SE scale] -> 1x1 e->m [+ x0]."""
    rng = np.random.default_rng(c * 31 + e * 7 + m + k)
    t = {"w0": rng.standard_normal((c, c, 1, 1)) / np.sqrt(c), "w1": rng.standard_normal((e, c, 1, 1)) / np.sqrt(c), "b1": rng.standard_normal(e),
         "wd": rng.standard_normal((e, 1, k, k)) / k, "bd": rng.standard_normal(e),
         "wp": rng.standard_normal((m, e, 1, 1)) / np.sqrt(e), "bp": rng.standard_normal(m),
         "clip_lo": np.array(0.0), "clip_hi": np.array(6.0)}
    pads = pads or [dilation * (k // 2)] * 4
    nodes = [helper.make_node("Conv", ["x", "w0"], ["x0"]), helper.make_node("Conv", ["x0", "w1", "b1"], ["e0"])]
    nodes += act_nodes(act, "e0", "e1")
    nodes += [helper.make_node("Conv", ["e1", "wd", "bd"], ["d0"], kernel_shape=[k, k], strides=[stride, stride],
                               dilations=[dilation, dilation], pads=pads, group=e)] + act_nodes(act, "d0", "d1")
    x = "d1"
    if se:
        mid = max(1, e // 4)
        t.update({"ws1": rng.standard_normal((mid, e, 1, 1)) / np.sqrt(e), "bs1": rng.standard_normal(mid),
                  "ws2": rng.standard_normal((e, mid, 1, 1)) / np.sqrt(mid), "bs2": rng.standard_normal(e)})
        nodes += [helper.make_node("GlobalAveragePool", ["d1"], ["p"]), helper.make_node("Conv", ["p", "ws1", "bs1"], ["q"]),
                  helper.make_node("Relu", ["q"], ["qr"]), helper.make_node("Conv", ["qr", "ws2", "bs2"], ["sq"]),
                  helper.make_node("Sigmoid", ["sq"], ["s"]), helper.make_node("Mul", ["d1", "s"], ["ds"])]
        x = "ds"
    nodes.append(helper.make_node("Conv", [x, "wp", "bp"], ["y0"]))
    out = "y0"
    if residual:
        nodes.append(helper.make_node("Add", ["y0", "x0"], ["y"]))
        out = "y"
    inits = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in t.items()]
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c, h, w])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def session(model, threads=1, blocked=True):
    opts = pycnn.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_blocked_layout = blocked
    return pycnn.InferenceSession(model, opts)


def ops_of(sess):
    return [op for _, op, _ in sess.optimized_nodes()]


BLOCKS = [
    # c, e, m, h, w, k, stride, dilation, act, batch, residual, se, pads
    (3, 7, 3, 9, 11, 3, 1, 1, "Relu", 1, True, False, None),
    (1, 17, 5, 13, 7, 3, 2, 1, "Clip", 2, False, False, None),
    (17, 33, 17, 30, 31, 3, 1, 1, "Clip", 1, True, False, None),  # runs of 8, 4 and 1 pixels between the edges
    (8, 24, 16, 15, 17, 5, 2, 1, "SiLU", 1, False, True, None),
    (16, 96, 24, 28, 28, 3, 2, 1, "Relu", 1, False, False, [0, 0, 1, 1]),  # TF-style pads at the end only
    (24, 40, 24, 12, 10, 5, 1, 1, "HardSwish", 3, True, True, None),  # a scale per image
    (7, 12, 9, 11, 9, 3, 1, 2, "Sigmoid", 1, False, False, None),  # dilated: the generic interior
    (6, 10, 6, 9, 9, 7, 1, 1, None, 2, True, False, None),  # 7x7: the generic interior
    (4, 6, 4, 20, 23, 11, 1, 3, "SiLU", 1, False, False, None),  # dilated 11x11: past the padded edge copy (AVX-512)
    (5, 6, 5, 1, 1, 3, 1, 1, "Relu", 2, True, False, None),  # a 1x1 map: every pixel an edge
    (32, 32, 33, 7, 7, 3, 1, 1, "Clip", 1, False, True, None),
    # K = 410 past a 24 KB weight slice: partial sums in y between slices, the
    # residual and SiLU on the last; the SE scale on the input (63 pixels < 410)
    (24, 410, 24, 7, 9, 3, 1, 1, "SiLU", 2, True, True, None),
    # 7x7 at batch 3, weights outweighing an image's input: the 1x1s take
    # the images together, the projection with its per-image SE scale on
    # the input
    (72, 200, 72, 7, 7, 3, 1, 1, "SiLU", 3, True, True, None),
    # 7x7, weights outweighing the input: the 1x1s split their output blocks
    # over threads, 13 and 6 of them (not whole 4-block tiles)
    SPLIT_BLOCKS := (16, 200, 90, 7, 7, 3, 1, 1, "Clip", 1, False, False, None),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", BLOCKS, ids=[f"c{b[0]}-e{b[1]}-m{b[2]}-{b[3]}x{b[4]}-k{b[5]}s{b[6]}d{b[7]}-{b[8]}"
                                              for b in BLOCKS])
def test_block_runs_blocked_and_matches(case, threads, isa):
    c, e, m, h, w, k, stride, dilation, act, batch, residual, se, pads = case
    model = block_model(c, e, m, h, w, k, stride, dilation, act, batch, residual, se, pads)
    feed = {"x": np.random.default_rng(5).standard_normal((batch, c, h, w)).astype(np.float32)}
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    sess = session(model, threads)
    algos = {n.name: n.algorithm for n in sess.profile(feed, runs=1).nodes if n.op_type == "Conv"}
    blocked = [a for a in algos.values() if a.startswith("blocked-")]
    assert len(blocked) == 4, algos  # input, expand, depthwise, project (the SE's convs on 1x1 maps stay plain)
    if se:
        assert any(a.startswith("blocked-pointwise+input-scale") for a in blocked), algos
    assert ops_of(sess).count("pycnn.ToBlocked") == 1 and ops_of(sess).count("pycnn.FromBlocked") == 1
    got = sess.run(None, feed)[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    plain = session(model, threads, blocked=False)
    assert "pycnn.ToBlocked" not in ops_of(plain)
    np.testing.assert_allclose(got, plain.run(None, feed)[0], rtol=1e-4, atol=1e-4)


def test_blocked_results_do_not_depend_on_thread_count(isa):
    model = block_model(*SPLIT_BLOCKS)
    feed = {"x": np.random.default_rng(6).standard_normal((1, 16, 7, 7)).astype(np.float32)}
    outs = [session(model, t).run(None, feed)[0] for t in (1, 2, 3)]
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def chain_model(c, h, w, tail):
    """x -> 1x1 conv -> depthwise 3x3 (Relu) = d, then `tail` nodes reading d."""
    rng = np.random.default_rng(c)
    t = {"w0": rng.standard_normal((c, c, 1, 1)) / np.sqrt(c), "w1": rng.standard_normal((c, c, 1, 1)) / np.sqrt(c), "wd": rng.standard_normal((c, 1, 3, 3)) / 3}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]),
             helper.make_node("Conv", ["a", "wd"], ["d0"], kernel_shape=[3, 3], pads=[1] * 4, group=c),
             helper.make_node("Relu", ["d0"], ["d"])]
    outs = []
    for kind in tail:
        if kind == "output":
            outs.append("d")
        elif kind == "maxpool":
            nodes.append(helper.make_node("MaxPool", ["d"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]))
            outs.append("mp")
        elif kind == "gap":
            nodes.append(helper.make_node("GlobalAveragePool", ["d"], ["g"]))
            outs.append("g")
    inits = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in t.items()]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, c, h, w])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("tail,from_blocked", [
    (["gap"], 0),                       # the pool reads the blocked tensor itself
    (["output"], 1),                    # a graph output goes back to NCHW
    (["maxpool", "gap", "output"], 1),  # one reorder back serves every plain reader
])
def test_chain_edges(tail, from_blocked, isa):
    model = chain_model(19, 10, 13, tail)
    feed = {"x": np.random.default_rng(2).standard_normal((2, 19, 10, 13)).astype(np.float32)}
    sess = session(model, threads=2)
    assert ops_of(sess).count("pycnn.FromBlocked") == from_blocked, sess.optimized_nodes()
    wants = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
    for got, want in zip(sess.run(None, feed), wants):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_lone_depthwise_and_outside_residual_stay_plain():
    """A depthwise conv alone, and a conv whose residual comes from outside the
    chain (it may broadcast), keep NCHW."""
    c = 8
    rng = np.random.default_rng(0)
    wd = numpy_helper.from_array((rng.standard_normal((c, 1, 3, 3)) / 3).astype(np.float32), "wd")
    w1 = numpy_helper.from_array((rng.standard_normal((c, c, 1, 1)) / 3).astype(np.float32), "w1")
    lone = helper.make_graph([helper.make_node("Conv", ["x", "wd"], ["y"], pads=[1] * 4, group=c)], "lone",
                             [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 9, 9])],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [wd])
    residual = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["a"]), helper.make_node("Conv", ["a", "wd"], ["d"], pads=[1] * 4, group=c),
         helper.make_node("Add", ["d", "r"], ["y"])], "residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 9, 9]),
         helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, c, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [wd, w1])
    for graph in (lone, residual):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        feed = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
                for i in graph.input}
        sess = session(model)
        assert "pycnn.ToBlocked" not in ops_of(sess), sess.optimized_nodes()
        want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
        np.testing.assert_allclose(sess.run(None, feed)[0], want, rtol=1e-4, atol=1e-4)


def test_internal_ops_are_not_listed_as_onnx_ops():
    assert not [op for op in pycnn.supported_ops() if op.startswith("pycnn.")]


def direct_model(c, m, h, w, k, stride, dilation, pads, act, batch):
    """A stem (k x k, c -> m, from bands of the NCHW input's rows) -> 3x3 conv m -> m
    (one group, on the blocked tensor) -> depthwise 3x3 -> 1x1 m -> 5: the
    direct convolutions join the chain."""
    rng = np.random.default_rng(c * 13 + m + k)
    t = {"ws": rng.standard_normal((m, c, k, k)) / np.sqrt(c * k * k), "bs": rng.standard_normal(m),
         "w3": rng.standard_normal((m, m, 3, 3)) / np.sqrt(9 * m), "wd": rng.standard_normal((m, 1, 3, 3)) / 3,
         "wp": rng.standard_normal((5, m, 1, 1)) / np.sqrt(m), "clip_lo": np.array(0.0), "clip_hi": np.array(6.0)}
    nodes = [helper.make_node("Conv", ["x", "ws", "bs"], ["s0"], kernel_shape=[k, k], strides=[stride, stride],
                              dilations=[dilation, dilation], pads=pads)] + act_nodes(act, "s0", "s1")
    nodes += [helper.make_node("Conv", ["s1", "w3"], ["t0"], pads=[1] * 4)] + act_nodes(act, "t0", "t1")
    nodes += [helper.make_node("Conv", ["t1", "wd"], ["d"], pads=[1] * 4, group=m),
              helper.make_node("Conv", ["d", "wp"], ["y"])]
    inits = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in t.items()]
    graph = helper.make_graph(nodes, "direct", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


DIRECT = [
    # c, m, h, w, k, stride, dilation, pads, act, batch
    (3, 32, 33, 35, 3, 2, 1, [1, 1, 1, 1], "Clip", 1),  # MobileNetV2's stem
    (3, 17, 20, 19, 3, 2, 1, [0, 0, 1, 1], "SiLU", 2),  # EfficientNet's, TF-style pads
    (3, 16, 40, 301, 3, 2, 1, [1, 1, 1, 1], "Clip", 2),  # bands of 8 output rows (8 + 8 + 4), rows of 151 pixels
    (1, 7, 9, 13, 5, 1, 2, [4, 4, 4, 4], "Sigmoid", 1),
    (11, 24, 12, 15, 7, 2, 1, [3, 2, 3, 2], "HardSwish", 1),
    (20, 9, 6, 5, 1, 2, 1, [0, 0, 0, 0], None, 3),  # a strided 1x1
    (3, 8, 3, 4, 3, 2, 1, [0, 0, 0, 0], "Relu", 1),  # a 1x1 output: one band of one pixel
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", DIRECT, ids=[f"c{d[0]}-m{d[1]}-{d[2]}x{d[3]}-k{d[4]}s{d[5]}d{d[6]}-{d[8]}" for d in DIRECT])
def test_direct_convolutions_join_the_chain(case, threads, isa):
    c, m, h, w, k, stride, dilation, pads, act, batch = case
    model = direct_model(c, m, h, w, k, stride, dilation, pads, act, batch)
    feed = {"x": np.random.default_rng(6).standard_normal((batch, c, h, w)).astype(np.float32)}
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    sess = session(model, threads)
    algos = [n.algorithm for n in sess.profile(feed, runs=1).nodes if n.op_type == "Conv"]
    assert algos[0].startswith("blocked-plain-direct") and algos[1].startswith("blocked-direct"), algos
    assert "pycnn.ToBlocked" not in ops_of(sess)  # the stem reads the image itself
    np.testing.assert_allclose(sess.run(None, feed)[0], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad_through_the_chain(auto_pad, isa):
    """TF-style exports pad by auto_pad: the stem (plain input), a 5x5 stride-2
    depthwise and a 1x1 resolve it per input shape like the plain ops."""
    rng = np.random.default_rng(3)
    t = {"ws": rng.standard_normal((16, 3, 3, 3)) / 5, "wd": rng.standard_normal((16, 1, 5, 5)) / 5,
         "wp": rng.standard_normal((8, 16, 1, 1)) / 4}
    nodes = [helper.make_node("Conv", ["x", "ws"], ["s"], kernel_shape=[3, 3], strides=[2, 2], auto_pad=auto_pad),
             helper.make_node("Conv", ["s", "wd"], ["d"], kernel_shape=[5, 5], strides=[2, 2], auto_pad=auto_pad,
                              group=16),
             helper.make_node("Conv", ["d", "wp"], ["y"])]
    graph = helper.make_graph(nodes, "pads", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 37, 30])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in t.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    feed = {"x": rng.standard_normal((2, 3, 37, 30)).astype(np.float32)}
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    sess = session(model)
    algos = [n.algorithm for n in sess.profile(feed, runs=1).nodes if n.op_type == "Conv"]
    assert algos == ["blocked-plain-direct", "blocked-depthwise", "blocked-pointwise"], algos
    got = sess.run(None, feed)[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
