"""The command line (demo, info, run) and the functional layer."""
import subprocess
import sys

import numpy as np
import onnx
import pytest

import pycnn
import pycnn.functional as F
from pycnn import zoo
from pycnn.cli import main


def test_demo_classifies_the_samples(capsys):
    assert main(["demo", "--repeat", "3"]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("accuracy ")[1].split("%")[0])
    assert accuracy > 95.0
    assert "latency" in out


def test_info_reports_ops_params_and_macs(tmp_path, capsys):
    path = tmp_path / "squeezenet.onnx"
    onnx.save(zoo.squeezenet1_1(), str(path))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "input: tensor(float) ['N', 3, 224, 224]" in out
    assert "Conv" in out and "Concat" in out
    params = int(out.split("parameters: ")[1].split("\n")[0].replace(",", ""))
    assert params == 1_235_496  # SqueezeNet 1.1 has no batch norms: every float initializer is a parameter
    macs = int(out.split("MACs (batch 1): ")[1].split(" ")[0].replace(",", ""))
    assert 0.3e9 < macs < 0.4e9  # SqueezeNet 1.1 is about 0.35 GMACs


def test_run_with_input_file_prints_top5(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(zoo.squeezenet1_1(), str(path))
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--threads", "1", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    expected_top = pycnn.InferenceSession(str(path)).run(None, {"input": x})[0][0].argmax()
    assert f"top-5 of item 0: {expected_top} (" in out
    assert "latency: median" in out


def test_run_reports_errors_without_traceback(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.onnx")]) == 1
    assert "not found" in capsys.readouterr().err


def test_console_script_module_entry(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pycnn", "--version"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0 and "pycnn" in done.stdout


def _reference(name, x):
    if name == "relu":
        return np.maximum(x, 0)
    if name == "relu6":
        return np.clip(x, 0, 6)
    if name == "leaky_relu":
        return np.where(x >= 0, x, 0.01 * x)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "silu":
        return x / (1 + np.exp(-x))
    if name == "hardswish":
        return x * np.clip(x / 6 + 0.5, 0, 1)
    if name == "tanh":
        return np.tanh(x)
    if name == "elu":
        return np.where(x > 0, x, np.exp(x) - 1)
    raise KeyError(name)


@pytest.mark.parametrize("name", ["relu", "relu6", "leaky_relu", "sigmoid", "silu", "hardswish", "tanh", "elu"])
@pytest.mark.parametrize("shape", [(1,), (3, 7), (2, 17, 5, 5), (100001,)])
def test_functional_activations_match_numpy(name, shape):
    x = (np.random.default_rng(len(shape)).standard_normal(shape) * 4).astype(np.float32)
    got = getattr(F, name)(x)
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, _reference(name, x.astype(np.float64)), rtol=1e-5, atol=1e-6)
