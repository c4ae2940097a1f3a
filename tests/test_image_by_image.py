"""Image-by-image execution (SessionOptions.enable_image_by_image): at batch > 1
the leading steps run once per image. Each graph here is checked against
onnxruntime and against pycnn with it off, at batches 1-8, 1 and 2 threads,
on every ISA; with Concats in place inside the pass and crossing out of it,
residuals, squeeze-and-excitation, blocked chains, graph outputs made inside
the pass, a second input read after it, and ops that mix the batch."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import pycnn


def model_of(nodes, inits, inputs, outputs):
    init = [numpy_helper.from_array(np.asarray(v, np.float32), n) for n, v in inits.items()]
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs]
    graph = helper.make_graph(nodes, "g", ins, outs, init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def conv(rng, inits, name, x, y, cin, cout, k=3, stride=1, group=1):
    inits[name + "_w"] = rng.standard_normal((cout, cin // group, k, k)) / np.sqrt(cin // group * k * k)
    inits[name + "_b"] = rng.standard_normal(cout) * 0.1
    return helper.make_node("Conv", [x, name + "_w", name + "_b"], [y], name=name, kernel_shape=[k, k],
                            strides=[stride, stride], pads=[k // 2] * 4, group=group)


def resnet_like(c=17, h=48):
    """conv -> relu -> [conv -> relu -> conv + skip -> relu] -> strided conv ->
    pool -> a 3x3 with weights far outweighing its maps (ends the pass) ->
    global pool; a side output made inside the pass."""
    rng = np.random.default_rng(1)
    inits = {}
    nodes = [conv(rng, inits, "c0", "x", "a0", 3, c), helper.make_node("Relu", ["a0"], ["a1"]),
             conv(rng, inits, "c1", "a1", "b0", c, c), helper.make_node("Relu", ["b0"], ["b1"]),
             conv(rng, inits, "c2", "b1", "b2", c, c), helper.make_node("Add", ["b2", "a1"], ["b3"]),
             helper.make_node("Relu", ["b3"], ["side"]),
             conv(rng, inits, "c3", "side", "d0", c, 96, stride=2), helper.make_node("Relu", ["d0"], ["d1"]),
             helper.make_node("MaxPool", ["d1"], ["d2"], kernel_shape=[4, 4], strides=[4, 4]),
             conv(rng, inits, "c4", "d2", "e0", 96, 600), helper.make_node("GlobalAveragePool", ["e0"], ["y"])]
    return model_of(nodes, inits, [("x", ["N", 3, h, h])], ["y", "side"])


def densenet_like(c=16, growth=7, layers=4, h=40):
    """A dense block (each layer reads the Concat of every earlier map, placed in
    place), its last Concat also a graph output (crossing out of the pass),
    then pooled 1x1s, the last one's weights ending the pass."""
    rng = np.random.default_rng(2)
    inits = {}
    nodes = [conv(rng, inits, "stem", "x", "f0", 3, c)]
    feats, width = ["f0"], c
    for i in range(layers):
        cat = f"cat{i}"
        nodes.append(helper.make_node("Concat", list(feats), [cat], axis=1))
        nodes += [helper.make_node("Relu", [cat], [cat + "_r"]), conv(rng, inits, f"l{i}", cat + "_r", f"f{i + 1}", width, growth)]
        feats.append(f"f{i + 1}")
        width += growth
    nodes.append(helper.make_node("Concat", list(feats), ["block"], axis=1))
    nodes += [helper.make_node("AveragePool", ["block"], ["t0"], kernel_shape=[2, 2], strides=[2, 2]),
              conv(rng, inits, "t", "t0", "t1", width, 900, k=1), helper.make_node("Relu", ["t1"], ["t2"]),
              helper.make_node("GlobalAveragePool", ["t2"], ["t3"]), conv(rng, inits, "big", "t3", "y", 900, 300, k=1)]
    return model_of(nodes, inits, [("x", ["N", 3, h, h])], ["y", "block"])


