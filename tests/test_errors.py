"""Bad input always gets a clear, typed error: never a crash, abort or hang.

Covers load-time errors (unsupported operators and attributes, malformed
files and graphs, too-new opsets), run-time input errors (names, dtypes,
ranks, shapes, sizes the model cannot take), input layouts (non-contiguous
views must work), SessionOptions / providers / set_isa misuse, and that a
failed run leaves the session usable.

Cases where a bug could kill the interpreter (corrupt files, empty batches)
run in a child process, so a segfault or SIGFPE shows up as a negative
return code instead of taking pytest down.
"""
from __future__ import annotations

import faulthandler
import os
import re
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

import pycnn

OPSET = 17
IR_VERSION = 8
REPO_ROOT = Path(pycnn.__file__).resolve().parent.parent
SUBPROCESS_TIMEOUT = 60


# -- hang guard ------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _no_hang():
    """A test that hangs dumps every thread's stack and ends the run instead of blocking forever."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


# -- model builders ----------------------------------------------------------------
def make_model(nodes, inputs, outputs, initializers=(), opsets=None) -> onnx.ModelProto:
    graph = h.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return h.make_model(graph, opset_imports=opsets or [h.make_opsetid("", OPSET)], ir_version=IR_VERSION)


def x_info(shape=("N", 3, 8, 8), elem=TP.FLOAT, name="x"):
    return h.make_tensor_value_info(name, elem, list(shape))


def out_info(name="y"):
    return h.make_tensor_value_info(name, TP.FLOAT, None)


_rng = np.random.default_rng(1234)
W = _rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
B = _rng.standard_normal(4).astype(np.float32)


def conv_model(x_shape=("N", 3, 8, 8), pads=(1, 1, 1, 1), conv_name="conv0") -> onnx.ModelProto:
    """x [N, 3, 8, 8] float32 -> Conv 3x3 (4 channels) -> Relu -> y."""
    kw = {"pads": list(pads)} if pads is not None else {}
    nodes = [
        h.make_node("Conv", ["x", "W", "B"], ["c"], name=conv_name, **kw),
        h.make_node("Relu", ["c"], ["y"], name="relu0"),
    ]
    return make_model(nodes, [x_info(x_shape)], [out_info()], [nh.from_array(W, "W"), nh.from_array(B, "B")])


def conv_ref(x: np.ndarray, pad: int = 1, relu: bool = True) -> np.ndarray:
    """Reference for conv_model: Relu(Conv(x, W, B)) in float64 (relu=False: the Conv alone)."""
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, W.shape[2:], axis=(2, 3))  # N, C, H', W', kh, kw
    y = np.einsum("nchwij,ocij->nohw", win, W.astype(np.float64)) + B[None, :, None, None]
    return np.maximum(y, 0.0) if relu else y


def assert_matches_ref(y: np.ndarray, x: np.ndarray):
    ref = conv_ref(x)
    assert y.shape == ref.shape
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def conv_session():
    return pycnn.InferenceSession(conv_model())


@pytest.fixture
def good_x():
    return np.random.default_rng(7).standard_normal((2, 3, 8, 8)).astype(np.float32)


# -- child-process harness -------------------------------------------------------------
_CHILD_PRELUDE = """
import sys, numpy as np, pycnn
def attempt(label, fn):
    try:
        r = fn()
        shapes = [getattr(a, "shape", None) for a in r] if isinstance(r, list) else None
        print(f"@@{label}|OK|{shapes}", flush=True)
    except BaseException as e:
        msg = str(e).replace("\\n", " ")
        print(f"@@{label}|{type(e).__name__}|{msg}", flush=True)
