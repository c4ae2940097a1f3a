#include "kernels/conv/winograd.h"

#include "kernels/conv/padding.h"

namespace pycnn::kernels {

namespace {
int64_t tile_count(const Window2D& g, int64_t batch, int tile) {
  return batch * ((g.oh + tile - 1) / tile) * ((g.ow + tile - 1) / tile);
}
}  // namespace

int Winograd::choose_tile(const Window2D& g, int64_t batch, int64_t M, int64_t C) {
  if (g.kh != 3 || g.kw != 3 || g.sh != 1 || g.sw != 1 || g.dh != 1 || g.dw != 1) return 0;
  if (tile_count(g, batch, 4) >= kMinTiles4 && fits(4, M, C)) return 4;
  const int64_t weights2 = points(2) * M * C;
  const int64_t min_tiles2 = weights2 > kLargeWeightFloats ? 2 * kMinTiles2 : kMinTiles2;
  if (tile_count(g, batch, 2) >= min_tiles2 && fits(2, M, C)) return 2;
  return 0;
}

void Winograd::transform_weights(int tile, const float* w, int64_t M, int64_t C, float* u) {
  // G for the points 0, +-1, +-2 (F4) and 0, +-1 (F2); rows past alpha unused.
  static const double G4[6][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                  {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
  static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  const int alpha = tile + 2;
  auto G = [&](int i, int j) { return tile == 4 ? G4[i][j] : G2[i][j]; };
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < C; ++c) {
      const float* k = w + (m * C + c) * 9;
      double gk[6][3];  // G k
      for (int i = 0; i < alpha; ++i)
        for (int j = 0; j < 3; ++j) gk[i][j] = G(i, 0) * k[0 * 3 + j] + G(i, 1) * k[1 * 3 + j] + G(i, 2) * k[2 * 3 + j];
      for (int i = 0; i < alpha; ++i)
        for (int j = 0; j < alpha; ++j) {
          const double v = gk[i][0] * G(j, 0) + gk[i][1] * G(j, 1) + gk[i][2] * G(j, 2);  // (G k G^T)[i][j]
          u[((i * alpha + j) * M + m) * C + c] = float(v);
        }
    }
}

Winograd::Winograd(const Window2D& geometry, int64_t n, int t) : g(geometry), tile(t), alpha(t + 2), batch(n) {
  th = (g.oh + tile - 1) / tile;
  tw = (g.ow + tile - 1) / tile;
  padded_w = tw * tile + 2;
  rows_per_block = std::min(tile_rows(), (kBlockTiles + tw - 1) / tw);
  block_ld = (rows_per_block * tw + 15) / 16 * 16;
}

std::vector<Winograd::Segment> Winograd::segments(int64_t r0, int64_t r1) const {
  std::vector<Segment> out;
  for (int64_t r = r0; r < r1;) {
    const int64_t n = r / th, end = std::min(r1, (n + 1) * th);
    out.push_back(Segment{n, r - n * th, end - n * th, (r - r0) * tw});
    r = end;
  }
  return out;
}

void Winograd::pad_rows(const float* xc, int64_t ty0, int64_t ty1, float* out) const {
  // Padded row 0 is input row ty0 * tile - ph: the plane's pad, shifted.
  kernels::pad_plane(xc, g.ih, g.iw, g.ph - ty0 * tile, g.pw, (ty1 - ty0) * tile + 2, padded_w, out);
}

}  // namespace pycnn::kernels
