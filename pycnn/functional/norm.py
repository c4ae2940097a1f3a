"""Normalization on numpy arrays (inference), with torch.nn.functional's
names and arguments, run by the ONNX normalization operators."""
from __future__ import annotations

import numbers

import numpy as np

from . import _args
from ._args import bad


def _input(fn, input) -> np.ndarray:
    x = _args.as_float32(input, fn, "input")
    if x.ndim < 2:
        raise bad(fn, f"input must be (N, C, ...), got shape {x.shape}")
    if x.size == 0:
        raise bad(fn, f"input is empty (shape {x.shape})")
    return x


def _per_channel(fn, name, v, C, default) -> np.ndarray:
    if v is None:
        return np.full(C, default, dtype=np.float32)
    a = _args.as_float32(v, fn, name)
    if a.shape != (C,):
        raise bad(fn, f"{name} must have shape ({C},) (one value per channel), got {a.shape}")
    return a


def _eps(fn, eps) -> float:
    if not isinstance(eps, numbers.Real) or not eps >= 0:
        raise bad(fn, f"eps must be a number >= 0, got {eps!r}")
    return float(eps)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5) -> np.ndarray:
    """(x - running_mean) / sqrt(running_var + eps) * weight + bias per channel
    of input (N, C, ...): batch normalization as inference runs it.
    training=True (batch statistics, updated running buffers) is not
    supported: pycnn is an inference engine."""
    fn = "batch_norm"
    if training:
        raise bad(fn, "training=True is not supported (pycnn runs inference: it normalizes with running_mean "
                      "and running_var); pass training=False")
    if running_mean is None or running_var is None:
        raise bad(fn, "running_mean and running_var are required")
    x = _input(fn, input)
    C = x.shape[1]
    stats = [_per_channel(fn, "weight", weight, C, 1.0), _per_channel(fn, "bias", bias, C, 0.0),
             _per_channel(fn, "running_mean", running_mean, C, 0.0),
             _per_channel(fn, "running_var", running_var, C, 1.0)]
    if np.any(stats[3] < 0):
        raise bad(fn, "running_var must be >= 0")
    (y,) = _args.run("BatchNormalization", fn, [x] + stats, [False] * 5, {"epsilon": _eps(fn, eps)})
    return y


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5) -> np.ndarray:
    """Normalizes each (image, channel) plane of input (N, C, ...) by its own
    mean and variance, then * weight + bias per channel.
    use_input_stats=False normalizes with running_mean/running_var instead
    (what batch_norm does)."""
    fn = "instance_norm"
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    x = _input(fn, input)
    if x.ndim < 3:
        raise bad(fn, f"input must be (N, C, spatial...), got shape {x.shape}")
    C = x.shape[1]
    (y,) = _args.run("InstanceNormalization", fn,
                     [x, _per_channel(fn, "weight", weight, C, 1.0), _per_channel(fn, "bias", bias, C, 0.0)],
                     [False] * 3, {"epsilon": _eps(fn, eps)})
    return y


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5) -> np.ndarray:
    """Normalizes over the last len(normalized_shape) dims of input (which
    must equal normalized_shape), then * weight + bias (each of that shape)."""
    fn = "layer_norm"
    x = _args.as_float32(input, fn, "input")
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    if not shape or x.ndim < len(shape) or x.shape[x.ndim - len(shape):] != shape:
        raise bad(fn, f"normalized_shape {shape} must be the trailing dims of input {x.shape}")
    if x.size == 0:
        raise bad(fn, f"input is empty (shape {x.shape})")
    params = []
    for name, v, default in (("weight", weight, 1.0), ("bias", bias, 0.0)):
        a = np.full(shape, default, dtype=np.float32) if v is None else _args.as_float32(v, fn, name)
        if a.shape != shape:
            raise bad(fn, f"{name} must have shape {shape}, got {a.shape}")
        params.append(a)
    (y,) = _args.run("LayerNormalization", fn, [x] + params, [False] * 3,
                     {"axis": -len(shape), "epsilon": _eps(fn, eps)})
    return y


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5) -> np.ndarray:
    """Splits the C channels of input (N, C, ...) into num_groups groups,
    normalizes each (image, group) by its mean and variance, then * weight +
    bias per channel."""
    fn = "group_norm"
    x = _input(fn, input)
    C = x.shape[1]
    if not isinstance(num_groups, numbers.Integral) or num_groups < 1 or C % num_groups:
        raise bad(fn, f"num_groups must be an int >= 1 that divides the {C} channels, got {num_groups!r}")
    (y,) = _args.run("GroupNormalization", fn,
                     [x, _per_channel(fn, "weight", weight, C, 1.0), _per_channel(fn, "bias", bias, C, 0.0)],
                     [False] * 3, {"num_groups": int(num_groups), "epsilon": _eps(fn, eps)})
    return y
