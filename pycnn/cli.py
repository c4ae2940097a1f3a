"""The `pycnn` command:

    pycnn demo                     classify the bundled digit images, print accuracy and latency
    pycnn info MODEL.onnx          inputs, outputs, op counts, parameters, MACs
    pycnn run MODEL.onnx [--input x.npy] [--threads N] [--repeat K]
    pycnn bench [--models ...] [--batch ...] [--threads ...] [--json out.json] [--plot out.png] [--load] [--profile]
"""
from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time

import numpy as np

from . import __version__, active_isa
from .errors import PycnnError
from .session import InferenceSession, SessionOptions


def _session(model, threads: int) -> InferenceSession:
    options = SessionOptions()
    options.intra_op_num_threads = threads
    return InferenceSession(model, options)


def _timed_runs(sess, feed, repeat: int):
    """Runs once to warm up, then `repeat` times; returns (outputs, latencies in ms)."""
    outputs = sess.run(None, feed)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return outputs, times


def _concrete(shape, batch=1):
    """A declared shape with symbolic dims set (batch dim to `batch`, others to 1)."""
    return [d if isinstance(d, int) else (batch if i == 0 else 1) for i, d in enumerate(shape or [1])]


def cmd_demo(args) -> int:
    from .demo import MODEL_PATH, load_samples

    images, labels = load_samples()
    sess = _session(str(MODEL_PATH), args.threads)
    name = sess.get_inputs()[0].name
    (logits,), batch_ms = _timed_runs(sess, {name: images}, args.repeat)
    one = images[:1]
    _, single_ms = _timed_runs(sess, {name: one}, args.repeat)
    pred = logits.argmax(1)
    accuracy = float((pred == labels).mean())
    print(f"pycnn {__version__} demo: a small CNN trained on scikit-learn's 8x8 digits (pycnn/demo/train.py)")
    print(f"  kernels: {active_isa()}, threads: {sess.num_threads}")
    print(f"  {len(labels)} held-out images, accuracy {accuracy * 100:.1f}%")
    print(f"  latency, batch of {len(labels)}: median {statistics.median(batch_ms):.3f} ms "
          f"({statistics.median(batch_ms) * 1e3 / len(labels):.1f} us per image)")
    print(f"  latency, one image: median {statistics.median(single_ms):.3f} ms over {args.repeat} runs")
    for i in range(min(8, len(labels))):
        img = images[i, 0]
        rows = ["".join(" .:-=+*#%@"[min(9, int(v * 9.99))] for v in row) for row in img]
        print(f"  sample {i}: predicted {pred[i]} (label {labels[i]})   " + " | ".join(rows[2:6]))
    return 0 if accuracy > 0.9 else 1


