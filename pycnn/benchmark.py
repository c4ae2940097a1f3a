"""The benchmark anyone can run: whole-model latency of pycnn against its peers.

    pycnn bench                                  # every zoo model, batch 1 and 8, 1 and 2 threads
    pycnn bench --models resnet18 mobilenet_v2 --batch 1 --threads 1 --runs 30 --json out.json
    pycnn bench --models resnet50 --load         # + session creation time and memory, per engine
    pycnn bench --models squeezenet1_1 --profile --trace traces/   # + pycnn's per-node profile

(``python bench/bench_models.py`` takes the same flags.)

Engines: pycnn; ONNX Runtime (CPUExecutionProvider, ORT_ENABLE_ALL, intra-op
threads as asked, inter-op 1); OpenVINO when importable (compiled with f32
inference precision: on CPUs with AMX/AVX512-BF16 it otherwise runs bf16
silently, which would compare different arithmetic; one stream, latency hint,
the same thread count); PyTorch when torch *and* onnx2torch are importable (the
zoo models exist only as ONNX graphs; onnx2torch turns them into eager torch
modules). An engine that is missing is reported as "not installed" (or
"skipped", with the reason) and left out; it is never an error.

Models: pycnn.zoo's ResNet-18, ResNet-50, DenseNet-121, MobileNetV2,
EfficientNet-B0 and SqueezeNet 1.1 at 224x224 with random (calibrated)
weights; one random input per (model, batch).

Method, for each (model, batch, threads):

1. every engine's session is created first, then each runs ``warmup`` times;
2. one more run of each on the same input checks the outputs: pycnn's against
   ONNX Runtime's, relative L2 error ``|a - b| / |b|`` <= 1e-4, else the row is
   flagged MISMATCH (and the exit status is 1);
3. ``runs`` rounds in which the engines take turns (A B C, A B C, ...) in this
   one process, each call timed with time.perf_counter; so slow drifts of the
   machine (frequency, other load) hit every engine alike;
4. reported: per engine the median and the 90th percentile (linear
   interpolation) in ms, and ``pycnn/peer`` = pycnn's median / the peer's
   median: below 1 pycnn is faster, above 1 slower.

Why not google_benchmark's harness: the `google_benchmark` package (pip
install google-benchmark) times one registered function at a time, running
its iterations back to back; its only interleaving,
``--benchmark_enable_random_interleaving`` with ``iterations(1)`` and
``repetitions(runs)``, shuffles the repetitions randomly (a trial with two
engines ran them as ``ABBBBAAAAB``), so it is not the round-robin A B C design,
and engines still run in streaks. Its results also come back only through a
reporter (console text or a ``--benchmark_out`` JSON file), its registry and
flags are process-global (set by parsing an argv list once), and a
configuration cannot be run, read back and discarded before the next one is
set up. So the rounds here are timed with time.perf_counter directly, which
is what google_benchmark's per-iteration wall clock measures too.

Engines spin-wait in their thread pools after a run: measured here, ONNX
Runtime's intra-op pool burns about 18 ms of CPU in the 10 ms after a run and
stops within about 100 ms (pycnn's OpenMP workers: about 2 ms). On a small
machine a peer's spinning threads take the cores from the engine timed next.
So each turn starts with a pause (GAP_S, --gap-ms, default 100 ms) in which
the previous engine's threads go idle, then one untimed call (the engine's
own threads wake and its caches warm), then the timed call. Every engine gets
the same treatment.

Session creation and memory (``--load``): ResNet-50 (the first batch and
thread setting) is saved to an .onnx file, and for each engine a fresh
``python -c`` process imports only that engine, notes its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), creates the session from the
file (timed), notes the peak RSS again, runs the model once (timed) and notes
it a third time. The table gives the creation time, the first run's time and
the RSS growth over the baseline after creation and after the first run.

Profile (``--profile``, ``--trace DIR``): pycnn's per-node profile
(InferenceSession.profile) of each model at the first batch and thread
setting: printed as a table, and/or written as Chrome traces
(DIR/MODEL_bB_tT.json; open in chrome://tracing or ui.perfetto.dev).

This module imports only the standard library and numpy at import time (the
``--load`` child processes load it by file path, so that each imports nothing
but its own engine).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ENGINES = ("pycnn", "onnxruntime", "openvino", "torch")
LABELS = {"pycnn": "pycnn", "onnxruntime": "ort", "openvino": "ov", "torch": "torch"}
MODELS = ("resnet18", "resnet50", "densenet121", "mobilenet_v2", "efficientnet_b0", "squeezenet1_1")
REFERENCE = "onnxruntime"
TOLERANCE = 1e-4
OPENVINO_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": "1", "PERFORMANCE_HINT": "LATENCY"}
LOAD_TIMEOUT_S = 600
JSON_SCHEMA = 1


# -- engines ----------------------------------------------------------------------------------------

def _try_import(name: str):
    """The module, or None when it cannot be imported (tests replace this to hide engines)."""
    try:
        return importlib.import_module(name)
    except Exception:  # ImportError, or a broken install raising anything else
        return None


def probe_engine(name: str) -> dict:
    """{"available": bool, "version": str or None, "note": why not available ("" when it is)}."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose from {list(ENGINES)}")
    if name == "pycnn":
        mod = _try_import("pycnn")
        if mod is None:
            return {"available": False, "version": None, "note": "not installed"}
        return {"available": True, "version": mod.__version__, "note": ""}
    if name == "onnxruntime":
        mod = _try_import("onnxruntime")
        return ({"available": True, "version": mod.__version__, "note": ""} if mod is not None
                else {"available": False, "version": None, "note": "not installed"})
    if name == "openvino":
        mod = _try_import("openvino")
        if mod is None:
            return {"available": False, "version": None, "note": "not installed"}
        version = getattr(mod, "__version__", None) or getattr(mod, "get_version", lambda: "?")()
        return {"available": True, "version": str(version).split("-")[0], "note": ""}
    torch = _try_import("torch")
    if torch is None:
        return {"available": False, "version": None, "note": "not installed"}
    if _try_import("onnx2torch") is None:
        return {"available": False, "version": torch.__version__,
                "note": f"skipped: torch {torch.__version__} is installed, but the zoo models are ONNX graphs and "
                        "onnx2torch (pip install onnx2torch) is needed to turn them into torch modules"}
    return {"available": True, "version": torch.__version__, "note": ""}


