#include "kernels/conv/im2col.h"

#include <algorithm>
#include <cstring>

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
          // The panel's columns are runs of output pixels along a row; each run
          // reads one input row (contiguously when the stride is 1).
          for (int64_t t = 0; t < cols;) {
            const int64_t oh = (n0 + t) / g.ow, ow0 = (n0 + t) % g.ow;
            const int64_t run = std::min(cols - t, g.ow - ow0);
            float* d = o + t;
            const int64_t ihx = oh * g.sh - g.ph + i * g.dh;
            if (ihx < 0 || ihx >= g.ih) {
              std::fill(d, d + run, 0.f);
            } else {
              const float* xr = xc + ihx * g.iw;
              const int64_t base = ow0 * g.sw - g.pw + j * g.dw;  // input column of the run's first pixel
              // Valid pixels u in [lo, hi): 0 <= base + u*sw < iw.
              const int64_t lo = base >= 0 ? 0 : std::min(run, (-base + g.sw - 1) / g.sw);
              const int64_t hi = base >= g.iw ? 0 : std::max(lo, std::min(run, (g.iw - base + g.sw - 1) / g.sw));
              std::fill(d, d + lo, 0.f);
              if (g.sw == 1) {
                std::memcpy(d + lo, xr + base + lo, size_t(hi - lo) * sizeof(float));
              } else {
                for (int64_t u = lo; u < hi; ++u) d[u] = xr[base + u * g.sw];
              }
              std::fill(d + hi, d + run, 0.f);
            }
            t += run;
          }
          std::fill(o + cols, o + nr, 0.f);
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