"""


def run_isolated(body: str) -> dict:
    """Runs `body` (after _CHILD_PRELUDE) in a fresh interpreter; returns {label: (outcome, message)}.

    Asserts the child exited normally: a crash (segfault, abort, SIGFPE) gives a
    negative return code and fails here with the child's output.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    code = _CHILD_PRELUDE + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
                          env=env, cwd=str(REPO_ROOT))
    if proc.returncode < 0:
        try:
            how = f"killed by {signal.Signals(-proc.returncode).name}"
        except ValueError:
            how = f"killed by signal {-proc.returncode}"
    else:
        how = f"exit code {proc.returncode}"
    assert proc.returncode == 0, f"child process crashed ({how})\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            label, outcome, msg = line[2:].split("|", 2)
            results[label] = (outcome, msg)
    return results


# ==================================================================================
# 1. Unsupported operators: one error listing every node
# ==================================================================================
def unsupported_ops_model() -> onnx.ModelProto:
    """Every unsupported node lies on the path to the output, so none can be pruned as dead."""
    nodes = [
        h.make_node("Relu", ["x"], ["a"], name="relu_ok"),
        h.make_node("TopK", ["a", "k"], ["topv", "topi"], name="my_topk", axis=-1),
        h.make_node("NonMaxSuppression", ["boxes", "scores"], ["sel"], name="my_nms"),
        h.make_node("FooBar", ["topv", "sel"], ["f"], name="my_foobar"),
        h.make_node("Frobnicate", ["f"], ["y"], name="my_custom", domain="com.example"),
    ]
    inputs = [x_info(), x_info((1, 5, 4), name="boxes"), x_info((1, 1, 5), name="scores")]
    inits = [nh.from_array(np.array([2], np.int64), "k")]
    opsets = [h.make_opsetid("", OPSET), h.make_opsetid("com.example", 3)]
    return make_model(nodes, inputs, [out_info()], inits, opsets)


def test_unsupported_ops_reported_together():
    with pytest.raises(pycnn.UnsupportedModelError) as info:
        pycnn.InferenceSession(unsupported_ops_model())
    e = info.value
    assert isinstance(e, NotImplementedError) and isinstance(e, pycnn.PycnnError)
    msg = str(e)
    assert re.search(r"\b4 node\(s\)", msg), msg
    expected = [("my_topk", "TopK", 17), ("my_nms", "NonMaxSuppression", 17), ("my_foobar", "FooBar", 17),
                ("my_custom", "Frobnicate", 3)]
    lines = msg.splitlines()
    for name, op_type, opset in expected:
        hits = [ln for ln in lines if f"'{name}'" in ln]
        assert hits, f"node {name} missing from:\n{msg}"
        assert f"op_type={op_type}" in hits[0] and f"opset={opset}" in hits[0], hits[0]
    # The supported node is not listed; the custom domain is named.
    assert "relu_ok" not in msg
    assert "com.example" in msg


def test_unsupported_ops_same_error_from_bytes_and_path(tmp_path):
    model = unsupported_ops_model()
    path = tmp_path / "unsupported.onnx"
    onnx.save(model, str(path))
    msgs = []
    for src in (model.SerializeToString(), str(path), path):
        with pytest.raises(pycnn.UnsupportedModelError) as info:
            pycnn.InferenceSession(src)
        msgs.append(str(info.value))
    assert msgs[0] == msgs[1] == msgs[2]


def test_unsupported_error_is_raised_once_not_per_node():
    # Exactly one exception object: the first unsupported node must not stop the scan.
    try:
        pycnn.InferenceSession(unsupported_ops_model())
    except pycnn.UnsupportedModelError as e:
        assert all(n in str(e) for n in ("my_topk", "my_nms", "my_foobar", "my_custom"))
    else:
        pytest.fail("no error raised")


def test_unsupported_tensor_types():
    with pytest.raises(pycnn.UnsupportedModelError, match=r"initializer 'c'.*FLOAT16"):
        pycnn.InferenceSession(make_model([h.make_node("Add", ["x", "c"], ["y"], name="add")], [x_info()], [out_info()],
                                          [nh.from_array(np.ones(1, np.float16), "c")]))
    with pytest.raises(pycnn.UnsupportedModelError, match=r"graph input 'x'.*float16"):
        pycnn.InferenceSession(make_model([h.make_node("Relu", ["x"], ["y"], name="r")],
                                          [x_info(elem=TP.FLOAT16)], [out_info()]))



