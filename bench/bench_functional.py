"""pycnn.functional.conv2d on ResNet-50's convolution shapes (224x224, batch 1)
against a pycnn session running the same single layer, and against
torch.nn.functional.conv2d when torch is installed.

A session packs its weights once at creation (and Winograd-transforms the
3x3 ones). A functional call reads the weights where they are instead
(nothing packed) and transforms Winograd weights into scratch; repeat calls
with the same Winograd weights reuse a prepared copy (pycnn.functional's
weight cache, checked byte for byte). Columns: `functional` (cache on, as a
loop over images calls it), `one-shot` (cache off: every call as if its
weights were new), the session, torch; `f/sess` and `1/sess` are the ratios.

    python bench/bench_functional.py --runs 20 --threads 1 --json out.json

Method: per layer, three passes in which two callables take turns (A B A
B ...) after warm-up (pycnn.benchmark.time_interleaved, no pause between
turns): functional and session; torch and session; one-shot and session.
Medians in ms; each ratio divides by the session's median of its own pass.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

import pycnn
import pycnn.functional as F
from pycnn import benchmark, zoo

DEFAULT_CACHE = 256 << 20  # pycnn.functional's default weight-cache limit


def resnet50_conv_shapes(image_size: int = 224) -> list[dict]:
    """The distinct Conv layers of zoo.resnet50 at batch 1: input, weight shape, stride, pads, count."""
    model = shape_inference.infer_shapes(zoo.build("resnet50", batch=1, image_size=image_size))
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(model.graph.value_info) + list(model.graph.input)}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    layers = {}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        key = (tuple(dims[node.input[0]]), tuple(weights[node.input[1]]), tuple(a.get("strides", [1, 1])),
               tuple(a.get("pads", [0, 0, 0, 0])), int(a.get("group", 1)))
        layers.setdefault(key, 0)
        layers[key] += 1
    return [{"input": list(k[0]), "weight": list(k[1]), "stride": list(k[2]), "pads": list(k[3]), "group": k[4],
             "count": n} for k, n in layers.items()]


def single_conv_session(layer: dict, w: np.ndarray, b: np.ndarray, threads: int) -> pycnn.InferenceSession:
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, layer["input"])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=layer["stride"], pads=layer["pads"],
                            group=layer["group"])
    graph = helper.make_graph([node], "conv", [x], [y], [numpy_helper.from_array(w, "w"),
                                                          numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = pycnn.SessionOptions()
    opts.intra_op_num_threads = threads
    return pycnn.InferenceSession(model.SerializeToString(), opts)


def bench_layer(layer: dict, threads: int, runs: int, warmup: int, rng) -> dict:
    """Two interleaved passes on one layer: functional (weight cache on: the
    repeat calls a loop over images makes), session and torch; then
    functional with the cache off (every call one-shot: what a call with new
    weights costs) against the session again."""
    w = (rng.standard_normal(layer["weight"]) * 0.05).astype(np.float32)
    b = rng.standard_normal(layer["weight"][0]).astype(np.float32)
    x = rng.standard_normal(layer["input"]).astype(np.float32)
    p = layer["pads"]
    padding = ((p[0], p[2]), (p[1], p[3]))
    sess = single_conv_session(layer, w, b, threads)

    def functional(v):
        return F.conv2d(v, w, b, stride=layer["stride"], padding=padding, groups=layer["group"])

    def session(v):
        return sess.run(None, {"x": v})[0]

    passes = {"cached": {"functional": functional, "session": session}}
    try:
        import torch
        torch.set_num_threads(threads)
        tw, tb = torch.from_numpy(w), torch.from_numpy(b)

        def torch_conv(v):
            with torch.no_grad():
                return torch.nn.functional.conv2d(torch.from_numpy(v), tw, tb, stride=layer["stride"],
                                                  padding=(p[0], p[1]), groups=layer["group"]).numpy()
        passes["torch"] = {"torch": torch_conv, "session": session}
    except ImportError:
        pass
    # Each pass interleaves its engines; torch gets its own, since its
    # thread pool keeps spinning after a call and would slow the next one.
    F.set_weight_cache_limit(DEFAULT_CACHE)
    times, outputs, errors = benchmark.time_interleaved(passes["cached"], x, runs, warmup)
    if "torch" in passes:
        torch_times, _, torch_errors = benchmark.time_interleaved(passes["torch"], x, runs, warmup)
        times["torch"] = torch_times.get("torch", [])
        errors.update({k: v for k, v in torch_errors.items() if k == "torch"})
    F.set_weight_cache_limit(0)
    once_times, once_outputs, once_errors = benchmark.time_interleaved({"one-shot": functional, "session": session},
                                                                       x, runs, warmup)
    F.set_weight_cache_limit(DEFAULT_CACHE)
    if errors or once_errors:
        raise RuntimeError(f"layer {layer}: {errors} {once_errors}")
    medians = {k: float(np.median(v)) for k, v in times.items()}
    medians["one-shot"] = float(np.median(once_times["one-shot"]))
    session_once = float(np.median(once_times["session"]))
    return {**layer, "median_ms": medians, "functional/session": medians["functional"] / medians["session"],
            "one-shot/session": medians["one-shot"] / session_once,
            "rel_l2_vs_session": max(benchmark.rel_l2(outputs["functional"], outputs["session"]),
                                     benchmark.rel_l2(once_outputs["one-shot"], outputs["session"]))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    # No pause between turns: a layer takes about a millisecond, and after
    # a pause every parallel region would wake sleeping threads.
    benchmark.GAP_S = 0.0
    F.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    head = (f"{'input':>16} {'weight':>18} {'s':>2} {'n':>2} {'functional':>10} {'one-shot':>8} {'session':>8} "
            f"{'torch':>8} {'f/sess':>6} {'1/sess':>6}")
    print(f"pycnn.functional.conv2d vs a one-layer session, ResNet-50 shapes, {args.threads} thread(s), "
          f"median ms of {args.runs} runs")
    print(head)
    for layer in resnet50_conv_shapes():
        r = bench_layer(layer, args.threads, args.runs, args.warmup, rng)
        rows.append(r)
        m = r["median_ms"]
        print(f"{'x'.join(map(str, r['input'][1:])):>16} {'x'.join(map(str, r['weight'])):>18} {r['stride'][0]:>2} "
              f"{r['count']:>2} {m['functional']:>10.3f} {m['one-shot']:>8.3f} {m['session']:>8.3f} "
              f"{m.get('torch', float('nan')):>8.3f} {r['functional/session']:>6.2f} {r['one-shot/session']:>6.2f}",
              flush=True)
    for col in ("functional/session", "one-shot/session"):
        ratios = [r[col] for r in rows]
        print(f"{col}: worst {max(ratios):.2f}, median {float(np.median(ratios)):.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "runs": args.runs, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
