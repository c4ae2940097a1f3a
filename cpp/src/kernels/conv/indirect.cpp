#include "kernels/conv/indirect.h"

#include "kernels/conv/padding.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace pycnn::kernels {

IndirectConv::IndirectConv(const Window2D& geometry) : g(geometry), s(geometry.sh) {
  // A phase plane must hold every output column's window and the whole input row.
  const int64_t wp = std::max((g.ow - 1) * s + (g.kw - 1) * g.dw + 1, g.pw + g.iw);
  wq = (wp + s - 1) / s;
  // Rows: down to the last output row's window.
  hq = (g.oh - 1) + ((g.kh - 1) * g.dh) / s + 1;
  channel_floats = s * s * hq * wq;
}

int64_t IndirectConv::input_floats(int64_t channels) const {
  return channels * channel_floats;
}

void IndirectConv::build_input(const float* x, int64_t c0, int64_t c1, float* out) const {
  const int64_t hp = hq * s;
  const KernelTable& kt = active();
  std::vector<float> padded(size_t(s > 1 ? wq * s : 0));  // one padded input row (stride > 1)
  for (int64_t c = c0; c < c1; ++c) {
    float* base = out + c * channel_floats;
    const float* xc = x + c * g.ih * g.iw;
    if (s == 1) {
      pad_plane(xc, g.ih, g.iw, g.ph, g.pw, hp, wq, base);
      continue;
    }
    // Stride s: padded element (r, col) goes to phase (r % s, col % s) at
    // (r / s, col / s). Each row is padded first (zeros around a copy), so
    // the split is a plain strided copy with no bounds to test (stride 2:
    // vector shuffles).
    for (int64_t r = 0; r < hp; ++r) {
      const int64_t src = r - g.ph, py = r % s, rq = r / s;
      if (src < 0 || src >= g.ih) {
        for (int64_t px = 0; px < s; ++px) std::fill_n(base + (py * s + px) * hq * wq + rq * wq, wq, 0.f);
        continue;
      }
      pad_plane(xc + src * g.iw, 1, g.iw, 0, g.pw, 1, wq * s, padded.data());
      if (s == 2) {
        float* even = base + py * 2 * hq * wq + rq * wq;
        kt.split_even_odd(padded.data(), wq, even, even + hq * wq);
        continue;
      }
      for (int64_t px = 0; px < s; ++px) {
        float* d = base + (py * s + px) * hq * wq + rq * wq;
        const float* from = padded.data() + px;
        for (int64_t cq = 0; cq < wq; ++cq) d[cq] = from[cq * s];
      }
    }
  }
}

void IndirectConv::build_rows(const float* input, int64_t channels, const float** rows) const {
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t dy = i * g.dh, dx = j * g.dw;
        const int64_t phase = (dy % s) * s + dx % s;
        *rows++ = input + c * channel_floats + phase * hq * wq + (dy / s) * wq + dx / s;
      }
}

}  // namespace pycnn::kernels
