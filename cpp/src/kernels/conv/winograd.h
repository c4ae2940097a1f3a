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
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/kernels.h"

namespace pycnn::kernels {

// Filters per chunk of Winograd::transform_weights.
constexpr int kWinogradChunk = 192;

struct Winograd {
  // Fewer tiles than these (over the batch) make the GEMMs too thin to win:
  // at 14x14, F4's 16 tiles lose to F2's 49; F2's 16 (a 7x7 map) win, even
  // in ResNet-18's and ResNet-50's 512-channel layers, whose 16 MB of
  // transformed weights stream from memory (Zen 4, batch 1: 2.26 -> 1.47 ms
  // at 1 thread, 1.27 -> 0.87 ms at 2, against indirect GEMM; they had lost
  // 3% before a 16-column panel ran as a half panel).
  static constexpr int64_t kMinTiles4 = 49, kMinTiles2 = 16;
  // Transformed weights beyond this many floats cost more memory than the
  // time they save: 8 MB for F4 (4x the originals), 16 MB for F2.
  static constexpr int64_t kMaxWeightFloats = int64_t(1) << 22;

  // The output tile (4 or 2) for this layer, 0 when neither applies:
  // F4 where it has enough tiles and its weights fit half the cap, else F2.
  static int choose_tile(const Window2D& g, int64_t batch, int64_t M, int64_t C);
  // Whether F(tile)'s transformed weights fit the cap (F4: half of it).
  static bool fits(int tile, int64_t M, int64_t C) {
    return points(tile) * M * C <= (tile == 4 ? kMaxWeightFloats / 2 : kMaxWeightFloats);
  }
  // Whether some batch could take Winograd with these weights (keep them).
  static bool may_apply(int64_t M, int64_t C) { return fits(2, M, C); }
  static int64_t points(int tile) { return (tile + 2) * (tile + 2); }
  // U = G w[m][c] G^T of row-major 3x3 weights w (M, C, 3, 3), written
  // straight into GEMM panels: point xi's M x C matrix packed as pack_a
  // packs (mr rows a panel) at out + xi * point_stride. Vectorized over
  // filters: ResNet-50's 256x256 layer takes well under a millisecond, so
  // a one-shot call (pycnn.functional) can afford it.
  static void transform_weights(int tile, const float* w, int64_t M, int64_t C, int mr, float* out,
                                size_t point_stride);

  // The work runs in blocks of whole tile rows over the batch (a block may
  // span images) of at least kBlockTiles tiles: one block for a 56x56 image,
  // while a batch of 8 no longer sends 8x the transformed data through memory
  // between the three steps (DenseNet-121's 56x56 layers ran 1.6x slower per
  // image at batch 8 than at batch 1).
  static constexpr int64_t kBlockTiles = 196;

  Winograd(const Window2D& geometry, int64_t batch, int tile);
  Window2D g;
  int tile, alpha;
  int64_t batch, th, tw;     // tile rows and columns of one image
  int64_t rows_per_block;    // tile rows per block (the last may have fewer)
  int64_t block_ld;          // a V/M row of a block: its tiles, padded
  int64_t padded_w;          // row length of the padded input rows (tile*tw + 2)

  int64_t point_count() const { return int64_t(alpha) * alpha; }
  int64_t tile_rows() const { return batch * th; }
  int64_t v_floats(int64_t channels) const { return point_count() * channels * block_ld; }
  // The padded input rows of one channel of one block segment, with the
  // slack winograd_input reads past them.
  int64_t plane_floats() const { return (std::min(rows_per_block, th) * tile + 2) * padded_w + kWinogradPlaneSlack; }

  // The part of a block inside one image: its tile rows [ty0, ty1), whose
  // tiles start at `first` within the block.
  struct Segment {
    int64_t n, ty0, ty1, first;
  };
  // The segments of the block of tile rows [r0, r1) (over the batch), at
  // most one per image.
  std::vector<Segment> segments(int64_t r0, int64_t r1) const;
  // Tile rows [ty0, ty1) of one input channel (ih x iw), zero-padded into `out`.
  void pad_rows(const float* x_channel, int64_t ty0, int64_t ty1, float* out) const;
};

}  // namespace pycnn::kernels
