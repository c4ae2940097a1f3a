"""Whole architectures (built with random weights by pycnn.zoo) against
onnxruntime: relative L2 error <= 1e-4 and identical top-1, at batch 1 and 3,
with 1 and 2 threads, on every ISA path this CPU has."""
import functools

import numpy as np
import onnxruntime as ort
import pytest

import pycnn
from pycnn import zoo


@functools.lru_cache(maxsize=None)
def model(name):
    return zoo.build(name)


@functools.lru_cache(maxsize=None)
def reference(name, batch):
    x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    sess = ort.InferenceSession(model(name).SerializeToString(), providers=["CPUExecutionProvider"])
    return x, sess.run(None, {"input": x})[0]




@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_model_matches_onnxruntime(name, threads, isa):
    options = pycnn.SessionOptions()
    options.intra_op_num_threads = threads
    sess = pycnn.InferenceSession(model(name), options)
    assert sess.num_threads == threads
    for batch in (1, 3):
        x, want = reference(name, batch)
        (got,) = sess.run(None, {"input": x})
        assert got.shape == want.shape == (batch, 1000)
        rel = np.linalg.norm(got - want) / np.linalg.norm(want)
        assert rel <= 1e-4, f"{name} batch {batch} on {isa}, {threads} threads: relative L2 error {rel:.2e}"
        np.testing.assert_array_equal(got.argmax(1), want.argmax(1))


def test_optimizations_are_applied():
    """Batch norms fold into convolutions and activations fuse into them."""
    sess = pycnn.InferenceSession(model("resnet18"))
    ops = [op for _, op, _ in sess.optimized_nodes()]
    assert "BatchNormalization" not in ops
    # ResNet-18: every ReLU goes into a convolution: the stem's and each block's
    # first (9), and the 8 after residual Adds, which fuse into the block's last conv.
    assert sum(1 for _, op, fused in sess.optimized_nodes() if op == "Conv" and fused) == 17
    assert "Relu" not in ops and "Add" not in ops
    plain = pycnn.SessionOptions()
    plain.graph_optimization_level = pycnn.GraphOptimizationLevel.ORT_DISABLE_ALL
    unoptimized = pycnn.InferenceSession(model("resnet18"), plain)
    assert "BatchNormalization" in [op for _, op, _ in unoptimized.optimized_nodes()]
    x, _ = reference("resnet18", 1)
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], unoptimized.run(None, {"input": x})[0],
                               rtol=1e-4, atol=1e-4)
