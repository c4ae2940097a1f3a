"""Exceptions pycnn raises. Every one derives from PycnnError.

- UnsupportedModelError (also NotImplementedError): the model uses operators,
  attributes or data types pycnn does not implement; raised once at load,
  listing every node concerned.
- InvalidModelError (also ValueError): the file is not a valid ONNX model, or
  the graph is malformed.
- InvalidArgumentError (also ValueError): bad input to run(): unknown or
  missing input names, wrong dtype, rank or shape.
- EngineError (also RuntimeError): something failed while running.
"""
from ._core import (  # noqa: F401  (re-exported)
    EngineError,
    InvalidArgumentError,
    InvalidModelError,
    PycnnError,
    UnsupportedModelError,
)

__all__ = ["PycnnError", "UnsupportedModelError", "InvalidModelError", "InvalidArgumentError", "EngineError"]
