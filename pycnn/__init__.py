"""pycnn: a compiled CPU inference engine for convolutional neural networks.

    import numpy as np, pycnn
    sess = pycnn.InferenceSession("model.onnx")
    x = np.random.rand(1, 3, 224, 224).astype(np.float32)
    (logits,) = sess.run(None, {sess.get_inputs()[0].name: x})
"""
import os as _os

# OpenMP worker threads spin-wait this many times before sleeping (libgomp's
# default, 300000, keeps a core busy for about a millisecond after every run;
# users hate engines that burn idle CPU). Read when libgomp loads, so set
# before the compiled module is imported; an explicit setting wins.
_os.environ.setdefault("GOMP_SPINCOUNT", "20000")

try:
    from . import _core
except ImportError as e:  # a source checkout without the compiled modules
    raise ImportError(
        f"pycnn's compiled module could not be imported from {_os.path.dirname(__file__)} ({e}). "
        "If that is a source checkout, build it first (pip install . or pip install -e .) and run "
        "Python from another directory so the installed package is found.") from e
from .errors import EngineError, InvalidArgumentError, InvalidModelError, PycnnError, UnsupportedModelError
from .session import GraphOptimizationLevel, InferenceSession, SessionOptions

__version__ = "0.1.0"

active_isa = _core.active_isa
available_isas = _core.available_isas


def set_isa(name: str) -> None:
    """Forces a kernel path ("avx512", "avx2", "scalar") for sessions created
    afterwards and for pycnn.functional calls."""
    from . import _functional
    _core.set_isa(name)
    _functional.set_isa(name)


default_num_threads = _core.default_num_threads


def supported_ops():
    """The ONNX operators pycnn implements (plus Constant, folded at load)."""
    return sorted(set(_core.registered_ops()) | {"Constant"})


def get_available_providers():
    """ONNX Runtime-compatible: pycnn runs on the CPU."""
    return ["CPUExecutionProvider"]


__all__ = [
    "InferenceSession", "SessionOptions", "GraphOptimizationLevel", "PycnnError", "UnsupportedModelError",
    "InvalidModelError", "InvalidArgumentError", "EngineError", "active_isa", "available_isas", "set_isa",
    "default_num_threads", "supported_ops", "get_available_providers",
]
