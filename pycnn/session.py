"""InferenceSession and SessionOptions, shaped like ONNX Runtime's so code
written for it carries over:

    sess = pycnn.InferenceSession("model.onnx")
    name = sess.get_inputs()[0].name
    (logits,) = sess.run(None, {name: x})
"""
from __future__ import annotations

import enum
import warnings

import numpy as np

from . import _core
from .errors import InvalidArgumentError
from .onnx_import import build_graph, layer_outline, load_model

_CPU_PROVIDERS = ("CPUExecutionProvider", "PycnnExecutionProvider")


class GraphOptimizationLevel(enum.IntEnum):
    """Same names and values as onnxruntime.GraphOptimizationLevel."""

    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_ALL = 99


class SessionOptions:
    """Options for InferenceSession.

    intra_op_num_threads: threads one run uses; 0 (default) means every CPU
        this process may use (its affinity mask, capped by a cgroup quota).
    graph_optimization_level: ORT_DISABLE_ALL runs the graph as written
        (only constant folding); anything higher folds batch norms and fuses
        activations into convolutions.
    inter_op_num_threads: accepted for compatibility; pycnn runs nodes in order.
    enable_winograd: use Winograd F(4x4, 3x3) or F(2x2, 3x3) for 3x3 stride-1 convolutions
        where it is faster (default True). Its rounding error is a few times
        that of direct convolution (see docs/architecture.md); False gives
        direct convolution everywhere.
    enable_blocked_layout: run chains of depthwise and 1x1 convolutions (MobileNet
        and EfficientNet blocks) on channel-blocked tensors (NCHW8c with AVX2,
        NCHW16c with AVX-512), reordered at the chain's edges (default True).
        False keeps every tensor NCHW; results agree to float rounding.
    enable_image_by_image: at batch > 1, run the leading layers (those whose
        feature maps outgrow the caches at the batch's size, up to where the
        weights outweigh an image's maps) one image at a time, so each
        image's maps stay in cache from one layer to the next (default True).
        False runs every layer on the whole batch; results agree to float rounding.
    """

    def __init__(self):
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0
        self.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
        self.enable_winograd = True
        self.enable_blocked_layout = True
        self.enable_image_by_image = True

    def __repr__(self):
        return (f"SessionOptions(intra_op_num_threads={self.intra_op_num_threads}, "
                f"graph_optimization_level={GraphOptimizationLevel(int(self.graph_optimization_level)).name})")


def _check_providers(providers):
    if providers is None or len(providers) == 0:
        return
    names = [p[0] if isinstance(p, (tuple, list)) else p for p in providers]
    if not any(n in _CPU_PROVIDERS for n in names):
        raise ValueError(f"providers {names} are not available in pycnn; it runs on the CPU only: "
                         "use providers=['CPUExecutionProvider'] or leave providers out")
    ignored = [n for n in names if n not in _CPU_PROVIDERS]
    if ignored:
        warnings.warn(f"pycnn ignores providers {ignored} and runs on the CPU", stacklevel=3)


class InferenceSession:
    """A model loaded, optimized and ready to run.

    model: a path to an .onnx file, the file's bytes, or an onnx.ModelProto.
    sess_options: a SessionOptions (threads, optimization level).
    providers: accepted for ONNX Runtime compatibility; pycnn runs on the CPU.

    Raises UnsupportedModelError listing every node pycnn cannot run, and
    InvalidModelError for malformed files.
    """

    def __init__(self, path_or_bytes, sess_options: SessionOptions | None = None, providers=None,
                 provider_options=None, **kwargs):
        _check_providers(providers)
        options = sess_options or SessionOptions()
        threads = int(options.intra_op_num_threads or 0)
        if threads < 0:
            raise ValueError(f"intra_op_num_threads must be >= 0 (0 = all available CPUs), got {threads}")
        model = load_model(path_or_bytes)
        # A proto this session parsed itself may give up each initializer's
        # bytes once copied into the graph: the peak memory of loading stays
        # near one copy of the weights. A caller's ModelProto is left intact.
        owned = model is not path_or_bytes
        self._outline = layer_outline(model)  # for pycnn.functional.receptive_field
        graph, self._inputs, self._outputs = build_graph(model, release_initializers=owned)
        del model
        self._options = options
        self._session = _core.Session(graph, threads, int(options.graph_optimization_level),
                                      bool(getattr(options, "enable_winograd", True)),
                                      bool(getattr(options, "enable_blocked_layout", True)),
                                      bool(getattr(options, "enable_image_by_image", True)))
        del graph
        _core.trim_heap()  # the weights' load-time copies, freed above, leave the process

    # -- ONNX Runtime's API --------------------------------------------------
    def get_inputs(self):
        """The model's inputs: objects with name, shape (ints or symbols) and type ('tensor(float)')."""
        return list(self._inputs)

    def get_outputs(self):
        """The model's outputs: objects with name, shape and type."""
        return list(self._outputs)

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def get_session_options(self) -> SessionOptions:
        return self._options

    def run(self, output_names, input_feed, run_options=None):
        """Runs the model.

        output_names: names of the outputs wanted, or None for all.
        input_feed: {input name: numpy array}.
        Returns the outputs as a list of numpy arrays, in the order asked.
        The GIL is released while the model runs.
        """
        if not isinstance(input_feed, dict):
            raise InvalidArgumentError(f"input_feed must be a dict {{input name: numpy array}}, "
                                       f"got {type(input_feed).__name__}")
        names, arrays = [], []
        for name, value in input_feed.items():
            if not isinstance(name, str):
                raise InvalidArgumentError(f"input names must be strings, got {name!r}")
            arr = value if isinstance(value, np.ndarray) else np.asarray(value)
            if arr.dtype == object:
                raise InvalidArgumentError(f"input '{name}' is not a numeric array (dtype=object)")
            names.append(name)
            arrays.append(arr)
        return self._session.run(names, arrays, list(output_names or []))

    # -- pycnn extras ----------------------------------------------------------
    def profile(self, input_feed, runs: int = 10, warmup: int = 2):
        """Runs the model `warmup` + `runs` times and returns a pycnn.profiling.Profile:
        per node the op, shapes, algorithm, mean time, share of the total and GFLOP/s.
        profile.table() prints it; profile.chrome_trace(path) writes a trace."""
        from .profiling import Profile

        for _ in range(warmup):
            self.run(None, input_feed)
        self._session.set_profiling(True)
        try:
            for _ in range(runs):
                self.run(None, input_feed)
            records = self._session.profile()
        finally:
            self._session.set_profiling(False)
        return Profile(records, runs)

    @property
    def num_threads(self) -> int:
        """Threads each run uses."""
        return self._session.num_threads

    def optimized_nodes(self):
        """(name, op_type, fused) of every node after graph optimization."""
        return self._session.node_summary()
