// Winograd F(4x4, 3x3) for 3x3 stride-1 convolutions: 36 GEMMs of
// (M x C) x (C x tiles) on transformed weights and inputs instead of one of
// (M x 9C) x (9C x pixels): 2.25x fewer multiplies per output. Its rounding
// error is a few times direct convolution's (measured in the tests, stated in
// docs/architecture.md); SessionOptions.enable_winograd turns it off.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

namespace pycnn::kernels {

struct Winograd43 {
  static constexpr int kAlpha = 6, kPoints = 36, kTile = 4;
  // Fewer tiles than this (over the batch) make GEMMs too thin to win.
  static constexpr int64_t kMinTiles = 49;
  // Transformed weights are 4x the originals: beyond this many floats the
  // memory costs more than the time saved (ResNet's 256x256 layers).
  static constexpr int64_t kMaxWeightFloats = int64_t(1) << 21;

  static bool applies(const Window2D& g, int64_t batch, int64_t M, int64_t C) {
    return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 &&
           batch * ((g.oh + 3) / 4) * ((g.ow + 3) / 4) >= kMinTiles && 36 * M * C <= kMaxWeightFloats;
  }
  // u[xi][m][c] = (G w[m][c] G^T)[xi], computed in double.
  static void transform_weights(const float* w, int64_t M, int64_t C, float* u);

  explicit Winograd43(const Window2D& geometry, int64_t batch);
  Window2D g;
  int64_t batch, th, tw, tiles, tiles_ld;  // tiles over the batch; tiles_ld: a V/M row, padded
  int64_t padded_w, padded_h;              // the padded plane the tiles read (4 tw + 2 by 4 th + 2)

  int64_t v_floats(int64_t channels) const { return kPoints * channels * tiles_ld; }
  int64_t plane_floats() const { return padded_w * padded_h; }
  // One input channel (ih x iw) zero-padded into `out` (padded_h x padded_w).
  void pad_plane(const float* x_channel, float* out) const;
};

}  // namespace pycnn::kernels
