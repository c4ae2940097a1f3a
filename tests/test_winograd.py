"""Winograd F(4x4, 3x3) and F(2x2, 3x3) against a float64 reference and against direct
convolution (enable_winograd=False): odd channel counts, maps that are not
multiples of 4, batches, bias, residual and activation, every ISA."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import pycnn


def conv3x3_reference(x, w, b):
    n, c, h, wd = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,mc->nmhw", xp[:, :, i:i + h, j:j + wd], w[:, :, i, j].astype(np.float64))
    return out + b[None, :, None, None]


def model(c, m, relu):
    rng = np.random.default_rng(c * 7 + m)
    w = (rng.standard_normal((m, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    out = "y"
    if relu:
        nodes.append(helper.make_node("Relu", ["y"], ["z"]))
        out = "z"
    graph = helper.make_graph(
        nodes, "w", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, "H", "W"])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), w, b




def session(m, winograd, threads=1, image_by_image=True):
    o = pycnn.SessionOptions()
    o.intra_op_num_threads = threads
    o.enable_winograd = winograd
    o.enable_image_by_image = image_by_image
    return pycnn.InferenceSession(m, o)


# (input channels, output channels, batch, height, width, the tile pycnn picks):
# F4 where there are >= 49 4x4 tiles over the batch, else F2 (>= 16 tiles),
# and F2 where F4's transformed weights would pass its cap, even on a 7x7
# map with 16 MB of them (ResNet's 512-channel layers); the work runs in
# blocks of >= 196 tiles.
WINOGRAD_CASES = [(1, 3, 1, 28, 28, 4), (3, 7, 1, 29, 31, 4), (17, 33, 1, 57, 30, 4), (33, 17, 3, 28, 28, 4),
                  (16, 16, 4, 14, 14, 4), (7, 64, 2, 30, 27, 4), (5, 9, 1, 14, 14, 2), (19, 13, 1, 7, 7, 2),
                  (3, 5, 3, 9, 11, 2), (17, 33, 2, 13, 7, 2), (257, 229, 1, 28, 28, 2), (512, 512, 1, 7, 7, 2),
                  (5, 6, 3, 60, 61, 4)]  # the last: blocks of 13 tile rows, most spanning two images


@pytest.mark.parametrize("c,m,n,h,w,tile", WINOGRAD_CASES)
@pytest.mark.parametrize("threads", [1, 2])
def test_winograd_matches_reference(c, m, n, h, w, tile, threads, isa):
    mdl, wt, b = model(c, m, relu=True)
    x = np.random.default_rng(h * w).standard_normal((n, c, h, w)).astype(np.float32)
    sess = session(mdl, True, threads)
    got = sess.run(None, {"x": x})[0]
    assert sess.profile({"x": x}, runs=1, warmup=0).nodes[0].algorithm == f"winograd-f{tile}x3+act"
    ref = np.maximum(conv3x3_reference(x, wt, b), 0)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("c,m,n,h,w,tile", [(3, 8, 8, 96, 96, 4), (5, 6, 3, 60, 61, 4), (3, 5, 3, 9, 11, 2)])
def test_batch_gives_the_bits_of_its_images(c, m, n, h, w, tile, isa):
    """Blocks of tile rows span images, so a tile's place in a block depends
    on the batch; every tile runs the same vector code (a partial last vector
    too), so a batch's outputs are bit for bit those of its images one at a
    time (96x96: 24 tiles a row, not a multiple of AVX-512's 16 lanes)."""
    mdl, _, _ = model(c, m, relu=False)
    x = np.random.default_rng(n).standard_normal((n, c, h, w)).astype(np.float32)
    sess = session(mdl, True, image_by_image=False)
    assert sess.profile({"x": x}, runs=1, warmup=0).nodes[0].algorithm == f"winograd-f{tile}x3"
    one_by_one = np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(n)])
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], one_by_one)


@pytest.mark.parametrize("size,bound", [(56, 32), (14, 4)])
def test_winograd_error_is_a_few_times_direct(size, bound):
    """The stated accuracy (docs/architecture.md), 64 channels: at 56x56 (F4)
    Winograd's max error is about 16x direct convolution's, at 14x14 (F2)
    about half of it (both against a float64 reference); the bounds here are
    32x and 4x, and 2e-5 of the output range."""
    mdl, wt, b = model(64, 64, relu=False)
    x = np.random.default_rng(0).standard_normal((1, 64, size, size)).astype(np.float32)
    ref = conv3x3_reference(x, wt, b)
    err_w = np.abs(session(mdl, True).run(None, {"x": x})[0] - ref).max()
    err_d = np.abs(session(mdl, False).run(None, {"x": x})[0] - ref).max()
    assert err_w <= bound * err_d, (err_w, err_d)
    assert err_w / np.abs(ref).max() < 2e-5, err_w / np.abs(ref).max()


def test_switch_off_gives_direct_convolution():
    mdl, _, _ = model(8, 8, relu=False)
    x = np.ones((1, 8, 28, 28), np.float32)
    algos = [n.algorithm for n in session(mdl, False).profile({"x": x}, runs=1, warmup=0).nodes]
    assert algos == ["indirect-gemm"]


@pytest.mark.parametrize("c,m,plans", [
    (16, 24, [(1, 14, 14, 2), (4, 14, 14, 4), (1, 14, 14, 2), (2, 28, 28, 4)]),  # both tiles, either first
    (257, 229, [(1, 28, 28, 2), (1, 5, 5, 0), (2, 7, 7, 2)]),  # F2 only: the original weights go after it
])
def test_one_session_across_tile_sizes(c, m, plans):
    """Plans for other input sizes pick other tiles (0: indirect GEMM) from the
    same session; the weight transforms made for earlier plans stay right."""
    mdl, wt, b = model(c, m, relu=False)
    sess = session(mdl, True)
    for n, h, w, tile in plans:
        x = np.random.default_rng(h * n).standard_normal((n, c, h, w)).astype(np.float32)
        got = sess.run(None, {"x": x})[0]
        algo = sess.profile({"x": x}, runs=1, warmup=0).nodes[0].algorithm
        assert algo == (f"winograd-f{tile}x3" if tile else "indirect-gemm"), (n, h, w, algo)
        ref = conv3x3_reference(x, wt, b)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
