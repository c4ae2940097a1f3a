"""One convolution layer at a time: a pycnn session against an ONNX Runtime
session holding the same single layer, at each thread count.

Each model is Conv (+ ReLU) followed by a GlobalAveragePool, so the run's
output is a few floats: a full-size output would be a fresh numpy array per
run, and its page faults (serialized in the kernel) would hide the layer's
own thread scaling. Default layers: the ResNet-50 shapes where pycnn and ONNX
Runtime differ most; `--layer CIN,COUT,HW,K,STRIDE,PAD` picks others.

    python bench/bench_layers.py --threads 1 2 --runs 30 --blocks 3
    python bench/bench_layers.py --layer 512,512,7,3,1,1 --layer 2048,512,7,1,1,0

Method: per layer and thread count both sessions are created, then take
turns in blocks (A x runs, B x runs, A x runs, ...; `--blocks` of each), each
block after a pause (`--gap-ms`) and 10 untimed calls. Blocks, not single
calls, because a layer takes a few ms: at 2 threads on 2 cores the peer's
spinning pool (ONNX Runtime's, or pycnn's with GOMP_SPINCOUNT=infinite) would
otherwise take a core from whichever engine runs next and double its time.
Medians over every timed call in ms, and pycnn / ORT (below 1: pycnn is faster).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import pycnn

# (in channels, out channels, input height = width, kernel, stride, pad)
RESNET50_LAYERS = [
    (3, 64, 224, 7, 2, 3),
    (256, 64, 56, 1, 1, 0),
    (64, 256, 56, 1, 1, 0),
    (256, 256, 28, 3, 2, 1),
    (256, 256, 14, 3, 1, 1),
    (512, 512, 7, 3, 1, 1),
    (2048, 512, 7, 1, 1, 0),
    (512, 2048, 7, 1, 1, 0),
]


def conv_layer_model(cin: int, cout: int, hw: int, k: int, stride: int, pad: int, batch: int = 1) -> bytes:
    """Conv + ReLU + GlobalAveragePool with random weights, as serialized ONNX."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((cout, cin, k, k)) * (2.0 / (cin * k * k)) ** 0.5).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[k, k], strides=[stride, stride],
                         pads=[pad] * 4),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, cin, hw, hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def bench_layer(layer: tuple, threads: int, runs: int, blocks: int, batch: int, gap_s: float, warmup: int = 10) -> dict:
    import onnxruntime as ort

    cin, cout, hw, k, stride, pad = layer
    model = conv_layer_model(cin, cout, hw, k, stride, pad, batch)
    opts = pycnn.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = pycnn.InferenceSession(model, opts)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    peer = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((batch, cin, hw, hw), dtype=np.float32)
    runners = {"pycnn": lambda a: sess.run(None, {"x": a})[0], "ort": lambda a: peer.run(None, {"x": a})[0]}
    times = {e: [] for e in runners}
    outputs = {e: np.array(fn(x), copy=True) for e, fn in runners.items()}
    for _ in range(blocks):
        for e, fn in runners.items():
            time.sleep(gap_s)
            for _ in range(warmup):
                fn(x)
            for _ in range(runs):
                t0 = time.perf_counter()
                fn(x)
                times[e].append((time.perf_counter() - t0) * 1e3)
    ref = outputs["ort"].astype(np.float64)
    rel = float(np.linalg.norm(outputs["pycnn"] - ref) / max(np.linalg.norm(ref), 1e-30))
    med = {e: float(np.median(t)) for e, t in times.items()}
    oh = (hw + 2 * pad - k) // stride + 1
    flops = 2.0 * batch * cout * cin * k * k * oh * oh
    prof = sess.profile({"x": x}, runs=1)
    algorithm = next((n.algorithm for n in prof.nodes if n.op_type == "Conv"), "")
    return {"layer": list(layer), "threads": threads, "algorithm": algorithm, "pycnn_ms": med["pycnn"],
            "ort_ms": med["ort"], "ratio": med["pycnn"] / med["ort"], "pycnn_gflops": flops / med["pycnn"] / 1e6,
            "ort_gflops": flops / med["ort"] / 1e6, "rel_l2": rel}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layer", action="append", default=None, help="CIN,COUT,HW,K,STRIDE,PAD (repeatable)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--blocks", type=int, default=3, help="blocks of --runs calls per engine")
    ap.add_argument("--gap-ms", type=float, default=100.0)
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    layers = [tuple(int(v) for v in s.split(",")) for s in args.layer] if args.layer else RESNET50_LAYERS
    if any(len(layer) != 6 for layer in layers):
        ap.error("--layer takes six integers: CIN,COUT,HW,K,STRIDE,PAD")
    print(f"{'layer (cin,cout,hw,k,s,p)':26s} thr {'algorithm':22s} {'pycnn ms':>9s} {'ort ms':>8s} "
          f"{'pycnn/ort':>9s} {'GFLOP/s':>8s} {'ort':>6s}")
    rows = []
    for layer in layers:
        for threads in args.threads:
            r = bench_layer(layer, threads, args.runs, args.blocks, args.batch, args.gap_ms / 1e3)
            rows.append(r)
            print(f"{','.join(map(str, layer)):26s} {threads:3d} {r['algorithm'][:22]:22s} {r['pycnn_ms']:9.3f} "
                  f"{r['ort_ms']:8.3f} {r['ratio']:9.2f} {r['pycnn_gflops']:8.1f} {r['ort_gflops']:6.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"isa": pycnn.active_isa(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