def mobilenet_like(c=13, e=40, h=56):
    """1x1 expand -> depthwise -> squeeze-and-excitation -> 1x1 project + skip
    (a blocked chain), then Flatten and a Gemm on the whole batch."""
    rng = np.random.default_rng(3)
    inits = {"se1_w": rng.standard_normal((5, e, 1, 1)) / np.sqrt(e), "se1_b": rng.standard_normal(5),
             "se2_w": rng.standard_normal((e, 5, 1, 1)) / np.sqrt(5), "se2_b": rng.standard_normal(e),
             "fc_w": rng.standard_normal((c, 10)), "fc_b": rng.standard_normal(10)}
    nodes = [conv(rng, inits, "s", "x", "x0", 3, c), conv(rng, inits, "ex", "x0", "e0", c, e, k=1),
             helper.make_node("Clip", ["e0", "lo", "hi"], ["e1"]),
             conv(rng, inits, "dw", "e1", "d0", e, e, group=e), helper.make_node("Sigmoid", ["d0"], ["d1s"]),
             helper.make_node("Mul", ["d0", "d1s"], ["d1"]),
             helper.make_node("GlobalAveragePool", ["d1"], ["p"]), helper.make_node("Conv", ["p", "se1_w", "se1_b"], ["q"]),
             helper.make_node("Relu", ["q"], ["qr"]), helper.make_node("Conv", ["qr", "se2_w", "se2_b"], ["sq"]),
             helper.make_node("Sigmoid", ["sq"], ["s"]), helper.make_node("Mul", ["d1", "s"], ["ds"]),
             conv(rng, inits, "pj", "ds", "p0", e, c, k=1), helper.make_node("Add", ["p0", "x0"], ["p1"]),
             helper.make_node("GlobalAveragePool", ["p1"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"])]
    inits["lo"], inits["hi"] = np.array(0.0), np.array(6.0)
    return model_of(nodes, inits, [("x", ["N", 3, h, h])], ["y"])


def two_inputs(c=11, h=64):
    """A second input added after the pass; a per-channel constant and a
    per-image constant (dim 0 of 1) broadcast inside it."""
    rng = np.random.default_rng(4)
    inits = {"scale": rng.standard_normal((1, c, 1, 1)), "bias": rng.standard_normal((c, 1, 1))}
    nodes = [conv(rng, inits, "a", "x", "a0", 3, c), helper.make_node("Mul", ["a0", "scale"], ["a1"]),
             helper.make_node("Add", ["a1", "bias"], ["a2"]), conv(rng, inits, "b", "a2", "b0", c, c),
             helper.make_node("ReduceMean", ["b0"], ["m"], axes=[0], keepdims=1),
             helper.make_node("Sub", ["b0", "m"], ["b1"]), helper.make_node("Add", ["b1", "z"], ["y"])]
    return model_of(nodes, inits, [("x", ["N", 3, h, h]), ("z", ["N", c, h, h])], ["y"])


def maxpool_indices(c=9, h=64):
    """A MaxPool whose Indices (flat offsets into the whole batch) are an
    output: the pass stops before it."""
    rng = np.random.default_rng(5)
    inits = {}
    nodes = [conv(rng, inits, "a", "x", "a0", 3, c), helper.make_node("Relu", ["a0"], ["a1"]),
             conv(rng, inits, "b", "a1", "b0", c, c), helper.make_node("Relu", ["b0"], ["b1"]),
             helper.make_node("MaxPool", ["b1"], ["y", "idx"], kernel_shape=[2, 2], strides=[2, 2])]
    model = model_of(nodes, inits, [("x", ["N", 3, h, h])], ["y"])
    model.graph.output.append(helper.make_tensor_value_info("idx", TensorProto.INT64, None))
    return model


def low_rank_input(c=16, h=512):
    """A second input of rank 1 as long as the batch (8), broadcast along the
    last axis of a batched map: it is not split by image."""
    rng = np.random.default_rng(6)
    inits = {}
    nodes = [conv(rng, inits, "a", "x", "a0", 3, c), helper.make_node("Relu", ["a0"], ["a1"]),
             helper.make_node("Mul", ["a1", "z"], ["m"], name="mul"),   # element-wise
             conv(rng, inits, "b", "m", "b0", c, c), helper.make_node("Add", ["b0", "z"], ["y"])]  # a fused residual
    return model_of(nodes, inits, [("x", ["N", 3, h, 8]), ("z", [8])], ["y"])


def runtime_weights(c=8, h=96):
    """A Conv whose weights are a graph input with as many filters as the
    batch (8): they are shared by every image, not split by image."""
    rng = np.random.default_rng(7)
    inits = {}
    nodes = [conv(rng, inits, "a", "x", "a0", 3, c), helper.make_node("Relu", ["a0"], ["a1"]),
             helper.make_node("Conv", ["a1", "w"], ["y"], name="fed", kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    return model_of(nodes, inits, [("x", ["N", 3, h, h]), ("w", [8, c, 3, 3])], ["y"])


MODELS = {"maxpool_indices": maxpool_indices, "low_rank_input": low_rank_input, "runtime_weights": runtime_weights, "resnet_like": resnet_like, "densenet_like": densenet_like, "mobilenet_like": mobilenet_like,
          "two_inputs": two_inputs}


def feeds_of(model, batch, seed=0):
    rng = np.random.default_rng(seed + batch)
    out = {}
    for i in model.graph.input:
        dims = [d.dim_value or batch for d in i.type.tensor_type.shape.dim]
        out[i.name] = rng.standard_normal(dims).astype(np.float32)
    return out


def session(model, on=True, threads=1):
    o = pycnn.SessionOptions()
    o.intra_op_num_threads = threads
    o.enable_image_by_image = on
    return pycnn.InferenceSession(model.SerializeToString(), o)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("threads", [1, 2])
def test_matches_onnxruntime_and_the_batched_run(name, threads, isa):
    model = MODELS[name]()
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    on, off = session(model, True, threads), session(model, False, threads)
    for batch in (3, 1, 8, 2):  # one session, plans for several batch sizes
        feeds = feeds_of(model, batch)
        want = ref.run(None, feeds)
        got_on, got_off = on.run(None, feeds), off.run(None, feeds)
        for w, a, b in zip(want, got_on, got_off):
            assert a.shape == w.shape
            if a.dtype == np.int64:
                np.testing.assert_array_equal(a, w)
                np.testing.assert_array_equal(a, b)
                continue
            np.testing.assert_allclose(a, w, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(set(MODELS) - {"low_rank_input", "runtime_weights"}))
def test_leading_steps_go_image_by_image(name):
    model = MODELS[name]()
    sess = session(model)
    nodes = sess.profile(feeds_of(model, 4), runs=1, warmup=0).nodes
    per_image = [n.images for n in nodes]
    k = sum(1 for i in per_image if i > 1)
    assert k >= 2, [(n.name, n.images) for n in nodes]
    assert per_image[:k] == [4] * k and set(per_image[k:]) <= {1}  # a prefix, then the batch
    assert nodes[0].output_shapes[0][0] == 4  # the profile shows the batch's shapes
    assert all(n.images == 1 for n in sess.profile(feeds_of(model, 1), runs=1, warmup=0).nodes)
    assert all(n.images == 1 for n in session(model, on=False).profile(feeds_of(model, 4), runs=1, warmup=0).nodes)


def test_the_pass_stops_at_heavy_weights_and_at_batch_mixing_ops():
    nodes = session(resnet_like()).profile(feeds_of(resnet_like(), 4), runs=1, warmup=0).nodes
    assert {n.name: n.images for n in nodes}["c4"] == 1  # 600 x 96 x 3 x 3 weights, small maps
    nodes = session(two_inputs()).profile(feeds_of(two_inputs(), 4), runs=1, warmup=0).nodes
    images = {n.op_type: n.images for n in nodes}
    assert images["ReduceMean"] == 1 and images["Sub"] == 1
    nodes = session(maxpool_indices()).profile(feeds_of(maxpool_indices(), 4), runs=1, warmup=0).nodes
    assert {n.op_type: n.images for n in nodes}["MaxPool"] == 1
    nodes = session(low_rank_input()).profile(feeds_of(low_rank_input(), 8), runs=1, warmup=0).nodes
    images = {n.name or n.op_type: n.images for n in nodes}
    assert images["a"] == 8 and images["mul"] == 1 and images["b"] == 1, images  # b took the Add
    nodes = session(runtime_weights()).profile(feeds_of(runtime_weights(), 8), runs=1, warmup=0).nodes
    images = {n.name: n.images for n in nodes}
    assert images["a"] == 8 and images["fed"] == 1, images


def test_profile_counts_every_image_once_per_run():
    model = mobilenet_like()
    sess = session(model)
    prof = sess.profile(feeds_of(model, 4), runs=3, warmup=1)
    assert all(0 < n.last_ms for n in prof.nodes if n.images > 1)
    assert "image by image" in prof.table()
    batched = session(model, on=False).profile(feeds_of(model, 4), runs=3, warmup=1)
    flops = {n.name: n.gflops * n.ms for n in batched.nodes}
    for n in prof.nodes:  # the same work per run, whichever way it went
        assert n.gflops * n.ms == pytest.approx(flops[n.name], rel=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_threads_give_identical_results(name):
    # Batch 4: 2 threads take the images side by side; 5: one after another,
    # each image's steps split between the threads.
    model = MODELS[name]()
    one, two = session(model, threads=1), session(model, threads=2)
    for batch in (4, 5):
        feeds = feeds_of(model, batch)
        for a, b in zip(one.run(None, feeds), two.run(None, feeds)):
            np.testing.assert_array_equal(a, b)
