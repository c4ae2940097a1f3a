#include "kernels/conv/winograd.h"

#include "kernels/conv/padding.h"

#include <algorithm>
#include <cstring>

namespace pycnn::kernels {

namespace {
int64_t tile_count(const Window2D& g, int64_t batch, int tile) {
  return batch * ((g.oh + tile - 1) / tile) * ((g.ow + tile - 1) / tile);
}
}  // namespace

int Winograd::choose_tile(const Window2D& g, int64_t batch, int64_t M, int64_t C) {
  if (g.kh != 3 || g.kw != 3 || g.sh != 1 || g.sw != 1 || g.dh != 1 || g.dw != 1) return 0;
  if (tile_count(g, batch, 4) >= kMinTiles4 && fits(4, M, C)) return 4;
  if (tile_count(g, batch, 2) >= kMinTiles2 && fits(2, M, C)) return 2;
  return 0;
}

namespace {
// U = G k G^T for a chunk of filters laid out structure-of-arrays (k[t][f]:
// tap t of filter f), so every step is a loop over filters the compiler
// vectorizes; u[i * alpha + j][f] out.
template <int TILE>
void transform_chunk(const float (*k)[kWinogradChunk], int n, float (*u)[kWinogradChunk]) {
  constexpr int alpha = TILE + 2;
  // G for the points 0, +-1, +-2 (F4) and 0, +-1 (F2).
  static constexpr float G4[6][3] = {{1.f / 4, 0, 0},           {-1.f / 6, -1.f / 6, -1.f / 6}, {-1.f / 6, 1.f / 6, -1.f / 6},
                                     {1.f / 24, 1.f / 12, 1.f / 6}, {1.f / 24, -1.f / 12, 1.f / 6}, {0, 0, 1}};
  static constexpr float G2[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
  constexpr const float(*G)[3] = TILE == 4 ? G4 : G2;
  float gk[alpha][3][kWinogradChunk];  // G k
  for (int i = 0; i < alpha; ++i)
    for (int j = 0; j < 3; ++j)
      for (int f = 0; f < n; ++f) gk[i][j][f] = G[i][0] * k[0 * 3 + j][f] + G[i][1] * k[1 * 3 + j][f] + G[i][2] * k[2 * 3 + j][f];
  for (int i = 0; i < alpha; ++i)
    for (int j = 0; j < alpha; ++j)
      for (int f = 0; f < n; ++f) u[i * alpha + j][f] = gk[i][0][f] * G[j][0] + gk[i][1][f] * G[j][1] + gk[i][2][f] * G[j][2];
}
}  // namespace

void Winograd::transform_weights(int tile, const float* w, int64_t M, int64_t C, int mr, float* out, size_t point_stride) {
  const int pts = int(points(tile));
  // Chunks of filters in the packed order (panel of mr rows, channel, row),
  // so each point's values go out contiguously: out + point * point_stride
  // holds that point's M x C matrix as pack_a would lay it out.
  alignas(64) float k[9][kWinogradChunk];
  alignas(64) float u[36][kWinogradChunk];
  const int64_t cb = std::max<int64_t>(1, kWinogradChunk / mr);  // channels per chunk
  for (int64_t m0 = 0; m0 < M; m0 += mr) {
    const int64_t rows = std::min<int64_t>(mr, M - m0);
    for (int64_t c0 = 0; c0 < C; c0 += cb) {
      const int64_t cn = std::min(cb, C - c0);
      const int n = int(cn * mr);
      for (int64_t c = 0; c < cn; ++c)
        for (int64_t r = 0; r < mr; ++r) {
          const int f = int(c * mr + r);
          const float* src = w + ((m0 + r) * C + c0 + c) * 9;
          for (int t = 0; t < 9; ++t) k[t][f] = r < rows ? src[t] : 0.f;  // rows past M: zero, as pack_a
        }
      if (tile == 4) transform_chunk<4>(k, n, u);
      else transform_chunk<2>(k, n, u);
      float* dst = out + m0 * C + c0 * mr;
      for (int xi = 0; xi < pts; ++xi) std::memcpy(dst + size_t(xi) * point_stride, u[xi], size_t(n) * sizeof(float));
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