def test_conv_weights_of_another_float_type_are_named():
    """float64 weights on a float32 input: the error names both dtypes and
    the fix (it said "only float32 is supported, got float32")."""
    model = make_model([h.make_node("Conv", ["x", "w"], ["y"], name="c", kernel_shape=[3, 3])], [x_info((1, 3, 8, 8))],
                       [out_info()], [nh.from_array(np.ones((4, 3, 3, 3)), "w")])
    with pytest.raises(pycnn.UnsupportedModelError, match=r"node 'c'.*input float32 and weights float64.*cast"):
        pycnn.InferenceSession(model).run(None, {"x": np.ones((1, 3, 8, 8), np.float32)})

# ==================================================================================
# 2. Bad attributes, reported in the same one-error style
# ==================================================================================
def test_bad_attributes_reported_together():
    nodes = [
        h.make_node("Conv", ["x", "W"], ["c"], name="conv_bad", auto_pad="WRONG"),
        h.make_node("Pad", ["c", "pads"], ["p"], name="pad_bad", mode="bogus"),
        h.make_node("Resize", ["p", "", "scales"], ["y"], name="resize_bad", mode="cubic"),
    ]
    inits = [nh.from_array(W, "W"), nh.from_array(np.zeros(8, np.int64), "pads"),
             nh.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    with pytest.raises(pycnn.UnsupportedModelError) as info:
        pycnn.InferenceSession(make_model(nodes, [x_info()], [out_info()], inits))
    msg = str(info.value)
    assert re.search(r"\b3 node\(s\)", msg), msg
    lines = msg.splitlines()
    for name, op_type, bad in [("conv_bad", "Conv", "WRONG"), ("pad_bad", "Pad", "bogus"),
                               ("resize_bad", "Resize", "cubic")]:
        hits = [ln for ln in lines if f"'{name}'" in ln]
        assert hits, f"node {name} missing from:\n{msg}"
        assert f"op_type={op_type}" in hits[0] and f"opset={OPSET}" in hits[0] and f"'{bad}'" in hits[0], hits[0]


@pytest.mark.parametrize("op,attrs,needle", [
    ("Conv", {"auto_pad": "WRONG"}, "auto_pad 'WRONG'"),
    ("Pad", {"mode": "bogus"}, "mode 'bogus'"),
    ("Resize", {"mode": "cubic"}, "mode 'cubic'"),
])
def test_single_bad_attribute(op, attrs, needle):
    inputs = {"Conv": ["x", "W"], "Pad": ["x", "pads"], "Resize": ["x", "", "scales"]}[op]
    inits = [nh.from_array(W, "W"), nh.from_array(np.zeros(8, np.int64), "pads"),
             nh.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    inits = [t for t in inits if t.name in inputs]
    model = make_model([h.make_node(op, inputs, ["y"], name="the_node", **attrs)], [x_info()], [out_info()], inits)
    with pytest.raises(pycnn.UnsupportedModelError) as info:
        pycnn.InferenceSession(model)
    msg = str(info.value)
    assert "'the_node'" in msg and f"op_type={op}" in msg and f"opset={OPSET}" in msg and needle in msg, msg


# ==================================================================================
# 3. Malformed files and graphs
# ==================================================================================
def test_missing_path(tmp_path):
    missing = tmp_path / "does_not_exist.onnx"
    with pytest.raises(FileNotFoundError, match="does_not_exist.onnx"):
        pycnn.InferenceSession(str(missing))
    with pytest.raises(FileNotFoundError, match="does_not_exist.onnx"):
        pycnn.InferenceSession(missing)


def test_directory(tmp_path):
    with pytest.raises(pycnn.InvalidModelError, match="directory"):
        pycnn.InferenceSession(str(tmp_path))


def test_empty_file_and_bytes(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(pycnn.InvalidModelError, match="no graph"):
        pycnn.InferenceSession(str(empty))
    with pytest.raises(pycnn.InvalidModelError, match="no graph"):
        pycnn.InferenceSession(b"")


def test_text_file(tmp_path):
    txt = tmp_path / "model.onnx"
    txt.write_text('{"this": "is JSON, not an ONNX protobuf", "layers": [1, 2, 3]}\n' * 20)
    with pytest.raises(pycnn.InvalidModelError) as info:
        pycnn.InferenceSession(str(txt))
    assert isinstance(info.value, ValueError)
    assert "model.onnx" in str(info.value) or "no graph" in str(info.value), str(info.value)


def test_bad_model_argument_type():
    with pytest.raises(TypeError, match="path, bytes or onnx.ModelProto"):
        pycnn.InferenceSession(12345)


def test_truncated_and_random_bytes_in_subprocess(tmp_path):
    data = conv_model().SerializeToString()
    (tmp_path / "half.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "random.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "full.bin").write_bytes(data)
    results = run_isolated(f"""
        from pathlib import Path
        d = Path({str(tmp_path)!r})
        data = (d / "full.bin").read_bytes()
        attempt("half_bytes", lambda: pycnn.InferenceSession(data[: len(data) // 2]))
        attempt("half_path", lambda: pycnn.InferenceSession(str(d / "half.onnx")))
        attempt("random_bytes", lambda: pycnn.InferenceSession((d / "random.onnx").read_bytes()))
        attempt("random_path", lambda: pycnn.InferenceSession(str(d / "random.onnx")))
        attempt("full_ok", lambda: pycnn.InferenceSession(data).run(None, {{"x": np.ones((1, 3, 8, 8), np.float32)}}))
    """)
    for label in ("half_bytes", "half_path", "random_bytes", "random_path"):
        outcome, msg = results[label]
        assert outcome == "InvalidModelError", (label, outcome, msg)
        assert msg, label
    assert results["half_path"][1].find("half.onnx") >= 0, results["half_path"]
    assert results["full_ok"][0] == "OK", results["full_ok"]


def test_every_truncation_and_many_random_blobs_never_crash():
    """Cut a valid model at every byte and feed 200 random blobs: each gives a pycnn error or loads, never a crash."""
    data = conv_model().SerializeToString()
    results = run_isolated(f"""
        data = {data!r}
        for cut in range(len(data)):
            attempt(f"cut{{cut}}", lambda: pycnn.InferenceSession(data[:cut]))
        for seed in range(200):
            r = np.random.default_rng(seed)
            blob = r.bytes(int(r.integers(1, 3000)))
            attempt(f"rand{{seed}}", lambda: pycnn.InferenceSession(blob))
    """)
    assert len(results) == len(data) + 200
    allowed = {"OK", "InvalidModelError", "UnsupportedModelError"}
    bad = {k: v for k, v in results.items() if v[0] not in allowed}
    assert not bad, bad
    # The half-way cut lands inside the weights: always a clear InvalidModelError.
    assert results[f"cut{len(data) // 2}"][0] == "InvalidModelError"
    assert all(results[f"rand{s}"][0] == "InvalidModelError" for s in range(200))


def test_output_not_produced_from_bytes():
    model = make_model([h.make_node("Relu", ["x"], ["y"], name="r")], [x_info()], [out_info("y"), out_info("ghost")])
    with pytest.raises(pycnn.InvalidModelError, match=r"graph output 'ghost'.*not produced"):
        pycnn.InferenceSession(model.SerializeToString())


def test_cycle():
    nodes = [h.make_node("Add", ["x", "c"], ["b"], name="add_cyc"), h.make_node("Relu", ["b"], ["c"], name="relu_cyc")]
    with pytest.raises(pycnn.InvalidModelError, match="cycle"):
        pycnn.InferenceSession(make_model(nodes, [x_info()], [out_info("c")]))


def test_undefined_value():
    nodes = [h.make_node("Add", ["x", "nowhere"], ["y"], name="add_undef")]
    with pytest.raises(pycnn.InvalidModelError) as info:
        pycnn.InferenceSession(make_model(nodes, [x_info()], [out_info()]))
    msg = str(info.value)
    assert "'add_undef'" in msg and "'nowhere'" in msg, msg


def test_value_produced_twice_and_constant_without_value():
    nodes = [h.make_node("Relu", ["x"], ["y"], name="first"), h.make_node("Sigmoid", ["x"], ["y"], name="second")]
    with pytest.raises(pycnn.InvalidModelError, match=r"'y'.*two nodes.*'first'.*'second'"):
        pycnn.InferenceSession(make_model(nodes, [x_info()], [out_info()]))
    nodes = [h.make_node("Constant", [], ["k"], name="const_empty"), h.make_node("Add", ["x", "k"], ["y"], name="a")]
    with pytest.raises(pycnn.InvalidModelError, match=r"'const_empty'.*no value"):
        pycnn.InferenceSession(make_model(nodes, [x_info()], [out_info()]))


# ==================================================================================
# 4. run() input errors
# ==================================================================================
def test_unknown_input_name(conv_session, good_x):
    with pytest.raises(pycnn.InvalidArgumentError) as info:
        conv_session.run(None, {"input": good_x})
    msg = str(info.value)
    assert "'input'" in msg and "'x'" in msg and "unknown input" in msg, msg
    # An extra, unknown name next to the right one is reported too.
    with pytest.raises(pycnn.InvalidArgumentError, match=r"unknown input name 'extra'.*'x'"):
        conv_session.run(None, {"x": good_x, "extra": good_x})


def test_missing_input(conv_session):
    with pytest.raises(pycnn.InvalidArgumentError, match=r"missing input 'x'"):
        conv_session.run(None, {})


def test_wrong_dtype_float64(conv_session, good_x):
    with pytest.raises(pycnn.InvalidArgumentError) as info:
        conv_session.run(None, {"x": good_x.astype(np.float64)})
    msg = str(info.value)
    assert "'x'" in msg and "float64" in msg and "float32" in msg and "astype(np.float32)" in msg, msg


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_wrong_dtype_int(conv_session, good_x, dtype):
    with pytest.raises(pycnn.InvalidArgumentError) as info:
        conv_session.run(None, {"x": good_x.astype(dtype)})
    msg = str(info.value)
    assert "'x'" in msg and np.dtype(dtype).name in msg and "float32" in msg and "astype(np.float32)" in msg, msg


@pytest.mark.parametrize("dtype", [np.float16, np.uint16, np.complex64])
def test_dtype_pycnn_cannot_hold(conv_session, good_x, dtype):
    with pytest.raises(pycnn.InvalidArgumentError) as info:
        conv_session.run(None, {"x": good_x.astype(dtype)})
    msg = str(info.value)
    assert np.dtype(dtype).name in msg and "float32" in msg, msg


def test_dtype_pycnn_cannot_hold_names_the_input(conv_session, good_x):
    # The message must say which input is wrong (a model can have several).
    with pytest.raises(pycnn.InvalidArgumentError) as info:
        conv_session.run(None, {"x": good_x.astype(np.float16)})
    assert "'x'" in str(info.value), str(info.value)


@pytest.mark.parametrize("shape,rank", [((3, 8, 8), 3), ((1, 2, 3, 8, 8), 5), ((), 0)])
def test_wrong_rank(conv_session, shape, rank):
    with pytest.raises(pycnn.InvalidArgumentError) as info:
        conv_session.run(None, {"x": np.zeros(shape, np.float32)})
    msg = str(info.value)
    assert "'x'" in msg and f"rank {rank}" in msg and "rank 4" in msg and "(N, 3, 8, 8)" in msg, msg


def test_wrong_fixed_dim(conv_session):
    with pytest.raises(pycnn.InvalidArgumentError) as info:
        conv_session.run(None, {"x": np.zeros((2, 4, 8, 8), np.float32)})
    msg = str(info.value)
    assert "'x'" in msg and "(2, 4, 8, 8)" in msg and "(N, 3, 8, 8)" in msg and "dim 1 must be 3" in msg, msg
    with pytest.raises(pycnn.InvalidArgumentError, match=r"'x'.*\(2, 3, 9, 8\).*dim 2 must be 8"):
        conv_session.run(None, {"x": np.zeros((2, 3, 9, 8), np.float32)})


def test_kernel_larger_than_input():
    sess = pycnn.InferenceSession(conv_model(("N", 3, "H", "W"), pads=None, conv_name="conv_nopad"))
    assert sess.run(None, {"x": np.ones((1, 3, 3, 3), np.float32)})[0].shape == (1, 4, 1, 1)
    with pytest.raises(pycnn.InvalidArgumentError) as info:
        sess.run(None, {"x": np.ones((1, 3, 2, 2), np.float32)})
    msg = str(info.value)
    assert "'conv_nopad'" in msg and "Conv" in msg and "kernel" in msg and "3" in msg and "(2)" in msg, msg


def reshape_model():
    """x [N, 3, H, W] -> Conv (same) -> Reshape to (-1, 256): only H * W == 64 works."""
    nodes = [
        h.make_node("Conv", ["x", "W", "B"], ["c"], name="conv0", pads=[1, 1, 1, 1]),
        h.make_node("Reshape", ["c", "shape"], ["y"], name="flatten_fixed"),
    ]
    inits = [nh.from_array(W, "W"), nh.from_array(B, "B"), nh.from_array(np.array([-1, 256], np.int64), "shape")]
    return make_model(nodes, [x_info(("N", 3, "H", "W"))], [out_info()], inits)


def test_spatial_size_fixed_reshape():
    sess = pycnn.InferenceSession(reshape_model())
    assert sess.run(None, {"x": np.ones((2, 3, 8, 8), np.float32)})[0].shape == (2, 256)
    with pytest.raises(pycnn.InvalidArgumentError) as info:
        sess.run(None, {"x": np.ones((2, 3, 7, 7), np.float32)})
    msg = str(info.value)
    assert "'flatten_fixed'" in msg and "Reshape" in msg and "(2, 4, 7, 7)" in msg and "256" in msg, msg


def test_input_feed_not_a_dict(conv_session, good_x):
    with pytest.raises(pycnn.InvalidArgumentError, match=r"input_feed must be a dict.*got list"):
        conv_session.run(None, [good_x])
    with pytest.raises(pycnn.InvalidArgumentError, match=r"input_feed must be a dict.*got ndarray"):
        conv_session.run(None, good_x)
    with pytest.raises(pycnn.InvalidArgumentError, match=r"input names must be strings"):
        conv_session.run(None, {0: good_x})


def test_unknown_output_name(conv_session, good_x):
    with pytest.raises(pycnn.InvalidArgumentError) as info:
        conv_session.run(["logits"], {"x": good_x})
    msg = str(info.value)
    assert "'logits'" in msg and "'y'" in msg and "unknown output" in msg, msg


def test_list_input_gives_clear_dtype_error(conv_session, good_x):
    # A nested Python list becomes a float64 array: a clear dtype error, not a silent cast or a crash.
    with pytest.raises(pycnn.InvalidArgumentError) as info:
        conv_session.run(None, {"x": good_x.tolist()})
    msg = str(info.value)
    assert "'x'" in msg and "float64" in msg and "astype(np.float32)" in msg, msg
    # Ragged lists / non-numeric objects are rejected clearly too.
    with pytest.raises(pycnn.InvalidArgumentError, match=r"'x'.*not a numeric array"):
        conv_session.run(None, {"x": None})


def _empty_batch_model(kind: str) -> onnx.ModelProto:
    if kind == "conv":
        return conv_model()
    # ConvTranspose 3 -> 4 channels, 3x3, stride 1: [N, 3, 8, 8] -> [N, 4, 10, 10]
    wt = nh.from_array(np.ones((3, 4, 3, 3), np.float32), "WT")
    return make_model([h.make_node("ConvTranspose", ["x", "WT"], ["y"], name="deconv0")], [x_info()], [out_info()], [wt])


@pytest.mark.parametrize("kind,out_shape", [("conv", (4, 8, 8)), ("conv_transpose", (4, 10, 10))])
def test_empty_batch_does_not_crash(kind, out_shape):
    """N = 0 (symbolic batch): either an empty result or an InvalidArgumentError, never a signal."""
    data = _empty_batch_model(kind).SerializeToString()
    results = run_isolated(f"""
        sess = pycnn.InferenceSession({data!r})
        attempt("empty_batch", lambda: sess.run(None, {{"x": np.zeros((0, 3, 8, 8), np.float32)}}))
        attempt("after", lambda: sess.run(None, {{"x": np.zeros((1, 3, 8, 8), np.float32)}}))
    """)
    outcome, msg = results["empty_batch"]
    assert outcome == "InvalidArgumentError" or (outcome == "OK" and msg == str([(0, *out_shape)])), (outcome, msg)
    assert results["after"] == ("OK", str([(1, *out_shape)]))


# ==================================================================================
# 5. Non-contiguous inputs
# ==================================================================================
def _layouts():
    rng = np.random.default_rng(3)
    big = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    base = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    hwcn = rng.standard_normal((8, 8, 3, 2)).astype(np.float32)
    batch4 = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    return {
        "strided_view": big[:, :, ::2, ::2],
        "fortran": np.asfortranarray(base),
        "transposed": hwcn.transpose(3, 2, 0, 1),
        "negative_strides": base[:, ::-1, :, ::-1],
        "batch_step": batch4[::2],
        "readonly": np.frombuffer(base.tobytes(), np.float32).reshape(base.shape),
    }


@pytest.mark.parametrize("layout", list(_layouts()))
def test_non_contiguous_inputs(conv_session, layout):
    x = _layouts()[layout]
    assert x.shape == (2, 3, 8, 8)
    if layout != "readonly":
        assert not x.flags.c_contiguous
    before = x.copy(order="K")
    (y,) = conv_session.run(None, {"x": x})
    (y_ref,) = conv_session.run(None, {"x": np.ascontiguousarray(x)})
    np.testing.assert_array_equal(y, y_ref)
    assert_matches_ref(y, np.ascontiguousarray(x))
    np.testing.assert_array_equal(x, before)  # the caller's array is left alone


# ==================================================================================
# 6. SessionOptions and providers
# ==================================================================================
def test_negative_threads():
    opts = pycnn.SessionOptions()
    opts.intra_op_num_threads = -1
    with pytest.raises(ValueError, match=r"intra_op_num_threads.*-1"):
        pycnn.InferenceSession(conv_model(), opts)


def test_cuda_only_provider():
    with pytest.raises(ValueError) as info:
        pycnn.InferenceSession(conv_model(), providers=["CUDAExecutionProvider"])
    msg = str(info.value)
    assert "CUDAExecutionProvider" in msg and "CPUExecutionProvider" in msg, msg


def test_cuda_then_cpu_provider_warns_and_works(good_x):
    with pytest.warns(UserWarning, match="CUDAExecutionProvider"):
        sess = pycnn.InferenceSession(conv_model(), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert sess.get_providers() == ["CPUExecutionProvider"]
    (y,) = sess.run(None, {"x": good_x})
    assert_matches_ref(y, good_x)


def test_cpu_provider_alone_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pycnn.InferenceSession(conv_model(), providers=["CPUExecutionProvider"])


# ==================================================================================
# 7. set_isa
# ==================================================================================
def test_set_isa_nonsense():
    before = pycnn.active_isa()
    with pytest.raises(pycnn.InvalidArgumentError) as info:
        pycnn.set_isa("nonsense")
    msg = str(info.value)
    assert "'nonsense'" in msg and "available" in msg, msg
    for isa in pycnn.available_isas():
        assert isa in msg, (isa, msg)
    assert pycnn.active_isa() == before


# ==================================================================================
# 8. Opset newer than the installed onnx package
# ==================================================================================
def test_opset_newer_than_onnx():
    too_new = onnx.defs.onnx_opset_version() + 5
    model = make_model([h.make_node("Relu", ["x"], ["y"], name="r")], [x_info()], [out_info()],
                       opsets=[h.make_opsetid("", too_new)])
    for src in (model, model.SerializeToString()):
        with pytest.raises(pycnn.UnsupportedModelError) as info:
            pycnn.InferenceSession(src)
        msg = str(info.value)
        assert str(too_new) in msg and "upgrade onnx" in msg, msg


# ==================================================================================
# 9. A failed run does not poison the session
# ==================================================================================
def test_session_usable_after_errors(conv_session, good_x):
    (y0,) = conv_session.run(None, {"x": good_x})
    bad_feeds = [
        {"x": np.zeros((2, 4, 8, 8), np.float32)},
        {"x": good_x.astype(np.float64)},
        {"x": good_x[0]},
        {"nope": good_x},
        {},
    ]
    for feed in bad_feeds:
        with pytest.raises(pycnn.InvalidArgumentError):
            conv_session.run(None, feed)
        (y,) = conv_session.run(None, {"x": good_x})
        np.testing.assert_array_equal(y, y0)
    assert_matches_ref(y0, good_x)
    with pytest.raises(pycnn.InvalidArgumentError):
        conv_session.run(["nope"], {"x": good_x})
    other = np.random.default_rng(11).standard_normal((3, 3, 8, 8)).astype(np.float32)
    assert_matches_ref(conv_session.run(["y"], {"x": other})[0], other)


def test_session_usable_after_plan_failure():
    """A shape the graph cannot take fails while planning; the same bad shape fails the same way again
    (no half-built plan is cached), and good shapes still run correctly."""
    sess = pycnn.InferenceSession(reshape_model())
    good = np.random.default_rng(5).standard_normal((2, 3, 8, 8)).astype(np.float32)
    bad = np.ones((2, 3, 7, 7), np.float32)
    raw = conv_ref(good, pad=1, relu=False)  # reshape_model has no Relu
    messages = []
    for _ in range(3):
        with pytest.raises(pycnn.InvalidArgumentError) as info:
            sess.run(None, {"x": bad})
        messages.append(str(info.value))
        (y,) = sess.run(None, {"x": good})
        np.testing.assert_allclose(y, raw.reshape(-1, 256), rtol=1e-4, atol=1e-4)
    assert messages[0] == messages[1] == messages[2]
    assert "'flatten_fixed'" in messages[0]


def test_session_usable_after_kernel_too_large():
    sess = pycnn.InferenceSession(conv_model(("N", 3, "H", "W"), pads=None, conv_name="conv_nopad"))
    x = np.random.default_rng(9).standard_normal((1, 3, 5, 6)).astype(np.float32)
    for _ in range(2):
        with pytest.raises(pycnn.InvalidArgumentError, match="conv_nopad"):
            sess.run(None, {"x": np.ones((1, 3, 2, 9), np.float32)})
        (y,) = sess.run(None, {"x": x})
        np.testing.assert_allclose(y, conv_ref(x, pad=0), rtol=1e-4, atol=1e-4)


# ==================================================================================
# The exception hierarchy itself
# ==================================================================================
def test_exception_hierarchy():
    assert issubclass(pycnn.UnsupportedModelError, pycnn.PycnnError)
    assert issubclass(pycnn.UnsupportedModelError, NotImplementedError)
    assert issubclass(pycnn.InvalidModelError, pycnn.PycnnError)
    assert issubclass(pycnn.InvalidModelError, ValueError)
    assert issubclass(pycnn.InvalidArgumentError, pycnn.PycnnError)
    assert issubclass(pycnn.InvalidArgumentError, ValueError)
    assert issubclass(pycnn.EngineError, pycnn.PycnnError)
    assert issubclass(pycnn.EngineError, RuntimeError)
