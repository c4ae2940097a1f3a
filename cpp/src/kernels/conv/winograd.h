// Winograd F(m x m, 3x3), m = 4 or 2, for 3x3 stride-1 convolutions:
// (m+2)^2 GEMMs of (M x C) x (C x tiles) on transformed weights and inputs
// instead of one of (M x 9C) x (9C x pixels): 4x (F4) or 2.25x (F2) fewer
// multiplies per output. F4 saves more; F2 has 4x more tiles per plane (the
// GEMMs' N) and transformed weights 16/9 the originals instead of 4x, so it
// takes the small planes (the 14x14 and 7x7 layers) and the wide layers
// F4's weight cap refuses. Rounding error: a few times direct convolution's
// (measured in the tests, stated in docs/architecture.md);
// SessionOptions.enable_winograd turns both off.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

namespace pycnn::kernels {

struct Winograd {
  // Fewer tiles than these (over the batch) make the GEMMs too thin to win:
  // at 14x14, F4's 16 tiles lose to F2's 49; F2's 16 (a 7x7 map) win by
  // 1-13% where its weights stay in cache, and lose 3% in ResNet-18's
  // 512-channel layers, whose 16 MB of transformed weights stream from
  // memory: past kLargeWeightFloats F2 wants twice the tiles.
  static constexpr int64_t kMinTiles4 = 49, kMinTiles2 = 16;
  static constexpr int64_t kLargeWeightFloats = int64_t(1) << 20;
  // Transformed weights beyond this many floats cost more memory than the
  // time they save: 8 MB for F4 (4x the originals), 16 MB for F2.
  static constexpr int64_t kMaxWeightFloats = int64_t(1) << 22;

  // The output tile (4 or 2) for this layer, 0 when neither applies:
  // F4 where it has enough tiles and its weights fit half the cap, else F2.
  static int choose_tile(const Window2D& g, int64_t batch, int64_t M, int64_t C);
  // Whether some batch could take Winograd with these weights (keep them).
  static bool may_apply(int64_t M, int64_t C) { return points(2) * M * C <= kMaxWeightFloats; }
  static int64_t points(int tile) { return (tile + 2) * (tile + 2); }
  // u[xi][m][c] = (G w[m][c] G^T)[xi], computed in double.
  static void transform_weights(int tile, const float* w, int64_t M, int64_t C, float* u);

  Winograd(const Window2D& geometry, int64_t batch, int tile);
  Window2D g;
  int tile, alpha;
  int64_t batch, th, tw, tiles, tiles_ld;  // tiles over the batch; tiles_ld: a V/M row, padded
  int64_t padded_w, padded_h;              // the padded plane the tiles read (tile*tw + 2 by tile*th + 2)

  int64_t point_count() const { return int64_t(alpha) * alpha; }
  int64_t v_floats(int64_t channels) const { return point_count() * channels * tiles_ld; }
  int64_t plane_floats() const { return padded_w * padded_h + kWinogradPlaneSlack; }
  // One input channel (ih x iw) zero-padded into `out` (padded_h x padded_w).
  void pad_plane(const float* x_channel, float* out) const;
};

}  // namespace pycnn::kernels
