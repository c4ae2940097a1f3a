// Spatial attributes shared by Conv, ConvTranspose and the pools: kernel,
// strides, dilations, pads and auto_pad, resolved against an input shape.
#pragma once
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "pycnn/graph.h"

namespace pycnn {

struct SpatialAttrs {
  int rank = 0;  // number of spatial dims; 0 until known
  std::vector<int64_t> kernel, strides, dilations, pads;  // pads: begins then ends
  std::string auto_pad = "NOTSET";
  bool ceil_mode = false;

  // Reads the attributes; `kernel` may be empty (Conv takes it from W).
  static SpatialAttrs parse(const Node& node);
  // Fills defaults for `rank` spatial dims and validates values.
  void complete(int spatial_rank, const Node& node);
  // Output spatial sizes of a convolution/pool over `in`; sets pads for SAME.
  std::vector<int64_t> output_sizes(const std::vector<int64_t>& in, const Node& node, std::vector<int64_t>* pads_out) const;
};

// The spatial dims of an (N, C, spatial...) shape.
inline std::vector<int64_t> spatial(const Shape& s) { return std::vector<int64_t>(s.begin() + 2, s.end()); }

// A 1-D or 2-D window as a 2-D Window2D (1-D gets height 1).
kernels::Window2D make_window2d(const std::vector<int64_t>& in, const std::vector<int64_t>& out,
                                const SpatialAttrs& a, const std::vector<int64_t>& pads);

}  // namespace pycnn
