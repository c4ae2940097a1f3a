// im2col straight into the GEMM's packed-B layout (panels of nr columns), so
// the convolution pays one copy instead of two. Column n is output pixel
// (oh, ow); row k is (channel, kernel row, kernel col).
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

namespace pycnn::kernels {

// x: [channels, g.ih, g.iw]. Packs panels [p0, p1) of the K x (oh*ow) matrix.
void im2col_packed(const float* x, int64_t channels, const Window2D& g, int nr, float* out, int64_t p0,
                   int64_t p1);

// The transpose: accumulates cols [channels*kh*kw, ih*iw] into y [channels, oh, ow]
// where g describes the *forward* convolution from y to cols (used by ConvTranspose).
void col2im_add(const float* cols, int64_t channels, const Window2D& g, float* y);

}  // namespace pycnn::kernels
