"""Session lifecycle: ONNX loading paths (external data, bytes, Constant
nodes, shape glue), plans cached per shape, threads, ISA selection."""
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import pycnn
from pycnn import zoo


def small_cnn(batch="N", size=("H", "W")):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Shape", ["g"], ["s"]),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.int64))),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["g", "shape"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, *size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8])],
        [w, b, numpy_helper.from_array(np.array([0], np.int64), "axes"),
         numpy_helper.from_array(np.array([-1], np.int64), "minus1")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def ort_run(model, x):
    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]


def test_symbolic_dims_plans_are_cached_per_shape():
    model = small_cnn()
    sess = pycnn.InferenceSession(model)
    assert sess.get_inputs()[0].shape == ["N", 3, "H", "W"]
    for shape in [(1, 3, 8, 8), (2, 3, 5, 9), (1, 3, 8, 8), (3, 3, 1, 1)]:
        x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], ort_run(model, x), rtol=1e-5, atol=1e-5)
    assert sess._session.cached_plans == 3
    for n in range(1, 20):  # the cache stays bounded when shapes keep changing
        sess.run(None, {"x": np.zeros((n, 3, 4, 4), np.float32)})
    assert sess._session.cached_plans <= 8


def test_loads_path_bytes_and_external_data(tmp_path):
    model = zoo.squeezenet1_1()
    path = tmp_path / "ext" / "model.onnx"
    path.parent.mkdir()
    onnx.save_model(onnx.ModelProto.FromString(model.SerializeToString()), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=1024)
    assert (path.parent / "weights.bin").stat().st_size > 4_000_000
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    want = pycnn.InferenceSession(model).run(None, {"input": x})[0]
    for source in (str(path), path, model.SerializeToString()):
        np.testing.assert_allclose(pycnn.InferenceSession(source).run(None, {"input": x})[0], want, rtol=1e-6)


def test_external_data_from_bytes_is_a_clear_error(tmp_path):
    model = zoo.squeezenet1_1()
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="w.bin", size_threshold=1024)
    with pytest.raises(pycnn.InvalidModelError, match="external"):
        pycnn.InferenceSession(path.read_bytes())


def test_output_selection_and_order():
    model = small_cnn()
    model.graph.output.insert(0, helper.make_tensor_value_info("g", TensorProto.FLOAT, None))
    sess = pycnn.InferenceSession(model)
    x = np.ones((2, 3, 4, 4), np.float32)
    y, g = sess.run(["y", "g"], {"x": x})
    assert y.shape == (2, 8) and g.shape == (2, 8, 1, 1)
    np.testing.assert_array_equal(y, g.reshape(2, 8))
    assert [o.name for o in sess.get_outputs()] == ["g", "y"]


def test_concurrent_runs_from_python_threads_are_safe(run_in_threads):
    sess = pycnn.InferenceSession(zoo.mobilenet_v2(image_size=64))
    xs = [np.random.default_rng(i).standard_normal((1, 3, 64, 64)).astype(np.float32) for i in range(4)]
    want = [sess.run(None, {"input": x})[0] for x in xs]

    def worker(i):
        for _ in range(5):
            np.testing.assert_array_equal(sess.run(None, {"input": xs[i]})[0], want[i])

    errors = run_in_threads(worker, 4)
    assert errors == [], errors[0]


def test_results_do_not_depend_on_thread_count():
    model = zoo.resnet18(image_size=64)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    outs = []
    for t in (1, 2, 3):
        o = pycnn.SessionOptions()
        o.intra_op_num_threads = t
        outs.append(pycnn.InferenceSession(model, o).run(None, {"input": x})[0])
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_default_threads_respect_affinity(tmp_path):
    code = "import os, pycnn; os.sched_setaffinity(0, {0}); print(pycnn.default_num_threads())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.stdout.strip() == "1", done.stderr
    assert pycnn.default_num_threads() == len(os.sched_getaffinity(0))


def test_isa_override_by_environment(tmp_path):
    for isa in pycnn.available_isas():
        code = "import pycnn; print(pycnn.active_isa())"
        env = dict(os.environ, PYCNN_ISA=isa)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env,
                              cwd=tmp_path)
        assert done.stdout.strip() == isa, done.stderr


def test_denormal_inputs_are_flushed_and_caller_state_restored():
    model = small_cnn()
    x = np.full((1, 3, 4, 4), 1e-40, np.float32)  # denormal
    y = pycnn.InferenceSession(model).run(None, {"x": x})[0]
    assert np.isfinite(y).all()
    # The caller's floating-point state is untouched: numpy still produces denormals.
    assert np.float32(1e-38) / np.float32(1e4) != 0


def test_idle_session_uses_no_cpu(tmp_path):
    """After a run, worker threads stop spinning soon: the process uses (almost)
    no CPU while it sleeps. Run in a fresh process so nothing else counts."""
    code = (
        "import resource, time, numpy as np, pycnn\n"
        "from pycnn import zoo\n"
        "o = pycnn.SessionOptions(); o.intra_op_num_threads = 2\n"
        "s = pycnn.InferenceSession(zoo.squeezenet1_1(image_size=64), o)\n"
        "x = np.zeros((1, 3, 64, 64), np.float32)\n"
        "for _ in range(5): s.run(None, {'input': x})\n"
        "time.sleep(0.05)\n"
        "cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])\n"
        "before = cpu(); time.sleep(0.5); print(cpu() - before)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    idle_cpu_seconds = float(done.stdout.strip())
    assert idle_cpu_seconds < 0.05, f"{idle_cpu_seconds:.3f} s of CPU while idle for 0.5 s"
