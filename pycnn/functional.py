"""Numpy functions backed by pycnn's kernels (through the Cython module
pycnn._functional; the GIL is released while they compute).

This layer starts with the element-wise activations, named and parametrized
like torch.nn.functional; convolution, pooling and normalization follow.
Inputs are computed in float32 (other dtypes are converted); the result is a
new float32 array of the same shape.
"""
from __future__ import annotations

import numpy as np

from . import _functional


def _act(kind: str, x, alpha: float = 0.0, beta: float = 0.0) -> np.ndarray:
    return _functional.activation(kind, np.asarray(x, dtype=np.float32), alpha, beta)


def relu(x) -> np.ndarray:
    return _act("relu", x)


def relu6(x) -> np.ndarray:
    return _act("clip", x, 0.0, 6.0)


def leaky_relu(x, negative_slope: float = 0.01) -> np.ndarray:
    return _act("leaky_relu", x, negative_slope)


def elu(x, alpha: float = 1.0) -> np.ndarray:
    return _act("elu", x, alpha)


def selu(x) -> np.ndarray:
    return _act("selu", x, 1.6732632423543772, 1.0507009873554805)


def gelu(x, approximate: str = "none") -> np.ndarray:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return _act("gelu" if approximate == "none" else "gelu_tanh", x)


def silu(x) -> np.ndarray:
    return _act("silu", x)


def hardswish(x) -> np.ndarray:
    return _act("hardswish", x)


def sigmoid(x) -> np.ndarray:
    return _act("sigmoid", x)


def tanh(x) -> np.ndarray:
    return _act("tanh", x)


def softplus(x) -> np.ndarray:
    return _act("softplus", x)


__all__ = ["relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "hardswish", "sigmoid", "tanh", "softplus"]
