"""pycnn.functional: the operations of a CNN as fast numpy functions.

Names, arguments and semantics follow torch.nn.functional, so code moves
over unchanged; each call runs the C++ operator a pycnn session runs for the
same ONNX node (through the Cython module pycnn._functional, GIL released).

Arrays are NCHW (NCL in 1-D; the batch dim may be left out, as torch
allows). Inputs are computed in float32: bool, integer and float16/64 arrays
are converted, complex and object arrays are refused with a TypeError; every
result is a new float32 array. Bad arguments raise InvalidArgumentError (a
ValueError) naming the function, the argument and the values. NaN inputs
follow the session's kernels (as ONNX Runtime's): relu, relu6 and the max
pools may turn a NaN into a number where torch propagates it.

- convolution: conv1d, conv2d, conv_transpose1d, conv_transpose2d
- pooling: max_pool1d, max_pool2d, avg_pool1d, avg_pool2d, adaptive_avg_pool2d,
  global_avg_pool2d, global_max_pool2d
- normalization: batch_norm, instance_norm, layer_norm, group_norm
- activations: relu, relu6, leaky_relu, elu, selu, gelu, silu, hardswish,
  hardsigmoid, hardtanh, sigmoid, tanh, softplus, softsign, softmax, log_softmax
- the notes, computed: conv_output_shape, pool_output_shape, conv2d_matrix,
  receptive_field
- threads and memory: set_num_threads, get_num_threads,
  set_weight_cache_limit, clear_weight_cache
"""
from ._args import get_num_threads, set_num_threads
from ._cache import clear_weight_cache, set_weight_cache_limit
from .activation import (elu, gelu, hardsigmoid, hardswish, hardtanh, leaky_relu, log_softmax, relu, relu6, selu,
                         sigmoid, silu, softmax, softplus, softsign, tanh)
from .conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from .norm import batch_norm, group_norm, instance_norm, layer_norm
from .pool import (adaptive_avg_pool2d, avg_pool1d, avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool1d,
                   max_pool2d)
from .teaching import LayerField, conv2d_matrix, conv_output_shape, pool_output_shape, receptive_field

__all__ = [
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d",
    "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool2d", "global_avg_pool2d",
    "global_max_pool2d",
    "batch_norm", "instance_norm", "layer_norm", "group_norm",
    "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "hardswish", "hardsigmoid", "hardtanh", "sigmoid",
    "tanh", "softplus", "softsign", "softmax", "log_softmax",
    "conv_output_shape", "pool_output_shape", "conv2d_matrix", "receptive_field", "LayerField",
    "set_num_threads", "get_num_threads", "set_weight_cache_limit", "clear_weight_cache",
]
