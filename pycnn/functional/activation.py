"""Element-wise activations and softmax on numpy arrays, named and
parametrized like torch.nn.functional. Any shape; computed in float32.
inplace=True writes into the input when it is a writable C-contiguous
float32 array (else it raises)."""
from __future__ import annotations

import numbers

import numpy as np

from .. import _functional
from . import _args
from ._args import bad


def _act(fn: str, kind: str, x, inplace: bool = False, alpha: float = 0.0, beta: float = 0.0) -> np.ndarray:
    if inplace:
        if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous and x.flags.writeable):
            raise bad(fn, "inplace=True needs a writable C-contiguous float32 numpy array")
        return _functional.activation(kind, x, alpha, beta, _args.threads(), out=x)
    return _functional.activation(kind, _args.as_float32(x, fn, "input"), alpha, beta, _args.threads())


def relu(input, inplace: bool = False) -> np.ndarray:
    """max(x, 0)."""
    return _act("relu", "relu", input, inplace)


def relu6(input, inplace: bool = False) -> np.ndarray:
    """min(max(x, 0), 6) (MobileNet's activation)."""
    return _act("relu6", "clip", input, inplace, 0.0, 6.0)


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False) -> np.ndarray:
    """x for x >= 0, negative_slope * x otherwise."""
    return _act("leaky_relu", "leaky_relu", input, inplace, negative_slope)


def elu(input, alpha: float = 1.0, inplace: bool = False) -> np.ndarray:
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    return _act("elu", "elu", input, inplace, alpha)


def selu(input, inplace: bool = False) -> np.ndarray:
    """scale * elu(x, alpha) with the self-normalizing constants."""
    return _act("selu", "selu", input, inplace, 1.6732632423543772, 1.0507009873554805)


def gelu(input, approximate: str = "none") -> np.ndarray:
    """x * Phi(x) (approximate='none', with erf) or its tanh approximation ('tanh')."""
    if approximate not in ("none", "tanh"):
        raise bad("gelu", f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return _act("gelu", "gelu" if approximate == "none" else "gelu_tanh", input)


def silu(input, inplace: bool = False) -> np.ndarray:
    """x * sigmoid(x) (swish; EfficientNet's activation)."""
    return _act("silu", "silu", input, inplace)


def hardswish(input, inplace: bool = False) -> np.ndarray:
    """x * relu6(x + 3) / 6."""
    return _act("hardswish", "hardswish", input, inplace)


def hardsigmoid(input, inplace: bool = False) -> np.ndarray:
    """relu6(x + 3) / 6: a piecewise-linear sigmoid."""
    return _act("hardsigmoid", "hard_sigmoid", input, inplace, 1.0 / 6.0, 0.5)


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> np.ndarray:
    """x clamped to [min_val, max_val]."""
    if not min_val <= max_val:
        raise bad("hardtanh", f"min_val must be <= max_val, got min_val={min_val}, max_val={max_val}")
    return _act("hardtanh", "clip", input, inplace, min_val, max_val)


def softsign(input) -> np.ndarray:
    """x / (1 + |x|)."""
    return _act("softsign", "softsign", input)


def sigmoid(input) -> np.ndarray:
    """1 / (1 + exp(-x))."""
    return _act("sigmoid", "sigmoid", input)


def tanh(input) -> np.ndarray:
    return _act("tanh", "tanh", input)


def softplus(input) -> np.ndarray:
    """log(1 + exp(x))."""
    return _act("softplus", "softplus", input)


def _softmax(fn: str, op: str, input, dim) -> np.ndarray:
    x = _args.as_float32(input, fn, "input")
    if not isinstance(dim, numbers.Integral) or isinstance(dim, bool):
        raise bad(fn, f"dim must be an int (the axis to normalize over), got {dim!r}")
    if x.ndim == 0:
        x = x.reshape(1)
        return _softmax(fn, op, x, dim).reshape(())
    if not -x.ndim <= dim < x.ndim:
        raise bad(fn, f"dim={dim} is out of range for an input of {x.ndim} dims")
    if x.size == 0:
        return np.empty(x.shape, np.float32)
    (y,) = _args.run(op, fn, [x], [False], {"axis": int(dim)})
    return y


def softmax(input, dim: int) -> np.ndarray:
    """exp(x) / sum(exp(x)) along dim (computed stably: the max is subtracted first)."""
    return _softmax("softmax", "Softmax", input, dim)


def log_softmax(input, dim: int) -> np.ndarray:
    """x - log(sum(exp(x))) along dim, without forming softmax (accurate for very negative values)."""
    return _softmax("log_softmax", "LogSoftmax", input, dim)
