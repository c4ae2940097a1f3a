// Convolution without im2col (indirect GEMM): the input is copied once into
// zero-padded planes, split into s x s phase planes for stride s, and each
// GEMM row (channel, kernel row, kernel col) is a pointer into them: output
// pixel (oh, ow) of that row is at oh * wq + ow, so each output row's pixels
// are contiguous whatever the stride (GemmB's row_cols = ow, row_stride = wq).
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

namespace pycnn::kernels {

struct IndirectConv {
  Window2D g{};
  int64_t s = 1;       // stride (equal in both dims)
  int64_t wq = 0, hq = 0;  // phase plane width and height
  int64_t channel_floats = 0;  // s * s * hq * wq

  // Only for equal strides.
  static bool applies(const Window2D& g) { return g.sh == g.sw; }
  explicit IndirectConv(const Window2D& geometry);

  // Floats of the padded input for `channels` channels.
  int64_t input_floats(int64_t channels) const;
  // Pads and phase-splits channels [c0, c1) of x (channels of ih x iw) into `out`.
  void build_input(const float* x, int64_t c0, int64_t c1, float* out) const;
  // The channels * kh * kw GEMM row pointers into `input`.
  void build_rows(const float* input, int64_t channels, const float** rows) const;
};

}  // namespace pycnn::kernels
