"""The command line (demo, info, run). pycnn.functional: test_functional.py."""
import subprocess
import sys

import numpy as np
import onnx

import pycnn
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
