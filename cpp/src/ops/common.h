// Small pieces several op files share: broadcasting iteration and typed loops.
#pragma once
#include <vector>

#include "ops/op.h"

namespace pycnn {

// Walks an output shape while reading inputs broadcast to it. Dimensions that
// are contiguous for every operand are merged, so the innermost run is long.
struct BroadcastWalk {
  std::vector<int64_t> outer;                 // merged outer dims (without the inner one)
  std::vector<std::vector<int64_t>> strides;  // per input, per outer dim
  std::vector<int64_t> inner_stride;          // per input: 0 (broadcast) or 1
  int64_t inner = 1;                          // length of the innermost run
  int64_t outer_count = 1;

  BroadcastWalk(const Shape& out, const std::vector<Shape>& inputs);
  // Offsets of every input for outer index `o` (row-major over `outer`).
  void offsets(int64_t o, int64_t* in_offsets) const;
};

// A float count rounded up to whole 64-byte cache lines: where scratch
// regions are cut, so each starts aligned.
inline int64_t cacheline_floats(int64_t floats) { return (floats + 15) / 16 * 16; }

// Element count below which an op stays on one thread.
constexpr int64_t kParallelMinElements = 1 << 14;

// Calls fn(begin, end) over [0, n), on several threads when n is large.
void parallel_elements(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace pycnn
