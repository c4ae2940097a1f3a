#include "kernels/conv/im2col.h"

#include <algorithm>

namespace pycnn::kernels {

void im2col_packed(const float* x, int64_t channels, const Window2D& g, int nr, float* out, int64_t p0,
                   int64_t p1) {
  const int64_t N = g.oh * g.ow, K = channels * g.kh * g.kw;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t n0 = p * nr, cols = std::min<int64_t>(nr, N - n0);
    float* o = out + n0 * K;
    for (int64_t c = 0; c < channels; ++c) {
      const float* xc = x + c * g.ih * g.iw;
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j, o += nr) {
          int64_t oh = n0 / g.ow, ow = n0 % g.ow;
          for (int64_t t = 0; t < cols; ++t) {
            const int64_t ihx = oh * g.sh - g.ph + i * g.dh, iwx = ow * g.sw - g.pw + j * g.dw;
            o[t] = (ihx >= 0 && ihx < g.ih && iwx >= 0 && iwx < g.iw) ? xc[ihx * g.iw + iwx] : 0.f;
            if (++ow == g.ow) { ow = 0; ++oh; }
          }
          for (int64_t t = cols; t < nr; ++t) o[t] = 0.f;
        }
    }
  }
}

void col2im_add(const float* cols, int64_t channels, const Window2D& g, float* y) {
  // cols rows: (c, i, j); cols columns: positions (oh, ow) of the forward conv output.
  const int64_t N = g.oh * g.ow;
  for (int64_t c = 0; c < channels; ++c) {
    float* yc = y + c * g.ih * g.iw;
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const float* col = cols + ((c * g.kh + i) * g.kw + j) * N;
        for (int64_t oh = 0; oh < g.oh; ++oh) {
          const int64_t ihx = oh * g.sh - g.ph + i * g.dh;
          if (ihx < 0 || ihx >= g.ih) continue;
          for (int64_t ow = 0; ow < g.ow; ++ow) {
            const int64_t iwx = ow * g.sw - g.pw + j * g.dw;
            if (iwx >= 0 && iwx < g.iw) yc[ihx * g.iw + iwx] += col[oh * g.ow + ow];
          }
        }
      }
  }
}

}  // namespace pycnn::kernels
