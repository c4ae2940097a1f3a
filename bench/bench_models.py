"""Whole-model latency: pycnn against ONNX Runtime (and OpenVINO, PyTorch when
installed), in one process, taking turns (A B C A B C ...) after warm-up.
Prints medians, p90 and the ratios pycnn / peer; --json writes the same numbers.
The same as `pycnn bench`; the library is pycnn/benchmark.py.

    python bench/bench_models.py --models resnet18 mobilenet_v2 --threads 1 2 --batch 1 --runs 30
"""
import sys

from pycnn.benchmark import main

if __name__ == "__main__":
    sys.exit(main(prog="bench_models.py"))
