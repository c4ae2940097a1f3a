// Zero padding of one input plane, shared by the convolution algorithms that
// work on padded copies (indirect GEMM, Winograd).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace pycnn::kernels {

// out (rows x width) = the ih x iw plane x placed at (ph, pw), zeros around it;
// what falls past `rows` or `width` is cut.
inline void pad_plane(const float* x, int64_t ih, int64_t iw, int64_t ph, int64_t pw, int64_t rows, int64_t width,
                      float* out) {
  const int64_t left = std::min(pw, width), n = std::max<int64_t>(0, std::min(iw, width - pw));
  for (int64_t r = 0; r < rows; ++r) {
    float* d = out + r * width;
    const int64_t src = r - ph;
    if (src < 0 || src >= ih) {
      std::fill(d, d + width, 0.f);
      continue;
    }
    std::fill(d, d + left, 0.f);
    if (n > 0) std::memcpy(d + pw, x + src * iw, size_t(n) * sizeof(float));
    std::fill(d + left + n, d + width, 0.f);
  }
}

}  // namespace pycnn::kernels
