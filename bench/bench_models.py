"""Whole-model latency: pycnn against ONNX Runtime, in one process, taking
turns (A B A B ...) after warm-up. Prints medians, p90 and the ratio
pycnn / onnxruntime; --json writes the same numbers.

    python bench/bench_models.py --models resnet18 mobilenet_v2 --threads 1 2 --batch 1 --runs 30
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort

import pycnn
from pycnn import zoo


def make_pycnn(model, threads):
    o = pycnn.SessionOptions()
    o.intra_op_num_threads = threads
    s = pycnn.InferenceSession(model, o)
    return lambda feed: s.run(None, feed)


def make_ort(model, threads):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(model.SerializeToString(), o, providers=["CPUExecutionProvider"])
    return lambda feed: s.run(None, feed)


def p90(xs):
    return sorted(xs)[int(0.9 * (len(xs) - 1))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(zoo.MODELS))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--batch", nargs="+", type=int, default=[1])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", help="write results to this file")
    args = ap.parse_args()
    rows = []
    print(f"pycnn {pycnn.__version__} ({pycnn.active_isa()}) vs onnxruntime {ort.__version__}")
    print(f"{'model':16s} {'batch':>5s} {'thr':>3s} {'pycnn ms':>9s} {'p90':>7s} {'ort ms':>8s} {'p90':>7s} {'ratio':>6s}")
    for name in args.models:
        model = zoo.build(name)
        for batch in args.batch:
            x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
            feed = {"input": x}
            for threads in args.threads:
                engines = {"pycnn": make_pycnn(model, threads), "onnxruntime": make_ort(model, threads)}
                times = {k: [] for k in engines}
                for fn in engines.values():
                    for _ in range(args.warmup):
                        fn(feed)
                for _ in range(args.runs):
                    for k, fn in engines.items():
                        t0 = time.perf_counter()
                        fn(feed)
                        times[k].append((time.perf_counter() - t0) * 1e3)
                med = {k: statistics.median(v) for k, v in times.items()}
                row = {"model": name, "batch": batch, "threads": threads,
                       **{f"{k}_median_ms": med[k] for k in med}, **{f"{k}_p90_ms": p90(v) for k, v in times.items()},
                       "ratio": med["pycnn"] / med["onnxruntime"]}
                rows.append(row)
                print(f"{name:16s} {batch:5d} {threads:3d} {med['pycnn']:9.2f} {p90(times['pycnn']):7.2f} "
                      f"{med['onnxruntime']:8.2f} {p90(times['onnxruntime']):7.2f} {row['ratio']:6.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