def _import_engine(name: str) -> None:
    """Imports what creating `name`'s session needs (so that creation can be timed apart)."""
    for mod in {"pycnn": ["pycnn"], "onnxruntime": ["onnxruntime"], "openvino": ["openvino"],
                "torch": ["torch", "onnx2torch"]}[name]:
        importlib.import_module(mod)


def create_engine(name: str, model_path: str, threads: int, batch: int, image_size: int):
    """A session of engine `name` for the ONNX file `model_path` (input "input" [N, 3, S, S]);
    returns run(x) -> the first output as a numpy array."""
    if name == "pycnn":
        import pycnn

        options = pycnn.SessionOptions()
        options.intra_op_num_threads = threads
        sess = pycnn.InferenceSession(model_path, options)
        return lambda x: sess.run(None, {"input": x})[0]
    if name == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        return lambda x: sess.run(None, {"input": x})[0]
    if name == "openvino":
        import openvino as ov

        core = ov.Core()
        model = core.read_model(model_path)
        model.reshape({model.inputs[0].any_name: [batch, 3, image_size, image_size]})
        compiled = core.compile_model(model, "CPU", {**OPENVINO_CONFIG, "INFERENCE_NUM_THREADS": str(threads)})
        request = compiled.create_infer_request()
        output = compiled.output(0)
        return lambda x: request.infer({0: x})[output]
    if name == "torch":
        import onnx2torch
        import torch

        torch.set_num_threads(threads)
        module = onnx2torch.convert(model_path).eval()

        def run(x):
            torch.set_num_threads(threads)  # process-global: keep it right whatever ran before
            with torch.inference_mode():
                return module(torch.from_numpy(x)).numpy()
        return run
    raise ValueError(f"unknown engine {name!r}; choose from {list(ENGINES)}")


