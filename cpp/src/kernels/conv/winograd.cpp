#include "kernels/conv/winograd.h"

#include "kernels/conv/padding.h"

#include <algorithm>
#include <cstring>

namespace pycnn::kernels {

void Winograd43::transform_weights(const float* w, int64_t M, int64_t C, float* u) {
  static const double G[6][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                 {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < C; ++c) {
      const float* k = w + (m * C + c) * 9;
      double gk[6][3];  // G k
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 3; ++j) gk[i][j] = G[i][0] * k[0 * 3 + j] + G[i][1] * k[1 * 3 + j] + G[i][2] * k[2 * 3 + j];
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) {
          const double v = gk[i][0] * G[j][0] + gk[i][1] * G[j][1] + gk[i][2] * G[j][2];  // (G k G^T)[i][j]
          u[((i * 6 + j) * M + m) * C + c] = float(v);
        }
    }
}

Winograd43::Winograd43(const Window2D& geometry, int64_t n) : g(geometry), batch(n) {
  th = (g.oh + 3) / 4;
  tw = (g.ow + 3) / 4;
  tiles = batch * th * tw;
  tiles_ld = (tiles + 15) / 16 * 16;
  padded_w = tw * 4 + 2;
  padded_h = th * 4 + 2;
}

void Winograd43::pad_plane(const float* xc, float* out) const {
  kernels::pad_plane(xc, g.ih, g.iw, g.ph, g.pw, padded_h, padded_w, out);
}

}  // namespace pycnn::kernels
