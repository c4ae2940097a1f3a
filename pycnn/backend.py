"""pycnn as an onnx.backend.base.Backend, so the ONNX conformance suite (and
any tool written for ONNX backends) can drive it:

    import pycnn.backend as backend
    rep = backend.prepare(model)
    outputs = rep.run([x])
"""
from __future__ import annotations

import numpy as np
from onnx.backend.base import Backend, BackendRep

from .session import InferenceSession, SessionOptions


class PycnnBackendRep(BackendRep):
    """A prepared model; run() takes inputs by position (or a dict by name)."""

    def __init__(self, session: InferenceSession):
        self.session = session

    def run(self, inputs, **kwargs):
        names = [i.name for i in self.session.get_inputs()]
        if isinstance(inputs, dict):
            feed = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            if len(inputs) > len(names):
                raise ValueError(f"got {len(inputs)} inputs, the model takes {len(names)}: {names}")
            feed = dict(zip(names, inputs))
        return tuple(self.session.run(None, feed))


class PycnnBackend(Backend):
    @classmethod
    def is_compatible(cls, model, device: str = "CPU", **kwargs) -> bool:
        return cls.supports_device(device)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.upper().startswith("CPU")

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs) -> PycnnBackendRep:
        if not cls.supports_device(device):
            raise ValueError(f"pycnn runs on the CPU, not on {device!r}")
        options = SessionOptions()
        for key in ("intra_op_num_threads", "graph_optimization_level"):
            if key in kwargs:
                setattr(options, key, kwargs[key])
        return PycnnBackendRep(InferenceSession(model, options))

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device: str = "CPU", outputs_info=None, **kwargs):
        raise NotImplementedError("pycnn runs whole models; wrap the node in a graph and use prepare()")


prepare = PycnnBackend.prepare
run_model = PycnnBackend.run_model
supports_device = PycnnBackend.supports_device
is_compatible = PycnnBackend.is_compatible
