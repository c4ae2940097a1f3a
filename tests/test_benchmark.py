"""The benchmark harness (pycnn.benchmark, `pycnn bench`, bench/bench_models.py) on tiny
settings: SqueezeNet 1.1 at 32x32, two rounds. Structure only, no timing assertions."""
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import pycnn
from pycnn import benchmark
from pycnn.cli import main

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # holds bench/
PYCNN_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pycnn.__file__)))  # the pycnn under test
TINY = ["--models", "squeezenet1_1", "--image-size", "32", "--threads", "1", "--runs", "2", "--warmup", "1",
        "--no-progress"]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One run with every output: table, JSON, profile, traces, load."""
    tmp = tmp_path_factory.mktemp("bench")
    out = io.StringIO()
    report = benchmark.run(models=["squeezenet1_1"], batches=[1, 2], threads=[1], runs=2, warmup=1,
                           engines=["pycnn", "onnxruntime"], image_size=32, profile=True,
                           trace_dir=str(tmp / "traces"), load=True, load_model="squeezenet1_1",
                           json_path=str(tmp / "out.json"), progress=False, out=out)
    return report, out.getvalue(), tmp


def _rows(text):
    return [line for line in text.splitlines() if line.startswith("squeezenet1_1 ")]


def test_table_rows_and_header(full_run):
    _, text, _ = full_run
    header = next(line for line in text.splitlines() if line.startswith("model "))
    for col in ("batch", "thr", "pycnn ms", "ort ms", "p90", "pycnn/ort", "check"):
        assert col in header
    rows = _rows(text)
    assert len(rows) == 2
    assert [int(r.split()[1]) for r in rows] == [1, 2]
    assert all(r.rstrip().split("|")[-1].strip().startswith("ok ") for r in rows)
    assert "pycnn 0.1.0" in text.splitlines()[0] and "onnxruntime" in text.splitlines()[0]


def test_json_structure(full_run):
    report, _, tmp = full_run
    saved = json.loads((tmp / "out.json").read_text())
    assert saved["results"] == json.loads(json.dumps(report["results"]))
    machine = saved["machine"]
    assert machine["cpu"] and machine["logical_cpus"] >= 1
    assert machine["pycnn_isa"] == pycnn.active_isa()
    for key in ("pycnn", "onnxruntime", "numpy", "onnx", "python"):
        assert saved["versions"][key]
    assert saved["settings"]["runs"] == 2 and saved["settings"]["image_size"] == 32
    assert saved["engines"]["pycnn"]["available"] and saved["engines"]["onnxruntime"]["available"]
    assert [(r["model"], r["batch"], r["threads"]) for r in saved["results"]] == [("squeezenet1_1", 1, 1),
                                                                                  ("squeezenet1_1", 2, 1)]
    for r in saved["results"]:
        assert set(r["engines"]) == {"pycnn", "onnxruntime"}
        for s in r["engines"].values():
            assert len(s["times_ms"]) == 2
            assert s["min_ms"] <= s["median_ms"] <= s["p90_ms"] <= max(s["times_ms"])
        assert r["check"]["ok"] is True and r["check"]["rel_l2"] <= 1e-4
        assert r["engines"]["pycnn"]["rel_l2_vs_onnxruntime"] == r["check"]["rel_l2"]
        assert r["errors"] == {}


def test_ratio_is_median_over_median(full_run):
    report, text, _ = full_run
    for r, line in zip(report["results"], _rows(text)):
        expected = r["engines"]["pycnn"]["median_ms"] / r["engines"]["onnxruntime"]["median_ms"]
        assert r["ratios"]["onnxruntime"] == pytest.approx(expected)
        assert f"{expected:.2f}" in line.split("|")[3]


def test_statistics_helpers():
    assert benchmark.ratios({"pycnn": 10.0, "onnxruntime": 5.0, "openvino": 20.0}) == {"onnxruntime": 2.0,
                                                                                        "openvino": 0.5}
    assert benchmark.ratios({"onnxruntime": 5.0}) == {}
    assert benchmark.p90(list(range(11))) == pytest.approx(9.0)
    s = benchmark.summarize([3.0, 1.0, 2.0])
    assert (s["median_ms"], s["min_ms"], s["mean_ms"]) == (2.0, 1.0, 2.0)
    a = np.ones(4, np.float32)
    assert benchmark.rel_l2(a, a) == 0.0
    assert benchmark.rel_l2(a * 1.01, a) == pytest.approx(0.01, rel=1e-4)
    assert benchmark.rel_l2(a, np.ones(5, np.float32)) == float("inf")


def test_profile_prints_node_rows(full_run):
    report, text, _ = full_run
    part = text.split("pycnn profile: squeezenet1_1, batch 1, 1 thread(s)")[1]
    node_rows = [line for line in part.splitlines() if re.match(r"\S+\s+(Conv|MaxPool|Concat)\s", line)]
    assert len(node_rows) >= 20  # SqueezeNet 1.1 has 26 convolutions
    assert "total node time per run" in part and "by op type: Conv" in part
    assert report["profiles"][0]["by_op_type"]["Conv"]["ms"] > 0


def test_chrome_trace_is_valid_json(full_run):
    report, _, tmp = full_run
    path = tmp / "traces" / "squeezenet1_1_b1_t1.json"
    assert report["profiles"][0]["trace"] == str(path)
    trace = json.loads(path.read_text())
    events = trace["traceEvents"]
    assert len(events) >= 20
    for ev in events:
        assert ev["ph"] == "X" and ev["dur"] >= 0 and ev["ts"] >= 0 and ev["name"]
    assert {"Conv", "MaxPool"} <= {ev["cat"] for ev in events}


def test_load_measures_each_engine_in_a_fresh_process(full_run):
    report, text, _ = full_run
    assert [r["engine"] for r in report["load"]] == ["pycnn", "onnxruntime"]
    for r in report["load"]:
        assert "error" not in r, r
        assert r["create_ms"] > 0 and r["first_run_ms"] > 0
        assert r["rss_baseline_mb"] > 0 and r["rss_after_run_mb"] >= r["rss_after_create_mb"] >= r["rss_baseline_mb"]
    assert "session creation and memory: squeezenet1_1" in text
    assert re.search(r"^pycnn\s+[\d.]+\s+[\d.]+", text, re.M)


def _hide(monkeypatch, *names):
    real = benchmark._try_import
    monkeypatch.setattr(benchmark, "_try_import", lambda name: None if name in names else real(name))


def test_missing_engines_are_reported_not_failed(monkeypatch, tmp_path, capsys):
    _hide(monkeypatch, "openvino", "torch", "matplotlib")
    rc = main(["bench", *TINY, "--batch", "1", "--engines", "pycnn", "onnxruntime", "openvino", "torch",
               "--json", str(tmp_path / "o.json"), "--plot", str(tmp_path / "o.png")])
    captured = capsys.readouterr()
    assert rc == 0
    assert "openvino: not installed" in captured.out and "torch: not installed" in captured.out
    assert "ov ms" not in captured.out and "torch ms" not in captured.out
    assert len(_rows(captured.out)) == 1
    assert "needs matplotlib" in captured.err and not (tmp_path / "o.png").exists()
    saved = json.loads((tmp_path / "o.json").read_text())
    assert saved["engines"]["openvino"] == {"available": False, "version": None, "note": "not installed"}
    assert set(saved["results"][0]["engines"]) == {"pycnn", "onnxruntime"}


def test_torch_without_onnx2torch_is_skipped_with_a_note(monkeypatch):
    class FakeTorch:
        __version__ = "9.9"
    real = benchmark._try_import
    monkeypatch.setattr(benchmark, "_try_import",
                        lambda name: FakeTorch if name == "torch" else None if name == "onnx2torch" else real(name))
    st = benchmark.probe_engine("torch")
    assert not st["available"] and st["note"].startswith("skipped") and "onnx2torch" in st["note"]


def test_no_engine_at_all(monkeypatch, capsys):
    _hide(monkeypatch, "openvino")
    assert main(["bench", *TINY, "--batch", "1", "--engines", "openvino"]) == 0
    out = capsys.readouterr().out
    assert "no engine to run" in out and not _rows(out)


def test_without_onnxruntime_there_is_no_check(monkeypatch, capsys):
    _hide(monkeypatch, "onnxruntime")
    assert main(["bench", *TINY, "--batch", "1"]) == 0
    out = capsys.readouterr().out
    (row,) = _rows(out)
    assert row.rstrip().endswith("n/a") and "onnxruntime: not installed" in out


def test_mismatch_is_flagged(monkeypatch, capsys):
    real = benchmark.create_engine

    def perturbed(name, *a, **k):
        fn = real(name, *a, **k)
        return (lambda x: fn(x) * 1.01) if name == "pycnn" else fn
    monkeypatch.setattr(benchmark, "create_engine", perturbed)
    assert main(["bench", *TINY, "--batch", "1", "--engines", "pycnn", "onnxruntime"]) == 1
    out = capsys.readouterr().out
    (row,) = _rows(out)
    assert "MISMATCH 1.0e-02" in row
    assert "MISMATCH: pycnn's output differs" in out


def test_engine_error_is_reported_and_others_still_run(monkeypatch, capsys):
    real = benchmark.create_engine

    def broken(name, *a, **k):
        if name == "onnxruntime":
            raise RuntimeError("boom")
        return real(name, *a, **k)
    monkeypatch.setattr(benchmark, "create_engine", broken)
    assert main(["bench", *TINY, "--batch", "1", "--engines", "pycnn", "onnxruntime"]) == 0
    out = capsys.readouterr().out
    (row,) = _rows(out)
    assert "error" in row.split("|")[2] and row.rstrip().endswith("n/a")
    assert "onnxruntime: RuntimeError: boom" in out


def test_bad_flags_are_rejected(capsys):
    for bad in (["--batch", "0"], ["--threads", "-1"], ["--models", "alexnet"], ["--engines", "tensorrt"]):
        with pytest.raises(SystemExit):
            main(["bench", *bad])
    capsys.readouterr()


def test_progress_bar_draws_and_clears():
    err, out = io.StringIO(), io.StringIO()
    bar = benchmark.Progress(4, True, stream=err, out=out, use_tqdm=False)
    bar.set("resnet18 batch 1 threads 1")
    bar.update()
    bar.write("a row")
    bar.update(3)
    bar.close()
    assert out.getvalue() == "a row\n"
    assert "[######" in err.getvalue() and "4/4" in err.getvalue() and err.getvalue().endswith("\r")
    silent = io.StringIO()
    benchmark.Progress(4, False, stream=silent, out=io.StringIO()).update()
    assert silent.getvalue() == ""


def test_bench_script_is_a_wrapper(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PYCNN_ROOT, env.get("PYTHONPATH", "")) if p)
    done = subprocess.run([sys.executable, os.path.join(CHECKOUT, "bench", "bench_models.py"), "--help"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    for flag in ("--models", "--batch", "--threads", "--runs", "--warmup", "--engines", "--json", "--plot",
                 "--profile", "--trace", "--load"):
        assert flag in done.stdout
