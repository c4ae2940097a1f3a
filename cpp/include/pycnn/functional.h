// The functional layer's C++ entry points (used by pycnn._functional):
// single kernels on raw float32 buffers, no graph.
#pragma once
#include <cstdint>
#include <string>

namespace pycnn::functional {

// y = activation(x) for kind in relu, leaky_relu, elu, selu, sigmoid,
// hard_sigmoid, hardswish, silu, tanh, softplus, softsign, gelu, gelu_tanh,
// clip. Throws pycnn::Error for an unknown kind.
void activation(const std::string& kind, const float* x, float* y, int64_t n, float alpha, float beta, int threads);

}  // namespace pycnn::functional