def _macs(model) -> int:
    """Multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul at batch 1."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.input:
        if vi.type.HasField("tensor_type"):
            for d in vi.type.tensor_type.shape.dim:
                if not d.HasField("dim_value"):
                    d.dim_value = 1
    try:
        m = onnx.shape_inference.infer_shapes(m)
    except Exception:
        return -1
    shapes = {}
    for vi in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input):
        if vi.type.HasField("tensor_type"):
            shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for t in m.graph.initializer:
        shapes[t.name] = list(t.dims)
    total = 0
    for n in m.graph.node:
        out = shapes.get(n.output[0]) if n.output else None
        if not out:
            continue
        if n.op_type == "Conv" and n.input[1] in shapes:
            w = shapes[n.input[1]]
            total += int(np.prod(out)) * int(np.prod(w[1:]))
        elif n.op_type == "ConvTranspose" and n.input[1] in shapes and n.input[0] in shapes:
            w = shapes[n.input[1]]
            total += int(np.prod(shapes[n.input[0]])) * int(np.prod(w[1:]))
        elif n.op_type in ("Gemm", "MatMul") and n.input[0] in shapes:
            a = shapes[n.input[0]]
            k = a[0] if (n.op_type == "Gemm" and any(x.name == "transA" and x.i for x in n.attribute)) else a[-1]
            total += int(np.prod(out)) * int(k)
    return total


def cmd_info(args) -> int:
    import onnx

    sess = _session(args.model, 1)
    model = onnx.load(args.model)
    print(f"model: {args.model}")
    print(f"  ir_version {model.ir_version}, opsets " +
          ", ".join(f"{i.domain or 'ai.onnx'} {i.version}" for i in model.opset_import))
    for label, items in (("inputs", sess.get_inputs()), ("outputs", sess.get_outputs())):
        print(f"{label}:")
        for a in items:
            print(f"  {a.name}: {a.type} {a.shape}")
    counts = collections.Counter(n.op_type for n in model.graph.node)
    print(f"nodes: {sum(counts.values())}  (after pycnn's optimizations: {len(sess.optimized_nodes())})")
    for op, c in counts.most_common():
        print(f"  {op:24s} {c}")
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer
                 if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE))
    print(f"parameters: {params:,}")
    macs = _macs(model)
    print("MACs (batch 1): " + (f"{macs:,} ({macs / 1e9:.2f} G)" if macs >= 0 else "unknown (shape inference failed)"))
    return 0


def cmd_run(args) -> int:
    sess = _session(args.model, args.threads)
    feed = {}
    inputs = sess.get_inputs()
    if args.input:
        if len(args.input) != len(inputs):
            print(f"error: the model has {len(inputs)} inputs ({[i.name for i in inputs]}); "
                  f"give one --input per input", file=sys.stderr)
            return 2
        for spec, path in zip(inputs, args.input):
            feed[spec.name] = np.load(path)
    else:
        rng = np.random.default_rng(0)
        dtypes = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64}
        for spec in inputs:
            shape = _concrete(spec.shape, args.batch)
            feed[spec.name] = rng.standard_normal(shape).astype(dtypes.get(spec.type, np.float32))
        print("inputs: random " + ", ".join(f"{k} {list(v.shape)}" for k, v in feed.items()))
    outputs, times = _timed_runs(sess, feed, args.repeat)
    for spec, out in zip(sess.get_outputs(), outputs):
        print(f"output {spec.name}: shape {list(out.shape)} dtype {out.dtype}")
        if out.ndim == 2 and out.shape[1] > 1 and out.dtype.kind == "f":
            top = np.argsort(-out[0])[:5]
            print("  top-5 of item 0: " + ", ".join(f"{i} ({out[0, i]:.4f})" for i in top))
        else:
            print(f"  {np.array2string(out.ravel()[:10], precision=4)}{' ...' if out.size > 10 else ''}")
    print(f"latency: median {statistics.median(times):.3f} ms, min {min(times):.3f} ms over {args.repeat} runs "
          f"({sess.num_threads} threads, {active_isa()})")
    return 0


def cmd_bench(args) -> int:
    from . import benchmark

    return benchmark.run_from_args(args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pycnn", description="pycnn: a compiled CPU inference engine for CNNs")
    parser.add_argument("--version", action="version", version=f"pycnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="classify the bundled digit images; print accuracy and latency")
    p.add_argument("--threads", type=int, default=0, help="threads (0: all available)")
    p.add_argument("--repeat", type=int, default=50, help="timed runs")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("info", help="inputs, outputs, op counts, parameters and MACs of a model")
    p.add_argument("model")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("run", help="run a model on .npy inputs (or random ones); print outputs and latency")
    p.add_argument("model")
    p.add_argument("--input", action="append", help="an .npy file per model input, in order")
    p.add_argument("--threads", type=int, default=0, help="threads (0: all available)")
    p.add_argument("--batch", type=int, default=1, help="batch size for random inputs")
    p.add_argument("--repeat", type=int, default=20, help="timed runs")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("bench", help="latency of the zoo models: pycnn against ONNX Runtime, OpenVINO, PyTorch",
                       description="Whole-model latency of pycnn against the other engines installed, taking turns "
                                   "in one process; see pycnn/benchmark.py for the method.")
    from .benchmark import add_arguments

    add_arguments(p)
    p.set_defaults(func=cmd_bench)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (PycnnError, FileNotFoundError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