# -- statistics -----------------------------------------------------------------------------------

def p90(times) -> float:
    """90th percentile, linear interpolation between the order statistics."""
    return float(np.percentile(np.asarray(times, dtype=np.float64), 90))


def summarize(times) -> dict:
    t = np.asarray(times, dtype=np.float64)
    return {"median_ms": float(np.median(t)), "p90_ms": p90(t), "min_ms": float(t.min()),
            "mean_ms": float(t.mean()), "times_ms": [round(float(v), 4) for v in t]}


def ratios(medians: dict, base: str = "pycnn") -> dict:
    """{peer: medians[base] / medians[peer]} for every other engine; {} when base is absent."""
    if base not in medians:
        return {}
    return {k: medians[base] / v for k, v in medians.items() if k != base and v > 0}


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    """|a - b| / |b| in float64 (inf when the shapes differ)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    return float(np.linalg.norm((a - b).ravel()) / max(np.linalg.norm(b.ravel()), 1e-30))


GAP_S = 0.1  # pause before each turn: the previous engine's spinning threads go idle


def time_interleaved(runners: dict, x: np.ndarray, runs: int, warmup: int, tick=None):
    """Warm-up, one checked run, then `runs` rounds in which the runners take turns.

    runners: {engine: run(x)}. Returns (times {engine: [ms]}, outputs {engine: array},
    errors {engine: message}); an engine that raises is dropped from later rounds.
    tick(): called after the warm-up and after each round (progress)."""
    errors, outputs = {}, {}
    live = dict(runners)
    for name, fn in list(live.items()):
        try:
            for _ in range(warmup):
                fn(x)
            outputs[name] = np.array(fn(x), copy=True)
        except Exception as e:
            errors[name] = f"{type(e).__name__}: {e}"
            del live[name]
    if tick:
        tick()
    times = {k: [] for k in live}
    for _ in range(runs):
        for name, fn in list(live.items()):
            try:
                if GAP_S > 0:
                    time.sleep(GAP_S)
                    fn(x)  # untimed: wakes this engine's threads after the pause
                t0 = time.perf_counter()
                fn(x)
                times[name].append((time.perf_counter() - t0) * 1e3)
            except Exception as e:
                errors[name] = f"{type(e).__name__}: {e}"
                del live[name]
                del times[name]
        if tick:
            tick()
    return times, outputs, errors


def bench_config(model_name: str, model_path: str, batch: int, threads: int, image_size: int,
                 engines, runs: int, warmup: int, tick=None, seed: int = 0) -> dict:
    """One row: every engine created, warmed up, checked against ONNX Runtime and timed in turns."""
    x = np.random.default_rng(seed).standard_normal((batch, 3, image_size, image_size)).astype(np.float32)
    runners, errors = {}, {}
    for name in engines:
        try:
            runners[name] = create_engine(name, model_path, threads, batch, image_size)
        except Exception as e:
            errors[name] = f"{type(e).__name__}: {e}"
    times, outputs, run_errors = time_interleaved(runners, x, runs, warmup, tick)
    errors.update(run_errors)
    stats = {k: summarize(v) for k, v in times.items() if v}
    ref = outputs.get(REFERENCE)
    for k, s in stats.items():
        s["images_per_s"] = batch * 1e3 / s["median_ms"] if s["median_ms"] > 0 else None
        if ref is not None and k != REFERENCE and k in outputs:
            s[f"rel_l2_vs_{REFERENCE}"] = rel_l2(outputs[k], ref)
    check = {"reference": REFERENCE, "tolerance": TOLERANCE, "rel_l2": None, "ok": None}
    if ref is not None and "pycnn" in outputs:
        err = rel_l2(outputs["pycnn"], ref)
        check.update(rel_l2=err, ok=bool(err <= TOLERANCE))
    return {"model": model_name, "batch": batch, "threads": threads, "image_size": image_size,
            "engines": stats, "ratios": ratios({k: s["median_ms"] for k, s in stats.items()}),
            "check": check, "errors": errors}


# -- session creation and memory (one subprocess per engine) -----------------------------------------

def _load_child(engine: str, model_path: str, threads: int, batch: int, image_size: int) -> dict:
    """Runs in a fresh process: import the engine, then create its session and run once, noting the
    peak RSS (ru_maxrss) before, after creation and after the run."""
    import resource

    def peak_mb():
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb / (1024.0 * 1024.0) if sys.platform == "darwin" else kb / 1024.0  # bytes on macOS

    def hwm_mb():  # Linux: the peak RSS of this address space, a cross-check of ru_maxrss
        try:
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) / 1024.0 for line in f if line.startswith("VmHWM:"))
        except (OSError, StopIteration, ValueError):
            return None

    x = np.random.default_rng(0).standard_normal((batch, 3, image_size, image_size)).astype(np.float32)
    _import_engine(engine)
    base, base_hwm = peak_mb(), hwm_mb()
    t0 = time.perf_counter()
    run = create_engine(engine, model_path, threads, batch, image_size)
    t1 = time.perf_counter()
    created = peak_mb()
    run(x)
    t2 = time.perf_counter()
    after, after_hwm = peak_mb(), hwm_mb()
    return {"create_ms": (t1 - t0) * 1e3, "first_run_ms": (t2 - t1) * 1e3, "rss_baseline_mb": base,
            "rss_after_create_mb": created, "rss_after_run_mb": after,
            "create_growth_mb": created - base, "run_growth_mb": after - base,
            "vmhwm_baseline_mb": base_hwm, "vmhwm_after_run_mb": after_hwm}


_CHILD = """\
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("_pycnn_bench_child", {file!r})
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
print("@@RESULT@@" + json.dumps(mod._load_child(*sys.argv[1:3], *map(int, sys.argv[3:6]))))
"""


def measure_load(engine: str, model_path: str, threads: int, batch: int, image_size: int,
                 timeout: float = LOAD_TIMEOUT_S) -> dict:
    """Session creation time and RSS growth of `engine`, measured in a fresh `python -c` process."""
    import pycnn

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(pycnn.__file__)))  # the pycnn this process uses
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    code = _CHILD.format(file=os.path.abspath(__file__))
    row = {"engine": engine, "threads": threads, "batch": batch}
    cmd = [sys.executable, "-c", code, engine, model_path, str(threads), str(batch), str(image_size)]
    if os.name == "posix" and os.path.exists("/bin/sh"):
        # Linux carries the parent's RSS into a child's ru_maxrss across fork + exec (this process
        # can be hundreds of MB); a child forked by a small shell starts from the shell's instead.
        # The "; exit" keeps the shell from exec-ing python in its own place.
        cmd = ["/bin/sh", "-c", '"$0" "$@"; exit $?'] + cmd
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=os.path.dirname(model_path))
    except subprocess.TimeoutExpired:
        return {**row, "error": f"timed out after {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return {**row, **json.loads(line[len("@@RESULT@@"):])}
    tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return {**row, "error": tail}


# -- machine --------------------------------------------------------------------------------------

def machine_info() -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "logical_cpus": os.cpu_count(),
            "physical_cores": None, "usable_cpus": None, "platform": platform.platform(),
            "python": platform.python_version()}
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    try:
        with open("/proc/cpuinfo") as f:
            blocks = [dict((k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in block.splitlines()
                                                              if ":" in line))
                      for block in f.read().split("\n\n")]
        names = [b["model name"] for b in blocks if "model name" in b]
        if names:
            info["cpu"] = names[0]
        cores = {(b.get("physical id", "0"), b["core id"]) for b in blocks if "core id" in b}
        info["physical_cores"] = len(cores) or None
    except OSError:
        pass
    try:
        import pycnn

        info.update(pycnn_isa=pycnn.active_isa(), pycnn_available_isas=list(pycnn.available_isas()),
                    pycnn_default_threads=pycnn.default_num_threads())
    except Exception:
        pass
    return info


def versions(engine_status: dict) -> dict:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    onnx = _try_import("onnx")
    if onnx is not None:
        out["onnx"] = onnx.__version__
    for name, st in engine_status.items():
        out[name] = st["version"]
    return out


# -- progress -------------------------------------------------------------------------------------

class Progress:
    """A progress bar on stderr (tqdm when installed, else a small one drawn here); silent when
    disabled. write() prints a line to stdout without tearing the bar."""

    def __init__(self, total: int, enabled: bool, stream=None, out=None, use_tqdm: bool = True):
        self.total, self.done, self.enabled = max(total, 1), 0, enabled
        self.stream = stream or sys.stderr
        self.out = out or sys.stdout
        self.desc, self.t0, self._last, self._width = "", time.perf_counter(), 0.0, 0
        self._tqdm = None
        if enabled and use_tqdm:
            tqdm = _try_import("tqdm")
            if tqdm is not None:
                self._tqdm = tqdm.tqdm(total=self.total, file=self.stream, leave=False, unit="step")

    def set(self, desc: str) -> None:
        self.desc = desc
        if self._tqdm is not None:
            self._tqdm.set_description_str(desc)
        else:
            self._draw(force=True)

    def update(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        if self._tqdm is not None:
            self._tqdm.update(n)
        else:
            self._draw()

    def _line(self) -> str:
        width = 24
        filled = int(width * self.done / self.total)
        elapsed = time.perf_counter() - self.t0
        return (f"{self.desc[:34]:34s} [{'#' * filled}{'.' * (width - filled)}] "
                f"{self.done}/{self.total} {elapsed:6.1f}s")

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if force or now - self._last > 0.1 or self.done == self.total:
            self._last = now
            line = self._line()
            self._width = max(self._width, len(line))
            self.stream.write("\r" + line)
            self.stream.flush()

    def _clear(self) -> None:
        if self.enabled and self._tqdm is None and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()

    def write(self, text: str) -> None:
        if self._tqdm is not None:
            self._tqdm.write(text, file=self.out)
            self.out.flush()
            return
        self._clear()
        self.out.write(text + "\n")
        self.out.flush()
        if self._width:
            self._draw(force=True)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        else:
            self._clear()


# -- text output ------------------------------------------------------------------------------------

def table_header(engines) -> str:
    cols = [f"{'model':16s} {'batch':>5s} {'thr':>3s}"]
    cols += [f"{LABELS[e] + ' ms':>9s} {'p90':>7s}" for e in engines]
    cols += [f"{'pycnn/' + LABELS[e]:>11s}" for e in engines if e != "pycnn" and "pycnn" in engines]
    cols.append("check (pycnn vs ort, rel L2)")
    return " | ".join(cols)


def table_row(row: dict, engines) -> str:
    cols = [f"{row['model'][:16]:16s} {row['batch']:5d} {row['threads']:3d}"]
    for e in engines:
        s = row["engines"].get(e)
        cols.append(f"{s['median_ms']:9.2f} {s['p90_ms']:7.2f}" if s else f"{'error':>17s}")
    for e in engines:
        if e != "pycnn" and "pycnn" in engines:
            r = row["ratios"].get(e)
            cols.append(f"{r:11.2f}" if r is not None else f"{'-':>11s}")
    c = row["check"]
    if c["ok"] is None:
        cols.append("n/a")
    else:
        cols.append(f"{'ok' if c['ok'] else 'MISMATCH'} {c['rel_l2']:.1e}")
    return " | ".join(cols)


def format_table(results, engines) -> str:
    return "\n".join([table_header(engines)] + [table_row(r, engines) for r in results])


def format_load(rows, model: str, image_size: int) -> str:
    if not rows:
        return ""
    first = rows[0]
    lines = [f"session creation and memory: {model} at {image_size}x{image_size}, batch {first['batch']}, "
             f"{first['threads']} thread(s); each engine in a fresh process (peak RSS, ru_maxrss)",
             f"{'engine':12s} {'create ms':>10s} {'1st run ms':>10s} {'RSS base MB':>11s} "
             f"{'+create MB':>10s} {'+1st run MB':>11s}"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['engine']:12s} error: {r['error']}")
        else:
            lines.append(f"{r['engine']:12s} {r['create_ms']:10.1f} {r['first_run_ms']:10.1f} "
                         f"{r['rss_baseline_mb']:11.1f} {r['create_growth_mb']:10.1f} {r['run_growth_mb']:11.1f}")
    return "\n".join(lines)


# -- plot -----------------------------------------------------------------------------------------

def plot(results, engines, path: str) -> str | None:
    """Grouped bar chart of the medians (p90 as whiskers), one panel per (batch, threads).
    Returns None when written, else the reason it was not."""
    matplotlib = _try_import("matplotlib")
    if matplotlib is None:
        return f"--plot needs matplotlib (pip install matplotlib); {path} not written"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    batches = sorted({r["batch"] for r in results})
    threads = sorted({r["threads"] for r in results})
    models = list(dict.fromkeys(r["model"] for r in results))
    engines = [e for e in engines if any(e in r["engines"] for r in results)]
    if not results or not engines:
        return f"nothing to plot; {path} not written"
    fig, axes = plt.subplots(len(batches), len(threads), squeeze=False,
                             figsize=(max(6.0, 1.3 * len(models) * len(threads) + 2), 3.6 * len(batches)))
    width = 0.8 / len(engines)
    for i, b in enumerate(batches):
        for j, t in enumerate(threads):
            ax = axes[i][j]
            rows = {r["model"]: r for r in results if r["batch"] == b and r["threads"] == t}
            for k, e in enumerate(engines):
                xs, med, up = [], [], []
                for m, name in enumerate(models):
                    s = rows.get(name, {}).get("engines", {}).get(e)
                    if s:
                        xs.append(m + (k - (len(engines) - 1) / 2) * width)
                        med.append(s["median_ms"])
                        up.append(max(0.0, s["p90_ms"] - s["median_ms"]))
                bars = ax.bar(xs, med, width, yerr=[[0.0] * len(up), up], capsize=2, label=e)
                ax.bar_label(bars, labels=[f"{v:.3g}" for v in med], fontsize=6, padding=1)
            ax.set_xticks(range(len(models)))
            ax.set_xticklabels(models, rotation=30, ha="right", fontsize=8)
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
            ax.set_ylabel("median ms (log; whisker: p90)")
            ax.set_title(f"batch {b}, {t} thread{'s' if t != 1 else ''}", fontsize=10)
            ax.grid(axis="y", alpha=0.3, which="both")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


# -- the run --------------------------------------------------------------------------------------

def run(models=MODELS, batches=(1, 8), threads=(1, 2), runs: int = 20, warmup: int = 3, engines=ENGINES,
        image_size: int = 224, profile: bool = False, trace_dir: str | None = None, load: bool = False,
        load_model: str = "resnet50", json_path: str | None = None, plot_path: str | None = None,
        progress: bool | None = None, out=None) -> dict:
    """Runs the benchmark, printing to `out` (stdout) as it goes; returns the report (the --json content).
    progress: draw a progress bar on stderr (None: when stderr is a terminal)."""
    import onnx

    from pycnn import zoo

    out = out or sys.stdout
    for m in list(models) + ([load_model] if load else []):
        if m not in zoo.MODELS:
            raise ValueError(f"unknown model {m!r}; choose from {sorted(zoo.MODELS)}")
    for t in threads:
        if t < 1:
            raise ValueError(f"thread counts must be >= 1, got {t}")
    for b in batches:
        if b < 1:
            raise ValueError(f"batch sizes must be >= 1, got {b}")
    requested = list(dict.fromkeys(engines))
    status = {e: probe_engine(e) for e in requested}
    active = [e for e in requested if status[e]["available"]]
    info = machine_info()
    report = {"schema": JSON_SCHEMA, "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": info, "versions": versions(status),
              "settings": {"models": list(models), "batch": list(batches), "threads": list(threads), "runs": runs,
                           "warmup": warmup, "engines": requested, "image_size": image_size,
                           "tolerance": TOLERANCE, "reference": REFERENCE},
              "engines": status, "results": [], "load": [], "profiles": []}

    def say(text=""):
        print(text, file=out, flush=True)

    isa = {"pycnn": f" ({info.get('pycnn_isa', '?')})"}
    say("pycnn bench: " + "; ".join(
        f"{e} {status[e]['version']}{isa.get(e, '')}" if status[e]["available"] else f"{e}: {status[e]['note']}"
        for e in requested))
    say(f"CPU: {info['cpu']}, {info['logical_cpus']} logical CPUs"
        + (f" ({info['usable_cpus']} usable)" if info.get("usable_cpus") else "")
        + f"; {image_size}x{image_size}, {runs} runs after {warmup} warm-up, engines taking turns")
    if plot_path and _try_import("matplotlib") is None:
        say(f"note: --plot needs matplotlib (pip install matplotlib); {plot_path} will not be written")
    if (profile or trace_dir) and "pycnn" not in active:
        say("note: --profile and --trace profile pycnn, which is not among the engines run")
    if not active:
        say("no engine to run")
        return _finish(report, json_path, None, active, out)

    do_profile = (profile or trace_dir) and "pycnn" in active
    n_configs = len(models) * len(batches) * len(threads)
    total = n_configs * (runs + 1) + (len(models) if do_profile else 0) + (len(active) if load else 0)
    bar = Progress(total, sys.stderr.isatty() if progress is None else progress, out=out)
    profile_texts = []
    try:
        with tempfile.TemporaryDirectory(prefix="pycnn-bench-") as tmp:
            bar.write(table_header(active))
            for name in models:
                bar.set(f"building {name}")
                path = os.path.join(tmp, f"{name}.onnx")
                onnx.save(zoo.build(name, image_size=image_size), path)
                for b in batches:
                    for t in threads:
                        bar.set(f"{name} batch {b} threads {t}")
                        row = bench_config(name, path, b, t, image_size, active, runs, warmup, tick=bar.update)
                        report["results"].append(row)
                        bar.write(table_row(row, active))
                if do_profile:
                    b, t = batches[0], threads[0]
                    bar.set(f"profiling {name}")
                    try:
                        report["profiles"].append(_profile(name, path, b, t, image_size, runs, warmup, trace_dir,
                                                           profile_texts if profile else None))
                    except Exception as e:
                        report["profiles"].append({"model": name, "batch": b, "threads": t,
                                                   "error": f"{type(e).__name__}: {e}"})
                        profile_texts.append(f"pycnn profile: {name}: {type(e).__name__}: {e}")
                    bar.update()
            if load:
                path = os.path.join(tmp, f"{load_model}.onnx")
                if not os.path.exists(path):
                    bar.set(f"building {load_model}")
                    onnx.save(zoo.build(load_model, image_size=image_size), path)
                for e in active:
                    bar.set(f"load: {e} (fresh process)")
                    report["load"].append({"model": load_model, "image_size": image_size,
                                           **measure_load(e, path, threads[0], batches[0], image_size)})
                    bar.update()
    finally:
        bar.close()
    for row in report["results"]:
        for e, msg in row["errors"].items():
            say(f"error: {row['model']} batch {row['batch']} threads {row['threads']}: {e}: {msg}")
    skipped = [e for e in requested if not status[e]["available"]]
    if skipped:
        say("not run: " + "; ".join(f"{e}: {status[e]['note']}" for e in skipped))
    if "pycnn" in active and len(active) > 1:
        say("pycnn/X = pycnn's median / X's median: < 1 pycnn is faster, > 1 slower")
    bad = [r for r in report["results"] if r["check"]["ok"] is False]
    if bad:
        say(f"MISMATCH: pycnn's output differs from onnxruntime's (rel L2 > {TOLERANCE:g}) in "
            + ", ".join(f"{r['model']} b{r['batch']} t{r['threads']}" for r in bad))
    for text in profile_texts:
        say()
        say(text)
    if report["load"]:
        say()
        say(format_load(report["load"], load_model, image_size))
    return _finish(report, json_path, plot_path, active, out)


def _profile(name, path, batch, threads, image_size, runs, warmup, trace_dir, texts) -> dict:
    import pycnn

    options = pycnn.SessionOptions()
    options.intra_op_num_threads = threads
    sess = pycnn.InferenceSession(path, options)
    x = np.random.default_rng(0).standard_normal((batch, 3, image_size, image_size)).astype(np.float32)
    prof = sess.profile({"input": x}, runs=max(runs, 1), warmup=warmup)
    entry = {"model": name, "batch": batch, "threads": threads, "total_ms": prof.total_ms,
             "by_op_type": {op: {"ms": ms, "percent": pct} for op, (ms, pct) in prof.by_op_type().items()},
             "trace": None}
    if trace_dir:
        os.makedirs(trace_dir, exist_ok=True)
        entry["trace"] = os.path.join(trace_dir, f"{name}_b{batch}_t{threads}.json")
        prof.chrome_trace(entry["trace"])
    if texts is not None:
        by_op = ", ".join(f"{op} {ms:.2f} ms ({pct:.0f}%)" for op, (ms, pct) in prof.by_op_type().items())
        texts.append(f"pycnn profile: {name}, batch {batch}, {threads} thread(s), {image_size}x{image_size}\n"
                     f"{prof.table()}\nby op type: {by_op}"
                     + (f"\nChrome trace: {entry['trace']}" if entry["trace"] else ""))
    return entry


def _finish(report, json_path, plot_path, active, out) -> dict:
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {json_path}", file=out)
    if plot_path and report["results"]:
        why = plot(report["results"], active, plot_path)
        print(why or f"wrote {plot_path}", file=sys.stderr if why else out)
    return report


# -- command line ---------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `pycnn bench` and bench/bench_models.py."""
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, metavar="MODEL",
                   help=f"zoo models (default: all: {' '.join(MODELS)})")
    p.add_argument("--batch", nargs="+", type=_positive, default=[1, 8], help="batch sizes (default: 1 8)")
    p.add_argument("--threads", nargs="+", type=_positive, default=[1, 2], help="thread counts (default: 1 2)")
    p.add_argument("--runs", type=_positive, default=20, help="timed rounds per configuration (default: 20)")
    p.add_argument("--warmup", type=_non_negative, default=3, help="warm-up runs per engine (default: 3)")
    p.add_argument("--gap-ms", type=_non_negative, default=int(GAP_S * 1000),
                   help="untimed pause (then one untimed call) before each timed call, so the previous engine's "
                        "threads go idle (default: 100)")
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES, metavar="ENGINE",
                   help=f"engines (default: all: {' '.join(ENGINES)}; missing ones are skipped)")
    p.add_argument("--json", metavar="PATH", help="write the results, machine and versions as JSON")
    p.add_argument("--plot", metavar="PATH", help="write a bar chart of the medians (needs matplotlib)")
    p.add_argument("--profile", action="store_true",
                   help="print pycnn's per-node profile of each model (first batch and thread setting)")
    p.add_argument("--trace", metavar="DIR", help="write pycnn's Chrome traces (MODEL_bB_tT.json) to DIR")
    p.add_argument("--load", action="store_true",
                   help="session creation time and peak-RSS growth of ResNet-50 per engine, each in a fresh process")
    # hidden: small settings for tests and quick looks
    p.add_argument("--image-size", type=_positive, default=224, help=argparse.SUPPRESS)
    p.add_argument("--load-model", default="resnet50", choices=MODELS, help=argparse.SUPPRESS)
    p.add_argument("--no-progress", action="store_true", help=argparse.SUPPRESS)


def _positive(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _non_negative(s: str) -> int:
    v = int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def run_from_args(args, out=None) -> int:
    global GAP_S
    GAP_S = getattr(args, "gap_ms", GAP_S * 1000) / 1000.0
    """Runs with parsed flags; the exit status: 1 when pycnn's output mismatched ONNX Runtime's."""
    report = run(models=args.models, batches=args.batch, threads=args.threads, runs=args.runs, warmup=args.warmup,
                 engines=args.engines, image_size=args.image_size, profile=args.profile, trace_dir=args.trace,
                 load=args.load, load_model=args.load_model, json_path=args.json, plot_path=args.plot,
                 progress=False if args.no_progress else None, out=out)
    return 1 if any(r["check"]["ok"] is False for r in report["results"]) else 0


def main(argv=None, prog=None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See pycnn/benchmark.py's docstring for the method.")
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
